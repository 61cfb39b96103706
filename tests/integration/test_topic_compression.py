"""Topic `compression.type`: `producer` stores batches as produced; a codec
(`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`) makes the broker
recompress batches in any other codec, as Kafka does, keeping offsets,
producer id/epoch/sequence, timestamps, keys, values and headers; batches
already in the topic's codec are stored byte for byte. KIP-390 levels
(`compression.gzip.level`, ...) apply to the recompression.

What is stored is read back with a raw Fetch v11 (the codec bits of each
batch's attributes, the header fields) and with confluent-kafka (the
records, CRC-checked); one case runs against Apache Kafka 4.4.0 too."""

import struct

import pytest
from confluent_kafka import Consumer, Producer

from conftest import consumer_conf, create_topic, unique_topic
from raw import batch_codec, batch_records, connect, fetch_batches, produce_v8, record_batch

CODEC_ID = {"none": 0, "uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 20
TIMESTAMP = 1_700_000_000_000


class At:
    def __init__(self, bootstrap):
        self.port = int(bootstrap.rsplit(":", 1)[1])


def produce_batch(bootstrap, topic, codec, idempotent=True):
    """N records with keys, headers and explicit timestamps, lingered into
    one batch by confluent-kafka with `codec`."""
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 200,
                  "enable.idempotence": idempotent})
    errors = []
    for i in range(N):
        p.produce(topic, key=b"key-%d" % i, value=b"value %d " % i + b"x" * 200,
                  headers=[("h", b"%d" % i), ("empty", None)], timestamp=TIMESTAMP + i,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors


def stored_batches(bootstrap, topic):
    s = connect(At(bootstrap))
    try:
        err, hw, batches = fetch_batches(s, topic, 0, 0)
    finally:
        s.close()
    assert err == 0 and hw == N, (err, hw)
    return batches


def header(batch):
    """(base_offset, attributes, last_offset_delta, base_ts, max_ts,
    producer_id, producer_epoch, base_sequence, record_count)."""
    base, = struct.unpack(">q", batch[:8])
    return (base,) + struct.unpack(">hiqqqhii", batch[21:61])


def consumed(bootstrap, topic):
    c = Consumer(consumer_conf(bootstrap, **{"check.crcs": True}))
    from confluent_kafka import TopicPartition
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        while len(out) < N:
            m = c.poll(10)
            assert m is not None, f"only {len(out)} of {N} records came back"
            assert m.error() is None, m.error()
            out.append((m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]))
    finally:
        c.close()
    return out


def expected_records():
    return [(i, b"key-%d" % i, b"value %d " % i + b"x" * 200, [("h", b"%d" % i), ("empty", None)],
             TIMESTAMP + i) for i in range(N)]


def check_recompressed(bootstrap, topic, topic_codec):
    batches = stored_batches(bootstrap, topic)
    assert [batch_codec(b) for b in batches] == [CODEC_ID[topic_codec]] * len(batches), \
        [header(b) for b in batches]
    first = header(batches[0])
    assert first[0] == 0 and first[5] >= 0 and first[7] == 0, first  # offset 0, idempotent pid, sequence 0
    assert first[3] == TIMESTAMP, first
    assert consumed(bootstrap, topic) == expected_records()
    return batches


@pytest.mark.parametrize("topic_codec,producer_codec", [
    ("gzip", "lz4"), ("snappy", "zstd"), ("lz4", "none"), ("zstd", "gzip"), ("uncompressed", "snappy"),
])
def test_batches_are_recompressed_to_the_topic_codec(broker, topic_codec, producer_codec):
    topic = unique_topic(f"cmp-{topic_codec}")
    create_topic(broker.bootstrap, topic, config={"compression.type": topic_codec})
    produce_batch(broker.bootstrap, topic, producer_codec)
    check_recompressed(broker.bootstrap, topic, topic_codec)


def produce_and_fetch(bootstrap, topic, batch):
    """Produce v8 of one raw batch to partition 0, then the partition's
    batches as stored."""
    s = connect(At(bootstrap))
    try:
        assert produce_v8(s, topic, 0, batch)["error"] == 0
        err, _, batches = fetch_batches(s, topic, 0, 0)
    finally:
        s.close()
    assert err == 0
    return batches


def test_a_batch_already_in_the_topic_codec_is_stored_as_sent(broker):
    topic = unique_topic("cmp-same")
    create_topic(broker.bootstrap, topic, config={"compression.type": "gzip"})
    sent = record_batch([(b"k%d" % i, b"v%d" % i * 40) for i in range(5)], codec=1)
    batches = produce_and_fetch(broker.bootstrap, topic, sent)
    assert len(batches) == 1
    # Base offset (0) and the CRC'd part are the producer's bytes; only the
    # partition leader epoch (outside the CRC) is the broker's.
    assert batches[0][:12] == sent[:12] and batches[0][16:] == sent[16:]


def test_compression_levels_apply(broker):
    # The same uncompressed batch into gzip level 1 and level 9 topics: both
    # hold the records, and level 9 compresses this text better.
    text = b" ".join(b"record %d of a compressible batch, level test" % i for i in range(2000))
    sent = record_batch([(b"k%d" % i, text[i * 40:i * 40 + 400]) for i in range(200)])
    sizes = {}
    for level in ("1", "9"):
        topic = unique_topic(f"cmp-l{level}")
        create_topic(broker.bootstrap, topic, config={"compression.type": "gzip",
                                                      "compression.gzip.level": level})
        batches = produce_and_fetch(broker.bootstrap, topic, sent)
        assert len(batches) == 1 and batch_codec(batches[0]) == 1
        records = batch_records(batches[0])  # kafka-python decodes gzip and checks the CRC
        assert [(k, v) for _, _, k, v, _ in records] == [(b"k%d" % i, text[i * 40:i * 40 + 400])
                                                         for i in range(200)]
        sizes[level] = len(batches[0])
    assert sizes["9"] < sizes["1"], sizes


def test_apache_kafka_stores_the_topic_codec_too(broker, kafka_ref):
    for bootstrap in (broker.bootstrap, kafka_ref.bootstrap):
        topic = unique_topic("cmp-ref")
        create_topic(bootstrap, topic, config={"compression.type": "zstd"})
        produce_batch(bootstrap, topic, "gzip")
        check_recompressed(bootstrap, topic, "zstd")
