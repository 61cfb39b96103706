#!/usr/bin/env bash
# Shardline's benchmark suite: measures the host's limits, starts a broker
# from this build, runs a fixed set of produce / latency / consume cases
# with shardline-bench and Kafka's own perf tools, and writes bench/RESULTS.md.
#
#   bash bench/run.sh                      # Shardline only (~5 minutes)
#   bash bench/run.sh --against kafka      # the same cases against Apache Kafka 4.x too, one table
#   bash bench/run.sh --against kafka,shardline-interval   # also Shardline with log_flush = interval
#   BASE_BIN=/path/to/old/shardline bash bench/run.sh --against shardline-base
#                                          # before/after: an older build in the same run, same cases
#   DURATION=10s bash bench/run.sh         # longer measured runs
#   SKIP_BUILD=1 bash bench/run.sh         # reuse target/release binaries and tests/java jars
#   BROKER_ARGS="--log-flush interval" bash bench/run.sh
#   SHARDS=2 bash bench/run.sh             # broker cores [default: cores - 1]
#   MANY_PARTS="1000" bash bench/run.sh    # the many-partition cases [default: 1000 10000]
#   SCALING=0 bash bench/run.sh            # skip the 1-vs-N-shards cases
#
# Client and broker share the machine. The broker gets cores 0..SHARDS-1
# (Shardline: one pinned shard per core; Apache Kafka: its JVM restricted to
# the same cores with taskset) and the clients run on the remaining core(s):
# shardline-bench pins its threads from the last core down, Kafka's perf
# tools are restricted to the cores after the broker's. On 2 cores that cut
# Shardline's produce p99 at 100 k msgs/s from ~6 ms to ~1.2 ms.
#
# Phases: every broker runs the unthrottled produce cases first; then every
# broker runs the latency cases at the SAME offered load, 50 % of the lowest
# maximum any broker reached for that case, then the consume cases and Kafka's
# perf tools. One broker runs at a time, with a fresh data dir. Every case
# uses a fresh topic that is deleted afterwards. Each case runs once; run the
# suite again to see the spread.
#
# Apache Kafka (--against kafka): org.apache.kafka:kafka_2.13 from Maven
# Central (tests/java/kafka-dist), KRaft combined mode, started by
# tests/integration/kafka_ref.py with the settings of Kafka's operations
# guide: 6 GiB heap, G1 with MaxGCPauseMillis=20, every broker setting at its
# default (so no fsync per write: log.flush.interval.messages is unlimited and
# durability comes from replication; Shardline's default log_flush = batch
# fsyncs before every acks=all answer, shardline-interval does not).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
AGAINST="${AGAINST:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --against) AGAINST="$2"; shift 2 ;;
    --against=*) AGAINST="${1#--against=}"; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
BROKERS=(shardline)
IFS=',' read -r -a extra <<< "$AGAINST"
for b in "${extra[@]}"; do
  case "$b" in
    "") ;;
    kafka|shardline-interval) BROKERS+=("$b") ;;
    shardline-base)
      [ -x "${BASE_BIN:-}" ] || { echo "--against shardline-base needs BASE_BIN=<an older shardline binary>" >&2; exit 2; }
      BROKERS+=("$b") ;;
    *) echo "--against: unknown broker '$b' (kafka, shardline-interval, shardline-base)" >&2; exit 2 ;;
  esac
done

DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-2s}"
PORT="${PORT:-19392}"
CORES="$(nproc)"
SHARDS="${SHARDS:-$(( CORES > 1 ? CORES - 1 : 1 ))}"
WORK="${WORK:-$ROOT/target/bench-run}"
OUT="${OUT:-$ROOT/bench/RESULTS.md}"
BIN="$ROOT/target/release"
KAFKA_HEAP="${KAFKA_HEAP:-6g}"
WARM_UP_FOR="${WARM_UP_FOR:-10s}"   # per broker start, before anything is measured
PERF_RECORDS="${PERF_RECORDS:-1000000}"
FILL="${FILL:-3000000}"             # records written, then read, by the consume case
BROKER_CPUS="0-$((SHARDS - 1))"
CLIENT_CPUS="$(( SHARDS < CORES ? SHARDS : 0 ))-$((CORES - 1))"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

