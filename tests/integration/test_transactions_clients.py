"""Transactions from other clients than librdkafka, on one broker (issue
16): kafka-python 3 (KafkaProducer with a transactional_id, KafkaConsumer
with isolation_level) and kafkajs 2 (a producer with a transactionalId,
idempotent, maxInFlightRequests 1; group consumers with readUncommitted
true and false, tests/js/transactions.js).

For each: transactions committed and aborted in turn, then one left open.
Read_committed consumers of the same library read the committed records
only, in order, at the offsets Kafka gives them (every transaction's end
is a control record that takes one offset and is never delivered), and
nothing of the open transaction (the last stable offset holds them at its
first record); read_uncommitted consumers read every data record. The
same reads with confluent-kafka must agree. Then the open transaction is
committed and both read again; a second producer with the same id fences
the first (whose transaction is aborted); and consumed offsets sent in a
transaction move the group's offset only if it commits.

`TXN_CLIENTS_BROKER=kafka` runs the module against Apache Kafka 4.4 (the
`kafka_ref` fixture) instead, to check that the expectations are Kafka's.
"""

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import create_topic, unique_topic
from readback import read_to_end

JS_DIR = Path(__file__).resolve().parents[1] / "js"
PARTITIONS = 2


@pytest.fixture(scope="module")
def bootstrap(request, shardline_bin, tmp_path_factory):
    if os.environ.get("TXN_CLIENTS_BROKER") == "kafka":
        yield request.getfixturevalue("kafka_ref").bootstrap
        return
    from conftest import Broker, running
    base = tmp_path_factory.mktemp("txn-clients")
    with running(Broker(shardline_bin, base / "data", base / "broker.log",
                        name="txn-clients")) as b:
        yield b.bootstrap


def expected(plan):
    """What consumers read after `plan`, a list of (end, [(partition,
    value)]) with end "commit", "abort" or "open", produced in this order
    by one producer into empty partitions: (read_committed,
    read_uncommitted), each a sorted list of (partition, offset, value).
    Each commit or abort writes one control record to each partition the
    transaction wrote to; an open transaction holds read_committed back
    from its first record on (the last stable offset)."""
    next_offset = {p: 0 for p in range(PARTITIONS)}
    lso = {}
    committed, uncommitted = [], []
    for end, records in plan:
        touched = set()
        for part, value in records:
            rec = (part, next_offset[part], value)
            uncommitted.append(rec)
            if end == "commit":
                committed.append(rec)
            elif end == "open":
                lso.setdefault(part, next_offset[part])
            next_offset[part] += 1
            touched.add(part)
        if end != "open":
            for part in touched:
                next_offset[part] += 1
    committed = [r for r in committed if r[1] < lso.get(r[0], 1 << 62)]
    return sorted(committed), sorted(uncommitted)


def confluent_read(bootstrap, topic, isolation, partitions=PARTITIONS, timeout=30):
    """Every record of `topic` from offset 0 to its end (the high
    watermark, or for read_committed the last stable offset), read with
    confluent-kafka: a sorted list of (partition, offset, value)."""
    return sorted((m.partition(), m.offset(), m.value().decode())
                  for m in read_to_end(bootstrap, topic, partitions, isolation, timeout,
                                       config={"fetch.wait.max.ms": 100}))


