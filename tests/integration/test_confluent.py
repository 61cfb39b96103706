"""confluent-kafka (librdkafka) against Shardline: admin API, produce with
keys/headers/every codec, idempotent producer, offset lookups."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, ResourceType

from conftest import (
    admin_client,
    assert_delivered,
    consume,
    consumer_conf,
    create_topic,
    headers_of,
    produce,
    unique_topic,
    wait_for_topic,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# --------------------------------------------------------------------------
# Admin API
# --------------------------------------------------------------------------

def test_create_list_topics(bootstrap):
    topic = unique_topic("admin")
    admin = admin_client(bootstrap)
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=30)
    assert fs[topic].result(timeout=30) is None

    md = wait_for_topic(bootstrap, topic, 3)
    t = md.topics[topic]
    assert sorted(t.partitions) == [0, 1, 2]
    broker_ids = set(md.brokers)
    assert broker_ids, "metadata lists no brokers"
    for p in t.partitions.values():
        assert p.leader in broker_ids
        assert p.replicas == [p.leader]
        assert p.isrs == [p.leader]
    # The broker advertises its listen address.
    addrs = {(b.host, b.port) for b in md.brokers.values()}
    host, port = bootstrap.split(":")
    assert (host, int(port)) in addrs, addrs


def test_create_existing_topic_fails(bootstrap):
    topic = unique_topic("dup")
    create_topic(bootstrap, topic, 1)
    admin = admin_client(bootstrap)
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, ei.value


def test_create_partitions(bootstrap):
    topic = unique_topic("grow")
    create_topic(bootstrap, topic, 3)
    admin = admin_client(bootstrap)
    fs = admin.create_partitions([NewPartitions(topic, 5)], request_timeout=30)
    assert fs[topic].result(timeout=30) is None
    wait_for_topic(bootstrap, topic, 5)

    # The new partitions are usable.
    res = produce(bootstrap, topic, [{"value": b"p%d" % p, "partition": p} for p in range(5)])
    assert_delivered(res)
    assert [(r["partition"], r["offset"]) for r in res] == [(p, 0) for p in range(5)]
    for p in (3, 4):
        msgs = consume(bootstrap, topic, partition=p, expect=1)
        assert [m.value() for m in msgs] == [b"p%d" % p]


def test_describe_configs(bootstrap):
    topic = unique_topic("cfg")
    create_topic(bootstrap, topic, 1)
    admin = admin_client(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    fs = admin.describe_configs([res], request_timeout=30)
    configs = fs[res].result(timeout=30)
    assert "retention.ms" in configs, sorted(configs)
    assert configs["retention.ms"].value == "259200000"
    assert "cleanup.policy" in configs, sorted(configs)
    assert configs["cleanup.policy"].value == "delete"


def test_create_topic_with_config_override(bootstrap):
    topic = unique_topic("cfgover")
    create_topic(bootstrap, topic, 1, config={"retention.ms": "3600000"})
    admin = admin_client(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert configs["retention.ms"].value == "3600000"


def test_delete_topics(bootstrap):
    topic = unique_topic("del")
    create_topic(bootstrap, topic, 2)
    assert_delivered(produce(bootstrap, topic, [{"value": b"x"}]))
    admin = admin_client(bootstrap)
    fs = admin.delete_topics([topic], request_timeout=30)
    assert fs[topic].result(timeout=30) is None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        # list_topics() without a topic name does not trigger auto-creation.
        if topic not in admin.list_topics(timeout=10).topics:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{topic} still listed 15s after delete_topics")

    # Deleting it again reports UNKNOWN_TOPIC_OR_PARTITION.
    fs = admin.delete_topics([topic], request_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


# --------------------------------------------------------------------------
# Produce / consume
# --------------------------------------------------------------------------

def test_auto_create_on_produce(bootstrap):
    topic = unique_topic("auto")
    res = produce(bootstrap, topic, [{"value": b"hello", "key": b"k"}])
    assert_delivered(res)
    assert (res[0]["partition"], res[0]["offset"]) == (0, 0)
    md = wait_for_topic(bootstrap, topic, 1)  # default num.partitions=1
    assert len(md.topics[topic].partitions) == 1
    msgs = consume(bootstrap, topic, expect=1)
    assert (msgs[0].key(), msgs[0].value(), msgs[0].offset()) == (b"k", b"hello", 0)


def test_keyed_produce_with_headers_multi_partition(bootstrap):
    topic = unique_topic("keyed")
    create_topic(bootstrap, topic, 3)
    n = 90
    msgs = [
        {
            "key": b"key-%d" % (i % 17),
            "value": b"value-%d" % i,
            "headers": [("idx", str(i).encode()), ("kind", b"keyed"), ("dup", b"a"), ("dup", b"b")],
        }
        for i in range(n)
    ]
    res = produce(bootstrap, topic, msgs)
    assert_delivered(res)

    expected = {p: [] for p in range(3)}
    for m, r in zip(msgs, res):
        expected[r["partition"]].append((r["offset"], m["key"], m["value"], m["headers"]))
    assert sum(1 for p in expected if expected[p]) >= 2, "keys did not spread over partitions"
    for p in range(3):
        exp = sorted(expected[p])
        # offsets in each partition are dense from 0
        assert [e[0] for e in exp] == list(range(len(exp)))
        got = consume(bootstrap, topic, partition=p, expect=len(exp)) if exp else []
        assert [(m.offset(), m.key(), m.value(), headers_of(m)) for m in got] == exp
        for m in got:
            assert m.topic() == topic and m.partition() == p


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_roundtrip(bootstrap, codec):
    topic = unique_topic(f"codec-{codec}")
    n = 300
    msgs = []
    for i in range(n):
        msgs.append({
            "key": None if i % 10 == 0 else b"k%03d" % (i % 7),
            "value": (b"payload-%05d-" % i) * (1 + i % 20) if i % 50 != 1 else b"",
            "headers": [("codec", codec.encode()), ("i", b"%d" % i)] if i % 3 else None,
        })
    res = produce(bootstrap, topic, msgs, conf={"compression.type": codec, "linger.ms": 50, "batch.num.messages": 100})
    assert_delivered(res)
    assert [r["offset"] for r in res] == list(range(n))

    got = consume(bootstrap, topic, expect=n)
    assert len(got) == n, f"expected exactly {n} messages, got {len(got)}"
    for i, (m, g) in enumerate(zip(msgs, got)):
        assert g.offset() == i
        assert g.key() == m["key"], i
        assert g.value() == m["value"], i
        assert headers_of(g) == (m["headers"] or []), i

    # Consuming from the middle of a (compressed) batch starts at the exact offset.
    mid = consume(bootstrap, topic, start=157, expect=n - 157)
    assert [m.offset() for m in mid] == list(range(157, n))
    assert mid[0].value() == msgs[157]["value"]


def test_large_batches_and_big_values(bootstrap):
    topic = unique_topic("big")
    vals = [bytes([i % 251]) * (200_000 + i) for i in range(8)]  # ~1.6 MB total
    res = produce(bootstrap, topic, [{"value": v} for v in vals], conf={"linger.ms": 20})
    assert_delivered(res)
    got = consume(bootstrap, topic, expect=len(vals))
    assert [m.value() for m in got] == vals


def test_idempotent_producer_exactly_once_in_order(bootstrap):
    topic = unique_topic("idem")
    n = 2000
    res = produce(
        bootstrap,
        topic,
        [{"value": b"%06d" % i, "key": b"k"} for i in range(n)],
        conf={
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 2,
            "batch.num.messages": 50,
        },
    )
    assert_delivered(res)
    assert [r["offset"] for r in res] == list(range(n))
    got = consume(bootstrap, topic, expect=n, drain_s=2.0)
    assert [m.value() for m in got] == [b"%06d" % i for i in range(n)]
    assert [m.offset() for m in got] == list(range(n))


def test_watermarks_and_offsets_for_times(bootstrap):
    topic = unique_topic("times")
    base = int(time.time() * 1000) - 60_000
    n = 20
    # One batch (linger) with per-message timestamps 1 s apart.
    res = produce(
        bootstrap,
        topic,
        [{"value": b"m%d" % i, "timestamp": base + i * 1000} for i in range(n)],
        conf={"linger.ms": 100},
    )
    assert_delivered(res)

    c = Consumer(consumer_conf(bootstrap))
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert (lo, hi) == (0, n)

        def lookup(ts):
            r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert r[0].error is None, r[0].error
            return r[0].offset

        assert lookup(base - 10_000) == 0
        assert lookup(base) == 0
        assert lookup(base + 1) == 1
        assert lookup(base + 7_000) == 7
        assert lookup(base + 7_500) == 8
        assert lookup(base + (n - 1) * 1000) == n - 1
        # Nothing at/after this timestamp -> -1 (OFFSET_END)
        assert lookup(base + n * 1000 + 3_600_000) == -1
    finally:
        c.close()

    got = consume(bootstrap, topic, expect=n)
    assert [m.timestamp()[1] for m in got] == [base + i * 1000 for i in range(n)]


def test_consume_beyond_end_then_new_data(bootstrap):
    """A consumer positioned at the high watermark long-polls and receives
    data produced afterwards."""
    topic = unique_topic("tail")
    assert_delivered(produce(bootstrap, topic, [{"value": b"first"}]))
    c = Consumer(consumer_conf(bootstrap, **{"fetch.wait.max.ms": 500}))
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        early = c.consume(num_messages=10, timeout=1.5)
        assert [m for m in early if not m.error()] == []
        assert_delivered(produce(bootstrap, topic, [{"value": b"second"}]))
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = [m for m in c.consume(num_messages=10, timeout=0.5) if not m.error()]
        assert [(m.offset(), m.value()) for m in got] == [(1, b"second")]
    finally:
        c.close()


def test_fetch_out_of_range_offset_is_reported(bootstrap):
    topic = unique_topic("oor")
    assert_delivered(produce(bootstrap, topic, [{"value": b"a"}, {"value": b"b"}]))
    c = Consumer(consumer_conf(bootstrap))  # auto.offset.reset=error
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            for m in c.consume(num_messages=10, timeout=0.5):
                if m.error():
                    err = m.error()
                else:
                    pytest.fail(f"got a message at offset {m.offset()} beyond the end")
        assert err is not None, "no error for offset 1000 on a 2-message partition"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()
