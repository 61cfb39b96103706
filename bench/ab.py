#!/usr/bin/env python3
"""A/B of broker binaries on the hot path, in alternating rounds.

    python3 bench/ab.py --rounds 5 A=/path/to/old B=/path/to/new [C=/path/to/new+poll]

Each round starts every variant in turn (the order alternates between
rounds, so drift in the machine's speed falls on both sides), each on a
fresh data dir: one shard pinned to core 0, `shardline-bench` on core 1,
the admin listener on. A variant written `NAME=BINARY+poll` also polls the
console the whole time (its JSON API and /metrics, as an open browser tab
and a Prometheus scrape would, at 4 requests a second), to show what an
operator watching costs. Cases: acks=1 unthrottled (msgs/s) and acks=all
at a fixed rate (latency percentiles). Prints the median of each figure
per variant and its ratio to the first variant; the ranges too, because
two cores are noisy.

Needs only the standard library; BENCH=path to shardline-bench (default
target/release/shardline-bench)."""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.environ.get("BENCH", os.path.join(ROOT, "target", "release", "shardline-bench"))
POLLED = ["/api/v1/info", "/api/v1/cluster", "/api/v1/topics", "/api/v1/metrics/history",
          "/metrics"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, poll):
        self.binary, self.poll = binary, poll
        self.dir = tempfile.mkdtemp(prefix="ab-", dir=os.environ.get("AB_DIR", "/work"))
        self.port, self.admin = free_port(), free_port()
        self.stop = threading.Event()
        self.polls = 0

    def __enter__(self):
        self.log = open(os.path.join(self.dir, "broker.log"), "wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", self.binary, "serve", "--shards", "1",
             "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
             "--data-dir", os.path.join(self.dir, "data")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{self.binary} did not start")
        if self.poll:
            threading.Thread(target=self.poll_loop, daemon=True).start()
        return self

    def poll_loop(self):
        i = 0
        while not self.stop.wait(0.25):
            path = POLLED[i % len(POLLED)]
            i += 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=5) as r:
                    r.read()
                self.polls += 1
            except Exception:  # noqa: BLE001 -- a refused call still cost the broker
                pass

    def __exit__(self, *exc):
        self.stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def bench(port, *args):
    out = subprocess.run(["taskset", "-c", "1", BENCH, *args, "--bootstrap", f"127.0.0.1:{port}",
                          "--pin", "false", "--json"], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"bench {args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pick(report, key):
    """`msgs_per_sec` or a latency percentile (`p50_us`...) of a produce
    report."""
    produce = report["produce"]
    if key in produce:
        return float(produce[key])
    return float(produce["latency_us"][key])


CASES = [
    ("acks=1, 8 partitions, msgs/s",
     ["produce", "--topic", "ab1", "--create-topic", "--partitions", "8", "--message-size", "1KiB",
      "--acks", "1", "--connections", "2", "--duration", "10s"],
     {"msgs/s": "msgs_per_sec"}),
    ("acks=all at 100k msgs/s",
     ["produce", "--topic", "ab2", "--create-topic", "--partitions", "8", "--message-size", "1KiB",
      "--acks", "all", "--rate", "100k", "--duration", "10s"],
     {"p50 µs": "p50_us", "p99 µs": "p99_us", "p99.99 µs": "p9999_us"}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("variants", nargs="+", help="NAME=BINARY or NAME=BINARY+poll")
    a = ap.parse_args()
    variants = []
    for v in a.variants:
        name, _, binary = v.partition("=")
        poll = binary.endswith("+poll")
        variants.append((name, binary.removesuffix("+poll"), poll))
    results = {}  # (variant, case, figure) -> [values]
    for r in range(a.rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for name, binary, poll in order:
            for case, args, figures in CASES:
                with Broker(binary, poll) as b:
                    rep = bench(b.port, *args)
                    polls = b.polls
                for fig, key in figures.items():
                    results.setdefault((name, case, fig), []).append(pick(rep, key))
                print(f"round {r + 1} {name} {case}: "
                      + ", ".join(f"{f} {results[(name, case, f)][-1]:,.0f}" for f in figures)
                      + (f" (console polled {polls} times)" if poll else ""), flush=True)
    first = variants[0][0]
    print("\n| case | figure | " + " | ".join(v[0] for v in variants) + " | "
          + " | ".join(f"{v[0]}/{first}" for v in variants[1:]) + " |")
    print("|---|---|" + "---:|" * (2 * len(variants) - 1))
    for case, _, figures in CASES:
        for fig in figures:
            meds = [statistics.median(results[(v[0], case, fig)]) for v in variants]
            print(f"| {case} | {fig} | " + " | ".join(f"{m:,.0f}" for m in meds) + " | "
                  + " | ".join(f"{m / meds[0]:.2f}" for m in meds[1:]) + " |")
    print("\nranges:")
    for (v, case, fig), vals in sorted(results.items()):
        print(f"  {v} {case} {fig}: {min(vals):,.0f} – {max(vals):,.0f}")


if __name__ == "__main__":
    sys.exit(main())
