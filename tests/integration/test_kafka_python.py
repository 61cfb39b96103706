"""kafka-python against Shardline: a modern client (ApiVersions negotiated,
record batch v2) and a client pinned to api_version=(0, 10, 1), which speaks
Produce v2 / Fetch v3 with magic-1 message sets; plus cross-reading between
old and new clients."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import assert_delivered, consume, create_topic, headers_of, produce, unique_topic

OLD = (0, 10, 1)


def kp_producer(bootstrap, api_version=None, **kw):
    conf = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=10,
        request_timeout_ms=15000,
        max_block_ms=30000,
    )
    if api_version is not None:
        conf["api_version"] = api_version
    conf.update(kw)
    return KafkaProducer(**conf)


def kp_send_all(producer, topic, records, timeout=30):
    futs = []
    for r in records:
        futs.append(producer.send(topic, **r))
    producer.flush(timeout=timeout)
    return [f.get(timeout=timeout) for f in futs]


def kp_consume(bootstrap, topic, expect, partition=0, api_version=None, timeout=30, drain_s=1.0):
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=100,
        request_timeout_ms=15000,
    )
    if api_version is not None:
        conf["api_version"] = api_version
    c = KafkaConsumer(**conf)
    out = []
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        drain_end = time.monotonic() + drain_s
        while time.monotonic() < drain_end:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(recs)
    finally:
        c.close()
    assert len(out) >= expect, f"kafka-python consumed {len(out)}/{expect} from {topic}[{partition}]"
    return out


def norm_headers(hs):
    return [(k, bytes(v)) for k, v in (hs or [])]


# --------------------------------------------------------------------------

@pytest.mark.parametrize("codec", [None, "gzip"])
def test_modern_produce_consume(bootstrap, codec):
    topic = unique_topic("kp-modern")
    n = 60
    recs = [
        {
            "key": b"key-%d" % i,
            "value": b"value-%d" % i * (1 + i % 5),
            "headers": [("i", b"%d" % i), ("src", b"kafka-python")],
        }
        for i in range(n)
    ]
    p = kp_producer(bootstrap, compression_type=codec)
    try:
        md = kp_send_all(p, topic, recs)
    finally:
        p.close(timeout=10)
    assert [(m.partition, m.offset) for m in md] == [(0, i) for i in range(n)]

    got = kp_consume(bootstrap, topic, n)
    assert [(r.offset, r.key, r.value, norm_headers(r.headers)) for r in got] == [
        (i, r["key"], r["value"], r["headers"]) for i, r in enumerate(recs)
    ]


def test_modern_multi_partition_seek(bootstrap):
    topic = unique_topic("kp-parts")
    create_topic(bootstrap, topic, 3)
    p = kp_producer(bootstrap)
    try:
        md = kp_send_all(p, topic, [{"value": b"p%d-%d" % (i % 3, i // 3), "partition": i % 3} for i in range(30)])
    finally:
        p.close(timeout=10)
    assert sorted((m.partition, m.offset) for m in md) == sorted((pp, o) for pp in range(3) for o in range(10))
    for part in range(3):
        got = kp_consume(bootstrap, topic, 10, partition=part)
        assert [r.value for r in got] == [b"p%d-%d" % (part, j) for j in range(10)]


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_v010_client_produce_consume(bootstrap, codec):
    """Magic-1 message sets (Produce v2) round-trip through an old consumer."""
    topic = unique_topic("kp-old")
    n = 50
    base = int(time.time() * 1000) - 30_000
    recs = [
        {"key": (b"k%d" % i) if i % 4 else None, "value": b"old-value-%03d" % i * 3, "timestamp_ms": base + i}
        for i in range(n)
    ]
    p = kp_producer(bootstrap, api_version=OLD, compression_type=codec, linger_ms=50)
    try:
        md = kp_send_all(p, topic, recs)
    finally:
        p.close(timeout=10)
    assert [(m.partition, m.offset) for m in md] == [(0, i) for i in range(n)]

    got = kp_consume(bootstrap, topic, n, api_version=OLD)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in got] == [
        (i, r["key"], r["value"], r["timestamp_ms"]) for i, r in enumerate(recs)
    ]


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_v010_client_reads_confluent_written(bootstrap, codec):
    """v2 record batches written by librdkafka must be served to a Fetch v3
    client as magic-1 messages (headers are dropped: not representable)."""
    topic = unique_topic("kp-down")
    n = 40
    base = int(time.time() * 1000) - 10_000
    msgs = [
        {"key": b"ck%d" % i, "value": b"confluent-%d" % i * 4, "headers": [("h", b"%d" % i)], "timestamp": base + i * 10}
        for i in range(n)
    ]
    res = produce(bootstrap, topic, msgs, conf={"compression.type": codec, "linger.ms": 50})
    assert_delivered(res)
    assert [r["offset"] for r in res] == list(range(n))

    got = kp_consume(bootstrap, topic, n, api_version=OLD)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in got] == [
        (i, m["key"], m["value"], m["timestamp"]) for i, m in enumerate(msgs)
    ]
    assert all(not r.headers for r in got), "magic-1 messages cannot carry headers"

    # Reading from the middle of a batch with the old client.
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      api_version=OLD, fetch_max_wait_ms=100, auto_offset_reset="none")
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 25)
        out = []
        deadline = time.monotonic() + 20
        while len(out) < n - 25 and time.monotonic() < deadline:
            for rs in c.poll(timeout_ms=500).values():
                out.extend(rs)
    finally:
        c.close()
    assert [r.offset for r in out] == list(range(25, n))


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_modern_clients_read_v010_written(bootstrap, codec):
    topic = unique_topic("kp-up")
    n = 40
    base = int(time.time() * 1000) - 20_000
    recs = [{"key": b"ok%d" % i, "value": b"from-0.10-%d" % i, "timestamp_ms": base + i * 100} for i in range(n)]
    p = kp_producer(bootstrap, api_version=OLD, compression_type=codec, linger_ms=50)
    try:
        md = kp_send_all(p, topic, recs)
    finally:
        p.close(timeout=10)
    assert [m.offset for m in md] == list(range(n))

    # confluent-kafka (Fetch v11+)
    got = consume(bootstrap, topic, expect=n)
    assert [(m.offset(), m.key(), m.value(), m.timestamp(), headers_of(m)) for m in got] == [
        (i, r["key"], r["value"], (TIMESTAMP_CREATE_TIME, r["timestamp_ms"]), []) for i, r in enumerate(recs)
    ]
    # modern kafka-python
    got2 = kp_consume(bootstrap, topic, n)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in got2] == [
        (i, r["key"], r["value"], r["timestamp_ms"]) for i, r in enumerate(recs)
    ]

    # Old and new producers interleaved on one partition keep dense offsets.
    res = produce(bootstrap, topic, [{"value": b"new-%d" % i} for i in range(5)])
    assert_delivered(res)
    assert [r["offset"] for r in res] == list(range(n, n + 5))
    tail = kp_consume(bootstrap, topic, n + 5, api_version=OLD)
    assert [r.value for r in tail[n:]] == [b"new-%d" % i for i in range(5)]
