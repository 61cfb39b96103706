"""Damage in the middle of a SEALED segment (issue 10).

Reproduction: produce enough to roll several small segments, stop the broker
cleanly, overwrite the length field of one batch in the middle of a sealed
segment with garbage, restart, consume.

What Apache Kafka 4.4.0 does there (asked on this machine, 1 MiB segments,
batch at byte 456909 of a sealed segment, offsets 15706..15874):
  * length overwritten with 0x41414141 (runs past the end of the segment):
    the segment looks as if it ended at that batch; a Fetch at 15706 answers
    error 0 with batches from the NEXT segment (21790). Every client
    (confluent-kafka, kafka-python, the Java console consumer) silently skips
    6084 records; Kafka logs nothing.
  * length overwritten with 5 (below the minimum): every Fetch from 15600 on
    answers CORRUPT_MESSAGE (2) and Kafka logs an ERROR with a stack trace per
    fetch. librdkafka reports INVALID_MSG ("Broker: Invalid message") on each
    fetch and stays at 15706; kafka-python raises CorruptRecordError; the
    Java consumer throws "Received exception when fetching the next record
    from corrupt1-0. If needed, please seek past the record to continue
    consumption." Seeking past the damage works in all three.
  * DumpLogSegments prints "Found 583956 invalid bytes at the end of
    00000000000000010946.log" and exits 0.

Shardline answers CORRUPT_MESSAGE for every kind of damage (never a silent
skip, never the retriable KAFKA_STORAGE_ERROR that made consumers stall),
logs it once, and keeps serving the healthy ranges on both sides.
"""

import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    assert_delivered,
    consume,
    consumer_conf,
    create_topic,
    produce,
    unique_topic,
)

SEGMENT_BYTES = 65536
N = 3000
CORRUPT_MESSAGE = 2


def fetch_raw(bootstrap, topic, partition, offset, max_bytes=1 << 20, max_wait_ms=500):
    """One Fetch v4; returns (error_code, high_watermark, [(base_offset, size)])."""
    def s16(x):
        return struct.pack(">h", x)

    def s32(x):
        return struct.pack(">i", x)

    t = topic.encode()
    body = (s32(-1) + s32(max_wait_ms) + s32(1) + s32(max_bytes) + b"\x00" + s32(1)
            + s16(len(t)) + t + s32(1) + s32(partition) + struct.pack(">q", offset) + s32(max_bytes))
    msg = s16(1) + s16(4) + s32(7) + s16(3) + b"raw" + body
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(s32(len(msg)) + msg)

        def rd(n):
            b = b""
            while len(b) < n:
                c = s.recv(n - len(b))
                assert c, "connection closed"
                b += c
            return b

        r = rd(struct.unpack(">i", rd(4))[0])
    p = 4 + 4 + 4  # correlation id, throttle, topic count
    p += 2 + struct.unpack(">h", r[p:p + 2])[0] + 4
    _, err, hw, _ = struct.unpack(">ihqq", r[p:p + 22])
    p += 22
    aborted = struct.unpack(">i", r[p:p + 4])[0]
    p += 4 + max(aborted, 0) * 16
    size = struct.unpack(">i", r[p:p + 4])[0]
    recs = r[p + 4:p + 4 + max(size, 0)]
    batches, q = [], 0
    while q + 12 <= len(recs):
        base, length = struct.unpack(">qi", recs[q:q + 12])
        if q + 12 + length > len(recs):
            break  # a partial batch at the end of the fetch
        batches.append((base, 12 + length))
        q += 12 + length
    return err, hw, batches


def batches_of(path):
    """(position, base_offset, last_offset, size) of each batch in a segment."""
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        if length < 49 or pos + 12 + length > len(data):
            break
        last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
        out.append((pos, base, base + last_delta, 12 + length))
        pos += 12 + length
    return out


def produce_segments(broker, topic):
    create_topic(broker.bootstrap, topic, 1, config={"segment.bytes": str(SEGMENT_BYTES)})
    values = [b"rec-%06d-" % i + b"x" * 150 for i in range(N)]
    res = produce(broker.bootstrap, topic, [{"value": v} for v in values],
                  conf={"linger.ms": 20, "batch.size": 3000, "compression.type": "none"})
    assert_delivered(res)
    # The value stored at each offset (librdkafka may pipeline several
    # Produce requests, so do not assume offset == index).
    by_offset = {r["offset"]: v for r, v in zip(res, values)}
    assert sorted(by_offset) == list(range(N))
    return [by_offset[o] for o in range(N)]


