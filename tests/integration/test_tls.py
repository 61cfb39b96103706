"""TLS listeners with a throwaway CA made in the test (see pki.py): one broker
with PLAINTEXT, SASL_SSL, SSL (client certificate required) and a second SSL
listener where the certificate is only requested.

Real clients: confluent-kafka, kafka-python (also api_version=(0,10,1) with
SASL PLAIN's raw tokens), kafkajs and kcat over SASL_SSL with PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512; mTLS with the certificate subject as the
principal. Refused, with the broker serving on: a plaintext client on a TLS
port, an expired or untrusted client certificate, no certificate where one
is required, a client that does not trust the broker, a silent client.
Certificates replaced on disk apply to new connections while open ones go
on."""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    HOST, Broker, ConfigBroker, admin_client, consume, create_topic, free_port, produce, running,
    unique_topic,
)
from pki import Ca, serial_of, serial_of_der

JS_DIR = Path(__file__).resolve().parents[1] / "js"
ADMIN, ADMIN_PW = "admin", "admin-secret"
ALICE_DN = "CN=alice,OU=payments,O=Shardline Tests"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class TlsBroker(ConfigBroker):
    """PLAINTEXT on self.port, SASL_SSL, SSL (mTLS required), MTLS_OPT (SSL,
    certificate requested)."""

    def __init__(self, binary, base):
        self.pki = Ca(base / "pki")
        self.server_cert, self.server_key = self.pki.issue("server", server=True, CN="localhost")
        self.sasl_ssl_port, self.ssl_port, self.opt_port = free_port(), free_port(), free_port()
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="tls")
        self.config_path.write_text(
            f'listeners = ["PLAINTEXT://{HOST}:{self.port}", "SASL_SSL://{HOST}:{self.sasl_ssl_port}",'
            f' "SSL://{HOST}:{self.ssl_port}", "MTLS_OPT://{HOST}:{self.opt_port}"]\n'
            'listener_security_protocol_map = { MTLS_OPT = "SSL" }\n'
            f'ssl_certificate_location = "{self.server_cert}"\n'
            f'ssl_key_location = "{self.server_key}"\n'
            f'ssl_truststore_location = "{self.pki.cert_path}"\n'
            'ssl_client_auth = "required"\n'
            'listener_ssl_client_auth = { MTLS_OPT = "requested" }\n'
            "ssl_reload_check_ms = 100\n"
            "ssl_handshake_timeout_ms = 1500\n"
            f'sasl_bootstrap_user = "{ADMIN}"\n'
            f'sasl_bootstrap_password = "{ADMIN_PW}"\n'
            "sasl_max_failures = 10000\n"
        )

    def addr(self, port):
        return f"{HOST}:{port}"


@pytest.fixture(scope="module")
def tb(shardline_bin, tmp_path_factory):
    with running(TlsBroker(shardline_bin, tmp_path_factory.mktemp("broker-tls"))) as b:
        yield b


@pytest.fixture(scope="module")
def alice(tb):
    return tb.pki.issue("alice", O="Shardline Tests", OU="payments", CN="alice")


def sasl_ssl_conf(tb, mechanism, user, password):
    return {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(tb.pki.cert_path),
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def ssl_conf(tb, cert=None, ca=None):
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca or tb.pki.cert_path)}
    if cert:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = str(cert[0]), str(cert[1])
    return conf


def create_scram_user(tb, user, password):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    admin = admin_client(tb.addr(tb.sasl_ssl_port), **sasl_ssl_conf(tb, "SCRAM-SHA-512", ADMIN, ADMIN_PW))
    ups = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())
           for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    for f in admin.alter_user_scram_credentials(ups).values():
        f.result(timeout=30)


def assert_still_serving(tb):
    md = admin_client(tb.bootstrap).list_topics(timeout=10)
    assert md.brokers, "PLAINTEXT listener stopped answering"
    with tls_socket(tb, tb.opt_port) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")


