"""A full disk, for real: each test makes a small ext4 image, loop-mounts it
as the broker's data directory, fills it with produce traffic from real
clients, and checks what producers, consumers and admins get; then frees
space through the admin API and checks that writes resume without a
restart. Also the high watermark: a consumer tailing a partition whose
writes fail never sees a record that is not in the log after a restart.

Needs root (mount); CI runs as root. Without it the tests fail with a clear
message rather than skip.

Kafka reference (Apache Kafka 4.4.0): a produce whose log write fails gets
KAFKA_STORAGE_ERROR (Java: KafkaStorageException, a retriable
InvalidMetadataException; librdkafka: refresh + retry, counting retries);
the group coordinator answers a failed offset-commit write with
NOT_COORDINATOR (CoordinatorOperationExceptionHelper maps
KAFKA_STORAGE_ERROR to NOT_COORDINATOR).
"""

import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from conftest import ConfigBroker, admin_client, free_port, unique_topic

FS_MIB = 128
VALUE = 16 * 1024


# --------------------------------------------------------------------------
# A real, small filesystem
# --------------------------------------------------------------------------

def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture
def small_fs(tmp_path):
    """A fresh FS_MIB MiB ext4 (no root-reserved blocks), loop-mounted."""
    if os.geteuid() != 0:
        pytest.fail("test_storage needs root to loop-mount a small ext4 image "
                    "(CI runs as root); run tests/run.sh as root", pytrace=False)
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (apt-get install e2fsprogs mount)", pytrace=False)
    image = tmp_path / "disk.img"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(FS_MIB << 20)
    r = _run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
    assert r.returncode == 0, r.stderr
    r = _run(["mount", "-o", "loop", str(image), str(mnt)])
    if r.returncode != 0:
        pytest.fail(f"cannot loop-mount {image}: {r.stderr.strip()}", pytrace=False)
    try:
        yield mnt
    finally:
        if _run(["umount", str(mnt)]).returncode != 0:
            _run(["umount", "-l", str(mnt)])
        image.unlink(missing_ok=True)


class DiskBroker(ConfigBroker):
    """A broker whose data dir is on the small filesystem, from a config file."""

    def __init__(self, binary, fs, tmp_path, settings, name="disk"):
        data = fs / "data"
        super().__init__(binary, data, tmp_path / f"{name}.log", name=name)
        self.metrics_port = free_port()
        self.config_path = tmp_path / f"{name}.toml"
        lines = [
            f'listen = "127.0.0.1:{self.port}"',
            f'metrics_listen = "127.0.0.1:{self.metrics_port}"',
            "shards = 1",
            "log_segment_bytes = 4194304",
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^([a-z_]+) (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out


def make_topic(bootstrap, name, config=None):
    from confluent_kafka.admin import NewTopic
    admin = admin_client(bootstrap)
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=config or {})])
    fs[name].result(timeout=30)


def value_for(i, tag):
    seed = hashlib.sha256(f"{tag}-{i}".encode()).digest()
    return (seed * (VALUE // len(seed) + 1))[:VALUE]


def fill(bootstrap, topic, tag, limit_s=60, rate_mib=None):
    """Produce until the broker refuses (at most `rate_mib` MiB/s); returns
    (acked [(offset, value)], errors [(code, message, value)], messages sent)."""
    from confluent_kafka import Producer
    acked, errors = [], []
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 5,
        "batch.size": 256 * 1024,
        # Bounded retries: librdkafka retries KAFKA_STORAGE_ERROR (and
        # counts each retry), so the error reaches the application.
        "retries": 2,
        "retry.backoff.ms": 100,
        "message.timeout.ms": 120000,
        # A small client queue, so what is queued when the disk fills is
        # answered within seconds.
        "queue.buffering.max.kbytes": 8192,
    })

    def dr(err, msg):
        if err is None:
            acked.append((msg.offset(), msg.value()))
        else:
            errors.append((err.code(), err.str(), msg.value()))

    start = time.monotonic()
    deadline = start + limit_s
    first_error_at = None
    i = 0
    while time.monotonic() < deadline:
        if rate_mib and i * VALUE > (time.monotonic() - start) * rate_mib * (1 << 20):
            p.poll(0.01)
            continue
        if errors and first_error_at is None:
            first_error_at = time.monotonic()
        if first_error_at is not None:
            break
        try:
            p.produce(topic, value_for(i, tag), on_delivery=dr)
            i += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} messages undelivered 60 s after the disk filled"
    return acked, errors, i


