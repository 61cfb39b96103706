"""Transactions on three Shardline nodes while brokers die (issue 16):
confluent-kafka transactional producers, `__transaction_state` with three
replicas, data topics with three replicas and min.insync.replicas=2.

Each test keeps a history in the style of Jepsen: every transaction with
the values it wrote and the outcome its client saw (committed, aborted, or
unknown: the commit failed and no abort was confirmed), written to
`history.jsonl` beside the broker logs. The checker then reads every
partition as read_committed and read_uncommitted consumers and gives the
verdict: a committed transaction is wholly visible, once, in order; an
aborted one is never visible; an unknown one is all or nothing; no value
is in the log twice; and nothing hangs (each partition's last stable
offset reaches its high watermark, and neither ListTransactions on any
broker nor DescribeTransactions shows the id's transaction unfinished).

Scenarios, each repeated with a kill -9 (or SIGSTOP) per round:
  1. the coordinator dies with a transaction open (data written, not
     committed); the producer then commits it through the new
     coordinator, or a new producer with the same id takes over (its
     InitProducerId aborts it, the old one is fenced), or nobody comes
     back (the new coordinator aborts it when it times out); then it dies
     just as EndTxn is sent, while EndTxn waits unanswered, and with
     PrepareCommit in its own log only;
  2. a data partition's leader dies before the commit, or during it (the
     leader is frozen when EndTxn is sent, so its marker is still to be
     written, and killed then);
  3. the coordinator dies after PrepareCommit (or PrepareAbort) is in its
     log but before every marker is written (a data leader is frozen so
     one cannot be): the new coordinator writes them all;
  4. the coordinator is frozen in that state instead, another completes
     the commit, the producer opens its next transaction, and the old
     coordinator wakes up: it must not commit that one.
"""

import json
import re
import signal
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import (Consumer, ElectionType, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, wait_until
from conftest import unique_topic
from raw import recv_exact
from readback import read_to_end
from test_replication import partition_state

TXN_STATE = "__transaction_state"
PARTITIONS = 3
# A follower not caught up for this long leaves the ISR.
LAG_MS = 2000
ABORT_CHECK_MS = 300
# The producers' transaction timeout: longer than any failover here, so a
# transaction the test means to commit is not aborted under it.
TXN_TIMEOUT_MS = 30000
# The producer that is left alone until its transaction times out.
SHORT_TXN_TIMEOUT_MS = 4000
VALUES_PER_TXN = 6


@pytest.fixture(scope="module")
def cluster(shardline_bin, tmp_path_factory):
    c = Cluster(shardline_bin, tmp_path_factory.mktemp("txn-cluster"), extra_args=[
        "--replica-lag-time-max-ms", str(LAG_MS),
        "--transaction-abort-timed-out-transaction-cleanup-interval-ms", str(ABORT_CHECK_MS),
        "--transaction-state-log-num-partitions", "6",
    ])
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


@pytest.fixture
def healthy(cluster):
    """Every node up, none frozen, before and after each test (a failed
    test leaves the next one a whole cluster)."""
    heal(cluster)
    yield cluster
    heal(cluster)


def heal(cluster):
    for n in cluster.nodes.values():
        if n.is_running():
            n.proc.send_signal(signal.SIGCONT)
        else:
            n.start(60)


def admin(cluster, *ids):
    return AdminClient({"bootstrap.servers": cluster.bootstrap(*ids)})


def create(cluster, topic):
    a = admin(cluster)  # kept until the future resolves
    a.create_topics([NewTopic(topic, PARTITIONS, 3, config={
        "min.insync.replicas": "2"})])[topic].result(30)
    wait_until("all replicas in sync, one leader per node", lambda: all(
        len(isr) == 3 and leader > 0
        for leader, _, isr in partition_state(cluster.bootstrap(), topic).values())
        and len({leader for leader, _, _ in partition_state(cluster.bootstrap(), topic).values()})
        == PARTITIONS)


def all_in_sync(cluster, topic):
    """Every node runs and every replica of `topic` and of the transaction
    state is in sync: a next kill then never takes a partition's last
    in-sync replicas (or the metadata quorum). The data partitions' leaders
    are the preferred ones again, one per node, so that each round finds
    a data leader other than the coordinator."""
    for n in cluster.nodes.values():
        if not n.is_running():
            n.start(60)
    wait_until("every replica back in sync", lambda: all(
        len(isr) == 3 and leader > 0
        for t in (topic, TXN_STATE)
        for leader, _, isr in partition_state(cluster.bootstrap(), t).values()), timeout=60)
    a = admin(cluster)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    try:
        a.elect_leaders(ElectionType.PREFERRED, parts).result(30)
    except KafkaException as e:
        # ELECTION_NOT_NEEDED for partitions led by their preferred replica.
        print(f"preferred election: {e}")
    wait_until("one data leader per node", lambda: len(
        {leader for leader, _, _ in partition_state(cluster.bootstrap(), topic).values()})
        == PARTITIONS, timeout=30)


def kafka_admin(cluster, *ids):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap(*ids), request_timeout_ms=5000)


