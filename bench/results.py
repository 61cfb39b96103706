"""Turn the reports of bench/run.sh into bench/RESULTS.md.

usage: python3 bench/results.py WORK_DIR OUT_FILE
WORK_DIR holds limits.json, brokers (one label per line, Shardline first) and
json/<broker>/<case>.json (shardline-bench --json) plus
json/<broker>/perftool-{producer,consumer}.txt (Kafka's perf tools' output).
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
limits = json.loads((work / "limits.json").read_text())
brokers = [b for b in (work / "brokers").read_text().split() if (work / "json" / b).is_dir()]
runs = {b: {p.stem: json.loads(p.read_text()) for p in sorted((work / "json" / b).glob("*.json"))} for b in brokers}
NAMES = {"shardline": "Shardline", "shardline-interval": "Shardline (log_flush = interval)", "kafka": "Apache Kafka",
         "shardline-base": "Shardline, the older build given as BASE_BIN (before/after)"}
REF = "kafka" if "kafka" in brokers else None


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "?"


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def ms(lat, key):
    return f"{lat[key] / 1000:.2f}" if lat and lat.get(key) is not None else "–"


def pct(side):
    p = side.get("pct_of_limit")
    if isinstance(p, dict):
        p = next((v for v in p.values() if isinstance(v, (int, float))), None)
    return f"{p:.0f} %" if isinstance(p, (int, float)) else "–"


def cpu_gb(r):
    v = (r.get("broker") or {}).get("cpu_seconds_per_gb")
    return f"{v:.2f}" if v is not None else "–"


def rss(r):
    v = (r.get("broker") or {}).get("peak_rss_bytes")
    return f"{v / 2**20:.0f}" if v else "–"


def ratio(a, b, invert=False):
    """a relative to b as 'N.N×' (for latencies: how many times lower a is)."""
    if not a or not b:
        return "–"
    return f"{(b / a if invert else a / b):.1f}×"


def cases(prefix):
    names = []
    for b in brokers:
        for n in runs[b]:
            if n.startswith(prefix) and n not in names:
                names.append(n)
    return names


version = sh("git", "rev-parse", "--short", "HEAD")
if sh("git", "status", "--porcelain", "--untracked-files=no"):
    version += " (with uncommitted changes)"
produce_limit = min(limits["loopback_bytes_per_sec"], limits["disk_write_bytes_per_sec"])
mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
shards = (work / "shards").read_text().strip()
lines = [
    "# Shardline benchmark results",
    "",
    "Written by `bench/run.sh` (see it for the exact commands). Client and broker share",
    "the machine; every figure is one run, so run the suite again to see the spread.",
    "",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {os.cpu_count()} cores ({cpu_model()}), {mem_kb / 2**20:.0f} GiB, Linux {platform.release()}",
    f"- git revision: {version}",
    f"- limits measured in the same run: loopback TCP {limits['loopback_bytes_per_sec'] / 1e6:.0f} MB/s, "
    f"direct sequential write {limits['disk_write_bytes_per_sec'] / 1e6:.0f} MB/s"
    + ("" if limits.get("disk_o_direct", True) else " (buffered: O_DIRECT refused)")
    + f", 16 KiB write + fdatasync p50 {limits['fsync_p50_us']:.0f} µs / p99 {limits['fsync_p99_us']:.0f} µs",
    f"- produce limit = min(loopback, disk) = {produce_limit / 1e6:.0f} MB/s",
    f"- brokers, one at a time on cores 0..{int(shards) - 1}; clients on the other core(s): "
    + "; ".join(NAMES.get(b, b) for b in brokers),
    f"- Shardline: {shards} shard(s), `log_flush = batch` (fdatasync before every acks=all answer)"
    + (", and `log_flush = interval`" if "shardline-interval" in brokers else ""),
]
if REF:
    lines.append(
        f"- Apache Kafka {sh('sh', '-c', 'ls tests/java/kafka-dist/target/lib | sed -n s/^kafka_2.13-//p | sed s/.jar$//')}"
        f" (KRaft, combined broker+controller), heap {(work / 'kafka_heap').read_text().strip()}, G1 as Kafka's "
        "operations guide recommends, every broker setting at its default but file.delete.delay.ms = 1 s "
        "(a deleted topic's files go before the next case starts): no fsync per write "
        "(log.flush.interval.messages unlimited; Kafka leaves durability to replication)")
def table_head(numeric, vs_ref):
    """Header and alignment rows: case, broker, the numeric columns, and the
    comparison with Apache Kafka when it ran."""
    cols = ["case", "broker", *numeric] + ([vs_ref] if REF else [])
    align = ["---", "---"] + ["---:"] * (len(cols) - 2)
    return ["| " + " | ".join(cols) + " |", "| " + " | ".join(align) + " |"]


lines += [
    "",
    "## Produce, unthrottled",
    "",
    *table_head(["msgs/s", "MB/s", "% of limit", "p50 ms", "p99 ms", "p99.9 ms", "broker CPU-s/GB",
                 "peak RSS MiB", "errors"], "msgs/s vs Kafka"),
]
for name in cases("produce-"):
    for b in brokers:
        r = runs[b].get(name)
        if not r:
            continue
        p = r["produce"]
        lat = p.get("latency_us")
        row = (f"| {name[len('produce-'):]} | {NAMES.get(b, b)} | {p['msgs_per_sec'] / 1e6:.2f} M | {p['mb_per_sec']:.0f} "
               f"| {pct(p)} | {ms(lat, 'p50_us')} | {ms(lat, 'p99_us')} | {ms(lat, 'p999_us')} | {cpu_gb(r)} "
               f"| {rss(r)} | {r['errors_total']} |")
        if REF:
            ref = runs[REF].get(name)
            row += f" {ratio(p['msgs_per_sec'], ref['produce']['msgs_per_sec']) if ref and b != REF else ''} |"
        lines.append(row)
lines += [
    "",
    "## Produce latency at the same offered load for every broker",
    "",
    "Offered load = 50 % of the lowest maximum any broker reached in that case above (open loop,",
    "corrected for coordinated omission, `--linger-ms 1`). Where the broker fell behind (more",
    "than 1 % of the offered messages still unsent when the run ended), those requests count",
    "with the latency they had reached, so the figures are lower bounds (\"≥\").",
    "",
    *table_head(["offered msgs/s", "achieved", "p50 ms", "p99 ms", "p99.9 ms", "p99.99 ms", "max ms",
                 "unsent", "errors"], "p99.99 vs Kafka"),
]
for name in cases("latency-"):
    for b in brokers:
        r = runs[b].get(name)
        if not r:
            continue
        p = r["produce"]
        lat = p.get("latency_us")
        unsent = r.get("unsent_messages", 0)
        # The last request or so is always still due when the run stops;
        # the figures are lower bounds only when the broker fell behind.
        behind = unsent > 0.01 * r["config"]["rate"] * p["measured_seconds"]
        ge = "≥ " if behind else ""
        row = (f"| {name[len('latency-'):]} | {NAMES.get(b, b)} | {r['config']['rate'] / 1e6:.3f} M "
               f"| {p['msgs_per_sec'] / 1e6:.3f} M | {ge}{ms(lat, 'p50_us')} | {ge}{ms(lat, 'p99_us')} "
               f"| {ge}{ms(lat, 'p999_us')} | {ge}{ms(lat, 'p9999_us')} | {ge}{ms(lat, 'max_us')} | {unsent} "
               f"| {r['errors_total']} |")
        if REF:
            ref = runs[REF].get(name)
            v = ""
            if ref and b != REF and lat and ref["produce"].get("latency_us"):
                v = ratio(lat.get("p9999_us"), ref["produce"]["latency_us"].get("p9999_us"), invert=True) + " lower"
            row += f" {v} |"
        lines.append(row)
lines += ["", "## Consume", "",
          "| case | broker | msgs/s | MB/s | % of loopback | latency p50 ms | p99 ms | broker CPU-s/GB | errors |",
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name in cases("consume-") + cases("e2e-"):
    for b in brokers:
        r = runs[b].get(name)
        if not r:
            continue
        c = r["consume"]
        lat = c.get("latency_us")
        extra = ""
        if r.get("mode") == "e2e" and r.get("produced") is not None:
            extra = f" (produced {r['produced']}, consumed {r['consumed']})"
        lines.append(
            f"| {name}{extra} | {NAMES.get(b, b)} | {c['msgs_per_sec'] / 1e6:.2f} M | {c['mb_per_sec']:.0f} | {pct(c)} "
            f"| {ms(lat, 'p50_us')} | {ms(lat, 'p99_us')} | {cpu_gb(r)} | {r['errors_total']} |")

# Memory of idle partitions: RSS before and after opening them.
idle_rows = []
for b in brokers:
    f = work / "json" / b / "idle-partitions.json"
    if f.exists():
        r = json.loads(f.read_text())
        grew = (r["rss_after_kib"] - r["rss_before_kib"]) * 1024
        idle_rows.append(f"| {NAMES.get(b, b)} | {r['partitions']} | {r['rss_before_kib'] / 1024:.0f} "
                         f"| {r['rss_after_kib'] / 1024:.0f} | {grew / r['partitions'] / 1024:.1f} |")
if idle_rows:
    lines += ["", "## Idle partitions", "",
              "A topic with this many partitions is created, each gets one 100-byte record, and the broker",
              "idles 10 s; RSS (VmRSS) before the topic and after.", "",
              "| broker | partitions | RSS before MiB | RSS after MiB | KiB per partition |",
              "| --- | ---: | ---: | ---: | ---: |"] + idle_rows

# Scaling by shards (Shardline only): one partition per shard.
scale = sorted((n for n in runs.get("shardline", {}) if n.startswith("scaling-")),
               key=lambda n: int(n[len("scaling-"):].split("shard")[0]))
if scale:
    lines += ["", "## Scaling by shards (Shardline)", "",
              "1 KiB records, acks=all, one partition and one client connection per shard. With 1 shard the",
              "client has the other core to itself; with one shard per core the client shares the cores",
              "with the broker, so per-shard figures there are a lower bound.", "",
              "| shards | msgs/s | MB/s | MB/s per shard | p99 ms | broker CPU-s/GB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in scale:
        r = runs["shardline"][n]
        p = r["produce"]
        k = int(n[len("scaling-"):].split("shard")[0])
        lines.append(f"| {k} | {p['msgs_per_sec'] / 1e6:.2f} M | {p['mb_per_sec']:.0f} | {p['mb_per_sec'] / k:.0f} "
                     f"| {ms(p.get('latency_us'), 'p99_us')} | {cpu_gb(r)} |")

# Kafka's own perf tools (the Java client), against every broker.
PROD = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")
perf_rows = []
for b in brokers:
    f = work / "json" / b / "perftool-producer.txt"
    m = PROD.search(f.read_text()) if f.exists() else None
    if m:
        perf_rows.append(f"| kafka-producer-perf-test (1 KiB, acks=all) | {NAMES.get(b, b)} | {float(m[2]) / 1e3:.0f} k "
                         f"| {float(m[3]) * 1.048576:.0f} | {m[4]} | {m[6]} | {m[8]} | {m[9]} | {m[5]} |")
for b in brokers:
    f = work / "json" / b / "perftool-consumer.txt"
    if not f.exists():
        continue
    rows = [ln for ln in f.read_text().splitlines() if ln and ln[0].isdigit()]
    if rows:
        v = [x.strip() for x in rows[-1].split(",")]
        # start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
        perf_rows.append(f"| kafka-consumer-perf-test (fetch rate, after the group joined) | {NAMES.get(b, b)} "
                         f"| {float(v[9]) / 1e3:.0f} k | {float(v[8]) * 1.048576:.0f} | – | – | – | – | – |")
if perf_rows:
    lines += ["", "## Kafka's perf tools (Java client 4.x) against each broker", "",
              "| tool | broker | records/s | MB/s | avg ms | p50 ms | p99 ms | p99.9 ms | max ms |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"] + perf_rows
lines += [
    "",
    "Cases: `<size>-acks<1|all>-p<partitions>`; one partition per shard uses ~512 KiB batches,",
    "64 partitions 32 KiB batches, 1,000 and 10,000 partitions 16 KiB batches over 4 and 8",
    "connections (2 requests in flight each). Latency is per produce request, from its intended send",
    "time to its answer; e2e latency is from a record's timestamp to its arrival at the",
    "consumer. Peak RSS is the broker's VmHWM at the end of the case (the process's peak so far).",
    "The perf tools' MB/s are converted from their MiB/s.",
    "",
]
out.write_text("\n".join(lines))
