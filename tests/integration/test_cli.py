"""The `shardline` client commands (topic / produce / consume / group) against
a real broker, cross-checked with confluent-kafka."""

import datetime
import re
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import (
    admin_client,
    consume,
    consumer_conf,
    create_topic,
    headers_of,
    produce,
    assert_delivered,
    unique_topic,
    wait_for_topic,
    watermarks,
)


def cli(shardline_bin, broker, *args, stdin=None, check=True, timeout=60):
    """Run `shardline ARGS` against `broker`; returns CompletedProcess."""
    p = subprocess.run(
        [str(shardline_bin), *args, "--bootstrap", broker.bootstrap],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"shardline {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


@pytest.fixture
def sl(shardline_bin, broker):
    return lambda *args, **kw: cli(shardline_bin, broker, *args, **kw)


def produced_offsets(stdout):
    return [(int(p), int(o)) for p, o in re.findall(r"Produced to partition (\d+) at offset (\d+)", stdout)]


def describe_rows(stdout):
    """partition -> (leader, log start, high watermark) from `topic describe`."""
    rows = {}
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 6 and f[0].isdigit():
            rows[int(f[0])] = (int(f[1]), int(f[4]), int(f[5]))
    return rows


# --------------------------------------------------------------------------
# topic
# --------------------------------------------------------------------------

def test_help_lists_every_command(sl):
    out = sl("--help").stdout
    for cmd in ("serve", "topic", "produce", "consume", "group"):
        assert cmd in out
    assert "reset-offsets" in sl("group", "--help").stdout
    assert "--from-time" in sl("consume", "--help").stdout


def test_topic_create_list_describe_add_partitions_delete(sl, broker):
    t = unique_topic("cli")
    out = sl("topic", "create", t, "-p", "3", "-r", "1", "-c", "retention.ms=123456", "-c", "cleanup.policy=compact")
    assert f"Created topic {t}" in out.stdout
    md = wait_for_topic(broker.bootstrap, t, 3)
    assert len(md.topics[t].partitions) == 3

    assert t in sl("topic", "list").stdout.split()

    desc = sl("topic", "describe", t).stdout
    assert "PartitionCount: 3" in desc
    configs = next(line for line in desc.splitlines() if line.startswith("Configs:"))
    assert "retention.ms=123456" in configs and "cleanup.policy=compact" in configs
    assert "segment.bytes" not in configs  # defaults are not overrides
    rows = describe_rows(desc)
    assert sorted(rows) == [0, 1, 2]
    assert all(r == (0, 0, 0) for r in rows.values())

    sl("topic", "add-partitions", t, "--num", "5")
    wait_for_topic(broker.bootstrap, t, 5)
    assert sorted(describe_rows(sl("topic", "describe", t).stdout)) == [0, 1, 2, 3, 4]

    bad = sl("topic", "add-partitions", t, "--num", "2", check=False)
    assert bad.returncode != 0 and "INVALID_PARTITIONS" in bad.stderr

    assert f"Deleted topic {t}" in sl("topic", "delete", t).stdout
    deadline = time.monotonic() + 10
    while t in admin_client(broker.bootstrap).list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert t not in sl("topic", "list").stdout.split()
    gone = sl("topic", "describe", t, check=False)
    assert gone.returncode != 0
    assert "UNKNOWN_TOPIC_OR_PARTITION" in gone.stderr


def test_topic_errors_name_the_kafka_error(sl, broker):
    t = unique_topic("cli-err")
    sl("topic", "create", t, "-p", "1")
    again = sl("topic", "create", t, "-p", "1", check=False)
    assert again.returncode != 0
    assert "TOPIC_ALREADY_EXISTS" in again.stderr
    missing = sl("topic", "delete", unique_topic("nope"), check=False)
    assert missing.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
    badcfg = sl("topic", "create", unique_topic("cli-err"), "-c", "retention.ms=abc", check=False)
    assert badcfg.returncode != 0 and "INVALID_CONFIG" in badcfg.stderr


def test_topic_describe_shows_offsets(sl, broker):
    t = unique_topic("cli-desc")
    create_topic(broker.bootstrap, t, partitions=2)
    assert_delivered(produce(broker.bootstrap, t, [{"value": b"x%d" % i, "partition": i % 2} for i in range(7)]))
    rows = describe_rows(sl("topic", "describe", t).stdout)
    assert rows[0][2] == 4 and rows[1][2] == 3
    assert rows[0][1] == 0 and rows[1][1] == 0


# --------------------------------------------------------------------------
# produce
# --------------------------------------------------------------------------

def test_produce_stdin_keys_and_headers_read_by_confluent(sl, broker):
    t = unique_topic("cli-prod")
    create_topic(broker.bootstrap, t, partitions=1)
    lines = "".join(f"key{i}:value {i}\n" for i in range(20))
    out = sl("produce", t, "--key-separator", ":", "-H", "src=cli", "-H", "n=2", stdin=lines).stdout
    assert produced_offsets(out) == [(0, i) for i in range(20)]
    msgs = consume(broker.bootstrap, t, 0, 0, expect=20)
    assert [m.key() for m in msgs] == [b"key%d" % i for i in range(20)]
    assert [m.value() for m in msgs] == [b"value %d" % i for i in range(20)]
    assert headers_of(msgs[0]) == [("src", b"cli"), ("n", b"2")]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_single_value_with_compression_to_partition(sl, broker, codec):
    t = unique_topic("cli-codec")
    create_topic(broker.bootstrap, t, partitions=3)
    out = sl("produce", t, "-v", f"hello {codec}", "-k", "k", "-p", "2", "--compression", codec).stdout
    assert produced_offsets(out) == [(2, 0)]
    [m] = consume(broker.bootstrap, t, 2, 0, expect=1)
    assert (m.key(), m.value()) == (b"k", f"hello {codec}".encode())


def test_produce_acks_and_key_partitioning(sl, broker):
    t = unique_topic("cli-acks")
    create_topic(broker.bootstrap, t, partitions=4)
    out1 = sl("produce", t, "-k", "same", "--acks", "1", stdin="a\nb\nc\n").stdout
    parts = {p for p, _ in produced_offsets(out1)}
    assert len(parts) == 1  # one key, one partition
    out0 = sl("produce", t, "-p", "0", "--acks", "0", stdin="x\ny\n").stdout
    assert out0.count("acks=0") == 2
    deadline = time.monotonic() + 10
    while watermarks(broker.bootstrap, t, 0)[1] < (3 if 0 in parts else 0) + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert watermarks(broker.bootstrap, t, 0)[1] == (3 if 0 in parts else 0) + 2


def test_produce_to_missing_topic_fails(sl):
    p = sl("produce", unique_topic("missing"), "-v", "x", check=False)
    assert p.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in p.stderr


# --------------------------------------------------------------------------
# consume
# --------------------------------------------------------------------------

@pytest.fixture
def filled_topic(broker):
    """A 2-partition topic with 10 messages per partition, timestamps
    t0 + i seconds (i = index within the partition)."""
    t = unique_topic("cli-cons")
    create_topic(broker.bootstrap, t, partitions=2)
    t0 = (int(time.time()) - 3600) * 1000
    msgs = []
    for p in range(2):
        for i in range(10):
            msgs.append({"value": f"p{p}-m{i}".encode(), "key": f"k{i}".encode(), "partition": p,
                         "timestamp": t0 + i * 1000, "headers": [("i", str(i).encode())]})
    assert_delivered(produce(broker.bootstrap, t, msgs))
    return t, t0


def test_consume_from_beginning_all_partitions(sl, filled_topic):
    t, _ = filled_topic
    out = sl("consume", t, "--from-beginning", "--exit-at-end").stdout.splitlines()
    assert sorted(out) == sorted(f"p{p}-m{i}" for p in range(2) for i in range(10))


def test_consume_offset_count_and_format(sl, filled_topic):
    t, t0 = filled_topic
    out = sl("consume", t, "-p", "1", "--offset", "4", "-n", "3", "--format", "%t|%p|%o|%k|%v|%h|%T").stdout
    assert out.splitlines() == [f"{t}|1|{i}|k{i}|p1-m{i}|i:{i}|{t0 + i * 1000}" for i in (4, 5, 6)]


def test_consume_print_keys_and_headers(sl, filled_topic):
    t, _ = filled_topic
    out = sl("consume", t, "-p", "0", "--from-beginning", "-n", "2", "--print-keys", "--print-headers").stdout
    assert out.splitlines() == ["i:0\tk0\tp0-m0", "i:1\tk1\tp0-m1"]


def test_consume_from_time(sl, filled_topic):
    t, t0 = filled_topic
    iso = datetime.datetime.fromtimestamp((t0 + 6500) / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = sl("consume", t, "-p", "0", "--from-time", iso, "--exit-at-end").stdout.splitlines()
    assert out == [f"p0-m{i}" for i in range(7, 10)]
    # The same instant with a zone offset, and as epoch ms.
    plus2 = datetime.datetime.fromtimestamp((t0 + 3000) / 1000, datetime.timezone(datetime.timedelta(hours=2)))
    out = sl("consume", t, "-p", "1", "--from-time", plus2.isoformat(), "-n", "1").stdout.splitlines()
    assert out == ["p1-m3"]
    out = sl("consume", t, "-p", "1", "--from-time", str(t0 + 9000), "--exit-at-end").stdout.splitlines()
    assert out == ["p1-m9"]


def test_consume_default_starts_at_end_and_times_out(sl, filled_topic):
    t, _ = filled_topic
    p = sl("consume", t, "--timeout-ms", "1000")
    assert p.stdout == ""
    assert "Processed a total of 0 messages" in p.stderr


def test_consume_errors(sl, filled_topic):
    t, _ = filled_topic
    p = sl("consume", unique_topic("missing"), "--from-beginning", "--exit-at-end", check=False)
    assert p.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in p.stderr
    p = sl("consume", t, "-p", "0", "--offset", "1000", "-n", "1", check=False)
    assert p.returncode != 0 and "OFFSET_OUT_OF_RANGE" in p.stderr
    p = sl("consume", t, "--from-time", "not-a-time", check=False)
    assert p.returncode != 0 and "invalid time" in p.stderr


# --------------------------------------------------------------------------
# group (needs the broker's group coordinator APIs)
# --------------------------------------------------------------------------

def commit(bootstrap, group, topic, offsets):
    """Commit {partition: offset} for `group` the way an assign()-ing
    consumer does, then return what OffsetFetch reports."""
    c = Consumer(consumer_conf(bootstrap, **{"group.id": group}))
    try:
        tps = [TopicPartition(topic, p, o) for p, o in offsets.items()]
        c.assign(tps)
        c.commit(offsets=tps, asynchronous=False)
    finally:
        c.close()
    return committed(bootstrap, group, topic, list(offsets))


def committed(bootstrap, group, topic, partitions):
    c = Consumer(consumer_conf(bootstrap, **{"group.id": group}))
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


@pytest.fixture
def group_topic(broker):
    """A topic with 2 partitions x 10 messages (timestamps t0 + i s) and a
    group that committed offset 4 on p0 and 6 on p1."""
    t = unique_topic("cli-grp")
    create_topic(broker.bootstrap, t, partitions=2)
    t0 = (int(time.time()) - 3600) * 1000
    msgs = [{"value": b"v%d" % i, "partition": p, "timestamp": t0 + i * 1000} for p in range(2) for i in range(10)]
    assert_delivered(produce(broker.bootstrap, t, msgs))
    g = unique_topic("grp")
    assert commit(broker.bootstrap, g, t, {0: 4, 1: 6}) == {0: 4, 1: 6}
    return g, t, t0


def plan_rows(stdout, group):
    """(topic, partition) -> (current, new) from a reset-offsets plan."""
    rows = {}
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == group:
            rows[(f[1], int(f[2]))] = (None if f[3] == "-" else int(f[3]), int(f[4]))
    return rows


def test_group_list_and_describe(sl, group_topic):
    g, t, _ = group_topic
    listed = sl("group", "list").stdout
    line = next(line for line in listed.splitlines() if line.split()[:1] == [g])
    assert "Empty" in line
    desc = sl("group", "describe", g).stdout
    assert "STATE: Empty" in desc
    rows = {}
    for line in desc.splitlines():
        f = line.split()
        if f and f[0] == t:
            rows[int(f[1])] = (int(f[2]), int(f[3]), int(f[4]))
    assert rows == {0: (4, 10, 6), 1: (6, 10, 4)}


def test_group_reset_to_earliest_dry_run_then_execute(sl, broker, group_topic):
    g, t, _ = group_topic
    dry = sl("group", "reset-offsets", g, "--topic", t, "--to-earliest").stdout
    assert plan_rows(dry, g) == {(t, 0): (4, 0), (t, 1): (6, 0)}
    assert "Dry run" in dry
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 4, 1: 6}
    sl("group", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute")
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 0, 1: 0}


def test_group_reset_to_offset_on_one_partition(sl, broker, group_topic):
    g, t, _ = group_topic
    out = sl("group", "reset-offsets", g, "--topic", f"{t}:1", "--to-offset", "2", "--execute").stdout
    assert plan_rows(out, g) == {(t, 1): (6, 2)}
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 4, 1: 2}
    # Out of range targets are clamped to the log end, as Kafka's tool does.
    out = sl("group", "reset-offsets", g, "--topic", f"{t}:0", "--to-offset", "999").stdout
    assert plan_rows(out, g) == {(t, 0): (4, 10)}


