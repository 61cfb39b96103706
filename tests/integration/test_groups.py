"""Consumer groups and committed offsets with real clients: confluent-kafka
(librdkafka) subscribe() groups, kafka-python (modern and 0.10.1 protocol),
kafkajs; static membership; offsets surviving kill -9."""

import json
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (
    Broker,
    REPO_ROOT,
    assert_delivered,
    create_topic,
    poll_until,
    produce,
    unique_topic,
)

DELAY_ARGS = ["--group-initial-rebalance-delay-ms", "100"]


@pytest.fixture(scope="module")
def gbroker(shardline_bin, tmp_path_factory):
    """A broker with a short initial rebalance delay (tests would otherwise
    wait Kafka's 3 s before every group's first rebalance)."""
    base = tmp_path_factory.mktemp("broker-groups")
    b = Broker(shardline_bin, base / "data", base / "broker.log", extra_args=DELAY_ARGS,
               name="test_groups")
    try:
        b.start()
        yield b
    finally:
        b.close()


def gid(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def group_consumer(bootstrap, group, **extra):
    from confluent_kafka import Consumer
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return Consumer(conf)


def fill(bootstrap, topic, partitions, n):
    create_topic(bootstrap, topic, partitions=partitions)
    res = produce(bootstrap, topic, [{"value": f"m{i}".encode(), "partition": i % partitions}
                                     for i in range(n)])
    assert_delivered(res)
    return {f"m{i}" for i in range(n)}


class Tracker:
    """Records assignment/revocation callbacks of one confluent consumer."""

    def __init__(self, name):
        self.name = name
        self.assigned = []
        self.revoked = []
        self.events = []

    def on_assign(self, consumer, parts):
        self.assigned = sorted(p.partition for p in parts)
        self.events.append(("assign", time.monotonic(), list(self.assigned)))

    def on_revoke(self, consumer, parts):
        self.revoked.append(sorted(p.partition for p in parts))
        self.events.append(("revoke", time.monotonic(), sorted(p.partition for p in parts)))


def test_two_consumers_split_partitions_and_read_each_message_once(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("split")
    create_topic(bs, topic, partitions=4)
    group = gid()
    t1, t2 = Tracker("c1"), Tracker("c2")
    c1 = group_consumer(bs, group)
    c2 = group_consumer(bs, group)
    got = []
    try:
        c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke)
        assert poll_until([c1], lambda: len(t1.assigned) == 4), "c1 never got 4 partitions"
        start = time.monotonic()
        c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke)
        assert poll_until([c1, c2], lambda: len(t1.assigned) == 2 and len(t2.assigned) == 2), \
            f"no 2+2 split: c1={t1.assigned} c2={t2.assigned}"
        rebalance_s = time.monotonic() - start
        print(f"\nREBALANCE: second member subscribe -> both assigned in {rebalance_s * 1000:.0f} ms")
        assert sorted(t1.assigned + t2.assigned) == [0, 1, 2, 3]
        res = produce(bs, topic, [{"value": f"m{i}".encode(), "partition": i % 4} for i in range(400)])
        assert_delivered(res)
        assert poll_until([c1, c2], lambda: len(got) >= 400, sink=got)
        poll_until([c1, c2], lambda: False, timeout=1.0, sink=got)
        values = [m.value().decode() for _, m in got]
        assert sorted(values) == sorted(f"m{i}" for i in range(400)), "missing or duplicate messages"
        by_consumer = {id(c): {m.partition() for cc, m in got if cc is c} for c in (c1, c2)}
        assert by_consumer[id(c1)] == set(t1.assigned)
        assert by_consumer[id(c2)] == set(t2.assigned)
    finally:
        c1.close()
        c2.close()


def test_exactly_once_split_when_both_start_together(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("together")
    want = fill(bs, topic, 4, 400)
    group = gid()
    trackers = [Tracker("a"), Tracker("b")]
    cs = [group_consumer(bs, group) for _ in trackers]
    got = []
    try:
        for c, t in zip(cs, trackers):
            c.subscribe([topic], on_assign=t.on_assign, on_revoke=t.on_revoke)
        assert poll_until(cs, lambda: len({m.value() for _, m in got}) >= 400
                          and all(len(t.assigned) == 2 for t in trackers), sink=got)
        poll_until(cs, lambda: False, timeout=1.0, sink=got)
        values = [m.value().decode() for _, m in got]
        assert set(values) == want
        assert len(values) == len(want), "some message was read twice"
        assert sorted(trackers[0].assigned + trackers[1].assigned) == [0, 1, 2, 3]
    finally:
        for c in cs:
            c.close()


def test_leaving_member_hands_partitions_over(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("leave")
    fill(bs, topic, 4, 40)
    group = gid()
    t1, t2 = Tracker("c1"), Tracker("c2")
    c1, c2 = group_consumer(bs, group), group_consumer(bs, group)
    try:
        c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke)
        c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke)
        assert poll_until([c1, c2], lambda: len(t1.assigned) == 2 and len(t2.assigned) == 2)
        c2.close()
        c2 = None
        assert poll_until([c1], lambda: t1.assigned == [0, 1, 2, 3]), f"c1 has {t1.assigned}"
    finally:
        c1.close()
        if c2 is not None:
            c2.close()


