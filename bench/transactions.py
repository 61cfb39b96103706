"""Transactions benchmark (issue 16): transactional produce against plain
acks=all produce, Shardline against Apache Kafka, side by side in one run.

    .venv/bin/python bench/transactions.py                  # Shardline only
    .venv/bin/python bench/transactions.py --against kafka  # and Apache Kafka
    DURATION=10s TXN_SIZES=100,1000,10000 .venv/bin/python bench/transactions.py --against kafka
    .venv/bin/python bench/transactions.py --render target/bench-transactions/results.json

Each broker is started fresh on 127.0.0.1, one at a time, as bench/run.sh
starts it: a single node on cores 0..SHARDS-1 (Shardline: that many pinned
shards, default log_flush = batch, so every acks=all answer follows an
fdatasync; Apache Kafka 4.x from tests/java/kafka-dist: its JVM restricted
to the same cores with taskset, KAFKA_HEAP heap, every setting at its
default, so acknowledged from the page cache). shardline-bench pins itself
from the last core down. Before anything is measured each broker gets
WARM_UP_FOR of unmeasured produce, plain and transactional (the JVM's JIT,
first touches of the transaction log).

Cases, 1 KiB records, acks=all, PARTITIONS partitions, one producer
connection with 5 requests in flight (Kafka's limit for idempotent
producers, used for the plain case too), each on a fresh topic for
DURATION after WARMUP:
- plain: non-transactional produce (no producer id);
- txn-N for N in TXN_SIZES: transactions of N records (spread over the
  partitions), Kafka's transaction protocol version 1 (FindCoordinator,
  InitProducerId, then per transaction AddPartitionsToTxn, pipelined
  Produce of transactional batches, EndTxn(commit) once all are
  acknowledged), closed loop;
- txn-Tms for T in TXN_INTERVALS_MS: a commit every T ms (Kafka Streams'
  exactly-once default commit.interval.ms is 100).

Reported per case: committed records/s and MB/s (records count once their
transaction's EndTxn succeeded), transactions/s, the EndTxn round trip
p50/p99/p99.9, Produce request p50/p99, and throughput relative to the same
broker's plain case. A broker that refuses transactions (Shardline before
its transaction coordinator: FindCoordinator/InitProducerId answer an error)
gets its transactional rows marked failed with the broker's error.

Writes a markdown table to bench/TRANSACTIONS.md (--out to change) and the
raw figures to target/bench-transactions/results.json.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from kafka_ref import KafkaReference, free_port  # noqa: E402

BIN = ROOT / "target" / "release"
WORK = ROOT / "target" / "bench-transactions"
CORES = os.cpu_count() or 1
SHARDS = int(os.environ.get("SHARDS", max(1, CORES - 1)))
BROKER_CPUS = f"0-{SHARDS - 1}"
PARTITIONS = int(os.environ.get("PARTITIONS", "3"))
IN_FLIGHT = 5


def raise_memlock():
    """glommio locks memory for its I/O buffers (the broker shrinks them to
    fit a low limit and says so): raise the limit when we may, as run.sh does."""
    for limit in (resource.RLIM_INFINITY, resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]):
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (limit, limit))
            return
        except (ValueError, OSError):
            pass


def env_list(name, default):
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


# ----------------------------------------------------------------- brokers
class Shardline:
    name = "shardline"

    def __init__(self, work):
        self.dir = work / "shardline"
        self.port = free_port()
        self.proc = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.log = open(self.dir / "shardline.log", "wb")
        self.proc = subprocess.Popen(
            [str(BIN / "shardline"), "serve", "--data-dir", str(self.dir / "data"),
             "--listen", f"127.0.0.1:{self.port}", "--shards", str(SHARDS)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=raise_memlock)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shardline exited with {self.proc.returncode}: "
                                   f"{(self.dir / 'shardline.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("shardline did not listen within 30 s")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PinnedKafka(KafkaReference):
    """kafka_ref's broker with its JVM on the broker cores (bench/run.sh)."""

    def command(self):
        return ["taskset", "-c", BROKER_CPUS] + super().command()


class Kafka:
    name = "kafka"

    def __init__(self, work):
        self.ref = PinnedKafka(work / "kafka", heap=os.environ.get("KAFKA_HEAP", "6g"))

    def start(self):
        shutil.rmtree(self.ref.dir, ignore_errors=True)
        self.ref.start(120)
        return self

    @property
    def bootstrap(self):
        return self.ref.bootstrap

    @property
    def pid(self):
        return self.ref.proc.pid  # taskset execs the JVM: same pid

    def stop(self):
        self.ref.stop()