needs_kafka=0
for b in "${BROKERS[@]}"; do [ "$b" = kafka ] && needs_kafka=1; done
if [ "${SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release -p shardline-broker -p shardline-bench
  # kafka-dist: Apache Kafka's broker and tools (the perf tools run against every broker).
  mvn -q -B -f tests/java/pom.xml -pl kafka-dist package
fi
KAFKA_CP="$ROOT/tests/java/kafka-dist/target/lib/*"
# glommio locks memory for its I/O buffers; the broker shrinks them to fit a
# low limit (and says so), but raise it when we may.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

rm -rf "$WORK"
mkdir -p "$WORK/json"
BROKER_PID=""      # what we stop
MEASURED_PID=""    # what we measure (the Kafka JVM, not its launcher)
stop_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""; MEASURED_PID=""
  rm -rf "$WORK/data"
}
trap stop_broker EXIT

echo "==> host limits (loopback TCP, direct writes and fsync on the data disk)"
mkdir -p "$WORK/data"
"$BIN/shardline-bench" limits --dir "$WORK/data" --json > "$WORK/limits.json"
cat "$WORK/limits.json"; echo
echo "$SHARDS" > "$WORK/shards"
printf '%s\n' "${BROKERS[@]}" > "$WORK/brokers"
echo "$KAFKA_HEAP" > "$WORK/kafka_heap"

start_broker() { # label [shards]
  local label="$1" shards="${2:-$SHARDS}"
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  echo "==> $label on 127.0.0.1:$PORT (cores $BROKER_CPUS, data in $WORK/data)"
  case "$label" in
    shardline|shardline-interval|shardline-base)
      local flush=() bin="$BIN/shardline"
      [ "$label" = shardline-interval ] && flush=(--log-flush interval)
      [ "$label" = shardline-base ] && bin="$BASE_BIN"
      # shellcheck disable=SC2086
      "$bin" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --shards "$shards" \
        "${flush[@]}" ${BROKER_ARGS:-} > "$WORK/$label.log" 2>&1 &
      BROKER_PID=$!; MEASURED_PID=$BROKER_PID
      for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/$label.log"; exit 1; }
        sleep 0.1
      done
      ;;
    kafka)
      taskset -c "$BROKER_CPUS" "$PY" tests/integration/kafka_ref.py --port "$PORT" \
        --dir "$WORK/data" --heap "$KAFKA_HEAP" file.delete.delay.ms=1000 > "$WORK/kafka-launcher.log" 2>&1 &
      BROKER_PID=$!
      for _ in $(seq 1 1200); do
        MEASURED_PID="$(sed -n 's/.*(pid \([0-9]*\),.*/\1/p' "$WORK/kafka-launcher.log")"
        [ -n "$MEASURED_PID" ] && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/kafka-launcher.log"; exit 1; }
        sleep 0.1
      done
      echo "Apache Kafka did not start"; cat "$WORK/kafka-launcher.log"; exit 1
      ;;
  esac
}

