"""The consumer group protocol of KIP-848 (`group.protocol=consumer`) with
confluent-kafka (librdkafka): broker-side assignment, incremental
reconciliation, members leaving, committed offsets, ConsumerGroupDescribe."""

import time
import uuid

import pytest

from conftest import Broker, assert_delivered, create_topic, poll_until, produce, unique_topic

ARGS = [
    "--group-consumer-heartbeat-interval-ms", "200",
    "--group-consumer-session-timeout-ms", "3000",
]


@pytest.fixture(scope="module")
def cbroker(shardline_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("broker-kip848")
    b = Broker(shardline_bin, base / "data", base / "broker.log", extra_args=ARGS,
               name="test_groups_consumer_protocol")
    try:
        b.start()
        yield b
    finally:
        b.close()


def gid():
    return f"cg-{uuid.uuid4().hex[:10]}"


def consumer(bootstrap, group, **extra):
    from confluent_kafka import Consumer
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return Consumer(conf)


class Tracker:
    def __init__(self):
        self.owned = set()

    def on_assign(self, c, parts):
        self.owned |= {p.partition for p in parts}

    def on_revoke(self, c, parts):
        self.owned -= {p.partition for p in parts}


def test_two_members_split_then_one_takes_all(cbroker):
    bs = cbroker.bootstrap
    topic = unique_topic("kip848")
    create_topic(bs, topic, partitions=4)
    group = gid()
    t1, t2 = Tracker(), Tracker()
    c1, c2 = consumer(bs, group), consumer(bs, group)
    got = []
    closed2 = False
    try:
        c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke)
        assert poll_until([c1], lambda: len(t1.owned) == 4), f"c1 owns {t1.owned}"
        c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke)
        assert poll_until([c1, c2], lambda: len(t1.owned) == 2 and len(t2.owned) == 2), \
            f"no 2+2 split: c1={t1.owned} c2={t2.owned}"
        assert t1.owned | t2.owned == {0, 1, 2, 3}
        res = produce(bs, topic, [{"value": f"m{i}".encode(), "partition": i % 4}
                                  for i in range(400)])
        assert_delivered(res)
        assert poll_until([c1, c2], lambda: len(got) >= 400, sink=got)
        poll_until([c1, c2], lambda: False, timeout=1.0, sink=got)
        values = sorted(m.value().decode() for _, m in got)
        assert values == sorted(f"m{i}" for i in range(400)), "missing or duplicate messages"
        assert {m.partition() for c, m in got if c is c1} == t1.owned
        assert {m.partition() for c, m in got if c is c2} == t2.owned
        # Commit with member id + epoch, then leave; c1 takes everything.
        c2.commit(asynchronous=False)
        c2.close()
        closed2 = True
        assert poll_until([c1], lambda: len(t1.owned) == 4, timeout=20), f"c1 owns {t1.owned}"
        res = produce(bs, topic, [{"value": f"n{i}".encode(), "partition": i % 4}
                                  for i in range(40)])
        assert_delivered(res)
        later = []
        assert poll_until([c1], lambda: len(later) >= 40, sink=later)
        # c2's commit holds: c1 re-reads none of c2's old messages.
        assert sorted(m.value().decode() for _, m in later) == sorted(f"n{i}" for i in range(40))
        c1.commit(asynchronous=False)
    finally:
        c1.close()
        if not closed2:
            c2.close()


def test_describe_consumer_group(cbroker):
    from confluent_kafka.admin import AdminClient
    bs = cbroker.bootstrap
    topic = unique_topic("kip848d")
    create_topic(bs, topic, partitions=2)
    group = gid()
    t = Tracker()
    c = consumer(bs, group)
    try:
        c.subscribe([topic], on_assign=t.on_assign, on_revoke=t.on_revoke)
        assert poll_until([c], lambda: len(t.owned) == 2)
        admin = AdminClient({"bootstrap.servers": bs})
        fut = admin.describe_consumer_groups([group])[group]
        d = fut.result(timeout=10)
        assert d.group_id == group
        assert len(d.members) == 1
        parts = {tp.partition for tp in d.members[0].assignment.topic_partitions}
        assert parts == {0, 1}
        listed = admin.list_consumer_groups().result(timeout=10)
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1, listed.valid
        if hasattr(mine[0], "type"):
            from confluent_kafka import ConsumerGroupType
            assert mine[0].type == ConsumerGroupType.CONSUMER
    finally:
        c.close()


def test_range_assignor_chosen_by_the_members(cbroker):
    bs = cbroker.bootstrap
    topic = unique_topic("kip848r")
    create_topic(bs, topic, partitions=4)
    group = gid()
    t1, t2 = Tracker(), Tracker()
    c1 = consumer(bs, group, **{"group.remote.assignor": "range"})
    c2 = consumer(bs, group, **{"group.remote.assignor": "range"})
    try:
        c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke)
        c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke)
        assert poll_until([c1, c2], lambda: len(t1.owned) == 2 and len(t2.owned) == 2), \
            f"no 2+2 split: c1={t1.owned} c2={t2.owned}"
        assert sorted([sorted(t1.owned), sorted(t2.owned)]) == [[0, 1], [2, 3]]
    finally:
        c1.close()
        c2.close()
