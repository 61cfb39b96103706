"""Tenants (`shardline tenant create`) on a broker with the ACL authorizer:
two tenants with their own users, each seeing and using only the topics and
groups under its prefix, with real clients (confluent-kafka, kafka-python);
the tenant's quota is in place; `tenant delete` takes the access away."""

import subprocess
import time

import pytest

from conftest import HOST, ConfigBroker, admin_client, free_port

ADMIN, ADMIN_PW = "admin", "admin-secret"


class TenantBroker(ConfigBroker):
    def __init__(self, binary, base):
        self.sasl_port = free_port()
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="tenants")
        self.config_path.write_text(
            f'listeners = ["PLAINTEXT://{HOST}:{self.port}", "SASL_PLAINTEXT://{HOST}:{self.sasl_port}"]\n'
            f'sasl_bootstrap_user = "{ADMIN}"\nsasl_bootstrap_password = "{ADMIN_PW}"\n'
            # No super_users: the bootstrap user is one.
            "authorizer_enabled = true\n"
            "auto_create_topics_enable = false\n")

    @property
    def sasl_bootstrap(self):
        return f"{HOST}:{self.sasl_port}"


@pytest.fixture(scope="module")
def tb(shardline_bin, tmp_path_factory):
    b = TenantBroker(shardline_bin, tmp_path_factory.mktemp("broker-tenants"))
    try:
        b.start()
        yield b
    finally:
        b.close()


def cli(tb, shardline_bin, *args, user=ADMIN, password=ADMIN_PW, check=True):
    p = subprocess.run([str(shardline_bin), *args, "-b", tb.sasl_bootstrap, "--sasl-mechanism", "SCRAM-SHA-256",
                        "--sasl-user", user, "--sasl-password", password],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, f"{args}: {p.stderr}"
    return p


def conf(user, password):
    return {"bootstrap.servers": None, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password}


def admin_as(tb, user, password):
    c = conf(user, password)
    c.pop("bootstrap.servers")
    return admin_client(tb.sasl_bootstrap, **c)


@pytest.fixture(scope="module")
def tenants(tb, shardline_bin):
    for user in ("alice", "bob"):
        cli(tb, shardline_bin, "user", "create", user, "--password", f"{user}-pw")
    cli(tb, shardline_bin, "tenant", "create", "acme", "--user", "alice", "--producer-byte-rate", "2000000")
    cli(tb, shardline_bin, "tenant", "create", "globex", "--user", "bob")
    return {"acme": ("alice", "alice-pw"), "globex": ("bob", "bob-pw")}


def create_topics_as(tb, user, pw, *names):
    from confluent_kafka.admin import NewTopic
    admin = admin_as(tb, user, pw)  # kept alive until the futures are done
    fs = admin.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=30)
    out = {}
    for name, f in fs.items():
        try:
            f.result(timeout=30)
            out[name] = None
        except Exception as e:  # noqa: BLE001 - the error is what we check
            out[name] = e.args[0].name() if e.args and hasattr(e.args[0], "name") else str(e)
    return out


def test_tenants_create_only_their_own_topics(tb, tenants):
    res = create_topics_as(tb, "alice", "alice-pw", "acme.orders", "globex.stolen", "plain")
    assert res["acme.orders"] is None
    assert res["globex.stolen"] == "TOPIC_AUTHORIZATION_FAILED"
    assert res["plain"] == "TOPIC_AUTHORIZATION_FAILED"
    res = create_topics_as(tb, "bob", "bob-pw", "globex.payments")
    assert res["globex.payments"] is None


def test_tenants_see_only_their_topics(tb, tenants):
    create_topics_as(tb, "alice", "alice-pw", "acme.seen")
    create_topics_as(tb, "bob", "bob-pw", "globex.seen")
    alice = set(admin_as(tb, "alice", "alice-pw").list_topics(timeout=10).topics)
    bob = set(admin_as(tb, "bob", "bob-pw").list_topics(timeout=10).topics)
    assert "acme.seen" in alice and not any(t.startswith("globex.") for t in alice), alice
    assert "globex.seen" in bob and not any(t.startswith("acme.") for t in bob), bob
    # The super user sees both.
    every = set(admin_as(tb, ADMIN, ADMIN_PW).list_topics(timeout=10).topics)
    assert {"acme.seen", "globex.seen"} <= every


