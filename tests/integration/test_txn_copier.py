"""Kafka's own exactly-once system test, on a three-node Shardline cluster
(issue 16): Apache Kafka's TransactionalMessageCopier (the tool
tests/kafkatest/tests/core/transactions_test.py runs, from kafka-tools 4.4
in tests/java/kafka-dist) copies an input topic to an output topic with
transactions while every broker in turn is killed with -9 and restarted,
as that test's `hard_bounce` of `brokers` does.

As in Kafka's test: the input (RF=3, min.insync.replicas=2, 2 partitions)
is seeded with unique numbered values by an idempotent producer; one copier
per input partition (transactional ids copier-0 and copier-1, one consumer
group, 750 records per transaction, a 40 s transaction timeout, random
aborts of a third of the transactions; copier-0 commits its offsets with
the consumer's group metadata, copier-1 with the group id only: the two
forms of `sendOffsetsToTransaction`) reads its partition read_committed and
writes each record to the same partition of the output (RF=3,
min.insync.replicas=2, 3 partitions), committing the offsets in the same
transaction; a read_committed consumer reads the output while the copy
runs. Then:

- every copier reports, in its own JSON progress lines, a clean end
  (ShutdownComplete) with nothing remaining and every record of its
  partition processed, and exits 0;
- a read_committed read of the whole output, and what the concurrent
  consumer read, each hold every input value exactly once: no duplicate
  (a committed transaction replayed, an aborted one shown, a retried
  append written twice) and no loss;
- each output partition holds its input partition's values in the input's
  order (Kafka's `check_order` variant, which holds here for every
  partition because each copier writes only to its own).

Figures (records, bounces, time) are printed at the end.
"""

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, wait_until
from conftest import produce_waiting, unique_topic
from java import classpath, java_bin
from readback import read_to_end

MESSAGES = 40000
INPUT_PARTITIONS = 2
OUTPUT_PARTITIONS = 3
ROUNDS = 2  # every broker is bounced this many times
# The copiers' client log (WARN and up: retried and fatal errors) on stderr;
# their stdout is the JSON progress the test reads.
LOG4J2 = """Configuration:
  Appenders:
    Console: {name: STDERR, target: SYSTEM_ERR, PatternLayout: {pattern: "%d{HH:mm:ss.SSS} %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDERR}]}
"""


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path, extra_args=["--replica-lag-time-max-ms", "5000"])
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


def create(bootstrap, topic, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})])[topic].result(30)


class Copier:
    """One TransactionalMessageCopier process and its JSON progress lines."""

    def __init__(self, bootstrap, index, group, source, sink, tmp_path, use_group_metadata):
        self.id = f"copier-{index}"
        self.stderr_path = tmp_path / f"{self.id}.stderr"
        log_config = tmp_path / "copier-log4j2.yaml"
        log_config.write_text(LOG4J2)
        cmd = [java_bin(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j2.configurationFile={log_config}", "-cp", classpath("kafka-dist"), "org.apache.kafka.tools.TransactionalMessageCopier",
               "--broker-list", bootstrap, "--transactional-id", self.id, "--consumer-group", group,
               "--input-topic", source, "--output-topic", sink, "--input-partition", str(index),
               "--transaction-size", "750", "--transaction-timeout", "40000", "--enable-random-aborts"]
        if use_group_metadata:
            cmd.append("--use-group-metadata")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        self.status = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.status.append(json.loads(line))
                except ValueError:
                    pass

    def progress(self):
        return self.status[-1] if self.status else None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_tail(self, n=30):
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])


