"""Replication across three Shardline processes (issue 15): followers copy
their leader's log, the ISR shrinks and grows, acks=all waits for the ISR,
and leaders killed with -9 lose no acknowledged message.

The chaos test keeps a history in the style of Jepsen (every send, ack,
failure and read, to `history.jsonl` beside the test's broker logs) and a
checker prints the verdict: acknowledged messages lost, messages read
twice, per-partition order broken, and how long each failover took."""

import json
import random
import signal
import statistics
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, describe_cluster, wait_until
from conftest import unique_topic
from readback import read_to_end

# A follower not caught up for this long leaves the ISR (Kafka: 30 s).
LAG_MS = 2000


def lag_cluster(shardline_bin, tmp_path, lag_ms):
    """Three voters with `replica_lag_time_max_ms = lag_ms`; frozen nodes
    are resumed before the cluster stops."""
    c = Cluster(shardline_bin, tmp_path, extra_args=["--replica-lag-time-max-ms", str(lag_ms)])
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    yield from lag_cluster(shardline_bin, tmp_path, LAG_MS)


def create(bootstrap, topic, partitions=1, rf=3, min_isr=2):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, rf,
                              config={"min.insync.replicas": str(min_isr)})])[topic].result(30)


def partition_state(bootstrap, topic):
    """{partition: (leader, replicas, isr)} as a broker's Metadata says."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p: (m.leader, sorted(m.replicas), sorted(m.isrs)) for p, m in t.partitions.items()}


def read_everything(bootstrap, topic, partitions, timeout=60):
    """Every record of every partition from offset 0, up to the high
    watermark as it is at the start of the read: [(partition, offset, value)]."""
    return [(m.partition(), m.offset(), int(m.value()))
            for m in read_to_end(bootstrap, topic, partitions, timeout=timeout)]


def led_by_a_voter_followed_by_two_brokers(cluster, prefix):
    """Brokers 4 and 5 join (not voters); a topic on [1, 4, 5] led by 1,
    min.insync.replicas=2, all in sync. Freezing 4 and 5 leaves the
    metadata quorum (1, 2, 3) whole, so ISR changes still commit."""
    for node in (4, 5):
        cluster.add_broker(node)
    wait_until("five brokers registered",
               lambda: len(describe_cluster(cluster.bootstrap(1))["brokers"]) == 5)
    topic = unique_topic(prefix)
    a = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1,
                              replica_assignment=[[1, 4, 5]],
                              config={"min.insync.replicas": "2"})])[topic].result(30)
    wait_until("all in sync", lambda: partition_state(cluster.bootstrap(), topic)[0][2] == [1, 4, 5])
    return topic


class History:
    """What was sent, acknowledged, refused and read; and the verdict."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.events = []

    def add(self, **e):
        e["t"] = time.monotonic()
        with self.lock:
            self.events.append(e)

    def verdict(self, reads):
        with self.lock:
            events = list(self.events)
        for p, offset, value in reads:
            events.append({"op": "read", "p": p, "offset": offset, "value": value})
        with open(self.path, "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        acked = {e["value"]: e for e in events if e["op"] == "ack"}
        failed = {e["value"] for e in events if e["op"] == "fail"}
        seen = {}
        for p, offset, value in reads:
            seen.setdefault(value, []).append((p, offset))
        lost = sorted(v for v in acked if v not in seen)
        duplicated = sorted(v for v, where in seen.items() if len(where) > 1)
        misplaced = sorted(v for v, e in acked.items()
                           if v in seen and seen[v][0] != (e["p"], e["offset"]))
        # Per partition, values were produced in increasing order by one
        # idempotent producer: they must be read in increasing order.
        disorder = []
        last = {}
        for p, offset, value in sorted(reads):
            if value <= last.get(p, -1):
                disorder.append((p, offset, value))
            last[p] = value
        unacked_present = sorted(v for v in seen if v not in acked)
        lines = [
            f"history: {len(events)} events in {self.path}",
            f"  acknowledged {len(acked)}, refused/failed {len(failed)}, read {len(reads)}",
            f"  lost (acknowledged, never read): {len(lost)} {lost[:10]}",
            f"  duplicated (read twice): {len(duplicated)} {duplicated[:10]}",
            f"  acknowledged at one offset, read at another: {len(misplaced)} {misplaced[:10]}",
            f"  out of order within a partition: {len(disorder)} {disorder[:10]}",
            f"  not acknowledged but present (allowed): {len(unacked_present)}",
        ]
        ok = not (lost or duplicated or misplaced or disorder)
        lines.append("VERDICT: " + ("PASS" if ok else "FAIL"))
        print("\n" + "\n".join(lines))
        return ok, lost, duplicated, misplaced, disorder


def test_killing_leaders_loses_no_acknowledged_message(cluster, tmp_path, record_property):
    """RF=3, min.insync.replicas=2, an idempotent acks=all producer of
    numbered messages; the leader of a partition is killed with -9 every
    few seconds and restarted. Every acknowledged message is read back
    exactly once, at the offset it was acknowledged at, in order."""
    topic = unique_topic("chaos")
    partitions = 3
    create(cluster.bootstrap(), topic, partitions)
    history = History(tmp_path / "history.jsonl")
    stop = threading.Event()
    p = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all",
                  "enable.idempotence": True, "linger.ms": 2,
                  "message.timeout.ms": 120000, "retry.backoff.ms": 50})

    def on_delivery(err, m):
        v = int(m.value())
        if err is None:
            history.add(op="ack", value=v, p=m.partition(), offset=m.offset())
        else:
            history.add(op="fail", value=v, p=m.partition(), error=str(err))

    def produce():
        n = 0
        while not stop.is_set():
            key = str(n % 64).encode()
            history.add(op="send", value=n)
            p.produce(topic, str(n).encode(), key=key, on_delivery=on_delivery)
            n += 1
            p.poll(0)
            time.sleep(0.002)
        p.flush(150)

    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    kills = []
    rng = random.Random(15)
    try:
        time.sleep(2)
        for i in range(10):
            part = rng.randrange(partitions)
            state = wait_until("partition has a leader",
                               lambda: (s := partition_state(cluster.bootstrap(), topic))[part][0] > 0 and s)
            victim = state[part][0]
            t_kill = time.monotonic()
            cluster.nodes[victim].kill9()
            history.add(op="kill", node=victim, p=part)
            kills.append((t_kill, victim, part))
            time.sleep(3)
            cluster.nodes[victim].start(60)
            history.add(op="restart", node=victim)
            # Back in every ISR before the next kill, so that two kills
            # never take away a partition's last in-sync replicas.
            wait_until("every replica back in sync", lambda: all(
                len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap(), topic).values()),
                timeout=60)
    finally:
        stop.set()
        writer.join(180)
    assert not writer.is_alive(), "the producer did not finish"
    reads = read_everything(cluster.bootstrap(), topic, partitions)
    ok, lost, duplicated, misplaced, disorder = history.verdict(reads)
    # Failover: from each kill to the first acknowledgement on that
    # partition after it.
    acks = sorted((e["t"], e["p"]) for e in history.events if e["op"] == "ack")
    failovers = []
    for t_kill, _, part in kills:
        after = [t for t, p in acks if p == part and t > t_kill]
        if after:
            failovers.append(after[0] - t_kill)
    if failovers:
        print(f"failover (kill -9 to first ack on the partition), {len(failovers)} kills: "
              f"median {statistics.median(failovers):.2f}s, max {max(failovers):.2f}s")
        record_property("failover_median_s", round(statistics.median(failovers), 2))
        record_property("failover_max_s", round(max(failovers), 2))
    assert ok, (lost[:5], duplicated[:5], misplaced[:5], disorder[:5])
    assert len([e for e in history.events if e["op"] == "ack"]) > 1000


