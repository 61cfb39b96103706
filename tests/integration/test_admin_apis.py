"""Admin APIs against Shardline with confluent-kafka (librdkafka) and
kafka-python: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
DeleteRecords, DescribeCluster, DescribeLogDirs, OffsetForLeaderEpoch."""

import socket
import struct

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from conftest import (
    admin_client,
    assert_delivered,
    consume,
    create_topic,
    produce,
    unique_topic,
    watermarks,
)

# AlterConfigs is deprecated in favour of IncrementalAlterConfigs, but
# clients still send it, so it is tested on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")


def describe_topic(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)


def error_code(exc_info):
    err = exc_info.value.args[0]
    return err.code()


# --------------------------------------------------------------------------
# DescribeConfigs
# --------------------------------------------------------------------------

def test_describe_topic_configs_sources_and_synonyms(bootstrap):
    topic = unique_topic("dcfg")
    create_topic(bootstrap, topic, 1, config={"retention.ms": "3600000"})
    admin = admin_client(bootstrap)
    configs = describe_topic(admin, topic)
    for name in ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
                 "max.message.bytes", "message.timestamp.type", "compression.type"):
        assert name in configs, sorted(configs)
    over = configs["retention.ms"]
    assert over.value == "3600000"
    assert over.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not over.is_read_only and not over.is_sensitive
    syn = [(s.name, s.value, s.source) for s in over.synonyms.values()]
    assert ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value) in syn, syn
    assert any(name == "log.retention.ms" and value == "259200000" for name, value, _ in syn), syn
    default = configs["cleanup.policy"]
    assert default.value == "delete"
    assert default.source == ConfigSource.DEFAULT_CONFIG.value
    assert default.is_default


def test_describe_unknown_topic_fails(bootstrap):
    admin = admin_client(bootstrap)
    with pytest.raises(KafkaException) as ei:
        describe_topic(admin, unique_topic("nosuch"))
    assert error_code(ei) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(bootstrap):
    admin = admin_client(bootstrap)
    md = admin.list_topics(timeout=10)
    node = next(iter(md.brokers))
    res = ConfigResource(ResourceType.BROKER, str(node))
    configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    for name in ("log.retention.ms", "num.partitions", "auto.create.topics.enable",
                 "message.max.bytes", "log.segment.bytes", "log.flush", "log.dirs", "listeners"):
        assert name in configs, sorted(configs)
        assert configs[name].is_read_only, name
    assert configs["log.retention.ms"].value == "259200000"
    assert configs["num.partitions"].value == "1"
    assert configs["log.dirs"].value.startswith("/")

    # librdkafka sends broker resources to that broker, so a wrong id never
    # reaches us from it; kafka-python neither. The unit tests cover it.


