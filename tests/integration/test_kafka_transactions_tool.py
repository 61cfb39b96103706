"""Kafka's own `kafka-transactions.sh` (org.apache.kafka.tools.TransactionsCommand,
from tests/java/kafka-dist) against Shardline and Apache Kafka 4.4 side by side
(KIP-664): `list`, `describe`, `describe-producers`, `find-hanging`, and
`abort` of an open transaction by its start offset, which reads the
partition's producer state with DescribeProducers and writes the abort marker
itself with WriteTxnMarkers, as an operator does with a hanging transaction.

Each broker runs the same scenario; the tables must agree once the values
that differ by nature (producer ids, timestamps, node ids) are replaced.
"""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, create_topic, running, unique_topic
import test_kafka_tools
from test_kafka_tools import on_both

tool = test_kafka_tools.tool  # the module's fixture: Kafka's tools in a JVM

CMD = "TransactionsCommand"


@pytest.fixture(scope="module")
def sl(shardline_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("broker-kafka-transactions")
    with running(Broker(shardline_bin, base / "data", base / "broker.log",
                        name="kafka-transactions")) as b:
        yield b


def table(text):
    """prettyPrintTable's output as a list of {header: value} rows."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    assert lines, f"no table printed: {text!r}"
    head, body = lines[0], lines[1:]
    rows = []
    for ln in body:
        assert len(ln) == len(head), (head, ln)
        rows.append(dict(zip(head, ln)))
    return rows


def lso(bootstrap, topic):
    """The last stable offset of partition 0: the high watermark a
    read_committed consumer is told (ListOffsets with read_committed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("lso"),
                  "isolation.level": "read_committed"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def scenario(tool):
    def run(bootstrap, node):
        def cmd(*args):
            return tool(CMD, "--bootstrap-server", bootstrap, *args).stdout

        topic, txn_id = unique_topic("txn-tool"), unique_topic("txn-tool-id")
        create_topic(bootstrap, topic, 1)
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                      "linger.ms": 0, "transaction.timeout.ms": 60000})
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, value=b"v%d" % i, partition=0)
        assert p.flush(10) == 0
        now_ms = time.time() * 1000
        out = {"lso_open": lso(bootstrap, topic)}

        producers = table(cmd("describe-producers", "--topic", topic, "--partition", "0"))
        assert len(producers) == 1, producers
        pid = producers[0]["ProducerId"]
        assert abs(int(producers[0]["LastTimestamp"]) - now_ms) < 60_000, producers
        out["producers_open"] = [{**r, "ProducerId": "P", "LastTimestamp": "T"} for r in producers]

        listed = [r for r in table(cmd("list")) if r["TransactionalId"] == txn_id]
        assert len(listed) == 1 and listed[0]["ProducerId"] == pid, listed
        assert listed[0]["Coordinator"] == str(node), listed
        out["list"] = [{**r, "TransactionalId": "ID", "ProducerId": "P", "Coordinator": "N"}
                       for r in listed]

        described = table(cmd("describe", "--transactional-id", txn_id))
        assert len(described) == 1 and described[0]["ProducerId"] == pid, described
        d = described[0]
        assert abs(int(d["CurrentTransactionStartTimeMs"]) - now_ms) < 60_000, d
        assert 0 <= int(d["TransactionDurationMs"]) < 60_000, d
        out["describe"] = {**d, "CoordinatorId": "N", "TransactionalId": "ID", "ProducerId": "P",
                           "CurrentTransactionStartTimeMs": "T", "TransactionDurationMs": "D",
                           "TopicPartitions": d["TopicPartitions"].replace(topic, "TOPIC")}

        # A transaction younger than the timeout is not hanging.
        hanging = cmd("find-hanging", "--broker-id", str(node))
        out["find_hanging"] = [ln for ln in hanging.splitlines() if ln.strip()]

        # The operator's abort: the marker at offset 3 ends the transaction
        # in the partition, and read_committed reaches past it at once.
        cmd("abort", "--topic", topic, "--partition", "0", "--start-offset", "0")
        out["producers_aborted"] = [{**r, "ProducerId": "P", "LastTimestamp": "T"}
                                    for r in table(cmd("describe-producers", "--topic", topic,
                                                       "--partition", "0"))]
        out["lso_aborted"] = lso(bootstrap, topic)
        # An offset no transaction starts at: the tool says so and fails.
        bad = tool(CMD, "--bootstrap-server", bootstrap, "abort", "--topic", topic,
                   "--partition", "0", "--start-offset", "1", check=False)
        out["abort_unknown"] = (bad.returncode != 0,
                                "Could not find any open transactions starting at offset 1"
                                in bad.stdout + bad.stderr)
        # The producer's own abort after the operator's: its marker ends
        # nothing more, and the data stays hidden.
        p.abort_transaction(30)
        out["lso_end"] = lso(bootstrap, topic)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                      "enable.partition.eof": True})
        c.assign([TopicPartition(topic, 0, 0)])
        seen, deadline = [], time.monotonic() + 15
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                break  # end of partition
            seen.append(m.value())
        c.close()
        out["read_committed"] = seen
        return out
    return run


def test_kafka_transactions_tool(sl, kafka_ref, tool):
    ours, theirs = on_both(sl, kafka_ref, scenario(tool))
    assert ours == theirs, f"\nshardline: {ours}\nkafka:     {theirs}"
    # What both said, spelled out (so a change on both sides still shows).
    assert ours["lso_open"] == 0
    assert ours["producers_open"][0]["CurrentTransactionStartOffset"] == "0"
    assert ours["producers_open"][0]["LastSequence"] == "2"
    assert ours["list"][0]["TransactionState"] == "Ongoing"
    assert ours["describe"]["TopicPartitions"] == "TOPIC-0"
    assert ours["producers_aborted"][0]["CurrentTransactionStartOffset"] == "None"
    assert ours["lso_aborted"] == 4
    assert ours["abort_unknown"] == (True, True)
    assert ours["lso_end"] == 5
    assert ours["read_committed"] == []
