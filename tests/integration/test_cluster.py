"""A cluster of three Shardline processes: one metadata quorum (raft-rs over
the controller listeners), partitions placed across brokers, clients routed
to leaders, the active controller killed and replaced, a fourth broker
joining, a silent broker fenced."""

import json
import shutil
import statistics
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, describe_cluster, wait_until
from conftest import produce, unique_topic
import raw

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
NOT_LEADER_OR_FOLLOWER = 6


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path)
    try:
        yield c.start().wait_registered()
    finally:
        c.close()


def create(bootstrap, topic, partitions, rf=1, assignment=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    nt = (NewTopic(topic, num_partitions=len(assignment), replication_factor=-1,
                   replica_assignment=assignment) if assignment
          else NewTopic(topic, num_partitions=partitions, replication_factor=rf))
    a.create_topics([nt])[topic].result(30)


def leaders(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in t.partitions.items()}


def consume_all(bootstrap, topic, expected, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    return got


def test_topics_are_seen_by_all_and_clients_follow_the_leaders(cluster):
    topic = unique_topic("spread")
    create(cluster.nodes[2].bootstrap, topic, 6)
    # Every node answers the same placement, over all three brokers.
    views = [leaders(cluster.nodes[i].bootstrap, topic) for i in (1, 2, 3)]
    assert views[0] == views[1] == views[2]
    assert {l for l, _, _ in views[0].values()} == {1, 2, 3}
    for p, (leader, replicas, isr) in views[0].items():
        assert replicas == [leader] and isr == [leader]
    # confluent-kafka bootstrapped at node 1 writes to partitions led by all.
    msgs = [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": i % 6}
            for i in range(60)]
    results = produce(cluster.nodes[1].bootstrap, topic, msgs)
    assert all(r["error"] is None for r in results), results[:3]
    assert {r["partition"] for r in results} == set(range(6))
    # ... and a group bootstrapped at node 3 reads them all back.
    got = consume_all(cluster.nodes[3].bootstrap, topic, 60, unique_topic("g"))
    assert sorted(v for _, _, v in got) == sorted(m["value"] for m in msgs)


def test_kafka_python_and_kcat_across_brokers(cluster):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = unique_topic("kp")
    create(cluster.nodes[3].bootstrap, topic, 3)
    p = KafkaProducer(bootstrap_servers=cluster.nodes[2].bootstrap, acks="all")
    for i in range(30):
        p.send(topic, value=b"x%d" % i, partition=i % 3)
    p.flush(30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=cluster.nodes[1].bootstrap, consumer_timeout_ms=5000,
                      auto_offset_reset="earliest")
    c.assign([TopicPartition(topic, i) for i in range(3)])
    values = sorted(m.value for m in c)
    c.close()
    assert values == sorted(b"x%d" % i for i in range(30))
    if KCAT:
        out = subprocess.run([KCAT, "-b", cluster.nodes[1].bootstrap, "-L", "-J"],
                             capture_output=True, timeout=60, check=True).stdout
        md = json.loads(out)
        assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3]
        out = subprocess.run([KCAT, "-b", cluster.nodes[1].bootstrap, "-C", "-t", topic,
                              "-o", "beginning", "-e", "-q"],
                             capture_output=True, timeout=60, check=True).stdout
        assert sorted(out.split()) == sorted(b"x%d" % i for i in range(30))


def test_a_request_to_a_broker_that_does_not_lead_gets_not_leader(cluster):
    topic = unique_topic("nl")
    create(cluster.nodes[1].bootstrap, topic, 1, assignment=[[2]])
    assert leaders(cluster.nodes[1].bootstrap, topic)[0][0] == 2
    s = raw.connect(cluster.nodes[1])
    try:
        r = raw.produce_v8(s, topic, 0, raw.record_batch([(b"k", b"v")]))
    finally:
        s.close()
    assert r["error"] == NOT_LEADER_OR_FOLLOWER, r

    # Node 2 applies the new topic a moment after node 1 answered its
    # creation; until then it answers NOT_LEADER_OR_FOLLOWER too, and a
    # client retries, as this does.
    def produce_at_leader():
        s = raw.connect(cluster.nodes[2])
        try:
            r = raw.produce_v8(s, topic, 0, raw.record_batch([(b"k", b"v")]))
        finally:
            s.close()
        assert r["error"] in (0, NOT_LEADER_OR_FOLLOWER), r
        return r["error"] == 0
    wait_until("the leader takes the produce", produce_at_leader, timeout=10)


def test_replica_assignment_and_replication_factor(cluster):
    topic = unique_topic("ra")
    create(cluster.nodes[1].bootstrap, topic, 2, assignment=[[3, 1], [2, 3]])
    view = leaders(cluster.nodes[2].bootstrap, topic)
    assert view[0][:2] == (3, [3, 1]) and view[1][:2] == (2, [2, 3])
    rf3 = unique_topic("rf3")
    create(cluster.nodes[2].bootstrap, rf3, 3, rf=3)
    for leader, replicas, isr in leaders(cluster.nodes[3].bootstrap, rf3).values():
        # Every replica of a new partition is in sync (it is empty).
        assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3]
    a = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    bad = a.create_topics([NewTopic(unique_topic("rf4"), 1, 4)])
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication factor"):
        list(bad.values())[0].result(30)
    bad = a.create_topics([NewTopic(unique_topic("ghost"), num_partitions=1,
                                    replication_factor=-1, replica_assignment=[[9]])])
    with pytest.raises(Exception, match="INVALID_REPLICA_ASSIGNMENT|no such broker"):
        list(bad.values())[0].result(30)