def call(node, request, version, response_cls, timeout=5):
    """One request to `node` over a connection of its own: kafka-python's
    admin picks a broker for FindCoordinator by itself, a frozen one too."""
    request.with_header(correlation_id=1, client_id="txn-chaos")
    with socket.create_connection(node.address, timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(request.encode(version=version, header=True, framed=True))
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        return response_cls.decode(recv_exact(s, size), version=version, header=True)


def describe(cluster, txn_id, *ids):
    """FindCoordinator (key type 1) for `txn_id`, then DescribeTransactions
    at that coordinator, asking only nodes `ids` (default: every running
    one): (coordinator node, state name, partitions)."""
    from kafka.protocol.admin.transactions import (DescribeTransactionsRequest,
                                                   DescribeTransactionsResponse)
    from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
    ids = ids or [i for i, n in sorted(cluster.nodes.items()) if n.is_running()]
    found = call(cluster.nodes[ids[0]], FindCoordinatorRequest(key=txn_id, key_type=1), 1,
                 FindCoordinatorResponse)
    assert found.error_code == 0, found
    coord = found.node_id
    assert coord in ids, f"coordinator {coord} is not one of {ids}"
    d = call(cluster.nodes[coord], DescribeTransactionsRequest(transactional_ids=[txn_id]), 0,
             DescribeTransactionsResponse).transaction_states[0]
    assert d.error_code == 0, d
    return coord, d.transaction_state, sorted((t.topic, p) for t in d.topics
                                              for p in t.partitions)


def new_producer(cluster, txn_id, timeout_ms=TXN_TIMEOUT_MS):
    p = Producer({"bootstrap.servers": cluster.bootstrap(), "transactional.id": txn_id,
                  "transaction.timeout.ms": timeout_ms, "linger.ms": 0,
                  "retry.backoff.ms": 100, "socket.timeout.ms": min(10000, timeout_ms),
                  # A dead coordinator is retried at most every second
                  # (librdkafka's default backs off to 10 s, and asks for
                  # the new coordinator only after a reconnect attempt).
                  "reconnect.backoff.max.ms": 1000})
    # InitProducerId is retried through a failover (librdkafka raises a
    # retriable timeout when the coordinator does not answer in time).
    deadline = time.monotonic() + 90
    while True:
        try:
            p.init_transactions(30)
            return p
        except KafkaException as e:
            if not e.args[0].retriable() or time.monotonic() > deadline:
                raise


class TxnHistory:
    """Each transaction's values, where they went, and the outcome its
    client saw; the checker's verdict."""

    def __init__(self, path, topic):
        self.path = path
        self.topic = topic
        self.txns = []
        self.events = []

    def begin(self, label):
        t = {"n": len(self.txns), "label": label, "values": [], "outcome": None,
             "error": None, "t_begin": time.monotonic()}
        self.txns.append(t)
        return t

    def note(self, **e):
        e["t"] = time.monotonic()
        self.events.append(e)
        print(json.dumps(e))
        # Written as it happens: a test that fails before the verdict
        # leaves its history too.
        with open(self.path, "a") as f:
            f.write(json.dumps(e) + "\n")

    def produce(self, p, t, count=VALUES_PER_TXN, start=None):
        """`count` values of transaction `t`, spread over the partitions."""
        base = len(t["values"]) if start is None else start
        for j in range(base, base + count):
            part = j % PARTITIONS
            v = f"{t['n']}:{j}"
            t["values"].append((part, v))
            p.produce(self.topic, v.encode(), partition=part)
            p.poll(0)

    def end(self, t, outcome, error=None):
        t["outcome"] = outcome
        t["error"] = str(error) if error is not None else None
        t["t_end"] = time.monotonic()

    def verdict(self, committed_reads, uncommitted_reads):
        with open(self.path, "a") as f:
            for t in self.txns:
                f.write(json.dumps({"op": "txn", **t}) + "\n")
            for iso, reads in (("read_committed", committed_reads),
                               ("read_uncommitted", uncommitted_reads)):
                f.write(json.dumps({"op": "read", "isolation": iso,
                                    "reads": {str(k): v for k, v in reads.items()}}) + "\n")
        seen = {}
        for part, vals in committed_reads.items():
            for i, v in enumerate(vals):
                seen.setdefault(v, []).append((part, i))
        logged = {}
        for part, vals in uncommitted_reads.items():
            for v in vals:
                logged[v] = logged.get(v, 0) + 1
        outcomes = {"committed": [], "aborted": [], "unknown": []}
        for t in self.txns:
            outcomes[t["outcome"]].append(t)
        lost, visible_aborted, partial, misplaced = [], [], [], []
        for t in self.txns:
            vals = [v for _, v in t["values"]]
            present = [v for v in vals if v in seen]
            if t["outcome"] == "committed" and len(present) < len(vals):
                lost.append((t["n"], t["label"], sorted(set(vals) - set(present))[:5]))
            if t["outcome"] == "aborted" and present:
                visible_aborted.append((t["n"], t["label"], present[:5]))
            if t["outcome"] == "unknown" and 0 < len(present) < len(vals):
                partial.append((t["n"], t["label"], len(present), len(vals)))
            for part, v in t["values"]:
                if v in seen and seen[v][0][0] != part:
                    misplaced.append(v)
        known = {v for t in self.txns for _, v in t["values"]}
        duplicated = sorted(v for v, where in seen.items() if len(where) > 1)
        logged_twice = sorted(v for v, n in logged.items() if n > 1)
        strays = sorted(v for v in list(seen) + list(logged) if v not in known)
        # One producer at a time, transactions one after another: values
        # are read in the order (transaction, index) in every partition.
        disorder = []
        for part, vals in committed_reads.items():
            keys = [tuple(int(x) for x in v.split(":")) for v in vals]
            disorder += [(part, a, b) for a, b in zip(keys, keys[1:]) if b <= a]
        committed_values = {v for t in outcomes["committed"] for _, v in t["values"]}
        not_logged = sorted(v for v in committed_values if v not in logged)
        unknown_visible = sum(1 for t in outcomes["unknown"]
                              if any(v in seen for _, v in t["values"]))
        lines = [
            f"history: {len(self.txns)} transactions, {len(self.events)} events in {self.path}",
            f"  committed {len(outcomes['committed'])}, aborted {len(outcomes['aborted'])}, "
            f"unknown {len(outcomes['unknown'])} ({unknown_visible} of them visible)",
            f"  read_committed {sum(len(v) for v in committed_reads.values())} values, "
            f"read_uncommitted {sum(len(v) for v in uncommitted_reads.values())}",
            f"  committed, not (wholly) visible: {len(lost)} {lost[:5]}",
            f"  aborted, visible: {len(visible_aborted)} {visible_aborted[:5]}",
            f"  unknown, partly visible: {len(partial)} {partial[:5]}",
            f"  read twice (read_committed): {len(duplicated)} {duplicated[:5]}",
            f"  in the log twice (read_uncommitted): {len(logged_twice)} {logged_twice[:5]}",
            f"  committed but not in the log: {len(not_logged)} {not_logged[:5]}",
            f"  in another partition than written: {len(misplaced)} {misplaced[:5]}",
            f"  out of order within a partition: {len(disorder)} {disorder[:5]}",
            f"  never written by this test: {len(strays)} {strays[:5]}",
        ]
        problems = (lost or visible_aborted or partial or duplicated or logged_twice
                    or not_logged or misplaced or disorder or strays)
        lines.append("VERDICT: " + ("FAIL" if problems else "PASS"))
        print("\n" + "\n".join(lines))
        return not problems, lines

    def count(self, outcome):
        return sum(1 for t in self.txns if t["outcome"] == outcome)


def commit(p, t, history, abort=False, timeout=60):
    """End transaction `t` (commit, or abort when `abort`) and record what
    the client saw: the commit went through; it failed and the abort that
    followed did (aborted); or neither is known (unknown). Returns whether
    the producer can go on (False: a fatal error, make a new one)."""
    call = p.abort_transaction if abort else p.commit_transaction
    err = None
    for _ in range(5):
        try:
            call(timeout)
            history.end(t, "aborted" if abort else "committed", err)
            return True
        except KafkaException as e:
            err = e.args[0]
            history.note(op="end-error", n=t["n"], abort=abort, error=str(err),
                         retriable=err.retriable(), abortable=err.txn_requires_abort(),
                         fatal=err.fatal())
            if not err.retriable():
                break
    if not abort and not err.fatal() and err.txn_requires_abort():
        try:
            p.abort_transaction(timeout)
            history.end(t, "aborted", err)
            return True
        except KafkaException as e:
            err = e.args[0]
    history.end(t, "unknown", err)
    return False


def run_committed(p, history, label, count=2):
    """`count` ordinary transactions."""
    for _ in range(count):
        t = history.begin(label)
        p.begin_transaction()
        history.produce(p, t)
        assert commit(p, t, history), t
        assert t["outcome"] == "committed", t


def open_txn(p, history, label):
    """A transaction with its data written (acknowledged by the ISR) and
    no commit yet."""
    t = history.begin(label)
    p.begin_transaction()
    history.produce(p, t)
    assert p.flush(30) == 0
    return t


def watermarks(bootstrap, topic, isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm",
                  "isolation.level": isolation})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(PARTITIONS)]
    finally:
        c.close()