def test_group_reset_to_datetime(sl, broker, group_topic):
    g, t, t0 = group_topic
    iso = datetime.datetime.fromtimestamp((t0 + 2500) / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = sl("group", "reset-offsets", g, "--topic", t, "--to-datetime", iso, "--execute").stdout
    assert plan_rows(out, g) == {(t, 0): (4, 3), (t, 1): (6, 3)}
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 3, 1: 3}


def test_group_reset_shift_by_and_latest(sl, broker, group_topic):
    g, t, _ = group_topic
    out = sl("group", "reset-offsets", g, "--all-topics", "--shift-by", "-3", "--execute").stdout
    assert plan_rows(out, g) == {(t, 0): (4, 1), (t, 1): (6, 3)}
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 1, 1: 3}
    sl("group", "reset-offsets", g, "--topic", t, "--to-latest", "--execute")
    assert committed(broker.bootstrap, g, t, [0, 1]) == {0: 10, 1: 10}


def test_group_reset_refused_while_group_active(sl, broker, group_topic):
    g, t, _ = group_topic
    c = Consumer(consumer_conf(broker.bootstrap, **{"group.id": g, "session.timeout.ms": 6000}))
    try:
        c.subscribe([t])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        assert c.assignment(), "consumer never joined the group"
        desc = sl("group", "describe", g).stdout
        assert "STATE: Stable" in desc and "MEMBERS: 1" in desc
        # Both partitions are assigned to the one member (client id rdkafka).
        owned = [line.split() for line in desc.splitlines() if line.split()[:1] == [t]]
        assert len(owned) == 2 and all(f[-1] == "rdkafka" for f in owned), desc
        p = sl("group", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute", check=False)
        assert p.returncode != 0 and "inactive" in p.stderr
    finally:
        c.close()
    assert committed(broker.bootstrap, g, t, [0, 1])[0] >= 4


def test_group_delete(sl, broker, group_topic):
    g, t, _ = group_topic
    assert f"Deleted group {g}" in sl("group", "delete", g).stdout
    assert g not in [line.split()[0] for line in sl("group", "list").stdout.splitlines()[1:] if line.split()]
    p = sl("group", "describe", g, check=False)
    # A deleted group describes as Dead with no offsets, or as unknown.
    assert p.returncode != 0 or "STATE: Dead" in p.stdout or "STATE: Empty" in p.stdout
