"""Differential tests: the same scenario runs against Apache Kafka 4.4.0 (the
`kafka_ref` fixture, KRaft, one combined node) and against Shardline, and
the observable answers are compared after normalisation (topic ids, hosts,
ports, member ids, throttle times and "now" timestamps removed).

Requests are sent at pinned API versions both brokers serve, mostly as raw
Kafka requests built with kafka-python 3's protocol classes (exact error
codes), and with confluent-kafka where a real client's behaviour is the
point (group assignment). Each topic name is used on both brokers, so
answers can be compared as they are.

test_unauthorized starts a second, private Kafka (SASL_PLAINTEXT with
PLAIN, StandardAuthorizer, super user admin) and a Shardline set up the
same way, and compares what a user without ACLs is answered.

Where Shardline differs on purpose, the test asserts both answers exactly
(see README "Differences from Apache Kafka"), so it fails if either side
changes.
"""

import struct
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer

from conftest import Broker, admin_client, running, unique_topic, wait_for_topic

# Kafka error codes used below
NONE = 0
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
COORDINATOR_LOAD_IN_PROGRESS = 14
INVALID_TOPIC_EXCEPTION = 17
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79

# DescribeConfigs config sources
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5


# --------------------------------------------------------------------------
# The two brokers
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shardline(shardline_bin, tmp_path_factory):
    """Shardline with the settings kafka_ref.py gives Apache Kafka where the
    defaults differ (group.initial.rebalance.delay.ms=0, num.partitions=1)."""
    base = tmp_path_factory.mktemp("shardline-differential")
    with running(Broker(shardline_bin, base / "data", base / "broker.log", name="differential",
                        extra_args=["--group-initial-rebalance-delay-ms", "0",
                                    "--num-partitions", "1"])) as b:
        yield b


@pytest.fixture(scope="module")
def brokers(shardline, kafka_ref):
    return {"kafka": kafka_ref.bootstrap, "shardline": shardline.bootstrap}


def run_both(brokers, scenario, *args):
    """scenario(bootstrap, *args) on both brokers -> {"kafka": .., "shardline": ..}."""
    return {name: scenario(bootstrap, *args) for name, bootstrap in brokers.items()}


def assert_same(out):
    assert out["shardline"] == out["kafka"], (
        f"\nApache Kafka: {out['kafka']}\nShardline:    {out['shardline']}")


# --------------------------------------------------------------------------
# Raw requests (kafka-python 3 protocol classes)
# --------------------------------------------------------------------------

class Raw:
    """One connection-managing kafka-python admin client used to send
    hand-built requests at explicit versions; answers are plain dicts."""

    def __init__(self, bootstrap, **conf):
        from kafka.admin import KafkaAdminClient
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, **conf)

    def close(self):
        self.admin.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, req):
        out = {}

        async def go():
            out["r"] = await self.admin._manager.send(req)

        self.admin._manager.run(go)
        return out["r"].to_dict()

    # -- topics ------------------------------------------------------------
    def create_topic(self, name, partitions=1, replication=1, configs=None, validate_only=False):
        from kafka.protocol.admin import CreateTopicsRequest as R
        cfg = [R.CreatableTopic.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()]
        r = self.send(R(version=7, timeout_ms=15000, validate_only=validate_only, topics=[
            R.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication,
                             assignments=[], configs=cfg)]))
        return r["topics"][0]

    def delete_topic(self, name):
        from kafka.protocol.admin import DeleteTopicsRequest as R
        r = self.send(R(version=5, timeout_ms=15000, topic_names=[name]))
        return r["responses"][0]["error_code"]

    def create_partitions(self, name, count):
        from kafka.protocol.admin import CreatePartitionsRequest as R
        r = self.send(R(version=3, timeout_ms=15000, validate_only=False, topics=[
            R.CreatePartitionsTopic(name=name, count=count, assignments=None)]))
        return r["results"][0]["error_code"]

    def delete_records(self, name, partition, offset):
        from kafka.protocol.admin import DeleteRecordsRequest as R
        T = R.DeleteRecordsTopic
        r = self.send(R(version=2, timeout_ms=15000, topics=[
            T(name=name, partitions=[T.DeleteRecordsPartition(partition_index=partition, offset=offset)])]))
        p = r["topics"][0]["partitions"][0]
        return p["error_code"], p["low_watermark"]

    # -- data --------------------------------------------------------------
    def produce(self, name, partition, records, producer=None, base_sequence=-1, version=9):
        """One record batch (v2) of `records` = [(key, value, timestamp_ms)];
        producer = (id, epoch) for an idempotent batch."""
        from kafka.protocol.producer import ProduceRequest as R
        from kafka.record.memory_records import MemoryRecordsBuilder
        pid, epoch = producer or (-1, -1)
        b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 24,
                                 producer_id=pid, producer_epoch=epoch, base_sequence=base_sequence)
        for key, value, ts in records:
            b.append(timestamp=ts, key=key, value=value, headers=[])
        b.close()
        T = R.TopicProduceData
        r = self.send(R(version=version, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[
            T(name=name, partition_data=[T.PartitionProduceData(index=partition,
                                                                records=bytes(b.buffer()))])]))
        p = r["responses"][0]["partition_responses"][0]
        return {"error_code": p["error_code"], "base_offset": p["base_offset"],
                "log_start_offset": p["log_start_offset"]}

    def fetch(self, name, partition, offset, version=12):
        from kafka.protocol.consumer import FetchRequest as R
        T = R.FetchTopic
        r = self.send(R(version=version, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                        isolation_level=0, session_id=0, session_epoch=-1, topics=[
                            T(topic=name, partitions=[T.FetchPartition(
                                partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                                last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)])],
                        forgotten_topics_data=[], rack_id=""))
        assert r.get("error_code", NONE) == NONE, r  # v7+
        p = r["responses"][0]["partitions"][0]
        return {"error_code": p["error_code"], "high_watermark": p["high_watermark"],
                "log_start_offset": p.get("log_start_offset"), "has_records": bool(p["records"])}

    def list_offsets(self, name, partition, timestamp, version=7):
        from kafka.protocol.consumer import ListOffsetsRequest as R
        T = R.ListOffsetsTopic
        r = self.send(R(version=version, replica_id=-1, isolation_level=0, topics=[
            T(name=name, partitions=[T.ListOffsetsPartition(
                partition_index=partition, current_leader_epoch=-1, timestamp=timestamp)])]))
        p = r["topics"][0]["partitions"][0]
        return {"error_code": p["error_code"], "offset": p["offset"], "timestamp": p["timestamp"],
                "leader_epoch": p.get("leader_epoch")}

    def init_producer_id(self):
        from kafka.protocol.producer import InitProducerIdRequest as R
        deadline = time.monotonic() + 30
        while True:
            r = self.send(R(version=4, transactional_id=None, transaction_timeout_ms=60000,
                            producer_id=-1, producer_epoch=-1))
            # Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its producer id
            # block is allocated; clients retry.
            if r["error_code"] != COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r["error_code"] == NONE, r
        return r["producer_id"], r["producer_epoch"]


