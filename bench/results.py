"""Turn the JSON reports of bench/run.sh into bench/RESULTS.md.

usage: python3 bench/results.py WORK_DIR OUT_FILE
WORK_DIR holds limits.json and json/<case>.json (shardline-bench --json).
"""
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
limits = json.loads((work / "limits.json").read_text())
runs = {p.stem: json.loads(p.read_text()) for p in sorted((work / "json").glob("*.json"))}


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
    b = r.get("broker") or {}
    v = b.get("cpu_seconds_per_gb")
    return f"{v:.2f}" if v is not None else "–"


produce_limit = min(limits["loopback_bytes_per_sec"], limits["disk_write_bytes_per_sec"])
mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
lines = [
    "# Shardline benchmark results",
    "",
    "Written by `bench/run.sh` (see it for the exact commands). Client and broker share",
    "the machine; every figure is one run, so run the suite again to see the spread.",
    "",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {os.cpu_count()} cores ({cpu_model()}), {mem_kb / 2**20:.0f} GiB, Linux {platform.release()}",
    f"- git revision: {sh('git', 'rev-parse', '--short', 'HEAD')}"
    + (" (with uncommitted changes)" if sh("git", "status", "--porcelain", "--untracked-files=no") else ""),
    f"- limits measured in the same run: loopback TCP {limits['loopback_bytes_per_sec'] / 1e6:.0f} MB/s, "
    f"direct sequential write {limits['disk_write_bytes_per_sec'] / 1e6:.0f} MB/s"
    + ("" if limits.get("disk_o_direct", True) else " (buffered: O_DIRECT refused)")
    + f", 16 KiB write + fdatasync p50 {limits['fsync_p50_us']:.0f} µs / p99 {limits['fsync_p99_us']:.0f} µs",
    f"- produce limit = min(loopback, disk) = {produce_limit / 1e6:.0f} MB/s",
    f"- broker: {(work / 'shards').read_text().strip()} shard(s) pinned from core 0 up; shardline-bench threads pinned from the last core down",
    "",
    "## Produce, unthrottled",
    "",
    "| case | msgs/s | MB/s | % of limit | p50 ms | p99 ms | p99.9 ms | broker CPU-s/GB | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for name, r in runs.items():
    if not name.startswith("produce-"):
        continue
    p = r["produce"]
    lat = p.get("latency_us")
    lines.append(
        f"| {name[len('produce-'):]} | {p['msgs_per_sec'] / 1e6:.2f} M | {p['mb_per_sec']:.0f} | {pct(p)} "
        f"| {ms(lat, 'p50_us')} | {ms(lat, 'p99_us')} | {ms(lat, 'p999_us')} | {cpu_gb(r)} | {r['errors_total']} |"
    )
lines += [
    "",
    "## Produce latency at 50 % of that case's maximum (open loop, corrected for coordinated omission)",
    "",
    "| case | target msgs/s | achieved | p50 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for name, r in runs.items():
    if not name.startswith("latency-"):
        continue
    p = r["produce"]
    lat = p.get("latency_us")
    lines.append(
        f"| {name[len('latency-'):]} | {r['config']['rate'] / 1e6:.2f} M | {p['msgs_per_sec'] / 1e6:.2f} M "
        f"| {ms(lat, 'p50_us')} | {ms(lat, 'p99_us')} | {ms(lat, 'p999_us')} | {ms(lat, 'p9999_us')} "
        f"| {ms(lat, 'max_us')} | {r['errors_total']} |"
    )
lines += ["", "## Consume", "", "| case | msgs/s | MB/s | % of loopback | latency p50 ms | p99 ms | errors |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, r in runs.items():
    c = r.get("consume")
    if not c or name.startswith("fill"):
        continue
    lat = c.get("latency_us")
    extra = ""
    if r.get("produced") is not None and r.get("consumed") is not None and r["mode"] == "e2e":
        extra = f" (produced {r['produced']}, consumed {r['consumed']})"
    lines.append(
        f"| {name}{extra} | {c['msgs_per_sec'] / 1e6:.2f} M | {c['mb_per_sec']:.0f} | {pct(c)} "
        f"| {ms(lat, 'p50_us')} | {ms(lat, 'p99_us')} | {r['errors_total']} |"
    )
lines += [
    "",
    "Cases: `<size>-acks<1|all>-p<partitions>`; one partition per shard uses ~512 KiB batches,",
    "64 partitions 32 KiB batches. Latency is per produce request, from its intended send",
    "time to its answer (`--linger-ms 1`); e2e latency is from a record's timestamp to its",
    "arrival at the consumer. `log_flush = batch`: acks=all answers after the fdatasync.",
    "",
]
out.write_text("\n".join(lines))
