"""`shardline-bench` (the load generator) against a real broker: its counts
must agree with what the broker stores. No timing assertions."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import broker_binary, create_topic, unique_topic, watermarks


def bench_binary():
    # Built into the same target directory as the broker.
    path = Path(os.environ.get("SHARDLINE_BENCH_BIN", broker_binary().parent / "shardline-bench"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"shardline-bench not found at {path}; run `cargo build --release -p shardline-bench`",
            pytrace=False,
        )
    return path


def bench(broker, *args, timeout=120):
    """Run `shardline-bench ARGS --bootstrap ... --json`; returns the report."""
    cmd = [str(bench_binary()), *args, "--bootstrap", broker.bootstrap, "--json", "--pin", "false"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1, f"expected one JSON line, got:\n{p.stdout}\nstderr:\n{p.stderr}"
    return json.loads(lines[0])


def total_messages(bootstrap, topic, partitions):
    total = 0
    for p in range(partitions):
        lo, hi = watermarks(bootstrap, topic, p)
        total += hi - lo
    return total


def test_e2e_consumes_everything_produced(broker):
    topic = unique_topic("bench-e2e")
    r = bench(broker, "e2e", "--topic", topic, "--create-topic", "--partitions", "2",
              "--duration", "2s", "--warmup", "1s")
    assert r["mode"] == "e2e"
    assert r["config"]["partitions"] == 2
    assert r["produced"] > 0
    assert r["consumed"] == r["produced"], r
    assert r["errors_total"] == 0, r["errors"]
    assert r["failed_messages"] == 0
    assert r["consume"]["latency_us"]["count"] > 0
    assert r["produce"]["latency_us"]["count"] > 0
    assert total_messages(broker.bootstrap, topic, 2) == r["produced"]


@pytest.mark.parametrize("codec", ["lz4", "zstd", "gzip", "snappy"])
def test_e2e_rate_limited_compressed(broker, codec):
    topic = unique_topic(f"bench-{codec}")
    r = bench(broker, "e2e", "--topic", topic, "--create-topic", "--partitions", "2",
              "--rate", "20k", "--duration", "1s", "--warmup", "500ms",
              "--compression", codec, "--acks", "all")
    assert r["produced"] > 0
    assert r["consumed"] == r["produced"], r
    assert r["errors_total"] == 0, r["errors"]
    # Open-loop mode keeps both the corrected and the uncorrected latency.
    assert r["produce"]["latency_us"] is not None
    assert r["produce"]["latency_uncorrected_us"] is not None
    assert total_messages(broker.bootstrap, topic, 2) == r["produced"]


def test_small_batches_across_shards_keep_the_broker_up(broker):
    """Regression: glommio's task handle freed a task twice when the task had
    been woken from another shard (a cross-shard reply) and its handle was
    then dropped; the broker aborted with "free(): double free detected".
    Small batches on two partitions (one per shard) at a steady rate make
    thousands of such request tasks a second: the build before the fix
    aborted in 3 of 4 runs of exactly this (one-record produce, then e2e)."""
    topic = unique_topic("bench-small")
    r = bench(broker, "produce", "--topic", topic + "-1rec", "--create-topic", "--partitions", "2",
              "--message-size", "100", "--batch-records", "1", "--acks", "1",
              "--duration", "5s", "--warmup", "1s")
    assert r["errors_total"] == 0, r["errors"]
    r = bench(broker, "e2e", "--topic", topic, "--create-topic", "--partitions", "2",
              "--message-size", "100", "--rate", "20k", "--linger-ms", "1", "--acks", "1",
              "--duration", "5s", "--warmup", "1s")
    assert broker.is_running(), "the broker died under small cross-shard batches"
    assert r["errors_total"] == 0, r["errors"]
    assert r["consumed"] == r["produced"], r
    assert total_messages(broker.bootstrap, topic, 2) == r["produced"]


def test_produce_exact_count_then_consume_it(broker):
    topic = unique_topic("bench-exact")
    create_topic(broker.bootstrap, topic, partitions=2)
    r = bench(broker, "produce", "--topic", topic, "--messages", "20000", "--acks", "all",
              "--batch-records", "3000")
    assert r["produced"] == 20000, r
    assert r["errors_total"] == 0, r["errors"]
    assert total_messages(broker.bootstrap, topic, 2) == 20000

    c = bench(broker, "consume", "--topic", topic, "--from", "earliest", "--messages", "20000")
    assert c["consumed"] == 20000, c
    assert c["consume"]["bytes"] == 20000 * 100
    assert c["errors_total"] == 0, c["errors"]


def test_produce_with_admin_churn_and_small_segments(broker):
    """--admin-churn creates and deletes topics beside the produce load, and
    the report carries the cycles and the produce p99.99 of that window;
    --segment-bytes makes the created topic roll segments."""
    from conftest import admin_client
    topic = unique_topic("bench-churn")
    r = bench(broker, "produce", "--topic", topic, "--create-topic", "--partitions", "2",
              "--admin-churn", "5", "--segment-bytes", "16KiB", "--batch-records", "50",
              "--rate", "5k", "--duration", "2s", "--warmup", "500ms", "--acks", "all")
    assert r["config"]["admin_churn"] == 5.0
    assert r["config"]["segment_bytes"] == 16384
    c = r["churn"]
    assert c is not None, r
    assert c["errors"] == {}, c["errors"]
    assert c["cycles"] >= 3, c
    assert c["cycles_per_sec"] > 0, c
    assert c["create_latency_us"]["count"] > 0 and c["delete_latency_us"]["count"] > 0, c
    assert c["produce_p9999_us"] == r["produce"]["latency_us"]["p9999_us"]
    assert r["errors_total"] == 0, r["errors"]
    assert r["produced"] > 0
    assert total_messages(broker.bootstrap, topic, 2) == r["produced"]
    # Every churned topic was deleted again.
    names = admin_client(broker.bootstrap).list_topics(timeout=10).topics
    assert not [t for t in names if t.startswith(f"{topic}-churn-")], names
    # The small segment size took: ~250 KB per partition in 16 KiB segments.
    logs = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(logs) > 2, logs


def test_admin_churn_needs_producers(broker):
    p = subprocess.run(
        [str(bench_binary()), "consume", "--bootstrap", broker.bootstrap,
         "--topic", unique_topic("bench-churn-consume"), "--admin-churn", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode != 0
    assert "--admin-churn runs beside producers" in p.stderr, p.stderr


def test_produce_to_missing_topic_fails_without_create(broker):
    p = subprocess.run(
        [str(bench_binary()), "produce", "--bootstrap", broker.bootstrap,
         "--topic", unique_topic("bench-missing"), "--messages", "10"],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode != 0
    assert "does not exist" in p.stderr


def test_limits_reports_host_figures(tmp_path):
    p = subprocess.run(
        [str(bench_binary()), "limits", "--dir", str(tmp_path), "--duration", "300ms",
         "--disk-bytes", "32MiB", "--fsync-iterations", "10", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    l = json.loads(p.stdout)
    for k in ("loopback_bytes_per_sec", "disk_write_bytes_per_sec", "fsync_p50_us", "fsync_p99_us"):
        assert l[k] > 0, l


def soak(broker, *args, timeout=120):
    cmd = [str(bench_binary()), "soak", "--bootstrap", broker.bootstrap, "--json",
           "--broker-pid", str(broker.proc.pid), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert len(lines) == 1, f"expected one JSON report, got:\n{out}\nstderr:\n{err}"
    return p.returncode, json.loads(lines[0]), err


def test_soak_passes_on_a_healthy_broker(broker_factory):
    b = broker_factory()
    rc, r, err = finish(soak(b, "--topic", unique_topic("soak"), "--duration", "10s",
                             "--sample-every", "1s", "--idle-connections", "20",
                             "--idle-refresh", "2s", "--rate", "50"))
    assert rc == 0, f"soak failed on a healthy broker: {r['verdict']}\n{err}"
    assert r["verdict"]["passed"]
    assert r["produced"] >= 300 and r["lost"] == 0 and r["duplicates"] == 0, r
    assert r["idle_requests"] > 0 and r["idle_lost"] == 0, r
    assert len(r["samples"]) >= 9
    s = r["samples"][-1]
    assert s["broker"]["rss_bytes"] > 0 and s["broker"]["fds"] > 0
    assert s["connect"] is not None, "the last sample probes with a new connection"
    assert any("RSS peak" in f for f in r["verdict"]["flatness"]), r["verdict"]


def test_soak_fails_when_the_broker_stops_answering(broker_factory):
    import signal
    import time
    b = broker_factory()
    p = soak(b, "--topic", unique_topic("soak"), "--duration", "14s", "--sample-every", "1s",
             "--idle-connections", "5", "--rate", "20", "--probe-timeout", "1s")
    time.sleep(4)
    b.proc.send_signal(signal.SIGSTOP)  # frozen: connections stay open, nothing answers
    time.sleep(4)
    b.proc.send_signal(signal.SIGCONT)
    rc, r, err = finish(p)
    assert rc != 0, "a soak across a 4 s freeze passed"
    assert not r["verdict"]["passed"]
    assert any("probes failed" in f for f in r["verdict"]["failures"]), r["verdict"]
