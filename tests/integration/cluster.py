"""A cluster of Shardline processes on 127.0.0.1: each node has its own
client and controller ports and data dir; voters name each other in
`--controller-quorum-voters`, as README's three-node commands do."""

import signal
import time

from conftest import HOST, Broker, free_port as _any_free_port

_TAKEN = set()


def free_port():
    """A free port not handed out before in this run: the OS may give the
    same ephemeral port twice between a probe and the bind."""
    while True:
        p = _any_free_port()
        if p not in _TAKEN:
            _TAKEN.add(p)
            return p


class ClusterNode(Broker):
    def __init__(self, binary, data_dir, log_path, node_id, voters, roles="broker,controller",
                 rack=None, extra_args=(), sasl=False):
        self.node_id = node_id
        self.controller_port = free_port()
        # A SASL_PLAINTEXT listener beside the PLAINTEXT one, when asked.
        self.sasl_port = free_port() if sasl else None
        self.admin_port = free_port()
        self.voters = voters  # filled in by Cluster once every port is known
        self.roles = roles
        self.rack = rack
        super().__init__(binary, data_dir, log_path, port=free_port(), extra_args=extra_args,
                         name=f"node{node_id}")

    def command(self):
        cmd = [
            str(self.binary), "serve",
            "--node-id", str(self.node_id),
            "--data-dir", str(self.data_dir),
            "--listeners",
            f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
            + (f",SASL_PLAINTEXT://{HOST}:{self.sasl_port}" if self.sasl_port else ""),
            "--controller-quorum-voters", self.voters(),
            "--process-roles", self.roles,
            # Failures are noticed quickly in tests (Kafka's defaults: 2 s, 9 s).
            "--broker-heartbeat-interval-ms", "500",
            "--broker-session-timeout-ms", "3000",
            "--shards", "1",
            "--admin-listen", f"{HOST}:{self.admin_port}",
            *self.extra_args,
        ]
        if self.rack:
            cmd += ["--broker-rack", self.rack]
        return cmd

    def http(self, path):
        """(status, body) of GET `path` on the admin listener."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def gauge(self, name):
        _, text = self.http("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def launch(self):
        """Start without waiting: a voter is ready only once a quorum is up."""
        orig = self.wait_ready
        self.wait_ready = lambda timeout=None: None
        try:
            self.start()
        finally:
            self.wait_ready = orig


class Cluster:
    def __init__(self, binary, tmp_path, voters=3, racks=None, extra_args=(), sasl=False):
        self.binary = binary
        self.tmp_path = tmp_path
        self.extra_args = list(extra_args)
        self.sasl = sasl
        self.nodes = {}
        for i in range(1, voters + 1):
            self._add(i, "broker,controller", racks[i - 1] if racks else None)

    def _add(self, node_id, roles, rack):
        n = ClusterNode(self.binary, self.tmp_path / f"node{node_id}",
                        self.tmp_path / f"node{node_id}.log", node_id, self.voters_arg,
                        roles=roles, rack=rack, extra_args=self.extra_args, sasl=self.sasl)
        self.nodes[node_id] = n
        return n

    def voters_arg(self):
        return ",".join(f"{i}@{HOST}:{n.controller_port}"
                        for i, n in sorted(self.nodes.items()) if "controller" in n.roles)

    def start(self, timeout=60):
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_ready(timeout)
        return self

    def add_broker(self, node_id, rack=None, timeout=60):
        """A broker that does not vote (it joins the quorum as a learner)."""
        n = self._add(node_id, "broker", rack)
        n.start(timeout)
        return n

    def wait_registered(self, count=None):
        """Wait until `count` brokers (all nodes by default) are registered
        and live, as DescribeCluster through node 1 says."""
        count = count or len(self.nodes)
        wait_until(f"{count} brokers registered",
                   lambda: len(describe_cluster(self.bootstrap(1))["brokers"]) == count)
        return self

    def bootstrap(self, *ids):
        ids = ids or sorted(self.nodes)
        return ",".join(self.nodes[i].bootstrap for i in ids if self.nodes[i].is_running())

    def out_of_sync(self, prefixes=("",)):
        """Partitions of the topics named with one of `prefixes` (all by
        default) that lack a leader or a full ISR in some running node's
        own Metadata: [(node, topic, partition, leader, isr)]. Every node
        is asked, since one that has not caught up with the quorum yet
        can still show the old leader or ISR."""
        from confluent_kafka.admin import AdminClient
        bad = []
        for i, n in sorted(self.nodes.items()):
            if not n.is_running():
                continue
            md = AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=10)
            for name, t in md.topics.items():
                if not name.startswith(tuple(prefixes)):
                    continue
                for p, m in t.partitions.items():
                    if m.leader < 0 or sorted(m.isrs) != sorted(m.replicas):
                        bad.append((i, name, p, m.leader, sorted(m.isrs)))
        return bad

    def close(self):
        for n in self.nodes.values():
            # A node a test froze (SIGSTOP) must run again to stop.
            if n.proc is not None:
                try:
                    n.proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
            n.close()


def describe_cluster(bootstrap, timeout_ms=5000):
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        return a.describe_cluster()
    finally:
        a.close()


def wait_until(what, check, timeout=30, every=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a node going away mid-check
            # Its text, not the exception: one kept here holds this frame
            # through its traceback, a cycle that keeps the check's clients
            # (and their connections) alive until a full collection.
            last = f"{type(e).__name__}: {e}"
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})")