bench() { # label, case name, then shardline-bench arguments
  local label="$1" name="$2"; shift 2
  mkdir -p "$WORK/json/$label"
  echo "==> [$label] $name: $*"
  "$BIN/shardline-bench" "$@" --bootstrap "127.0.0.1:$PORT" --broker-pid "$MEASURED_PID" \
    --limits-json "$WORK/limits.json" --json > "$WORK/json/$label/$name.json"
  python3 - "$WORK/json/$label/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
side = r.get("produce") or r.get("consume")
lat = side.get("latency_us") or {}
print(f"    {side['msgs_per_sec']/1e6:.2f} M msgs/s, {side['mb_per_sec']:.0f} MB/s, "
      f"p99 {lat.get('p99_us', 0)/1000:.2f} ms, errors {r['errors_total']}")
PY
}
drop_topic() {
  "$BIN/shardline" topic delete "$1" --bootstrap "127.0.0.1:$PORT" >/dev/null
  # Apache Kafka deletes a topic's files in the background, file.delete.delay.ms
  # after answering (1 s here, 60 s by default): the next case must not run
  # beside 10,000 directories being removed. Shardline's are gone already.
  local _
  for _ in $(seq 1 600); do
    compgen -G "$WORK/data/logs/$1-*" >/dev/null || compgen -G "$WORK/data/$1-*" >/dev/null || return 0
    sleep 0.5
  done
  echo "files of topic $1 still there after 300 s" >&2
}
# Topics of more than 5,000 partitions are made in steps: Apache Kafka's
# controller refuses one operation of more than 10,000 records ("Unable to
# perform excessively large batch operation"). Smaller ones are left to
# the bench's --create-topic.
pre_create() { # topic partitions
  local t="$1" n="$2" have=5000
  [ "$n" -gt 5000 ] || return 0
  "$BIN/shardline" topic create "$t" -p 5000 --bootstrap "127.0.0.1:$PORT" >/dev/null
  while [ "$have" -lt "$n" ]; do
    have=$(( have + 5000 > n ? n : have + 5000 ))
    "$BIN/shardline" topic add-partitions "$t" --num "$have" --bootstrap "127.0.0.1:$PORT" >/dev/null
  done
  # Kafka answers CreatePartitions before its metadata shows them.
  local described
  for _ in $(seq 1 300); do
    # Into a variable first: grep -q would end the pipe early (pipefail).
    described="$("$BIN/shardline" topic describe "$t" --bootstrap "127.0.0.1:$PORT" 2>/dev/null || true)"
    case "$described" in *"PartitionCount: $n"[[:space:]]*) return 0 ;; esac
    sleep 1
  done
  echo "topic $t never showed $n partitions" >&2; return 1
}
prime() { # topic partitions: 8 KiB batches to every partition (four on average), not measured.
  # Apache Kafka writes a partition's first offset- and time-index entries
  # with its second batch (past index.interval.bytes), into 10 MiB sparse
  # files it maps into memory; the first touch of such a page took ~16 ms on
  # a test VM, so a 1,000-partition case measured 2,000 page faults instead
  # of Kafka (1 MB/s). Every broker gets the same priming. At most 128
  # partitions per request (one connection each): a request to 1,250 new
  # partitions took Kafka over the client's 60 s timeout. (At 10,000
  # partitions that is still not enough for Kafka on the test VM: 13 of 79
  # priming connections timed out and it then produced 9 MB/s; README.)
  # Connections claim
  # requests from a shared budget, so a slow one may send fewer: four
  # batches per partition on average leave every partition two or more.
  local t="$1" n="$2"
  local conns=$(( (n + 127) / 128 ))
  "$BIN/shardline-bench" produce --topic "$t" --create-topic --partitions "$n" --message-size 1024 \
    --acks 1 --batch-records 8 --messages "$(( n * 32 ))" --connections "$conns" --warmup 0s \
    --bootstrap "127.0.0.1:$PORT" >/dev/null
}
warm_up() { # not measured: a JVM broker needs its JIT warm, and first touches of new code paths are slow on any broker
  echo "==> warm-up (${WARM_UP_FOR}, not measured)"
  "$BIN/shardline-bench" produce --topic bench-warmup --create-topic --partitions 64 --message-size 1024 \
    --acks 1 --batch-records 64 --duration "$WARM_UP_FOR" --warmup 0s --bootstrap "127.0.0.1:$PORT" >/dev/null
  "$BIN/shardline-bench" consume --topic bench-warmup --from earliest --connections 1 --messages 100000 \
    --warmup 0s --bootstrap "127.0.0.1:$PORT" >/dev/null
  drop_topic bench-warmup
}

