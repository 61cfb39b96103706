"""`shardline tune` and `shardline iotune`, and the broker picking up the
iotune.toml of its data directory at start."""

import json
import re
import subprocess
import tomllib

CHECKS = [
    "io_uring",
    "memlock",
    "open_files",
    "cpu_governor",
    "transparent_hugepages",
    "swappiness",
    "disk_scheduler",
    "disk_nomerges",
    "irq_affinity",
    "aio_max_nr",
]


def run(shardline_bin, *args, timeout=120):
    return subprocess.run(
        [str(shardline_bin), *args], capture_output=True, text=True, timeout=timeout
    )


def test_tune_json_reports_every_check(shardline_bin, tmp_path):
    p = run(shardline_bin, "tune", "--json", "--data-dir", str(tmp_path / "data"), "--shards", "2")
    assert p.returncode in (0, 1), p.stderr
    report = json.loads(p.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names == CHECKS
    for c in report["checks"]:
        assert c["status"] in ("ok", "warn", "fail", "n/a"), c
        for key in ("current", "wanted", "why", "fix"):
            assert key in c, (key, c)
        assert c["why"], c
    failed = any(c["status"] == "fail" for c in report["checks"])
    assert report["fit"] is (not failed)
    assert p.returncode == (1 if failed else 0)
    assert "changes" not in report, "nothing is applied without --apply"


def test_tune_text_explains_findings(shardline_bin, tmp_path):
    p = run(shardline_bin, "tune", "--data-dir", str(tmp_path))
    assert p.returncode in (0, 1), p.stderr
    for name in CHECKS:
        assert name in p.stdout
    assert "why:" in p.stdout
    assert re.search(r"^(fit|NOT fit): \d+ ok, \d+ warn, \d+ fail, \d+ n/a$", p.stdout, re.M), p.stdout


def test_iotune_writes_settings_the_broker_uses(shardline_bin, tmp_path, broker_factory):
    data = tmp_path / "data"
    p = run(shardline_bin, "iotune", "--quick", "--data-dir", str(data))
    assert p.returncode == 0, p.stderr
    out = data / "iotune.toml"
    doc = tomllib.loads(out.read_text())
    settings = doc["settings"]
    for key in ("write_queue_depth", "write_chunk_bytes", "group_commit_window_us"):
        assert isinstance(settings[key], int), (key, settings)
    assert settings["write_chunk_bytes"] % 4096 == 0
    assert doc["device"]["date"]
    m = doc["measurements"]
    assert m["fdatasync_p50_us"] > 0 and m["read_128k_qd16_mib_s"] > 0
    assert {(w["size"], w["queue_depth"]) for w in m["write"]} == {
        (s, q) for s in (4096, 16384, 65536, 131072, 1 << 20) for q in (1, 4, 16, 32)
    }
    assert sorted(x.name for x in data.iterdir()) == ["iotune.toml"], "scratch file removed"

    b = broker_factory(data_dir=data)
    line = next(
        (l for l in b.log_text().splitlines() if "iotune: write_queue_depth=" in l), None
    )
    assert line is not None, b.log_tail()
    assert (
        f"write_queue_depth={settings['write_queue_depth']}, "
        f"write_chunk_bytes={settings['write_chunk_bytes']}, "
        f"group_commit_window_us={settings['group_commit_window_us']} (from {out}"
    ) in line, line


def test_broker_without_iotune_file_suggests_it(broker_factory):
    b = broker_factory()
    assert "iotune: no " in b.log_text(), b.log_tail()
    assert "run `shardline iotune" in b.log_text()


def test_malformed_iotune_file_refuses_start(shardline_bin, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "iotune.toml").write_text(
        "[settings]\nwrite_queue_depth = 4\nwrite_chunk_bytes = 5000\ngroup_commit_window_us = 0\n"
    )
    p = run(shardline_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), timeout=30)
    assert p.returncode == 1
    assert str(data / "iotune.toml") in p.stderr and "write_chunk_bytes" in p.stderr, p.stderr
