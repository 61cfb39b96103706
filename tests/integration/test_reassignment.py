"""Replica reassignment, leader elections and replication throttles across
Shardline processes (issue 15), driven by Apache Kafka's own tools
(`kafka-reassign-partitions`, `kafka-leader-election`, Kafka 4.4.0 from the
jars of tests/java/kafka-dist) and checked with confluent-kafka:

- a partition moves from brokers {1,2,3} to {2,3,4} while an idempotent
  acks=all producer writes to it: every acknowledged message is read back
  once and in order, the new replica holds the log and the old one's is gone;
- a throttled reassignment copies no faster than its throttle;
- the preferred replica gets its leadership back from the tool, and by
  itself with automatic balancing;
- unclean leader election only where a topic allows it.
"""

import json
import signal
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from cluster import Cluster, wait_until
from conftest import unique_topic
from java import run_java
from test_replication import partition_state, read_everything

LAG_MS = 2000
TOOLS = "org.apache.kafka.tools."
LOG4J2 = """Configuration:
  Appenders:
    Console: {name: STDERR, target: SYSTEM_ERR, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDERR}]}
"""


@pytest.fixture
def tool(tmp_path):
    conf = tmp_path / "log4j2.yaml"
    conf.write_text(LOG4J2)

    def run(main_class, *args, check=True, timeout=120):
        return run_java("kafka-dist", TOOLS + main_class, args, timeout=timeout, check=check,
                        jvm_args=[f"-Dlog4j2.configurationFile={conf}"])
    return run


def start_cluster(shardline_bin, tmp_path, extra=(), brokers=(4,)):
    c = Cluster(shardline_bin, tmp_path,
                extra_args=["--replica-lag-time-max-ms", str(LAG_MS), *extra])
    c.start()
    for b in brokers:
        c.add_broker(b)
    return c.wait_registered()


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    """Voters 1-3 and broker 4; no automatic balancing (tests elect)."""
    c = start_cluster(shardline_bin, tmp_path, ["--auto-leader-rebalance-enable", "false"])
    try:
        yield c
    finally:
        c.close()


def create_on(bootstrap, topic, replicas, configs=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1,
                              replica_assignment=[replicas],
                              config=configs or {})])[topic].result(30)


class NumberedProducer:
    """An idempotent acks=all producer writing 0, 1, 2, ... to one topic in
    a thread; `acked` is what was acknowledged, in order."""

    def __init__(self, bootstrap, topic, **conf):
        self.topic = topic
        self.acked = []
        self.errors = []
        self.stop = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                           "enable.idempotence": True, "linger.ms": 5,
                           "message.timeout.ms": 60000, **conf})
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def on_delivery(self, err, m):
        if err is None:
            self.acked.append(int(m.value()))
        else:
            self.errors.append(err)

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.p.produce(self.topic, str(i).encode(), on_delivery=self.on_delivery)
                i += 1
            except BufferError:
                pass
            self.p.poll(0.005)

    def finish(self):
        self.stop.set()
        self.t.join(10)
        assert self.p.flush(60) == 0, "messages still unacknowledged after 60 s"
        return self.acked


def broker_config(bootstrap, node, name):
    res = ConfigResource(ConfigResource.Type.BROKER, str(node))
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the answer
    entries = admin.describe_configs([res])[res].result(15)
    e = entries.get(name)
    return None if e is None else e.value


def reassign(tool, tmp_path, bootstrap, topic, replicas, *extra, action="--execute"):
    plan = tmp_path / f"reassign-{topic}.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": replicas}]}))
    return tool("reassign.ReassignPartitionsCommand", "--bootstrap-server", bootstrap,
                "--reassignment-json-file", str(plan), action, *extra, check=False)


