"""Kafka Streams exactly_once_v2 on a three-node Shardline cluster, with the
application and two brokers killed with -9 mid-run (issue 16).

The word count of tests/java/streams-4 (EosWordCount: the WordCount
topology, processing.guarantee=exactly_once_v2, internal topics with three
replicas and min.insync.replicas=2, one stream thread, no record cache,
commit every 500 ms), Java clients 4.4, so transaction version 2 (an epoch
bump per transaction, partitions added by their leaders, KIP-890). A Python
idempotent producer writes BACKLOG known text lines (known words, so a
known count per word) to a 3-partition input topic, the application starts,
and then:

  1. the Streams process is killed with -9 while it works through the
     backlog (an eighth of it counted), and started again on the same state
     directory: the same Streams process id, so the same transactional id,
     whose open transaction the new producer's InitProducerId aborts; the
     store is rebuilt from the changelog's committed records;
  2. the rest of the lines arrive at a steady rate, and the broker
     coordinating the application's transaction (found with
     ListTransactions and DescribeTransactions by the driver) is killed
     with -9, stays down a few seconds and restarts;
  3. then the application's group coordinator (or, when that is the first
     victim, the broker leading most of the partitions) likewise.

Then the application runs until the output is complete and closes cleanly.
A read_committed read of the output topic must give, for every word, counts
that only rise and end at exactly the number of times the word was written:
a record processed twice (reprocessing after a crash, a duplicate append on
a retry after a failover, an aborted transaction shown as committed, offsets
committed out of step with the output) makes a count too high, a lost
record makes it too low. The changelog (read_committed) must hold the same
final counts, and the input topic exactly the lines sent.

The test can fail: `STREAMS_EOS_GUARANTEE=at_least_once pytest ...` runs the
same scenario with at-least-once processing, which overcounts (the killed
process's work since its last commit is done again). The figures (lines,
output records, records of aborted transactions, kills, time) are printed.
"""

import os
import random
import subprocess
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, wait_until
from conftest import produce_waiting, unique_topic
from java import classpath, java_bin, json_lines
from readback import read_to_end

WORDS = ("kafka streams shardline broker topic partition offset record group commit "
         "fetch produce leader replica segment index compact delete retention consumer").split()
LINES = 16000
BACKLOG = 6000
LINES_PER_S = 400
PARTITIONS = 3
GUARANTEE = os.environ.get("STREAMS_EOS_GUARANTEE", "exactly_once_v2")


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path, extra_args=["--replica-lag-time-max-ms", "5000"])
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


def text_lines(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def create(bootstrap, *topics):
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(t, PARTITIONS, 3, config={"min.insync.replicas": "2"}) for t in topics])
    for f in fs.values():
        f.result(30)