def lso_reaches_hw(cluster, topic, timeout=45):
    """Every partition's last stable offset reaches its high watermark: no
    transaction is left open on it."""
    def check():
        hw = watermarks(cluster.bootstrap(), topic, "read_uncommitted")
        lso = watermarks(cluster.bootstrap(), topic, "read_committed")
        return (hw, lso) if hw == lso else None
    return wait_until("every last stable offset at its high watermark", check, timeout=timeout)


def read_all(bootstrap, topic, isolation, timeout=60):
    """Every value of every partition from offset 0 to its end (the high
    watermark, or for read_committed the last stable offset) as a
    consumer with `isolation` reads them: {partition: [value]}."""
    got = {p: [] for p in range(PARTITIONS)}
    for m in read_to_end(bootstrap, topic, PARTITIONS, isolation, timeout,
                         config={"fetch.wait.max.ms": 100}):
        got[m.partition()].append(m.value().decode())
    return got


def nothing_hangs(cluster, txn_ids):
    """No coordinator lists one of `txn_ids` as open (ListTransactions,
    every broker), and each id's state is settled (DescribeTransactions)."""
    a = kafka_admin(cluster)
    try:
        def settled():
            listed = [(b, t.transactional_id, t.state.value)
                      for b, ts in a.list_transactions().items() for t in ts
                      if t.transactional_id in txn_ids]
            hanging = [x for x in listed if x[2] in ("Ongoing", "PrepareCommit", "PrepareAbort",
                                                     "PrepareEpochFence")]
            states = {i: d.state.value for i, d in a.describe_transactions(txn_ids).items()}
            ok = not hanging and all(
                s in ("Empty", "CompleteCommit", "CompleteAbort") for s in states.values())
            return (listed, states) if ok else None
        found = wait_until("no hanging transaction", settled, timeout=30)
        print(f"settled: {found}")
    finally:
        a.close()