def test_tenant_cannot_produce_or_consume_another_tenants_topic(tb, tenants):
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    create_topics_as(tb, "bob", "bob-pw", "globex.secret")
    create_topics_as(tb, "alice", "alice-pw", "acme.mine")
    c = conf("alice", "alice-pw")
    c["bootstrap.servers"] = tb.sasl_bootstrap
    p = Producer({**c, "acks": "all", "message.timeout.ms": 8000})
    results = {}
    for topic in ("acme.mine", "globex.secret"):
        p.produce(topic, b"x", partition=0,
                  on_delivery=lambda err, msg, t=topic: results.__setitem__(t, err))
    p.flush(20)
    assert results["acme.mine"] is None
    assert results["globex.secret"] is not None
    assert results["globex.secret"].name() == "TOPIC_AUTHORIZATION_FAILED", results
    # Reading: own group and topic work, the other tenant's group is refused.
    cons = Consumer({**c, "group.id": "acme.readers", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    cons.assign([TopicPartition("acme.mine", 0, 0)])
    got = None
    deadline = time.monotonic() + 20
    while got is None and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got = m.value()
    assert got == b"x"
    cons.commit(asynchronous=False)
    cons.close()
    errors = []
    other = Consumer({**c, "group.id": "globex.readers", "error_cb": lambda err: errors.append(err.code())})
    other.subscribe(["acme.mine"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and KafkaError.GROUP_AUTHORIZATION_FAILED not in errors:
        m = other.poll(0.5)
        if m is not None and m.error():
            errors.append(m.error().code())
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in errors, errors
    other.close()


def test_tenant_groups_are_hidden_from_other_tenants(tb, tenants):
    from confluent_kafka import Consumer
    create_topics_as(tb, "bob", "bob-pw", "globex.feed")
    c = conf("bob", "bob-pw")
    c["bootstrap.servers"] = tb.sasl_bootstrap
    cons = Consumer({**c, "group.id": "globex.workers", "auto.offset.reset": "earliest"})
    cons.subscribe(["globex.feed"])
    deadline = time.monotonic() + 30
    while not cons.assignment() and time.monotonic() < deadline:
        cons.poll(0.2)
    assert cons.assignment()
    try:
        def groups(user, pw):
            admin = admin_as(tb, user, pw)
            return {g.group_id for g in admin.list_consumer_groups().result(timeout=20).valid}
        assert "globex.workers" in groups("bob", "bob-pw")
        assert "globex.workers" not in groups("alice", "alice-pw")
        assert "globex.workers" in groups(ADMIN, ADMIN_PW)
    finally:
        cons.close()


def test_kafka_python_tenant_sees_only_its_topics(tb, tenants):
    from kafka import KafkaConsumer
    create_topics_as(tb, "alice", "alice-pw", "acme.kp")
    c = KafkaConsumer(bootstrap_servers=tb.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="bob", sasl_plain_password="bob-pw",
                      request_timeout_ms=15000)
    try:
        topics = c.topics()
    finally:
        c.close()
    assert not any(t.startswith("acme.") for t in topics), topics


def test_tenant_list_quota_and_delete(tb, shardline_bin, tenants):
    out = cli(tb, shardline_bin, "tenant", "list").stdout
    assert "acme." in out and "User:alice" in out and "globex." in out and "User:bob" in out, out
    quotas = cli(tb, shardline_bin, "quota", "list").stdout
    assert "alice" in quotas and "producer_byte_rate" in quotas and "2000000" in quotas, quotas
    # A tenant user cannot make itself another tenant.
    p = cli(tb, shardline_bin, "tenant", "create", "evil", "--user", "alice", user="alice",
            password="alice-pw", check=False)
    assert p.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in p.stderr, p.stderr
    # Nor lift its own quota.
    p = cli(tb, shardline_bin, "quota", "set", "--user", "alice", "--producer-byte-rate", "999999999",
            user="alice", password="alice-pw", check=False)
    assert p.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in p.stderr, p.stderr
    create_topics_as(tb, "bob", "bob-pw", "globex.later")
    cli(tb, shardline_bin, "tenant", "create", "temp", "--user", "bob")
    cli(tb, shardline_bin, "tenant", "delete", "temp")
    res = create_topics_as(tb, "bob", "bob-pw", "temp.x")
    assert res["temp.x"] == "TOPIC_AUTHORIZATION_FAILED"
    assert "temp." not in cli(tb, shardline_bin, "tenant", "list").stdout