def tls_socket(tb, port, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=str(tb.pki.cert_path))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if max_version:
        ctx.maximum_version = max_version
    raw = socket.create_connection((HOST, port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def api_versions_frame(correlation_id=7):
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def read_response(sock):
    """A Kafka response frame, or None if the connection ended first."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    head = exact(4)
    if head is None:
        return None
    return exact(struct.unpack(">i", head)[0])


# ------------------------------------------------------------------ happy paths

@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_sasl_ssl(tb, mechanism):
    user, pw = f"cf-{mechanism.lower()}", "cf-secret"
    create_scram_user(tb, user, pw)
    conf = sasl_ssl_conf(tb, mechanism, user, pw)
    topic = unique_topic("tls-cf")
    create_topic(tb.bootstrap, topic)
    msgs = [{"value": f"{mechanism}-{i}".encode(), "key": b"k"} for i in range(20)]
    results = produce(tb.addr(tb.sasl_ssl_port), topic, msgs, conf=conf)
    assert all(r["error"] is None for r in results), results[:3]
    got = consume(tb.addr(tb.sasl_ssl_port), topic, expect=20, conf=conf)
    assert [m.value() for m in got] == [m["value"] for m in msgs]
    md = admin_client(tb.addr(tb.sasl_ssl_port), **conf).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [(HOST, tb.sasl_ssl_port)]


def kafka_python_round_trip(tb, port, n=10, **conf):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = unique_topic("tls-kp")
    create_topic(tb.bootstrap, topic)
    base = dict(bootstrap_servers=tb.addr(port), ssl_cafile=str(tb.pki.cert_path),
                ssl_check_hostname=True, request_timeout_ms=15000, **conf)
    p = KafkaProducer(**base)
    for i in range(n):
        p.send(topic, value=b"kp-%d" % i, partition=0).get(timeout=30)
    p.close()
    c = KafkaConsumer(**base, consumer_timeout_ms=10000, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    values = []
    deadline = time.monotonic() + 30
    while len(values) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            values.extend(r.value for r in recs)
    c.close()
    assert values == [b"kp-%d" % i for i in range(n)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_sasl_ssl(tb, mechanism):
    user, pw = f"kp-{mechanism.lower()}", "kp-secret"
    create_scram_user(tb, user, pw)
    kafka_python_round_trip(tb, tb.sasl_ssl_port, security_protocol="SASL_SSL", sasl_mechanism=mechanism,
                            sasl_plain_username=user, sasl_plain_password=pw)


def test_kafka_python_0_10_sasl_plain_over_tls(tb):
    """A 0.10.1 client: SaslHandshake v0, then raw tokens, inside TLS."""
    create_scram_user(tb, "kp-old", "old-secret")
    before = tb.log_text().count("raw SASL tokens after SaslHandshake v0")
    kafka_python_round_trip(tb, tb.sasl_ssl_port, security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                            sasl_plain_username="kp-old", sasl_plain_password="old-secret",
                            api_version=(0, 10, 1))
    assert tb.log_text().count("raw SASL tokens after SaslHandshake v0") > before


@pytest.mark.parametrize("mechanism", ["plain", "scram-sha-256", "scram-sha-512"])
def test_kafkajs_sasl_ssl(tb, mechanism):
    node = shutil.which("node")
    assert node and (JS_DIR / "node_modules" / "kafkajs").is_dir(), "kafkajs not installed"
    user, pw = f"kjs-{mechanism}", "kjs-secret"
    create_scram_user(tb, user, pw)
    topic = unique_topic("tls-kjs")
    create_topic(tb.bootstrap, topic)
    env = dict(os.environ, KAFKAJS_SSL_CA=str(tb.pki.cert_path))
    proc = subprocess.run([node, str(JS_DIR / "sasl.js"), tb.addr(tb.sasl_ssl_port), mechanism, user, pw,
                           topic, "5"], cwd=JS_DIR, capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["offsets"] == [0, 1, 2, 3, 4]
    assert [b["port"] for b in report["brokers"]] == [tb.sasl_ssl_port]
    got = consume(tb.bootstrap, topic, expect=5)
    assert [m.value() for m in got] == [f"kafkajs-sasl-{mechanism}-{i}".encode() for i in range(5)]


def test_kcat_sasl_ssl(tb):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed"
    create_scram_user(tb, "kcat-tls", "kcat-pw")
    p = subprocess.run([kcat, "-b", tb.addr(tb.sasl_ssl_port), "-L", "-m", "10",
                        "-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={tb.pki.cert_path}",
                        "-X", "sasl.mechanisms=SCRAM-SHA-256",
                        "-X", "sasl.username=kcat-tls", "-X", "sasl.password=kcat-pw"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"{HOST}:{tb.sasl_ssl_port}" in p.stdout, p.stdout


def test_mtls_principal_confluent_and_kafka_python(tb, alice):
    topic = unique_topic("tls-mtls")
    create_topic(tb.bootstrap, topic)
    conf = ssl_conf(tb, cert=alice)
    results = produce(tb.addr(tb.ssl_port), topic, [{"value": b"m%d" % i} for i in range(5)], conf=conf)
    assert all(r["error"] is None for r in results), results[:3]
    got = consume(tb.addr(tb.ssl_port), topic, expect=5, conf=conf)
    assert [m.value() for m in got] == [b"m%d" % i for i in range(5)]
    assert f"principal User:{ALICE_DN}" in tb.log_text()
    kafka_python_round_trip(tb, tb.ssl_port, security_protocol="SSL",
                            ssl_certfile=str(alice[0]), ssl_keyfile=str(alice[1]))


def test_requested_client_auth_accepts_with_and_without_certificate(tb, alice):
    bob = tb.pki.issue("bob", O="Shardline Tests", CN="bob")
    for cert in (None, bob):
        md = admin_client(tb.addr(tb.opt_port), **ssl_conf(tb, cert=cert)).list_topics(timeout=10)
        assert [(b.host, b.port) for b in md.brokers.values()] == [(HOST, tb.opt_port)]
    assert "principal User:CN=bob,O=Shardline Tests" in tb.log_text()


def test_tls_1_2_and_1_3(tb):
    for max_version, want in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (None, "TLSv1.3")]:
        with tls_socket(tb, tb.opt_port, max_version=max_version) as s:
            assert s.version() == want
            s.sendall(api_versions_frame(11))
            resp = read_response(s)
            assert resp is not None and struct.unpack(">ih", resp[:6]) == (11, 0)


# ------------------------------------------------------------------ refusals

def tls_refused(tb, port, cert):
    """True if a TLS client with `cert` gets no Kafka answer on `port`."""
    try:
        with tls_socket(tb, port, cert=cert) as s:
            # TLS 1.3 reports a refused client certificate after the
            # client's side of the handshake, at the first read.
            s.sendall(api_versions_frame())
            return read_response(s) is None
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_required_client_auth_refuses_missing_expired_and_untrusted(tb, tmp_path):
    expired = tb.pki.issue("expired", expired=True, O="Shardline Tests", CN="expired")
    rogue_ca = Ca(tmp_path / "rogue", name="Rogue CA")
    untrusted = rogue_ca.issue("mallory", CN="mallory")
    for cert, why in [(None, "peer sent no certificates"), (expired, "certificate expired"),
                      (untrusted, "UnknownIssuer")]:
        before = tb.log_text().count(why)
        assert tls_refused(tb, tb.ssl_port, cert), f"handshake with {cert} was accepted"
        assert tb.log_text().count(why) > before, f"no log line saying {why!r}"
        assert_still_serving(tb)
    # librdkafka sees the refusal too, and a valid certificate still works.
    errors = []
    admin = admin_client(tb.addr(tb.ssl_port), error_cb=lambda e: errors.append(str(e)),
                         **ssl_conf(tb, cert=expired))
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    assert tls_refused(tb, tb.ssl_port, None)
    alice = tb.pki.issue("alice2", O="Shardline Tests", CN="alice")
    assert not tls_refused(tb, tb.ssl_port, alice)


def test_plaintext_client_on_tls_port(tb):
    with socket.create_connection((HOST, tb.sasl_ssl_port), timeout=10) as s:
        s.sendall(api_versions_frame())
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    # At most a TLS alert record (content type 21), never a Kafka response.
    assert data == b"" or data[0] == 21, data[:16]
    assert "speaking plaintext to a TLS listener" in tb.log_text()
    errors = []
    admin = admin_client(tb.addr(tb.ssl_port), error_cb=lambda e: errors.append(str(e)))
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    assert_still_serving(tb)


def test_client_that_does_not_trust_the_broker(tb, tmp_path, alice):
    other = Ca(tmp_path / "other", name="Other CA")
    admin = admin_client(tb.addr(tb.ssl_port), **ssl_conf(tb, cert=alice, ca=other.cert_path))
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    assert_still_serving(tb)


def test_silent_client_is_dropped_after_the_handshake_timeout(tb):
    with socket.create_connection((HOST, tb.ssl_port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - t0 < 8
    assert "timed out after 1500 ms" in tb.log_text()


# ------------------------------------------------------------------ rotation

def replace_file(path, data):
    tmp = Path(str(path) + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def served_serial(tb, port):
    with tls_socket(tb, port) as s:
        return serial_of_der(s.getpeercert(binary_form=True))


def test_certificates_reload_without_dropping_connections(tb):
    from confluent_kafka import Producer
    create_scram_user(tb, "rotator", "rot-pw")
    topic = unique_topic("tls-rotate")
    create_topic(tb.bootstrap, topic)
    p = Producer({"bootstrap.servers": tb.addr(tb.sasl_ssl_port), "acks": "all",
                  **sasl_ssl_conf(tb, "SCRAM-SHA-256", "rotator", "rot-pw")})
    delivered = []

    def send(i):
        p.produce(topic, value=b"r%d" % i, partition=0,
                  on_delivery=lambda err, msg: delivered.append(err))
        p.flush(30)

    send(0)
    logins = tb.log_text().count("authenticated as User:rotator")
    old_serial = served_serial(tb, tb.opt_port)
    assert old_serial == serial_of(tb.server_cert.read_bytes())

    # Rotate: a new key and certificate from the same CA, renamed into place.
    new_cert, new_key = tb.pki.issue("server-rotated", server=True, CN="localhost")
    replace_file(tb.server_key, new_key.read_bytes())
    replace_file(tb.server_cert, new_cert.read_bytes())
    deadline = time.monotonic() + 10
    while served_serial(tb, tb.opt_port) == old_serial and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_serial(tb, tb.opt_port) == serial_of(new_cert.read_bytes())
    assert "reloaded TLS certificates" in tb.log_text()

    # The producer's connection (made with the old certificate) goes on.
    for i in range(1, 6):
        send(i)
    assert delivered == [None] * 6
    assert tb.log_text().count("authenticated as User:rotator") == logins, "the producer reconnected"

    # A half-written rotation keeps the last good certificates.
    good = served_serial(tb, tb.opt_port)
    replace_file(tb.server_cert, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    time.sleep(0.5)
    assert served_serial(tb, tb.opt_port) == good
    assert "TLS certificate reload failed" in tb.log_text()
    replace_file(tb.server_cert, new_cert.read_bytes())
    p.flush(5)


def test_bad_tls_config_stops_start_up_with_the_file_named(shardline_bin, tmp_path):
    ca = Ca(tmp_path / "pki")
    cert, key = ca.issue("server", server=True, CN="localhost")
    _, other_key = ca.issue("other", server=True, CN="localhost")
    port = free_port()
    cases = [
        (f'ssl_certificate_location = "{tmp_path}/missing.pem"\nssl_key_location = "{key}"\n', "missing.pem"),
        (f'ssl_certificate_location = "{cert}"\nssl_key_location = "{other_key}"\n', "key"),
        ("", "ssl_certificate_location"),
        (f'ssl_certificate_location = "{cert}"\nssl_key_location = "{key}"\nssl_client_auth = "required"\n',
         "ssl_truststore_location"),
    ]
    for i, (extra, expect) in enumerate(cases):
        cfg = tmp_path / f"bad{i}.toml"
        cfg.write_text(f'listeners = ["SSL://{HOST}:{port}"]\n' + extra)
        p = subprocess.run([str(shardline_bin), "serve", "--config", str(cfg), "--data-dir",
                            str(tmp_path / f"data{i}")], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, f"case {i} started"
        assert expect in p.stderr, f"case {i}: {p.stderr}"


class FlagsBroker(Broker):
    """Listeners and certificates given as `serve` flags, no config file."""

    def __init__(self, binary, base, cert, key):
        self.tls_port = free_port()
        self.cert, self.key = cert, key
        super().__init__(binary, base / "data", base / "broker.log", name="tls-flags")

    def command(self):
        return [str(self.binary), "serve", "--data-dir", str(self.data_dir),
                "--listeners", f"PLAINTEXT://{HOST}:{self.port},SSL://{HOST}:{self.tls_port}",
                "--ssl-certificate-location", str(self.cert), "--ssl-key-location", str(self.key)]


def test_listeners_and_certificates_as_serve_flags(shardline_bin, tmp_path):
    ca = Ca(tmp_path / "pki")
    cert, key = ca.issue("server", server=True, CN="localhost", kind="rsa")
    b = FlagsBroker(shardline_bin, tmp_path, cert, key)
    try:
        b.start()
        topic = unique_topic("tls-flags")
        create_topic(b.bootstrap, topic)
        conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca.cert_path)}
        results = produce(f"{HOST}:{b.tls_port}", topic, [{"value": b"v"}], conf=conf)
        assert results[0]["error"] is None, results
        assert [m.value() for m in consume(b.bootstrap, topic, expect=1)] == [b"v"]
    finally:
        b.close()


def test_cli_over_sasl_ssl_and_mtls(tb, shardline_bin, alice, tmp_path):
    env = dict(os.environ, SHARDLINE_TLS_CA=str(tb.pki.cert_path))
    sasl = ["--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", ADMIN, "--sasl-password", ADMIN_PW]
    topic = unique_topic("tls-cli")

    def cli(*args, port, extra=(), check=True):
        p = subprocess.run([str(shardline_bin), *args, "-b", tb.addr(port), *extra],
                           capture_output=True, text=True, timeout=60, env=env)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    cli("topic", "create", topic, port=tb.sasl_ssl_port, extra=sasl)
    cli("user", "create", "cli-tls", "--password", "cli-pw", port=tb.sasl_ssl_port, extra=sasl)
    assert "cli-tls" in cli("user", "list", port=tb.sasl_ssl_port, extra=sasl).stdout
    mtls = ["--tls-cert", str(alice[0]), "--tls-key", str(alice[1])]
    assert topic in cli("topic", "list", port=tb.ssl_port, extra=mtls).stdout
    # Without a client certificate the mTLS listener refuses, and says so.
    p = cli("topic", "list", port=tb.ssl_port, check=False)
    assert p.returncode != 0 and "CertificateRequired" in p.stderr, p.stderr
    # A CA that did not sign the broker's certificate: refused by the CLI.
    other = Ca(tmp_path / "other", name="Other CA")
    env["SHARDLINE_TLS_CA"] = str(other.cert_path)
    p = cli("topic", "list", port=tb.opt_port, check=False)
    assert p.returncode != 0 and "UnknownIssuer" in p.stderr, p.stderr


class MtlsAclBroker(ConfigBroker):
    """One SSL listener requiring client certificates, with the authorizer
    on and a certificate subject as the super user."""

    def __init__(self, binary, base, pki, cert, key):
        self.tls_port = free_port()
        self.config_path = base / "mtls.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="mtls-acl")
        self.config_path.write_text(
            f'listeners = ["SSL://{HOST}:{self.tls_port}"]\n'
            f'ssl_certificate_location = "{cert}"\nssl_key_location = "{key}"\n'
            f'ssl_truststore_location = "{pki.cert_path}"\nssl_client_auth = "required"\n'
            "authorizer_enabled = true\n"
            'super_users = ["User:CN=ops,O=Shardline Tests"]\n')

    @property
    def address(self):
        return (HOST, self.tls_port)


def test_mtls_principal_is_what_acls_see(shardline_bin, tmp_path):
    """The certificate subject is the principal the authorizer checks: a
    super user by subject, and a tenant given to another subject."""
    ca = Ca(tmp_path / "pki")
    cert, key = ca.issue("server", server=True, CN="localhost")
    ops = ca.issue("ops", O="Shardline Tests", CN="ops")
    alice = ca.issue("alice", O="Shardline Tests", OU="payments", CN="alice")
    b = MtlsAclBroker(shardline_bin, tmp_path, ca, cert, key)
    try:
        b.start()
        env = dict(os.environ, SHARDLINE_TLS_CA=str(ca.cert_path), SHARDLINE_TLS_CERT=str(ops[0]),
                   SHARDLINE_TLS_KEY=str(ops[1]))
        bootstrap = f"{HOST}:{b.tls_port}"

        def cli(*args, check=True, **extra_env):
            p = subprocess.run([str(shardline_bin), *args, "-b", bootstrap], capture_output=True, text=True,
                               timeout=60, env={**env, **extra_env})
            if check:
                assert p.returncode == 0, p.stderr
            return p

        cli("tenant", "create", "pay", "--principal", f"User:{ALICE_DN}")
        cli("topic", "create", "pay.orders")
        cli("topic", "create", "hr.salaries")
        conf = ssl_conf(Tb(ca), cert=alice)
        results = produce(bootstrap, "pay.orders", [{"value": b"ok"}], conf=conf)
        assert results[0]["error"] is None, results
        results = produce(bootstrap, "hr.salaries", [{"value": b"no"}], conf=conf)
        assert results[0]["error"] is not None and results[0]["error"].name() == "TOPIC_AUTHORIZATION_FAILED"
        topics = set(admin_client(bootstrap, **conf).list_topics(timeout=10).topics)
        assert "pay.orders" in topics and "hr.salaries" not in topics, topics
        # alice's certificate is not the super user's: no ACL changes for her.
        p = cli("acl", "list", check=False, SHARDLINE_TLS_CERT=str(alice[0]), SHARDLINE_TLS_KEY=str(alice[1]))
        assert p.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in p.stderr, p.stderr
    finally:
        b.close()


class Tb:
    """What ssl_conf needs of a broker fixture: its PKI."""

    def __init__(self, pki):
        self.pki = pki


def test_sasl_refusals_over_tls(tb, caplog):
    """Wrong password, unknown user and an unknown mechanism over SASL_SSL:
    refused with the SASL errors, and the listener serves on."""
    create_scram_user(tb, "tls-neg", "right")
    for mechanism, user, pw in [("SCRAM-SHA-256", "tls-neg", "wrong"), ("PLAIN", "nobody", "x")]:
        errors = []
        admin = admin_client(tb.addr(tb.sasl_ssl_port), error_cb=lambda e: errors.append(str(e)),
                             **sasl_ssl_conf(tb, mechanism, user, pw))
        with pytest.raises(Exception):
            admin.list_topics(timeout=5)
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            admin.poll(0.2)
        assert "Authentication failed" in " ".join(errors), errors
    log = tb.log_text()
    assert 'SCRAM-SHA-256 authentication failed: invalid credentials for user "tls-neg"' in log
    assert 'PLAIN authentication failed: unknown user "nobody"' in log
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KpError
    with pytest.raises(KpError):
        KafkaProducer(bootstrap_servers=tb.addr(tb.sasl_ssl_port), security_protocol="SASL_SSL",
                      ssl_cafile=str(tb.pki.cert_path), sasl_mechanism="OAUTHBEARER",
                      sasl_oauth_token_provider=_StaticToken(), request_timeout_ms=5000,
                      max_block_ms=5000)
    assert "UnsupportedSaslMechanism" in caplog.text, caplog.text
    assert 'SASL mechanism "OAUTHBEARER" is not enabled' in tb.log_text()
    md = admin_client(tb.addr(tb.sasl_ssl_port), **sasl_ssl_conf(tb, "SCRAM-SHA-256", "tls-neg", "right"))
    assert md.list_topics(timeout=10).brokers
    assert_still_serving(tb)


class _StaticToken:
    """kafka-python's OAUTHBEARER token provider interface (never accepted here)."""

    def token(self):
        return "not-a-token"