def records(n, start_ts=None, prefix=b"v"):
    ts = start_ts if start_ts is not None else int(time.time() * 1000)
    return [(b"k%d" % i, prefix + b"%d" % i, ts) for i in range(n)]


# --------------------------------------------------------------------------
# Error codes: unknown topics and partitions, offsets out of range
# --------------------------------------------------------------------------

def test_unknown_topic_and_partition(brokers):
    """Produce, Fetch and ListOffsets naming a topic that does not exist, and
    a partition past the topic's last one."""
    missing = unique_topic("diff-missing")
    topic = unique_topic("diff-one")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            return {
                "fetch unknown topic": raw.fetch(missing + "-f", 0, 0)["error_code"],
                "list offsets unknown topic": raw.list_offsets(missing + "-l", 0, -1)["error_code"],
                "produce unknown topic": raw.produce(missing + "-p", 0, records(1))["error_code"],
                "produce unknown partition": raw.produce(topic, 5, records(1))["error_code"],
                "fetch unknown partition": raw.fetch(topic, 5, 0)["error_code"],
                "list offsets unknown partition": raw.list_offsets(topic, 5, -1)["error_code"],
            }

    out = run_both(brokers, scenario)
    assert out["kafka"]["fetch unknown partition"] == UNKNOWN_TOPIC_OR_PARTITION
    # Documented difference: Shardline's auto_create_topics_enable also
    # creates a topic on Produce; Kafka creates only on Metadata.
    assert out["kafka"].pop("produce unknown topic") == UNKNOWN_TOPIC_OR_PARTITION
    assert out["shardline"].pop("produce unknown topic") == NONE
    assert_same(out)


def test_fetch_out_of_range(brokers):
    """Fetch past the log end and before the log start (after DeleteRecords):
    OFFSET_OUT_OF_RANGE with the watermarks; at the log end: no records."""
    topic = unique_topic("diff-range")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            produced = raw.produce(topic, 0, records(5))
            return {
                "produce": produced,
                "at 0": raw.fetch(topic, 0, 0),
                "at log end": raw.fetch(topic, 0, 5),
                "past log end": raw.fetch(topic, 0, 6),
                "far past": raw.fetch(topic, 0, 1000),
                "delete records to 3": raw.delete_records(topic, 0, 3),
                "before log start": raw.fetch(topic, 0, 1),
                "at log start": raw.fetch(topic, 0, 3),
                "delete records past high watermark": raw.delete_records(topic, 0, 6),
                "delete records to -1 (high watermark)": raw.delete_records(topic, 0, -1),
                "delete records unknown partition": raw.delete_records(topic, 3, 0),
            }

    out = run_both(brokers, scenario)
    assert out["kafka"]["past log end"]["error_code"] == OFFSET_OUT_OF_RANGE
    assert out["kafka"]["delete records past high watermark"][0] == OFFSET_OUT_OF_RANGE
    assert_same(out)


def test_fetch_zstd_by_old_versions(brokers):
    """A zstd batch (KIP-110) read with Fetch below v10, the versions of
    clients that cannot decompress zstd (Java before 2.1), and with v10+.
    Kafka 4.4 serves Fetch from v4 (KIP-896)."""
    topic = unique_topic("diff-zstd")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            # librdkafka has zstd built in (kafka-python would need a module).
            from confluent_kafka import Producer
            p = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd",
                          "linger.ms": 50})
            for i in range(3):
                p.produce(topic, value=b"v%d" % i, partition=0)
            assert p.flush(30) == 0
            return {
                    **{f"fetch v{v}": raw.fetch(topic, 0, 0, version=v) for v in (4, 7, 9, 10, 12)}}

    out = run_both(brokers, scenario)
    # Kafka 4.x no longer answers UNSUPPORTED_COMPRESSION_TYPE below v10
    # (KIP-110 did): the stored zstd batch goes out as is, to every version.
    assert all(f["error_code"] == NONE and f["has_records"]
               for name, f in out["kafka"].items() if name.startswith("fetch"))
    assert_same(out)


# --------------------------------------------------------------------------
# Error codes: topic administration
# --------------------------------------------------------------------------

def test_create_topic_errors(brokers):
    existing = unique_topic("diff-exists")
    cases = {
        "exists": dict(name=existing),
        "name .": dict(name="."),
        "name ..": dict(name=".."),
        "name 250 chars": dict(name="a" * 250),
        "name 249 chars": dict(name="b" * 240 + uuid.uuid4().hex[:9]),
        "name with space": dict(name="a b"),
        "name with slash": dict(name="a/b"),
        "name with colon": dict(name="a:b"),
        "empty name": dict(name=""),
        "0 partitions": dict(name=unique_topic("diff-p0"), partitions=0),
        "-2 partitions": dict(name=unique_topic("diff-pm2"), partitions=-2),
        "-1 partitions (default)": dict(name=unique_topic("diff-pm1"), partitions=-1, replication=-1),
        "replication factor 2": dict(name=unique_topic("diff-rf2"), replication=2),
        "replication factor 0": dict(name=unique_topic("diff-rf0"), replication=0),
        "bad config value": dict(name=unique_topic("diff-cfg"), configs={"retention.ms": "abc"}),
        "config value below bound": dict(name=unique_topic("diff-cfg"), configs={"retention.ms": "-2"}),
        "unknown config": dict(name=unique_topic("diff-cfg"), configs={"no.such.config": "1"}),
        "bad cleanup.policy": dict(name=unique_topic("diff-cfg"), configs={"cleanup.policy": "shred"}),
    }

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(existing)["error_code"] == NONE
            res = {}
            for case, kw in cases.items():
                t = raw.create_topic(**kw)
                res[case] = (t["error_code"], t["num_partitions"] if t["error_code"] == NONE else None)
            return res

    out = run_both(brokers, scenario)
    assert out["kafka"]["exists"][0] == TOPIC_ALREADY_EXISTS
    assert out["kafka"]["replication factor 2"][0] == INVALID_REPLICATION_FACTOR
    assert_same(out)