def leaders(bootstrap, prefixes):
    """Counter of leader node over the partitions of the matching topics."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return Counter(m.leader for name, t in md.topics.items() if name.startswith(prefixes)
                   for m in t.partitions.values())


def read_topic(bootstrap, topic, isolation, timeout=60):
    """Every record of every partition, up to the end offsets at the start of
    the read, with `isolation` (read_committed stops at the last stable
    offset: run after every transaction ended). [(partition, key, value)]."""
    return [(m.partition(), m.key(), m.value())
            for m in read_to_end(bootstrap, topic, PARTITIONS, isolation, timeout)]


def counts_by_word(records):
    """{word: [counts in offset order]}; a word on two partitions fails."""
    out, where = {}, {}
    for p, k, v in records:
        w = k.decode()
        assert where.setdefault(w, p) == p, f"{w} on partitions {where[w]} and {p}"
        out.setdefault(w, []).append(int.from_bytes(v, "big", signed=True))
    return out


class StreamsApp:
    """The EosWordCount JVM: started, killed with -9, restarted on the same
    state directory; its JSON events collected from stdout."""

    def __init__(self, bootstrap, source, sink, app, tmp_path):
        self.args = [bootstrap, source, sink, app, str(tmp_path / "state"), GUARANTEE, "300"]
        self.tmp_path = tmp_path
        self.events = []
        self.proc = None
        self.starts = 0
        self.lock = threading.Lock()

    def start(self):
        self.starts += 1
        cmd = [java_bin(), "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Dorg.slf4j.simpleLogger.showDateTime=true",
               "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
               "-cp", classpath("streams-4"), "io.shardline.tests.streams.EosWordCount", *self.args]
        stderr = open(self.tmp_path / f"streams-{self.starts}.stderr", "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stderr.close()
        run = self.starts
        threading.Thread(target=self._read, args=(self.proc.stdout, run), daemon=True).start()

    def _read(self, stream, run):
        for line in stream:
            for e in json_lines(line):
                e["run"] = run
                with self.lock:
                    self.events.append(e)

    def of_run(self, name):
        with self.lock:
            return [e for e in self.events if e["run"] == self.starts and e["event"] == name]

    def wait_running(self, timeout=90):
        def running():
            assert self.proc.poll() is None, f"Streams exited {self.proc.returncode}: {self.stderr_tail()}"
            assert not self.of_run("thread_error"), self.of_run("thread_error")
            return any(e["to"] == "RUNNING" for e in self.of_run("state"))
        wait_until("Streams RUNNING", running, timeout=timeout)

    def coordinators(self, timeout=60):
        """(transaction coordinators, group coordinator) the driver found
        once it ran; no transactions under at_least_once."""
        e = wait_until("coordinators reported", lambda: self.of_run("coordinators"), timeout=timeout)[-1]
        return sorted(set(e["transactions"].values())), e["group"]

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout=90):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        rc = self.proc.wait(timeout)
        assert rc == 0, f"Streams exited {rc}: {self.of_run('closed')} {self.stderr_tail()}"

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_tail(self, n=40):
        text = (self.tmp_path / f"streams-{self.starts}.stderr").read_text(errors="replace")
        return "\n".join(text.splitlines()[-n:])


@pytest.mark.timeout(420)
def test_streams_exactly_once_word_count_survives_kills(cluster, tmp_path):
    t0 = time.monotonic()
    bootstrap = cluster.bootstrap()
    app = unique_topic("eos-wordcount")
    source, sink = unique_topic("eos-lines"), unique_topic("eos-counts")
    create(bootstrap, source, sink)
    lines = text_lines(LINES, seed=16)
    expected = Counter(w for line in lines for w in line.split(" "))

    streams = StreamsApp(bootstrap, source, sink, app, tmp_path)
    total = sum(expected.values())
    backlog_words = sum(len(line.split(" ")) for line in lines[:BACKLOG])
    failed = []
    stop_producing = threading.Event()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 180000})

    def on_delivery(err, m):
        if err:
            failed.append(err)

    def produce(first, last, rate=None):
        start = time.monotonic()
        for i in range(first, last):
            if stop_producing.is_set():
                return
            if rate:
                # A steady rate, so that the broker kills land while lines arrive.
                time.sleep(max(0.0, start + (i - first) / rate - time.monotonic()))
            produce_waiting(p, source, key=str(i).encode(), value=line_bytes[i], on_delivery=on_delivery)
            p.poll(0)
        p.flush(200)

    line_bytes = [line.encode() for line in lines]
    writer = threading.Thread(target=produce, args=(BACKLOG, LINES, LINES_PER_S), daemon=True)
    kills = []
    prefixes = (source, sink, app, "__transaction_state", "__consumer_offsets")

    def counted():
        """Sum of the latest committed count of every word on the output."""
        return sum(c[-1] for c in counts_by_word(read_topic(bootstrap, sink, "read_committed")).values())

    def bounce(node, why, down_s=4):
        led = leaders(cluster.bootstrap(), prefixes)[node]
        cluster.nodes[node].kill9()
        kills.append(f"broker {node} ({why}, leader of {led} partitions, at {time.monotonic() - t0:.0f}s)")
        time.sleep(down_s)
        cluster.nodes[node].start(60)
        wait_until("every replica back in sync", lambda: not cluster.out_of_sync(prefixes), timeout=90)

    try:
        # A backlog first: the application is killed while it works
        # through it at full speed, with many records processed since its
        # last commit.
        produce(0, BACKLOG)
        assert not failed, failed[:5]
        streams.start()
        streams.wait_running()

        # 1. The application itself, mid-backlog (mid-transaction).
        at_kill = wait_until("an eighth of the backlog counted",
                             lambda: (n := counted()) >= backlog_words // 8 and n, timeout=90, every=0.2)
        streams.kill9()
        kills.append(f"streams ({at_kill} of {backlog_words} backlog words counted, at {time.monotonic() - t0:.0f}s)")
        streams.start()
        streams.wait_running()
        writer.start()
        txn_coordinators, group_coordinator = streams.coordinators()
        time.sleep(3)

        # 2. The transaction coordinator of the application (the group
        # coordinator under at_least_once).
        first = txn_coordinators[0] if txn_coordinators else group_coordinator
        bounce(first, "transaction coordinator" if txn_coordinators else "group coordinator")

        # 3. The group coordinator, or the broker leading most of the
        # application's partitions when that is the node killed first.
        second, why = group_coordinator, "group coordinator"
        if second == first:
            second, why = next(n for n, _ in leaders(bootstrap, prefixes).most_common() if n != first), "leader"
        bounce(second, why)

        writer.join(200)
        assert not writer.is_alive(), "the producer did not finish"
        assert not failed, failed[:5]
        t_produced = time.monotonic()

        # The output is complete once the latest counts add up to the words
        # written (too many: no need to wait further, the check below fails).
        wait_until("output counts add up", lambda: counted() >= total, timeout=120, every=2)
        streams.stop()
    finally:
        stop_producing.set()
        streams.close()

    # The input holds every line exactly once.
    inputs = read_topic(bootstrap, source, "read_committed")
    assert sorted(int(k) for _, k, _ in inputs) == list(range(LINES))

    out = counts_by_word(read_topic(bootstrap, sink, "read_committed"))
    everything = read_topic(bootstrap, sink, "read_uncommitted")
    final = {w: c[-1] for w, c in out.items()}
    diff = {w: (final.get(w), expected.get(w)) for w in set(final) | set(expected) if final.get(w) != expected.get(w)}
    output_records = sum(len(c) for c in out.values())
    changelog = counts_by_word(read_topic(bootstrap, f"{app}-counts-changelog", "read_committed"))
    changelog_aborted = len(read_topic(bootstrap, f"{app}-counts-changelog", "read_uncommitted")) \
        - sum(len(c) for c in changelog.values())
    print(f"\n{GUARANTEE}: {LINES} lines, {sum(expected.values())} words ({len(expected)} distinct); "
          f"kills: {', '.join(kills)}; output {output_records} committed records, "
          f"{len(everything) - output_records} in aborted transactions (changelog: {changelog_aborted}); "
          f"counted {sum(final.values()) - sum(expected.values())} word(s) too many; "
          f"output complete {time.monotonic() - t_produced:.1f}s after the last line; "
          f"{time.monotonic() - t0:.1f}s in all")
    assert not diff, f"final count != expected (word: (final, expected)): {diff}"
    for w, counts in out.items():
        assert all(a < b for a, b in zip(counts, counts[1:])), (w, counts)
    assert {w: c[-1] for w, c in changelog.items()} == dict(expected)