SIZES=(100 1024); ACKS=(1 all); PARTS=("$SHARDS" 64)
# Many partitions per broker (issue 13): 1 KiB records only, in 16 KiB
# batches (the Java producer's default batch.size), spread over several
# connections as many producers would; each connection's requests carry a
# batch for each of its partitions.
read -r -a MANY_PARTS <<< "${MANY_PARTS:-1000 10000}"
batch_args() { # size parts
  case "$2" in
    64) echo "--batch-records $((32768 / $1))" ;;   # 32 KiB batches, 2 MiB requests
    "$SHARDS") ;;                                   # ~512 KiB batches
    *) echo "--batch-records $((16384 / $1)) --connections $(( $2 >= 10000 ? 8 : 4 )) --in-flight 2" ;;
  esac
}
all_cases() { # size acks parts, one case per line
  for size in "${SIZES[@]}"; do for acks in "${ACKS[@]}"; do for parts in "${PARTS[@]}"; do
    echo "$size $acks $parts"
  done; done; done
  for acks in "${ACKS[@]}"; do for parts in "${MANY_PARTS[@]}"; do echo "1024 $acks $parts"; done; done
}

idle_partitions() { # label: the broker's RSS with IDLE_PARTITIONS partitions open and idle
  local label="$1" n="${IDLE_PARTITIONS:-10000}" t="bench-idle"
  local before after
  mkdir -p "$WORK/json/$label"
  before="$(awk '/^VmRSS/ {print $2}' "/proc/$MEASURED_PID/status")"
  echo "==> [$label] idle: $n partitions, one small batch each, then 10 s idle"
  pre_create "$t" "$n"
  "$BIN/shardline-bench" produce --topic "$t" --create-topic --partitions "$n" --message-size 100 \
    --acks 1 --batch-records 1 --messages "$n" --warmup 0s --bootstrap "127.0.0.1:$PORT" >/dev/null
  sleep 10
  after="$(awk '/^VmRSS/ {print $2}' "/proc/$MEASURED_PID/status")"
  echo "{\"partitions\": $n, \"rss_before_kib\": $before, \"rss_after_kib\": $after}" \
    > "$WORK/json/$label/idle-partitions.json"
  echo "    RSS $((before / 1024)) -> $((after / 1024)) MiB"
  drop_topic "$t"
}

# ------------------------------------------------------------ phase 1: maxima
for label in "${BROKERS[@]}"; do
  start_broker "$label"
  # First, on a fresh broker: later cases leave the allocator's high-water mark.
  idle_partitions "$label"
  warm_up
  while read -r size acks parts; do
    c="${size}B-acks${acks}-p${parts}"
    pre_create "bench-max-$c" "$parts"
    prime "bench-max-$c" "$parts"
    # shellcheck disable=SC2046
    bench "$label" "produce-$c" produce --topic "bench-max-$c" --create-topic --partitions "$parts" \
      --message-size "$size" --acks "$acks" $(batch_args "$size" "$parts") \
      --duration "$DURATION" --warmup "$WARMUP" < /dev/null
    drop_topic "bench-max-$c"
  done < <(all_cases)
  stop_broker
done

# ------------------------------------------------------------ scaling by shards (Shardline only)
# One partition per shard, 1 KiB acks=all: with 1 shard the client has the
# other core to itself; with 2 shards on this 2-core machine broker and
# client share both cores (stated in the table).
if [ "${SCALING:-1}" = 1 ]; then
  for n in 1 "$CORES"; do
    [ "$n" -le "$CORES" ] || continue
    start_broker shardline "$n"
    bench shardline "scaling-${n}shards" produce --topic "bench-scale-$n" --create-topic --partitions "$n" \
      --message-size 1024 --acks all --connections "$n" --duration "$DURATION" --warmup "$WARMUP"
    drop_topic "bench-scale-$n"
    stop_broker
    [ "$n" = "$CORES" ] && break
  done
