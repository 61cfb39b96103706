"""Hostile / malformed input over raw sockets. After each case the broker must
still be running and serve a normal client."""

import os
import struct
import threading
import time

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import admin_client, assert_delivered, consume, produce, unique_topic
from raw import (API_VERSIONS, UNSUPPORTED_VERSION, api_versions_v0, connect,
                 parse_api_versions_v0, read_response, request, wait_closed)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def assert_healthy(broker):
    assert broker.is_running(), f"broker died (rc={broker.proc.poll() if broker.proc else None})"
    # raw ApiVersions on a fresh connection
    with connect(broker) as s:
        corr, err, keys = api_versions_v0(s, corr=4242)
    assert (corr, err) == (4242, 0)
    assert API_VERSIONS in keys
    # and a real client
    md = admin_client(broker.bootstrap).list_topics(timeout=15)
    assert md.brokers, "no brokers in metadata"


# --------------------------------------------------------------------------

def test_api_versions_v0_baseline(broker):
    with connect(broker) as s:
        corr, err, keys = api_versions_v0(s, corr=123)
    assert corr == 123
    assert err == 0
    for k in (0, 1, 2, 3, 18):  # Produce, Fetch, ListOffsets, Metadata, ApiVersions
        assert k in keys, f"api key {k} missing from {sorted(keys)}"
        lo, hi = keys[k]
        assert 0 <= lo <= hi
    assert keys[API_VERSIONS][1] >= 3


def test_api_versions_unsupported_version(broker):
    with connect(broker) as s:
        s.sendall(request(API_VERSIONS, 99, 555))
        resp = read_response(s)
        corr, err, keys = parse_api_versions_v0(resp)
        assert corr == 555
        assert err == UNSUPPORTED_VERSION, f"error_code {err}, want 35 UNSUPPORTED_VERSION"
        assert keys, "api key list must not be empty so the client can pick a version"
        assert API_VERSIONS in keys
        # Clients retry on the same connection with a supported version.
        corr, err, keys2 = api_versions_v0(s, corr=556)
        assert (corr, err) == (556, 0)
        assert keys2
    assert_healthy(broker)


def test_pipelined_requests_answered_in_order(broker):
    with connect(broker) as s:
        s.sendall(b"".join(request(API_VERSIONS, 0, c) for c in range(1000, 1010)))
        corrs = [parse_api_versions_v0(read_response(s))[0] for _ in range(10)]
    assert corrs == list(range(1000, 1010))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(struct.pack(">i", 16) + b"\xde\xad\xbe\xef" * 4, id="garbage-body"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", id="http"),
        pytest.param(struct.pack(">i", -1) + b"\x00" * 16, id="negative-size"),
        pytest.param(struct.pack(">i", 3) + b"\x00\x12\x00", id="frame-shorter-than-header"),
        pytest.param(struct.pack(">i", 10) + struct.pack(">hhih", 18, 0, 1, 200), id="client-id-overruns-frame"),
    ],
)
def test_garbage_frames_close_connection(broker, data):
    with connect(broker) as s:
        s.sendall(data)
        assert wait_closed(s, 10), "broker kept the connection open after a malformed frame"
    assert_healthy(broker)


def test_2gb_size_prefix(broker):
    rss_before = rss_kib(broker.proc.pid)
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 0x7FFFFFFF) + request(API_VERSIONS, 0, 1)[4:])
        closed = wait_closed(s, 10)
    rss_after = rss_kib(broker.proc.pid)
    assert broker.is_running()
    assert rss_after - rss_before < 512 * 1024, f"RSS grew from {rss_before} KiB to {rss_after} KiB"
    assert closed, "broker kept waiting for a 2 GB request instead of rejecting it"
    assert_healthy(broker)


def test_unknown_api_key(broker):
    with connect(broker) as s:
        s.sendall(request(9999, 0, 77))
        assert wait_closed(s, 10), "connection not closed after an unknown API key"
    assert_healthy(broker)


def test_unsupported_version_of_other_api(broker):
    # Metadata v99: no way to encode a response, Kafka closes the connection.
    with connect(broker) as s:
        s.sendall(request(3, 99, 78, body=b"\x00" * 8))
        assert wait_closed(s, 10), "connection not closed after Metadata v99"
    assert_healthy(broker)


def test_truncated_frame_does_not_block_others(broker):
    stalled = connect(broker)
    try:
        frame = request(API_VERSIONS, 0, 5)
        stalled.sendall(struct.pack(">i", 100) + frame[4:14])  # promises 100 bytes, sends 10
        # While that connection is stuck mid-frame, others are served.
        assert_healthy(broker)
    finally:
        stalled.close()  # ...then the peer goes away mid-frame
    time.sleep(0.2)
    assert_healthy(broker)


def test_many_bad_connections(broker):
    rnd = os.urandom
    for i in range(40):
        with connect(broker) as s:
            kind = i % 4
            if kind == 0:
                s.sendall(rnd(64))
            elif kind == 1:
                s.sendall(struct.pack(">i", 50) + rnd(20))
            elif kind == 2:
                s.sendall(request(API_VERSIONS, 0, i)[:7])
            else:
                s.sendall(request(i % 70, 0, i, body=rnd(30)))
    # concurrent well-formed traffic in parallel with more garbage
    errors = []

    def spam():
        try:
            for _ in range(20):
                with connect(broker) as s:
                    s.sendall(rnd(32))
        except OSError as e:  # resets are fine
            errors.append(e)

    t = threading.Thread(target=spam)
    t.start()
    assert_healthy(broker)
    t.join(30)
    assert not t.is_alive()
    assert_healthy(broker)


# --------------------------------------------------------------------------
# Oversized messages
# --------------------------------------------------------------------------

def test_message_too_large(broker):
    topic = unique_topic("big")
    # Make sure the topic exists with a normal message first.
    first = produce(broker.bootstrap, topic, [{"value": b"small"}])
    assert_delivered(first)

    p = Producer({
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "compression.type": "none",
        "message.max.bytes": 10_000_000,  # let the client send it
        "batch.size": 10_000_000,
        "message.timeout.ms": 30000,
    })
    result = {}

    def cb(err, msg):
        result["err"] = err
        result["offset"] = msg.offset()

    p.produce(topic, value=os.urandom(2 * 1024 * 1024), on_delivery=cb)
    assert p.flush(40) == 0
    assert "err" in result, "no delivery report"
    err = result["err"]
    assert err is not None, f"2 MiB message was accepted at offset {result.get('offset')}"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"unexpected error {err}"

    # A large but legal message (below message.max.bytes=1048588) is fine and
    # lands right after the small one: nothing of the rejected one was stored.
    legal = os.urandom(1_000_000)
    res = produce(broker.bootstrap, topic, [{"value": legal}],
                  conf={"message.max.bytes": 10_000_000, "batch.size": 10_000_000})
    assert_delivered(res)
    assert res[0]["offset"] == 1
    got = consume(broker.bootstrap, topic, expect=2)
    assert [m.value() for m in got] == [b"small", legal]
    assert_healthy(broker)
