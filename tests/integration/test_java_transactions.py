"""Transactions with the Apache Kafka Java client (kafka-clients 0.11.0.3,
2.6.0, 3.9.2 and 4.4.0) against Shardline, judged pair by pair.

The driver is io.shardline.compat.Transactions (tests/java/clients/src, the
`txn` and `txn-offsets-*` slots; see test_java_clients.py for how each
version gets only the API it has). One JVM per version produces
(`txn-produce`), one per version consumes (`txn-consume`):

- txn-pattern: two transactional producers interleave their transactions
  over two partitions, committed and aborted by a fixed plan (ROUNDS);
  every version's read_committed consumer must see exactly the committed
  records of every version's producer, in offset order, and read_uncommitted
  every record; neither ever a control record (their offsets are the holes
  between the acked offsets: one marker per partition per ended transaction).
- txn-ctp: consume-transform-produce with the group's offsets in the
  transaction (sendOffsetsToTransaction: a group id in 0.11, the consumer's
  group metadata from 2.5); a committed then an aborted transaction, so the
  group's offset stays where the commit put it (also read with
  confluent-kafka's OffsetFetch).
- txn-fence: a second producer with the same transactional.id fences the
  first (ProducerFencedException or the version's equivalent).
- txn-hold-open / txn-lso-*: each producer leaves a transaction open on its
  own topic, with another producer's committed records and a plain record
  behind it; every version's read_committed consumer stops at the last
  stable offset (position and endOffsets), the group's offsets in the open
  transaction are not visible (OffsetFetch), and after the commit everything
  arrives.
- Transaction version 2 (KIP-890 part 2): the 4.4 producer must send
  Produce v12 and EndTxn v5 (Shardline's per-version request counters on
  /metrics, taken around each producer JVM, which run one at a time), the
  older ones older versions; and every transaction of a 4.4 producer carries
  a producer epoch one above the previous one (batch headers read with a
  raw Fetch), where older producers keep one epoch.

The same runs on Apache Kafka 4.4 (kafka_ref), as a check of the driver
and of the expectations: all four versions, 0.11 included (KIP-896 left
the transaction APIs' and 0.11's produce and fetch versions in place).
"""

import itertools
import queue
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import Broker, admin_client, free_port, running, unique_topic
from java import classpath, java_bin, json_lines
from raw import connect, fetch_batches

DRIVER = "io.shardline.compat.Driver"

VERSIONS = {
    "0.11": ("clients-0.11", "0.11.0.3"),
    "2.6": ("clients-2.6", "2.6.0"),
    "3.9": ("clients-3.9", "3.9.2"),
    "4": ("clients-4", "4.4.0"),
}


def vtuple(label):
    return tuple(int(x) for x in VERSIONS[label][1].split(".")[:2])


# Versions run on Apache Kafka 4.4 too: all of them (see above).
KAFKA_LABELS = list(VERSIONS)

# Must match Transactions.java.
ROUNDS = [("commit", "abort"), ("abort", "commit"), ("commit", "commit"), ("abort", "abort")]
RECORDS_PER_TXN = 3
CTP_INPUT = 10
HOLD_OFFSET = 7

# The request versions each client sends for its transactions (its newest):
# Produce, EndTxn, TxnOffsetCommit. 4.4 uses transaction version 2.
TXN_VERSIONS = {"0.11": (3, 0, 0), "2.6": (8, 1, 3), "3.9": (11, 4, 4), "4": (12, 5, 5)}

# What a fenced producer raises, as Apache Kafka 4.4 makes each client raise
# it: the produce's INVALID_PRODUCER_EPOCH is ProducerFencedException before
# 2.7 and InvalidProducerEpochException from 2.7 (KIP-588).
FENCED = {
    "0.11": "org.apache.kafka.common.errors.ProducerFencedException",
    "2.6": "org.apache.kafka.common.errors.ProducerFencedException",
    "3.9": "org.apache.kafka.common.errors.InvalidProducerEpochException",
    "4": "org.apache.kafka.common.errors.InvalidProducerEpochException",
}