def judge(cluster, topic, history, txn_ids):
    hw, lso = lso_reaches_hw(cluster, topic)
    nothing_hangs(cluster, txn_ids)
    committed = read_all(cluster.bootstrap(), topic, "read_committed")
    uncommitted = read_all(cluster.bootstrap(), topic, "read_uncommitted")
    ok, lines = history.verdict(committed, uncommitted)
    print(f"high watermarks {hw}, last stable offsets {lso}")
    assert ok, "\n".join(lines)
    return committed


def data_leader_other_than(cluster, topic, node):
    """(partition, leader) of a partition of `topic` not led by `node`."""
    state = partition_state(cluster.bootstrap(), topic)
    for part, (leader, _, _) in sorted(state.items()):
        if leader != node:
            return part, leader
    raise AssertionError(f"every partition of {topic} is led by {node}: {state}")


def others(cluster, *nodes):
    return [i for i in sorted(cluster.nodes) if i not in nodes]


def test_coordinator_killed_with_a_transaction_open(healthy, tmp_path):
    """The transaction coordinator is killed while a transaction is open
    (its data written and acknowledged, no EndTxn yet). The broker that
    takes over `__transaction_state` loads the transaction as Ongoing
    (as Kafka's does) and then: the same producer commits it ("continue":
    Kafka commits it); a new producer with the same id calls
    InitProducerId ("new-producer": the open one is aborted, the old
    producer is fenced); or no one comes back ("timeout": it is aborted
    when it times out). Last, the coordinator is killed just as EndTxn
    is sent ("in-end-txn"), while EndTxn waits for an answer
    ("end-txn-unanswered"), and with PrepareCommit in its log alone
    ("prepare-unreplicated")."""
    cluster = healthy
    topic = unique_topic("txc")
    create(cluster, topic)
    txn_id = f"tx-{topic}"
    history = TxnHistory(tmp_path / "history.jsonl", topic)
    p = new_producer(cluster, txn_id)
    zombies = []
    for mode in ("continue", "new-producer", "timeout", "in-end-txn", "end-txn-unanswered",
                 "prepare-unreplicated"):
        if mode == "timeout":
            p = new_producer(cluster, txn_id, timeout_ms=SHORT_TXN_TIMEOUT_MS)
        run_committed(p, history, f"before-{mode}")
        t = open_txn(p, history, f"open-at-kill-{mode}")
        coord, state, parts = describe(cluster, txn_id)
        assert state == "Ongoing" and parts == [(topic, i) for i in range(PARTITIONS)], \
            (state, parts)
        in_end_txn = mode in ("in-end-txn", "end-txn-unanswered", "prepare-unreplicated")
        if in_end_txn:
            # EndTxn on its way or being handled when the coordinator
            # dies ("in-end-txn": PrepareCommit may or may not be in the
            # log); sent and never answered ("end-txn-unanswered": the
            # coordinator is frozen first); or PrepareCommit in the
            # coordinator's log only ("prepare-unreplicated": the other
            # two nodes, its followers, are frozen, so it waits for them).
            # The client retries EndTxn with the new coordinator, which
            # has the transaction Ongoing (and commits it) or prepared
            # (and completes it); the outcome is what the client says. A
            # PrepareCommit only the dead node had is cut from its log
            # when it rejoins.
            frozen = {"in-end-txn": [], "end-txn-unanswered": [coord],
                      "prepare-unreplicated": others(cluster, coord)}[mode]
            for f in frozen:
                cluster.nodes[f].proc.send_signal(signal.SIGSTOP)
            if mode == "prepare-unreplicated":
                # The followers' fetches parked at the coordinator are
                # answered (empty) within their 500 ms wait, and no new
                # ones come: an answer carrying PrepareCommit would wait
                # in a frozen follower's socket and be appended when it
                # resumes.
                time.sleep(1.5)
            ender = threading.Thread(target=commit, args=(p, t, history))
            ender.start()
            time.sleep(0.002 if mode == "in-end-txn" else 1)
        cluster.nodes[coord].kill9()
        history.note(op="kill", node=coord, role="coordinator", mode=mode, n=t["n"])
        if in_end_txn:
            for f in frozen:
                if cluster.nodes[f].is_running():
                    cluster.nodes[f].proc.send_signal(signal.SIGCONT)
            ender.join(120)
            assert not ender.is_alive(), "commit_transaction did not return"
            if t["outcome"] == "unknown":
                p = new_producer(cluster, txn_id)
        elif mode == "continue":
            # More data to every partition (some led by the dead node):
            # the producer finds their new leaders, then EndTxn finds the
            # new coordinator.
            history.produce(p, t)
            commit(p, t, history)
            assert t["outcome"] == "committed", \
                f"Kafka's new coordinator commits the loaded transaction: {t}"
        elif mode == "new-producer":
            zombies.append(p)
            p = new_producer(cluster, txn_id)
            history.end(t, "aborted")
            run_committed(p, history, "after-new-producer", count=1)
            # The old producer's transaction is gone, and it is fenced.
            with pytest.raises(KafkaException) as e:
                zombies[-1].commit_transaction(30)
            history.note(op="zombie-commit", error=str(e.value.args[0]),
                         fatal=e.value.args[0].fatal())
            assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
        else:
            zombies.append(p)
            # Nobody ends it: the new coordinator aborts it on its
            # timeout, and every last stable offset moves past it.
            lso_reaches_hw(cluster, topic, timeout=SHORT_TXN_TIMEOUT_MS / 1000 + 30)
            history.end(t, "aborted")
            _, state, _ = describe(cluster, txn_id, *others(cluster, coord))
            assert state == "CompleteAbort", state
            history.note(op="timed-out", n=t["n"], state=state)
            p = new_producer(cluster, txn_id)
        history.note(op="outcome", n=t["n"], outcome=t["outcome"], error=t["error"])
        all_in_sync(cluster, topic)
        if mode == "prepare-unreplicated":
            # The restarted node's PrepareCommit (or its failed retry) was
            # not the new leader's: it cut it to rejoin.
            log = cluster.nodes[coord].log_text()
            restarted = log[log.rindex("[harness] start #"):]
            assert re.search(TXN_STATE + r"-\d+: truncated to offset", restarted), \
                "the unreplicated PrepareCommit was not cut from the old coordinator's log"
    run_committed(p, history, "last")
    judge(cluster, topic, history, [txn_id])
    assert history.count("committed") >= 10


