"""Internal topic names are reserved: clients cannot create, delete, grow,
reconfigure, produce to or delete records of `__consumer_offsets`,
`__transaction_state`, `__cluster_metadata`, `__share_group_state` or any
`__shardline*` name, and no topic's files can collide with the group logs
(which live under DATA_DIR/@internal/). Old data dirs (group logs in
DATA_DIR/__consumer_offsets-<shard>) are migrated at start.

What Apache Kafka 4.4.0 (KRaft, single node) answered, asked on 127.0.0.1
with kafka-python 3 raw requests (see README "Internal topics"):
  Produce to __consumer_offsets / __transaction_state / __share_group_state
      -> INVALID_TOPIC_EXCEPTION (17)
  DeleteRecords on them (when they exist) -> INVALID_TOPIC_EXCEPTION (17)
  CreateTopics __cluster_metadata -> INVALID_REQUEST (42),
      "Creation of internal topic __cluster_metadata is prohibited."
  CreateTopics of the other three: TOPIC_ALREADY_EXISTS (36) when they
      exist, and (!) success when they do not yet exist
  DeleteTopics of __consumer_offsets / __transaction_state: success (!)
  CreatePartitions / AlterConfigs / IncrementalAlterConfigs: success (!)
  Metadata naming an absent internal topic: UNKNOWN_TOPIC_OR_PARTITION (3)
      with is_internal = true (false for __cluster_metadata)
Shardline keeps Kafka's codes where Kafka refuses, and refuses with Kafka's
INVALID_REQUEST (its code for a prohibited internal-topic creation) where
Kafka would let a client destroy the broker's own state.
"""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_delivered, create_topic, produce, unique_topic

RESERVED = ["__consumer_offsets", "__transaction_state", "__cluster_metadata",
            "__share_group_state", "__shardline.metrics", "__shardline"]
INVALID_REQUEST = 42
INVALID_TOPIC_EXCEPTION = 17


class Raw:
    """Raw Kafka requests through kafka-python 3's request classes."""

    def __init__(self, bootstrap):
        from kafka.admin import KafkaAdminClient
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def close(self):
        self.admin.close()

    def send(self, req):
        out = {}

        async def go():
            out["r"] = await self.admin._manager.send(req)

        self.admin._manager.run(go)
        return out["r"]

    def metadata(self, name, auto_create=False):
        from kafka.protocol.metadata import MetadataRequest
        r = self.send(MetadataRequest(topics=[(None, name)], allow_auto_topic_creation=auto_create))
        t = r.topics[0]
        return t.error_code, t.is_internal, len(t.partitions)

    def all_topics(self):
        from kafka.protocol.metadata import MetadataRequest
        r = self.send(MetadataRequest(topics=None, allow_auto_topic_creation=False))
        return {t.name: t for t in r.topics}

    def create(self, name, partitions=1, validate_only=False):
        from kafka.protocol.admin import CreateTopicsRequest
        r = self.send(CreateTopicsRequest(topics=[(name, partitions, 1, [], [])], timeout_ms=10000,
                                          validate_only=validate_only))
        return r.topics[0].error_code, r.topics[0].error_message

    def delete(self, name):
        from kafka.protocol.admin import DeleteTopicsRequest
        r = self.send(DeleteTopicsRequest(topics=[(name, None)], timeout_ms=10000))
        return r.responses[0].error_code, r.responses[0].error_message

    def create_partitions(self, name, count):
        from kafka.protocol.admin import CreatePartitionsRequest
        r = self.send(CreatePartitionsRequest(topics=[(name, count, None)], timeout_ms=10000,
                                              validate_only=False))
        return r.results[0].error_code, r.results[0].error_message

    def alter_configs(self, name):
        from kafka.protocol.admin import AlterConfigsRequest
        r = self.send(AlterConfigsRequest(resources=[(2, name, [("retention.ms", "1000")])],
                                          validate_only=False))
        return r.responses[0].error_code, r.responses[0].error_message

    def incremental_alter_configs(self, name):
        from kafka.protocol.admin import IncrementalAlterConfigsRequest
        r = self.send(IncrementalAlterConfigsRequest(
            resources=[(2, name, [("retention.ms", 0, "1000")])], validate_only=False))
        return r.responses[0].error_code, r.responses[0].error_message

    def delete_records(self, name, partition=0):
        from kafka.protocol.admin import DeleteRecordsRequest
        r = self.send(DeleteRecordsRequest(topics=[(name, [(partition, 0)])], timeout_ms=10000))
        return r.topics[0].partitions[0].error_code

    def produce(self, name, partition=0):
        """Produce v9 (topics by name; Kafka 4.4 and Shardline both serve it) of one record."""
        from kafka.protocol.producer import ProduceRequest
        from kafka.record.memory_records import MemoryRecordsBuilder
        b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 16)
        b.append(timestamp=None, key=b"k", value=b"not a group record", headers=[])
        b.close()
        tpd = ProduceRequest.TopicProduceData
        ppd = tpd.PartitionProduceData
        r = self.send(ProduceRequest(
            version=9, transactional_id=None, acks=-1,
            timeout_ms=5000,
            topic_data=[tpd(version=9, name=name, partition_data=[ppd(version=9, index=partition,
                                                           records=bytes(b.buffer()))])]))
        p = r.responses[0].partition_responses[0]
        return p.error_code, p.error_message


