"""Kafka ACL authorization with real clients: a broker with
`authorizer_enabled = true`, `super_users = ["User:admin"]` and a
SASL_PLAINTEXT listener; SCRAM users made by the admin; ACLs managed with
confluent-kafka's and kafka-python's admin clients and `shardline acl`."""

import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, NewTopic,
    ResourcePatternType, ResourceType,
)

from conftest import admin_client, free_port, unique_topic
from test_sasl import ADMIN, ADMIN_PW, SaslBroker, create_scram_user, kp_conf, sasl_conf

PW = "pw-secret"


class AclBroker(SaslBroker):
    def __init__(self, binary, base, sasl_port):
        super().__init__(binary, base, sasl_port)
        with open(self.config_path, "a") as f:
            f.write('authorizer_enabled = true\nsuper_users = ["User:admin"]\n')


@pytest.fixture(scope="module")
def ab(shardline_bin, tmp_path_factory):
    b = AclBroker(shardline_bin, tmp_path_factory.mktemp("broker-acl"), free_port())
    try:
        b.start()
        yield b
    finally:
        # The cached clients go with the broker (else they reconnect to
        # its closed port until the interpreter exits).
        _ADMINS.clear()
        b.close()


def conf(user):
    return sasl_conf("SCRAM-SHA-256", user, ADMIN_PW if user == ADMIN else PW)


_ADMINS = {}


def admin_of(b, user=ADMIN):
    """One AdminClient per user, kept alive: a client garbage-collected
    while a future is pending fails it with _DESTROY."""
    key = (b.sasl_bootstrap, user)
    if key not in _ADMINS:
        _ADMINS[key] = admin_client(b.sasl_bootstrap, **conf(user))
    return _ADMINS[key]


def user(b, name):
    create_scram_user(b, name, PW)
    return name


def make_topic(b, name, partitions=1):
    fs = admin_of(b).create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    fs[name].result(timeout=30)


def allow(b, principal, op, kind, name, pattern=ResourcePatternType.LITERAL,
          perm=AclPermissionType.ALLOW):
    binding = AclBinding(kind, name, pattern, f"User:{principal}", "*", op, perm)
    for f in admin_of(b).create_acls([binding]).values():
        f.result(timeout=30)
    return binding


def try_produce(b, who, topic, timeout=15):
    """Produce one message; the delivery error (None on success)."""
    p = Producer({"bootstrap.servers": b.sasl_bootstrap, "message.timeout.ms": timeout * 1000,
                  **conf(who)})
    out = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: out.append(err))
    p.flush(timeout + 5)
    assert out, "no delivery report"
    return out[0]


def try_consume(b, who, topic, group, expect=1, timeout=30):
    """Read `expect` messages as a member of `group` (subscribe: librdkafka
    reports a topic it may not read as a consumer error then); returns
    (messages, error codes seen)."""
    errors = []
    c = Consumer({"bootstrap.servers": b.sasl_bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "error_cb": lambda err: errors.append(err.code()), **conf(who)})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error().code())
            else:
                got.append(m)
            if KafkaError.TOPIC_AUTHORIZATION_FAILED in errors:
                break
    finally:
        c.close()
    return got, errors


def test_producer_and_consumer_need_acls(ab):
    alice = user(ab, "alice")
    topic = unique_topic("acl")
    make_topic(ab, topic)
    assert try_produce(ab, alice, topic).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert try_produce(ab, ADMIN, topic) is None
    # librdkafka asks the group coordinator even for assign(): let it.
    group = unique_topic("alice-g")
    allow(ab, alice, AclOperation.READ, ResourceType.GROUP, group)
    got, errors = try_consume(ab, alice, topic, group)
    assert not got and KafkaError.TOPIC_AUTHORIZATION_FAILED in errors, errors
    allow(ab, alice, AclOperation.WRITE, ResourceType.TOPIC, topic)
    allow(ab, alice, AclOperation.READ, ResourceType.TOPIC, topic)
    assert try_produce(ab, alice, topic) is None
    got, errors = try_consume(ab, alice, topic, group, expect=2)
    assert [m.value() for m in got] == [b"v", b"v"], errors


def test_describe_and_delete_acls_with_confluent(ab):
    topic = unique_topic("acl-cf")
    made = allow(ab, "cf-user", AclOperation.DESCRIBE, ResourceType.TOPIC, topic)
    admin = admin_of(ab)
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(flt).result(timeout=30) == [made]
    deleted = admin.delete_acls([flt])[flt].result(timeout=30)
    assert deleted == [made]
    assert admin.describe_acls(flt).result(timeout=30) == []


