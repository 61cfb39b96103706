"""Replay and backlog discarding through the AdminClient, as a Kafka user
would do it: alter a group's committed offsets to the earliest offset, to the
latest (discard the backlog), and to a point in time found with ListOffsets;
then a consumer of the group starts exactly there."""

import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import OffsetSpec

from conftest import admin_client, consumer_conf, create_topic, produce, unique_topic, assert_delivered


def committed(admin, group, topic, partitions):
    fut = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
    )[group]
    return {tp.partition: tp.offset for tp in fut.result(timeout=15).topic_partitions}


def alter(admin, group, topic, offsets):
    tps = [TopicPartition(topic, p, o) for p, o in offsets.items()]
    fut = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
    result = fut.result(timeout=15)
    for tp in result.topic_partitions:
        assert tp.error is None, tp.error


def list_offsets(admin, topic, partitions, spec):
    futs = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions})
    return {tp.partition: f.result(timeout=15).offset for tp, f in futs.items()}


def first_offsets_read(bootstrap, group, topic, partitions):
    """Subscribe with the group and return the first offset read per partition."""
    c = Consumer(consumer_conf(bootstrap, **{"group.id": group, "enable.auto.commit": False}))
    first = {}
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(first) < len(partitions) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            first.setdefault(m.partition(), m.offset())
    finally:
        c.close()
    return first


def test_admin_client_resets_to_earliest_latest_and_time(broker):
    topic = unique_topic("replay")
    group = unique_topic("replay-group")
    create_topic(broker.bootstrap, topic, 2)
    t0 = int(time.time() * 1000) - 3_600_000
    msgs = []
    for p in (0, 1):
        for i in range(20):
            ts = t0 + (0 if i < 10 else 60_000) + i
            msgs.append({"partition": p, "value": f"{p}-{i}".encode(), "timestamp": ts})
    assert_delivered(produce(broker.bootstrap, topic, msgs))

    admin = admin_client(broker.bootstrap)
    alter(admin, group, topic, {0: 15, 1: 15})
    assert committed(admin, group, topic, [0, 1]) == {0: 15, 1: 15}

    earliest = list_offsets(admin, topic, [0, 1], OffsetSpec.earliest())
    alter(admin, group, topic, earliest)
    assert committed(admin, group, topic, [0, 1]) == {0: 0, 1: 0}

    latest = list_offsets(admin, topic, [0, 1], OffsetSpec.latest())
    assert latest == {0: 20, 1: 20}
    alter(admin, group, topic, latest)  # discard the backlog
    assert committed(admin, group, topic, [0, 1]) == {0: 20, 1: 20}

    at_time = list_offsets(admin, topic, [0, 1], OffsetSpec.for_timestamp(t0 + 60_000))
    assert at_time == {0: 10, 1: 10}, "the first record at or after the time"
    alter(admin, group, topic, at_time)
    assert committed(admin, group, topic, [0, 1]) == {0: 10, 1: 10}

    # A consumer of the group replays from exactly there.
    assert first_offsets_read(broker.bootstrap, group, topic, [0, 1]) == {0: 10, 1: 10}