def test_topic_admin_errors(brokers):
    """DeleteTopics of an unknown topic, CreatePartitions to fewer or the same
    number of partitions and of an unknown topic."""
    topic = unique_topic("diff-parts")
    missing = unique_topic("diff-missing")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic, partitions=3)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 3)
            return {
                "delete unknown": raw.delete_topic(missing),
                "partitions 2 < 3": raw.create_partitions(topic, 2),
                "partitions 3 = 3": raw.create_partitions(topic, 3),
                "partitions 0": raw.create_partitions(topic, 0),
                "partitions of unknown": raw.create_partitions(missing, 4),
                "partitions 4 > 3": raw.create_partitions(topic, 4),
            }

    assert_same(run_both(brokers, scenario))


# --------------------------------------------------------------------------
# Error codes: producer ids, sequences, sizes, versions
# --------------------------------------------------------------------------

def test_idempotent_produce_errors(brokers):
    topic = unique_topic("diff-idem")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            pid, epoch = raw.init_producer_id()
            res = {
                "epoch": epoch,
                "seq 0": raw.produce(topic, 0, records(2), (pid, epoch), 0),
                "seq 0 again (duplicate)": raw.produce(topic, 0, records(2), (pid, epoch), 0),
                "seq 5 (gap)": raw.produce(topic, 0, records(1), (pid, epoch), 5),
                "seq 2 (next)": raw.produce(topic, 0, records(1), (pid, epoch), 2),
                "old epoch": raw.produce(topic, 0, records(1), (pid, epoch - 1), 3) if epoch > 0 else None,
                "unknown producer id, seq 0": raw.produce(topic, 0, records(1), (pid + 1_000_000, 0), 0),
                "unknown producer id, seq 7": raw.produce(topic, 0, records(1), (pid + 2_000_000, 0), 7),
            }
            return res

    assert_same(run_both(brokers, scenario))