def test_describe_configs_kafka_python_with_documentation(bootstrap):
    from kafka.admin import ConfigResource as KPConfigResource, ConfigResourceType, KafkaAdminClient
    topic = unique_topic("kpcfg")
    create_topic(bootstrap, topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        out = admin.describe_configs(
            [KPConfigResource(ConfigResourceType.TOPIC, topic, configs=["retention.ms"])],
            include_synonyms=True,
            config_filter="all",
        )
        configs = out["topic"][topic]
        assert list(configs) == ["retention.ms"], configs
        entry = configs["retention.ms"]
        assert entry["value"] == "259200000"
        assert entry["config_source"] == "DEFAULT_CONFIG"
        assert [s["name"] for s in entry["synonyms"]] == ["log.retention.ms"]
        everything = admin.describe_configs(
            [KPConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        assert len(everything["topic"][topic]) >= 10
        broker = admin.describe_configs(
            [KPConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all")
        assert broker["broker"]["0"]["log.retention.ms"]["value"] == "259200000"
    finally:
        admin.close()


# --------------------------------------------------------------------------
# AlterConfigs / IncrementalAlterConfigs
# --------------------------------------------------------------------------

def test_alter_configs_replaces_overrides(bootstrap):
    topic = unique_topic("alt")
    create_topic(bootstrap, topic, 1, config={"retention.ms": "3600000"})
    admin = admin_client(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "600000"})
    assert admin.alter_configs([res], request_timeout=30)[res].result(timeout=30) is None
    configs = describe_topic(admin, topic)
    assert configs["segment.ms"].value == "600000"
    assert configs["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # AlterConfigs replaces the whole override set: retention.ms is back to default.
    assert configs["retention.ms"].value == "259200000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_alter_configs_validate_only_and_errors(bootstrap):
    topic = unique_topic("altv")
    create_topic(bootstrap, topic, 1)
    admin = admin_client(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1000"})
    assert admin.alter_configs([res], request_timeout=30, validate_only=True)[res].result(timeout=30) is None
    assert describe_topic(admin, topic)["retention.ms"].value == "259200000"

    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([bad], request_timeout=30)[bad].result(timeout=30)
    assert error_code(ei) == KafkaError.INVALID_CONFIG
    assert "soon" in str(ei.value)

    unknown = ConfigResource(ResourceType.TOPIC, topic, set_config={"no.such.config": "1"})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([unknown], request_timeout=30)[unknown].result(timeout=30)
    assert error_code(ei) == KafkaError.INVALID_CONFIG

    missing = ConfigResource(ResourceType.TOPIC, unique_topic("gone"), set_config={"retention.ms": "1000"})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([missing], request_timeout=30)[missing].result(timeout=30)
    assert error_code(ei) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_broker_configs_are_read_only(bootstrap):
    admin = admin_client(bootstrap)
    node = next(iter(admin.list_topics(timeout=10).brokers))
    res = ConfigResource(ResourceType.BROKER, str(node), set_config={"num.partitions": "3"})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
    assert error_code(ei) == KafkaError.INVALID_REQUEST
    assert "read-only" in str(ei.value)


def test_incremental_alter_configs(bootstrap):
    topic = unique_topic("inc")
    create_topic(bootstrap, topic, 1, config={"retention.ms": "3600000"})
    admin = admin_client(bootstrap)

    def alter(*entries):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
        return admin.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)

    alter(ConfigEntry("segment.ms", "700000", incremental_operation=AlterConfigOpType.SET))
    configs = describe_topic(admin, topic)
    assert configs["segment.ms"].value == "700000"
    assert configs["retention.ms"].value == "3600000", "SET keeps the other overrides"

    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert describe_topic(admin, topic)["cleanup.policy"].value == "delete,compact"
    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert describe_topic(admin, topic)["cleanup.policy"].value == "compact"

    alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    configs = describe_topic(admin, topic)
    assert configs["retention.ms"].value == "259200000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    with pytest.raises(KafkaException) as ei:
        alter(ConfigEntry("segment.bytes", "12", incremental_operation=AlterConfigOpType.SET))
    assert error_code(ei) == KafkaError.INVALID_CONFIG
    with pytest.raises(KafkaException) as ei:
        alter(ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND))
    assert error_code(ei) == KafkaError.INVALID_CONFIG


def test_config_change_reaches_the_live_log(bootstrap):
    """max.message.bytes lowered on a live topic makes the log refuse a
    batch it accepted before."""
    topic = unique_topic("live")
    create_topic(bootstrap, topic, 1)
    big = b"x" * 20000
    assert_delivered(produce(bootstrap, topic, [{"value": big}]))
    admin = admin_client(bootstrap)
    res = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("max.message.bytes", "1000",
                                         incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)
    res = produce(bootstrap, topic, [{"value": big}], conf={"message.timeout.ms": 5000}, timeout=5)
    assert res[0]["error"] is not None
    assert res[0]["error"].code() == KafkaError.MSG_SIZE_TOO_LARGE, res[0]["error"]


# --------------------------------------------------------------------------
# DeleteRecords
# --------------------------------------------------------------------------

def test_delete_records(bootstrap):
    topic = unique_topic("delrec")
    create_topic(bootstrap, topic, 2)
    assert_delivered(produce(bootstrap, topic, [{"value": b"m%d" % i, "partition": 0} for i in range(10)]))
    assert_delivered(produce(bootstrap, topic, [{"value": b"n%d" % i, "partition": 1} for i in range(4)]))
    admin = admin_client(bootstrap)
    tps = [TopicPartition(topic, 0, 6), TopicPartition(topic, 1, -1)]
    fs = admin.delete_records(tps, request_timeout=30)
    lows = {tp.partition: f.result(timeout=30).low_watermark for tp, f in fs.items()}
    assert lows == {0: 6, 1: 4}
    assert watermarks(bootstrap, topic, 0) == (6, 10)
    assert watermarks(bootstrap, topic, 1) == (4, 4)
    msgs = consume(bootstrap, topic, partition=0, start=6, expect=4)
    assert [m.value() for m in msgs] == [b"m6", b"m7", b"m8", b"m9"]

    beyond = TopicPartition(topic, 0, 11)
    with pytest.raises(KafkaException) as ei:
        admin.delete_records([beyond], request_timeout=30)[beyond].result(timeout=30)
    assert error_code(ei) == KafkaError.OFFSET_OUT_OF_RANGE
    # An unknown partition is refused by librdkafka before it asks us (no
    # leader); the unit tests cover UNKNOWN_TOPIC_OR_PARTITION.


def test_delete_records_survives_restart(broker_factory):
    b = broker_factory()
    topic = unique_topic("delrst")
    create_topic(b.bootstrap, topic, 1)
    assert_delivered(produce(b.bootstrap, topic, [{"value": b"v%d" % i} for i in range(5)]))
    admin = admin_client(b.bootstrap)
    tp = TopicPartition(topic, 0, 3)
    assert admin.delete_records([tp], request_timeout=30)[tp].result(timeout=30).low_watermark == 3
    b.restart()
    assert watermarks(b.bootstrap, topic, 0) == (3, 5)


# --------------------------------------------------------------------------
# DescribeCluster, DescribeLogDirs, OffsetForLeaderEpoch
# --------------------------------------------------------------------------

def test_describe_cluster(bootstrap):
    admin = admin_client(bootstrap)
    desc = admin.describe_cluster(request_timeout=30, include_authorized_operations=True).result(timeout=30)
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    host, port = bootstrap.split(":")
    assert (node.host, node.port) == (host, int(port))
    assert desc.controller.id == node.id
    assert desc.cluster_id and len(desc.cluster_id) == 22
    assert desc.cluster_id == admin.list_topics(timeout=10).cluster_id


def test_describe_cluster_kafka_python(bootstrap):
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        out = admin.describe_cluster()
        assert len(out["brokers"]) == 1
        assert out["controller_id"] == out["brokers"][0]["broker_id"]
        assert out["brokers"][0]["port"] == int(bootstrap.split(":")[1])
        assert len(out["cluster_id"]) == 22
    finally:
        admin.close()


def test_describe_log_dirs(bootstrap):
    from kafka.admin import KafkaAdminClient
    topic = unique_topic("logdirs")
    create_topic(bootstrap, topic, 2)
    assert_delivered(produce(bootstrap, topic, [{"value": b"y" * 1000, "partition": 1} for _ in range(5)]))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        out = admin.describe_log_dirs()
        text = repr(out)
        assert topic in text, text
        dirs = _log_dirs(out)
        assert len(dirs) == 1
        d = dirs[0]
        assert d["error_code"] == 0
        assert d["log_dir"].startswith("/")
        parts = {p["partition_index"]: p for t in d["topics"] if t["name"] == topic for p in t["partitions"]}
        assert sorted(parts) == [0, 1]
        assert parts[1]["partition_size"] >= 5000
        assert parts[0]["partition_size"] == 0
        assert all(p["offset_lag"] == 0 and not p["is_future_key"] for p in parts.values())
        if "total_bytes" in d:
            assert d["total_bytes"] > 0 and 0 <= d["usable_bytes"] <= d["total_bytes"]
    finally:
        admin.close()


def _log_dirs(out):
    """kafka-python returns per-broker results; normalise to a list of dicts."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "log_dir" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif hasattr(x, "to_object"):
            walk(x.to_object())

    walk(out)
    return found


def _ofle_v3(address, topic, cases):
    """OffsetForLeaderEpoch v3 (non-flexible) over a raw socket: `cases` is a
    list of (partition, current_leader_epoch, leader_epoch); returns one
    (error_code, partition, leader_epoch, end_offset) per case."""
    def string(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    body = struct.pack(">i", -1)  # replica_id: a consumer
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(cases))
    for partition, current, epoch in cases:
        body += struct.pack(">iii", partition, current, epoch)
    header = struct.pack(">hhi", 23, 3, 4242) + string("ofle-test")
    frame = header + body
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        data = _recv(sock, size)
    corr, throttle, ntopics = struct.unpack_from(">iii", data, 0)
    assert corr == 4242 and ntopics == 1
    pos = 12
    name_len = struct.unpack_from(">h", data, pos)[0]
    pos += 2
    assert data[pos:pos + name_len].decode() == topic
    pos += name_len
    nparts = struct.unpack_from(">i", data, pos)[0]
    pos += 4
    out = []
    for _ in range(nparts):
        out.append(struct.unpack_from(">hiiq", data, pos))
        pos += 18
    assert pos == len(data), "trailing bytes in the response"
    return out


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_offset_for_leader_epoch(broker):
    topic = unique_topic("ofle")
    create_topic(broker.bootstrap, topic, 1)
    assert_delivered(produce(broker.bootstrap, topic, [{"value": b"z"} for _ in range(7)]))
    got = _ofle_v3(broker.address, topic, [
        (0, 0, 0),     # current epoch: end offset = log end
        (0, -1, 0),    # no fencing check
        (0, 1, 0),     # client knows a newer epoch than the broker
        (0, -1, -1),   # undefined epoch
        (3, -1, 0),    # no such partition
    ])
    assert got[0] == (0, 0, 0, 7)
    assert got[1] == (0, 0, 0, 7)
    assert got[2][0] == 75  # UNKNOWN_LEADER_EPOCH
    assert got[3] == (0, 0, -1, -1)
    assert got[4][0] == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_offset_for_leader_epoch_answers_from_the_epoch_cache(broker):
    # Kafka 4.4.0 answered these same requests (single node, epoch 0):
    # a topic with 7 records: (0, 0, 0, 7), (0, 0, 0, 7), (75, 0, -1, -1),
    # (0, 0, -1, -1), (0, 0, -1, -1), (0, 0, -1, -1); an empty one:
    # (0, 0, 0, 0), (0, 0, 0, 0), (75, ...), then (0, 0, -1, -1) for each.
    # An epoch above every known one is UNDEFINED (-1, -1), not the log end.
    cases = [
        (0, 0, 0),    # the current epoch: its end is the log end
        (0, -1, 0),
        (0, 1, 0),    # a current leader epoch newer than the broker's
        (0, -1, -1),  # undefined
        (0, -1, 1),   # above every epoch the log has
        (0, -1, 5),
    ]
    topic = unique_topic("ofle-cache")
    empty = unique_topic("ofle-empty")
    create_topic(broker.bootstrap, topic, 1)
    create_topic(broker.bootstrap, empty, 1)
    assert_delivered(produce(broker.bootstrap, topic, [{"value": b"z"} for _ in range(7)]))
    got = _ofle_v3(broker.address, topic, cases)
    assert got[0] == got[1] == (0, 0, 0, 7)
    assert got[2][0] == 75
    assert got[3:] == [(0, 0, -1, -1)] * 3
    got = _ofle_v3(broker.address, empty, cases)
    assert got[0] == got[1] == (0, 0, 0, 0)
    assert got[2][0] == 75
    assert got[3:] == [(0, 0, -1, -1)] * 3
    # The cache is persisted in the partition directory, in Kafka's format.
    path = broker.data_dir / f"{topic}-0" / "leader-epoch-checkpoint"
    assert path.read_text() == "0\n1\n0 0\n"


# --------------------------------------------------------------------------
# Kafka 3.9's deprecated topic configs
# --------------------------------------------------------------------------

DEPRECATED = {
    "message.format.version": "2.8",
    "message.downconversion.enable": "false",
    "message.timestamp.difference.max.ms": "86400000",
}


def test_kafka3_deprecated_topic_configs_are_accepted_and_reported(bootstrap):
    # Kafka 3.9 accepts these (validated), ignores the first two and reports
    # all three; Kafka 4 refuses them as unknown (see the next test).
    topic = unique_topic("depr")
    create_topic(bootstrap, topic, 1, config=DEPRECATED)
    admin = admin_client(bootstrap)
    configs = describe_topic(admin, topic)
    for name, value in DEPRECATED.items():
        assert configs[name].value == value, (name, configs[name])
        assert configs[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    other = unique_topic("depr")
    create_topic(bootstrap, other, 1)
    defaults = describe_topic(admin, other)
    assert (defaults["message.format.version"].value, defaults["message.downconversion.enable"].value,
            defaults["message.timestamp.difference.max.ms"].value) == ("3.0-IV1", "true", str(2**63 - 1))
    assert defaults["message.format.version"].is_default

    # Kafka 3.9's validation: a MetadataVersion, a boolean.
    for name, value, why in [
        ("message.format.version", "0.10", "Version 0.10 is not a valid version"),
        ("message.downconversion.enable", "no", "Expected value to be either true or false"),
        ("message.timestamp.difference.max.ms", "-1", "Value must be at least 0"),
    ]:
        res = ConfigResource(ResourceType.TOPIC, topic,
                             incremental_configs=[ConfigEntry(name, value,
                                                              incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as ei:
            admin.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)
        assert error_code(ei) == KafkaError.INVALID_CONFIG
        assert f"Invalid value {value} for configuration {name}: {why}" in str(ei.value)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.format.version", "3.0", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res], request_timeout=30)[res].result(timeout=30)
    assert describe_topic(admin, topic)["message.format.version"].value == "3.0"

    # Ignored: records are stored and read back as usual.
    assert_delivered(produce(bootstrap, topic, [{"key": b"k", "value": b"v"}]))
    assert [m.value() for m in consume(bootstrap, topic, expect=1)] == [b"v"]


def test_apache_kafka_4_refuses_the_deprecated_topic_configs(kafka_ref):
    # What README says Kafka 4.x does: "Unknown topic config name".
    from confluent_kafka.admin import NewTopic
    admin = admin_client(kafka_ref.bootstrap)
    for name, value in DEPRECATED.items():
        topic = unique_topic("depr")
        fs = admin.create_topics([NewTopic(topic, 1, 1, config={name: value})], request_timeout=30)
        with pytest.raises(KafkaException) as ei:
            fs[topic].result(timeout=30)
        assert error_code(ei) == KafkaError.INVALID_CONFIG
        assert f"Unknown topic config name: {name}" in str(ei.value)