def controller_of(bootstrap):
    return describe_cluster(bootstrap)["controller_id"]


def test_killing_the_active_controller_elects_another(cluster, record_property):
    """kill -9 the active controller three times: another takes over within
    seconds, admin operations keep working, nothing committed is lost, and
    the killed node catches up when it returns."""
    created = []
    failovers = []
    for round_ in range(3):
        alive = [i for i, n in cluster.nodes.items() if n.is_running()]
        old = int(cluster.nodes[alive[0]].gauge("shardline_active_controller"))
        assert old in cluster.nodes
        survivor = next(i for i in alive if i != old)
        cluster.nodes[old].kill9()
        t0 = time.monotonic()
        # As the survivor knows it (DescribeCluster may reach the other one).
        new = wait_until(
            "a new active controller",
            lambda: (c := int(cluster.nodes[survivor].gauge("shardline_active_controller")))
            not in (old, -1) and c,
            timeout=20, every=0.05)
        failovers.append(time.monotonic() - t0)
        assert new != old
        # Admin operations keep working without the old controller.
        topic = unique_topic(f"after-kill{round_}")
        create(cluster.nodes[survivor].bootstrap, topic, 2)
        created.append(topic)
        # The killed node returns and catches up from the log (or a snapshot).
        cluster.nodes[old].start()
        for t in created:
            wait_until(f"node {old} sees {t}",
                       lambda: t in AdminClient({"bootstrap.servers": cluster.nodes[old].bootstrap})
                       .list_topics(timeout=5).topics)
        wait_until("three brokers again",
                   lambda: len(describe_cluster(cluster.nodes[old].bootstrap)["brokers"]) == 3)
    median = statistics.median(failovers)
    record_property("controller_failover_seconds", [round(f, 3) for f in failovers])
    print(f"controller failover after kill -9: {[round(f, 2) for f in failovers]} s, median {median:.2f} s")
    assert median < 5, failovers


def test_a_silent_broker_is_fenced_and_its_partitions_go_offline_until_it_returns(cluster):
    topic = unique_topic("fence")
    create(cluster.nodes[1].bootstrap, topic, 3, assignment=[[1], [2], [3]])
    produce(cluster.nodes[1].bootstrap, topic,
            [{"value": b"before", "partition": p} for p in range(3)])
    cluster.nodes[3].kill9()
    # Fenced after its session (3 s here): it leaves Metadata, and its
    # partition has no leader (no other replica has the data).
    wait_until("broker 3 fenced",
               lambda: sorted(b["broker_id"] for b in
                              describe_cluster(cluster.bootstrap(1, 2))["brokers"]) == [1, 2],
               timeout=20)
    view = leaders(cluster.nodes[1].bootstrap, topic)
    assert view[2][0] == -1 and view[0][0] == 1 and view[1][0] == 2
    # What /metrics and /health of a survivor say meanwhile.
    n1 = cluster.nodes[1]
    assert n1.gauge("shardline_fenced_brokers") == 1
    assert n1.gauge("shardline_registered_brokers") == 3
    assert n1.gauge("shardline_offline_partitions") >= 1
    assert n1.gauge("shardline_active_controller") in (1, 2)
    assert n1.gauge("shardline_broker_fenced") == 0
    status, body = n1.http("/health")
    assert status == 200, body
    assert json.loads(body)["facts"]["fenced"] == "false"
    controller = int(n1.gauge("shardline_active_controller"))
    assert cluster.nodes[controller].gauge("shardline_is_active_controller") == 1
    cluster.nodes[3].start()
    wait_until("partition 2 led by broker 3 again",
               lambda: leaders(cluster.nodes[1].bootstrap, topic)[2][0] == 3, timeout=20)
    # What was acknowledged before is still there.
    got = consume_all(cluster.nodes[2].bootstrap, topic, 3, unique_topic("g"))
    assert sorted(p for p, _, _ in got) == [0, 1, 2]