def test_message_too_large(brokers):
    """A batch over message.max.bytes (1048588 on both) and one over a topic's
    max.message.bytes get MESSAGE_TOO_LARGE; nothing is stored."""
    topic = unique_topic("diff-big")
    small = unique_topic("diff-small-max")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            assert raw.create_topic(small, configs={"max.message.bytes": "2000"})["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            wait_for_topic(bootstrap, small, 1)
            return {
                "1.1 MB": raw.produce(topic, 0, [(None, b"x" * 1_100_000, 1000)]),
                "1 MB": raw.produce(topic, 0, [(None, b"x" * 1_000_000, 1000)]),
                "3000 B to max 2000": raw.produce(small, 0, [(None, b"x" * 3000, 1000)]),
                "1000 B to max 2000": raw.produce(small, 0, [(None, b"x" * 1000, 1000)]),
            }

    out = run_both(brokers, scenario)
    assert out["kafka"]["1.1 MB"]["error_code"] == MESSAGE_TOO_LARGE
    assert_same(out)


def test_unsupported_api_version(brokers, shardline, kafka_ref):
    """ApiVersions at a version the broker does not know: UNSUPPORTED_VERSION
    in a v0 answer listing the versions (KIP-511), and the same connection
    serves a v0 retry. Another API at an unknown version: connection closed."""
    from raw import API_VERSIONS, connect, parse_api_versions_v0, read_response, request, wait_closed

    class Addr:
        def __init__(self, port):
            self.port = port

    def scenario(bootstrap):
        port = int(bootstrap.rsplit(":", 1)[1])
        with connect(Addr(port)) as s:
            # Header v2 as clients send it to a newer ApiVersions: the
            # client id, then an empty tagged-field section (Kafka closes the
            # connection without that byte).
            s.sendall(request(API_VERSIONS, 99, 555, body=b"\x00"))
            corr, err, keys = parse_api_versions_v0(read_response(s))
            s.sendall(request(API_VERSIONS, 0, 556))
            corr2, err2, keys2 = parse_api_versions_v0(read_response(s))
        with connect(Addr(port)) as s:
            s.sendall(request(3, 99, 78, body=b"\x00" * 8))
            closed = wait_closed(s, 10)
        return {"v99": (corr, err, keys.get(API_VERSIONS, (None,))[0]),
                "v99 lists": set(keys),
                "v0 retry": (corr2, err2, len(keys2) > 30),
                "metadata v99 closes": closed}

    out = run_both(brokers, scenario)
    assert out["kafka"]["v99"][1] == UNSUPPORTED_VERSION
    # Documented difference: Kafka's UNSUPPORTED_VERSION answer lists only
    # ApiVersions; Shardline's lists every API it serves.
    assert out["kafka"].pop("v99 lists") == {API_VERSIONS}
    assert len(out["shardline"].pop("v99 lists")) > 30
    assert_same(out)


# --------------------------------------------------------------------------
# ListOffsets
# --------------------------------------------------------------------------

def test_list_offsets_by_time(brokers):
    """Earliest, latest, MAX_TIMESTAMP and by-time lookups on records with
    CreateTime timestamps 1000, 3000, 2000, 3000 (one batch each), then after
    DeleteRecords, and on an empty topic."""
    topic = unique_topic("diff-lo")
    empty = unique_topic("diff-lo-empty")
    queries = {"earliest": -2, "latest": -1, "max timestamp": -3, "ts 0": 0, "ts 1000": 1000,
               "ts 1500": 1500, "ts 2000": 2000, "ts 2500": 2500, "ts 3000": 3000, "ts 3001": 3001}

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            assert raw.create_topic(empty)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            wait_for_topic(bootstrap, empty, 1)
            for i, ts in enumerate([1000, 3000, 2000, 3000]):
                assert raw.produce(topic, 0, [(b"k", b"v%d" % i, ts)])["error_code"] == NONE
            res = {"before delete": {q: raw.list_offsets(topic, 0, t) for q, t in queries.items()}}
            assert raw.delete_records(topic, 0, 2)[0] == NONE
            res["after delete to 2"] = {q: raw.list_offsets(topic, 0, t) for q, t in queries.items()}
            res["empty"] = {q: raw.list_offsets(empty, 0, t) for q, t in queries.items()}
            # ListOffsets v1 (no leader epoch): the same lookups
            res["v1"] = {q: raw.list_offsets(topic, 0, t, version=1)
                         for q, t in queries.items() if t != -3}
            return res

    out = run_both(brokers, scenario)
    assert out["kafka"]["before delete"]["ts 2500"]["offset"] == 1
    # Documented difference: after DeleteRecords removed the record with the
    # largest timestamp (offset 1), Kafka still names it (below the log start
    # offset); Shardline names the first remaining record with that timestamp.
    assert out["kafka"]["after delete to 2"].pop("max timestamp") == {
        "error_code": NONE, "offset": 1, "timestamp": 3000, "leader_epoch": 0}
    assert out["shardline"]["after delete to 2"].pop("max timestamp") == {
        "error_code": NONE, "offset": 3, "timestamp": 3000, "leader_epoch": 0}
    assert_same(out)


def test_list_offsets_batch_max_timestamp(brokers):
    """Several records in one batch: by-time lookups find the record, not the
    batch; MAX_TIMESTAMP names the first record holding the largest time."""
    topic = unique_topic("diff-lo-batch")
    queries = {"earliest": -2, "latest": -1, "max timestamp": -3, "ts 1500": 1500,
               "ts 2500": 2500, "ts 5000": 5000}

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            recs = [(b"k", b"v%d" % i, ts) for i, ts in enumerate([1000, 4000, 2000, 4000, 3000])]
            assert raw.produce(topic, 0, recs)["error_code"] == NONE
            return {q: raw.list_offsets(topic, 0, t) for q, t in queries.items()}

    assert_same(run_both(brokers, scenario))


def test_list_offsets_log_append_time(brokers):
    """A LogAppendTime topic: the broker's time replaces the producer's, and
    lookups by time use it."""
    topic = unique_topic("diff-lat")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic, configs={"message.timestamp.type": "LogAppendTime"})["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 1)
            t0 = int(time.time() * 1000)
            assert raw.produce(topic, 0, [(b"k", b"a", 1000)])["error_code"] == NONE
            time.sleep(0.05)
            assert raw.produce(topic, 0, [(b"k", b"b", 1000)])["error_code"] == NONE
            t1 = int(time.time() * 1000)

            def norm(r):
                r = dict(r)
                if r["timestamp"] != -1:
                    assert t0 - 5 <= r["timestamp"] <= t1 + 5, (t0, r, t1)
                    r["timestamp"] = "now"
                return r

            return {
                "ts 1000 (producer time)": norm(raw.list_offsets(topic, 0, 1000)),
                "ts t0": norm(raw.list_offsets(topic, 0, t0 - 5)),
                "after last": norm(raw.list_offsets(topic, 0, t1 + 60_000)),
                "max timestamp": norm(raw.list_offsets(topic, 0, -3)),
                "latest": norm(raw.list_offsets(topic, 0, -1)),
            }

    assert_same(run_both(brokers, scenario))


# --------------------------------------------------------------------------
# DescribeConfigs
# --------------------------------------------------------------------------

def describe_configs(raw, resource_type, name, keys=None):
    """{config name: (value, read_only, source, sensitive, type, synonyms)}."""
    from kafka.protocol.admin import DescribeConfigsRequest as R
    r = raw.send(R(version=4, include_synonyms=True, include_documentation=False, resources=[
        R.DescribeConfigsResource(resource_type=resource_type, resource_name=name,
                                  configuration_keys=keys)]))
    res = r["results"][0]
    assert res["error_code"] == NONE, res
    return {c["name"]: (c["value"], c["read_only"], c["config_source"], c["is_sensitive"], c["config_type"],
                        tuple((s["name"], s["value"], s["source"]) for s in c["synonyms"]))
            for c in res["configs"]}


TOPIC = 2
BROKER = 4

# Topic configs Apache Kafka 4.4.0 reports that Shardline does not: features
# Shardline does not have (tiered storage, replication throttles, flush.*
# knobs, cleaner tuning, dead-letter queues). See README "Differences from Apache Kafka".
KAFKA_ONLY_TOPIC_CONFIGS = {
    "errors.deadletterqueue.group.enable", "file.delete.delay.ms", "flush.messages", "flush.ms",
    "local.retention.bytes", "local.retention.ms", "max.compaction.lag.ms",
    "max.decompressed.message.bytes", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    "remote.copy.lag.bytes", "remote.copy.lag.ms", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "segment.index.bytes",
    "segment.jitter.ms",
}
# Removed in Kafka 4.0 (KIP-937, KIP-724), still accepted and reported by
# Shardline as Kafka 3.9 does, for the 0.10-3.x clients and tools it serves.
SHARDLINE_ONLY_TOPIC_CONFIGS = {"message.timestamp.difference.max.ms", "message.format.version",
                                "message.downconversion.enable"}


def topic_config_differences(out):
    k, s = out["kafka"], out["shardline"]
    return {
        "kafka only": set(k) - set(s),
        "shardline only": set(s) - set(k),
        "differing": {n: {"kafka": k[n], "shardline": s[n]} for n in sorted(set(k) & set(s)) if k[n] != s[n]},
    }


# Documented differences of the configs both report (value, read_only,
# source, sensitive, type, synonyms): retention is 3 days in Shardline (a
# product decision), segments are preallocated (see README "Partitions are
# cheap"), Shardline names its broker settings log.retention.ms / log.roll.ms
# as synonyms where Kafka's defaults live in the *.hours settings it does not
# list, and Kafka's KRaft controller stores min.insync.replicas as a
# cluster-level dynamic default (source DYNAMIC_DEFAULT_BROKER_CONFIG).
MIN_ISR = {"kafka": ("1", False, DYNAMIC_DEFAULT_BROKER_CONFIG, False, 3,
                     (("min.insync.replicas", "1", DYNAMIC_DEFAULT_BROKER_CONFIG),
                      ("min.insync.replicas", "1", DEFAULT_CONFIG))),
           "shardline": ("1", False, DEFAULT_CONFIG, False, 3, (("min.insync.replicas", "1", DEFAULT_CONFIG),))}
PREALLOCATE = {"kafka": ("false", False, DEFAULT_CONFIG, False, 1, (("log.preallocate", "false", DEFAULT_CONFIG),)),
               "shardline": ("true", False, DEFAULT_CONFIG, False, 1, (("log.preallocate", "true", DEFAULT_CONFIG),))}
SEGMENT_MS = {"kafka": ("604800000", False, DEFAULT_CONFIG, False, 5, ()),
              "shardline": ("604800000", False, DEFAULT_CONFIG, False, 5,
                            (("log.roll.ms", "604800000", DEFAULT_CONFIG),))}


def describe_new_topic(brokers, topic, configs=None):
    """Create `topic` on both brokers and compare its DescribeConfigs."""
    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic, configs=configs)["error_code"] == NONE
            # Kafka's brokers learn of a new topic from the metadata log a
            # moment later; until then DescribeConfigs answers UNKNOWN_TOPIC.
            wait_for_topic(bootstrap, topic, 1)
            return describe_configs(raw, TOPIC, topic)

    return topic_config_differences(run_both(brokers, scenario))


