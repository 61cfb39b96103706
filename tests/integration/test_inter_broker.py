"""Brokers talking to each other with the authorizer on: followers' fetches,
transaction markers and partition verification go over the inter-broker
listener (`inter_broker_listener_name`, Kafka's inter.broker.listener.name),
logged in with SASL as the inter-broker user, a super user. Clients and
anonymous connections keep needing their ACLs; a wrong inter-broker
password is reported, not a crash."""

import struct

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
    ResourceType,
)

import raw
from cluster import Cluster, wait_until
from conftest import HOST, ConfigBroker, free_port, running, unique_topic
from pki import Ca
from readback import read_to_end
from test_sasl import ADMIN, ADMIN_PW, create_scram_user, sasl_conf

ALICE, ALICE_PW = "alice", "alice-secret"
CLUSTER_AUTHORIZATION_FAILED = 31
WRITE_TXN_MARKERS = 27


class AuthzBroker(ConfigBroker):
    """One node: PLAINTEXT (anonymous) and SASL_PLAINTEXT listeners, the
    authorizer on, brokers' own traffic over `inter` (a listener name, or
    None for the default)."""

    def __init__(self, binary, base, inter="SASL_PLAINTEXT", extra="", tls=False):
        self.sasl_port = free_port()
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="authz")
        secure = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        self.client_conf = {}
        if tls:
            ca = Ca(base / "pki")
            cert, key = ca.issue("broker", server=True, CN="broker")
            extra += (f'ssl_certificate_location = "{cert}"\nssl_key_location = "{key}"\n'
                      f'ssl_truststore_location = "{ca.cert_path}"\n')
            self.client_conf = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(ca.cert_path)}
        self.config_path.write_text(
            f'listeners = ["PLAINTEXT://{HOST}:{self.port}", '
            f'"{secure}://{HOST}:{self.sasl_port}"]\n'
            f'sasl_bootstrap_user = "{ADMIN}"\n'
            f'sasl_bootstrap_password = "{ADMIN_PW}"\n'
            'authorizer_enabled = true\n'
            + (f'inter_broker_listener_name = "{inter}"\n' if inter else "")
            + extra
        )

    @property
    def sasl_bootstrap(self):
        return f"{HOST}:{self.sasl_port}"


def as_user(user, pw):
    return sasl_conf("SCRAM-SHA-512", user, pw)


def grant_alice(bootstrap, topic, txn_id, conf=None):
    """What a transactional producer and a read_committed consumer need,
    and nothing about the cluster."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **(conf or as_user(ADMIN, ADMIN_PW))})
    bindings = [
        AclBinding(kind, name, ResourcePatternType.LITERAL, f"User:{ALICE}", "*", op,
                   AclPermissionType.ALLOW)
        for kind, name, op in [
            (ResourceType.TOPIC, topic, AclOperation.WRITE),
            (ResourceType.TOPIC, topic, AclOperation.READ),
            (ResourceType.TOPIC, topic, AclOperation.DESCRIBE),
            (ResourceType.TRANSACTIONAL_ID, txn_id, AclOperation.WRITE),
            (ResourceType.TRANSACTIONAL_ID, txn_id, AclOperation.DESCRIBE),
        ]
    ]
    for f in admin.create_acls(bindings).values():
        f.result(timeout=30)


def run_transactions(bootstrap, topic, txn_id, partitions, conf=None):
    """Commit, abort, commit as alice, each on every partition; the values
    committed."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 0,
                  **(conf or as_user(ALICE, ALICE_PW))})
    p.init_transactions(30)
    committed = []
    for round_, outcome in enumerate(["commit", "abort", "commit"]):
        p.begin_transaction()
        for i in range(10):
            v = f"{outcome}-{round_}-{i}"
            p.produce(topic, v.encode(), partition=i % partitions)
            if outcome == "commit":
                committed.append(v)
        if outcome == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    return committed


