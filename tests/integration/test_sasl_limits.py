"""SASL limits end to end: the per-address failure block (sasl_max_failures
within sasl_failure_window_ms blocks the address for sasl_failure_block_ms,
even with the right password, and then lifts), and KIP-368 re-authentication
(connections_max_reauth_ms): a session lifetime in SaslAuthenticate, a
connection that does not re-authenticate is closed at its first request
after expiry, one that does goes on, and librdkafka re-authenticates by
itself without reconnecting."""

import socket
import struct
import time

import pytest

from conftest import HOST, ConfigBroker, admin_client, create_topic, free_port, unique_topic

ADMIN, ADMIN_PW = "admin", "admin-secret"


class LimitsBroker(ConfigBroker):
    def __init__(self, binary, base, extra_config):
        self.sasl_port = free_port()
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="sasl-limits")
        self.config_path.write_text(
            f'listeners = ["PLAINTEXT://{HOST}:{self.port}", "SASL_PLAINTEXT://{HOST}:{self.sasl_port}"]\n'
            f'sasl_bootstrap_user = "{ADMIN}"\nsasl_bootstrap_password = "{ADMIN_PW}"\n' + extra_config)



@pytest.fixture
def make_broker(shardline_bin, tmp_path):
    made = []

    def make(extra_config):
        b = LimitsBroker(shardline_bin, tmp_path / f"b{len(made)}", extra_config)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.close()


# ---------------------------------------------------------------- a raw client

def _string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Raw:
    """Just enough of the protocol to drive SASL by hand."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.corr = 0

    def close(self):
        self.sock.close()

    def request(self, api_key, version, body):
        self.corr += 1
        head = struct.pack(">hhi", api_key, version, self.corr) + _string("limits-test")
        frame = head + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = self._exact(4)
        if size is None:
            return None
        resp = self._exact(struct.unpack(">i", size)[0])
        assert resp is not None and struct.unpack(">i", resp[:4])[0] == self.corr
        return resp[4:]

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def plain_login(self, user, password):
        """SaslHandshake v1 + SaslAuthenticate v1 (PLAIN): (error code,
        message, session lifetime ms), or None if the connection closed."""
        hs = self.request(17, 1, _string("PLAIN"))
        assert hs is not None and struct.unpack(">h", hs[:2])[0] == 0
        token = f"\0{user}\0{password}".encode()
        resp = self.request(36, 1, struct.pack(">i", len(token)) + token)
        if resp is None:
            return None
        code, mlen = struct.unpack(">hh", resp[:4])
        message = resp[4:4 + mlen].decode() if mlen >= 0 else None
        rest = resp[4 + max(mlen, 0):]
        blen = struct.unpack(">i", rest[:4])[0]
        lifetime = struct.unpack(">q", rest[4 + max(blen, 0):12 + max(blen, 0)])[0]
        return code, message, lifetime

    def metadata(self):
        """Metadata v1 for all topics; None if the broker closed instead."""
        return self.request(3, 1, struct.pack(">i", -1))


SASL_AUTHENTICATION_FAILED = 58


def wait_for_log(b, text, timeout=5):
    """The broker logs a refusal as it closes the connection, just after
    the client has the answer: give the line a moment to appear."""
    deadline = time.monotonic() + timeout
    while text not in b.log_text():
        assert time.monotonic() < deadline, f"no log line with {text!r}"
        time.sleep(0.05)


def test_failures_block_the_address_until_the_block_ends(make_broker):
    b = make_broker("sasl_max_failures = 3\nsasl_failure_window_ms = 60000\nsasl_failure_block_ms = 3000\n")
    for _ in range(3):
        c = Raw(b.sasl_port)
        code, message, _ = c.plain_login(ADMIN, "wrong")
        assert code == SASL_AUTHENTICATION_FAILED, message
        c.close()
    # Blocked now: the right password is refused too, with the reason.
    c = Raw(b.sasl_port)
    code, message, _ = c.plain_login(ADMIN, ADMIN_PW)
    c.close()
    assert code == SASL_AUTHENTICATION_FAILED
    wait_for_log(b, "too many failures from 127.0.0.1")
    # librdkafka is refused as well while the block lasts.
    errors = []
    admin = admin_client(f"{HOST}:{b.sasl_port}", error_cb=lambda e: errors.append(str(e)),
                         **{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                            "sasl.username": ADMIN, "sasl.password": ADMIN_PW})
    with pytest.raises(Exception):
        admin.list_topics(timeout=1)
    # The PLAINTEXT listener is not affected.
    assert admin_client(b.bootstrap).list_topics(timeout=10).brokers
    time.sleep(3.5)
    c = Raw(b.sasl_port)
    code, message, _ = c.plain_login(ADMIN, ADMIN_PW)
    assert code == 0, message
    assert c.metadata() is not None
    c.close()


def test_reauthentication_kip_368(make_broker):
    b = make_broker("connections_max_reauth_ms = 1500\n")
    # The lifetime is announced; without re-authentication the connection
    # ends at its first request after it.
    c = Raw(b.sasl_port)
    code, _, lifetime = c.plain_login(ADMIN, ADMIN_PW)
    assert code == 0 and 0 < lifetime <= 1500
    assert c.metadata() is not None
    time.sleep(1.8)
    assert c.metadata() is None
    c.close()
    wait_for_log(b, "SASL session of User:admin expired")
    # Re-authenticating on the same connection before expiry keeps it going.
    c = Raw(b.sasl_port)
    assert c.plain_login(ADMIN, ADMIN_PW)[0] == 0
    for _ in range(3):
        time.sleep(0.9)
        code, _, lifetime = c.plain_login(ADMIN, ADMIN_PW)
        assert code == 0 and lifetime > 0
        assert c.metadata() is not None
    c.close()


def test_librdkafka_reauthenticates_without_reconnecting(make_broker):
    from confluent_kafka import Producer
    b = make_broker("connections_max_reauth_ms = 2000\n")
    topic = unique_topic("reauth")
    create_topic(b.bootstrap, topic)
    expired_before = b.log_text().count("expired (connections_max_reauth_ms)")
    p = Producer({"bootstrap.servers": f"{HOST}:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": ADMIN, "sasl.password": ADMIN_PW,
                  "acks": "all"})
    errors = []

    def send(i):
        p.produce(topic, value=b"%d" % i, partition=0, on_delivery=lambda e, m: errors.append(e))
        p.flush(30)

    send(0)
    logins = b.log_text().count("authenticated as User:admin on listener")
    # Six seconds: three session lifetimes.
    for i in range(1, 13):
        time.sleep(0.5)
        send(i)
    assert errors == [None] * 13
    assert b.log_text().count("authenticated as User:admin on listener") == logins, "librdkafka reconnected"
    assert b.log_text().count("expired (connections_max_reauth_ms)") == expired_before