def documented_differences(retention_ms):
    """What test_describe_configs_topic_* expect, `retention_ms` being
    {"kafka": .., "shardline": ..} of that config (the one that varies)."""
    return {
        "kafka only": KAFKA_ONLY_TOPIC_CONFIGS,
        "shardline only": SHARDLINE_ONLY_TOPIC_CONFIGS,
        "differing": {
            "min.insync.replicas": MIN_ISR,
            "preallocate": PREALLOCATE,
            "retention.ms": retention_ms,
            "segment.ms": SEGMENT_MS,
        },
    }


def test_describe_configs_topic_defaults(brokers):
    d = describe_new_topic(brokers, unique_topic("diff-cfg-default"))
    assert d == documented_differences({
        "kafka": ("604800000", False, DEFAULT_CONFIG, False, 5, ()),
        "shardline": ("259200000", False, DEFAULT_CONFIG, False, 5,
                      (("log.retention.ms", "259200000", DEFAULT_CONFIG),))})


def test_describe_configs_topic_overrides(brokers):
    """Overrides are DYNAMIC_TOPIC_CONFIG, with the broker default as the
    next synonym; asking for some keys returns only those."""
    topic = unique_topic("diff-cfg-over")
    overrides = {"retention.ms": "1000", "cleanup.policy": "compact", "max.message.bytes": "2000",
                 "message.timestamp.type": "LogAppendTime"}
    d = describe_new_topic(brokers, topic, overrides)
    assert d == documented_differences({
        "kafka": ("1000", False, DYNAMIC_TOPIC_CONFIG, False, 5,
                  (("retention.ms", "1000", DYNAMIC_TOPIC_CONFIG),)),
        "shardline": ("1000", False, DYNAMIC_TOPIC_CONFIG, False, 5,
                      (("retention.ms", "1000", DYNAMIC_TOPIC_CONFIG),
                       ("log.retention.ms", "259200000", DEFAULT_CONFIG)))})

    def some_keys(bootstrap):
        with Raw(bootstrap) as raw:
            return describe_configs(raw, TOPIC, topic, keys=["cleanup.policy", "max.message.bytes"])

    assert_same(run_both(brokers, some_keys))


BROKER_KEYS = ["message.max.bytes", "num.partitions", "auto.create.topics.enable", "log.segment.bytes",
               "group.initial.rebalance.delay.ms", "offsets.retention.minutes", "default.replication.factor",
               "log.cleanup.policy", "compression.type", "log.retention.ms"]


def test_describe_configs_broker(brokers, kafka_ref):
    """Common broker settings: same values, types and sensitivity. Shardline's
    broker settings are all read-only (no dynamic broker configs), sources
    are STATIC_BROKER_CONFIG only where the value differs from the default,
    and log.retention.ms carries Shardline's 3-day default where Kafka's is
    null (its default is log.retention.hours=168)."""
    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            node = "1" if bootstrap == kafka_ref.bootstrap else "0"
            return describe_configs(raw, BROKER, node, keys=BROKER_KEYS)

    out = run_both(brokers, scenario)
    k, s = out["kafka"], out["shardline"]
    assert set(k) == set(s) == set(BROKER_KEYS)
    same = {n: (v[0], v[3], v[4]) for n, v in k.items() if n != "log.retention.ms"}
    assert {n: (v[0], v[3], v[4]) for n, v in s.items() if n != "log.retention.ms"} == same
    assert k["log.retention.ms"][0] is None and s["log.retention.ms"][0] == "259200000"
    assert {n for n, v in k.items() if not v[1]} == {
        "message.max.bytes", "log.segment.bytes", "log.cleanup.policy", "compression.type", "log.retention.ms"}
    assert all(v[1] for v in s.values()), "Shardline broker configs are read-only"
    # Kafka: STATIC_BROKER_CONFIG for what server.properties sets (num.partitions=1 too).
    assert {n for n, v in k.items() if v[2] == STATIC_BROKER_CONFIG} == {
        "num.partitions", "group.initial.rebalance.delay.ms"}
    assert {n for n, v in s.items() if v[2] == STATIC_BROKER_CONFIG} == {"group.initial.rebalance.delay.ms"}


# --------------------------------------------------------------------------
# Classic groups over raw requests: errors and states
# --------------------------------------------------------------------------