def write_txn_markers_v1(sock, topic):
    """An anonymous WriteTxnMarkers v1 (flexible; request header v2): the
    top-level error code of the one partition's result."""
    name = topic.encode()
    body = (b"\x02"  # markers: compact array of 1
            + struct.pack(">qh?", 4242, 0, True)  # producer id, epoch, commit
            + b"\x02" + bytes([len(name) + 1]) + name  # topics: 1, compact name
            + b"\x02" + struct.pack(">i", 0) + b"\x00"  # partitions [0], tags
            + struct.pack(">i", 0) + b"\x00"  # coordinator epoch, tags
            + b"\x00")  # request tags
    client = b"raw-test"
    header = struct.pack(">hhih", WRITE_TXN_MARKERS, 1, 9, len(client)) + client + b"\x00"
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    resp = raw.read_response(sock)
    # correlation id, header tags, markers (1), producer id, topics (1),
    # name, partitions (1), partition index, error code.
    off = 4 + 1 + 1 + 8 + 1
    off += resp[off]  # compact string: length + 1, then the name
    off += 1 + 4
    (code,) = struct.unpack(">h", resp[off:off + 2])
    return code


@pytest.mark.parametrize("tls", [False, True], ids=["sasl_plaintext", "sasl_ssl"])
def test_transactions_complete_with_the_authorizer_on(shardline_bin, tmp_path, tls):
    """The coordinator writes its markers as the inter-broker user (over
    TLS too, verifying the broker's certificate): a transaction commits
    and aborts for a user with only topic and transactional-id ACLs, while
    an anonymous WriteTxnMarkers is refused."""
    inter = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    with running(AuthzBroker(shardline_bin, tmp_path, inter=inter, tls=tls)) as b:
        sec = {**as_user(ADMIN, ADMIN_PW), **b.client_conf}
        create_scram_user(b, ALICE, ALICE_PW, conf=sec)
        topic = unique_topic("authz-txn")
        admin = AdminClient({"bootstrap.servers": b.sasl_bootstrap, **sec})
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
        txn_id = f"tx-{topic}"
        grant_alice(b.sasl_bootstrap, topic, txn_id, conf=sec)
        committed = run_transactions(b.sasl_bootstrap, topic, txn_id, 2,
                                     conf={**as_user(ALICE, ALICE_PW), **b.client_conf})
        got = read_to_end(b.sasl_bootstrap, topic, 2, isolation="read_committed",
                          config=sec, timeout=30)
        assert sorted(m.value().decode() for m in got) == sorted(committed)
        assert f"inter-broker listener: {inter} (peers see User:admin)" in b.log_text()
        s = raw.connect(b)
        try:
            assert write_txn_markers_v1(s, topic) == CLUSTER_AUTHORIZATION_FAILED
        finally:
            s.close()


def test_a_wrong_inter_broker_password_is_reported(shardline_bin, tmp_path):
    """The broker keeps serving; its markers cannot be written, so a
    committed transaction holds read_committed readers at the LSO, and the
    log says why."""
    extra = f'inter_broker_sasl_username = "{ADMIN}"\ninter_broker_sasl_password = "wrong"\n'
    with running(AuthzBroker(shardline_bin, tmp_path, extra=extra)) as b:
        create_scram_user(b, ALICE, ALICE_PW)
        topic = unique_topic("authz-bad")
        admin = AdminClient({"bootstrap.servers": b.sasl_bootstrap, **as_user(ADMIN, ADMIN_PW)})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        txn_id = f"tx-{topic}"
        grant_alice(b.sasl_bootstrap, topic, txn_id)
        p = Producer({"bootstrap.servers": b.sasl_bootstrap, "transactional.id": txn_id,
                      **as_user(ALICE, ALICE_PW)})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic, b"held")
        p.commit_transaction(30)
        wait_until("the failed login logged",
                   lambda: "inter-broker login failed" in b.log_text(), timeout=20)
        assert "SASL SCRAM-SHA-512 as \"admin\"" in b.log_text()
        got = read_to_end(b.sasl_bootstrap, topic, 1, isolation="read_committed",
                          config=as_user(ADMIN, ADMIN_PW), timeout=10)
        assert got == [], "the marker cannot have been written"
        assert b.is_running()


def test_a_named_listener_that_does_not_exist_is_refused(shardline_bin, tmp_path):
    b = AuthzBroker(shardline_bin, tmp_path, inter="INTERNAL")
    with pytest.raises(Exception):
        b.start(timeout=10)
    b.close()
    assert "inter_broker_listener_name: no client listener is named INTERNAL" in b.log_text()