def test_a_fourth_broker_joins_and_new_topics_use_it(cluster):
    n4 = cluster.add_broker(4)
    wait_until("four brokers",
               lambda: len(describe_cluster(cluster.nodes[1].bootstrap)["brokers"]) == 4)
    topic = unique_topic("four")
    create(cluster.nodes[4].bootstrap, topic, 8)
    view = leaders(cluster.nodes[2].bootstrap, topic)
    assert {l for l, _, _ in view.values()} == {1, 2, 3, 4}
    results = produce(n4.bootstrap, topic,
                      [{"value": b"m%d" % i, "partition": i % 8} for i in range(40)])
    assert all(r["error"] is None for r in results)
    got = consume_all(cluster.nodes[1].bootstrap, topic, 40, unique_topic("g"))
    assert len(got) == 40
    # The learner has the whole log: it lists topics made before it joined.
    assert topic in AdminClient({"bootstrap.servers": n4.bootstrap}).list_topics(timeout=5).topics


def test_racks_spread_replicas(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path, racks=["a", "b", "c"])
    try:
        c.start()
        wait_until("three brokers",
                   lambda: len(describe_cluster(c.bootstrap(1))["brokers"]) == 3)
        d = describe_cluster(c.bootstrap(1))
        assert sorted(b["rack"] for b in d["brokers"]) == ["a", "b", "c"]
        topic = unique_topic("racks")
        create(c.nodes[1].bootstrap, topic, 6, rf=2)
        rack = {1: "a", 2: "b", 3: "c"}
        for _, replicas, _ in leaders(c.nodes[1].bootstrap, topic).values():
            assert len({rack[r] for r in replicas}) == 2, replicas
    finally:
        c.close()


def test_kafka_tools_and_kafkajs_across_brokers(cluster, tmp_path):
    """The Java client (Kafka's own tools) and kafkajs against the cluster:
    kafka-metadata-quorum through a broker, console producer bootstrapped
    at node 1 and a console consumer group at node 3 over partitions led by
    all three, kafkajs producing through node 2."""
    from java import run_java
    conf = tmp_path / "log4j2.yaml"
    conf.write_text("Configuration:\n  Appenders:\n    Console: {name: STDERR, target: SYSTEM_ERR, "
                    "PatternLayout: {pattern: \"%p %m%n\"}}\n  Loggers:\n    Root: {level: WARN, "
                    "AppenderRef: [{ref: STDERR}]}\n")

    def tool(main_class, *args, input=None):
        return run_java("kafka-dist", "org.apache.kafka.tools." + main_class, args, timeout=120,
                        input=input, jvm_args=[f"-Dlog4j2.configurationFile={conf}"])

    q = tool("MetadataQuorumCommand", "--bootstrap-server", cluster.nodes[2].bootstrap,
             "describe", "--status")
    status = dict(line.split(":", 1) for line in q.stdout.splitlines() if ":" in line)
    leader = int(status["LeaderId"].strip())
    assert leader == controller_of(cluster.nodes[1].bootstrap)
    assert int(status["HighWatermark"].strip()) > 0
    for voter in (1, 2, 3):
        assert f'"id": {voter}' in status["CurrentVoters"], status["CurrentVoters"]
    topic = unique_topic("tools")
    create(cluster.nodes[1].bootstrap, topic, 3)
    lines = [f"line-{i}" for i in range(30)]
    tool("ConsoleProducer", "--bootstrap-server", cluster.nodes[1].bootstrap, "--topic", topic,
         "--command-property", "acks=all", input="\n".join(lines) + "\n")
    c = tool("consumer.ConsoleConsumer", "--bootstrap-server", cluster.nodes[3].bootstrap,
             "--topic", topic, "--group", unique_topic("tools-g"), "--from-beginning",
             "--max-messages", len(lines), "--timeout-ms", 30000)
    assert sorted(c.stdout.split()) == sorted(lines)

    node = shutil.which("node")
    assert node, "node is not installed"
    from test_kafkajs import JS_DIR
    kjs = unique_topic("kjs")
    proc = subprocess.run([node, str(JS_DIR / "produce.js"), cluster.nodes[2].bootstrap, kjs, "40"],
                          cwd=JS_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["deliveries"]) == 40
    got = consume_all(cluster.nodes[1].bootstrap, kjs, 40, unique_topic("g"))
    assert len(got) == 40


