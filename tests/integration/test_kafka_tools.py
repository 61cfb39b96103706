"""Apache Kafka's own command-line tools (Kafka 4.4.0, run from the jars of
tests/java/kafka-dist, the main classes bin/kafka-*.sh would start) against
Shardline: kafka-topics, kafka-configs (topics, brokers, SCRAM users),
kafka-console-producer/-consumer, kafka-consumer-groups, kafka-acls,
kafka-delete-records, kafka-get-offsets, the producer and consumer perf
tests, and kafka-verifiable-producer/-consumer (the pair Kafka's system
tests use to prove that nothing acknowledged is lost or duplicated).

Each test does a real round trip with the tool and checks its output against
concrete values, cross-checked with confluent-kafka. Where a tool's output is
stable, the same scenario also runs against Apache Kafka (the `kafka_ref`
broker) and the two outputs are compared, modulo topic ids, node ids, hosts,
ports, consumer ids and row order. Differences that are Kafka's own (its
KRaft cluster-level `min.insync.replicas`, APIs Shardline does not serve) are
normalized with a comment saying why.
"""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter, AclOperation, AclPermissionType, ConfigResource, ConfigSource, NewTopic, ResourcePatternType,
    ResourceType,
)

from conftest import (
    Broker, admin_client, assert_delivered, consumer_conf, consume, create_topic, free_port, produce,
    running, unique_topic, watermarks,
)
from java import run_java
from test_acls import AclBroker
from test_sasl import ADMIN, ADMIN_PW, create_scram_user, sasl_conf

TOOLS = "org.apache.kafka.tools."
SHARDLINE_NODE, KAFKA_NODE = 0, 1

# The tools log through log4j2; WARN keeps their stdout to what they print.
LOG4J2 = """Configuration:
  Appenders:
    Console: {name: STDERR, target: SYSTEM_ERR, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDERR}]}
"""


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    """tool(main_class, *args, check=True, input=None) -> CompletedProcess;
    main classes are relative to org.apache.kafka.tools."""
    conf = tmp_path_factory.mktemp("kafka-tools") / "log4j2.yaml"
    conf.write_text(LOG4J2)

    def run(main_class, *args, check=True, input=None, timeout=120):
        return run_java("kafka-dist", TOOLS + main_class, args, timeout=timeout, check=check,
                        input=input, jvm_args=[f"-Dlog4j2.configurationFile={conf}"])
    return run


@pytest.fixture(scope="module")
def sl(shardline_bin, tmp_path_factory):
    """Shardline, with Kafka's test-friendly group.initial.rebalance.delay.ms
    (kafka_ref runs with 0 too)."""
    base = tmp_path_factory.mktemp("broker-kafka-tools")
    with running(Broker(shardline_bin, base / "data", base / "broker.log", name="kafka-tools",
                        extra_args=["--group-initial-rebalance-delay-ms", "0"])) as b:
        yield b


@pytest.fixture(scope="module")
def ab(shardline_bin, tmp_path_factory):
    """Shardline with SASL_PLAINTEXT, the authorizer and super user admin."""
    with running(AclBroker(shardline_bin, tmp_path_factory.mktemp("broker-kafka-tools-acl"),
                           free_port())) as b:
        yield b


@pytest.fixture(scope="module")
def admin_properties(tmp_path_factory):
    """--command-config of the tools: SCRAM-SHA-256 as the super user."""
    p = tmp_path_factory.mktemp("kafka-tools-sasl") / "admin.properties"
    p.write_text(sasl_properties(ADMIN, ADMIN_PW))
    return p


