"""Kafka Streams (2.6 and 4.x) and Spring for Apache Kafka against Shardline.

Streams: the classic word count (tests/java/streams-4 WordCount.java, the
same source compiled against kafka-streams 2.6.0 and 4.4.0), at_least_once.
pytest writes known text lines to a 2-partition input topic with
confluent-kafka; the driver starts one instance of the application, then a
second (a rebalance that moves tasks; one standby replica per store), writes
more lines, runs until its own consumer sees the exact final count of every
word on the output topic and Streams has purged (DeleteRecords) its
repartition topic, then closes both instances with a timeout. This exercises
what a Streams application needs from a broker: a classic consumer group
with Streams' own assignor and subscription userdata (cooperative
rebalances), CreateTopics of the internal topics with Streams' topic configs,
produce/fetch through a repartition topic, a changelog (written, restored by
standbys), offset commits, DeleteRecords and the admin client.
pytest then checks, with independent clients, the output topic (every
word's counts rise to exactly the expected value on one partition), the
changelog (latest value per word), the internal topics and the configs
Streams asked for (DescribeConfigs), the repartition topic's watermarks
(purged to its end, which holds exactly one record per word occurrence) and
the group's committed offsets (at the end of input and repartition topics).

Spring: at startup Spring's KafkaAdmin makes its NewTopic beans so (grows
and reconfigures an existing topic, creates a missing one); a KafkaTemplate
sends N keyed records with headers, a @KafkaListener
(a group of two concurrent consumers; classic and consumer group protocols)
receives them; the driver prints both sides as JSON lines and pytest checks
every record's key, value, headers, partition, offset and timestamp against
the send results and against an independent read of the topic, and the
group's committed offsets.

Every scenario also runs once against Apache Kafka (`kafka_ref`), which shows
the drivers and the expectations are right: same assertions, both brokers.
"""

import random
import re
import struct
import subprocess
import threading
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import ConfigResource, ConfigSource

from conftest import admin_client, consume, create_topic, produce, unique_topic, watermarks
from java import classpath, java_bin, json_lines, run_java

WORDS = ("kafka streams shardline broker topic partition offset record group commit "
         "fetch produce leader replica segment index compact delete retention consumer").split()

# Topic configs Streams sets when it creates its internal topics (Streams'
# RepartitionTopicConfig / UnwindowedChangelogTopicConfig; the same in 2.6
# and 4.4, and what Apache Kafka reports for them as DYNAMIC_TOPIC_CONFIG).
REPARTITION_CONFIGS = {
    "cleanup.policy": "delete",
    "segment.bytes": "52428800",
    "retention.ms": "-1",
    "message.timestamp.type": "CreateTime",
}
CHANGELOG_CONFIGS = {
    "cleanup.policy": "compact",
    "message.timestamp.type": "CreateTime",
}


@pytest.fixture(params=["shardline", "kafka"])
def target(request):
    """Bootstrap of the broker under test: Shardline, or Apache Kafka as the reference."""
    if request.param == "shardline":
        return request.getfixturevalue("broker").bootstrap
    return request.getfixturevalue("kafka_ref").bootstrap


def text_lines(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def latest_per_key(msgs):
    """{key: [values in offset order]} for messages of one partition."""
    out = {}
    for m in msgs:
        out.setdefault(m.key().decode(), []).append(struct.unpack(">q", m.value())[0])
    return out


def read_counts(bootstrap, topic, partitions):
    """{word: (partition, [counts in order])} read with confluent-kafka; a word
    found on two partitions fails the test (Streams partitions by key)."""
    words = {}
    for p in range(partitions):
        for word, counts in latest_per_key(consume(bootstrap, topic, partition=p, drain_s=0.2)).items():
            assert word not in words, f"{word} on partitions {words[word][0]} and {p} of {topic}"
            words[word] = (p, counts)
    return words


def committed_offsets(bootstrap, group):
    admin = admin_client(bootstrap)
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset for tp in fut.result(timeout=30).topic_partitions}