def consume_all(bootstrap, topic, expected_at_least=0, timeout=30):
    """Every (offset, value) of partition 0 from the beginning."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + timeout
    eof = False
    while time.monotonic() < deadline and not (eof and len(out) >= expected_at_least):
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            eof = m.error().code() == -191  # _PARTITION_EOF
            continue
        eof = False
        out.append((m.offset(), m.value()))
    c.close()
    return out


class Tail(threading.Thread):
    """A consumer tailing partition 0 of `topic`, remembering every record."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.seen = {}
        self.stop = threading.Event()

    def run(self):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"tail-{uuid.uuid4().hex[:8]}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 100})
        c.assign([TopicPartition(self.topic, 0, 0)])
        while not self.stop.is_set():
            m = c.poll(0.2)
            if m is not None and not m.error():
                self.seen[m.offset()] = m.value()
        c.close()


def offset_commit_v2(address, group, topic, partition, offset, metadata=""):
    """A raw OffsetCommit v2 (simple commit, generation -1); returns the
    partition's error code."""
    def string(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b
    body = string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1)
    body += struct.pack(">iq", partition, offset) + string(metadata)
    frame = struct.pack(">hhi", 8, 2, 77) + string("storage-test") + body
    with socket.create_connection(address, timeout=30) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    # correlation id, topics[1]: name, partitions[1]: index, error
    at = 4 + 4
    (name_len,) = struct.unpack_from(">h", resp, at)
    at += 2 + name_len + 4
    _, error = struct.unpack_from(">ih", resp, at)
    return error


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


KAFKA_STORAGE_ERROR = 56
NOT_COORDINATOR = 16


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_full_disk_errors_reads_deletes_and_writes_resume_without_restart(
        shardline_bin, small_fs, tmp_path):
    b = DiskBroker(shardline_bin, small_fs, tmp_path, {
        "disk_free_min_bytes": 0,  # no floor: fill the disk for real
        "disk_reserve_bytes": 2 << 20,
    })
    try:
        b.start()
        big, victim = unique_topic("big"), unique_topic("victim")
        make_topic(b.bootstrap, big)
        # No preallocation: its next write must need new blocks.
        make_topic(b.bootstrap, victim, {"preallocate": "false"})
        tail = Tail(b.bootstrap, victim)
        tail.start()
        # Some acknowledged records on the victim before the disk fills.
        v_acked, v_errors, _ = fill_some(b.bootstrap, victim, "v0", 20)
        assert len(v_acked) == 20 and not v_errors

        # 1. Fill the disk: producers get KAFKA_STORAGE_ERROR, promptly.
        started = time.monotonic()
        acked, errors, sent = fill(b.bootstrap, big, "big")
        took = time.monotonic() - started
        assert acked, "nothing was written before the disk filled"
        assert errors, "the disk never filled"
        codes = {c for c, *_ in errors}
        assert codes == {KAFKA_STORAGE_ERROR}, f"clients saw {errors[:3]} (not a storage error)"
        assert took < 60, f"errors took {took:.0f}s"
        print(f"filled: {len(acked)} acked, {len(errors)} refused, {took:.1f}s")

        # Take the last crumbs too, so that every write needs space.
        top_up(small_fs)

        # kafka-python (retries=0) shows the broker's error message (Produce v8+).
        from kafka import KafkaProducer
        from kafka.errors import KafkaStorageError
        kp = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", retries=0)
        with pytest.raises(KafkaStorageError) as e:
            for i in range(64):  # a few may fit in the last allocated block
                kp.send(victim, value_for(i, "kp")).get(timeout=30)
        kp.close()
        assert " is full" in str(e.value) and str(small_fs) in str(e.value), str(e.value)

        # 2. Reads go on: every acknowledged record, nothing else.
        got = consume_all(b.bootstrap, big, expected_at_least=len(acked))
        # Every acknowledged record once, in order. A record refused with
        # KAFKA_STORAGE_ERROR may still be there (the error is retriable and
        # its outcome unknown, as in Kafka: with the write-ahead ring, a
        # batch whose ring frame was on its way when the segment write
        # failed is kept and written back), but nothing else may be.
        failed = {v for *_, v in errors}
        acked_at = dict(acked)
        assert [o for o, _ in got] == list(range(len(got))), "offsets are not dense"
        assert {o for o, _ in got} >= set(acked_at), "an acknowledged record is missing"
        for offset, value in got:
            if offset in acked_at:
                assert value == acked_at[offset], f"offset {offset} holds another value"
            else:
                assert value in failed, f"offset {offset} holds a record never sent or refused"
        m = b.metrics()
        assert m["shardline_storage_offline_partitions"] >= 1, m
        assert m["shardline_storage_errors_total"] >= 1, m
        assert m["shardline_log_dir_free_bytes"] < 4 << 20, m

        # 3. Group offset commits get Kafka's answer for a failed write
        # (a few may still fit in the group log's last allocated block).
        codes = []
        for i in range(20):
            codes.append(offset_commit_v2(b.address, "g-full", victim, 0, i, "m" * 4000))
            if codes[-1] != 0:
                break
        assert codes[-1] == NOT_COORDINATOR, codes

        # 4. DeleteRecords works on the full disk (its log-start checkpoint
        # uses the disk reserve) and frees the sealed segments below it.
        from confluent_kafka import TopicPartition
        admin = admin_client(b.bootstrap)
        hw = max(o for o, _ in acked) + 1
        free_before = shutil.disk_usage(small_fs).free
        for f in admin.delete_records([TopicPartition(big, 0, hw)]).values():
            f.result(timeout=30)
        assert b.log_text().count("released the") == 1
        assert shutil.disk_usage(small_fs).free > free_before + (32 << 20)
        # The monitor puts the reserve back once there is room; fill the
        # disk again.
        wait_for(lambda: b.metrics()["shardline_disk_reserve_present"] == 1, "reserve re-created")
        top_up(small_fs)

        # 5. DeleteTopics works on the full disk too and frees everything
        # the topic held. Its metadata log entry is small: it fits in the
        # room the log file's last block has left, or else the reserve is
        # released for it.
        fs = admin.delete_topics([big], operation_timeout=30)
        fs[big].result(timeout=30)
        assert b.log_text().count("released the") in (1, 2)

        # 6. Writes resume without a restart: the victim partition, offline
        # since its write failed, recovers in place from its files.
        deadline = time.monotonic() + 45
        while True:
            more, errs, _ = fill_some(b.bootstrap, victim, "v1", 10)
            if len(more) == 10:
                break
            assert time.monotonic() < deadline, f"writes did not resume: {errs[:2]}"
            time.sleep(1)
        while offset_commit_v2(b.address, "g-full", victim, 0, 5) != 0:
            assert time.monotonic() < deadline, "offset commits did not resume"
            time.sleep(1)
        final = dict(consume_all(b.bootstrap, victim, expected_at_least=30))
        for off, val in more:
            assert final[off] == val
        time.sleep(1)
        tail.stop.set()
        tail.join(10)
        # The tailing consumer never saw a record that is not in the log.
        for off, val in tail.seen.items():
            assert final.get(off) == val, f"consumer saw offset {off}, which the log does not hold"

        # 7. And after a crash, still the same records at the same offsets.
        b.kill9()
        b.start()
        after = dict(consume_all(b.bootstrap, victim, expected_at_least=len(final)))
        assert after == final
        assert b.metrics()["shardline_storage_offline_partitions"] == 0
    finally:
        b.close()