def test_commit_then_new_consumer_resumes(gbroker):
    from confluent_kafka import TopicPartition
    bs = gbroker.bootstrap
    topic = unique_topic("resume")
    fill(bs, topic, 1, 100)
    group = gid()
    c = group_consumer(bs, group)
    got = []
    try:
        c.subscribe([topic])
        assert poll_until([c], lambda: len(got) >= 30, sink=got)
        last = got[29][1]
        c.commit(offsets=[TopicPartition(topic, 0, last.offset() + 1)], asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == last.offset() + 1
    finally:
        c.close()
    c = group_consumer(bs, group)
    got2 = []
    try:
        c.subscribe([topic])
        assert poll_until([c], lambda: len(got2) >= 70, sink=got2)
        assert got2[0][1].offset() == 30
        assert [m.value().decode() for _, m in got2[:70]] == [f"m{i}" for i in range(30, 100)]
    finally:
        c.close()


def test_static_member_rejoins_without_rebalance(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("static")
    fill(bs, topic, 4, 20)
    group = gid()
    extra = {"session.timeout.ms": 10000}
    ta, tb = Tracker("a"), Tracker("b")
    a = group_consumer(bs, group, **{"group.instance.id": "inst-a"}, **extra)
    b = group_consumer(bs, group, **{"group.instance.id": "inst-b"}, **extra)
    try:
        a.subscribe([topic], on_assign=ta.on_assign, on_revoke=ta.on_revoke)
        b.subscribe([topic], on_assign=tb.on_assign, on_revoke=tb.on_revoke)
        assert poll_until([a, b], lambda: len(ta.assigned) == 2 and len(tb.assigned) == 2)
        before_a = list(ta.assigned)
        gen_before = a.consumer_group_metadata()
        # A static member's close does not leave the group (KIP-345) ...
        b.close()
        b = None
        tb2 = Tracker("b2")
        b = group_consumer(bs, group, **{"group.instance.id": "inst-b"}, **extra)
        b.subscribe([topic], on_assign=tb2.on_assign, on_revoke=tb2.on_revoke)
        # ... and its restart gets the old assignment back with no rebalance.
        assert poll_until([a, b], lambda: len(tb2.assigned) == 2, timeout=20)
        poll_until([a, b], lambda: False, timeout=2.0)
        assert sorted(tb2.assigned + ta.assigned) == [0, 1, 2, 3]
        assert ta.assigned == before_a
        assert ta.revoked == [], f"a saw a revocation: {ta.revoked}"
        assert gen_before is not None
    finally:
        a.close()
        if b is not None:
            b.close()


def test_two_groups_each_read_everything(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("broadcast")
    want = fill(bs, topic, 2, 100)
    cs = [group_consumer(bs, gid("bc")) for _ in range(2)]
    gots = [[], []]
    try:
        for c in cs:
            c.subscribe([topic])
        for c, g in zip(cs, gots):
            assert poll_until([c], lambda: len(g) >= 100, sink=g)
        for g in gots:
            assert {m.value().decode() for _, m in g} == want
    finally:
        for c in cs:
            c.close()


def test_group_admin_list_describe_delete(gbroker):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient
    bs = gbroker.bootstrap
    topic = unique_topic("admin")
    fill(bs, topic, 1, 5)
    group = gid()
    c = group_consumer(bs, group)
    try:
        c.subscribe([topic])
        assert poll_until([c], lambda: bool(c.assignment()))
        c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
        admin = AdminClient({"bootstrap.servers": bs})
        listed = admin.list_consumer_groups().result(timeout=10)
        assert group in {g.group_id for g in listed.valid}
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert len(desc.members) == 1
        offs = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
        assert [(tp.topic, tp.partition, tp.offset) for tp in offs.topic_partitions] == [(topic, 0, 3)]
    finally:
        c.close()
    res = admin.delete_consumer_groups([group], request_timeout=10)
    res[group].result(timeout=10)
    listed = admin.list_consumer_groups().result(timeout=10)
    assert group not in {g.group_id for g in listed.valid}


def kafka_python_group_read(bs, topic, group, n, **extra):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=20000, **extra)
    got = []
    try:
        for m in c:
            got.append(m.value.decode())
            if len(got) >= n:
                break
        c.commit()
        committed = c.committed(TopicPartition(topic, 0))
    finally:
        c.close()
    return got, committed


@pytest.mark.parametrize("extra", [{}, {"api_version": (0, 10, 1)}], ids=["modern", "v0.10.1"])
def test_kafka_python_group_consumer(gbroker, extra):
    bs = gbroker.bootstrap
    topic = unique_topic("kp")
    want = fill(bs, topic, 1, 50)
    group = gid("kp")
    got, committed = kafka_python_group_read(bs, topic, group, 50, **extra)
    assert set(got) == want
    assert committed == 50
    # A second consumer of the group has nothing left to read.
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=3000, **extra)
    try:
        assert [m for m in c] == []
    finally:
        c.close()


def test_kafkajs_group_consumer(gbroker):
    bs = gbroker.bootstrap
    topic = unique_topic("kjs")
    want = fill(bs, topic, 2, 60)
    script = REPO_ROOT / "tests" / "js" / "group_consume.js"
    out = subprocess.run(["node", str(script), bs, topic, gid("kjs"), "60"],
                         capture_output=True, text=True, timeout=120,
                         cwd=str(REPO_ROOT / "tests" / "js"))
    assert out.returncode == 0, f"kafkajs failed:\n{out.stderr[-3000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["values"]) == want
    assert len(result["values"]) == 60


def test_acknowledged_commits_survive_kill9(broker_factory):
    from confluent_kafka import Consumer, TopicPartition
    b = broker_factory(extra_args=DELAY_ARGS)
    topic = unique_topic("k9")
    create_topic(b.bootstrap, topic, partitions=2)
    group = gid("k9")
    acked = {0: -1, 1: -1}
    stop = threading.Event()
    errors = []

    def committer():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "socket.timeout.ms": 2000,
                      "reconnect.backoff.max.ms": 100})
        try:
            i = 0
            while not stop.is_set():
                i += 1
                p = i % 2
                try:
                    c.commit(offsets=[TopicPartition(topic, p, i)], asynchronous=False)
                    acked[p] = max(acked[p], i)
                except Exception as e:  # the broker died under us
                    errors.append(e)
                    return
        finally:
            c.close()

    # Daemon, so a client stuck in a synchronous commit can never keep the
    # test process alive; the restart below lets an in-flight commit finish.
    t = threading.Thread(target=committer, daemon=True)
    t.start()
    time.sleep(1.5)
    b.kill9()
    stop.set()
    b.restart()
    t.join(timeout=60)
    assert not t.is_alive(), "the committing consumer never returned"
    assert acked[0] > 0 and acked[1] > 0, f"no commits acknowledged: {acked} {errors}"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    finally:
        c.close()
    by_p = {tp.partition: tp.offset for tp in got}
    print(f"\nkill -9: acknowledged {acked}, after restart {by_p}")
    for p in (0, 1):
        assert by_p[p] >= acked[p], f"partition {p}: committed {by_p[p]} < acknowledged {acked[p]}"


