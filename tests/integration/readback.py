"""Reading a topic back whole, for the tests that judge what it holds
after failures (replication, transactions, Streams, the copier)."""

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

from conftest import unique_topic


def read_to_end(bootstrap, topic, partitions, isolation="read_uncommitted", timeout=60,
                config=None):
    """Every record of partitions 0..`partitions` of `topic` from offset 0
    up to each partition's end as it is when the read starts (the high
    watermark; for read_committed the last stable offset, so read after
    every transaction ended), with a consumer of `isolation` (plus
    `config`): the confluent-kafka messages, in the order read. Fails when
    a partition is not read to its end within `timeout` seconds."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("check"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "isolation.level": isolation,
                  **(config or {})})
    got = []
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= ends[m.partition()]:
                        done.add(m.partition())
                    continue
                raise AssertionError(m.error())
            got.append(m)
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    finally:
        c.close()
    assert len(done) == partitions, \
        f"{topic} ({isolation}): read {len(got)} records; partitions done {done} of {ends}"
    return got