def wait_for(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.25)


def top_up(mnt):
    """Fill what is left of the filesystem with a file of our own."""
    n = len(list(mnt.glob("filler*")))
    chunk = b"\0" * (64 << 10)
    with open(mnt / f"filler{n}", "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
                os.fsync(f.fileno())
        except OSError:
            pass
    small = b"\0" * 512
    with open(mnt / f"filler{n + 1}", "wb", buffering=0) as f:
        try:
            while True:
                f.write(small)
                os.fsync(f.fileno())
        except OSError:
            pass


def fill_some(bootstrap, topic, tag, n):
    from confluent_kafka import Producer
    acked, errors = [], []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                  "enable.idempotence": False, "message.timeout.ms": 30000})

    def dr(err, msg):
        (acked.append((msg.offset(), msg.value())) if err is None
         else errors.append((err.code(), err.str())))

    for i in range(n):
        p.produce(topic, value_for(i, tag), on_delivery=dr)
    p.flush(40)
    return acked, errors, n


def test_consumers_never_see_records_a_failed_write_takes_back(shardline_bin, small_fs, tmp_path):
    """acks=0 producers fill the disk while a consumer tails: every record
    the consumer saw must be in the log after a kill -9 and restart, with
    the same offset and bytes (today the consumer reads records from memory
    that never reach the disk, and their offsets are reused)."""
    from confluent_kafka import Producer
    b = DiskBroker(shardline_bin, small_fs, tmp_path, {
        "disk_free_min_bytes": 0, "disk_reserve_bytes": 0})
    # Space the test gives back at the end (the broker has no reserve here).
    (small_fs / "spare").write_bytes(b"s" * (4 << 20))
    try:
        b.start()
        topic = unique_topic("hwm")
        make_topic(b.bootstrap, topic)
        tail = Tail(b.bootstrap, topic)
        tail.start()
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": 0, "linger.ms": 5,
                      "batch.size": 512 * 1024, "queue.buffering.max.kbytes": 65536})
        deadline = time.monotonic() + 40
        i = 0
        while time.monotonic() < deadline:
            try:
                p.produce(topic, value_for(i, "hwm"))
                i += 1
            except BufferError:
                p.poll(0.05)
            if i % 512 == 0:
                free = shutil.disk_usage(small_fs).free
                if free < 1 << 20 and "disk holding" in b.log_text():
                    break
        # Keep sending for a moment into the failed partition.
        for j in range(200):
            try:
                p.produce(topic, value_for(i + j, "hwm"))
            except BufferError:
                p.poll(0.05)
        p.flush(30)
        time.sleep(2)
        tail.stop.set()
        tail.join(10)
        assert tail.seen, "the consumer saw nothing"
        b.kill9()
        b.start()
        after = dict(consume_all(b.bootstrap, topic, expected_at_least=len(tail.seen), timeout=60))
        missing = [o for o, v in tail.seen.items() if after.get(o) != v]
        assert not missing, (f"{len(missing)} of {len(tail.seen)} records the consumer saw are "
                             f"gone or different after restart (first: offset {min(missing)})")

        # With no disk reserve, a metadata write that finds the disk full is
        # answered with the real cause and logged (not UNKNOWN_TOPIC_OR_PARTITION).
        # A metadata log entry is small: config changes first use up the
        # room its file's last block has left, until one needs a new block.
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                           ResourceType)
        top_up(small_fs)
        admin = admin_client(b.bootstrap)
        refused = None
        for n in range(200):
            res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[ConfigEntry(
                "retention.ms", str(86_400_000 + n),
                incremental_operation=AlterConfigOpType.SET)])
            try:
                for f in admin.incremental_alter_configs([res]).values():
                    f.result(timeout=30)
            except KafkaException as e:
                refused = e.args[0]
                break
        assert refused is not None, "200 config changes fit on a full disk"
        assert refused.code() == KAFKA_STORAGE_ERROR, refused
        with pytest.raises(KafkaException) as e:
            admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
        err = e.value.args[0]
        assert err.code() == KAFKA_STORAGE_ERROR, err
        # librdkafka shows the code's text; the cause is in the broker's log
        # (and in the response's error_message).
        assert re.search(f"deleting topic {topic}: .*No space left", b.log_text())
        # Once there is room, the same request succeeds.
        (small_fs / "spare").unlink()
        admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    finally:
        b.close()


