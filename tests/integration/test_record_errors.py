"""KIP-467 record errors: a produce batch with invalid records (keyless
records on a compacted topic, CreateTime timestamps outside
message.timestamp.before.max.ms / after.max.ms) is refused whole, and the
answer (Produce v8+) names each bad record by its index in the batch, so
clients fail only those with the broker's error and the rest with their
own "another record of the batch" error.

Checked three ways: raw Produce v8 (exact error code, record_errors and
error_message), confluent-kafka's delivery reports, and the same raw
scenarios against Apache Kafka 4.4.0 (`kafka_ref`), whose answers must
match Shardline's field for field."""

import re
import time

from confluent_kafka import KafkaError, Producer

from conftest import create_topic, unique_topic, watermarks
from raw import connect, produce_v8, record_batch

INVALID_TIMESTAMP = 32
INVALID_RECORD = 87
HOUR = 3_600_000


def keyless_message(topic):
    return f"Compacted topic cannot accept message without key in topic partition {topic}-0"


def summary(errors):
    """Kafka's INVALID_RECORD error_message for these record errors."""
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    return (f"One or more records have been rejected due to {len(errors)} record errors in total, "
            f"and only showing the first three errors at most: [{shown}]")


class At:
    """A broker address for raw.connect."""
    def __init__(self, bootstrap):
        self.port = int(bootstrap.rsplit(":", 1)[1])


def keyless_scenario(bootstrap, topic):
    """Produce v8 answers on a compacted topic: a mixed batch, an all-keyless
    batch (more than three errors), then a good batch."""
    create_topic(bootstrap, topic, config={"cleanup.policy": "compact"})
    s = connect(At(bootstrap))
    try:
        mixed = produce_v8(s, topic, 0, record_batch(
            [(b"k0", b"v0"), (None, b"v1"), (b"k2", b"v2"), (None, b"v3")]), corr=1)
        keyless = produce_v8(s, topic, 0, record_batch([(None, b"x%d" % i) for i in range(5)]), corr=2)
        good = produce_v8(s, topic, 0, record_batch([(b"k", b"v")]), corr=3)
    finally:
        s.close()
    return mixed, keyless, good