fi

# ------------------------------------------------------------ phase 2: same offered load, consumers, perf tools
rate_for() { # case: 50 % of the lowest maximum over all brokers
  python3 - "$WORK/json" "$1" <<'PY'
import json, sys
from pathlib import Path
rates = [json.loads(p.read_text())["produce"]["msgs_per_sec"] for p in Path(sys.argv[1]).glob(f"*/produce-{sys.argv[2]}.json")]
print(max(1, int(min(rates) / 2)))
PY
}
perf_tools() { # label: Kafka's producer and consumer perf tests, 1 KiB records, acks=all
  local label="$1" t="bench-perftool"
  "$BIN/shardline" topic create "$t" -p "$SHARDS" --bootstrap "127.0.0.1:$PORT" >/dev/null
  echo "==> [$label] kafka-producer-perf-test: $PERF_RECORDS x 1 KiB, acks=all"
  taskset -c "$CLIENT_CPUS" java -Xmx1g -cp "$KAFKA_CP" org.apache.kafka.tools.ProducerPerformance \
    --topic "$t" --num-records "$PERF_RECORDS" --record-size 1024 --throughput -1 \
    --producer-props "bootstrap.servers=127.0.0.1:$PORT" acks=all linger.ms=5 batch.size=262144 \
    2>/dev/null | tee "$WORK/json/$label/perftool-producer.txt" | tail -1
  echo "==> [$label] kafka-consumer-perf-test: $PERF_RECORDS records"
  taskset -c "$CLIENT_CPUS" java -Xmx1g -cp "$KAFKA_CP" org.apache.kafka.tools.ConsumerPerformance \
    --bootstrap-server "127.0.0.1:$PORT" --topic "$t" --messages "$PERF_RECORDS" --timeout 60000 \
    2>/dev/null | tee "$WORK/json/$label/perftool-consumer.txt" | tail -1
  drop_topic "$t"
}
for label in "${BROKERS[@]}"; do
  start_broker "$label"
  warm_up
  while read -r size acks parts; do
    c="${size}B-acks${acks}-p${parts}"
    conns=1
    [ "$parts" -ge 1000 ] && conns="$(( parts >= 10000 ? 8 : 4 ))"
    pre_create "bench-lat-$c" "$parts"
    prime "bench-lat-$c" "$parts"
    bench "$label" "latency-$c" produce --topic "bench-lat-$c" --create-topic --partitions "$parts" \
      --message-size "$size" --acks "$acks" --rate "$(rate_for "$c")" --linger-ms 1 \
      --connections "$conns" --duration "$DURATION" --warmup "$WARMUP" < /dev/null
    drop_topic "bench-lat-$c"
  done < <(all_cases)
  # Consumers: from the start of a log written just before (disk and page
  # cache), and at the tail while a producer writes (end to end).
  t="bench-consume-1KiB"
  bench "$label" "fill-1KiB" produce --topic "$t" --create-topic --partitions "$SHARDS" \
    --message-size 1024 --acks 1 --messages "$FILL" --warmup 0s
  bench "$label" "consume-1KiB-earliest" consume --topic "$t" --from earliest --connections "$SHARDS" \
    --messages "$FILL" --warmup 0s
  drop_topic "$t"
  bench "$label" "e2e-1KiB-acks1" e2e --topic "bench-e2e-1KiB" --create-topic --partitions "$SHARDS" \
    --message-size 1024 --acks 1 --duration "$DURATION" --warmup "$WARMUP"
  drop_topic "bench-e2e-1KiB"
  perf_tools "$label"
  stop_broker
done

python3 "$ROOT/bench/results.py" "$WORK" "$OUT"
echo "==> wrote $OUT"
