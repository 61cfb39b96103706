"""Kafka requests over a raw socket, for tests that need what no client
sends: hand-made frames, stalls, exact timing of closes."""

import socket
import struct
import time

from conftest import HOST

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35


def connect(broker, timeout=10):
    s = socket.create_connection((HOST, broker.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def request(api_key, api_version, correlation_id, body=b"", client_id=b"raw-test"):
    """Request header v1 (key, version, correlation id, client id) + body,
    with the int32 size prefix."""
    payload = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)}/{n} bytes")
        buf += chunk
    return buf


def read_response(s):
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 4 <= size < 10_000_000, f"implausible response size {size}"
    return recv_exact(s, size)


def parse_api_versions_v0(resp):
    """ApiVersions response v0: correlation id; error_code; [api_key min max]."""
    corr, err, n = struct.unpack(">ihi", resp[:10])
    keys = {}
    off = 10
    for _ in range(max(n, 0)):
        k, lo, hi = struct.unpack(">hhh", resp[off:off + 6])
        keys[k] = (lo, hi)
        off += 6
    return corr, err, keys


def api_versions_v0(s, corr=7):
    s.sendall(request(API_VERSIONS, 0, corr))
    return parse_api_versions_v0(read_response(s))


def closed_within(s, seconds):
    """Seconds until the peer closed `s` (EOF or reset), or None if it is
    still open after `seconds`; bytes it sends first are ignored."""
    t0 = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - t0 < seconds:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def wait_closed(s, timeout=10):
    """True if the peer closes within `timeout` seconds."""
    return closed_within(s, timeout) is not None


# --------------------------------------------------------------------------
# Produce v8 and Fetch v11 (the last non-flexible versions), with record
# batches built here, for tests that look at exact per-record answers
# (KIP-467 record_errors) or at the stored batches byte for byte.
# --------------------------------------------------------------------------

PRODUCE = 0
FETCH = 1


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _read_str(buf, off):
    (n,) = struct.unpack(">h", buf[off:off + 2])
    off += 2
    if n < 0:
        return None, off
    return buf[off:off + n].decode(), off + n


def record_batch(records, codec=0, timestamp=None):
    """One magic-2 batch (kafka-python's builder). `records`: (key, value)
    pairs or (key, value, timestamp_ms) triples; codec: Kafka's attribute id
    (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 24)
    now = int(time.time() * 1000)
    for i, r in enumerate(records):
        key, value = r[0], r[1]
        ts = r[2] if len(r) > 2 else (timestamp if timestamp is not None else now)
        b.append(i, timestamp=ts, key=key, value=value, headers=[])
    return bytes(b.build())


def produce_v8(s, topic, partition, records, acks=-1, corr=1, timeout_ms=10000):
    """Send one Produce v8 with `records` (a batch's bytes) and return the
    partition's answer: dict(error, base_offset, log_append_time,
    log_start_offset, record_errors=[(batch_index, message)], error_message)."""
    body = (struct.pack(">hhi", -1, acks, timeout_ms)  # null transactional id
            + struct.pack(">i", 1) + _str(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(records)) + records)
    s.sendall(request(PRODUCE, 8, corr, body))
    r = read_response(s)
    got_corr, n_topics = struct.unpack(">ii", r[:8])
    assert got_corr == corr and n_topics == 1, (got_corr, n_topics)
    name, off = _read_str(r, 8)
    assert name == topic
    (n_parts,) = struct.unpack(">i", r[off:off + 4])
    assert n_parts == 1
    off += 4
    index, error, base, lat, lso = struct.unpack(">ihqqq", r[off:off + 30])
    assert index == partition
    off += 30
    (n_errors,) = struct.unpack(">i", r[off:off + 4])
    off += 4
    record_errors = []
    for _ in range(max(n_errors, 0)):
        (batch_index,) = struct.unpack(">i", r[off:off + 4])
        msg, off = _read_str(r, off + 4)
        record_errors.append((batch_index, msg))
    error_message, off = _read_str(r, off)
    return dict(error=error, base_offset=base, log_append_time=lat, log_start_offset=lso,
                record_errors=record_errors, error_message=error_message)


def fetch_batches(s, topic, partition, offset, corr=2, max_bytes=1 << 22, max_wait_ms=500):
    """One Fetch v11 (which may carry zstd batches); returns (error_code,
    high_watermark, [batch bytes]) with whole batches only."""
    body = (struct.pack(">iiiib", -1, max_wait_ms, 1, max_bytes, 0)  # replica, wait, min, max, READ_UNCOMMITTED
            + struct.pack(">ii", 0, -1)  # no fetch session
            + struct.pack(">i", 1) + _str(topic)
            + struct.pack(">i", 1) + struct.pack(">iiqqi", partition, -1, offset, -1, max_bytes)
            + struct.pack(">i", 0)  # forgotten topics
            + _str(""))  # rack id
    s.sendall(request(FETCH, 11, corr, body))
    r = read_response(s)
    got_corr, _throttle, top_error, _session, n_topics = struct.unpack(">iihii", r[:18])
    assert got_corr == corr and top_error == 0 and n_topics == 1, (got_corr, top_error, n_topics)
    _, off = _read_str(r, 18)
    off += 4  # partition count (1)
    _index, error, hw, _lso, _start = struct.unpack(">ihqqq", r[off:off + 30])
    off += 30
    (n_aborted,) = struct.unpack(">i", r[off:off + 4])
    off += 4 + max(n_aborted, 0) * 16 + 4  # aborted transactions, preferred read replica
    (size,) = struct.unpack(">i", r[off:off + 4])
    recs = r[off + 4:off + 4 + max(size, 0)]
    batches, q = [], 0
    while q + 12 <= len(recs):
        (length,) = struct.unpack(">i", recs[q + 8:q + 12])
        if q + 12 + length > len(recs):
            break  # a partial batch at the end of the fetch
        batches.append(recs[q:q + 12 + length])
        q += 12 + length
    return error, hw, batches


def batch_codec(batch):
    """The compression id in a magic-2 batch's attributes."""
    (attributes,) = struct.unpack(">h", batch[21:23])
    return attributes & 0x07


def batch_records(batch):
    """(offset, timestamp, key, value, headers) of each record of a batch,
    decoded by kafka-python (which checks the CRC)."""
    from kafka.record.default_records import DefaultRecordBatch
    b = DefaultRecordBatch(batch)
    assert b.validate_crc(), "batch CRC does not match"
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in b]