def sasl_properties(user, password, mechanism="SCRAM-SHA-256"):
    return ("security.protocol=SASL_PLAINTEXT\n"
            f"sasl.mechanism={mechanism}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{password}";\n')


def on_both(sl, kafka_ref, scenario):
    """Run scenario(bootstrap, node_id) against Shardline and Apache Kafka at
    once (two JVM sequences in parallel); returns (shardline, kafka)."""
    with ThreadPoolExecutor(2) as ex:
        a = ex.submit(scenario, sl.bootstrap, SHARDLINE_NODE)
        b = ex.submit(scenario, kafka_ref.bootstrap, KAFKA_NODE)
        return a.result(), b.result()


def rows(text):
    """Whitespace-separated table rows after the header line that starts
    with GROUP/TOPIC; row order is the broker's hash order, so sorted."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    body = [ln for ln in lines if ln[0] not in ("GROUP", "TOPIC") and not ln[0].startswith(("Consumer", "Error"))]
    return sorted(body)


# --------------------------------------------------------------------------
# kafka-topics
# --------------------------------------------------------------------------

def parse_topic_description(text, node):
    """kafka-topics --describe as (topic fields, [partition fields]), with
    the node id replaced by "N" and the topic id dropped. Elr/LastKnownElr
    are dropped: Kafka fills them from DescribeTopicPartitions (KIP-966),
    which Shardline does not serve, so the admin client falls back to
    Metadata and the tool prints "N/A" for them."""
    def fields(line):
        out = {}
        for f in line.strip().split("\t"):
            k, _, v = f.partition(":")
            out[k] = v.strip()
        for k in ("TopicId", "Elr", "LastKnownElr"):
            out.pop(k, None)
        for k in ("Leader", "Replicas", "Isr"):
            if k in out:
                assert out[k] == str(node), (k, out[k], line)
                out[k] = "N"
        return out
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = fields(lines[0])
    # Kafka 4 sets min.insync.replicas as a cluster-level dynamic default
    # (KIP-966), so every topic lists it; Shardline has no such override.
    configs = [c for c in head.get("Configs", "").split(",") if c and c != "min.insync.replicas=1"]
    head["Configs"] = sorted(configs)
    return head, [fields(ln) for ln in lines[1:]]


def test_kafka_topics(sl, kafka_ref, tool):
    topic = unique_topic("tools-topics")

    def scenario(bootstrap, node):
        def topics(*args, **kw):
            return tool("TopicCommand", "--bootstrap-server", bootstrap, *args, **kw)
        out = {"create": topics("--create", "--topic", topic, "--partitions", 3,
                                "--config", "retention.ms=3600000", "--config", "cleanup.policy=compact").stdout}
        out["describe3"] = parse_topic_description(topics("--describe", "--topic", topic).stdout, node)
        topics("--alter", "--topic", topic, "--partitions", 5)
        out["describe5"] = parse_topic_description(topics("--describe", "--topic", topic).stdout, node)
        out["shrink"] = topics("--alter", "--topic", topic, "--partitions", 2, check=False)
        out["list"] = topics("--list", "--exclude-internal").stdout.split()
        out["partitions_before_delete"] = len(admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions)
        topics("--delete", "--topic", topic)
        out["after_delete"] = topics("--describe", "--topic", topic, check=False)
        out["listed_after_delete"] = topic in admin_client(bootstrap).list_topics(timeout=10).topics
        return out

    s, k = on_both(sl, kafka_ref, scenario)
    assert s["create"].strip() == f"Created topic {topic}."
    head, parts = s["describe3"]
    assert head == {"Topic": topic, "PartitionCount": "3", "ReplicationFactor": "1",
                    "Configs": ["cleanup.policy=compact", "retention.ms=3600000"]}
    assert parts == [{"Topic": topic, "Partition": str(p), "Leader": "N", "Replicas": "N", "Isr": "N"}
                     for p in range(3)]
    head5, parts5 = s["describe5"]
    assert head5["PartitionCount"] == "5" and [p["Partition"] for p in parts5] == ["0", "1", "2", "3", "4"]
    assert s["shrink"].returncode == 1
    assert "InvalidPartitionsException" in s["shrink"].stderr
    assert topic in s["list"]
    assert s["partitions_before_delete"] == 5
    assert s["after_delete"].returncode == 1
    assert f"Topic '{topic}' does not exist as expected" in s["after_delete"].stdout
    assert not s["listed_after_delete"]
    # The same answers from Apache Kafka (error texts differ, classes do not).
    for key in ("create", "describe3", "describe5", "partitions_before_delete", "listed_after_delete"):
        assert s[key] == k[key], key
    assert k["shrink"].returncode == 1 and "InvalidPartitionsException" in k["shrink"].stderr
    assert k["after_delete"].stdout == s["after_delete"].stdout


# --------------------------------------------------------------------------
# kafka-configs
# --------------------------------------------------------------------------

CONFIG_LINE = re.compile(r"^  (\S+?)=(.*) sensitive=(true|false) synonyms=\{(.*)\}$")


def parse_configs(text):
    """kafka-configs --describe: {name: (value, [synonyms])}."""
    out = {}
    for line in text.splitlines():
        m = CONFIG_LINE.match(line)
        if m:
            syn = [s for s in m.group(4).split(", ") if s]
            out[m.group(1)] = (m.group(2), syn)
    return out


def test_kafka_configs_topics_and_brokers(sl, kafka_ref, tool):
    topic = unique_topic("tools-configs")

    def scenario(bootstrap, node):
        def configs(*args, **kw):
            return tool("ConfigCommand", "--bootstrap-server", bootstrap, *args, **kw)
        create_topic(bootstrap, topic)
        t = ("--entity-type", "topics", "--entity-name", topic)
        out = {"alter": configs(*t, "--alter", "--add-config", "retention.ms=7200000,max.message.bytes=2000000").stdout}
        out["described"] = parse_configs(configs(*t, "--describe").stdout)
        configs(*t, "--alter", "--delete-config", "max.message.bytes")
        out["after_delete"] = parse_configs(configs(*t, "--describe").stdout)
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = admin_client(bootstrap)  # kept alive until the future is done
        entries = admin.describe_configs([res])[res].result(timeout=15)
        out["admin"] = {n: (e.value, e.source) for n, e in entries.items()
                        if n in ("retention.ms", "max.message.bytes")}
        return out

    s, k = on_both(sl, kafka_ref, scenario)
    assert s["alter"].strip() == f"Completed updating config for topic {topic}."
    assert {n: v for n, (v, _) in s["described"].items()} == {
        "retention.ms": "7200000", "max.message.bytes": "2000000"}
    assert s["described"]["retention.ms"][1][0] == "DYNAMIC_TOPIC_CONFIG:retention.ms=7200000"
    assert s["described"]["max.message.bytes"][1] == [
        "DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000000", "DEFAULT_CONFIG:message.max.bytes=1048588"]
    assert {n: v for n, (v, _) in s["after_delete"].items()} == {"retention.ms": "7200000"}
    # Shardline's DescribeConfigs agrees with what the tool printed.
    dyn, dflt = ConfigSource.DYNAMIC_TOPIC_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value
    assert s["admin"] == {"retention.ms": ("7200000", dyn), "max.message.bytes": ("1048588", dflt)}
    # Apache Kafka prints the same values and first synonyms. (Its
    # retention.ms has no default synonym: log.retention.ms is unset in
    # Kafka, while Shardline reports its 3-day log_retention_ms.)
    assert s["alter"] == k["alter"]
    for key in ("described", "after_delete"):
        assert {n: (v, syn[0]) for n, (v, syn) in s[key].items()} == \
               {n: (v, syn[0]) for n, (v, syn) in k[key].items()}, key
    assert s["admin"] == k["admin"]

    # Broker configs: read-only in Shardline, described under Kafka's names.
    def configs(*args, **kw):
        return tool("ConfigCommand", "--bootstrap-server", sl.bootstrap, *args, **kw)
    broker = ("--entity-type", "brokers", "--entity-name", str(SHARDLINE_NODE))
    every = parse_configs(configs(*broker, "--describe", "--all").stdout)
    assert every["group.initial.rebalance.delay.ms"][0] == "0"  # from the command line
    assert every["listeners"][0] == f"PLAINTEXT://{sl.bootstrap}"
    assert every["message.max.bytes"] == ("1048588", ["DEFAULT_CONFIG:message.max.bytes=1048588"])
    res = ConfigResource(ConfigResource.Type.BROKER, str(SHARDLINE_NODE))
    admin = admin_client(sl.bootstrap)
    entries = admin.describe_configs([res])[res].result(timeout=15)
    assert {n: e.value for n, e in entries.items()} == {n: v for n, (v, _) in every.items()}
    refused = configs(*broker, "--alter", "--add-config", "log.cleaner.threads=2", check=False)
    assert refused.returncode == 1
    assert "InvalidRequestException: broker configs are read-only in Shardline" in refused.stdout + refused.stderr


def scram_described(text, user):
    """kafka-configs --describe --entity-type users: {mechanism: iterations}
    (the mechanisms come in the broker's hash order)."""
    prefix = f"SCRAM credential configs for user-principal '{user}' are "
    line = text.strip()
    assert line.startswith(prefix), text
    return dict(m.split("=iterations=") for m in line[len(prefix):].split(", "))


def test_kafka_configs_scram_users(ab, kafka_ref, tool, admin_properties):
    """SCRAM credentials made with kafka-configs authenticate on Shardline's
    SASL listener; --describe lists them, --delete-config removes one."""
    user, pw256, pw512 = "tools-carol", "carol-256-secret", "carol-512-secret"

    def scenario(bootstrap, extra):
        def configs(*args, **kw):
            return tool("ConfigCommand", "--bootstrap-server", bootstrap, *extra, *args, **kw)
        u = ("--entity-type", "users", "--entity-name", user)
        # One mechanism per request: Kafka's controller refuses a user twice
        # in one AlterUserScramCredentials (DUPLICATE_RESOURCE).
        out = {"alter": [configs(*u, "--alter", "--add-config", f"SCRAM-SHA-256=[iterations=8192,password={pw256}]").stdout,
                         configs(*u, "--alter", "--add-config", f"SCRAM-SHA-512=[password={pw512}]").stdout]}
        out["describe"] = scram_described(configs(*u, "--describe").stdout, user)
        return out, configs, u

    with ThreadPoolExecutor(2) as ex:
        fs = ex.submit(scenario, ab.sasl_bootstrap, ("--command-config", str(admin_properties)))
        fk = ex.submit(scenario, kafka_ref.bootstrap, ())
        (s, configs, u), (k, _, _) = fs.result(), fk.result()
    assert s["alter"] == [f"Completed updating config for user {user}.\n"] * 2
    assert s["describe"] == {"SCRAM-SHA-256": "8192", "SCRAM-SHA-512": "4096"}
    assert s == k

    def authenticates(mechanism, password):
        admin_client(ab.sasl_bootstrap, **sasl_conf(mechanism, user, password)).list_topics(timeout=10)
        return True

    def refused(mechanism, password):
        # A producer connects at once; the failed login comes as an error.
        errors = []
        p = Producer({"bootstrap.servers": ab.sasl_bootstrap, "error_cb": errors.append,
                      **sasl_conf(mechanism, user, password)})
        def failed_login():
            return any(e.code() == KafkaError._AUTHENTICATION and "Authentication failed" in str(e)
                       for e in errors)
        deadline = time.monotonic() + 15
        while not failed_login() and time.monotonic() < deadline:
            p.poll(0.1)
        # Nothing but the failed login (librdkafka may follow it with "all
        # brokers down", the one broker having refused us).
        return failed_login() and all(
            e.code() in (KafkaError._AUTHENTICATION, KafkaError._ALL_BROKERS_DOWN) for e in errors)

    assert authenticates("SCRAM-SHA-256", pw256)
    assert authenticates("SCRAM-SHA-512", pw512)
    assert refused("SCRAM-SHA-256", pw512)
    assert f"authenticated as User:{user}" in ab.log_text()

    configs(*u, "--alter", "--delete-config", "SCRAM-SHA-512")
    assert scram_described(configs(*u, "--describe").stdout, user) == {"SCRAM-SHA-256": "8192"}
    assert refused("SCRAM-SHA-512", pw512)
    assert authenticates("SCRAM-SHA-256", pw256)


# --------------------------------------------------------------------------
# kafka-console-producer / kafka-console-consumer
# --------------------------------------------------------------------------

def test_console_producer_and_consumer(sl, kafka_ref, tool):
    topic = unique_topic("tools-console")
    # headers <TAB> key|value, as LineMessageReader parses them
    lines = ["app:shop,trace:1\tk1|v1", "empty:\tk2|two words", "x:y\tk3|"]
    sent = [([("app", b"shop"), ("trace", b"1")], b"k1", b"v1"),
            ([("empty", b"")], b"k2", b"two words"),
            ([("x", b"y")], b"k3", b"")]

    def scenario(bootstrap, node):
        create_topic(bootstrap, topic)
        tool("ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", topic,
             "--command-property", "acks=all",
             "--reader-property", "parse.key=true", "--reader-property", "key.separator=|",
             "--reader-property", "parse.headers=true", input="\n".join(lines) + "\n")
        c = tool("consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
                 "--from-beginning", "--max-messages", len(lines), "--timeout-ms", 20000,
                 *[a for p in ("print.key", "print.timestamp", "print.headers", "print.partition", "print.offset")
                   for a in ("--formatter-property", f"{p}=true")])
        got = consume(bootstrap, topic, expect=len(lines), drain_s=0.2)
        return c, [(m.timestamp()[1], m.headers() or [], m.key(), m.value()) for m in got]

    (s, s_msgs), (k, k_msgs) = on_both(sl, kafka_ref, scenario)
    assert [(h, key, v) for _, h, key, v in s_msgs] == sent
    # The consumer printed exactly the records that are in the log.
    expected = [f"CreateTime:{ts}\tPartition:0\tOffset:{i}\t"
                f"{','.join(hk + ':' + hv.decode() for hk, hv in h)}\t{key.decode()}\t{v.decode()}"
                for i, (ts, h, key, v) in enumerate(s_msgs)]
    assert s.stdout.splitlines() == expected
    assert "Processed a total of 3 messages" in s.stderr
    no_ts = lambda out: [re.sub(r"^CreateTime:\d+", "CreateTime:T", ln) for ln in out.splitlines()]
    assert no_ts(s.stdout) == no_ts(k.stdout)
    assert [m[1:] for m in k_msgs] == sent


# --------------------------------------------------------------------------
# kafka-consumer-groups
# --------------------------------------------------------------------------

def utc(ms):
    """--to-datetime's format (UTC when no zone is given)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}"


def test_consumer_groups(sl, kafka_ref, tool):
    topic, group = unique_topic("tools-groups"), unique_topic("tools-group")
    t0 = int(time.time() * 1000) - 3_600_000
    # 10 records per partition, record i at t0 + i seconds.
    msgs = [{"partition": p, "value": f"{p}-{i}".encode(), "timestamp": t0 + 1000 * i}
            for p in (0, 1) for i in range(10)]

    def scenario(bootstrap, node):
        create_topic(bootstrap, topic, 2)
        assert_delivered(produce(bootstrap, topic, msgs))
        # The group consumed 3 records of partition 0 and 7 of partition 1.
        c = Consumer(consumer_conf(bootstrap, **{"group.id": group}))
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 7)], asynchronous=False)
        c.close()

        def groups(*args, **kw):
            return tool("consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap, *args, **kw)
        g = ("--group", group)
        out = {"list": groups("--list").stdout.split(), "describe": groups("--describe", *g).stdout,
               "state": groups("--describe", *g, "--state").stdout}
        for name, mode in [("earliest", ["--to-earliest"]), ("latest", ["--to-latest"]),
                           ("datetime", ["--to-datetime", utc(t0 + 4000)])]:
            out[name] = groups("--reset-offsets", *g, "--topic", topic, *mode, "--execute").stdout
            out[name + "_describe"] = groups("--describe", *g).stdout
        # An active member: librdkafka keeps heartbeating while the tool runs.
        member = Consumer(consumer_conf(bootstrap, **{"group.id": group, "client.id": "tools-member"}))
        try:
            member.subscribe([topic])
            deadline = time.monotonic() + 30
            while not member.assignment() and time.monotonic() < deadline:
                member.poll(0.2)
            out["active"] = groups("--describe", *g).stdout
            out["active_state"] = groups("--describe", *g, "--state").stdout
        finally:
            member.close()
        out["delete"] = groups("--delete", *g).stdout
        out["list_after"] = groups("--list").stdout.split()
        admin = admin_client(bootstrap)
        listed = admin.list_consumer_groups().result(timeout=15).valid
        out["admin_after"] = group in [x.group_id for x in listed]
        return out

    s, k = on_both(sl, kafka_ref, scenario)
    assert group in s["list"]
    # Lag = log end offset - committed offset.
    assert rows(s["describe"]) == [[group, topic, "0", "3", "10", "7", "-", "-", "-"],
                                   [group, topic, "1", "7", "10", "3", "-", "-", "-"]]
    assert rows(s["state"]) == [[group, f"127.0.0.1:{sl.port}", f"({SHARDLINE_NODE})", "-", "Empty", "0"]]
    for name, new in [("earliest", 0), ("latest", 10), ("datetime", 4)]:
        assert rows(s[name]) == [[group, topic, str(p), str(new)] for p in (0, 1)], name
        assert rows(s[name + "_describe"]) == [
            [group, topic, str(p), str(new), "10", str(10 - new), "-", "-", "-"] for p in (0, 1)], name
    active = rows(s["active"])
    assert [r[:6] + r[7:] for r in active] == [
        [group, topic, str(p), "4", "10", "6", "/127.0.0.1", "tools-member"] for p in (0, 1)]
    assert active[0][6].startswith("tools-member-") and active[0][6] == active[1][6]
    assert rows(s["active_state"]) == [[group, f"127.0.0.1:{sl.port}", f"({SHARDLINE_NODE})", "range", "Stable", "1"]]
    assert s["delete"].strip() == f"Deletion of requested consumer groups ('{group}') was successful."
    assert group not in s["list_after"] and not s["admin_after"]

    # Apache Kafka: the same tables (its coordinator address and node id,
    # member ids aside).
    def same(text, port, node):
        return [[c.replace(f"127.0.0.1:{port}", "HOST").replace(f"({node})", "(N)") for c in r]
                for r in rows(text)]
    for key in ("describe", "earliest", "earliest_describe", "latest", "latest_describe", "datetime",
                "datetime_describe", "delete"):
        assert s[key] == k[key], key
    assert same(s["state"], sl.port, SHARDLINE_NODE) == same(k["state"], kafka_ref.port, KAFKA_NODE)
    assert same(s["active_state"], sl.port, SHARDLINE_NODE) == same(k["active_state"], kafka_ref.port, KAFKA_NODE)
    member_id = lambda text: [r[:6] + r[7:] for r in rows(text)]
    assert member_id(s["active"]) == member_id(k["active"])


# --------------------------------------------------------------------------
# kafka-acls
# --------------------------------------------------------------------------

def test_kafka_acls(ab, tool, admin_properties):
    """ACLs added with kafka-acls take effect, --list shows them, --remove
    takes them away again."""
    topic, alice = unique_topic("tools-acl"), "tools-alice"
    create_scram_user(ab, alice, "alice-secret")
    admin = admin_client(ab.sasl_bootstrap, **sasl_conf("SCRAM-SHA-256", ADMIN, ADMIN_PW))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)

    def acls(*args):
        return tool("AclCommand", "--bootstrap-server", ab.sasl_bootstrap,
                    "--command-config", str(admin_properties), *args).stdout

    def produce_as_alice():
        p = Producer({"bootstrap.servers": ab.sasl_bootstrap, "message.timeout.ms": 10000,
                      **sasl_conf("SCRAM-SHA-256", alice, "alice-secret")})
        out = []
        p.produce(topic, b"from-alice", on_delivery=lambda err, msg: out.append(err))
        p.flush(15)
        assert out, "no delivery report"
        return out[0]

    err = produce_as_alice()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    added = acls("--add", "--allow-principal", f"User:{alice}", "--producer", "--topic", topic)
    assert f"Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)`" in added
    acl_line = "(principal=User:%s, host=*, operation=%s, permissionType=ALLOW)"
    listed = acls("--list", "--topic", topic)
    assert sorted(re.findall(r"\(principal=.*\)", listed)) == sorted(
        acl_line % (alice, op) for op in ("WRITE", "DESCRIBE", "CREATE"))
    assert produce_as_alice() is None
    # A prefixed group ACL, listed by principal with the topic's.
    acls("--add", "--allow-principal", f"User:{alice}", "--operation", "Read",
         "--group", "tools-", "--resource-pattern-type", "prefixed")
    by_principal = acls("--list", "--principal", f"User:{alice}")
    assert "ResourcePattern(resourceType=GROUP, name=tools-, patternType=PREFIXED)" in by_principal
    assert by_principal.count(f"principal=User:{alice}") == 4
    # The admin API sees what the tool made.
    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{alice}", None,
                           AclOperation.ANY, AclPermissionType.ANY)
    made = admin.describe_acls(flt).result(timeout=30)
    assert sorted((b.restype, b.name, b.resource_pattern_type, b.operation) for b in made) == sorted([
        (ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.WRITE),
        (ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.DESCRIBE),
        (ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.CREATE),
        (ResourceType.GROUP, "tools-", ResourcePatternType.PREFIXED, AclOperation.READ),
    ])
    acls("--remove", "--allow-principal", f"User:{alice}", "--operation", "Write", "--topic", topic, "--force")
    listed = acls("--list", "--topic", topic)
    assert sorted(re.findall(r"\(principal=.*\)", listed)) == sorted(
        acl_line % (alice, op) for op in ("DESCRIBE", "CREATE"))
    err = produce_as_alice()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


# --------------------------------------------------------------------------
# kafka-get-offsets / kafka-delete-records
# --------------------------------------------------------------------------

def offsets_topic(bootstrap, topic, t0):
    """Partition 0: 10 records, one batch, timestamps t0+0..9 s except
    records 5 and 6, which share the largest (t0+20 s); partition 1: 10
    records at t0+0..9 s."""
    create_topic(bootstrap, topic, 2)
    ts0 = [t0 + 1000 * i for i in range(10)]
    ts0[5] = ts0[6] = t0 + 20_000
    msgs = [{"partition": 0, "value": b"p0-%d" % i, "timestamp": ts} for i, ts in enumerate(ts0)]
    msgs += [{"partition": 1, "value": b"p1-%d" % i, "timestamp": t0 + 1000 * i} for i in range(10)]
    assert_delivered(produce(bootstrap, topic, msgs, conf={"linger.ms": 200}))


def test_get_offsets(sl, kafka_ref, tool):
    topic = unique_topic("tools-offsets")
    t0 = int(time.time() * 1000) - 3_600_000

    def scenario(bootstrap, node):
        offsets_topic(bootstrap, topic, t0)
        out = {}
        for t in (-1, -2, -3, t0 + 3500, t0 + 10**9):
            lines = tool("GetOffsetShell", "--bootstrap-server", bootstrap, "--topic", topic, "--time", t).stdout
            out[t] = sorted(lines.split())
        out["one"] = tool("GetOffsetShell", "--bootstrap-server", bootstrap,
                          "--topic-partitions", f"{topic}:1", "--time", -1).stdout.split()
        return out

    s, k = on_both(sl, kafka_ref, scenario)
    assert s[-1] == [f"{topic}:0:10", f"{topic}:1:10"]
    assert s[-2] == [f"{topic}:0:0", f"{topic}:1:0"]
    # Max timestamp: the first record carrying it (5 in partition 0).
    assert s[-3] == [f"{topic}:0:5", f"{topic}:1:9"]
    assert s[t0 + 3500] == [f"{topic}:0:4", f"{topic}:1:4"]
    assert s[t0 + 10**9] == []  # no record that late: no line
    assert s["one"] == [f"{topic}:1:10"]
    assert s == k


def test_delete_records(sl, kafka_ref, tool, tmp_path):
    topic = unique_topic("tools-delete")
    t0 = int(time.time() * 1000) - 3_600_000
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 4},
        {"topic": topic, "partition": 1, "offset": -1}]}))  # -1: up to the high watermark
    beyond = tmp_path / "beyond.json"
    beyond.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 40}]}))

    def scenario(bootstrap, node):
        offsets_topic(bootstrap, topic, t0)
        out = {"delete": tool("DeleteRecordsCommand", "--bootstrap-server", bootstrap,
                              "--offset-json-file", spec).stdout}
        out["earliest"] = sorted(tool("GetOffsetShell", "--bootstrap-server", bootstrap, "--topic", topic,
                                      "--time", -2).stdout.split())
        out["watermarks"] = [watermarks(bootstrap, topic, p) for p in (0, 1)]
        out["read"] = [m.offset() for m in consume(bootstrap, topic, 0, start=4, expect=6, drain_s=0.2)]
        out["beyond"] = tool("DeleteRecordsCommand", "--bootstrap-server", bootstrap,
                             "--offset-json-file", beyond).stdout
        return out

    s, k = on_both(sl, kafka_ref, scenario)
    assert sorted(s["delete"].splitlines()) == sorted([
        "Executing records delete operation", "Records delete operation completed:",
        f"partition: {topic}-0\tlow_watermark: 4", f"partition: {topic}-1\tlow_watermark: 10"])
    assert s["earliest"] == [f"{topic}:0:4", f"{topic}:1:10"]
    assert s["watermarks"] == [(4, 10), (10, 10)]
    assert s["read"] == list(range(4, 10))
    assert f"partition: {topic}-0\terror: org.apache.kafka.common.errors.OffsetOutOfRangeException" in s["beyond"]
    assert {key: sorted(v.splitlines()) if isinstance(v, str) else v for key, v in s.items()} == \
           {key: sorted(v.splitlines()) if isinstance(v, str) else v for key, v in k.items()}


# --------------------------------------------------------------------------
# kafka-producer-perf-test / kafka-consumer-perf-test
# --------------------------------------------------------------------------

def test_perf_tools(sl, tool):
    """200,000 records of 100 bytes as fast as the producer can (acks=all);
    all of them are in the log, and the consumer perf test reads them all."""
    topic, n = unique_topic("tools-perf"), 200_000
    create_topic(sl.bootstrap, topic, 3)
    p = tool("ProducerPerformance", "--topic", topic, "--num-records", n, "--throughput", -1,
             "--record-size", 100, "--bootstrap-server", sl.bootstrap, "--command-property", "acks=all",
             timeout=180)
    summary = [ln for ln in p.stdout.splitlines() if ln.startswith(f"{n} records sent")]
    assert summary, p.stdout
    assert "ERROR" not in p.stderr and "Exception" not in p.stdout + p.stderr
    ends = [watermarks(sl.bootstrap, topic, part) for part in range(3)]
    assert all(lo == 0 for lo, _ in ends) and sum(hi for _, hi in ends) == n, ends

    c = tool("ConsumerPerformance", "--bootstrap-server", sl.bootstrap, "--topic", topic,
             "--num-records", n, "--timeout", 60000, timeout=180)
    header, values = [ln.split(", ") for ln in c.stdout.strip().splitlines()[-2:]]
    stats = dict(zip(header, values))
    assert int(stats["data.consumed.in.nMsg"]) == n
    assert float(stats["data.consumed.in.MB"]) == pytest.approx(n * 100 / 1024 / 1024, rel=1e-3)


# --------------------------------------------------------------------------
# kafka-verifiable-producer / kafka-verifiable-consumer
# --------------------------------------------------------------------------

def events(text, name):
    return [e for e in (json.loads(ln) for ln in text.splitlines() if ln.startswith("{")) if e["name"] == name]


def test_verifiable_producer_and_consumer(sl, tool):
    """As Kafka's system tests do it: every offset the verifiable producer
    had acknowledged (acks=all) is consumed exactly once, with its value, by
    verifiable consumers of the classic and of the consumer (KIP-848)
    protocol, and each consumer's last commit is the log end."""
    topic, n = unique_topic("tools-verifiable"), 3000
    create_topic(sl.bootstrap, topic, 3)
    p = tool("VerifiableProducer", "--bootstrap-server", sl.bootstrap, "--topic", topic,
             "--max-messages", n, "--acks", -1, "--repeating-keys", 50, "--value-prefix", 7)
    assert not events(p.stdout, "producer_send_error")
    acked = {(e["partition"], e["offset"]): e["value"] for e in events(p.stdout, "producer_send_success")}
    assert len(acked) == n
    assert sorted(acked.values()) == sorted(f"7.{i}" for i in range(n))
    assert events(p.stdout, "tool_data")[0]["acked"] == n
    log_end = {part: watermarks(sl.bootstrap, topic, part)[1] for part in range(3)}
    assert sum(log_end.values()) == n and all(log_end.values()), log_end

    for protocol in ("classic", "consumer"):
        c = tool("VerifiableConsumer", "--bootstrap-server", sl.bootstrap, "--topic", topic,
                 "--group-id", unique_topic(f"tools-verifiable-{protocol}"), "--group-protocol", protocol,
                 "--max-messages", n, "--reset-policy", "earliest", "--verbose")
        consumed = [((e["partition"], e["offset"]), e["value"]) for e in events(c.stdout, "record_data")]
        assert len(consumed) == n, (protocol, len(consumed))
        assert dict(consumed) == acked, protocol  # n distinct offsets, each with its value
        commits = events(c.stdout, "offsets_committed")
        assert commits and all(e["success"] for e in commits), protocol
        last = {}
        for e in commits:
            for o in e["offsets"]:
                last[o["partition"]] = o["offset"]
        assert last == log_end, protocol
        assert sum(e["count"] for e in events(c.stdout, "records_consumed")) == n