# ------------------------------------------------------------------- cases
def cases():
    out = [("plain", [])]
    for n in env_list("TXN_SIZES", "100,1000,10000"):
        out.append((f"txn-{n}", ["--txn-records", str(n)]))
    for ms in env_list("TXN_INTERVALS_MS", "100"):
        out.append((f"txn-{ms}ms", ["--txn-interval-ms", str(ms)]))
    return out


def bench(broker, topic, extra, duration, warmup):
    cmd = [str(BIN / "shardline-bench"), "produce", "--bootstrap", broker.bootstrap,
           "--topic", topic, "--create-topic", "--partitions", str(PARTITIONS),
           "--message-size", "1024", "--acks", "all", "--in-flight", str(IN_FLIGHT),
           "--duration", duration, "--warmup", warmup, "--broker-pid", str(broker.pid),
           "--json", *extra]
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        return {"error": error_chain(out.stderr) or f"exit status {out.returncode}"}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    errors = r.get("errors") or {}
    if r["produce"]["measured_messages"] == 0 and errors:
        return {"error": "nothing committed: " + ", ".join(f"{k}={v}" for k, v in errors.items())}
    return r


def error_chain(stderr):
    """anyhow's "Error: context / Caused by: / cause" as one line."""
    lines = stderr.split("Stack backtrace:")[0].splitlines()
    start = max((i for i, x in enumerate(lines) if x.startswith("Error:")), default=0)
    parts = [x.strip() for x in lines[start:] if x.strip() and x.strip() != "Caused by:"]
    parts = [x.split(": ", 1)[1] if x[:3].strip().rstrip(":").isdigit() else x for x in parts]
    return ": ".join(parts).removeprefix("Error: ")


def summary(r):
    if "error" in r:
        return r
    p, t = r["produce"], r.get("txn")
    lat = p.get("latency_us") or {}
    s = {"msgs_per_sec": p["msgs_per_sec"], "mb_per_sec": p["mb_per_sec"],
         "produce_p50_us": lat.get("p50_us"), "produce_p99_us": lat.get("p99_us"),
         "errors": r.get("errors") or {},
         "cpu_s_per_gb": (r.get("broker") or {}).get("cpu_seconds_per_gb")}
    if t:
        c = t.get("commit_latency_us") or {}
        b = t.get("begin_latency_us") or {}
        s.update({"txns_per_sec": t["transactions_per_sec"],
                  "records_per_txn": t["records_per_transaction"],
                  "commit_p50_us": c.get("p50_us"), "commit_p99_us": c.get("p99_us"),
                  "commit_p999_us": c.get("p999_us"), "begin_p50_us": b.get("p50_us"),
                  "aborted": t["aborted_transactions"], "retries": t["coordinator_retries"]})
    return s


def warm_up(broker, span):
    """Unmeasured load: the JVM's JIT, the transaction log's creation."""
    if seconds(span) <= 0:
        return
    half = f"{seconds(span) / 2:g}s"
    bench(broker, "warmup-plain", [], half, "0s")
    bench(broker, "warmup-txn", ["--transactional-id", "warmup", "--txn-records", "1000"],
          half, "0s")


def seconds(s):
    s = s.strip()
    if s.endswith("ms"):
        return float(s[:-2]) / 1000
    return float(s[:-1]) if s.endswith("s") else float(s)


def run_broker(make, duration, warmup, warm_for):
    broker = make()
    print(f"==> {broker.name}: starting", flush=True)
    broker.start()
    results = {}
    try:
        warm_up(broker, warm_for)
        for name, extra in cases():
            args = list(extra)
            if extra:
                args = ["--transactional-id", f"bench-{name}"] + args
            print(f"==> {broker.name}: {name}", flush=True)
            results[name] = summary(bench(broker, f"txn-bench-{name}", args, duration, warmup))
            print("    " + json.dumps(results[name]), flush=True)
    finally:
        broker.stop()
    return results


# -------------------------------------------------------------------- table
def ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"