class ReadCommitted(threading.Thread):
    """A read_committed consumer of every output partition from the start,
    polling until told to stop: [(partition, offset, value)]."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.got, self.errors = [], []
        self.stop = threading.Event()

    def run(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique_topic("concurrent"),
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(self.topic, p, 0) for p in range(OUTPUT_PARTITIONS)])
            while not self.stop.is_set():
                for m in c.consume(500, 0.2):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append(str(m.error()))
                    else:
                        self.got.append((m.partition(), m.offset(), int(m.value())))
        finally:
            c.close()


def read_all(bootstrap, topic, partitions, isolation="read_committed", timeout=60):
    """Every record of every partition up to its end offset at the start
    of the read: [(partition, offset, value)]."""
    return [(m.partition(), m.offset(), int(m.value()))
            for m in read_to_end(bootstrap, topic, partitions, isolation, timeout)]


def verdict(name, inputs, reads):
    """(duplicates, lost, misordered partitions) of `reads` against the
    input {partition: [values in order]}."""
    values = [v for _, _, v in reads]
    seen = set(values)
    dups = len(values) - len(seen)
    expected = {v for vs in inputs.values() for v in vs}
    lost = sorted(expected - seen)
    extra = sorted(seen - expected)
    order = {}
    for p, _, v in sorted(reads):
        order.setdefault(p, []).append(v)
    misordered = [p for p, vs in inputs.items() if order.get(p, []) != vs and not dups and not lost]
    print(f"  {name}: {len(values)} records, {dups} duplicate(s), {len(lost)} lost {lost[:10]}, "
          f"{len(extra)} not in the input, partitions out of input order: {misordered}")
    return dups, lost, extra, misordered


@pytest.mark.timeout(360)
def test_transactional_copier_under_broker_bounces(cluster, tmp_path):
    t0 = time.monotonic()
    bootstrap = cluster.bootstrap()
    source, sink, group = unique_topic("copier-in"), unique_topic("copier-out"), unique_topic("copiers")
    create(bootstrap, source, INPUT_PARTITIONS)
    create(bootstrap, sink, OUTPUT_PARTITIONS)

    # Seed: unique numbered values, round robin over the input partitions.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    failed = []
    for i in range(MESSAGES):
        produce_waiting(p, source, value=str(i).encode(), partition=i % INPUT_PARTITIONS,
                        on_delivery=lambda err, m: err and failed.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed[:5]
    inputs = {}
    for part, _, v in read_all(bootstrap, source, INPUT_PARTITIONS):
        inputs.setdefault(part, []).append(v)
    assert sorted(v for vs in inputs.values() for v in vs) == list(range(MESSAGES))
    t_seeded = time.monotonic()

    copiers, bounces = [], []
    concurrent = ReadCommitted(bootstrap, sink)
    try:
        copiers = [Copier(bootstrap, i, group, source, sink, tmp_path, use_group_metadata=(i == 0))
                   for i in range(INPUT_PARTITIONS)]
        concurrent.start()
        wait_until("the copiers started copying",
                   lambda: all((c.progress() or {}).get("totalProcessed", 0) > 0 for c in copiers), timeout=60)

        # Every broker in turn, ROUNDS times: kill -9, down a few seconds,
        # start again, and on only once every replica is back in sync
        # (Kafka's test: await_no_under_replicated_partitions).
        for _ in range(ROUNDS):
            for node in sorted(cluster.nodes):
                copied = sum((c.progress() or {}).get("totalProcessed", 0) for c in copiers)
                cluster.nodes[node].kill9()
                time.sleep(3)
                cluster.nodes[node].start(60)
                bounces.append((node, copied))
                wait_until("every replica back in sync", lambda: not cluster.out_of_sync(), timeout=90)
        t_bounced = time.monotonic()

        for c in copiers:
            try:
                rc = c.proc.wait(timeout=max(10, 150 - (time.monotonic() - t_bounced)))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{c.id} did not finish: last progress {c.progress()}\n{c.stderr_tail()}")
            c.reader.join(10)
            assert rc == 0, f"{c.id} exited {rc}: last progress {c.progress()}\n{c.stderr_tail()}"
        t_copied = time.monotonic()
        wait_until("the concurrent consumer read the whole output",
                   lambda: len(concurrent.got) >= MESSAGES, timeout=60)
        time.sleep(1)  # anything past the input (a duplicate) arrives too
    finally:
        concurrent.stop.set()
        for c in copiers:
            c.close()
    concurrent.join(10)

    # The copiers' own account: a clean end, nothing left, all processed.
    for i, c in enumerate(copiers):
        last = c.progress()
        assert last is not None and last["stage"] == "ShutdownComplete", (c.id, last)
        assert last["remaining"] == 0 and last["totalProcessed"] == len(inputs[i]), (c.id, last, len(inputs[i]))
        assert not [s for s in c.status if s["stage"] not in ("ProcessLoop", "ShutdownComplete")], c.id

    output = read_all(bootstrap, sink, OUTPUT_PARTITIONS)
    everything = read_all(bootstrap, sink, OUTPUT_PARTITIONS, "read_uncommitted")
    print(f"\n{MESSAGES} records copied by {len(copiers)} copiers in {t_copied - t_seeded:.1f}s "
          f"({MESSAGES / (t_copied - t_seeded):.0f}/s) under {len(bounces)} broker bounces "
          f"(node, records copied when killed): {bounces}; output: {len(output)} committed records, "
          f"{len(everything) - len(output)} in aborted transactions; {time.monotonic() - t0:.1f}s in all")
    for name, reads in (("read_committed read of the output", output), ("concurrent consumer", concurrent.got)):
        dups, lost, extra, misordered = verdict(name, inputs, reads)
        assert (dups, lost, extra, misordered) == (0, [], [], []), name
    assert not concurrent.errors, concurrent.errors[:5]
    # The bounces happened while the copy ran, not after it.
    assert sum(1 for _, copied in bounces if copied < MESSAGES) >= len(cluster.nodes), bounces
