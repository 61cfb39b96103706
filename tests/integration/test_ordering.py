"""Partition order under pipelining: librdkafka keeps up to 5 Produce
requests in flight per connection, and Kafka appends them in request order.
With small segments the append lock is held across many segment rolls;
glommio's Semaphore let a newer request take the lock ahead of an older one
that was already waiting, so batches landed out of order (11-15 inverted
pairs in 40,000 messages per run before the fix). Each partition must hold
the values in exactly the order they were sent."""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import create_topic, produce_waiting, unique_topic

N = 20_000
PARTITIONS = 2  # with 2 shards, one partition is usually on another shard


def produce_in_order(bootstrap, topic, conf):
    p = Producer({"bootstrap.servers": bootstrap, "max.in.flight.requests.per.connection": 5,
                  "linger.ms": 0, "batch.num.messages": 20, **conf})
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(N):
        for part in range(PARTITIONS):
            produce_waiting(p, topic, value=b"%08d" % i + b"x" * 100, partition=part,
                            on_delivery=report)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:3]


def values_by_offset(bootstrap, topic, part):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"order-{topic}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, part, 0)])
    got = []
    deadline = time.time() + 60
    while len(got) < N and time.time() < deadline:
        for m in c.consume(1000, 1):
            if m.error() is None:
                got.append(int(m.value()[:8]))
    c.close()
    return got


@pytest.mark.parametrize("conf", [
    {"acks": "1", "enable.idempotence": False, "retries": 0},
    {"acks": "all", "enable.idempotence": True},
], ids=["acks1", "idempotent"])
def test_pipelined_produce_keeps_partition_order_across_rolls(bootstrap, conf):
    topic = unique_topic("order")
    create_topic(bootstrap, topic, partitions=PARTITIONS, config={"segment.bytes": "16384"})
    produce_in_order(bootstrap, topic, conf)
    for part in range(PARTITIONS):
        got = values_by_offset(bootstrap, topic, part)
        assert len(got) == N, f"partition {part}: {len(got)} of {N} messages"
        inverted = [(x, y) for x, y in zip(got, got[1:]) if y < x]
        assert not inverted, f"partition {part}: {len(inverted)} inversions, first {inverted[:3]}"
        assert got == list(range(N))
