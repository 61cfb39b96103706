"""Hours-long soak of a three-node Shardline cluster (not part of the test
command: it runs for hours).

    .venv/bin/python tests/soak/cluster_soak.py BINARY OUT_DIR HOURS

What it keeps going, all at once:
  * a trickle of acks=all idempotent produce (about 200 messages a
    second, numbered) to a 3-partition topic with three replicas
    (min.insync.replicas=2), and a consumer group reading it back:
    every acknowledged number must be consumed, and none twice per partition
    beyond what a redelivery after a group rebalance explains;
  * a trickle of transactions (SOAK_TXN=1, default): a transactional
    producer writes 5 numbered messages per transaction over the 3
    partitions of `soak-txn` (RF 3), commits four in five and aborts the
    rest, about 10 transactions a second; a read_committed consumer reads
    them back: every committed number must be read, no aborted one ever,
    and a transaction whose commit failed (unknown outcome) all or nothing;
  * idle long-lived connections (admin clients that only refresh metadata
    every few minutes);
  * admin churn: a topic created and deleted every SOAK_ADMIN_EVERY seconds
    (default 30) through a random node;
  * replica churn: every SOAK_MOVE_EVERY seconds (default 300) one partition
    of the soak topic is reassigned to a rotation of its replicas (its
    preferred leader changes) and a preferred-leader election follows
    (AlterPartitionReassignments and ElectLeaders, from kafka-python);
  * every SOAK_BOUNCE_EVERY seconds (default 900) the active controller is
    stopped with SIGKILL (SOAK_BOUNCE=kill, default) or SIGTERM
    (SOAK_BOUNCE=term), or each in turn (SOAK_BOUNCE=alternate), and
    restarted 10 s later.
SOAK_ALERTS=1 adds the console's alert rules (soak_alerts.py): each
notification must be sent once across the controller bounces.
SOAK_CONSUMER_DEBUG=cgrp (any librdkafka `debug` list) logs the consumers'
group state machines to OUT_DIR/consumer-GROUP.log.
Every 60 s it writes a row per node to OUT_DIR/soak.csv (RSS, threads,
descriptors, CPU seconds) and a progress line to OUT_DIR/soak.log; at the
end a verdict line ("SOAK PASSED" / "SOAK FAILED: why").
"""

import csv
import os
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from cluster import Cluster  # noqa: E402
from soak_alerts import AlertWatch  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "soak"
TXN_TOPIC = "soak-txn"
PARTITIONS = 3