def test_groups_are_coordinated_by_one_broker(cluster):
    """Members of one group bootstrapped at different brokers meet at the
    group's coordinator (the leader of its __consumer_offsets partition):
    each message is read by exactly one of them."""
    topic = unique_topic("cg")
    create(cluster.nodes[1].bootstrap, topic, 6)
    produce(cluster.nodes[1].bootstrap, topic,
            [{"value": b"m%d" % i, "partition": i % 6} for i in range(60)])
    group = unique_topic("shared")
    consumers = [Consumer({"bootstrap.servers": cluster.nodes[i].bootstrap, "group.id": group,
                           "auto.offset.reset": "earliest"}) for i in (1, 2, 3)]
    for c in consumers:
        c.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 60 and time.monotonic() < deadline:
            for c in consumers:
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    seen.append(m.value())
        # A little longer: nothing is read twice.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for c in consumers:
                m = c.poll(0.1)
                if m is not None and m.error() is None:
                    seen.append(m.value())
        assignment_sizes = [len(c.assignment()) for c in consumers]
    finally:
        for c in consumers:
            c.close()
    assert sorted(seen) == sorted(b"m%d" % i for i in range(60))
    assert sum(assignment_sizes) == 6, assignment_sizes
    # One coordinator answers for the group, whichever broker is asked.
    coordinators = set()
    for i in (1, 2, 3):
        a = AdminClient({"bootstrap.servers": cluster.nodes[i].bootstrap})
        d = a.describe_consumer_groups([group])[group].result(30)
        coordinators.add(d.coordinator.id)
    assert len(coordinators) == 1, coordinators


def test_cluster_cli_status_add_broker_and_decommission(cluster, shardline_bin):
    def cli(*args, check=True):
        p = subprocess.run([str(shardline_bin), "cluster", "-b", cluster.nodes[1].bootstrap, *args],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stderr
        return p
    out = cli("status").stdout
    leader = controller_of(cluster.nodes[1].bootstrap)
    assert f"Quorum: leader {leader} " in out, out
    for i in (1, 2, 3):
        assert any(line.split()[:2] == [str(i), "voter"] for line in out.splitlines()), out
        assert any(line.split()[:2] == [str(i), "live"] for line in out.splitlines()), out
    add = cli("add-broker", "--id", "7", "--listen", "127.0.0.1:1", "--controller", "127.0.0.1:2",
              "--data-dir", "/nowhere").stdout
    assert "--process-roles broker" in add and "--controller-quorum-voters 1@" in add, add
    # Decommissioning moves a broker's replicas to the others (broker 4
    # joins for them), then unregisters it once it is stopped.
    victim = next(i for i in (2, 3) if i != leader)  # node 1 is the bootstrap
    cluster.add_broker(4)
    wait_until("broker 4 registered",
               lambda: len(describe_cluster(cluster.nodes[1].bootstrap)["brokers"]) == 4)
    topic = unique_topic("decommission")
    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=-1,
                                  replica_assignment=[[victim, 1], [1, victim]])])[topic].result(30)
    moved = cli("decommission", "--id", str(victim), "--wait", "60")
    assert f"Stop broker {victim}, then run this again" in moved.stdout, moved.stdout
    parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert all(victim not in p.replicas and len(p.replicas) == 2 for p in parts.values()), \
        {i: p.replicas for i, p in parts.items()}
    cluster.nodes[victim].kill9()
    wait_until(f"broker {victim} fenced",
               lambda: victim not in [b["broker_id"] for b in
                                      describe_cluster(cluster.nodes[leader].bootstrap)["brokers"]],
               timeout=20)
    cli("decommission", "--id", str(victim))
    brokers = cli("status").stdout.split("\nCluster ")[1]
    assert not any(line.split()[:1] == [str(victim)] for line in brokers.splitlines()), brokers
    missing = cli("decommission", "--id", "42", check=False)
    assert missing.returncode != 0 and "BROKER_ID_NOT_REGISTERED" in missing.stderr, missing.stderr


