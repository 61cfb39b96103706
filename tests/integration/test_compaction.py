"""Log compaction through a real broker: a compacted topic keeps the latest
value per key, offsets stay as they were, and keyless records are refused."""

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import consumer_conf, create_topic, unique_topic, watermarks


def read_to_end(bootstrap, topic, timeout=20):
    """Every message from offset 0 up to the high watermark (gaps allowed)."""
    _, hi = watermarks(bootstrap, topic)
    c = Consumer(consumer_conf(bootstrap))
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (not out or out[-1].offset() < hi - 1):
            for m in c.consume(num_messages=500, timeout=0.5):
                assert not m.error(), m.error()
                out.append(m)
    finally:
        c.close()
    assert out and out[-1].offset() == hi - 1, f"did not reach the end ({hi})"
    return out


def test_compacted_topic_keeps_latest_value_per_key(broker_factory):
    broker = broker_factory(extra_args=["--log-retention-check-interval-ms", "300"])
    topic = unique_topic("compact")
    create_topic(broker.bootstrap, topic, 1, config={"cleanup.policy": "compact", "segment.bytes": "16384"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 20})
    latest = {}
    for i in range(3000):
        key = f"key-{i % 10}".encode()
        value = f"value-{i}-".encode() + b"x" * 100
        latest[key] = value
        p.produce(topic, key=key, value=value)
        if i % 200 == 0:
            p.flush(10)
    assert p.flush(30) == 0

    # The cleaner runs in the background: wait until the log shrinks.
    deadline = time.monotonic() + 30
    while True:
        msgs = read_to_end(broker.bootstrap, topic)
        if len(msgs) < 1000 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(msgs) < 1000, f"nothing was compacted: {len(msgs)} messages remain"
    offsets = [m.offset() for m in msgs]
    assert offsets == sorted(set(offsets)), "offsets are unique and increasing"
    assert offsets[-1] == 2999, "the last offset is unchanged"
    last_seen = {}
    for m in msgs:
        last_seen[m.key()] = m.value()
    assert last_seen == latest, "the newest value of every key survives"
    # Each value names the offset it was written at: offsets did not move.
    for m in msgs:
        assert m.value().startswith(f"value-{m.offset()}-".encode())

    # After a restart the compacted log reads the same.
    broker.restart()
    again = read_to_end(broker.bootstrap, topic)
    assert [m.offset() for m in again][: len(offsets)] == offsets[: len(again)]


def test_keyless_records_are_refused_on_compacted_topics(broker):
    topic = unique_topic("compact-nokey")
    create_topic(broker.bootstrap, topic, 1, config={"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000})
    result = {}
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: result.setdefault("err", err))
    p.flush(15)
    assert result.get("err") is not None, "a keyless record was accepted"
    assert result["err"].code() == KafkaError.INVALID_RECORD, result["err"]