def test_data_leader_killed_before_and_during_the_commit(healthy, tmp_path):
    """A data partition's leader (not the coordinator) is killed after the
    transaction wrote to it: before EndTxn ("before-commit": the producer
    writes more, to the new leader, and commits), or while the markers are
    written ("during-commit": the leader is frozen when EndTxn is sent, so
    the coordinator's marker for its partition is still to be written when
    it is killed; the marker must go to the new leader)."""
    cluster = healthy
    topic = unique_topic("txd")
    create(cluster, topic)
    txn_id = f"tx-{topic}"
    history = TxnHistory(tmp_path / "history.jsonl", topic)
    p = new_producer(cluster, txn_id)
    for mode in ("before-commit", "during-commit", "before-commit", "during-commit"):
        run_committed(p, history, f"before-{mode}")
        t = open_txn(p, history, f"leader-killed-{mode}")
        coord, _, _ = describe(cluster, txn_id)
        part, leader = data_leader_other_than(cluster, topic, coord)
        if mode == "before-commit":
            cluster.nodes[leader].kill9()
            history.note(op="kill", node=leader, role=f"leader of {part}", mode=mode, n=t["n"])
            history.produce(p, t)
            ok = commit(p, t, history)
        else:
            node = cluster.nodes[leader]
            node.proc.send_signal(signal.SIGSTOP)
            history.note(op="freeze", node=leader, role=f"leader of {part}", n=t["n"])
            # EndTxn is answered once PrepareCommit is in the ISR's logs
            # (the frozen node leaves the ISR after LAG_MS); the marker of
            # the frozen leader's partition cannot be written yet.
            ok = commit(p, t, history)
            _, state, _ = describe(cluster, txn_id, *others(cluster, leader))
            history.note(op="kill", node=leader, role=f"leader of {part}", mode=mode,
                         n=t["n"], state_at_kill=state)
            node.kill9()
        history.note(op="outcome", n=t["n"], outcome=t["outcome"], error=t["error"])
        if not ok:
            p = new_producer(cluster, txn_id)
        all_in_sync(cluster, topic)
    run_committed(p, history, "last")
    judge(cluster, topic, history, [txn_id])
    assert history.count("committed") >= 10