def confluent_committed_offset(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def source_topic(bootstrap, n=10):
    """A one-partition topic of `n` plain records (the input of a
    consume-transform-produce loop)."""
    src = unique_topic("src")
    create_topic(bootstrap, src, partitions=1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(src, str(i).encode(), partition=0)
    assert p.flush(10) == 0
    return src


# --------------------------------------------------------------- kafka-python

def kp_producer(bootstrap, txn_id):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id,
                      transaction_timeout_ms=60000, request_timeout_ms=15000,
                      max_block_ms=30000, linger_ms=5)
    p.init_transactions()
    return p


def kp_read(bootstrap, topic, isolation, at_least, drain_s=1.0, timeout=30):
    """Every record kafka-python's KafkaConsumer with `isolation` reads
    from offset 0 of every partition: at least `at_least`, then whatever
    else comes within `drain_s`. Sorted (partition, offset, value)."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTp
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, auto_offset_reset="earliest",
                      fetch_max_wait_ms=100, request_timeout_ms=15000)
    got = []
    try:
        tps = [KTp(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(got) < at_least and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got += [(r.partition, r.offset, r.value.decode()) for r in recs]
        drain_end = time.monotonic() + drain_s
        while time.monotonic() < drain_end:
            for recs in c.poll(timeout_ms=200).values():
                got += [(r.partition, r.offset, r.value.decode()) for r in recs]
    finally:
        c.close()
    return sorted(got)


def kp_transaction(p, topic, tag, n, end):
    """One transaction of `n` records over the partitions, ended with
    `end` (commit, abort, or left open); its plan entry."""
    p.begin_transaction()
    records = [(j % PARTITIONS, f"{tag}-{j}") for j in range(n)]
    for part, value in records:
        p.send(topic, value.encode(), partition=part)
    # Written before the end (an abort drops records not yet sent).
    p.flush(30)
    if end == "commit":
        p.commit_transaction()
    elif end == "abort":
        p.abort_transaction()
    return end, records


def test_kafka_python_commits_and_aborts(bootstrap):
    topic = unique_topic("kptx")
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    p = kp_producer(bootstrap, f"tx-{topic}")
    ends = ["commit", "abort", "commit", "abort", "commit", "open"]
    plan = [kp_transaction(p, topic, f"t{i}", n, end)
            for i, (end, n) in enumerate(zip(ends, [6, 6, 5, 3, 6, 4]))]
    want_rc, want_ru = expected(plan)
    assert kp_read(bootstrap, topic, "read_committed", len(want_rc)) == want_rc
    assert kp_read(bootstrap, topic, "read_uncommitted", len(want_ru)) == want_ru
    assert confluent_read(bootstrap, topic, "read_committed") == want_rc
    assert confluent_read(bootstrap, topic, "read_uncommitted") == want_ru
    p.commit_transaction()
    plan[-1] = ("commit", plan[-1][1])
    want_rc, want_ru = expected(plan)
    assert kp_read(bootstrap, topic, "read_committed", len(want_rc)) == want_rc
    assert kp_read(bootstrap, topic, "read_uncommitted", len(want_ru)) == want_ru
    assert confluent_read(bootstrap, topic, "read_committed") == want_rc
    p.close()


@pytest.mark.parametrize("zombie_does", ["commit", "send-then-commit"])
def test_kafka_python_zombie_is_fenced(bootstrap, zombie_does):
    """A second producer with the same id aborts the first one's open
    transaction and fences it: the zombie's EndTxn is refused (or, when it
    sends first, its Produce is: Kafka answers INVALID_PRODUCER_EPOCH),
    and nothing it wrote is ever read committed."""
    import kafka.errors as Errors
    topic = unique_topic("kpz")
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    txn_id = f"tx-{topic}"
    old = kp_producer(bootstrap, txn_id)
    kp_transaction(old, topic, "zombie", 2, "open")
    new = kp_producer(bootstrap, txn_id)
    kp_transaction(new, topic, "live", 2, "commit")
    if zombie_does == "send-then-commit":
        sent = old.send(topic, b"zombie-2", partition=0)
        old.flush(10)
        with pytest.raises(Errors.KafkaError):
            sent.get(10)
        print(f"kafka-python zombie's Produce: {sent.exception!r}")
        assert isinstance(sent.exception, Errors.InvalidProducerEpochError), sent.exception
    with pytest.raises(Errors.KafkaError) as e:
        old.commit_transaction()
    print(f"kafka-python zombie's commit: {type(e.value).__name__}: {e.value}")
    if zombie_does == "commit":
        assert isinstance(e.value, Errors.ProducerFencedError), repr(e.value)
    got = confluent_read(bootstrap, topic, "read_committed")
    assert [v for _, _, v in got] == ["live-0", "live-1"]
    assert [v for _, _, v in kp_read(bootstrap, topic, "read_committed", 2)] == \
        ["live-0", "live-1"]
    old.close(timeout=5)
    new.close()


def test_kafka_python_offsets_move_only_with_a_commit(bootstrap):
    from kafka import KafkaConsumer, OffsetAndMetadata
    from kafka import TopicPartition as KTp
    src = source_topic(bootstrap)
    dst = unique_topic("kpout")
    create_topic(bootstrap, dst, partitions=PARTITIONS)
    group = f"g-{src}"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, isolation_level="read_committed",
                             auto_offset_reset="earliest", fetch_max_wait_ms=100)
    tp = KTp(src, 0)
    consumer.assign([tp])
    p = kp_producer(bootstrap, f"tx-{src}")

    def transform(n, end):
        got = []
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=200, max_records=n - len(got)).values():
                got += recs
        assert len(got) == n, got
        p.begin_transaction()
        for r in got:
            p.send(dst, b"x" + r.value, partition=0)
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(got[-1].offset + 1, "", -1)},
                                      consumer.group_metadata())
        p.flush(30)
        if end == "commit":
            p.commit_transaction()
        else:
            p.abort_transaction()
        return got[-1].offset + 1

    assert transform(5, "commit") == 5
    assert confluent_committed_offset(bootstrap, group, src) == 5
    assert transform(3, "abort") == 8
    assert confluent_committed_offset(bootstrap, group, src) == 5
    out = confluent_read(bootstrap, dst, "read_committed")
    assert [v for _, _, v in out] == [f"x{i}" for i in range(5)]
    consumer.close()
    p.close()


# -------------------------------------------------------------------- kafkajs

class Script:
    """tests/js/transactions.js, one step at a time (a JSON line out, a
    line in to go on)."""

    def __init__(self, bootstrap, topic, source, stderr_path):
        node = shutil.which("node")
        assert node, "node is not installed"
        assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), f"run `npm install` in {JS_DIR}"
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen([node, str(JS_DIR / "transactions.js"), bootstrap, topic,
                                      source], cwd=JS_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def next(self, timeout=120):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError(f"transactions.js gave no step (exit {self.proc.returncode}):\n"
                                 f"{Path(self.stderr_path).read_text()}")
        return json.loads(line)

    def go_on(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(30)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def as_records(rows):
    return sorted((p, o, v) for p, o, v in rows)


def test_kafkajs_transactions(bootstrap, tmp_path):
    topic = unique_topic("kjstx")
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    src = source_topic(bootstrap)
    js = Script(bootstrap, topic, src, tmp_path / "transactions.js.stderr")
    try:
        s = js.next()
        assert s["step"] == "history", s
        plan = [(end, [tuple(r) for r in records]) for end, records in s["plan"]]
        assert [end for end, _ in plan] == ["commit", "abort", "commit", "abort", "commit", "open"]
        want_rc, want_ru = expected(plan)
        assert as_records(s["committed"]) == want_rc, "kafkajs read_committed"
        assert as_records(s["uncommitted"]) == want_ru, "kafkajs read_uncommitted"
        assert confluent_read(bootstrap, topic, "read_committed") == want_rc
        assert confluent_read(bootstrap, topic, "read_uncommitted") == want_ru
        js.go_on()

        s = js.next()
        assert s["step"] == "committed", s
        plan[-1] = ("commit", plan[-1][1])
        want_rc, want_ru = expected(plan)
        assert as_records(s["committed"]) == want_rc, "kafkajs read_committed"
        assert as_records(s["uncommitted"]) == want_ru, "kafkajs read_uncommitted"
        assert confluent_read(bootstrap, topic, "read_committed") == want_rc
        js.go_on()

        s = js.next()
        assert s["step"] == "zombie", s
        print(f"kafkajs zombie: {s}")
        # kafkajs sends Produce v7 and EndTxn v1 at most: Kafka answers a
        # fenced epoch there with INVALID_PRODUCER_EPOCH (PRODUCER_FENCED
        # is for newer versions, and kafkajs 2.2 does not know it).
        assert (s["commit_error"], s["send_error"]) == \
            ("INVALID_PRODUCER_EPOCH", "INVALID_PRODUCER_EPOCH"), s
        got = [v for p, _, v in confluent_read(bootstrap, topic, "read_committed") if p == 0]
        assert "live-commit" in got and "live-send" in got, got
        assert not any(v.startswith("zombie") for v in got), got
        js.go_on()

        s = js.next()
        assert s["step"] == "offsets", s
        assert (s["after_commit"], s["after_abort"]) == (5, 5), s
        assert confluent_committed_offset(bootstrap, s["group"], src) == 5
        js.go_on()
        js.proc.wait(30)
        assert js.proc.returncode == 0, Path(js.stderr_path).read_text()
    finally:
        js.close()