def dynamic_configs(bootstrap, topic):
    admin = admin_client(bootstrap)
    res = ConfigResource("topic", topic)
    cfg = admin.describe_configs([res])[res].result(timeout=30)
    return {k: v.value for k, v in cfg.items() if v.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


@pytest.mark.parametrize("module", ["streams-2.6", "streams-4"])
def test_streams_word_count(target, module, tmp_path):
    bootstrap = target
    app = unique_topic("wordcount")
    source, sink = unique_topic("lines"), unique_topic("counts")
    create_topic(bootstrap, source, partitions=2)
    create_topic(bootstrap, sink, partitions=2)
    # 300 lines before Streams starts (pytest, confluent-kafka), 100 more from
    # the driver once both instances run.
    lines, late = text_lines(300, seed=11), text_lines(100, seed=12)
    expected = Counter(w for line in lines + late for w in line.split(" "))
    total_words = sum(expected.values())
    delivered = produce(bootstrap, source, [{"key": str(i).encode(), "value": line.encode()}
                                            for i, line in enumerate(lines)])
    assert {r["partition"] for r in delivered} == {0, 1}
    late_file = tmp_path / "late-lines.txt"
    late_file.write_text("".join(line + "\n" for line in late))

    # Two instances (the second joins once the first runs: a rebalance that
    # moves tasks), one standby replica of every store (restored from the
    # changelog by the other instance).
    cp = run_java(module, "io.shardline.tests.streams.WordCount",
                  [bootstrap, source, sink, app, tmp_path / "state", 90, 2, late_file,
                   "num.standby.replicas=1"],
                  input="".join(f"{w} {n}\n" for w, n in sorted(expected.items())), timeout=150)
    events = json_lines(cp.stdout)
    names = [e["event"] for e in events]
    for instance in (0, 1):
        states = [(e["from"], e["to"]) for e in events if e["event"] == "state" and e["instance"] == instance]
        assert ("REBALANCING", "RUNNING") in states, (instance, states)
        assert states[-1] == ("PENDING_SHUTDOWN", "NOT_RUNNING"), (instance, states)
        assert "ERROR" not in {to for _, to in states}, (instance, states)
    # The first instance rebalanced again when the second joined.
    assert [e["to"] for e in events if e["event"] == "state" and e["instance"] == 0].count("REBALANCING") >= 2
    assert names.index("late_lines_produced") < names.index("counts_complete") \
        < names.index("repartition_purged") < names.index("closed"), names
    closed = [(e["instance"], e["clean"], e["state"]) for e in events if e["event"] == "closed"]
    assert closed == [(0, True, "NOT_RUNNING"), (1, True, "NOT_RUNNING")]

    # Output topic, read independently: per word, counts only rise, and the
    # last one is the exact total.
    out = read_counts(bootstrap, sink, 2)
    assert set(out) == set(expected)
    for word, (_, counts) in out.items():
        assert counts == sorted(counts) and counts[-1] == expected[word], (word, counts, expected[word])

    # Internal topics: exactly the two Streams derives from the topology,
    # with the partition count of the source topic and Streams' configs.
    repartition, changelog = f"{app}-words-repartition", f"{app}-counts-changelog"
    md = admin_client(bootstrap).list_topics(timeout=10)
    internal = {t: len(m.partitions) for t, m in md.topics.items() if t.startswith(app)}
    assert internal == {repartition: 2, changelog: 2}
    assert dynamic_configs(bootstrap, repartition) == REPARTITION_CONFIGS
    assert dynamic_configs(bootstrap, changelog) == CHANGELOG_CONFIGS

    # The changelog holds the store's latest count per word.
    changelog_counts = read_counts(bootstrap, changelog, 2)
    assert {w: c[-1] for w, (_, c) in changelog_counts.items()} == dict(expected)

    # Repartition topic: one record per word occurrence, all consumed,
    # committed and then deleted by Streams (log start == end).
    repartition_marks = [watermarks(bootstrap, repartition, p) for p in range(2)]
    assert all(lo == hi for lo, hi in repartition_marks), repartition_marks
    assert sum(hi for _, hi in repartition_marks) == total_words, repartition_marks

    # The application's group committed the ends of both topics it reads.
    source_marks = [watermarks(bootstrap, source, p) for p in range(2)]
    assert sum(hi for _, hi in source_marks) == len(lines) + len(late)
    assert committed_offsets(bootstrap, app) == {
        (source, 0): source_marks[0][1], (source, 1): source_marks[1][1],
        (repartition, 0): repartition_marks[0][1], (repartition, 1): repartition_marks[1][1],
    }


@pytest.mark.parametrize("module", ["streams-2.6", "streams-4"])
def test_streams_survives_broker_restart(broker_factory, module, tmp_path):
    """Shardline is restarted (SIGTERM, start on the same port and data dir)
    right after Streams reaches RUNNING, while it works through its input and
    the driver produces more: Streams reconnects, rejoins, commits and ends
    with every word counted at least as often as it occurs (at-least-once
    allows a word to be counted twice after a failure, never lost), the
    store's changelog agrees with the output, and everything is consumed,
    committed and purged."""
    b = broker_factory()
    bootstrap = b.bootstrap
    app = unique_topic("wordcount")
    source, sink = unique_topic("lines"), unique_topic("counts")
    create_topic(bootstrap, source, partitions=2)
    create_topic(bootstrap, sink, partitions=2)
    # Enough input that processing is still going on when the broker stops.
    lines, late = text_lines(10000, seed=21), text_lines(3000, seed=22)
    expected = Counter(w for line in lines + late for w in line.split(" "))
    produce(bootstrap, source, [{"key": str(i).encode(), "value": line.encode()}
                                for i, line in enumerate(lines)], conf={"linger.ms": 20})
    late_file = tmp_path / "late-lines.txt"
    late_file.write_text("".join(line + "\n" for line in late))

    cmd = [java_bin(), "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           "-cp", classpath(module), "io.shardline.tests.streams.WordCount",
           bootstrap, source, sink, app, str(tmp_path / "state"), "120", "1", str(late_file),
           "--counts-at-least"]
    stderr_path = tmp_path / "wordcount.stderr"
    events = []
    running = threading.Event()

    def read_events(stream):
        for line in stream:
            events.extend(json_lines(line))
            if '"to":"RUNNING"' in line:
                running.set()

    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            reader = threading.Thread(target=read_events, args=(proc.stdout,), daemon=True)
            reader.start()
            proc.stdin.write("".join(f"{w} {n}\n" for w, n in sorted(expected.items())))
            proc.stdin.close()
            assert running.wait(60), f"Streams not RUNNING within 60s: {events}"
            b.restart()
            rc = proc.wait(timeout=170)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, f"driver exited {rc}; events {events}\n{stderr_path.read_text()[-4000:]}"
    names = [e["event"] for e in events]
    assert names.index("late_lines_produced") < names.index("counts_complete") \
        < names.index("repartition_purged") < names.index("closed"), names
    assert [(e["clean"], e["state"]) for e in events if e["event"] == "closed"] == [(True, "NOT_RUNNING")]
    assert b.starts == 2

    out = read_counts(bootstrap, sink, 2)
    assert set(out) == set(expected)
    for word, (_, counts) in out.items():
        assert counts == sorted(counts) and counts[-1] >= expected[word], (word, counts[-5:], expected[word])
    final = {w: c[-1] for w, (_, c) in out.items()}
    changelog_counts = read_counts(bootstrap, f"{app}-counts-changelog", 2)
    assert {w: c[-1] for w, (_, c) in changelog_counts.items()} == final

    repartition = f"{app}-words-repartition"
    repartition_marks = [watermarks(bootstrap, repartition, p) for p in range(2)]
    assert all(lo == hi for lo, hi in repartition_marks), repartition_marks
    assert sum(hi for _, hi in repartition_marks) >= sum(expected.values()), repartition_marks
    source_marks = [watermarks(bootstrap, source, p) for p in range(2)]
    assert sum(hi for _, hi in source_marks) >= len(lines) + len(late)
    assert committed_offsets(bootstrap, app) == {
        (source, 0): source_marks[0][1], (source, 1): source_marks[1][1],
        (repartition, 0): repartition_marks[0][1], (repartition, 1): repartition_marks[1][1],
    }
    print(f"{module}: counted {sum(final.values()) - sum(expected.values())} word occurrence(s) twice; "
          f"input {sum(hi for _, hi in source_marks)} records for {len(lines) + len(late)} lines")


@pytest.mark.parametrize("module", ["streams-2.6", "streams-4"])
def test_streams_missing_source_topic(target, module, tmp_path):
    """Streams' consumer fetches Metadata with allow_auto_topic_creation=false:
    the broker must not create the missing source topic, so the group
    leader's assignor reports INCOMPLETE_SOURCE_TOPIC_METADATA (error code 1)
    in the assignment and the instance goes to ERROR; nothing is created."""
    bootstrap = target
    app = unique_topic("wordcount")
    source, sink = unique_topic("absent"), unique_topic("counts")
    cp = run_java(module, "io.shardline.tests.streams.WordCount",
                  [bootstrap, source, sink, app, tmp_path / "state", 30, 1, "-"],
                  input="kafka 1\n", timeout=90, check=False)
    assert cp.returncode == 1, cp.stderr[-3000:]
    events = json_lines(cp.stdout)
    reached = [e["to"] for e in events if e["event"] == "state"]
    assert "ERROR" in reached and "RUNNING" not in reached, reached
    assert re.search(r"Received error code (1|INCOMPLETE_SOURCE_TOPIC_METADATA)\b", cp.stderr), cp.stderr[-3000:]
    md = admin_client(bootstrap).list_topics(timeout=10)
    assert not [t for t in md.topics if t in (source, sink) or t.startswith(app)]


@pytest.mark.parametrize("group_protocol", ["classic", "consumer"])
def test_spring_template_and_listener(target, group_protocol):
    bootstrap = target
    topic, group = unique_topic("spring"), unique_topic("spring-group")
    n = 60
    # Spring's KafkaAdmin grows this to 3 partitions and sets retention.ms=3600000.
    create_topic(bootstrap, topic, partitions=1, config={"retention.ms": "7200000"})
    cp = run_java("spring-kafka", "io.shardline.tests.spring.TemplateAndListener",
                  [bootstrap, topic, group, n, 60, group_protocol], timeout=120)
    events = json_lines(cp.stdout)
    sent = [e for e in events if e["event"] == "sent"]
    received = [e for e in events if e["event"] == "received"]
    assert events[-1] == {"event": "done", "all_received": True, "missing": 0}

    # KafkaAdmin made the declared topics so: the existing one grown and
    # reconfigured, the missing one created.
    md = admin_client(bootstrap).list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 3
    assert dynamic_configs(bootstrap, topic) == {"retention.ms": "3600000"}
    assert len(md.topics[f"{topic}-compacted"].partitions) == 2
    assert dynamic_configs(bootstrap, f"{topic}-compacted") == {"cleanup.policy": "compact"}

    # Send results: per partition, offsets 0..k-1 in send order; one key, one partition.
    assert [s["key"] for s in sent] == [f"key-{i % 7}" for i in range(n)]
    by_partition = {}
    for s in sent:
        by_partition.setdefault(s["partition"], []).append(s["offset"])
    assert all(offs == list(range(len(offs))) for offs in by_partition.values()), by_partition
    key_partition = {}
    for s in sent:
        assert key_partition.setdefault(s["key"], s["partition"]) == s["partition"], s

    # The listener got every record exactly once, as sent.
    assert len(received) == n
    by_seq = {}
    for r in received:
        headers = dict(r["headers"])
        assert [h[0] for h in r["headers"]] == ["seq", "source"] and headers["source"] == "spring-kafka", r
        i = int(headers["seq"])
        assert i not in by_seq, f"record {i} received twice"
        by_seq[i] = r
    assert sorted(by_seq) == list(range(n))
    for i, s in enumerate(sent):
        r = by_seq[i]
        assert (r["key"], r["value"], r["partition"], r["offset"], r["timestamp"]) == \
            (s["key"], f"value-{i}", s["partition"], s["offset"], s["timestamp"]), (r, s)

    # An independent read of the topic agrees record for record.
    for p, offs in by_partition.items():
        msgs = consume(bootstrap, topic, partition=p, expect=len(offs), drain_s=0.2)
        got = [(m.offset(), m.key().decode(), m.value().decode(),
                [(k, v.decode()) for k, v in m.headers()]) for m in msgs]
        want = sorted((r["offset"], r["key"], r["value"], [tuple(h) for h in r["headers"]])
                      for r in received if r["partition"] == p)
        assert got == want

    # The containers committed every partition's end when they stopped.
    assert committed_offsets(bootstrap, group) == {(topic, p): len(offs) for p, offs in by_partition.items()}