def test_acls_with_kafka_python(ab):
    from kafka.admin import (
        ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
        KafkaAdminClient, ResourcePattern, ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpType
    topic = unique_topic("acl-kp")
    admin = KafkaAdminClient(**kp_conf(ab, "SCRAM-SHA-512", ADMIN, ADMIN_PW))
    try:
        acl = ACL(principal="User:kp", host="*", operation=ACLOperation.READ,
                  permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePattern(KpType.TOPIC, topic, ACLResourcePatternType.LITERAL))
        res = admin.create_acls([acl])
        assert res["succeeded"] and not res["failed"], res
        flt = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                        permission_type=ACLPermissionType.ANY,
                        resource_pattern=ResourcePatternFilter(KpType.TOPIC, topic,
                                                               ACLResourcePatternType.MATCH))
        acls, err = admin.describe_acls(flt)
        assert err.errno == 0 and [(a.principal, a.operation) for a in acls] == [("User:kp", ACLOperation.READ)]
        [(_, matched, err)] = admin.delete_acls([flt])
        assert err.errno == 0 and len(matched) == 1
        acls, _ = admin.describe_acls(flt)
        assert acls == []
    finally:
        admin.close()


def test_metadata_hides_topics_without_describe(ab):
    bob = user(ab, "bob")
    seen, hidden = unique_topic("seen"), unique_topic("hidden")
    make_topic(ab, seen)
    make_topic(ab, hidden)
    allow(ab, bob, AclOperation.DESCRIBE, ResourceType.TOPIC, seen)
    md = admin_of(ab, bob).list_topics(timeout=10)
    assert seen in md.topics and hidden not in md.topics
    assert hidden in admin_of(ab).list_topics(timeout=10).topics
    named = admin_of(ab, bob).list_topics(topic=hidden, timeout=10)
    assert named.topics[hidden].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Asking by name does not auto-create a topic the user may not see.
    missing = unique_topic("nocreate")
    admin_of(ab, bob).list_topics(topic=missing, timeout=10)
    assert missing not in admin_of(ab).list_topics(timeout=10).topics


def commit_group(b, who, group, topic):
    c = Consumer({"bootstrap.servers": b.sasl_bootstrap, "group.id": group, **conf(who)})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        c.close()


def test_list_groups_hides_groups_and_group_read_is_needed(ab):
    carol = user(ab, "carol")
    topic = unique_topic("acl-g")
    make_topic(ab, topic)
    g_yes, g_no = unique_topic("gyes"), unique_topic("gno")
    commit_group(ab, ADMIN, g_yes, topic)
    commit_group(ab, ADMIN, g_no, topic)
    allow(ab, carol, AclOperation.DESCRIBE, ResourceType.GROUP, g_yes)
    listed = admin_of(ab, carol).list_consumer_groups().result(timeout=30)
    ids = {g.group_id for g in listed.valid}
    assert g_yes in ids and g_no not in ids
    all_ids = {g.group_id for g in admin_of(ab).list_consumer_groups().result(timeout=30).valid}
    assert {g_yes, g_no} <= all_ids
    # READ on the topic but not on the group: GROUP_AUTHORIZATION_FAILED.
    allow(ab, carol, AclOperation.READ, ResourceType.TOPIC, topic)
    errors = []
    c = Consumer({"bootstrap.servers": ab.sasl_bootstrap, "group.id": g_no,
                  "error_cb": lambda err: errors.append(err.code()), **conf(carol)})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and KafkaError.GROUP_AUTHORIZATION_FAILED not in errors:
            m = c.poll(0.5)
            if m is not None and m.error():
                errors.append(m.error().code())
    finally:
        c.close()
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in errors, errors


