"""The consumer group protocol of KIP-848 (`group.protocol=consumer`) with
confluent-kafka (librdkafka): broker-side assignment, incremental
reconciliation, members leaving, committed offsets, ConsumerGroupDescribe."""

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


def test_regex_subscription_takes_topics_created_later(cbroker):
    """librdkafka sends `^prefix-.*` as SubscribedTopicRegex (Heartbeat v1);
    the broker resolves it, and a matching topic created while the group
    runs is assigned at the next heartbeat. Non-matching topics stay out."""
    bs = cbroker.bootstrap
    prefix = unique_topic("kip848re")
    first, later, other = f"{prefix}-a", f"{prefix}-b", f"x-{prefix}-c"
    create_topic(bs, first, partitions=2)
    create_topic(bs, other, partitions=1)
    owned = set()

    def on_assign(c, parts):
        owned.update((p.topic, p.partition) for p in parts)

    def on_revoke(c, parts):
        owned.difference_update((p.topic, p.partition) for p in parts)

    c = consumer(bs, gid(), **{"topic.metadata.refresh.interval.ms": 1000})
    got = []
    try:
        c.subscribe([f"^{prefix}-.*"], on_assign=on_assign, on_revoke=on_revoke)
        assert poll_until([c], lambda: owned == {(first, 0), (first, 1)}, sink=got), owned
        create_topic(bs, later, partitions=1)
        want = {(first, 0), (first, 1), (later, 0)}
        assert poll_until([c], lambda: owned == want, timeout=30, sink=got), owned
        for t in (first, later, other):
            assert_delivered(produce(bs, t, [{"value": f"{t}:{i}".encode()} for i in range(10)]))
        assert poll_until([c], lambda: len(got) >= 20, sink=got)
        poll_until([c], lambda: False, timeout=1.0, sink=got)
        topics = sorted({m.topic() for _, m in got})
        assert topics == [first, later], topics
        assert len(got) == 20
    finally:
        c.close()


def test_group_state_survives_kill9_without_a_rebalance(broker_factory):
    """Membership, epochs and assignments are in the group log before a
    heartbeat is answered: after kill -9 and a restart the members carry on
    with their epochs. Had the broker forgotten them, their next heartbeat
    would be fenced (UNKNOWN_MEMBER_ID) and librdkafka would revoke (lose)
    its partitions and rejoin."""
    from confluent_kafka.admin import AdminClient
    b = broker_factory(extra_args=ARGS)
    bs = b.bootstrap
    topic = unique_topic("kip848k9")
    create_topic(bs, topic, partitions=2)
    group = gid()
    events = []

    class Logged(Tracker):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_assign(self, c, parts):
            events.append((self.name, "assign", sorted(p.partition for p in parts)))
            super().on_assign(c, parts)

        def on_revoke(self, c, parts):
            events.append((self.name, "revoke", sorted(p.partition for p in parts)))
            super().on_revoke(c, parts)

    t1, t2 = Logged("c1"), Logged("c2")
    c1, c2 = consumer(bs, group), consumer(bs, group)
    got = []
    try:
        c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke, on_lost=t1.on_revoke)
        assert poll_until([c1], lambda: len(t1.owned) == 2)
        c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke, on_lost=t2.on_revoke)
        assert poll_until([c1, c2], lambda: len(t1.owned) == 1 and len(t2.owned) == 1), events
        admin = AdminClient({"bootstrap.servers": bs})
        before = admin.describe_consumer_groups([group])[group].result(timeout=10)
        members = {m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                   for m in before.members}
        settled = len(events)
        b.kill9()
        b.restart()
        # Heartbeats (every 200 ms) reach the restarted broker.
        poll_until([c1, c2], lambda: False, timeout=3.0, sink=got)
        assert_delivered(produce(bs, topic, [{"value": f"after{i}".encode(), "partition": i % 2}
                                             for i in range(20)]))
        assert poll_until([c1, c2], lambda: len(got) >= 20, sink=got)
        assert events[settled:] == [], f"members were rebalanced after the restart: {events[settled:]}"
        # A new admin client: the old one's connection died with the broker.
        admin = AdminClient({"bootstrap.servers": bs})
        after = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert {m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                for m in after.members} == members
        assert sorted(m.value().decode() for _, m in got) == sorted(f"after{i}" for i in range(20))
    finally:
        c1.close()
        c2.close()