def test_a_frozen_follower_leaves_the_isr_and_rejoins(cluster):
    """SIGSTOP a follower: it leaves the ISR after the lag time, acks=all
    goes on with the other two; after SIGCONT it catches up and rejoins."""
    topic = unique_topic("freeze")
    create(cluster.bootstrap(), topic)
    leader, replicas, isr = partition_state(cluster.bootstrap(), topic)[0]
    assert isr == [1, 2, 3], isr
    follower = next(r for r in replicas if r != leader)
    cluster.nodes[follower].proc.send_signal(signal.SIGSTOP)
    try:
        wait_until("the frozen follower leaves the ISR", lambda: follower not in
                   partition_state(cluster.bootstrap(*[i for i in (1, 2, 3) if i != follower]),
                                   topic)[0][2], timeout=LAG_MS / 1000 + 15)
        live = cluster.bootstrap(*[i for i in (1, 2, 3) if i != follower])
        p = Producer({"bootstrap.servers": live, "acks": "all", "message.timeout.ms": 20000})
        errors = []
        for i in range(100):
            p.produce(topic, str(i).encode(), on_delivery=lambda e, m: errors.append(e))
        p.flush(30)
        assert errors == [None] * 100, errors[:3]
    finally:
        cluster.nodes[follower].proc.send_signal(signal.SIGCONT)
    wait_until("the follower rejoins the ISR", lambda:
               partition_state(cluster.bootstrap(), topic)[0][2] == [1, 2, 3], timeout=30)
    got = read_everything(cluster.bootstrap(), topic, 1)
    assert [v for _, _, v in got] == list(range(100))


