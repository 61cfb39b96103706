"""`shardline serve --config FILE` refuses impossible settings at start:
it exits non-zero within seconds, naming the key, and never listens.
Before issue 10, `shards = 0` silently became one shard per core, a
negative retention other than -1 and a segment size beyond what the
32-bit offset index addresses were accepted, and an unknown key got
serde's list of every key instead of the nearest one."""

import subprocess

import pytest

from conftest import free_port

CASES = [
    # (file body, text the error must contain)
    ("shards = 0", "shards = 0"),
    ("log_retention_ms = -2", "log_retention_ms"),
    ("log_segment_bytes = 3000000000", "log_segment_bytes"),
    ("log_retention_bytes = -7", "log_retention_bytes"),
    ("log_retention_check_interval_ms = 0", "log_retention_check_interval_ms"),
    ("log_flush_interval_ms = 0", "log_flush_interval_ms"),
    ("socket_request_max_bytes = 4294967296", "socket_request_max_bytes"),
    ("log_retension_ms = 1000", "unknown key `log_retension_ms`; the nearest valid key is `log_retention_ms`"),
    ("log.retention.ms = 1000", "unknown key `log.retention.ms`; Kafka's log.retention.ms is `log_retention_ms`"),
]


@pytest.mark.parametrize("body,expected", CASES, ids=[c[0].split(" ")[0] for c in CASES])
def test_a_bad_config_file_stops_the_start_naming_the_key(shardline_bin, tmp_path, body, expected):
    cfg = tmp_path / "broker.toml"
    cfg.write_text(f'listen = "127.0.0.1:{free_port()}"\n{body}\n')
    proc = subprocess.run(
        [str(shardline_bin), "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data")],
        capture_output=True, timeout=20, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"accepted {body!r}:\n{out[-2000:]}"
    assert "listening" not in out, out[-2000:]
    assert expected in out, f"{body!r}: the error does not say {expected!r}:\n{out[-2000:]}"
    assert str(cfg) in out, "the error names the file"


def test_shards_flag_zero_is_refused_too(shardline_bin, tmp_path):
    proc = subprocess.run(
        [str(shardline_bin), "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--data-dir", str(tmp_path / "data"), "--shards", "0"],
        capture_output=True, timeout=20, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "shards = 0" in out and "listening" not in out, out[-2000:]
