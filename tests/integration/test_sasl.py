"""SASL on a SASL_PLAINTEXT listener, next to a PLAINTEXT one, with real
clients: confluent-kafka (PLAIN, SCRAM-SHA-256/512, users made with
AdminClient.alter_user_scram_credentials), kafka-python (PLAIN, SCRAM, and
0.10.1 protocol mode: SaslHandshake v0 + raw tokens), kafkajs, the
`shardline user` CLI; failures (wrong password, unknown user, unknown
mechanism, a request before authentication), after each of which the broker
keeps serving."""

import json
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    HOST, ConfigBroker, admin_client, consume, create_topic, free_port, produce, unique_topic,
)

JS_DIR = Path(__file__).resolve().parents[1] / "js"
ADMIN, ADMIN_PW = "admin", "admin-secret"


class SaslBroker(ConfigBroker):
    """A broker with a PLAINTEXT listener (self.port) and a SASL_PLAINTEXT one."""

    def __init__(self, binary, base, sasl_port):
        self.sasl_port = sasl_port
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="sasl")
        self.config_path.write_text(
            f'listeners = ["PLAINTEXT://{HOST}:{self.port}", "SASL_PLAINTEXT://{HOST}:{sasl_port}"]\n'
            f'sasl_bootstrap_user = "{ADMIN}"\n'
            f'sasl_bootstrap_password = "{ADMIN_PW}"\n'
            # The negative tests fail on purpose; keep the limiter out of the way.
            "sasl_max_failures = 10000\n"
        )

    @property
    def sasl_bootstrap(self):
        return f"{HOST}:{self.sasl_port}"


@pytest.fixture(scope="module")
def sb(shardline_bin, tmp_path_factory):
    b = SaslBroker(shardline_bin, tmp_path_factory.mktemp("broker-sasl"), free_port())
    try:
        b.start()
        yield b
    finally:
        b.close()


def sasl_conf(mechanism, user, password):
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def create_scram_user(sb, user, password, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512"),
                      conf=None):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    admin = admin_client(sb.sasl_bootstrap, **(conf or sasl_conf("SCRAM-SHA-512", ADMIN, ADMIN_PW)))
    ups = [
        UserScramCredentialUpsertion(
            user, ScramCredentialInfo(getattr(ScramMechanism, m.replace("-", "_")), 4096), password.encode())
        for m in mechanisms
    ]
    for f in admin.alter_user_scram_credentials(ups).values():
        f.result(timeout=30)


def assert_plaintext_works(sb):
    md = admin_client(sb.bootstrap).list_topics(timeout=10)
    assert md.brokers, "PLAINTEXT listener no longer answers"