def damage_sealed_segment(data_dir, topic, garbage=b"AAAA"):
    """Overwrite the length field of a batch in the middle of the second
    (sealed) segment. Returns (segment path, byte position, first, last offset)."""
    part = Path(data_dir) / f"{topic}-0"
    segs = sorted(part.glob("*.log"))
    assert len(segs) >= 3, f"want at least 3 segments, have {[s.name for s in segs]}"
    seg = segs[1]
    assert seg.with_suffix(".index").exists(), "the second segment should be sealed"
    batches = batches_of(seg)
    assert len(batches) >= 6, batches
    pos, first, last, _ = batches[len(batches) // 2]
    with open(seg, "r+b") as f:
        f.seek(pos + 8)
        f.write(garbage)
    return seg, pos, first, last


def consume_until_error(bootstrap, topic, start, timeout):
    """Consume from `start` until a consumer error arrives or `timeout`;
    returns (offsets consumed, first error or None, seconds until it)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(consumer_conf(bootstrap))
    offsets, err = [], None
    t0 = time.monotonic()
    try:
        c.assign([TopicPartition(topic, 0, start)])
        while time.monotonic() - t0 < timeout and err is None:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    err = m.error()
                    break
                offsets.append(m.offset())
    finally:
        c.close()
    return offsets, err, time.monotonic() - t0


@pytest.mark.parametrize("garbage", [b"AAAA", b"\x00\x00\x00\x05"], ids=["huge", "tiny"])
def test_damaged_sealed_segment_gives_clear_error(broker_factory, garbage):
    b = broker_factory()
    topic = unique_topic("damaged")
    values = produce_segments(b, topic)
    assert b.terminate() == 0
    seg, pos, first, last = damage_sealed_segment(b.data_dir, topic, garbage)
    b.restart()

    # A consumer from the start reads everything before the damage, then gets
    # a clear error (librdkafka: INVALID_MSG = Kafka's CORRUPT_MESSAGE), not a
    # silent stall and not a silent skip.
    offsets, err, took = consume_until_error(b.bootstrap, topic, 0, timeout=20)
    assert err is not None, \
        f"no error within 20 s: consumer stalled after offset {offsets[-1:]}, damage at {first}"
    assert offsets == list(range(first)), (offsets[-3:], first)
    assert err.code() == CORRUPT_MESSAGE, err
    assert took < 15

    # The damaged range answers CORRUPT_MESSAGE at once, every time.
    for o in (first, (first + last) // 2, last):
        t0 = time.monotonic()
        e, hw, got = fetch_raw(b.bootstrap, topic, 0, o)
        assert (e, got) == (CORRUPT_MESSAGE, []), (o, e, got)
        # As Kafka's ReplicaManager: a partition answered with an error
        # carries no watermarks (-1).
        assert hw == -1
        assert time.monotonic() - t0 < 0.4, "damaged range must not wait for data"

    # Healthy ranges on both sides keep working.
    e, _, got = fetch_raw(b.bootstrap, topic, 0, first - 1)
    assert e == 0 and got and got[-1][0] + 0 < first, got
    after = consume(b.bootstrap, topic, 0, start=last + 1, expect=N - last - 1, drain_s=0.2)
    assert [m.offset() for m in after] == list(range(last + 1, N))
    assert [m.value() for m in after] == values[last + 1:]

    # Logged once, with the file and the byte position, however often it is read.
    log = b.log_text()
    lines = [ln for ln in log.splitlines() if "damaged" in ln and str(seg) in ln]
    assert len(lines) == 1, lines
    assert f"byte {pos}" in lines[0] and f"{first}" in lines[0], lines[0]


def test_damaged_sealed_segment_kafka_python(broker_factory):
    """kafka-python surfaces the damage as CorruptRecordError (as with Kafka)
    and can seek past it."""
    import kafka
    from kafka.errors import CorruptRecordError
    b = broker_factory()
    topic = unique_topic("damagedkp")
    produce_segments(b, topic)
    assert b.terminate() == 0
    _, _, first, last = damage_sealed_segment(b.data_dir, topic)
    b.restart()
    c = kafka.KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                            consumer_timeout_ms=10000)
    tp = kafka.TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, first - 5)
    seen = []
    with pytest.raises(CorruptRecordError):
        for m in c:
            seen.append(m.offset)
    assert seen == list(range(first - 5, first))
    c.seek(tp, last + 1)
    m = next(iter(c))
    assert m.offset == last + 1
    c.close()


def run_verify(*args):
    return subprocess.run([str(Path(__import__("conftest").broker_binary())), "log", "verify", *args],
                          capture_output=True, text=True, timeout=120)


def test_log_verify_reports_damage(broker_factory):
    b = broker_factory()
    topic = unique_topic("verify")
    other = unique_topic("healthy")
    produce_segments(b, topic)
    create_topic(b.bootstrap, other, 2)
    assert_delivered(produce(b.bootstrap, other, [{"value": b"v%d" % i, "partition": i % 2} for i in range(100)]))

    # Healthy, and the broker still running: read-only, exit 0.
    ok = run_verify(str(b.data_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no damage" in ok.stdout, ok.stdout

    assert b.terminate() == 0
    seg, pos, first, last = damage_sealed_segment(b.data_dir, topic)
    b.restart()

    bad = run_verify(str(b.data_dir))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    assert str(seg) in out and f"byte {pos}" in out, out
    # The offsets on each side of the damage are reported.
    assert f"after offset {first - 1}" in out and f"resumes at offset {last + 1}" in out, out

    # Filters: the damaged topic alone fails, the other topic alone passes.
    assert run_verify(str(b.data_dir), "--topic", topic).returncode == 1
    assert run_verify(str(b.data_dir), "--topic", other).returncode == 0
    assert run_verify(str(b.data_dir), "--topic", other, "--partition", "1").returncode == 0
    # A data dir that does not exist, or a filter that matches nothing, is an
    # error of its own (exit 2), not "no damage".
    missing = run_verify(str(b.data_dir / "nope"))
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert run_verify(str(b.data_dir), "--topic", "no-such-topic").returncode == 2