def test_acls_users_and_quotas_are_cluster_wide(shardline_bin, tmp_path):
    """ACLs, SCRAM users and client quotas live in the metadata log: a
    change through one broker holds on every broker, and after the whole
    cluster is killed and restarted."""
    from confluent_kafka.admin import (
        AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
        ResourceType, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion,
    )
    admin_pw = "admin-secret"
    c = Cluster(shardline_bin, tmp_path, sasl=True, extra_args=[
        "--sasl-bootstrap-user", "admin", "--sasl-bootstrap-password", admin_pw,
        "--authorizer-enabled", "true"])
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256"}

    def boot(i):
        return f"127.0.0.1:{c.nodes[i].sasl_port}"

    admins = {}

    def admin(i, user="admin", pw=admin_pw):
        # Kept alive: a client collected with a future pending fails it.
        if (i, user) not in admins:
            admins[(i, user)] = AdminClient({"bootstrap.servers": boot(i), **sasl,
                                             "sasl.username": user, "sasl.password": pw})
        return admins[(i, user)]

    def quota_list(i):
        r = subprocess.run([str(shardline_bin), "quota", "list", "-b", boot(i),
                            "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin",
                            "--sasl-password", admin_pw],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def brokers_seen(i):
        return len(admin(i).list_topics(timeout=5).brokers)

    def carol_produces(i, topic, partition):
        p = Producer({"bootstrap.servers": boot(i), **sasl, "sasl.username": "carol",
                      "sasl.password": "carol-pw", "message.timeout.ms": 10000})
        errors = []
        p.produce(topic, b"x", partition=partition,
                  on_delivery=lambda err, m: errors.append(err))
        p.flush(15)
        return errors and errors[0]

    try:
        c.start()
        wait_until("all three brokers registered", lambda: brokers_seen(1) == 3)
        topic = unique_topic("sec")
        nt = NewTopic(topic, num_partitions=3, replication_factor=-1,
                      replica_assignment=[[1], [2], [3]])
        admin(1).create_topics([nt])[topic].result(30)
        # A user made through broker 2 authenticates on broker 3.
        ups = [UserScramCredentialUpsertion(
            "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-pw")]
        for f in admin(2).alter_user_scram_credentials(ups).values():
            f.result(30)
        wait_until("carol authenticates on broker 3",
                   lambda: admin(3, "carol", "carol-pw").list_topics(timeout=5) is not None)
        # Without an ACL carol may not write, on any broker.
        err = carol_produces(3, topic, 0)
        assert err and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
        # An ACL made through broker 1 lets her write to the partitions led
        # by brokers 1, 2 and 3.
        acl = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:carol",
                         "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        admin(1).create_acls([acl])[acl].result(30)
        flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
        for i in (1, 2, 3):
            wait_until(f"broker {i} has the ACL",
                       lambda: admin(i).describe_acls(flt).result(10) == [acl])
        for part in range(3):
            assert carol_produces(1, topic, part) is None
        # A quota set through broker 3 is listed by broker 1.
        r = subprocess.run([str(shardline_bin), "quota", "set", "--user", "carol",
                            "--producer-byte-rate", "1048576", "-b", boot(3),
                            "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin",
                            "--sasl-password", admin_pw],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_until("broker 1 lists the quota", lambda: "user=carol" in quota_list(1))
        # Everything survives kill -9 of the whole cluster.
        for n in c.nodes.values():
            n.kill9()
        for n in c.nodes.values():
            n.launch()
        for n in c.nodes.values():
            n.wait_ready(60)
        wait_until("all three brokers back", lambda: brokers_seen(1) == 3)
        assert "producer_byte_rate=1048576" in quota_list(2)
        assert admin(3).describe_acls(flt).result(10) == [acl]
        assert carol_produces(2, topic, 2) is None
        # A deletion through broker 2 closes broker 3 to her again.
        admin(2).delete_acls([flt])[flt].result(30)
        wait_until("broker 3 refuses carol again",
                   lambda: (e := carol_produces(3, topic, 0))
                   and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, timeout=40)
        # Not a single security file: it is all in the metadata log.
        for n in c.nodes.values():
            for f in ("acls.json", "credentials.json", "quotas.json"):
                assert not (n.data_dir / f).exists(), f
    finally:
        admins.clear()  # the clients go now, not at some later collection
        c.close()


def test_sigterm_is_a_controlled_shutdown(cluster):
    """SIGTERM is Kafka's controlled shutdown: the controller fences the
    broker and moves (or, with no other in-sync replica, offlines) what it
    led before it stops, so the others stop naming it at once rather than
    after its session timeout (3 s here); a stopping active controller
    hands the quorum's leadership on instead of leaving an election timeout
    behind."""
    topic = unique_topic("ctl-shutdown")
    create(cluster.nodes[1].bootstrap, topic, 3, assignment=[[1], [2], [3]])
    ctl = int(cluster.nodes[1].gauge("shardline_active_controller"))
    broker = next(i for i in (1, 2, 3) if i != ctl)
    other = next(i for i in (1, 2, 3) if i not in (ctl, broker))
    assert cluster.nodes[broker].terminate() == 0
    # Right after it exited: no longer a live broker, its partition offline.
    brokers = sorted(b["broker_id"] for b in describe_cluster(cluster.nodes[other].bootstrap)["brokers"])
    assert brokers == sorted([ctl, other]), brokers
    assert leaders(cluster.nodes[other].bootstrap, topic)[broker - 1][0] == -1
    assert "controlled shutdown: fenced, leaderships moved" in cluster.nodes[broker].log_text()
    cluster.nodes[broker].start()
    wait_until("three brokers again",
               lambda: len(describe_cluster(cluster.nodes[other].bootstrap)["brokers"]) == 3)
    assert leaders(cluster.nodes[other].bootstrap, topic)[broker - 1][0] == broker
    # The active controller stops: the others know the next one as soon as
    # it has exited (an election would take 1-2 s after that).
    assert cluster.nodes[ctl].terminate() == 0
    new = [int(cluster.nodes[i].gauge("shardline_active_controller")) for i in (broker, other)]
    assert new[0] == new[1] and new[0] in (broker, other), new
    assert "handing the quorum's leadership to node" in cluster.nodes[ctl].log_text()
    cluster.nodes[ctl].start()
    wait_until("three brokers again",
               lambda: len(describe_cluster(cluster.nodes[other].bootstrap)["brokers"]) == 3)


def test_a_node_behind_the_log_start_installs_a_snapshot(shardline_bin, tmp_path):
    """With a snapshot every 8 changes the log drops what a stopped node
    missed: when it returns, the leader sends it the snapshot over the
    controller listener and it catches up from that, security state
    included."""
    c = Cluster(shardline_bin, tmp_path, extra_args=["--metadata-snapshot-every", "8"])
    try:
        c.start()
        wait_until("all three brokers registered",
                   lambda: len(describe_cluster(c.bootstrap(1))["brokers"]) == 3)
        ctl = int(c.nodes[1].gauge("shardline_active_controller"))
        behind = next(i for i in (1, 2, 3) if i != ctl)
        c.nodes[behind].kill9()
        names = [unique_topic(f"snap{i}") for i in range(30)]
        for t in names:
            create(c.nodes[ctl].bootstrap, t, 1, assignment=[[ctl]])
        r = subprocess.run([str(shardline_bin), "quota", "set", "--client-id", "snap-app",
                            "--producer-byte-rate", "4096", "-b", c.nodes[ctl].bootstrap],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        c.nodes[behind].start()
        for t in (names[0], names[-1]):
            wait_until(f"node {behind} sees {t}",
                       lambda: t in AdminClient({"bootstrap.servers": c.nodes[behind].bootstrap})
                       .list_topics(timeout=5).topics)
        assert "installed the leader's metadata snapshot" in c.nodes[behind].log_text()
        r = subprocess.run([str(shardline_bin), "quota", "list", "-b", c.nodes[behind].bootstrap],
                           capture_output=True, text=True, timeout=30)
        assert "client-id=snap-app" in r.stdout, r.stdout + r.stderr
        wait_until("three brokers again",
                   lambda: len(describe_cluster(c.nodes[behind].bootstrap)["brokers"]) == 3)
    finally:
        c.close()