def start(b):
    """Start and wait for the "listening" line: a shard accepts as soon as it
    is ready, and until every shard has restored its groups, offsets of
    groups on a shard still loading read as absent (a start-up race of the
    server, not of the group logs)."""
    b.start()
    deadline = time.monotonic() + 30
    while "shardline listening" not in b.log_text().split("[harness] start #")[-1]:
        assert time.monotonic() < deadline, b.log_tail()
        time.sleep(0.05)
    return b


def commit(bootstrap, group, topic, offsets):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "socket.timeout.ms": 10000})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                 asynchronous=False)
    finally:
        c.close()


def committed(bootstrap, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "socket.timeout.ms": 10000})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in got}


def test_reserved_names_are_refused_with_kafkas_codes(broker):
    raw = Raw(broker.bootstrap)
    try:
        for name in RESERVED:
            code, msg = raw.create(name)
            # Kafka 4.4.0: INVALID_REQUEST "Creation of internal topic __cluster_metadata is prohibited."
            assert code == INVALID_REQUEST, (name, code, msg)
            assert msg == f"Creation of internal topic {name} is prohibited.", msg
            assert raw.create(name, validate_only=True)[0] == INVALID_REQUEST, name
            code, msg = raw.delete(name)
            assert code == INVALID_REQUEST, (name, code, msg)
            assert "internal topic" in msg and name in msg, msg
            for op in (raw.create_partitions, ):
                code, msg = op(name, 4)
                assert code == INVALID_REQUEST, (name, op.__name__, code, msg)
            for op in (raw.alter_configs, raw.incremental_alter_configs):
                code, msg = op(name)
                assert code == INVALID_REQUEST, (name, op.__name__, code, msg)
                assert "internal topic" in msg, msg
            # Kafka 4.4.0: INVALID_TOPIC_EXCEPTION for both.
            assert raw.produce(name)[0] == INVALID_TOPIC_EXCEPTION, name
            assert raw.delete_records(name) == INVALID_TOPIC_EXCEPTION, name
            # Auto-creation never makes a user topic of a reserved name. Kafka
            # 4.4.0 answers UNKNOWN_TOPIC_OR_PARTITION for an absent internal
            # topic (and then creates its own); Shardline's never exist as
            # topics, so the name is invalid here: INVALID_TOPIC_EXCEPTION,
            # which makes clients fail fast instead of waiting for it.
            code, internal, parts = raw.metadata(name, auto_create=True)
            assert code == INVALID_TOPIC_EXCEPTION and parts == 0, (name, code)
            assert internal == (name != "__cluster_metadata"), (name, internal)
        assert not any(n in raw.all_topics() for n in RESERVED)
    finally:
        raw.close()
    # A real producer client fails fast (non-retriable) instead of creating the topic.
    res = produce(broker.bootstrap, "__consumer_offsets", [{"value": b"x", "partition": 0}],
                  timeout=15)
    assert res[0]["error"] is not None and res[0]["error"].code() == INVALID_TOPIC_EXCEPTION, res
    ok = unique_topic("__consumer_offsets_not")  # only the exact names and our prefix are reserved
    create_topic(broker.bootstrap, ok)


def test_group_offsets_survive_clients_attacking_consumer_offsets(broker_factory):
    """The issue's reproduction: on the old code CreateTopics __consumer_offsets
    succeeded and its partition directories were the group logs: after a
    restart the committed offsets were gone, and with records produced to it
    shard 0's group restore failed."""
    b = broker_factory(extra_args=["--shards", "2"])
    topic = unique_topic("co")
    create_topic(b.bootstrap, topic, partitions=2)
    groups = [f"g-{i}" for i in range(8)]  # spread over both shards
    for i, g in enumerate(groups):
        commit(b.bootstrap, g, topic, {0: 10 + i, 1: 20 + i})
    raw = Raw(b.bootstrap)
    try:
        print("create:", raw.create("__consumer_offsets", partitions=2))
        print("produce:", raw.produce("__consumer_offsets", 0), raw.produce("__consumer_offsets", 1))
    finally:
        raw.close()
    # Commits after the attack must be as durable as before it.
    for i, g in enumerate(groups):
        commit(b.bootstrap, g, topic, {0: 30 + i, 1: 40 + i})
    b.terminate()
    start(b)
    for i, g in enumerate(groups):
        assert committed(b.bootstrap, g, topic, [0, 1]) == {0: 30 + i, 1: 40 + i}, g
    assert not list(Path(b.data_dir).glob("__consumer_offsets-*")), "a topic directory appeared"