def test_metadata_advertises_the_listener_of_the_client(sb):
    plain = admin_client(sb.bootstrap).list_topics(timeout=10)
    sasl = admin_client(sb.sasl_bootstrap, **sasl_conf("PLAIN", ADMIN, ADMIN_PW)).list_topics(timeout=10)
    assert [(b.host, b.port) for b in plain.brokers.values()] == [(HOST, sb.port)]
    assert [(b.host, b.port) for b in sasl.brokers.values()] == [(HOST, sb.sasl_port)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_produce_consume(sb, mechanism):
    user, pw = f"cf-{mechanism.lower()}", f"pw-{mechanism}"
    create_scram_user(sb, user, pw)
    conf = sasl_conf(mechanism, user, pw)
    topic = unique_topic("sasl-cf")
    create_topic(sb.bootstrap, topic)
    msgs = [{"value": f"{mechanism}-{i}".encode(), "key": b"k"} for i in range(20)]
    results = produce(sb.sasl_bootstrap, topic, msgs, conf=conf)
    assert all(r["error"] is None for r in results), results[:3]
    got = consume(sb.sasl_bootstrap, topic, expect=20, conf=conf)
    assert [m.value() for m in got] == [m["value"] for m in msgs]
    assert f"authenticated as User:{user}" in sb.log_text()


def kp_conf(sb, mechanism, user, password, **extra):
    c = dict(bootstrap_servers=sb.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
             sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password,
             request_timeout_ms=15000)
    c.update(extra)
    return c


def kafka_python_round_trip(sb, mechanism, user, password, **extra):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = unique_topic("sasl-kp")
    create_topic(sb.bootstrap, topic)
    p = KafkaProducer(**kp_conf(sb, mechanism, user, password, **extra))
    for i in range(10):
        p.send(topic, value=b"kp-%d" % i, partition=0).get(timeout=30)
    p.close()
    c = KafkaConsumer(**kp_conf(sb, mechanism, user, password, consumer_timeout_ms=10000,
                                auto_offset_reset="earliest", enable_auto_commit=False, **extra))
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    values = []
    deadline = time.monotonic() + 30
    while len(values) < 10 and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            values.extend(r.value for r in recs)
    c.close()
    assert values == [b"kp-%d" % i for i in range(10)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python(sb, mechanism):
    user, pw = f"kp-{mechanism.lower()}", "kp-secret"
    create_scram_user(sb, user, pw)
    kafka_python_round_trip(sb, mechanism, user, pw)


def test_kafka_python_0_10_raw_tokens(sb):
    """api_version=(0,10,1): SaslHandshake v0, then raw length-prefixed tokens."""
    user, pw = "kp-old", "old-secret"
    create_scram_user(sb, user, pw)
    before = sb.log_text().count("raw SASL tokens after SaslHandshake v0")
    kafka_python_round_trip(sb, "PLAIN", user, pw, api_version=(0, 10, 1))
    after = sb.log_text().count("raw SASL tokens after SaslHandshake v0")
    assert after > before, "the raw-token path was not used"


@pytest.mark.parametrize("mechanism", ["plain", "scram-sha-256"])
def test_kafkajs(sb, mechanism):
    node = shutil.which("node")
    assert node and (JS_DIR / "node_modules" / "kafkajs").is_dir(), "kafkajs not installed"
    user, pw = f"kjs-{mechanism}", "kjs-secret"
    create_scram_user(sb, user, pw)
    topic = unique_topic("sasl-kjs")
    create_topic(sb.bootstrap, topic)
    proc = subprocess.run([node, str(JS_DIR / "sasl.js"), sb.sasl_bootstrap, mechanism, user, pw, topic, "5"],
                          cwd=JS_DIR, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["offsets"] == [0, 1, 2, 3, 4]
    assert [b["port"] for b in report["brokers"]] == [sb.sasl_port]
    got = consume(sb.bootstrap, topic, expect=5)
    assert [m.value() for m in got] == [f"kafkajs-sasl-{mechanism}-{i}".encode() for i in range(5)]


def confluent_auth_error(sb, mechanism, user, password):
    """Connect a confluent admin client; return the error text it reports."""
    errors = []
    admin = admin_client(sb.sasl_bootstrap, error_cb=lambda e: errors.append(str(e)),
                         **sasl_conf(mechanism, user, password))
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        admin.poll(0.2)
    return " ".join(errors)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_wrong_password_and_unknown_user(sb, mechanism):
    create_scram_user(sb, "neg-user", "right")
    for user, pw in [("neg-user", "wrong"), ("nobody", "whatever")]:
        err = confluent_auth_error(sb, mechanism, user, pw)
        assert "Authentication failed" in err, err
        assert_plaintext_works(sb)
    log = sb.log_text()
    assert f'{mechanism} authentication failed: invalid credentials for user "neg-user"' in log
    assert f'{mechanism} authentication failed: unknown user "nobody"' in log


def test_unknown_mechanism(sb, caplog):
    """kafka-python gives up bootstrapping and logs the broker's
    UNSUPPORTED_SASL_MECHANISM (error 33); the enabled list is checked on
    the wire in test_unknown_mechanism_raw_reply_lists_enabled."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    class Token:
        def token(self):
            return "x"

    with pytest.raises(KafkaError) as e:
        KafkaProducer(bootstrap_servers=sb.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Token(),
                      request_timeout_ms=5000, max_block_ms=5000)
    assert "UnsupportedSaslMechanismError" in caplog.text or "UnsupportedSaslMechanism" in repr(e.value), caplog.text
    assert 'SASL mechanism "OAUTHBEARER" is not enabled' in sb.log_text()
    assert_plaintext_works(sb)


def frame(api_key, version, correlation_id, body=b""):
    client_id = b"raw-test"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def test_request_before_authentication_closes(sb):
    with socket.create_connection(("127.0.0.1", sb.sasl_port), timeout=10) as s:
        # ApiVersions v0 is allowed before authentication...
        s.sendall(frame(18, 0, 1))
        size = struct.unpack(">i", s.recv(4))[0]
        assert size > 0
        while size > 0:
            size -= len(s.recv(size))
        # ...Metadata v1 (all topics) is not: the broker closes.
        s.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
        assert s.recv(4) == b""
    assert "Metadata request before SASL authentication" in sb.log_text()
    assert_plaintext_works(sb)


def test_unknown_mechanism_raw_reply_lists_enabled(sb):
    """SaslHandshake v1 with an unknown mechanism: UNSUPPORTED_SASL_MECHANISM
    (33) and the enabled list; the connection stays open for another try."""
    mech = b"GSSAPI"
    with socket.create_connection(("127.0.0.1", sb.sasl_port), timeout=10) as s:
        s.sendall(frame(17, 1, 7, struct.pack(">h", len(mech)) + mech))
        size = struct.unpack(">i", s.recv(4))[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        corr, err, n = struct.unpack(">ihi", body[:10])
        assert (corr, err) == (7, 33)
        names, rest = [], body[10:]
        for _ in range(n):
            ln = struct.unpack(">h", rest[:2])[0]
            names.append(rest[2:2 + ln].decode())
            rest = rest[2 + ln:]
        assert names == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def test_user_cli(sb, shardline_bin):
    def cli(*args, check=True):
        p = subprocess.run([str(shardline_bin), *args, "-b", sb.sasl_bootstrap,
                            "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", ADMIN,
                            "--sasl-password", ADMIN_PW], capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stderr
        return p
    cli("user", "create", "cli-user", "--password", "cli-pw", "--mechanism", "SCRAM-SHA-256")
    listing = cli("user", "list").stdout
    line = [l for l in listing.splitlines() if l.startswith("cli-user")]
    assert line and "SCRAM-SHA-256 (8192 iterations)" in line[0] and "512" not in line[0], listing
    kafka_python_round_trip(sb, "SCRAM-SHA-256", "cli-user", "cli-pw")
    cli("user", "delete", "cli-user")
    assert "cli-user" not in cli("user", "list").stdout
    p = subprocess.run([str(shardline_bin), "topic", "list", "-b", sb.sasl_bootstrap,
                        "--sasl-mechanism", "PLAIN", "--sasl-user", "cli-user", "--sasl-password", "cli-pw"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "SASL_AUTHENTICATION_FAILED" in p.stderr, p.stderr


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_kcat_metadata(sb, mechanism):
    """Debian's kcat (librdkafka 2.0.2) repeats the client nonce in its SCRAM
    final message (librdkafka#4895); accepted as Kafka 3.8.1-3.9 do."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed"
    create_scram_user(sb, "kcat-user", "kcat-pw")
    p = subprocess.run([kcat, "-b", sb.sasl_bootstrap, "-L", "-m", "10",
                        "-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
                        "-X", "sasl.username=kcat-user", "-X", "sasl.password=kcat-pw"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"{HOST}:{sb.sasl_port}" in p.stdout, p.stdout
