"""KIP-392 across three Shardline processes in racks a, b and c: a leader
sends a consumer that names another rack (`client.rack`) to the in-sync
follower there, the follower serves it below its high watermark, and
`replica_selector = leader` turns the redirect off. Also the replication
metrics the brokers show on /metrics while an ISR shrinks and grows."""

import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, wait_until
from conftest import unique_topic

RACKS = {1: "a", 2: "b", 3: "c"}
FOLLOWER_FETCHES = "shardline_follower_fetch_requests_total"
REDIRECTS = "shardline_preferred_read_replica_redirects_total"


def rack_cluster(shardline_bin, tmp_path, *extra_args):
    c = Cluster(shardline_bin, tmp_path, racks=[RACKS[i] for i in (1, 2, 3)],
                extra_args=list(extra_args))
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


@pytest.fixture(scope="module")
def cluster(shardline_bin, tmp_path_factory):
    yield from rack_cluster(shardline_bin, tmp_path_factory.mktemp("racks"))


def partition_state(bootstrap, topic):
    """(leader, isr) of partition 0 as a broker's Metadata says."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    p = md.topics[topic].partitions[0]
    return p.leader, sorted(p.isrs)


def rf3_topic(cluster, prefix, min_isr=1):
    """An RF=3 topic of one partition, all three replicas in sync; returns
    (topic, leader, followers)."""
    topic = unique_topic(prefix)
    a = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    a.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": str(min_isr)})])[
        topic].result(30)
    wait_until("all three in sync", lambda: partition_state(cluster.bootstrap(), topic)[1] == [1, 2, 3])
    leader, _ = partition_state(cluster.bootstrap(), topic)
    return topic, leader, [n for n in (1, 2, 3) if n != leader]


def produce(bootstrap, topic, n, start=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failed = []
    for i in range(start, start + n):
        p.produce(topic, b"m%d" % i, partition=0,
                  on_delivery=lambda err, m: err and failed.append(err))
    assert p.flush(30) == 0
    assert not failed, failed


def counters(cluster, name):
    return {i: n.gauge(name) for i, n in cluster.nodes.items()}


def consume(bootstrap, topic, n, rack, timeout=60, **extra):
    """Read `n` records of partition 0 from offset 0 as a consumer in `rack`."""
    conf = {"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
            "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    if rack is not None:
        conf["client.rack"] = rack
    conf.update(extra)
    c = Consumer(conf)
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            got.append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def expected(n, start=0):
    return [(i, b"m%d" % i) for i in range(start, start + n)]


def test_a_consumer_reads_from_the_in_sync_follower_in_its_rack(cluster):
    topic, leader, followers = rf3_topic(cluster, "ff")
    follower = followers[0]
    produce(cluster.bootstrap(), topic, 200)
    fetches, redirects = counters(cluster, FOLLOWER_FETCHES), counters(cluster, REDIRECTS)
    got = consume(cluster.bootstrap(), topic, 200, RACKS[follower])
    assert got == expected(200)
    # The leader sent the consumer away, only the follower in its rack served it.
    assert cluster.nodes[leader].gauge(REDIRECTS) > redirects[leader]
    after = counters(cluster, FOLLOWER_FETCHES)
    assert after[follower] > fetches[follower], (fetches, after)
    assert after[followers[1]] == fetches[followers[1]], (fetches, after)
    assert after[leader] == fetches[leader]


def test_a_follower_wakes_a_waiting_consumer_when_its_high_watermark_moves(cluster):
    """The consumer, caught up on the follower, long-polls there for up to
    10 s; a record produced meanwhile reaches it as soon as the follower
    learns the leader's new high watermark, not at the end of the wait."""
    topic, leader, followers = rf3_topic(cluster, "ffwait")
    follower = followers[1]
    produce(cluster.bootstrap(), topic, 5)
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": unique_topic("g"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "client.rack": RACKS[follower], "fetch.wait.max.ms": 10000})
    fetches = cluster.nodes[follower].gauge(FOLLOWER_FETCHES)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.offset())
        assert got == list(range(5))
        assert cluster.nodes[follower].gauge(FOLLOWER_FETCHES) > fetches
        time.sleep(1)  # the consumer's next fetch is parked on the follower
        produce(cluster.bootstrap(), topic, 1, start=5)
        sent = time.monotonic()
        m = None
        while time.monotonic() - sent < 15:
            m = c.poll(0.2)
            if m is not None and not m.error():
                break
        waited = time.monotonic() - sent
        assert m is not None and m.offset() == 5 and m.value() == b"m5"
        assert waited < 5, f"the record came after {waited:.1f} s: the long poll was not woken"
    finally:
        c.close()


def test_a_consumer_in_no_replicas_rack_or_the_leaders_reads_from_the_leader(cluster):
    topic, leader, _ = rf3_topic(cluster, "ffnone")
    produce(cluster.bootstrap(), topic, 50)
    for rack in ("z", RACKS[leader], None):
        fetches, redirects = counters(cluster, FOLLOWER_FETCHES), counters(cluster, REDIRECTS)
        assert consume(cluster.bootstrap(), topic, 50, rack) == expected(50), rack
        assert counters(cluster, REDIRECTS) == redirects, rack
        assert counters(cluster, FOLLOWER_FETCHES) == fetches, rack