def old_layout(data_dir, binary):
    """Move the group logs back where Shardline before issue 10 kept them,
    and the metadata back into the JSON file it kept before its log
    (exported with `shardline metadata export`)."""
    internal = Path(data_dir) / "@internal"
    exported = subprocess.run([str(binary), "metadata", "export", str(data_dir)],
                              capture_output=True, check=True, timeout=60)
    (Path(data_dir) / "cluster-metadata.json").write_bytes(exported.stdout)
    shutil.rmtree(internal / "__cluster_metadata-0")
    moved = []
    for d in sorted(internal.glob("__consumer_offsets-*")):
        shutil.move(str(d), str(Path(data_dir) / d.name))
        moved.append(d.name)
    internal.rmdir()
    return moved


def test_old_layout_data_dir_is_migrated(broker_factory):
    b = broker_factory(extra_args=["--shards", "2"])
    topic = unique_topic("mig")
    create_topic(b.bootstrap, topic, partitions=2)
    groups = [f"m-{i}" for i in range(6)]
    for i, g in enumerate(groups):
        commit(b.bootstrap, g, topic, {0: 100 + i, 1: 200 + i})
    b.terminate()
    assert old_layout(b.data_dir, b.binary) == ["__consumer_offsets-0", "__consumer_offsets-1"]
    start(b)
    for i, g in enumerate(groups):
        assert committed(b.bootstrap, g, topic, [0, 1]) == {0: 100 + i, 1: 200 + i}, g
    data = Path(b.data_dir)
    assert not list(data.glob("__consumer_offsets-*"))
    assert sorted(p.name for p in (data / "@internal").iterdir()) == \
        ["__cluster_metadata-0", "__consumer_offsets-0", "__consumer_offsets-1"]
    # The metadata file went into the log, which kept the topic.
    assert not (data / "cluster-metadata.json").exists()
    assert (data / "cluster-metadata.json.migrated").exists()
    assert "moved the group log" in b.log_text()
    # And a second start finds nothing to migrate.
    b.terminate()
    start(b)
    assert committed(b.bootstrap, groups[0], topic, [0, 1]) == {0: 100, 1: 200}


def test_old_data_dir_with_a_client_made_consumer_offsets_topic(broker_factory):
    """An old data dir where a client had created a topic __consumer_offsets
    (the old bug): its partition directories were shared with the group
    logs. At start the group records are copied to the new group logs, the
    topic's own records stay where they are (readable, deletable, not
    writable), and all of it is logged."""
    b = broker_factory(extra_args=["--shards", "2"])
    topic = unique_topic("own")
    create_topic(b.bootstrap, topic, partitions=2)
    for i in range(4):
        commit(b.bootstrap, f"lg-{i}", topic, {0: 7 + i, 1: 9 + i})
    # The client's data: a 3-partition topic we turn into "__consumer_offsets".
    legacy = unique_topic("legacy")
    create_topic(b.bootstrap, legacy, partitions=3)
    assert_delivered(produce(b.bootstrap, legacy,
                             [{"value": f"user-{p}".encode(), "partition": p} for p in range(3)]))
    b.terminate()
    data = Path(b.data_dir)
    old_layout(data, b.binary)
    # Partition 2 is the topic's alone; partition 1 was shared with shard 1's
    # group log: append the client's records to it (as the old bug did).
    shutil.move(str(data / f"{legacy}-2"), str(data / "__consumer_offsets-2"))
    append_segments(data / f"{legacy}-1", data / "__consumer_offsets-1")
    shutil.rmtree(data / f"{legacy}-0")
    shutil.rmtree(data / f"{legacy}-1")
    meta_path = data / "cluster-metadata.json"
    meta = json.loads(meta_path.read_text())
    t = meta["topics"].pop(legacy)
    t["name"] = "__consumer_offsets"
    meta["topics"]["__consumer_offsets"] = t
    meta_path.write_text(json.dumps(meta))

    start(b)
    log = b.log_text()
    assert "created by a client" in log and "__consumer_offsets" in log, log[-3000:]
    for i in range(4):
        assert committed(b.bootstrap, f"lg-{i}", topic, [0, 1]) == {0: 7 + i, 1: 9 + i}
    raw = Raw(b.bootstrap)
    try:
        topics = raw.all_topics()
        assert topics["__consumer_offsets"].is_internal
        assert len(topics["__consumer_offsets"].partitions) == 3
        assert raw.produce("__consumer_offsets", 2)[0] == INVALID_TOPIC_EXCEPTION
        assert consume_values(b.bootstrap, "__consumer_offsets", 2) == [b"user-2"]
        assert b"user-1" in consume_values(b.bootstrap, "__consumer_offsets", 1)
        # The client's copy can be deleted; the group logs are not touched.
        assert raw.delete("__consumer_offsets") == (0, None)
        assert "__consumer_offsets" not in raw.all_topics()
    finally:
        raw.close()
    assert not list(data.glob("__consumer_offsets-*"))
    b.terminate()
    start(b)
    for i in range(4):
        assert committed(b.bootstrap, f"lg-{i}", topic, [0, 1]) == {0: 7 + i, 1: 9 + i}