def test_cooperative_sticky_rebalance_keeps_partitions_and_reads_everything(gbroker):
    """KIP-429: with cooperative-sticky the first member keeps two of its
    partitions through the rebalance (only the moved ones are revoked), and
    the group still reads every message."""
    bs = gbroker.bootstrap
    topic = unique_topic("coop")
    want = fill(bs, topic, 4, 400)
    group = gid()
    coop = {"partition.assignment.strategy": "cooperative-sticky"}
    revoked = []
    c1 = group_consumer(bs, group, **coop)
    c2 = group_consumer(bs, group, **coop)
    got = []

    def owned(c):
        return sorted(tp.partition for tp in c.assignment())

    try:
        c1.subscribe([topic], on_revoke=lambda c, parts: revoked.extend(p.partition for p in parts))
        assert poll_until([c1], lambda: len(owned(c1)) == 4), "c1 never got 4 partitions"
        c2.subscribe([topic])
        assert poll_until([c1, c2], lambda: len(owned(c1)) == 2 and len(owned(c2)) == 2, sink=got), \
            f"no 2+2 split: c1={owned(c1)} c2={owned(c2)}"
        assert sorted(owned(c1) + owned(c2)) == [0, 1, 2, 3]
        assert sorted(revoked) == owned(c2), "only the partitions that moved were revoked"
        assert poll_until([c1, c2], lambda: len({m.value() for _, m in got}) >= 400, sink=got)
        values = [m.value().decode() for _, m in got]
        assert set(values) == want
    finally:
        c1.close()
        c2.close()


def test_session_timeout_outside_the_broker_bounds_is_refused(gbroker):
    """Kafka's group.min.session.timeout.ms (6 s by default): a member asking
    for 1 s gets INVALID_SESSION_TIMEOUT and never an assignment."""
    from confluent_kafka import KafkaError
    bs = gbroker.bootstrap
    topic = unique_topic("short-session")
    fill(bs, topic, 1, 1)
    errors = []
    c = group_consumer(bs, gid(), **{"session.timeout.ms": 1000, "heartbeat.interval.ms": 100,
                                     "error_cb": errors.append})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and m.error():
                errors.append(m.error())
            if any(e.code() == KafkaError.INVALID_SESSION_TIMEOUT for e in errors):
                break
        assert any(e.code() == KafkaError.INVALID_SESSION_TIMEOUT for e in errors), errors
        assert not c.assignment()
    finally:
        c.close()