def subscription(topics):
    """ConsumerProtocolSubscription v0."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def assignment(topic, partitions):
    """ConsumerProtocolAssignment v0."""
    return (struct.pack(">hi", 0, 1) + struct.pack(">h", len(topic)) + topic.encode()
            + struct.pack(">i", len(partitions)) + b"".join(struct.pack(">i", p) for p in partitions)
            + struct.pack(">i", -1))


class GroupRaw(Raw):
    def find_coordinator(self, group, timeout=30):
        """FindCoordinator until it answers: Kafka creates __consumer_offsets
        on the first one and answers NOT_COORDINATOR to group requests
        before that."""
        from kafka.protocol.metadata import FindCoordinatorRequest as R
        deadline = time.monotonic() + timeout
        while True:
            r = self.send(R(version=3, key=group, key_type=0))
            if r["error_code"] == NONE or time.monotonic() > deadline:
                return r["error_code"]
            time.sleep(0.2)

    def join(self, group, member_id, topic, version=7):
        from kafka.protocol.consumer import JoinGroupRequest as R
        r = self.send(R(version=version, group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=20000,
                        member_id=member_id, group_instance_id=None, protocol_type="consumer",
                        protocols=[R.JoinGroupRequestProtocol(name="range", metadata=subscription([topic]))]))
        return r

    def sync(self, group, generation, member_id, assignments=()):
        from kafka.protocol.consumer import SyncGroupRequest as R
        r = self.send(R(version=5, group_id=group, generation_id=generation, member_id=member_id,
                        group_instance_id=None, protocol_type="consumer", protocol_name="range",
                        assignments=[R.SyncGroupRequestAssignment(member_id=m, assignment=a)
                                     for m, a in assignments]))
        return r["error_code"], r["assignment"]

    def heartbeat(self, group, generation, member_id):
        from kafka.protocol.consumer import HeartbeatRequest as R
        return self.send(R(version=4, group_id=group, generation_id=generation, member_id=member_id,
                           group_instance_id=None))["error_code"]

    def commit(self, group, generation, member_id, topic, offset):
        from kafka.protocol.consumer import OffsetCommitRequest as R
        T = R.OffsetCommitRequestTopic
        r = self.send(R(version=8, group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
                        group_instance_id=None, topics=[T(name=topic, partitions=[T.OffsetCommitRequestPartition(
                            partition_index=0, committed_offset=offset, committed_leader_epoch=-1,
                            committed_metadata="")])]))
        return r["topics"][0]["partitions"][0]["error_code"]

    def offset_fetch(self, group, topic):
        from kafka.protocol.consumer import OffsetFetchRequest as R
        T = R.OffsetFetchRequestTopic
        r = self.send(R(version=7, group_id=group, require_stable=False,
                        topics=[T(name=topic, partition_indexes=[0, 1])]))
        return r["error_code"], [(t["name"], [(p["partition_index"], p["committed_offset"], p["error_code"])
                                              for p in t["partitions"]]) for t in r["topics"]]

    def describe(self, group, ids):
        from kafka.protocol.admin import DescribeGroupsRequest as R
        g = self.send(R(version=5, groups=[group], include_authorized_operations=False))["groups"][0]
        return {"error_code": g["error_code"], "state": g["group_state"], "protocol_type": g["protocol_type"],
                "protocol": g["protocol_data"],
                "members": sorted((ids.get(m["member_id"], "?"), m["client_id"], len(m["member_metadata"]),
                                   m["member_assignment"])
                                  for m in g["members"])}

    def list_groups(self, states):
        from kafka.protocol.admin import ListGroupsRequest as R
        r = self.send(R(version=4, states_filter=states))
        assert r["error_code"] == NONE, r
        return {g["group_id"]: g["group_state"] for g in r["groups"]}

    def leave(self, group, member_id):
        from kafka.protocol.consumer import LeaveGroupRequest as R
        r = self.send(R(version=4, group_id=group, members=[R.MemberIdentity(member_id=member_id,
                                                                              group_instance_id=None)]))
        return r["error_code"], [m["error_code"] for m in r["members"]]

    def delete_group(self, group):
        from kafka.protocol.admin import DeleteGroupsRequest as R
        return self.send(R(version=2, groups_names=[group]))["results"][0]["error_code"]


def wait_state(raw, group, state, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = raw.describe(group, {})["state"]
        if got == state:
            return got
        time.sleep(0.05)
    return got


def test_classic_group_errors_and_states(brokers):
    """One member joins (MEMBER_ID_REQUIRED first), syncs, commits; wrong
    generations and unknown member ids are refused; a second member's join
    moves the group to PreparingRebalance (the first gets
    REBALANCE_IN_PROGRESS on heartbeat) and, once both rejoined, to
    CompletingRebalance and Stable; leaving empties it; DeleteGroups refuses
    a non-empty group and then deletes it (Dead)."""
    topic = unique_topic("diff-grp")
    group = unique_topic("diff-grp-g")
    fresh = unique_topic("diff-grp-none")

    def scenario(bootstrap):
        with GroupRaw(bootstrap) as raw, GroupRaw(bootstrap) as raw2:
            assert raw.create_topic(topic, partitions=2)["error_code"] == NONE
            wait_for_topic(bootstrap, topic, 2)
            res = {}
            ids = {}
            assert raw.find_coordinator(group) == NONE
            j = raw.join(group, "", topic)
            res["join without id"] = j["error_code"]
            m1 = j["member_id"]
            ids[m1] = "m1"
            res["join unknown member id"] = raw.join(group, "no-such-member", topic)["error_code"]
            j = raw.join(group, m1, topic)
            res["join"] = (j["error_code"], j["generation_id"], ids.get(j["leader"]), j["protocol_name"],
                           [ids.get(m["member_id"]) for m in j["members"]])
            gen = j["generation_id"]
            res["state after join"] = raw.describe(group, ids)
            res["sync wrong generation"] = raw.sync(group, gen + 1, m1)[0]
            res["sync unknown member"] = raw.sync(group, gen, "no-such-member")[0]
            res["sync"] = raw.sync(group, gen, m1, [(m1, assignment(topic, [0, 1]))])
            res["state after sync"] = raw.describe(group, ids)
            res["heartbeat"] = raw.heartbeat(group, gen, m1)
            res["heartbeat wrong generation"] = raw.heartbeat(group, gen + 5, m1)
            res["heartbeat unknown member"] = raw.heartbeat(group, gen, "no-such-member")
            res["commit wrong generation"] = raw.commit(group, gen + 5, m1, topic, 3)
            res["commit unknown member"] = raw.commit(group, gen, "no-such-member", topic, 3)
            res["commit"] = raw.commit(group, gen, m1, topic, 3)
            res["offset fetch"] = raw.offset_fetch(group, topic)
            res["offset fetch unknown group"] = raw.offset_fetch(fresh, topic)
            res["delete stable group"] = raw.delete_group(group)
            res["delete unknown group"] = raw.delete_group(fresh)

            # A second member: the group rebalances.
            j2 = raw2.join(group, "", topic)
            m2 = j2["member_id"]
            ids[m2] = "m2"
            second = {}
            t = threading.Thread(target=lambda: second.update(raw2.join(group, m2, topic)))
            t.start()
            res["state while m2 waits"] = wait_state(raw, group, "PreparingRebalance")
            res["heartbeat while rebalancing"] = raw.heartbeat(group, gen, m1)
            res["commit while rebalancing"] = raw.commit(group, gen, m1, topic, 4)
            j = raw.join(group, m1, topic)
            t.join(30)
            assert not t.is_alive()
            gen2 = j["generation_id"]
            res["rejoin"] = (j["error_code"], gen2 - gen, ids.get(j["leader"]),
                             sorted(ids.get(m["member_id"]) for m in j["members"]))
            res["m2 join"] = (second["error_code"], second["generation_id"] - gen, ids.get(second["leader"]),
                              second["members"])
            res["state before sync"] = raw.describe(group, ids)
            res["sync m1"] = raw.sync(group, gen2, m1, [(m1, assignment(topic, [0])), (m2, assignment(topic, [1]))])
            res["sync m2"] = raw2.sync(group, gen2, m2)
            res["state stable"] = raw.describe(group, ids)
            res["list Stable"] = raw.list_groups(["Stable"]).get(group)
            res["list Empty"] = raw.list_groups(["Empty"]).get(group)
            res["leave m2"] = raw2.leave(group, m2)
            res["leave m1"] = raw.leave(group, m1)
            res["state after leave"] = raw.describe(group, ids)
            res["list Empty after leave"] = raw.list_groups(["Empty"]).get(group)
            res["delete empty group"] = raw.delete_group(group)
            res["state after delete"] = raw.describe(group, ids)
            return res

    out = run_both(brokers, scenario)
    assert out["kafka"]["heartbeat while rebalancing"] == REBALANCE_IN_PROGRESS
    assert_same(out)


# --------------------------------------------------------------------------
# Groups with a real client (confluent-kafka): assignments and states
# --------------------------------------------------------------------------

def group_consumer(bootstrap, group, client_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "socket.timeout.ms": 10000}
    conf.update(extra)
    return Consumer(conf)


def poll_until(consumers, cond, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.05)
        if cond():
            return True
    return False


def decode_assignment(data):
    """ConsumerProtocolAssignment -> sorted partitions (one topic here)."""
    if not data:
        return []
    off = 2
    (n_topics,) = struct.unpack_from(">i", data, off)
    off += 4
    parts = []
    for _ in range(n_topics):
        (n,) = struct.unpack_from(">h", data, off)
        off += 2 + n
        (np,) = struct.unpack_from(">i", data, off)
        off += 4
        parts += struct.unpack_from(">%di" % np, data, off)
        off += 4 * np
    return sorted(parts)


def describe_group(bootstrap, group):
    """State, protocol and {client id: partitions} of a classic group
    (DescribeGroups v5)."""
    from kafka.protocol.admin import DescribeGroupsRequest as R
    with Raw(bootstrap) as raw:
        out = {}

        async def go():
            out["r"] = await raw.admin._manager.send(R(version=5, groups=[group],
                                                       include_authorized_operations=False))

        raw.admin._manager.run(go)
    g = out["r"].groups[0]
    return {"error_code": g.error_code, "state": g.group_state, "protocol_type": g.protocol_type,
            "assignor": g.protocol_data,
            "members": {m.client_id: decode_assignment(bytes(m.member_assignment)) for m in g.members}}


def describe_consumer_group(bootstrap, group):
    """State, type, assignor and {client id: partitions} of a group as the
    AdminClient sees it (librdkafka: ConsumerGroupDescribe for KIP-848
    groups, DescribeGroups for classic ones)."""
    admin = admin_client(bootstrap)  # held: a destroyed client never completes its futures
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return {"error_code": NONE, "state": d.state.name.capitalize(), "type": d.type.name,
            "assignor": d.partition_assignor,
            "members": {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                        for m in d.members}}


def wait_group(bootstrap, group, cond, timeout=40, consumers=(), describe=describe_group):
    deadline = time.monotonic() + timeout
    while True:
        d = describe(bootstrap, group)
        if cond(d) or time.monotonic() > deadline:
            return d
        for c in consumers:
            c.poll(0.1)


def two_consumers_scenario(bootstrap, topic, group, extra, describe=describe_group):
    """c1 subscribes and gets every partition; c2 joins and they share; c2
    leaves and c1 has all again; c1 leaves and the group is Empty."""
    res = {}
    assigned = {"c1": set(), "c2": set()}

    def tracker(name):
        def on_assign(c, parts):
            assigned[name] |= {p.partition for p in parts}

        def on_revoke(c, parts):
            assigned[name] -= {p.partition for p in parts}
        return {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_revoke}

    c1 = group_consumer(bootstrap, group, "c1", **extra)
    c2 = group_consumer(bootstrap, group, "c2", **extra)
    try:
        c1.subscribe([topic], **tracker("c1"))
        assert poll_until([c1], lambda: assigned["c1"] == {0, 1, 2, 3}), assigned
        res["one member"] = wait_group(bootstrap, group, lambda d: d["state"] == "Stable",
                                       consumers=[c1], describe=describe)
        c2.subscribe([topic], **tracker("c2"))
        assert poll_until([c1, c2], lambda: assigned["c2"] and assigned["c1"] | assigned["c2"] == {0, 1, 2, 3}
                          and not assigned["c1"] & assigned["c2"]), assigned
        res["two members"] = wait_group(
            bootstrap, group, lambda d: d["state"] == "Stable" and len(d["members"]) == 2
            and sum(len(p) for p in d["members"].values()) == 4, consumers=[c1, c2], describe=describe)
        res["seen by clients"] = {k: sorted(v) for k, v in assigned.items()}
        c2.close()
        c2 = None
        assert poll_until([c1], lambda: assigned["c1"] == {0, 1, 2, 3}), assigned
        res["after c2 left"] = wait_group(
            bootstrap, group, lambda d: d["state"] == "Stable" and len(d["members"]) == 1
            and d["members"].get("c1") == [0, 1, 2, 3], consumers=[c1], describe=describe)
        c1.close()
        c1 = None
        res["after both left"] = wait_group(bootstrap, group, lambda d: d["state"] == "Empty",
                                            describe=describe)
    finally:
        for c in (c1, c2):
            if c is not None:
                c.close()
    return res


CLASSIC = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300}


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_classic_group_assignments(brokers, assignor):
    topic = unique_topic("diff-asg")
    group = unique_topic(f"diff-asg-{assignor}")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic, partitions=4)["error_code"] == NONE
        wait_for_topic(bootstrap, topic, 4)
        return two_consumers_scenario(bootstrap, topic, group,
                                      dict(CLASSIC, **{"partition.assignment.strategy": assignor}))

    out = run_both(brokers, scenario)
    assert out["kafka"]["two members"]["protocol_type"] == "consumer"
    assert_same(out)


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_consumer_group_kip848(brokers, assignor):
    """The same two-consumer story with KIP-848 consumers
    (group.protocol=consumer; the broker assigns), described with
    ConsumerGroupDescribe. Member ids are random UUIDs, so which member
    gets which partitions may differ: two members compare by their counts."""
    topic = unique_topic("diff-848")
    group = unique_topic(f"diff-848-{assignor}")

    def scenario(bootstrap):
        with Raw(bootstrap) as raw:
            assert raw.create_topic(topic, partitions=4)["error_code"] == NONE
        wait_for_topic(bootstrap, topic, 4)
        res = two_consumers_scenario(bootstrap, topic, group,
                                     {"group.protocol": "consumer", "group.remote.assignor": assignor},
                                     describe=describe_consumer_group)
        two = res["two members"]
        two["members"] = sorted(len(p) for p in two["members"].values())
        res["seen by clients"] = sorted(len(p) for p in res["seen by clients"].values())
        return res

    out = run_both(brokers, scenario)
    assert out["kafka"]["two members"]["type"] == "CONSUMER"
    assert out["kafka"]["two members"]["assignor"] == assignor
    assert_same(out)


# --------------------------------------------------------------------------
# Authorization: an authenticated user without ACLs
# --------------------------------------------------------------------------

ALICE, ALICE_PW = "alice", "alice-secret"


@pytest.fixture(scope="module")
def secured(shardline_bin, tmp_path_factory):
    """A Kafka and a Shardline with an ACL authorizer, super user admin and
    a SASL_PLAINTEXT listener (PLAIN) where alice has no ACLs."""
    from conftest import free_port
    from kafka_ref import HOST, KafkaReference
    from test_acls import AclBroker
    from test_sasl import ADMIN, ADMIN_PW, create_scram_user

    k = KafkaReference(tmp_path_factory.mktemp("apache-kafka-acl"))
    sasl_port = free_port()
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN}" password="{ADMIN_PW}" user_{ADMIN}="{ADMIN_PW}" user_{ALICE}="{ALICE_PW}";')
    k.extra = [
        f"listeners=PLAINTEXT://{HOST}:{k.port},SASL_PLAINTEXT://{HOST}:{sasl_port},"
        f"CONTROLLER://{HOST}:{k.controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{k.port},SASL_PLAINTEXT://{HOST}:{sasl_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The broker talks to itself over PLAINTEXT as ANONYMOUS.
        f"super.users=User:{ADMIN};User:ANONYMOUS",
    ]
    s = AclBroker(shardline_bin, tmp_path_factory.mktemp("shardline-acl"), free_port())
    try:
        k.start()
        s.start()
        create_scram_user(s, ALICE, ALICE_PW)
        yield {"kafka": f"{HOST}:{sasl_port}", "shardline": s.sasl_bootstrap}
    finally:
        s.close()
        k.stop()


def test_unauthorized(secured):
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    from test_sasl import ADMIN, ADMIN_PW, sasl_conf
    topic = unique_topic("diff-acl")
    group = unique_topic("diff-acl-g")

    def scenario(bootstrap):
        admin = admin_client(bootstrap, **sasl_conf("PLAIN", ADMIN, ADMIN_PW))
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
        alice = sasl_conf("PLAIN", ALICE, ALICE_PW)
        res = {}
        p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000, **alice})
        got = []
        p.produce(topic, b"v", on_delivery=lambda err, msg: got.append(err))
        p.flush(15)
        res["produce"] = got[0].name() if got and got[0] else got
        # Group requests as raw ones: librdkafka retries FindCoordinator's
        # GROUP_AUTHORIZATION_FAILED instead of reporting it.
        with GroupRaw(bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      sasl_plain_username=ALICE, sasl_plain_password=ALICE_PW) as raw:
            from kafka.protocol.metadata import FindCoordinatorRequest as R
            res["find coordinator"] = raw.send(R(version=3, key=group, key_type=0))["error_code"]
            res["join"] = raw.join(group, "", topic)["error_code"]
            res["commit"] = raw.commit(group, -1, "", topic, 1)
            res["list offsets"] = raw.list_offsets(topic, 0, -1)["error_code"]
            res["fetch"] = raw.fetch(topic, 0, 0)["error_code"]
            res["create topic"] = raw.create_topic(unique_topic("diff-acl-new"))["error_code"]
            from kafka.protocol.admin import CreateAclsRequest as A
            acl = A.AclCreation(resource_type=2, resource_name=topic, resource_pattern_type=3,
                                principal=f"User:{ALICE}", host="*", operation=3, permission_type=3)
            res["create acls"] = raw.send(A(version=2, creations=[acl]))["results"][0]["error_code"]
        return res

    out = {name: scenario(bs) for name, bs in secured.items()}
    assert out["kafka"]["create acls"] == 31  # CLUSTER_AUTHORIZATION_FAILED
    assert out["kafka"]["commit"] == 30  # GROUP_AUTHORIZATION_FAILED
    assert_same(out)