def proc_sample(pid):
    """(rss_kb, threads, fds, cpu_s) of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads")))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    return rss, threads, fds, cpu


class Soak:
    def __init__(self, binary, out, hours):
        self.out = out
        self.deadline = time.monotonic() + hours * 3600
        self.cluster = Cluster(binary, out / "cluster")
        self.lock = threading.Lock()
        self.acked = {}  # value -> partition
        self.delivery_errors = 0
        self.last_delivery_error = None
        self.seen = {}  # value -> times consumed
        self.admin_ok = 0
        self.admin_failed = []
        self.bounces = 0
        self.moves = 0
        self.move_failed = []
        # Transactions: value -> its transaction's number; outcome per number.
        self.txn_values = {}
        self.txn_outcome = {}  # txn -> "committed" | "aborted" | "unknown"
        self.txn_seen = {}  # value -> times read (read_committed)
        self.txn_restarts = 0
        self.stop = threading.Event()
        self.log = open(out / "soak.log", "a", buffering=1)

    def say(self, msg):
        self.log.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    def bootstrap(self):
        return self.cluster.bootstrap()

    # ------------------------------------------------------------ traffic
    def produce_loop(self):
        p = Producer({"bootstrap.servers": self.bootstrap(), "acks": "all",
                      "enable.idempotence": True, "linger.ms": 0,
                      "message.timeout.ms": 120000})
        n = 0

        def on_delivery(err, msg):
            with self.lock:
                if err is None:
                    self.acked[int(msg.value())] = msg.partition()
                else:
                    self.delivery_errors += 1
                    self.last_delivery_error = str(err)

        while not self.stop.is_set():
            p.produce(TOPIC, value=str(n).encode(), key=str(n % 97).encode(),
                      on_delivery=on_delivery)
            n += 1
            p.poll(0)
            time.sleep(0.005)  # about 200 messages a second
        p.flush(150)

    def consume_loop(self):
        self.read_back("soak", TOPIC, self.seen, "read_uncommitted")

    def read_back(self, group, topic, seen, isolation):
        """Consume `topic` in `group` until the drain ends, counting each
        value read in `seen`."""
        conf = {"bootstrap.servers": self.bootstrap(), "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": True,
                "isolation.level": isolation, "session.timeout.ms": 10000}
        if os.environ.get("SOAK_CONSUMER_DEBUG"):
            # librdkafka's group state machine, to OUT_DIR/consumer-GROUP.log:
            # what a consumer that stops receiving did and was told.
            import logging
            log = logging.getLogger(f"consumer-{group}")
            handler = logging.FileHandler(self.out / f"consumer-{group}.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            conf.update({"debug": os.environ["SOAK_CONSUMER_DEBUG"], "logger": log})
        c = Consumer(conf)
        c.subscribe([topic])
        while not self.stop.is_set() or time.monotonic() < self.drain_until:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            v = int(m.value())
            with self.lock:
                seen[v] = seen.get(v, 0) + 1
        c.close()

    def txn_producer(self):
        """A transactional producer, initialised (which fences the previous
        one with the id and completes or aborts what that one left)."""
        from confluent_kafka import KafkaException
        while True:
            p = Producer({"bootstrap.servers": self.bootstrap(), "transactional.id": "soak-txn",
                          "linger.ms": 5, "transaction.timeout.ms": 60000,
                          "message.timeout.ms": 60000})
            try:
                p.init_transactions(120)
                return p
            except KafkaException as e:
                self.say(f"init_transactions: {e}; again")
                time.sleep(5)

    def txn_loop(self):
        from confluent_kafka import KafkaException
        p = self.txn_producer()
        n, t = 0, 0
        while not self.stop.is_set():
            t += 1
            values = list(range(n, n + 5))
            n += 5
            commit = t % 5 != 0
            with self.lock:
                for v in values:
                    self.txn_values[v] = t
                self.txn_outcome[t] = "unknown"
            try:
                p.begin_transaction()
                for i, v in enumerate(values):
                    p.produce(TXN_TOPIC, value=str(v).encode(), partition=i % PARTITIONS)
                if commit:
                    p.commit_transaction(60)
                else:
                    p.abort_transaction(60)
                with self.lock:
                    self.txn_outcome[t] = "committed" if commit else "aborted"
            except KafkaException as e:
                self.say(f"transaction {t}: {e}")
                p = self.txn_recover(p, t, e.args[0])
            time.sleep(0.1)

    def txn_recover(self, p, t, err):
        """After a failed transaction: abort it when the client may, else
        leave its outcome unknown (all or nothing) and start a new producer."""
        from confluent_kafka import KafkaException
        if err.txn_requires_abort():
            try:
                p.abort_transaction(60)
                with self.lock:
                    self.txn_outcome[t] = "aborted"
                return p
            except KafkaException as e:
                self.say(f"transaction {t}: abort failed: {e}")
        self.txn_restarts += 1
        del p
        return self.txn_producer()

    def txn_consume_loop(self):
        self.read_back("soak-txn", TXN_TOPIC, self.txn_seen, "read_committed")

    def txn_problems(self):
        """What the read_committed consumer saw against what the producer
        was told: committed all read, aborted none, unknown all or none."""
        by_txn = {}
        for v, t in self.txn_values.items():
            by_txn.setdefault(t, []).append(v)
        problems, counts = [], {"committed": 0, "aborted": 0, "unknown": 0}
        for t, values in by_txn.items():
            outcome = self.txn_outcome[t]
            counts[outcome] += 1
            read = sum(1 for v in values if v in self.txn_seen)
            if outcome == "committed" and read != len(values):
                problems.append(f"committed transaction {t}: {read} of {len(values)} read")
            elif outcome == "aborted" and read:
                problems.append(f"aborted transaction {t}: {read} of {len(values)} read")
            elif outcome == "unknown" and read not in (0, len(values)):
                problems.append(f"transaction {t} of unknown outcome: {read} of {len(values)} read")
        return problems, counts

    def idle_loop(self):
        admins = [AdminClient({"bootstrap.servers": self.bootstrap(),
                               "socket.keepalive.enable": True}) for _ in range(8)]
        while not self.stop.wait(240):
            for a in admins:
                try:
                    a.list_topics(timeout=20)
                except Exception as e:  # noqa: BLE001
                    self.say(f"idle metadata refresh failed: {e}")

    def churn_loop(self):
        i = 0
        every = float(os.environ.get("SOAK_ADMIN_EVERY", "30"))
        while not self.stop.wait(every):
            i += 1
            name = f"churn-{i}"
            node = random.choice([n for n in self.cluster.nodes.values() if n.is_running()])
            starts = node.starts
            a = AdminClient({"bootstrap.servers": node.bootstrap})
            try:
                a.create_topics([NewTopic(name, 2, 1)])[name].result(60)
                time.sleep(2)
                a.delete_topics([name])[name].result(60)
                self.admin_ok += 1
            except Exception as e:  # noqa: BLE001
                if node.starts != starts or not node.is_running():
                    # The bounce loop killed the node this request was on:
                    # the client's error, not the cluster's.
                    self.say(f"admin churn on node {node.node_id} cut by its bounce: {e}")
                    continue
                self.admin_failed.append(f"{name}: {e}")
                self.say(f"admin churn failed on node {node.node_id}: {e}")

    def move_loop(self, every):
        i = 0
        while not self.stop.wait(every):
            part = i % PARTITIONS
            i += 1
            # A node may be down (the bounce loop): retry through another
            # for up to two minutes before calling it a failure.
            deadline = time.monotonic() + 120
            while True:
                try:
                    replicas, target = self.move_once(part)
                    self.moves += 1
                    self.say(f"partition {part}: replicas {replicas} -> {target}, "
                             f"preferred leader elected")
                    break
                except Exception as e:  # noqa: BLE001
                    if time.monotonic() > deadline or self.stop.is_set():
                        self.move_failed.append(f"partition {part}: {e}")
                        self.say(f"replica churn failed on partition {part}: {e}")
                        break
                    self.say(f"replica churn on partition {part}: {e}; retrying")
                    time.sleep(5)

    def move_once(self, part):
        from kafka import KafkaAdminClient, TopicPartition
        live = ",".join(n.bootstrap for n in self.cluster.nodes.values() if n.is_running())
        meta = AdminClient({"bootstrap.servers": live}).list_topics(TOPIC, timeout=30)
        replicas = list(meta.topics[TOPIC].partitions[part].replicas)
        target = replicas[1:] + replicas[:1]
        k = KafkaAdminClient(bootstrap_servers=live, request_timeout_ms=60000)
        try:
            k.alter_partition_reassignments({TopicPartition(TOPIC, part): target})
            deadline = time.monotonic() + 120
            while k.list_partition_reassignments([TopicPartition(TOPIC, part)]):
                if time.monotonic() > deadline:
                    raise RuntimeError("reassignment still in progress after 120 s")
                time.sleep(1)
            k.elect_leaders(0, {TOPIC: [part]}, raise_errors=False)
        finally:
            k.close()
        return replicas, target

    # ------------------------------------------------------------ faults
    def active_controller(self):
        for n in self.cluster.nodes.values():
            if n.is_running():
                try:
                    return int(n.gauge("shardline_active_controller"))
                except Exception:  # noqa: BLE001
                    continue
        return None

    def bounce_loop(self, every, how):
        while not self.stop.wait(every):
            leader = self.active_controller()
            if leader not in self.cluster.nodes:
                self.say(f"no active controller to bounce (saw {leader})")
                continue
            node = self.cluster.nodes[leader]
            t0 = time.monotonic()
            if how == "alternate":
                how_now = "term" if self.bounces % 2 else "kill"
            else:
                how_now = how
            if how_now == "term":
                node.terminate()
            else:
                node.kill9()
            self.bounces += 1
            self.say(f"{how_now} node {leader} (bounce {self.bounces}, exited in "
                     f"{time.monotonic() - t0:.2f}s, rc={node.last_returncode})")
            time.sleep(10)
            node.start(120)
            self.say(f"node {leader} back")

    # ------------------------------------------------------------ run
    def sample(self, writer):
        now = time.strftime("%H:%M:%S")
        for nid, n in sorted(self.cluster.nodes.items()):
            if not n.is_running():
                continue
            try:
                rss, threads, fds, cpu = proc_sample(n.proc.pid)
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                continue
            writer.writerow([now, nid, n.starts, rss, threads, fds, f"{cpu:.1f}"])
        with self.lock:
            acked, seen = len(self.acked), len(self.seen)
        self.say(f"transactions {len(self.txn_outcome)} read {len(self.txn_seen)} "
                 f"restarts {self.txn_restarts}")
        self.say(f"acked {acked} consumed {seen} delivery_errors {self.delivery_errors} "
                 f"admin ok {self.admin_ok} failed {len(self.admin_failed)} bounces {self.bounces} "
                 f"moves {self.moves} failed {len(self.move_failed)}")

    def run(self):
        self.cluster.start(120)
        self.say(f"cluster up: {self.bootstrap()}")
        a = AdminClient({"bootstrap.servers": self.bootstrap()})
        a.create_topics([NewTopic(TOPIC, PARTITIONS, 3,
                                 config={"min.insync.replicas": "2"})])[TOPIC].result(60)
        txn = os.environ.get("SOAK_TXN", "1") == "1"
        if txn:
            a.create_topics([NewTopic(TXN_TOPIC, PARTITIONS, 3, config={
                "min.insync.replicas": "2"})])[TXN_TOPIC].result(60)
        self.alerts = None
        if os.environ.get("SOAK_ALERTS") == "1":
            self.alerts = AlertWatch(self.cluster, self.say)
            self.alerts.create_rules()
        self.drain_until = float("inf")
        every = int(os.environ.get("SOAK_BOUNCE_EVERY", "900"))
        how = os.environ.get("SOAK_BOUNCE", "kill")
        threads = [threading.Thread(target=f, daemon=True, name=f.__name__) for f in
                   (self.produce_loop, self.consume_loop, self.idle_loop, self.churn_loop)]
        if txn:
            threads += [threading.Thread(target=f, daemon=True, name=f.__name__)
                        for f in (self.txn_loop, self.txn_consume_loop)]
        threads.append(threading.Thread(target=self.bounce_loop, args=(every, how), daemon=True))
        moves = int(os.environ.get("SOAK_MOVE_EVERY", "300"))
        threads.append(threading.Thread(target=self.move_loop, args=(moves,), daemon=True))
        for t in threads:
            t.start()
        with open(self.out / "soak.csv", "a", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time", "node", "starts", "rss_kb", "threads", "fds", "cpu_s"])
            while time.monotonic() < self.deadline:
                self.sample(w)
                f.flush()
                time.sleep(60)
            self.drain_until = time.monotonic() + 60
            self.stop.set()
            for t in threads:
                t.join(180)
            self.sample(w)
        return self.verdict()

    def verdict(self):
        with self.lock:
            lost = sorted(v for v in self.acked if v not in self.seen)
            dups = sum(1 for c in self.seen.values() if c > 1)
        problems = []
        if lost:
            problems.append(f"{len(lost)} acknowledged messages never consumed (first {lost[:10]})")
        if self.delivery_errors:
            problems.append(f"{self.delivery_errors} delivery errors (last: {self.last_delivery_error})")
        if self.move_failed:
            problems.append(f"{len(self.move_failed)} replica churn failures (first: {self.move_failed[0]})")
        if self.admin_failed:
            problems.append(f"{len(self.admin_failed)} admin failures (first: {self.admin_failed[0]})")
        if self.alerts is not None:
            problems += self.alerts.problems()
            self.say(self.alerts.describe())
        txn_problems, txn_counts = self.txn_problems()
        if txn_problems:
            problems.append(f"{len(txn_problems)} transaction problems (first: {txn_problems[0]})")
        summary = (f"transactions {txn_counts}, txn producer restarts {self.txn_restarts}, "
                   f"acked {len(self.acked)}, consumed {len(self.seen)}, redelivered {dups}, "
                   f"admin ok {self.admin_ok}, bounces {self.bounces}, moves {self.moves}")
        line = f"SOAK PASSED: {summary}" if not problems else \
            f"SOAK FAILED: {'; '.join(problems)} ({summary})"
        self.say(line)
        print(line)
        return not problems


def main():
    binary, out, hours = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    s = Soak(binary, out, hours)
    try:
        ok = s.run()
    finally:
        s.cluster.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