def append_segments(src_dir, dst_dir):
    """Append the batches of src's segment to dst's (single-segment logs),
    renumbering base offsets after dst's last one, as the old bug's
    produce to a shared directory did. Index files of dst are dropped so
    the broker rebuilds them."""
    import struct
    src = sorted(Path(src_dir).glob("*.log"))[-1].read_bytes()
    dst_log = sorted(Path(dst_dir).glob("*.log"))[-1]
    dst = dst_log.read_bytes()

    def batches(buf):
        pos = 0
        while pos + 12 <= len(buf):
            base, length = struct.unpack(">qi", buf[pos:pos + 12])
            if length <= 0:
                break
            yield pos, base, buf[pos:pos + 12 + length]
            pos += 12 + length

    end, next_offset = 0, 0
    for pos, base, batch in batches(dst):
        end = pos + len(batch)
        last_delta = struct.unpack(">i", batch[23:27])[0]
        next_offset = base + last_delta + 1
    out = bytearray(dst[:end])
    for _, _, batch in batches(src):
        last_delta = struct.unpack(">i", batch[23:27])[0]
        out += struct.pack(">q", next_offset) + batch[8:]
        next_offset += last_delta + 1
    dst_log.write_bytes(bytes(out))
    for f in Path(dst_dir).iterdir():
        if f.suffix in (".index", ".timeindex", ".snapshot"):
            f.unlink()


def consume_values(bootstrap, topic, partition):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("reader"),
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        out = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not out or out[-1][0] < hi - 1):
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append((m.offset(), m.value()))
        return [v for _, v in out if v is not None and not v.startswith(b"{")]
    finally:
        c.close()


def corrupt_a_group_record(data_dir):
    """Rewrite one committed-offset record's key so it is no group key, with
    a correct CRC: the log is intact, its content is not ours."""
    import struct
    from kafka.record.util import calc_crc32c
    gl = Path(data_dir) / "@internal" / "__consumer_offsets-0"
    if not gl.exists():  # the layout before issue 10 (to run this against it)
        gl = Path(data_dir) / "__consumer_offsets-0"
    seg = sorted(gl.glob("*.log"))[0]
    buf = bytearray(seg.read_bytes())
    at = buf.find(b'"k":"offset"')
    assert at > 0, "no offset record in shard 0's group log"
    buf[at:at + 12] = b'"k":"bogus!"'
    # Find the batch holding it and fix its CRC (over attributes..end).
    pos = 0
    while True:
        base, length = struct.unpack(">qi", buf[pos:pos + 12])
        if pos <= at < pos + 12 + length:
            break
        pos += 12 + length
    crc = calc_crc32c(bytes(buf[pos + 21:pos + 12 + length]))
    buf[pos + 17:pos + 21] = struct.pack(">I", crc)
    seg.write_bytes(bytes(buf))
    return seg, base


@pytest.mark.parametrize("shards", [1, 2])
def test_a_group_restore_failure_stops_the_broker_at_start(broker_factory, shards):
    """A broker whose internal state cannot be restored must not serve
    half-alive: it exits non-zero within seconds, naming the file, the
    offset and the reason, and never says it is listening. (With 2 shards
    the prompt exit also needs server/mod.rs to stop the other shards when
    one fails at start-up.)"""
    b = broker_factory(extra_args=["--shards", str(shards)])
    topic = unique_topic("bad")
    create_topic(b.bootstrap, topic, partitions=1)
    # Commit for groups until shard 0 has one.
    for i in range(8):
        commit(b.bootstrap, f"c-{i}", topic, {0: i + 1})
    b.terminate()
    seg, _ = corrupt_a_group_record(b.data_dir)
    started = time.monotonic()
    proc = subprocess.Popen(b.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"broker still running 15 s after a failed group restore:\n{out.decode()[-3000:]}")
    text = out.decode("utf-8", "replace")
    assert proc.returncode != 0, text
    assert time.monotonic() - started < 15
    assert "listening" not in text, text
    assert str(seg.parent) in text and "offset" in text and "not a group record" in text, text