class JavaProc:
    """A driver JVM whose JSON lines are read as they come, and which takes
    lines on stdin (the hold and LSO steps wait for a signal)."""

    def __init__(self, label, *args, log_dir):
        module, self.version = VERSIONS[label]
        self.label = label
        self.args = args
        self.stderr_path = log_dir / f"{args[0]}-{label}-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        cmd = [java_bin(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-cp", classpath(module), DRIVER, *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.results = {}
        self.out = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)
            for obj in json_lines(line):
                self.lines.put(obj)
        self.lines.put(None)

    def describe(self):
        err = self.stderr_path.read_text(errors="replace")[-4000:] if self.stderr_path.exists() else ""
        return (f"kafka-clients {self.version} {' '.join(map(str, self.args[:1]))}: "
                f"exit {self.proc.poll()}\n--- stdout\n{''.join(self.out)[-3000:]}\n--- stderr\n{err}")

    def wait_cap(self, cap, timeout=120):
        """The line of capability `cap` (earlier lines are kept in results)."""
        deadline = time.monotonic() + timeout
        while cap not in self.results:
            left = deadline - time.monotonic()
            try:
                obj = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"no {cap} within {timeout}s from {self.describe()}")
            if obj is None:
                raise AssertionError(f"ended before {cap}: {self.describe()}")
            if "client_version" in obj:
                assert obj["client_version"] == self.version, obj
            elif "cap" in obj:
                self.results[obj["cap"]] = obj
        return self.results[cap]

    def send(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it ended: wait_cap reports how

    def close(self, timeout=30):
        """Wait for the JVM to end on its own (timeout 0: kill it now)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        finally:
            self._stderr.close()


def scrape_requests(port):
    """{(api, version): count} from Shardline's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("shardline_requests_by_version_total{"):
            labels, value = line[len("shardline_requests_by_version_total{"):].rsplit("} ", 1)
            kv = dict(item.split("=", 1) for item in labels.split(","))
            out[(kv["api"].strip('"'), int(kv["version"].strip('"')))] = float(value)
    return out


def group_offset(bootstrap, group, topic, require_stable=False):
    """The group's committed offset of topic/0 by OffsetFetch (confluent-kafka's
    admin client, so not through the Java client under test); None if none."""
    admin = admin_client(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    res = admin.list_consumer_group_offsets([req], require_stable=require_stable)[group].result(30)
    tp = res.topic_partitions[0]
    assert tp.error is None, tp.error
    return tp.offset if tp.offset >= 0 else None


class At:
    """What raw.connect needs of a broker: its port."""

    def __init__(self, bootstrap):
        self.port = int(bootstrap.rsplit(":", 1)[1])


def batch_headers(bootstrap, topic, partition):
    """(base_offset, last_offset, producer_id, producer_epoch, transactional,
    control, control type) of every batch, by a raw Fetch (read_uncommitted)."""
    from kafka.record.default_records import DefaultRecordBatch
    s = connect(At(bootstrap))
    out, offset = [], 0
    try:
        while True:
            err, hw, batches = fetch_batches(s, topic, partition, offset, corr=len(out) + 2)
            assert err == 0, err
            for raw in batches:
                b = DefaultRecordBatch(raw)
                ctype = None
                if b.is_control_batch:
                    ctype = struct.unpack(">hh", next(iter(b)).key[:4])[1]  # 0 abort, 1 commit
                out.append((b.base_offset, b.last_offset, b.producer_id, b.producer_epoch,
                            b.is_transactional, b.is_control_batch, ctype))
                offset = b.last_offset + 1
            if offset >= hw or not batches:
                return out, hw
    finally:
        s.close()


class TxnRun:
    """The whole exchange on one broker, run once on first use: producers one
    at a time (so that request counters can be told apart), then the
    consumers together, the hold transactions committed in between."""

    def __init__(self, bootstrap, labels, tmp, metrics_port=None):
        self.bootstrap = bootstrap
        self.labels = labels
        self.tmp = tmp
        self.metrics_port = metrics_port
        self.run_id = unique_topic("jt")
        self.produced = {}      # label -> {cap: line}
        self.consumed = {}      # label -> {cap: line}
        self.requests = {}      # label -> {(api, version): count} during its producer JVM
        self.offsets_open = {}  # label -> hold group's offset while the hold transaction is open
        self.offsets_after = {}  # label -> ... after its commit
        self.ctp_offsets = {}   # label -> ctp group's offset at the end
        self.failures = {}      # label -> why its JVM failed
        self.error = None
        self.seconds = None
        self._done = False

    def prefix(self, label):
        return f"{self.run_id}-{label.replace('.', '_')}"

    def data_spec(self):
        """TOPIC:COMMITTED:ALL of every producer's topics."""
        committed = sum(RECORDS_PER_TXN for r in ROUNDS for o in r if o == "commit")
        total = RECORDS_PER_TXN * 2 * len(ROUNDS)
        items = []
        for p in self.labels:
            pre = self.prefix(p)
            items += [f"{pre}-data:{committed}:{total}", f"{pre}-out:5:10", f"{pre}-fence:2:4"]
        return ",".join(items)

    def get(self):
        if not self._done:
            self._done = True
            t0 = time.monotonic()
            try:
                self._run()
            except Exception as e:  # noqa: BLE001 - reported by every test that needs it
                self.error = f"{type(e).__name__}: {e}"
            self.seconds = time.monotonic() - t0
        if self.error:
            pytest.fail(self.error, pytrace=False)
        return self

    def _run(self):
        admin = admin_client(self.bootstrap)
        topics = []
        for p in self.labels:
            pre = self.prefix(p)
            topics += [NewTopic(f"{pre}-data", num_partitions=2, replication_factor=1)]
            topics += [NewTopic(f"{pre}-{t}", num_partitions=1, replication_factor=1)
                       for t in ("in", "out", "fence", "lso")]
        for f in admin.create_topics(topics).values():
            f.result(30)

        holders, consumers = {}, {}
        finished = False
        try:
            for p in self.labels:
                before = scrape_requests(self.metrics_port) if self.metrics_port else None
                j = JavaProc(p, "txn-produce", self.bootstrap, self.prefix(p), log_dir=self.tmp)
                holders[p] = j
                try:
                    j.wait_cap("txn-hold-open", timeout=150)
                except AssertionError as e:
                    self.failures[p] = str(e)
                self.produced[p] = j.results
                if before is not None:
                    after = scrape_requests(self.metrics_port)
                    self.requests[p] = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
            lso_topics = ",".join(f"{self.prefix(p)}-lso" for p in self.labels)
            for c in self.labels:
                consumers[c] = JavaProc(c, "txn-consume", self.bootstrap, self.data_spec(), lso_topics,
                                        log_dir=self.tmp)
            for c, j in consumers.items():
                try:
                    j.wait_cap("txn-lso-open", timeout=150)
                except AssertionError as e:
                    self.failures[c] = str(e)
                self.consumed[c] = j.results
            for p in self.labels:
                pre = self.prefix(p)
                self.offsets_open[p] = group_offset(self.bootstrap, f"{pre}-hg", f"{pre}-in")
            for p, j in holders.items():
                if p not in self.failures:
                    j.send("commit")
            for p, j in holders.items():
                if p not in self.failures:
                    try:
                        j.wait_cap("txn-hold-commit", timeout=60)
                    except AssertionError as e:
                        self.failures[p] = str(e)
            for c, j in consumers.items():
                j.send("go")
            for c, j in consumers.items():
                if c not in self.failures:
                    try:
                        j.wait_cap("txn-lso-committed", timeout=60)
                    except AssertionError as e:
                        self.failures[c] = str(e)
            for p in self.labels:
                pre = self.prefix(p)
                self.offsets_after[p] = group_offset(self.bootstrap, f"{pre}-hg", f"{pre}-in")
                self.ctp_offsets[p] = group_offset(self.bootstrap, f"{pre}-g", f"{pre}-in")
            finished = True
        finally:
            # After a failure some JVMs may still wait for a signal: end them.
            for j in list(holders.values()) + list(consumers.values()):
                j.close(timeout=30 if finished else 0)

    def produce_result(self, label, cap):
        self.get()
        out = self.produced.get(label, {}).get(cap)
        if out is None:
            pytest.fail(self.failures.get(label, f"no {cap} from kafka-clients {label}"), pytrace=False)
        assert "error" not in out, f"{cap} failed in kafka-clients {VERSIONS[label][1]}:\n{out['error']}"
        return out

    def consume_result(self, label, cap):
        self.get()
        out = self.consumed.get(label, {}).get(cap)
        if out is None:
            pytest.fail(self.failures.get(label, f"no {cap} from kafka-clients {label}"), pytrace=False)
        assert "error" not in out, f"{cap} failed in kafka-clients {VERSIONS[label][1]}:\n{out['error']}"
        return out


@pytest.fixture(scope="module")
def txn_shardline(shardline_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("java-txn")
    port = free_port()
    with running(Broker(shardline_bin, base / "data", base / "broker.log",
                        extra_args=["--admin-listen", f"127.0.0.1:{port}"], name="java-txn")) as b:
        yield TxnRun(b.bootstrap, list(VERSIONS), base, metrics_port=port)


@pytest.fixture(scope="module")
def txn_kafka(kafka_ref, tmp_path_factory):
    return TxnRun(kafka_ref.bootstrap, KAFKA_LABELS, tmp_path_factory.mktemp("java-txn-kafka"))


@pytest.fixture
def run(request):
    return request.getfixturevalue("txn_kafka" if request.param == "kafka" else "txn_shardline")


def on_brokers(n):
    """Parameters (broker, label, ...) for every combination of n versions on
    Shardline and on Kafka (ids: shardline-..., kafka-...)."""
    out = []
    for broker, labels in (("shardline", list(VERSIONS)), ("kafka", KAFKA_LABELS)):
        for combo in itertools.product(labels, repeat=n):
            out.append(pytest.param(broker, *combo, id="-".join((broker,) + combo)))
    return out


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------

def expected_pattern(label):
    """(who, round, outcome, [(partition, value)]) per transaction, in the order they ended."""
    version = VERSIONS[label][1]
    out = []
    for r, outcomes in enumerate(ROUNDS):
        for who, outcome, first in (("a", outcomes[0], 0), ("b", outcomes[1], 1)):
            recs = [((first + j) % 2, f"{version}-{who}{r}-{j}") for j in range(RECORDS_PER_TXN)]
            out.append((who, r, outcome, recs))
    return out


def pattern_records(run, label):
    """Every record the producer acked: {(partition, offset): (value, outcome)},
    after checking the acks follow the plan."""
    out = run.produce_result(label, "txn-pattern")
    txns = out["txns"]
    assert [(t["who"], t["round"], t["outcome"], [(r["p"], r["v"]) for r in t["records"]]) for t in txns] == \
        expected_pattern(label)
    acked = {}
    for t in txns:
        for r in t["records"]:
            assert (r["p"], r["o"]) not in acked, f"offset acked twice: {r}"
            acked[(r["p"], r["o"])] = (r["v"], t["outcome"])
    return out["topic"], acked


def data_log(run, label):
    """The batch headers of each partition of a producer's data topic, read
    once per run: {partition: ([batch header...], high watermark)}."""
    cache = run.__dict__.setdefault("logs", {})
    if label not in cache:
        topic, _ = pattern_records(run, label)
        cache[label] = {p: batch_headers(run.bootstrap, topic, p) for p in (0, 1)}
    return cache[label]


def read_of(run, consumer, isolation, topic):
    got = run.consume_result(consumer, f"txn-read-{isolation}")
    return [r for r in got["records"] if r["topic"] == topic]


def by_position(records):
    return sorted(records, key=lambda r: (r["p"], r["o"]))


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer,consumer", on_brokers(2), indirect=["run"])
def test_read_committed_sees_committed_records_only(run, producer, consumer):
    topic, acked = pattern_records(run, producer)
    read = read_of(run, consumer, "committed", topic)
    want = [(p, o, v) for (p, o), (v, outcome) in sorted(acked.items()) if outcome == "commit"]
    assert [(r["p"], r["o"], r["v"]) for r in by_position(read)] == want
    # In offset order within each partition, as delivered.
    for p in (0, 1):
        offsets = [r["o"] for r in read if r["p"] == p]
        assert offsets == sorted(offsets), f"partition {p} out of order: {offsets}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer,consumer", on_brokers(2), indirect=["run"])
def test_read_uncommitted_sees_every_record_and_no_marker(run, producer, consumer):
    topic, acked = pattern_records(run, producer)
    read = read_of(run, consumer, "uncommitted", topic)
    assert [(r["p"], r["o"], r["v"]) for r in by_position(read)] == \
        [(p, o, v) for (p, o), (v, _) in sorted(acked.items())]
    for p in (0, 1):
        offsets = [r["o"] for r in read if r["p"] == p]
        assert offsets == sorted(offsets), f"partition {p} out of order: {offsets}"
        # The offsets no record has are the markers' (see
        # test_a_marker_ends_each_transaction): none was delivered.
        batches, hw = data_log(run, producer)[p]
        markers = {b[0] for b in batches if b[5]}
        assert markers and not markers & set(offsets)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer", on_brokers(1), indirect=["run"])
def test_a_marker_ends_each_transaction(run, producer):
    """In the log (raw Fetch): each producer's records of a transaction, then
    its marker of the transaction's outcome, before its next transaction's
    records, in both partitions; the markers fill exactly the offsets that
    hold no record. (Markers of the two producers may land in either order:
    EndTxn returns before the coordinator writes them.)"""
    _, acked = pattern_records(run, producer)
    for p in (0, 1):
        batches, hw = data_log(run, producer)[p]
        who_of, events = {}, []
        for base, last, pid, _epoch, transactional, control, ctype in batches:
            assert transactional, batches
            if control:
                assert base == last, batches
                events.append((base, pid, "marker", ctype))
                continue
            for o in range(base, last + 1):
                value, _ = acked[(p, o)]  # KeyError: a record nobody acked
                tag = value.split("-")[1]  # "a0": producer a, round 0
                assert who_of.setdefault(pid, tag[0]) == tag[0], (pid, value)
                events.append((o, pid, "data", int(tag[1:])))
        assert sorted(o for o, *_ in events) == list(range(hw)), events
        assert sorted(who_of.values()) == ["a", "b"]
        for pid, who in who_of.items():
            want = []
            for r, outcomes in enumerate(ROUNDS):
                outcome = outcomes[0] if who == "a" else outcomes[1]
                n = sum(1 for (q, _), (v, _) in acked.items() if q == p and v.split("-")[1] == f"{who}{r}")
                want += [("data", r)] * n + [("marker", 1 if outcome == "commit" else 0)]
            got = [(kind, x) for _, q, kind, x in sorted(events) if q == pid]
            assert got == want, f"partition {p}, producer {who}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer,consumer", on_brokers(2), indirect=["run"])
def test_open_transaction_holds_read_committed_at_lso(run, producer, consumer):
    hold = run.produce_result(producer, "txn-hold-open")
    topic = hold["topic"]
    assert [r["o"] for r in hold["committed"]] == [0, 1]
    lso = hold["open"][0]["o"]
    assert lso == 3  # after the committed transaction's marker at 2
    opened = run.consume_result(consumer, "txn-lso-open")
    before = [(r["o"], r["v"]) for r in opened["records"] if r["topic"] == topic]
    assert before == [(0, "h0"), (1, "h1")], "read_committed went past the last stable offset"
    assert opened["positions"][topic] == lso
    assert opened["end_committed"][topic] == lso
    end = hold["plain"]["o"] + 1
    assert opened["end_uncommitted"][topic] == end

    after = run.consume_result(consumer, "txn-lso-committed")
    rest = [(r["o"], r["v"]) for r in after["records"] if r["topic"] == topic]
    want = [(r["o"], r["v"]) for r in hold["open"] + hold["other"] + [hold["plain"]]]
    assert rest == want
    # The other producer's marker sits between x1 and n0.
    assert [o for o, _ in want] == [3, 4, 5, 6, 7, 9]
    # Past the hold transaction's marker, the last offset.
    assert after["positions"][topic] == end + 1
    assert after["end_committed"][topic] == end + 1


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer", on_brokers(1), indirect=["run"])
def test_group_offsets_move_only_on_commit(run, producer):
    run.produce_result(producer, "txn-hold-open")
    assert run.offsets_open[producer] is None, "offsets of an open transaction are visible"
    assert run.offsets_after[producer] == HOLD_OFFSET

    ctp = run.produce_result(producer, "txn-ctp")
    assert [r["o"] for r in ctp["input"]] == list(range(CTP_INPUT))
    assert ctp["api"] == ("groupMetadata" if vtuple(producer) >= (2, 5) else "groupId")
    first, second = ctp["txns"]
    assert (first["outcome"], first["consumed"], first["offset"]) == ("commit", [0, 1, 2, 3, 4], 5)
    assert (second["outcome"], second["consumed"], second["offset"]) == ("abort", [5, 6, 7, 8, 9], 10)
    assert first["committed_after"] == 5
    assert second["committed_after"] == 5, "an aborted transaction moved the group's offset"
    assert run.ctp_offsets[producer] == 5


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer,consumer", on_brokers(2), indirect=["run"])
def test_consume_transform_produce_output(run, producer, consumer):
    ctp = run.produce_result(producer, "txn-ctp")
    out_topic = f"{run.prefix(producer)}-out"
    first, second = ctp["txns"]
    committed = [(r["o"], r["v"]) for r in first["records"]]
    assert [v for _, v in committed] == [f"out-in-{i}" for i in range(5)]
    aborted = [(r["o"], r["v"]) for r in second["records"]]
    read = [(r["o"], r["v"]) for r in read_of(run, consumer, "committed", out_topic)]
    assert read == committed
    read = [(r["o"], r["v"]) for r in read_of(run, consumer, "uncommitted", out_topic)]
    assert read == committed + aborted


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer,consumer", on_brokers(2), indirect=["run"])
def test_zombie_is_fenced(run, producer, consumer):
    f = run.produce_result(producer, "txn-fence")
    # The fenced producer's next send fails, and so does its commit.
    assert "f2" not in f, f"the zombie's send was acked: {f}"
    assert f["send_error"] == ["java.util.concurrent.ExecutionException", FENCED[producer]], f
    assert f["commit_error"] and f["commit_error"][-1] == FENCED[producer], f
    assert [f[k]["o"] for k in ("f0", "f1", "f3")] == [0, 2, 4]  # each after a marker
    topic = f"{run.prefix(producer)}-fence"
    read = [r["v"] for r in read_of(run, consumer, "committed", topic)]
    assert read == ["f0", "f3"]
    # f1's transaction was aborted by the new producer's InitProducerId.
    read = [r["v"] for r in read_of(run, consumer, "uncommitted", topic)]
    assert read == ["f0", "f1", "f3"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("producer", list(VERSIONS))
def test_request_versions(txn_shardline, producer):
    """4.4 uses transaction version 2 (Produce v12, EndTxn v5, TxnOffsetCommit
    v5, and neither AddPartitionsToTxn nor AddOffsetsToTxn: the broker adds
    the partitions); older clients their own newest versions, and add the
    partitions themselves."""
    run = txn_shardline.get()
    reqs = run.requests.get(producer)
    assert reqs, f"no request counts for {producer}: {run.failures.get(producer)}"

    def versions(name):
        return {v for (api, v) in reqs if api == name}
    assert (versions("Produce"), versions("EndTxn"), versions("TxnOffsetCommit")) == \
        tuple({v} for v in TXN_VERSIONS[producer]), reqs
    if vtuple(producer) >= (4, 0):
        assert not versions("AddPartitionsToTxn") and not versions("AddOffsetsToTxn"), reqs
    else:
        assert versions("AddPartitionsToTxn") and versions("AddOffsetsToTxn"), reqs


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run,producer", on_brokers(1), indirect=["run"])
def test_epoch_bump_per_transaction(run, producer):
    """Transaction version 2 bumps the producer epoch at every EndTxn: each
    transaction's batches carry the epoch after the previous one's, its
    marker the next. Older clients keep the epoch InitProducerId gave."""
    batches = [b for got, _ in data_log(run, producer).values() for b in got]
    by_pid = {}
    for b in sorted(batches):
        by_pid.setdefault(b[2], []).append(b)
    assert len(by_pid) == 2, batches  # producers a and b
    for pid, bs in by_pid.items():
        data_epochs = []
        for b in bs:
            if not b[5]:
                assert b[4], f"non-transactional batch {b}"
                data_epochs.append(b[3])
        distinct = sorted(set(data_epochs))
        if vtuple(producer) >= (4, 0):
            # 4 transactions: 4 epochs in a row, each one above the last.
            assert len(distinct) == len(ROUNDS), bs
            assert distinct == list(range(distinct[0], distinct[0] + len(ROUNDS))), bs
            markers = sorted({b[3] for b in bs if b[5]})
            assert markers == [e + 1 for e in distinct], bs
        else:
            assert len(distinct) == 1, bs
            assert {b[3] for b in bs if b[5]} == set(distinct), bs
