"""Replication benchmark (issue 15): acks=all with three replicas against one,
Shardline against Apache Kafka, side by side in one run, and failover times.

    .venv/bin/python bench/replication.py                 # Shardline RF=1 and RF=3
    .venv/bin/python bench/replication.py --against kafka # and Apache Kafka RF=3
    DURATION=10s KILLS=10 .venv/bin/python bench/replication.py

Setups, each started fresh on 127.0.0.1 (every process of every setup shares
this machine's cores with the load generator):
- shardline-rf1: one node, topics with one replica;
- shardline-rf3: three nodes (voters), topics with three replicas and
  min.insync.replicas=2;
- kafka-rf3 (--against kafka): three Apache Kafka 4.x nodes in KRaft combined
  mode, the same topics, every other setting at Kafka's default (no fsync per
  write: Kafka's durability is replication; Shardline's default log_flush =
  batch syncs on every replica before acks=all is answered).

Cases, 1 KiB records, acks=all, 3 partitions:
1. throughput: closed loop for DURATION; msgs/s, MB/s and the brokers'
   CPU-seconds (user + system, all processes of the setup) per GB produced;
2. latency: open loop at 50 % of the lowest maximum any setup reached (the
   same offered load for all); p50 / p99 / p99.99;
3. failover (RF=3 setups): an acks=all producer at 500 msgs/s; the leader of
   partition 0 is killed with -9, KILLS times (restarted and back in the ISR
   in between); the time from the kill to the first acknowledged record of
   that partition (on the new leader): median and max.

Writes a markdown table to bench/REPLICATION.md (--out to change).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster, wait_until  # noqa: E402
from kafka_ref import KafkaReference, free_port as kafka_port  # noqa: E402

BIN = ROOT / "target" / "release"
PARTITIONS = 3


def seconds(s):
    return float(s[:-1]) if s.endswith("s") else float(s)


# ----------------------------------------------------------------- setups
class ShardlineSetup:
    def __init__(self, name, work, nodes):
        self.name, self.rf = name, nodes
        self.cluster = Cluster(BIN / "shardline", work / name, voters=nodes,
                               extra_args=["--auto-leader-rebalance-enable", "false"])

    def start(self):
        self.cluster.start()
        self.cluster.wait_registered()
        return self

    def bootstrap(self):
        return self.cluster.bootstrap()

    def pids(self):
        return [n.proc.pid for n in self.cluster.nodes.values() if n.is_running()]

    def kill_node(self, node_id):
        self.cluster.nodes[node_id].kill9()

    def restart_node(self, node_id):
        self.cluster.nodes[node_id].start()

    def stop(self):
        self.cluster.close()


# Both products fence a broker not heard from for this long: Shardline's
# test clusters (tests/integration/cluster.py) use 500 ms / 3 s, and Kafka
# gets the same here, so failover times compare the protocols rather than
# the defaults (Kafka's are 2 s / 9 s, Shardline's 2 s / 9 s).
SESSION = ["broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=3000"]


class KafkaSetup:
    """Three Apache Kafka nodes (broker and controller each), one quorum."""

    def __init__(self, name, work):
        self.name, self.rf = name, 3
        ports = {i: (kafka_port(), kafka_port()) for i in (1, 2, 3)}
        voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in ports.items())
        self.nodes = {
            i: KafkaReference(work / name / f"node{i}", port=p, controller_port=c, heap="2g",
                              node_id=i, voters=voters, internal_rf=3, extra=SESSION)
            for i, (p, c) in ports.items()
        }

    def start(self):
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_ready(120)
        return self

    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes.values())

    def pids(self):
        return [n.proc.pid for n in self.nodes.values() if n.proc and n.proc.poll() is None]

    def kill_node(self, node_id):
        n = self.nodes[node_id]
        os.killpg(n.proc.pid, 9)
        n.proc.wait()

    def restart_node(self, node_id):
        n = self.nodes[node_id]
        n.stop()
        n.launch()
        n.wait_ready(120)

    def stop(self):
        for n in self.nodes.values():
            n.stop()


# ------------------------------------------------------------------ cases
def create_topic(setup, topic):
    admin = AdminClient({"bootstrap.servers": setup.bootstrap()})
    configs = {"min.insync.replicas": "2"} if setup.rf == 3 else {}
    admin.create_topics([NewTopic(topic, PARTITIONS, setup.rf, config=configs)])[topic].result(60)
    wait_until("leaders for every partition", lambda: all(
        p.leader >= 0 and len(p.isrs) == setup.rf
        for p in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()), 60)


def cpu_seconds(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def bench(setup, topic, *args):
    cmd = [str(BIN / "shardline-bench"), "produce", "--bootstrap", setup.bootstrap(),
           "--topic", topic, "--partitions", str(PARTITIONS), "--message-size", "1024",
           "--acks", "all", "--json", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"shardline-bench failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(setup, duration):
    topic = f"repl-tput-{setup.name}"
    create_topic(setup, topic)
    before = cpu_seconds(setup.pids())
    r = bench(setup, topic, "--duration", duration, "--warmup", "2s")
    cpu = cpu_seconds(setup.pids()) - before
    p = r["produce"]
    gb = p["bytes"] / 1e9
    return {"msgs_per_sec": p["msgs_per_sec"], "mb_per_sec": p["mb_per_sec"],
            "cpu_s_per_gb": cpu / gb if gb else None, "errors": r.get("errors_total", 0)}


def latency(setup, rate, duration):
    topic = f"repl-lat-{setup.name}"
    create_topic(setup, topic)
    r = bench(setup, topic, "--rate", str(int(rate)), "--linger-ms", "1",
              "--duration", duration, "--warmup", "2s")
    lat = r["produce"]["latency_us"]
    return {"rate": rate, "achieved": r["produce"]["msgs_per_sec"], "p50_us": lat["p50_us"],
            "p99_us": lat["p99_us"], "p9999_us": lat["p9999_us"]}


def failover(setup, kills):
    """Kill -9 the leader of partition 0 `kills` times under a 500 msgs/s
    acks=all producer; seconds from each kill to partition 0's next ack."""
    topic = f"repl-failover-{setup.name}"
    create_topic(setup, topic)
    admin = AdminClient({"bootstrap.servers": setup.bootstrap()})
    acks, lock, stop = [], threading.Lock(), threading.Event()
    p = Producer({"bootstrap.servers": setup.bootstrap(), "acks": "all",
                  "enable.idempotence": True, "linger.ms": 1, "message.timeout.ms": 120000,
                  "topic.metadata.refresh.interval.ms": 1000})

    def on_delivery(err, m):
        if err is None and m.partition() == 0:
            with lock:
                acks.append(time.monotonic())

    def produce():
        i = 0
        while not stop.is_set():
            p.produce(topic, str(i).encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
            i += 1
            p.poll(0.002)
    t = threading.Thread(target=produce, daemon=True)
    t.start()
    times = []
    try:
        for _ in range(kills):
            time.sleep(2)
            leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
            killed_at = time.monotonic()
            setup.kill_node(leader)
            wait_until("an ack after the kill", lambda: any(a > killed_at for a in acks), 120, 0.01)
            with lock:
                times.append(min(a for a in acks if a > killed_at) - killed_at)
            setup.restart_node(leader)
            wait_until("all replicas in sync", lambda: all(
                len(x.isrs) == 3 for x in
                admin.list_topics(topic, timeout=10).topics[topic].partitions.values()), 120)
    finally:
        stop.set()
        t.join(10)
        p.flush(30)
    return {"median_s": statistics.median(times), "max_s": max(times), "kills": len(times)}


# ------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="")
    ap.add_argument("--out", default=str(ROOT / "bench" / "REPLICATION.md"))
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite the table from a previous run's results.json")
    a = ap.parse_args()
    if a.render:
        results = json.loads(Path(a.render).read_text())
        rate = next(iter(results.values()))["latency"]["rate"]
        Path(a.out).write_text(markdown(results, rate, os.environ.get("DURATION", "8s")))
        print(Path(a.out).read_text())
        return
    duration = os.environ.get("DURATION", "8s")
    kills = int(os.environ.get("KILLS", "5"))
    work = ROOT / "target" / "bench-replication"
    shutil.rmtree(work, ignore_errors=True)
    makers = [lambda: ShardlineSetup("shardline-rf1", work, 1),
              lambda: ShardlineSetup("shardline-rf3", work, 3)]
    if "kafka" in a.against.split(","):
        makers.append(lambda: KafkaSetup("kafka-rf3", work))
    results = {}
    for make in makers:  # phase 1: each setup's maximum
        s = make().start()
        try:
            print(f"==> {s.name}: throughput", flush=True)
            results[s.name] = {"throughput": throughput(s, duration)}
        finally:
            s.stop()
    rate = 0.5 * min(r["throughput"]["msgs_per_sec"] for r in results.values())
    for make in makers:  # phase 2: the same offered load for all; failover
        s = make().start()
        try:
            print(f"==> {s.name}: latency at {rate:.0f} msgs/s", flush=True)
            results[s.name]["latency"] = latency(s, rate, duration)
            if s.rf == 3:
                print(f"==> {s.name}: failover x{kills}", flush=True)
                results[s.name]["failover"] = failover(s, kills)
        finally:
            s.stop()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    # The brokers' data (tens of GB after a full run) is not kept.
    for d in work.iterdir():
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    Path(a.out).write_text(markdown(results, rate, duration))
    print(Path(a.out).read_text())


def markdown(results, rate, duration):
    rows = ["| setup | max msgs/s | MB/s | broker CPU-s per GB | achieved msgs/s at the offered "
            "load | p50 | p99 | p99.99 | kill -9 → first ack (median / max) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        t, l = r["throughput"], r["latency"]
        f = r.get("failover")
        rows.append(
            f"| {name} | {t['msgs_per_sec']:,.0f} | {t['mb_per_sec']:.0f} | "
            f"{t['cpu_s_per_gb']:.1f} | {l['achieved']:,.0f} | {l['p50_us'] / 1000:.2f} ms | {l['p99_us'] / 1000:.2f} ms | "
            f"{l['p9999_us'] / 1000:.2f} ms | "
            + (f"{f['median_s']:.2f} s / {f['max_s']:.2f} s ({f['kills']} kills)" if f else "-")
            + " |")
    return (f"Replication benchmark (`bench/replication.py`), {time.strftime('%Y-%m-%d')}: "
            f"1 KiB records, acks=all, {PARTITIONS} partitions, {duration} per case; latency at "
            f"{rate:,.0f} msgs/s (50 % of the lowest maximum) offered to every setup, open loop: "
            f"latencies count from each request's intended send time, so a setup that cannot "
            f"keep up shows its backlog in them.\n\n"
            + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
