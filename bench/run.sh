#!/usr/bin/env bash
# Shardline's benchmark suite: measures the host's limits, starts a broker
# from this build, runs a fixed set of produce / latency / consume cases
# with shardline-bench, and writes bench/RESULTS.md.
#
#   bash bench/run.sh                      # the whole suite (~4 minutes)
#   DURATION=10s bash bench/run.sh         # longer measured runs
#   SKIP_BUILD=1 bash bench/run.sh         # reuse target/release binaries
#   BROKER_ARGS="--log-flush interval" bash bench/run.sh
#   SHARDS=2 bash bench/run.sh             # broker shards [default: cores - 1]
#
# Client and broker share the machine. The broker gets cores - 1 shards
# (pinned from core 0 up) and shardline-bench pins its threads from the
# last core down, so they do not take turns on one core: on 2 cores that
# cut produce p99 at 100 k msgs/s from ~6 ms to ~1.2 ms at the same
# throughput (the disk, not the broker's CPU, is the limit here).
#
# Every case uses a fresh topic that is deleted afterwards, so the suite
# needs only a few GB of free disk at a time. Results are medians of nothing:
# each case runs once; run the suite again to see the spread.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-2s}"
PORT="${PORT:-19392}"
CORES="$(nproc)"
SHARDS="${SHARDS:-$(( CORES > 1 ? CORES - 1 : 1 ))}"
WORK="${WORK:-$ROOT/target/bench-run}"
OUT="${OUT:-$ROOT/bench/RESULTS.md}"
BIN="$ROOT/target/release"

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release -p shardline-broker -p shardline-bench
fi
# glommio locks memory for its I/O buffers; the broker shrinks them to fit a
# low limit (and says so), but raise it when we may.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

rm -rf "$WORK"
mkdir -p "$WORK/data" "$WORK/json"
BROKER_PID=""
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK/data"
}
trap cleanup EXIT

echo "==> host limits (loopback TCP, direct writes and fsync on the data disk)"
"$BIN/shardline-bench" limits --dir "$WORK/data" --json > "$WORK/limits.json"
cat "$WORK/limits.json"; echo

echo "==> broker on 127.0.0.1:$PORT (data in $WORK/data)"
# shellcheck disable=SC2086
"$BIN/shardline" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --shards "$SHARDS" \
  ${BROKER_ARGS:-} > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/broker.log"; exit 1; }
  sleep 0.1
done
echo "$SHARDS" > "$WORK/shards"

bench() { # name, then shardline-bench arguments
  local name="$1"; shift
  echo "==> $name: $*"
  "$BIN/shardline-bench" "$@" --bootstrap "127.0.0.1:$PORT" --broker-pid "$BROKER_PID" \
    --limits-json "$WORK/limits.json" --json > "$WORK/json/$name.json"
  python3 - "$WORK/json/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
side = r.get("produce") or r.get("consume")
lat = side.get("latency_us") or {}
print(f"    {side['msgs_per_sec']/1e6:.2f} M msgs/s, {side['mb_per_sec']:.0f} MB/s, "
      f"p99 {lat.get('p99_us', 0)/1000:.2f} ms, errors {r['errors_total']}")
PY
}
max_rate() { python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['produce']['msgs_per_sec']))" "$1"; }
drop_topic() { "$BIN/shardline" topic delete "$1" --bootstrap "127.0.0.1:$PORT" >/dev/null; }

for size in 100 1024; do
  for acks in 1 all; do
    for parts in "$SHARDS" 64; do
      case_name="produce-${size}B-acks${acks}-p${parts}"
      topic="bench-$case_name"
      batch=()
      # 64 partitions: 32 KiB batches (a 2 MiB request), as many small
      # producers would send; one partition per shard: the default ~512 KiB.
      if [ "$parts" = 64 ]; then batch=(--batch-records $((32768 / size))); fi
      bench "$case_name" produce --topic "$topic" --create-topic --partitions "$parts" \
        --message-size "$size" --acks "$acks" "${batch[@]}" --duration "$DURATION" --warmup "$WARMUP"
      half=$(( $(max_rate "$WORK/json/$case_name.json") / 2 ))
      bench "latency-${size}B-acks${acks}-p${parts}" produce --topic "$topic" --partitions "$parts" \
        --message-size "$size" --acks "$acks" --rate "$half" --linger-ms 1 \
        --duration "$DURATION" --warmup "$WARMUP"
      drop_topic "$topic"
    done
  done
done

# Consumers: from the start of a log written just before (disk and page
# cache), and at the tail while a producer writes (end to end).
topic="bench-consume-1KiB"
bench "fill-1KiB" produce --topic "$topic" --create-topic --partitions "$SHARDS" \
  --message-size 1024 --acks 1 --messages 3000000 --warmup 0s
bench "consume-1KiB-earliest" consume --topic "$topic" --from earliest --connections "$SHARDS" \
  --messages 3000000 --warmup 0s
drop_topic "$topic"
topic="bench-e2e-1KiB"
bench "e2e-1KiB-acks1" e2e --topic "$topic" --create-topic --partitions "$SHARDS" \
  --message-size 1024 --acks 1 --duration "$DURATION" --warmup "$WARMUP"
drop_topic "$topic"

python3 "$ROOT/bench/results.py" "$WORK" "$OUT"
echo "==> wrote $OUT"