def test_a_java_consumer_reads_from_the_follower_in_its_rack(cluster, tmp_path):
    """Kafka's own consumer (4.x, through its console consumer) with
    `client.rack`: redirected by the leader, served by the follower."""
    from java import run_java
    topic, leader, followers = rf3_topic(cluster, "ffjava")
    follower = followers[0]
    produce(cluster.bootstrap(), topic, 30)
    fetches, redirects = counters(cluster, FOLLOWER_FETCHES), counters(cluster, REDIRECTS)
    conf = tmp_path / "log4j2.yaml"
    conf.write_text("Configuration:\n  Appenders:\n    Console: {name: STDERR, target: SYSTEM_ERR, "
                    "PatternLayout: {pattern: \"%p %m%n\"}}\n  Loggers:\n    Root: {level: WARN, "
                    "AppenderRef: [{ref: STDERR}]}\n")
    c = run_java("kafka-dist", "org.apache.kafka.tools.consumer.ConsoleConsumer",
                 ["--bootstrap-server", cluster.bootstrap(), "--topic", topic,
                  "--group", unique_topic("java-g"), "--from-beginning",
                  "--command-property", f"client.rack={RACKS[follower]}",
                  "--max-messages", 30, "--timeout-ms", 30000],
                 timeout=120, jvm_args=[f"-Dlog4j2.configurationFile={conf}"])
    assert c.stdout.split() == ["m%d" % i for i in range(30)]
    assert cluster.nodes[leader].gauge(REDIRECTS) > redirects[leader]
    assert cluster.nodes[follower].gauge(FOLLOWER_FETCHES) > fetches[follower]


def test_replication_metrics_follow_an_isr_shrink_and_expand(shardline_bin, tmp_path):
    """A follower frozen (SIGSTOP) while records arrive falls behind for
    longer than `replica_lag_time_max_ms` (500 ms here) and its leader
    takes it out of the ISR, before its session (3 s) would have it fenced:
    the leader counts the shrink and shows the partition under-replicated
    and under min.insync.replicas. Resumed, the follower catches up and
    rejoins, and the leader counts the expand. The frozen follower is not
    the active controller, so ISR changes still commit."""
    for cluster in rack_cluster(shardline_bin, tmp_path, "--replica-lag-time-max-ms", "500"):
        elections = sum(counters(cluster, "shardline_leader_elections_total").values())
        topic, leader, followers = rf3_topic(cluster, "ffisr", min_isr=3)
        assert sum(counters(cluster, "shardline_leader_elections_total").values()) >= elections + 1
        lead = cluster.nodes[leader]
        produce(cluster.bootstrap(), topic, 20)
        for f in followers:
            n = cluster.nodes[f]
            wait_until(f"node {f} caught up",
                       lambda n=n: n.gauge("shardline_replica_fetch_lag_messages") == 0)
            assert n.gauge("shardline_replica_fetch_lag_seconds") < 10
        controller = int(lead.gauge("shardline_active_controller"))
        follower = next(f for f in followers if f != controller)
        shrinks = lead.gauge("shardline_isr_shrinks_total")
        expands = lead.gauge("shardline_isr_expands_total")
        assert lead.gauge("shardline_under_replicated_partitions") == 0
        assert lead.gauge("shardline_under_min_isr_partitions") == 0
        p = Producer({"bootstrap.servers": lead.bootstrap, "acks": 1, "linger.ms": 0})
        frozen = cluster.nodes[follower]
        frozen.proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 2.5  # fenced after 3 s without heartbeats
            while time.monotonic() < deadline:
                p.produce(topic, b"x", partition=0)
                p.poll(0)
                if follower not in partition_state(lead.bootstrap, topic)[1]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the lagging follower stayed in the ISR for 2.5 s")
            # Counted once the proposal's answer is back, a moment after
            # the metadata shows it.
            wait_until("the shrink counted",
                       lambda: lead.gauge("shardline_isr_shrinks_total") > shrinks, timeout=5)
            assert lead.gauge("shardline_under_replicated_partitions") >= 1
            assert lead.gauge("shardline_under_min_isr_partitions") >= 1
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        assert p.flush(30) == 0
        wait_until("the follower back in the ISR",
                   lambda: partition_state(lead.bootstrap, topic)[1] == [1, 2, 3], timeout=60)
        wait_until("the expand counted", lambda: lead.gauge("shardline_isr_expands_total") > expands)
        assert lead.gauge("shardline_under_replicated_partitions") == 0
        assert lead.gauge("shardline_under_min_isr_partitions") == 0


def test_replica_selector_leader_never_redirects(shardline_bin, tmp_path):
    for c in rack_cluster(shardline_bin, tmp_path, "--replica-selector", "leader"):
        topic, leader, followers = rf3_topic(c, "ffleader")
        produce(c.bootstrap(), topic, 50)
        assert consume(c.bootstrap(), topic, 50, RACKS[followers[0]]) == expected(50)
        assert all(v == 0 for v in counters(c, REDIRECTS).values())
        assert all(v == 0 for v in counters(c, FOLLOWER_FETCHES).values())