def test_three_nodes_replicate_and_commit_with_the_authorizer_on(shardline_bin, tmp_path):
    """RF=3 with the authorizer on: followers fetch as the inter-broker user
    (the ISR fills), transactions commit across brokers, acks=all writes
    survive the leader's kill -9."""
    c = Cluster(shardline_bin, tmp_path, sasl=True, extra_args=[
        "--sasl-bootstrap-user", ADMIN, "--sasl-bootstrap-password", ADMIN_PW,
        "--authorizer-enabled", "true", "--inter-broker-listener-name", "SASL_PLAINTEXT"])

    def boot(*ids):
        return ",".join(f"{HOST}:{c.nodes[i].sasl_port}" for i in ids or sorted(c.nodes)
                        if c.nodes[i].is_running())

    try:
        c.start()
        admin = AdminClient({"bootstrap.servers": boot(1), **as_user(ADMIN, ADMIN_PW)})
        wait_until("three brokers", lambda: len(admin.list_topics(timeout=5).brokers) == 3)
        create_scram_user(type("B", (), {"sasl_bootstrap": boot(1)}), ALICE, ALICE_PW)
        topic = unique_topic("authz-rf3")
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[
            topic].result(30)
        txn_id = f"tx-{topic}"
        grant_alice(boot(1), topic, txn_id)

        def full_isr():
            md = admin.list_topics(topic, timeout=5).topics[topic]
            return all(len(p.isrs) == 3 for p in md.partitions.values())
        wait_until("every partition's ISR has all three replicas", full_isr, timeout=30)

        p = Producer({"bootstrap.servers": boot(), "acks": "all", "enable.idempotence": True,
                      **as_user(ALICE, ALICE_PW)})
        errors = []
        for i in range(300):
            p.produce(topic, str(i).encode(), partition=i % 3,
                      on_delivery=lambda err, m: err and errors.append(err))
        assert p.flush(30) == 0 and not errors, errors
        committed = run_transactions(boot(), topic, txn_id, 3)
        wait_until("the ISR still full", full_isr, timeout=30)

        leader = admin.list_topics(topic, timeout=5).topics[topic].partitions[0].leader
        c.nodes[leader].kill9()
        rest = [i for i in sorted(c.nodes) if i != leader]
        admin2 = AdminClient({"bootstrap.servers": boot(*rest), **as_user(ADMIN, ADMIN_PW)})

        def moved():
            md = admin2.list_topics(topic, timeout=5).topics[topic]
            return md.partitions[0].leader not in (leader, -1)
        wait_until("partition 0 led by a survivor", moved, timeout=30)
        # The killed node may have been the transaction coordinator with the
        # last commit's markers unsent: its successor sends them, and until
        # then the last stable offset holds read_committed readers back.
        values = []

        def all_read():
            got = read_to_end(boot(*rest), topic, 3, isolation="read_committed",
                              config=as_user(ADMIN, ADMIN_PW), timeout=30)
            values[:] = [m.value().decode() for m in got]
            return len(values) >= 300 + len(committed)
        wait_until("every committed record readable", all_read, timeout=90, every=1)
        assert sorted(v for v in values if not v.isdigit()) == sorted(committed)
        assert sorted(int(v) for v in values if v.isdigit()) == list(range(300))
    finally:
        c.close()


def test_plain_clients_still_need_acls(shardline_bin, tmp_path):
    """The inter-broker user's powers are not everyone's: alice without a
    topic ACL is refused."""
    with running(AuthzBroker(shardline_bin, tmp_path)) as b:
        create_scram_user(b, ALICE, ALICE_PW)
        topic = unique_topic("authz-none")
        admin = AdminClient({"bootstrap.servers": b.sasl_bootstrap, **as_user(ADMIN, ADMIN_PW)})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        p = Producer({"bootstrap.servers": b.sasl_bootstrap, "message.timeout.ms": 10000,
                      **as_user(ALICE, ALICE_PW)})
        out = []
        p.produce(topic, b"x", on_delivery=lambda err, m: out.append(err))
        p.flush(15)
        assert out and out[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