def test_a_partition_moves_to_other_brokers_under_load(cluster, tool, tmp_path):
    topic = unique_topic("move")
    boot = cluster.bootstrap()
    create_on(boot, topic, [1, 2, 3], {"min.insync.replicas": "2"})
    producer = NumberedProducer(boot, topic)
    wait_until("the producer is acknowledged", lambda: len(producer.acked) > 500)

    run = reassign(tool, tmp_path, boot, topic, [2, 3, 4], "--throttle", "50000000")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Successfully started partition reassignment" in run.stdout, run.stdout
    # The tool set the throttle on every broker of the move.
    for node in (1, 2, 3, 4):
        assert broker_config(cluster.nodes[node].bootstrap, node,
                             "leader.replication.throttled.rate") == "50000000"

    def verified():
        out = reassign(tool, tmp_path, boot, topic, [2, 3, 4], action="--verify").stdout
        return f"Reassignment of partition {topic}-0 is completed" in out
    wait_until("the reassignment completes", verified, timeout=90, every=1)
    time.sleep(1)  # more produce on the new replicas
    acked = producer.finish()
    assert producer.errors == [], producer.errors[:3]

    leader, replicas, isr = partition_state(boot, topic)[0]
    assert replicas == [2, 3, 4] and isr == [2, 3, 4], (replicas, isr)
    assert leader == 2, "the first target replica leads once broker 1 is removed"
    # --verify removed the throttles it had set.
    assert broker_config(cluster.nodes[1].bootstrap, 1, "leader.replication.throttled.rate") is None
    # The log moved: broker 4 has it, broker 1 deleted its copy.
    wait_until("broker 1 deletes its replica",
               lambda: not (cluster.nodes[1].data_dir / f"{topic}-0").exists())
    assert (cluster.nodes[4].data_dir / f"{topic}-0").exists()
    # Every acknowledged message is there once, in order.
    got = [v for _, _, v in read_everything(cluster.bootstrap(2, 3, 4), topic, 1)]
    assert got == sorted(set(got)), "duplicates or disorder"
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    listed = tool("reassign.ReassignPartitionsCommand", "--bootstrap-server", boot, "--list").stdout
    assert "No partition reassignments found" in listed, listed


def test_a_throttled_reassignment_copies_at_the_throttle(cluster, tool, tmp_path):
    topic = unique_topic("throttled")
    boot = cluster.bootstrap()
    create_on(boot, topic, [1, 2, 3])
    # Small batches: a fetch sends at least one batch whatever the quota.
    p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": 10})
    for i in range(1500):  # ~1.5 MB
        p.produce(topic, str(i).rjust(1000, "0").encode())
    assert p.flush(30) == 0

    started = time.monotonic()
    run = reassign(tool, tmp_path, boot, topic, [1, 2, 4], "--throttle", "300000")
    assert run.returncode == 0, run.stdout + run.stderr
    # 300 kB/s with a one-second burst: about 4 s for 1.5 MB, never under 3.
    time.sleep(2.5)
    assert 4 not in partition_state(boot, topic)[0][2], "broker 4 caught up despite the throttle"
    wait_until("the throttled reassignment completes",
               lambda: partition_state(boot, topic)[0][1] == [1, 2, 4], timeout=60, every=0.25)
    took = time.monotonic() - started
    assert took >= 3, f"1.5 MB moved in {took:.1f} s at a 300 kB/s throttle"
    reassign(tool, tmp_path, boot, topic, [1, 2, 4], action="--verify")
    got = read_everything(cluster.bootstrap(1, 2, 4), topic, 1)
    assert len(got) == 1500


def test_cancelled_and_invalid_reassignments(cluster, tool, tmp_path):
    topic = unique_topic("cancel")
    boot = cluster.bootstrap()
    create_on(boot, topic, [1, 2, 3])
    bad = reassign(tool, tmp_path, boot, topic, [1, 2, 9])
    assert bad.returncode != 0
    assert "Unknown broker id 9" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    # 200 kB behind a 1 kB/s throttle: the move is still going when cancelled.
    p = Producer({"bootstrap.servers": boot, "acks": "all", "batch.num.messages": 10})
    for i in range(200):
        p.produce(topic, str(i).rjust(1000, "0").encode())
    assert p.flush(30) == 0
    run = reassign(tool, tmp_path, boot, topic, [2, 3, 4], "--throttle", "1000")
    assert run.returncode == 0, run.stdout + run.stderr
    listed = tool("reassign.ReassignPartitionsCommand", "--bootstrap-server", boot,
                  "--list").stdout
    assert f"{topic}-0: replicas: 2,3,4,1. adding: 4. removing: 1." in listed, listed
    cancel = reassign(tool, tmp_path, boot, topic, [2, 3, 4], action="--cancel")
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert f"Successfully cancelled partition reassignment for: {topic}-0" in cancel.stdout, \
        cancel.stdout
    leader, replicas, isr = partition_state(boot, topic)[0]
    assert (leader, replicas, isr) == (1, [1, 2, 3], [1, 2, 3])
    wait_until("broker 4 deletes the replica it was given",
               lambda: not (cluster.nodes[4].data_dir / f"{topic}-0").exists())