def test_non_super_user_cannot_change_users_or_acls(ab):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    mallory = user(ab, "mallory")
    admin = admin_of(ab, mallory)
    up = UserScramCredentialUpsertion("evil", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"x")
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([up])["evil"].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    binding = AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:mallory", "*",
                         AclOperation.ALL, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as e:
        admin.create_acls([binding])[binding].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # confluent-kafka 2.x drops DescribeAcls' top-level error and returns
    # nothing; kafka-python raises it.
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(everything).result(timeout=30) == []
    assert admin_of(ab).describe_acls(everything).result(timeout=30) != []
    from kafka.admin import (
        ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpType
    from kafka.errors import ClusterAuthorizationFailedError
    kp = KafkaAdminClient(**kp_conf(ab, "SCRAM-SHA-256", mallory, PW))
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            kp.describe_acls(ACLFilter(
                principal=None, host=None, operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KpType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        kp.close()


def test_prefixed_acls(ab):
    dave = user(ab, "dave")
    mine, other = unique_topic("tenantA.orders"), unique_topic("tenantB.orders")
    make_topic(ab, mine)
    make_topic(ab, other)
    for op in (AclOperation.WRITE, AclOperation.READ):
        allow(ab, dave, op, ResourceType.TOPIC, "tenantA.", pattern=ResourcePatternType.PREFIXED)
    md = admin_of(ab, dave).list_topics(timeout=10)
    assert mine in md.topics and other not in md.topics
    assert all(t.startswith("tenantA.") for t in md.topics)
    assert try_produce(ab, dave, mine) is None
    assert try_produce(ab, dave, other).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    group = unique_topic("dave-g")
    allow(ab, dave, AclOperation.READ, ResourceType.GROUP, group)
    got, _ = try_consume(ab, dave, mine, group)
    assert len(got) == 1


def test_deny_beats_allow(ab):
    eve = user(ab, "eve")
    open_topic, closed = unique_topic("open"), unique_topic("closed")
    make_topic(ab, open_topic)
    make_topic(ab, closed)
    allow(ab, eve, AclOperation.ALL, ResourceType.TOPIC, "*")
    allow(ab, eve, AclOperation.WRITE, ResourceType.TOPIC, closed, perm=AclPermissionType.DENY)
    assert try_produce(ab, eve, open_topic) is None
    assert try_produce(ab, eve, closed).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The deny is of WRITE only: READ still works.
    assert try_produce(ab, ADMIN, closed) is None
    group = unique_topic("eve-g")
    allow(ab, eve, AclOperation.READ, ResourceType.GROUP, group)
    got, _ = try_consume(ab, eve, closed, group)
    assert len(got) == 1


def run_cli(shardline_bin, b, *args):
    p = subprocess.run([str(shardline_bin), "acl", *args, "-b", b.sasl_bootstrap,
                        "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", ADMIN,
                        "--sasl-password", ADMIN_PW],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_cli_round_trip(ab, shardline_bin):
    topic = unique_topic("acl-cli")
    out = run_cli(shardline_bin, ab, "add", "--allow-principal", "User:frank", "--operation", "Read",
                  "--operation", "Describe", "--topic", topic)
    assert "added 2 ACL(s)" in out
    listed = run_cli(shardline_bin, ab, "list", "--topic", topic)
    rows = [line.split() for line in listed.splitlines() if topic in line]
    assert sorted(r[5] for r in rows) == ["DESCRIBE", "READ"]
    assert all(r[3] == "User:frank" and r[6] == "ALLOW" for r in rows)
    # The ACLs are real: confluent-kafka sees them.
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    assert len(admin_of(ab).describe_acls(flt).result(timeout=30)) == 2
    out = run_cli(shardline_bin, ab, "remove", "--topic", topic, "--operation", "Read")
    assert "removed 1 ACL(s)" in out
    listed = run_cli(shardline_bin, ab, "list", "--topic", topic)
    assert "DESCRIBE" in listed and "READ" not in listed.split(topic, 1)[1]


def test_acls_survive_restart(ab):
    topic = unique_topic("acl-restart")
    made = allow(ab, "restart-user", AclOperation.READ, ResourceType.TOPIC, topic)
    ab.restart()
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    assert admin_of(ab).describe_acls(flt).result(timeout=30) == [made]
    # Kept in the metadata log, not a file of their own.
    assert not (ab.data_dir / "acls.json").exists()


def test_an_acl_file_from_before_the_metadata_log_is_imported(shardline_bin, tmp_path):
    b = AclBroker(shardline_bin, tmp_path, free_port())
    b.data_dir.mkdir(parents=True, exist_ok=True)
    (b.data_dir / "acls.json").write_text(
        '{"version": 1, "acls": [{"resource_type": "TOPIC", "resource_name": "old-t", '
        '"pattern_type": "LITERAL", "principal": "User:old", "host": "*", '
        '"operation": "READ", "permission": "ALLOW"}]}')
    flt = AclBindingFilter(ResourceType.TOPIC, "old-t", ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)

    def described():
        admin = admin_client(b.sasl_bootstrap, **conf(ADMIN))  # alive until the result
        got = admin.describe_acls(flt).result(timeout=30)
        return [(a.name, a.principal, a.operation) for a in got]

    try:
        b.start()
        assert described() == [("old-t", "User:old", AclOperation.READ)]
        assert not (b.data_dir / "acls.json").exists()
        assert (b.data_dir / "acls.json.migrated").exists()
        b.restart()
        assert described() == [("old-t", "User:old", AclOperation.READ)]
    finally:
        b.close()


def test_corrupt_acl_file_stops_the_broker(broker_factory):
    b = broker_factory(start=False)
    b.data_dir.mkdir(parents=True, exist_ok=True)
    (b.data_dir / "acls.json").write_text("{not json")
    with pytest.raises(RuntimeError) as e:
        b.start()
    assert "acls.json" in str(e.value) and "corrupt" in str(e.value)


def test_acl_apis_without_authorizer_answer_security_disabled(bootstrap):
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:a", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    admin = admin_client(bootstrap)
    with pytest.raises(KafkaException) as e:
        admin.create_acls([binding])[binding].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