def test_acks_all_needs_min_insync_replicas_and_loses_nothing(cluster):
    """Two of three replicas frozen: once they left the ISR, acks=all gets
    NOT_ENOUGH_REPLICAS (acks=1 still works); when they return, everything
    acknowledged is there. The frozen replicas are on two brokers that do
    not vote: freezing two of the three voters would stop the metadata
    quorum itself (as in KRaft), and with it every ISR change."""
    topic = led_by_a_voter_followed_by_two_brokers(cluster, "minisr")
    leader, replicas, _ = partition_state(cluster.bootstrap(), topic)[0]
    assert leader == 1
    followers = [4, 5]
    acked = []
    p = Producer({"bootstrap.servers": cluster.bootstrap(leader), "acks": "all",
                  "message.timeout.ms": 5000, "retries": 0})
    for i in range(50):
        p.produce(topic, str(i).encode(), on_delivery=lambda e, m: acked.append(e))
    p.flush(30)
    assert acked == [None] * 50
    for f in followers:
        cluster.nodes[f].proc.send_signal(signal.SIGSTOP)
    try:
        wait_until("the ISR is the leader alone", lambda:
                   partition_state(cluster.bootstrap(leader), topic)[0][2] == [leader],
                   timeout=LAG_MS / 1000 + 15)
        refused = []
        p.produce(topic, b"refused", on_delivery=lambda e, m: refused.append(e))
        p.flush(30)
        assert refused and refused[0] is not None, refused
        assert refused[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, refused[0]
        one = Producer({"bootstrap.servers": cluster.bootstrap(leader), "acks": 1})
        ok = []
        one.produce(topic, b"50", on_delivery=lambda e, m: ok.append(e))
        one.flush(30)
        assert ok == [None], ok
    finally:
        for f in followers:
            cluster.nodes[f].proc.send_signal(signal.SIGCONT)
    wait_until("both followers rejoin", lambda:
               partition_state(cluster.bootstrap(), topic)[0][2] == [1, 4, 5], timeout=30)
    got = [v for _, _, v in read_everything(cluster.bootstrap(), topic, 1)]
    assert got == list(range(51)), got


@pytest.fixture
def slow_lag_cluster(shardline_bin, tmp_path):
    """As `cluster`, with a lag time long enough to freeze followers, write
    and kill the leader before they leave the ISR."""
    yield from lag_cluster(shardline_bin, tmp_path, 8000)


def test_a_former_leader_truncates_its_divergent_tail(slow_lag_cluster):
    """The leader appends records no follower has (acks=1, followers
    frozen) and is killed; a follower takes over in a new epoch and gets
    other records at those offsets. The old leader comes back, finds with
    OffsetForLeaderEpoch where its log diverged, cuts the tail, and copies
    the new leader's records: once it leads again, it serves those."""
    cluster = slow_lag_cluster
    topic = led_by_a_voter_followed_by_two_brokers(cluster, "diverge")

    def send(bootstrap, values, acks):
        p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "message.timeout.ms": 30000})
        out = []
        for v in values:
            p.produce(topic, str(v).encode(), partition=0,
                      on_delivery=lambda e, m: out.append((e, m.offset())))
        p.flush(40)
        assert [e for e, _ in out] == [None] * len(values), out[:3]
        return [o for _, o in out]

    committed = send(cluster.bootstrap(1), range(10), "all")
    assert committed == list(range(10))
    for f in (4, 5):
        cluster.nodes[f].proc.send_signal(signal.SIGSTOP)
    try:
        # Fetches the followers had parked at the leader are answered
        # (empty) within their 500 ms wait; no new ones come.
        time.sleep(1.5)
        # The tail only the leader has: acknowledged at acks=1.
        tail = send(cluster.bootstrap(1), range(1000, 1005), 1)
        assert tail == list(range(10, 15))
        cluster.nodes[1].kill9()
    finally:
        for f in (4, 5):
            cluster.nodes[f].proc.send_signal(signal.SIGCONT)
    others = cluster.bootstrap(2, 3, 4, 5)
    wait_until("a follower leads", lambda: partition_state(others, topic)[0][0] in (4, 5),
               timeout=30)
    new = send(others, range(2000, 2008), "all")
    assert new == list(range(10, 18)), new
    cluster.nodes[1].start(60)
    wait_until("the old leader is back in sync", lambda:
               partition_state(cluster.bootstrap(), topic)[0][2] == [1, 4, 5], timeout=30)
    log = cluster.nodes[1].log_path.read_text()
    assert f"{topic}-0: truncated to offset 10" in log, log[-3000:]
    # It holds the new leader's records now: make it lead, and read.
    for f in (4, 5):
        cluster.nodes[f].kill9()
    wait_until("the old leader leads again",
               lambda: partition_state(cluster.bootstrap(1, 2, 3), topic)[0][0] == 1, timeout=30)
    got = [v for _, _, v in read_everything(cluster.bootstrap(1, 2, 3), topic, 1)]
    assert got == list(range(10)) + list(range(2000, 2008)), got