def timestamp_scenario(bootstrap, topic):
    """A CreateTime topic with both limits set, and a compacted one with a
    keyless record and a late one in the same batch."""
    create_topic(bootstrap, topic, config={"message.timestamp.before.max.ms": str(HOUR),
                                           "message.timestamp.after.max.ms": "60000"})
    create_topic(bootstrap, topic + "-c", config={"cleanup.policy": "compact",
                                                  "message.timestamp.before.max.ms": str(HOUR)})
    s = connect(At(bootstrap))
    now = int(time.time() * 1000)
    try:
        out_of_range = produce_v8(s, topic, 0, record_batch(
            [(b"a", b"1", now), (b"b", b"2", now - 2 * HOUR), (b"c", b"3", now + 2 * HOUR),
             (b"d", b"4", -1)]), corr=1)
        # gzip: the records are looked at inside the compressed batch too.
        compressed = produce_v8(s, topic, 0, record_batch(
            [(b"a", b"1", now), (b"b", b"2", now - 2 * HOUR)], codec=1), corr=2)
        mixed = produce_v8(s, topic + "-c", 0, record_batch(
            [(None, b"1", now), (b"b", b"2", now - 2 * HOUR)]), corr=3)
        in_range = produce_v8(s, topic, 0, record_batch([(b"a", b"1", now - HOUR // 2)]), corr=4)
    finally:
        s.close()
    return now, out_of_range, compressed, mixed, in_range


def check_keyless(topic, mixed, keyless, good):
    assert mixed["error"] == INVALID_RECORD, mixed
    errors = [(1, keyless_message(topic)), (3, keyless_message(topic))]
    assert mixed["record_errors"] == errors, mixed
    assert mixed["error_message"] == summary(errors), mixed
    assert mixed["base_offset"] == -1 and mixed["log_start_offset"] == 0, mixed

    assert keyless["error"] == INVALID_RECORD, keyless
    errors = [(i, keyless_message(topic)) for i in range(5)]
    assert keyless["record_errors"] == errors, keyless
    assert keyless["error_message"] == summary(errors), keyless

    # Nothing of the refused batches was appended.
    assert good["error"] == 0 and good["base_offset"] == 0, good
    assert good["record_errors"] == [] and good["error_message"] is None, good


TIMESTAMP_ERROR = re.compile(
    r"Timestamp (-?\d+) of message with offset (\d+) is out of range\. "
    r"The timestamp should be within \[(-?\d+), (-?\d+)\]")


def timestamp_errors(answer):
    """record_errors as (index, timestamp, offset, lower, upper)."""
    out = []
    for index, message in answer["record_errors"]:
        m = TIMESTAMP_ERROR.fullmatch(message)
        assert m, message
        out.append((index, *map(int, m.groups())))
    return out


def check_timestamps(topic, now, out_of_range, compressed, mixed, in_range):
    invalid = "One or more records have been rejected due to invalid timestamp"
    assert out_of_range["error"] == INVALID_TIMESTAMP, out_of_range
    assert out_of_range["error_message"] == invalid, out_of_range
    errors = timestamp_errors(out_of_range)
    # Record 3 has no timestamp (-1): not checked, as in Kafka.
    assert [(i, ts, off) for i, ts, off, _, _ in errors] == [
        (1, now - 2 * HOUR, 1), (2, now + 2 * HOUR, 2)], errors
    for _, _, _, lower, upper in errors:
        broker_now = lower + HOUR
        assert upper == broker_now + 60000, errors
        assert abs(broker_now - now) < 30_000, errors

    assert compressed["error"] == INVALID_TIMESTAMP, compressed
    assert [(i, ts, off) for i, ts, off, _, _ in timestamp_errors(compressed)] == [
        (1, now - 2 * HOUR, 1)], compressed

    # Any timestamp error makes the partition's error INVALID_TIMESTAMP;
    # the keyless record is still named with its own message.
    assert mixed["error"] == INVALID_TIMESTAMP, mixed
    assert mixed["error_message"] == invalid, mixed
    assert mixed["record_errors"][0] == (0, keyless_message(topic + "-c")), mixed
    assert [e[:3] for e in timestamp_errors({"record_errors": mixed["record_errors"][1:]})] == [
        (1, now - 2 * HOUR, 1)], mixed

    assert in_range["error"] == 0 and in_range["base_offset"] == 0, in_range


def test_keyless_records_are_named_in_record_errors(broker):
    topic = unique_topic("kip467")
    check_keyless(topic, *keyless_scenario(broker.bootstrap, topic))
    assert watermarks(broker.bootstrap, topic) == (0, 1)


def test_timestamps_out_of_range_are_named_in_record_errors(broker):
    topic = unique_topic("kip467ts")
    check_timestamps(topic, *timestamp_scenario(broker.bootstrap, topic))


def test_apache_kafka_answers_the_same(broker, kafka_ref):
    # The same topic names on both brokers, so the messages (which name the
    # partition) compare as they are.
    topic = unique_topic("kip467ref")
    ours = keyless_scenario(broker.bootstrap, topic)
    theirs = keyless_scenario(kafka_ref.bootstrap, topic)
    check_keyless(topic, *theirs)  # the expectations are Kafka's
    assert ours == theirs

    topic = unique_topic("kip467tsref")
    ours = timestamp_scenario(broker.bootstrap, topic)
    theirs = timestamp_scenario(kafka_ref.bootstrap, topic)
    check_timestamps(topic, *theirs)

    def shape(answer):  # the bounds and timestamps hold the clock; the rest must match
        return (answer["error"], answer["error_message"],
                [(i, TIMESTAMP_ERROR.sub("Timestamp T of message with offset O ...", m))
                 for i, m in answer["record_errors"]])
    for a, b in zip(ours[1:], theirs[1:]):
        assert shape(a) == shape(b), (a, b)


def test_librdkafka_fails_only_the_named_records_with_invalid_record(broker):
    # librdkafka (2.x) gives the records in record_errors INVALID_RECORD and
    # the others of the batch _INVALID_DIFFERENT_RECORD; before KIP-467 every
    # record of the batch got INVALID_RECORD.
    topic = unique_topic("kip467ck")
    create_topic(broker.bootstrap, topic, config={"cleanup.policy": "compact"})
    # One batch of exactly these four records, however slow the machine:
    # librdkafka sends when batch.num.messages are queued, long before linger.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 10000,
                  "batch.num.messages": 4})
    results = {}

    def report(i):
        def cb(err, msg):
            results[i] = err.code() if err else None
        return cb

    for i, key in enumerate([b"k0", None, b"k2", None]):
        p.produce(topic, key=key, value=b"v%d" % i, on_delivery=report(i))
    assert p.flush(30) == 0
    assert results == {
        0: KafkaError._INVALID_DIFFERENT_RECORD,
        1: KafkaError.INVALID_RECORD,
        2: KafkaError._INVALID_DIFFERENT_RECORD,
        3: KafkaError.INVALID_RECORD,
    }, results
    assert watermarks(broker.bootstrap, topic) == (0, 0)


def test_kafka3_timestamp_difference_applies_where_before_and_after_are_not_set(broker):
    # Kafka 3.9: the deprecated message.timestamp.difference.max.ms stands
    # in for message.timestamp.before.max.ms / after.max.ms left at their
    # defaults; an explicit after.max.ms still wins.
    topic = unique_topic("kip467diff")
    create_topic(broker.bootstrap, topic, config={"message.timestamp.difference.max.ms": str(HOUR),
                                                  "message.timestamp.after.max.ms": str(3 * HOUR)})
    now = int(time.time() * 1000)
    s = connect(At(broker.bootstrap))
    try:
        r = produce_v8(s, topic, 0, record_batch(
            [(b"a", b"1", now - 2 * HOUR), (b"b", b"2", now + 2 * HOUR), (b"c", b"3", now + 4 * HOUR)]))
    finally:
        s.close()
    assert r["error"] == INVALID_TIMESTAMP, r
    assert [(i, off) for i, _, off, _, _ in timestamp_errors(r)] == [(0, 0), (2, 2)], r
