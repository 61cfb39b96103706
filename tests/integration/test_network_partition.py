"""A leader cut off the network instead of killed (issue 15): three
Shardline nodes, each in a network namespace of its own joined to the test's
by a veth pair and a bridge (`ip netns`, iproute2). The test cuts the
leader's link while an idempotent acks=all producer (in the test's own
namespace) writes numbered messages, waits for the other two to elect a new
leader and go on, heals the link, and checks every acknowledged message is
read back once and in order, and that the old leader rejoined the ISR (it
cut the tail it could not commit).

Needs root (or CAP_NET_ADMIN) and `ip`; skipped, saying why, without them.
"""

import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaError

from cluster import Cluster, ClusterNode, wait_until
from conftest import HOST, unique_topic
from test_reassignment import NumberedProducer, create_on
from test_replication import partition_state, read_everything

# A broker silent for this long is fenced (the cluster nodes' setting).
SESSION_S = 3


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Network:
    """A bridge in the test's namespace and one namespace per node, each
    with a veth pair to the bridge; addresses 10.77.S.1 (the bridge) and
    10.77.S.1N (node N), S from the test's pid so runs side by side differ."""

    def __init__(self, nodes):
        self.tag = f"sl{os.getpid() % 10000}"
        self.subnet = 10 + os.getpid() % 200
        self.bridge = f"{self.tag}b"
        self.nodes = nodes
        self.made = []
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            self.made.append(("link", self.bridge))
            ip("addr", "add", f"10.77.{self.subnet}.1/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for n in nodes:
                ns, veth = self.ns(n), self.veth(n)
                ip("netns", "add", ns)
                self.made.append(("netns", ns))
                ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self.made.append(("link", veth))
                ip("link", "set", veth, "master", self.bridge)
                ip("link", "set", veth, "up")
                ip("netns", "exec", ns, "ip", "addr", "add", f"{self.host(n)}/24", "dev", "eth0")
                ip("netns", "exec", ns, "ip", "link", "set", "eth0", "up")
                ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def ns(self, n):
        return f"{self.tag}n{n}"

    def veth(self, n):
        return f"{self.tag}v{n}"

    def host(self, n):
        return f"10.77.{self.subnet}.{10 + n}"

    def cut(self, n):
        """Node n's link goes down: nothing reaches it, nothing leaves it."""
        ip("link", "set", self.veth(n), "down")

    def heal(self, n):
        ip("link", "set", self.veth(n), "up")

    def close(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                ip("netns", "del", name, check=False)
            else:
                ip("link", "del", name, check=False)
        self.made.clear()


def network_or_skip(nodes):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN); this run is not root")
    try:
        return Network(nodes)
    except (OSError, subprocess.CalledProcessError) as e:
        reason = getattr(e, "stderr", "") or str(e)
        pytest.skip(f"cannot make network namespaces here (`ip netns add` / veth): {reason}")


class NetNode(ClusterNode):
    """A cluster node started in its namespace, on its own address."""

    net = None  # set by NetCluster before any node starts

    @property
    def host(self):
        return self.net.host(self.node_id)

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def address(self):
        return (self.host, self.port)

    def command(self):
        cmd = [a.replace(f"{HOST}:", f"{self.host}:") for a in super().command()]
        return ["ip", "netns", "exec", self.net.ns(self.node_id), *cmd]


class NetCluster(Cluster):
    def __init__(self, binary, tmp_path, net, extra_args=()):
        self.net = net
        super().__init__(binary, tmp_path, extra_args=extra_args)

    def _add(self, node_id, roles, rack):
        n = NetNode(self.binary, self.tmp_path / f"node{node_id}",
                    self.tmp_path / f"node{node_id}.log", node_id, self.voters_arg,
                    roles=roles, rack=rack, extra_args=self.extra_args, sasl=self.sasl)
        n.net = self.net
        self.nodes[node_id] = n
        return n

    def voters_arg(self):
        return ",".join(f"{i}@{self.net.host(i)}:{n.controller_port}"
                        for i, n in sorted(self.nodes.items()) if "controller" in n.roles)


def views_agree(cluster, topic, isr):
    """Every node names the same leader for partition 0, and the ISR `isr`."""
    views = [partition_state(cluster.bootstrap(n), topic)[0] for n in (1, 2, 3)]
    return len({v[0] for v in views}) == 1 and all(v[2] == isr for v in views)


@pytest.fixture
def partitioned(shardline_bin, tmp_path):
    net = network_or_skip([1, 2, 3])
    c = NetCluster(shardline_bin, tmp_path, net, extra_args=["--replica-lag-time-max-ms", "2000"])
    try:
        yield c.start().wait_registered(), net
    finally:
        c.close()
        net.close()


def test_a_leader_cut_off_the_network_loses_no_acknowledged_message(partitioned):
    cluster, net = partitioned
    topic = unique_topic("netsplit")
    create_on(cluster.bootstrap(), topic, [1, 2, 3], {"min.insync.replicas": "2"})
    leader = partition_state(cluster.bootstrap(), topic)[0][0]
    others = [n for n in (1, 2, 3) if n != leader]
    # A cut link answers nothing (no reset): a request to the old leader
    # times out after request.timeout.ms, then the client re-routes.
    producer = NumberedProducer(cluster.bootstrap(), topic, **{"request.timeout.ms": 5000, "message.timeout.ms": 15000})
    try:
        wait_until("the producer is acknowledged", lambda: len(producer.acked) > 300)
        net.cut(leader)
        cut_at, acked_at_cut = time.monotonic(), len(producer.acked)
        wait_until("the others elect a new leader", lambda: partition_state(
            cluster.bootstrap(*others), topic)[0][0] in others, timeout=30)
        elected = time.monotonic() - cut_at
        wait_until("acks=all goes on without the old leader",
                   lambda: len(producer.acked) > acked_at_cut + 100, timeout=60)
        failover = time.monotonic() - cut_at
        time.sleep(SESSION_S)  # the old leader, alone, must not acknowledge meanwhile
        net.heal(leader)
        healed_at = time.monotonic()
        # Every node's own view: the old leader's answers nothing new until
        # it has caught up with the metadata log (it still believes it leads
        # with the ISR it had), so asking any one node could pass at once.
        wait_until("the old leader learns it was replaced and rejoins the ISR",
                   lambda: views_agree(cluster, topic, isr=[1, 2, 3]), timeout=60)
        rejoined = time.monotonic() - healed_at
        time.sleep(1)
    finally:
        acked = producer.finish()
    # Unacknowledged messages may time out in the client; none may fail
    # otherwise, and none acknowledged may be missing.
    assert all(e.code() == KafkaError._MSG_TIMED_OUT for e in producer.errors), producer.errors[:3]
    got = [v for _, _, v in read_everything(cluster.bootstrap(), topic, 1)]
    assert len(got) == len(set(got)), "a message was read twice"
    assert got == sorted(got), "messages out of order"
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    print(f"cut leader {leader}: {len(acked)} acknowledged, {len(producer.errors)} timed out, "
          f"new leader after {elected:.1f} s, acks again after {failover:.1f} s, "
          f"back in every node's ISR {rejoined:.1f} s after the link healed")
