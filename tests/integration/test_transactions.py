"""Kafka transactions against one Shardline broker, with confluent-kafka
(librdkafka): commit and abort as read_committed and read_uncommitted
consumers see them, an open transaction holding read_committed back at the
last stable offset, zombie fencing, and the coordinator aborting a
transaction that outlives its timeout.

The coordinator's failover, consume-transform-produce with offsets and the
other clients are in the cluster and client-matrix tests.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import create_topic, unique_topic

ABORT_CHECK_MS = 300


@pytest.fixture(scope="module")
def txn_broker(shardline_bin, tmp_path_factory):
    from conftest import Broker, running
    base = tmp_path_factory.mktemp("txn-broker")
    extra = ["--transaction-abort-timed-out-transaction-cleanup-interval-ms", str(ABORT_CHECK_MS)]
    with running(Broker(shardline_bin, base / "data", base / "broker.log", extra_args=extra,
                        name="txn")) as b:
        yield b


@pytest.fixture(scope="module")
def bootstrap(txn_broker):
    return txn_broker.bootstrap


def txn_producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id,
            "linger.ms": 0, "transaction.timeout.ms": 60000}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, partitions, isolation, expect=None, timeout=20, idle=1.5):
    """Every record of `topic` from offset 0 (values, in order per
    partition) as a consumer with `isolation` sees them."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                n = sum(len(v) for v in got.values())
                if (expect is None or n >= expect) and time.monotonic() - last > idle:
                    break
                continue
            if m.error():
                raise AssertionError(f"consumer error: {m.error()}")
            got[m.partition()].append((m.offset(), m.value().decode()))
            last = time.monotonic()
    finally:
        c.close()
    return got


def values(got):
    return {p: [v for _, v in recs] for p, recs in got.items()}


def test_committed_data_is_seen_and_aborted_data_is_not(bootstrap):
    topic = unique_topic("txn")
    create_topic(bootstrap, topic, partitions=2)
    p = txn_producer(bootstrap, f"tx-{topic}")
    batches = [("commit", 10), ("abort", 7), ("commit", 5)]
    for i, (end, n) in enumerate(batches):
        p.begin_transaction()
        for j in range(n):
            p.produce(topic, f"{i}-{j}".encode(), partition=j % 2)
        if end == "commit":
            p.commit_transaction(30)
        else:
            p.flush(30)
            p.abort_transaction(30)
    committed = read_all(bootstrap, topic, 2, "read_committed", expect=15)
    uncommitted = read_all(bootstrap, topic, 2, "read_uncommitted", expect=22)
    want_committed = {part: [f"{i}-{j}" for i, (end, n) in enumerate(batches) if end == "commit"
                             for j in range(n) if j % 2 == part] for part in (0, 1)}
    want_all = {part: [f"{i}-{j}" for i, (_, n) in enumerate(batches)
                       for j in range(n) if j % 2 == part] for part in (0, 1)}
    assert values(committed) == want_committed
    assert values(uncommitted) == want_all, "read_uncommitted sees aborted data, never markers"
    # Each transaction ended with a marker on each partition it wrote to:
    # the log end is past the data by one offset per transaction.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    for part in (0, 1):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        assert hi == len(want_all[part]) + len(batches), (part, lo, hi)
    c.close()


def test_an_open_transaction_holds_read_committed_back(bootstrap):
    topic = unique_topic("lso")
    create_topic(bootstrap, topic, partitions=1)
    plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    plain.produce(topic, b"before")
    plain.flush(10)
    p = txn_producer(bootstrap, f"tx-{topic}")
    p.begin_transaction()
    p.produce(topic, b"in-txn")
    p.flush(10)
    # A non-transactional record after the open transaction's first one
    # is above the last stable offset too.
    plain.produce(topic, b"after")
    plain.flush(10)
    got = read_all(bootstrap, topic, 1, "read_committed", expect=1, timeout=4)
    assert values(got)[0] == ["before"], "read_committed stops at the open transaction"
    assert values(read_all(bootstrap, topic, 1, "read_uncommitted", expect=3))[0] == \
        ["before", "in-txn", "after"]
    p.commit_transaction(30)
    got = read_all(bootstrap, topic, 1, "read_committed", expect=3)
    assert values(got)[0] == ["before", "in-txn", "after"]