def test_the_preferred_leader_is_elected_by_the_tool(cluster, tool):
    topic = unique_topic("preferred")
    boot = cluster.bootstrap()
    create_on(boot, topic, [1, 2, 3])
    assert partition_state(boot, topic)[0][0] == 1
    # A controlled shutdown moves the leadership; 1 comes back as follower.
    cluster.nodes[1].terminate()
    wait_until("2 leads", lambda: partition_state(cluster.bootstrap(2, 3), topic)[0][0] == 2)
    cluster.nodes[1].start()
    wait_until("1 is in sync again", lambda: partition_state(boot, topic)[0][2] == [1, 2, 3],
               timeout=30)
    assert partition_state(boot, topic)[0][0] == 2

    def elect(*args):
        return tool("LeaderElectionCommand", "--bootstrap-server", boot,
                    "--election-type", "PREFERRED", *args, check=False)
    out = elect("--topic", topic, "--partition", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Successfully completed leader election (PREFERRED) for partitions {topic}-0" \
        in out.stdout, out.stdout
    assert partition_state(boot, topic)[0][0] == 1
    again = elect("--topic", topic, "--partition", "0")
    assert f"Valid replica already elected for partitions {topic}-0" in again.stdout, again.stdout
    everything = elect("--all-topic-partitions")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    unknown = elect("--topic", unique_topic("nope"), "--partition", "0")
    assert unknown.returncode != 0
    assert "UnknownTopicOrPartitionException" in unknown.stdout + unknown.stderr


def test_leaders_return_to_their_preferred_replica_by_themselves(shardline_bin, tmp_path):
    c = start_cluster(shardline_bin, tmp_path,
                      ["--leader-imbalance-check-interval-seconds", "1"], brokers=())
    try:
        topic = unique_topic("balance")
        create_on(c.bootstrap(), topic, [1, 2, 3])
        c.nodes[1].terminate()
        wait_until("2 leads", lambda: partition_state(c.bootstrap(2, 3), topic)[0][0] == 2)
        c.nodes[1].start()
        wait_until("1 leads again, unasked",
                   lambda: partition_state(c.bootstrap(), topic)[0][0] == 1, timeout=30)
    finally:
        c.close()


def test_unclean_leader_election_only_where_the_topic_allows_it(cluster, tool):
    """Brokers 4 and 5 (not voters, so freezing them keeps the quorum) hold
    two topics; 5 falls out of the ISR, 4 dies: only the topic with
    unclean.leader.election.enable=true gets 5 as leader at once; the other
    stays offline until the tool asks for an unclean election."""
    cluster.add_broker(5)
    cluster.wait_registered()
    boot = cluster.bootstrap(1, 2, 3)
    clean, unclean = unique_topic("clean"), unique_topic("unclean")
    create_on(boot, clean, [4, 5])
    create_on(boot, unclean, [4, 5], {"unclean.leader.election.enable": "true"})
    for t in (clean, unclean):
        wait_until("both in sync", lambda: partition_state(boot, t)[0][2] == [4, 5])
    cluster.nodes[5].proc.send_signal(signal.SIGSTOP)
    try:
        for t in (clean, unclean):
            wait_until("5 leaves the ISR", lambda: partition_state(boot, t)[0][2] == [4],
                       timeout=20)
        cluster.nodes[4].kill9()
    finally:
        cluster.nodes[5].proc.send_signal(signal.SIGCONT)
    wait_until("the unclean topic is led by 5",
               lambda: partition_state(boot, unclean)[0][:3:2] == (5, [5]), timeout=30)
    time.sleep(2)
    assert partition_state(boot, clean)[0][0] == -1, "a clean topic waits for its ISR"
    out = tool("LeaderElectionCommand", "--bootstrap-server", boot, "--election-type", "UNCLEAN",
               "--topic", clean, "--partition", "0", check=False)
    assert f"Successfully completed leader election (UNCLEAN) for partitions {clean}-0" \
        in out.stdout, out.stdout + out.stderr
    assert partition_state(boot, clean)[0][0] == 5