def test_coordinator_killed_between_prepare_and_complete(healthy, tmp_path):
    """EndTxn is answered once PrepareCommit (or PrepareAbort) is in the
    log; the markers follow. A data partition's leader is frozen so its
    marker cannot be written, the coordinator is seen in Prepare*, and is
    killed. The broker that takes over `__transaction_state` finds the
    transaction prepared and writes every marker (Kafka: the
    transactions pending completion of loadTransactionsForTxnTopicPartition)."""
    cluster = healthy
    topic = unique_topic("txp")
    create(cluster, topic)
    txn_id = f"tx-{topic}"
    history = TxnHistory(tmp_path / "history.jsonl", topic)
    p = new_producer(cluster, txn_id)
    for mode in ("commit", "abort", "commit"):
        run_committed(p, history, f"before-{mode}")
        t = open_txn(p, history, f"prepared-at-kill-{mode}")
        coord, _, _ = describe(cluster, txn_id)
        part, leader = data_leader_other_than(cluster, topic, coord)
        frozen = cluster.nodes[leader]
        frozen.proc.send_signal(signal.SIGSTOP)
        try:
            ok = commit(p, t, history, abort=(mode == "abort"))
            assert ok, t
            _, state, _ = describe(cluster, txn_id, coord)
            want = "PrepareCommit" if mode == "commit" else "PrepareAbort"
            assert state == want, f"the frozen leader's marker is still to be written: {state}"
            cluster.nodes[coord].kill9()
            history.note(op="kill", node=coord, role="coordinator", frozen=leader,
                         state_at_kill=state, n=t["n"])
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        done = "CompleteCommit" if mode == "commit" else "CompleteAbort"
        new_coord, state, _ = wait_until(
            f"the new coordinator completes the transaction ({done})",
            lambda: (d := describe(cluster, txn_id, *others(cluster, coord)))[1] == done and d,
            timeout=60)
        assert new_coord != coord
        history.note(op="completed", n=t["n"], coordinator=new_coord, state=state)
        all_in_sync(cluster, topic)
    run_committed(p, history, "last")
    judge(cluster, topic, history, [txn_id])
    assert history.count("aborted") == 1 and history.count("unknown") == 0