def test_a_second_producer_with_the_same_id_fences_the_first(bootstrap):
    topic = unique_topic("fence")
    create_topic(bootstrap, topic, partitions=1)
    txn_id = f"tx-{topic}"
    old = txn_producer(bootstrap, txn_id)
    old.begin_transaction()
    old.produce(topic, b"zombie")
    old.flush(10)
    # The new producer's InitProducerId aborts the open transaction and
    # bumps the epoch.
    new = txn_producer(bootstrap, txn_id)
    new.begin_transaction()
    new.produce(topic, b"live")
    new.commit_transaction(30)
    # The zombie still thinks its transaction is open: its commit fails,
    # fenced (fatal for a transactional producer).
    with pytest.raises(KafkaException) as e:
        old.produce(topic, b"zombie-2")
        old.commit_transaction(10)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
    got = values(read_all(bootstrap, topic, 1, "read_committed", expect=1))[0]
    assert got == ["live"]


def test_a_transaction_past_its_timeout_is_aborted(bootstrap):
    topic = unique_topic("timeout")
    create_topic(bootstrap, topic, partitions=1)
    p = txn_producer(bootstrap, f"tx-{topic}", **{"transaction.timeout.ms": 1500})
    p.begin_transaction()
    p.produce(topic, b"too-slow")
    p.flush(10)
    time.sleep(1.5 + 3 * ABORT_CHECK_MS / 1000 + 1)
    # The coordinator aborted it: the last stable offset moved past it
    # without the record, and the producer's commit fails.
    got = values(read_all(bootstrap, topic, 1, "read_committed", timeout=4))[0]
    assert got == []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lso-check",
                  "isolation.level": "read_committed"})
    _, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    assert hi == 2, "the record and the abort marker"
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


def test_bad_transactional_requests_get_kafkas_errors(bootstrap):
    topic = unique_topic("bad")
    create_topic(bootstrap, topic, partitions=1)
    # A timeout above transaction.max.timeout.ms (900000) is refused.
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}",
                  "transaction.timeout.ms": 900001})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert "INVALID_TRANSACTION_TIMEOUT" in str(e.value) or "timeout" in str(e.value).lower()


def committed_offset(bootstrap, group, topic, isolation="read_uncommitted", timeout=10):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "isolation.level": isolation, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=timeout)[0].offset
    finally:
        c.close()


def test_offsets_move_only_with_a_committed_transaction(bootstrap):
    src, dst = unique_topic("ctp-in"), unique_topic("ctp-out")
    create_topic(bootstrap, src, partitions=1)
    create_topic(bootstrap, dst, partitions=1)
    group = f"g-{src}"
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(15):
        plain.produce(src, str(i).encode())
    plain.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(src, 0, 0)])
    p = txn_producer(bootstrap, f"tx-{src}")

    def transform(n):
        got = []
        while len(got) < n:
            m = consumer.poll(5)
            assert m is not None, f"input ran dry after {len(got)}"
            assert not m.error(), m.error()
            got.append(m)
        p.begin_transaction()
        for m in got:
            p.produce(dst, b"x" + m.value())
        p.send_offsets_to_transaction(consumer.position([TopicPartition(src, 0)]),
                                      consumer.consumer_group_metadata(), 30)
        return got

    transform(10)
    p.commit_transaction(30)
    assert committed_offset(bootstrap, group, src) == 10
    # The next five are transformed, but the transaction aborts: the
    # group's offset stays, and their output is never read committed.
    transform(5)
    # While it is open, a read_committed consumer cannot fetch a stable
    # offset (UNSTABLE_OFFSET_COMMIT), a read_uncommitted one sees the
    # last committed.
    assert committed_offset(bootstrap, group, src) == 10
    with pytest.raises(KafkaException):
        committed_offset(bootstrap, group, src, "read_committed", timeout=2)
    p.abort_transaction(30)
    assert committed_offset(bootstrap, group, src) == 10
    assert committed_offset(bootstrap, group, src, "read_committed") == 10
    out = values(read_all(bootstrap, dst, 1, "read_committed", expect=10))[0]
    assert out == [f"x{i}" for i in range(10)]
    consumer.close()