def test_free_space_floor_refuses_produce_then_delete_records_frees_it(
        shardline_bin, small_fs, tmp_path):
    floor = 48 << 20
    b = DiskBroker(shardline_bin, small_fs, tmp_path, {
        "disk_free_min_bytes": floor, "disk_reserve_bytes": 0})
    try:
        b.start()
        topic = unique_topic("floor")
        make_topic(b.bootstrap, topic)
        # 20 MiB/s: the monitor (every 0.5 s) sees the floor long before
        # the disk is full.
        acked, errors, _ = fill(b.bootstrap, topic, "floor", rate_mib=20)
        assert acked and errors
        assert {c for c, *_ in errors} == {KAFKA_STORAGE_ERROR}, errors[:3]
        free = shutil.disk_usage(small_fs).free
        assert free > floor // 2, f"the floor did not hold: {free} bytes free"

        from kafka import KafkaProducer
        from kafka.errors import KafkaStorageError
        kp = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", retries=0)
        with pytest.raises(KafkaStorageError) as e:
            kp.send(topic, b"x").get(timeout=30)
        kp.close()
        assert "below the floor" in str(e.value), str(e.value)

        # One log line for the transition, not one per refused request.
        assert b.log_text().count("below the floor of") == 1
        m = b.metrics()
        # Counted per refused partition write (librdkafka reports per message).
        assert m["shardline_produce_refused_low_disk_total"] >= 1
        assert m["shardline_log_dir_writes_refused"] == 1
        # Reads and group commits go on (the disk is not full).
        assert len(consume_all(b.bootstrap, topic, expected_at_least=len(acked))) == len(acked)
        assert offset_commit_v2(b.address, "g-floor", topic, 0, 1) == 0

        # DeleteRecords frees the sealed segments below the new log start.
        from confluent_kafka import TopicPartition
        hw = max(o for o, _ in acked) + 1
        admin = admin_client(b.bootstrap)
        fs = admin.delete_records([TopicPartition(topic, 0, hw)])
        for f in fs.values():
            f.result(timeout=30)
        deadline = time.monotonic() + 20
        while b.metrics()["shardline_log_dir_writes_refused"] == 1:
            assert time.monotonic() < deadline, "space was not freed"
            time.sleep(0.5)
        assert "above the floor of" in b.log_text()
        more, errs, _ = fill_some(b.bootstrap, topic, "again", 5)
        assert len(more) == 5, errs
        assert min(o for o, _ in more) == hw
    finally:
        b.close()