def markdown(results, meta):
    rows = ["| broker | case | records/txn | committed records/s | MB/s | txn/s | commit p50 "
            "| commit p99 | commit p99.9 | begin p50 | produce p50 | produce p99 | vs plain "
            "| broker CPU-s/GB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for broker, cs in results.items():
        plain = cs.get("plain", {}).get("msgs_per_sec")
        for name, r in cs.items():
            if "error" in r:
                err = r["error"].replace("|", "\\|")
                rows.append(f"| {broker} | {name} | failed: {err} |" + " |" * 11)
                continue
            txn = "txns_per_sec" in r
            rel = f"{100 * r['msgs_per_sec'] / plain:.0f} %" if plain and txn else "-"
            cpu = r.get("cpu_s_per_gb")
            rows.append(
                f"| {broker} | {name} | {r['records_per_txn']:,.0f} |" if txn else
                f"| {broker} | {name} | - |")
            rows[-1] += (
                f" {r['msgs_per_sec']:,.0f} | {r['mb_per_sec']:.1f} | "
                + (f"{r['txns_per_sec']:,.1f} | {ms(r['commit_p50_us'])} | "
                   f"{ms(r['commit_p99_us'])} | {ms(r['commit_p999_us'])} | "
                   f"{ms(r['begin_p50_us'])} | " if txn
                   else "- | - | - | - | - | ")
                + f"{ms(r['produce_p50_us'])} | {ms(r['produce_p99_us'])} | {rel} | "
                + ("-" if cpu is None else f"{cpu:.1f}") + " |")
    errors = [f"{b} {n}: " + ", ".join(f"{k}={v}" for k, v in r["errors"].items())
              for b, cs in results.items() for n, r in cs.items()
              if "error" not in r and r.get("errors")]
    text = (
        f"Transactions benchmark (`bench/transactions.py`), {meta['date']}, {meta['cores']} cores: "
        f"single-node brokers on cores {meta['broker_cpus']}, the load generator on the rest; "
        f"1 KiB records, acks=all, {meta['partitions']} partitions, one producer connection with "
        f"{IN_FLIGHT} requests in flight; {meta['duration']} per case after {meta['warmup']} warm-up "
        f"({meta['warm_up_for']} of unmeasured load per broker first). Closed loop: each "
        "transaction is AddPartitionsToTxn, its Produce requests, then EndTxn(commit) once "
        "all are acknowledged, and the next begins when that is answered. Committed records "
        "count only once their EndTxn succeeded; commit = the EndTxn round trip; begin = "
        "AddPartitionsToTxn, CONCURRENT_TRANSACTIONS retries included (1 ms backoff doubling "
        "to 20 ms: the wait for the previous commit's markers); produce = one Produce "
        "request; vs plain = committed records/s relative to the same broker's "
        "non-transactional acks=all run. Shardline fdatasyncs before every acks=all answer "
        "(log_flush = batch); Apache Kafka acknowledges from the page cache. Each case runs "
        "once, on a host other work may share: run the suite again to see the spread.\n\n"
        + "\n".join(rows) + "\n")
    if errors:
        text += "\nErrors counted during runs: " + "; ".join(errors) + "\n"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="", help="kafka: also run Apache Kafka 4.x")
    ap.add_argument("--out", default=str(ROOT / "bench" / "TRANSACTIONS.md"))
    ap.add_argument("--only", default="", help="comma-separated brokers to run (shardline, kafka)")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite the table from a previous run's results.json")
    a = ap.parse_args()
    if a.render:
        saved = json.loads(Path(a.render).read_text())
        Path(a.out).write_text(markdown(saved["results"], saved["meta"]))
        print(Path(a.out).read_text())
        return
    for b in ("shardline", "shardline-bench"):
        if not (BIN / b).exists():
            sys.exit(f"{BIN / b} missing: cargo build --release -p shardline-broker -p shardline-bench")
    duration = os.environ.get("DURATION", "10s")
    warmup = os.environ.get("WARMUP", "2s")
    warm_for = os.environ.get("WARM_UP_FOR", "10s")
    makers = {"shardline": lambda: Shardline(WORK)}
    if "kafka" in a.against.split(","):
        makers["kafka"] = lambda: Kafka(WORK)
    if a.only:
        makers = {k: v for k, v in makers.items() if k in a.only.split(",")}
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results = {name: run_broker(make, duration, warmup, warm_for) for name, make in makers.items()}
    meta = {"date": time.strftime("%Y-%m-%d"), "cores": CORES, "broker_cpus": BROKER_CPUS,
            "partitions": PARTITIONS, "duration": duration, "warmup": warmup,
            "warm_up_for": warm_for}
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    # The brokers' data (tens of GB after a full run) is not kept.
    for d in WORK.iterdir():
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    Path(a.out).write_text(markdown(results, meta))
    print(Path(a.out).read_text())


if __name__ == "__main__":
    main()