def test_a_frozen_coordinator_comes_back_fenced(healthy, tmp_path):
    """The coordinator is frozen (not killed) with PrepareCommit logged and
    a marker still to write (a data leader was frozen through EndTxn).
    Another broker takes over, completes the commit, and the producer
    opens its next transaction, with the same producer epoch (librdkafka
    keeps its epoch across transactions). Then the old coordinator wakes
    up with its marker task in flight: it must notice it no longer leads
    `__transaction_state` before it writes anything, and a marker it
    still sends carries its old coordinator epoch, which partition leaders
    refuse: the open transaction is not committed by a zombie's marker,
    and a metadata controller that was frozen with it does not act on
    what it saw before its pause."""
    cluster = healthy
    topic = unique_topic("txf")
    create(cluster, topic)
    txn_id = f"tx-{topic}"
    history = TxnHistory(tmp_path / "history.jsonl", topic)
    p = new_producer(cluster, txn_id)
    for round_ in range(2):
        run_committed(p, history, f"before-{round_}")
        t = open_txn(p, history, f"prepared-at-freeze-{round_}")
        coord, _, _ = describe(cluster, txn_id)
        part, leader = data_leader_other_than(cluster, topic, coord)
        old = cluster.nodes[coord]
        cluster.nodes[leader].proc.send_signal(signal.SIGSTOP)
        try:
            assert commit(p, t, history), t
            _, state, _ = describe(cluster, txn_id, coord)
            assert state == "PrepareCommit", state
            # Two of three voters may not be frozen at once (no metadata
            # quorum): the coordinator freezes as the data leader wakes.
            old.proc.send_signal(signal.SIGSTOP)
            history.note(op="freeze", node=coord, role="coordinator", n=t["n"], state=state)
        finally:
            cluster.nodes[leader].proc.send_signal(signal.SIGCONT)
        try:
            live = others(cluster, coord)
            new_coord, state, _ = wait_until(
                "another broker completes the commit",
                lambda: (d := describe(cluster, txn_id, *live))[1] == "CompleteCommit" and d,
                timeout=60)
            history.note(op="completed", n=t["n"], coordinator=new_coord)
            # The next transaction, open while the zombie wakes.
            nxt = history.begin(f"open-at-wake-{round_}")
            p.begin_transaction()
            history.produce(p, nxt)
            assert p.flush(30) == 0
        finally:
            old.proc.send_signal(signal.SIGCONT)
        history.note(op="wake", node=coord, n=nxt["n"])
        wait_until("the old coordinator resigns", lambda: re.search(
            TXN_STATE + r"-\d+: no longer coordinating", old.log_text()[-20000:]), timeout=30)
        time.sleep(2)
        hw = watermarks(cluster.bootstrap(), topic, "read_uncommitted")
        lso = watermarks(cluster.bootstrap(), topic, "read_committed")
        history.note(op="watermarks", hw=hw, lso=lso)
        assert all(s < h for s, h in zip(lso, hw)), \
            f"the open transaction is not stable: last stable offsets {lso}, high {hw}"
        refused = old.log_text().count("TransactionCoordinatorFenced")
        history.note(op="zombie-markers", refused_seen_by_zombie=refused)
        commit(p, nxt, history)
        assert nxt["outcome"] == "committed", nxt
        all_in_sync(cluster, topic)
    run_committed(p, history, "last")
    judge(cluster, topic, history, [txn_id])
    assert history.count("aborted") == 0 and history.count("unknown") == 0
