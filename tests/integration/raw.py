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
