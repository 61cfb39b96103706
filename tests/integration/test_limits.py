"""The `limits` settings with real clients: `group_max_size` (Kafka's
group.max.size / group.consumer.max.size) and `max_pending_fetch_waits`.

What Kafka 4.4.0 answers (run with group.max.size=2 and
group.consumer.max.size=2, three confluent-kafka consumers of one group,
one after another): classic protocol, the third consumer's JoinGroup fails
with GROUP_MAX_SIZE_REACHED (81, "JoinGroup failed: Broker: Consumer group
has reached maximum size"), again at each retry, and the first two keep
all partitions; consumer protocol (KIP-848), the third's
ConsumerGroupHeartbeat fails with GROUP_MAX_SIZE_REACHED, which librdkafka
raises as a fatal error (_FATAL, "Consumer group has reached maximum
size"). Shardline must answer the same."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError

import raw
from conftest import create_topic, produce, unique_topic


def join_three(bootstrap, protocol):
    """Three consumers of one group join one after another; returns each
    one's errors and assigned partitions."""
    topic = unique_topic("gmax")
    create_topic(bootstrap, topic, partitions=4)
    group = unique_topic("gmax-group")
    errors = {i: [] for i in range(3)}
    consumers = []
    try:
        for i in range(3):
            conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                    "error_cb": (lambda i: lambda e: errors[i].append((e.code(), e.str())))(i)}
            if protocol == "consumer":
                conf["group.protocol"] = "consumer"
            else:
                conf["session.timeout.ms"] = 10000
            c = Consumer(conf)
            c.subscribe([topic])
            consumers.append(c)
            deadline = time.monotonic() + (8 if i < 2 else 10)
            while time.monotonic() < deadline:
                m = c.poll(0.2)
                for other in consumers[:-1]:
                    other.poll(0)
                if m is not None and m.error():
                    errors[i].append((m.error().code(), m.error().str()))
                if i < 2 and len(c.assignment()) > 0 and all(len(o.assignment()) > 0 for o in consumers):
                    break
        return errors, [sorted(p.partition for p in c.assignment()) for c in consumers]
    finally:
        for c in consumers:
            c.close()


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_group_max_size_refuses_the_member_beyond_it(broker_factory, protocol):
    b = broker_factory(extra_args=["--group-max-size", "2", "--group-initial-rebalance-delay-ms", "0"])
    errors, assigned = join_three(b.bootstrap, protocol)
    assert errors[0] == [] and errors[1] == [], errors
    assert sorted(assigned[0] + assigned[1]) == [0, 1, 2, 3], assigned
    assert assigned[2] == [], assigned
    third = " ".join(s for _, s in errors[2])
    assert "maximum size" in third, errors[2]
    if protocol == "classic":
        assert KafkaError.GROUP_MAX_SIZE_REACHED in [c for c, _ in errors[2]], errors[2]
    else:
        assert "ConsumerGroupHeartbeat" in third, errors[2]


def test_group_max_size_default_admits_many(broker_factory):
    """Without the limit, the third consumer gets partitions (the control)."""
    b = broker_factory(extra_args=["--group-initial-rebalance-delay-ms", "0"])
    errors, assigned = join_three(b.bootstrap, "classic")
    assert all(not e for e in errors.values()), errors
    assert sorted(sum(assigned, [])) == [0, 1, 2, 3], assigned


def timed_fetch(broker, topic, max_wait_ms, out, key):
    s = raw.connect(broker, timeout=30)
    try:
        t0 = time.monotonic()
        error, _hw, _batches = raw.fetch_batches(s, topic, 0, 0, max_wait_ms=max_wait_ms)
        out[key] = (error, time.monotonic() - t0)
    finally:
        s.close()


def test_max_pending_fetch_waits_answers_the_fetch_beyond_it_at_once(broker_factory):
    b = broker_factory(extra_args=["--shards", "1", "--max-pending-fetch-waits", "1"])
    topic = unique_topic("parked")
    create_topic(b.bootstrap, topic)
    out = {}
    first = threading.Thread(target=timed_fetch, args=(b, topic, 4000, out, "first"))
    first.start()
    time.sleep(1.0)  # the first Fetch is parked now
    timed_fetch(b, topic, 4000, out, "second")
    first.join(30)
    assert out["first"][0] == 0 and out["first"][1] >= 3.5, out
    assert out["second"][0] == 0 and out["second"][1] < 1.5, out
    # Once the first is answered its slot is free: a Fetch parks again.
    timed_fetch(b, topic, 1500, out, "third")
    assert out["third"][1] >= 1.2, out
    # And a real consumer still gets its records.
    produce(b.bootstrap, topic, [{"value": b"a"}, {"value": b"b"}])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_topic("pc"),
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 500})
    try:
        c.subscribe([topic])
        got, deadline = [], time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        assert got == [b"a", b"b"]
    finally:
        c.close()


def test_max_groups_refuses_a_new_group_beyond_it(broker_factory):
    """`max_groups` = 2 on a 2-shard broker: two groups (one with a member,
    one that only commits) fill it; a third group's JoinGroup (classic and
    KIP-848) and OffsetCommit get GROUP_MAX_SIZE_REACHED, the existing
    groups go on, and deleting one makes room again."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    b = broker_factory(extra_args=["--max-groups", "2", "--shards", "2",
                                   "--group-initial-rebalance-delay-ms", "0"])
    topic = unique_topic("maxg")
    create_topic(b.bootstrap, topic, partitions=2)
    produce(b.bootstrap, topic, [{"value": b"m%d" % i} for i in range(10)])

    def consumer(group, protocol="classic"):
        errors = []
        conf = {"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "error_cb": lambda e: errors.append((e.code(), e.str()))}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["session.timeout.ms"] = 10000
        return Consumer(conf), errors

    def first_message(c, errors, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error():
                errors.append((m.error().code(), m.error().str()))
            elif m is not None:
                return m
        return None

    member, member_errors = consumer("maxg-a")
    member.subscribe([topic])
    assert first_message(member, member_errors) is not None, member_errors
    committer, _ = consumer("maxg-b")
    committer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    try:
        # A third group, each way a client makes one.
        third, third_errors = consumer("maxg-c")
        third.subscribe([topic])
        assert first_message(third, third_errors, 6) is None
        assert KafkaError.GROUP_MAX_SIZE_REACHED in [c for c, _ in third_errors], third_errors
        third.close()
        kip848, kip848_errors = consumer("maxg-d", "consumer")
        kip848.subscribe([topic])
        assert first_message(kip848, kip848_errors, 6) is None
        # librdkafka shows the code's text, not the broker's message, and
        # (as for group_max_size) treats it as fatal.
        assert any("ConsumerGroupHeartbeat" in s and "maximum size" in s for _, s in kip848_errors), kip848_errors
        kip848.close()
        fourth, _ = consumer("maxg-e")
        with pytest.raises(Exception) as refused:
            fourth.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        assert "GROUP_MAX_SIZE_REACHED" in str(refused.value) or "maximum size" in str(refused.value)
        fourth.close()
        # The existing groups go on.
        committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        got = committer.committed([TopicPartition(topic, 0)], timeout=10)
        assert got[0].offset == 5
        member.commit(asynchronous=False)
        # Deleting a group makes room for a new one.
        committer.close()
        committer = None
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.delete_consumer_groups(["maxg-b"])["maxg-b"].result(timeout=10)
        again, again_errors = consumer("maxg-c")
        again.subscribe([topic])
        assert first_message(again, again_errors) is not None, again_errors
        again.close()
    finally:
        member.close()
        if committer is not None:
            committer.close()