def test_deleted_records_stay_deleted_after_a_leader_change(cluster):
    """DeleteRecords on the leader moves the followers' log start too (from
    the fetch answers), so the next leader does not serve them again."""
    topic = unique_topic("delrec")
    create(cluster.bootstrap(), topic)
    p = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all"})
    for i in range(10):
        p.produce(topic, str(i).encode(), partition=0)
    p.flush(30)
    a = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    tp = TopicPartition(topic, 0, 6)
    a.delete_records([tp], request_timeout=30)[tp].result(30)
    leader = partition_state(cluster.bootstrap(), topic)[0][0]
    others = [i for i in (1, 2, 3) if i != leader]

    def low_watermark_on(node):
        c = Consumer({"bootstrap.servers": cluster.bootstrap(node), "group.id": "lw"})
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0]
        finally:
            c.close()
    # The followers' logs start at 6 once they fetched again (the log
    # start is checkpointed in the partition's directory).
    def log_start_of(node):
        f = cluster.nodes[node].data_dir / f"{topic}-0" / "log-start-offset"
        return int(f.read_text().strip()) if f.exists() else 0
    wait_until("the followers' logs start at 6",
               lambda: all(log_start_of(n) == 6 for n in others), timeout=20)
    cluster.nodes[leader].kill9()
    wait_until("another leader", lambda: partition_state(cluster.bootstrap(*others), topic)[0][0]
               in others, timeout=30)
    new_leader = partition_state(cluster.bootstrap(*others), topic)[0][0]
    assert low_watermark_on(new_leader) == 6
    got = [v for _, _, v in read_everything(cluster.bootstrap(*others), topic, 1)]
    assert got == [6, 7, 8, 9], got
