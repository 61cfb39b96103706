"""`shardline serve --config FILE` refuses impossible settings at start:
it exits non-zero within seconds, naming the key, and never listens.
Before issue 10, `shards = 0` silently became one shard per core, a
negative retention other than -1 and a segment size beyond what the
32-bit offset index addresses were accepted, and an unknown key got
serde's list of every key instead of the nearest one."""

import subprocess

import pytest

from conftest import HOST, ConfigBroker, admin_client, free_port, running

CASES = [
    # (file body, text the error must contain)
    ("shards = 0", "shards = 0"),
    ("log_retention_ms = -2", "log_retention_ms"),
    ("log_segment_bytes = 3000000000", "log_segment_bytes"),
    ("log_retention_bytes = -7", "log_retention_bytes"),
    ("log_retention_check_interval_ms = 0", "log_retention_check_interval_ms"),
    ("log_flush_interval_ms = 0", "log_flush_interval_ms"),
    ("socket_request_max_bytes = 4294967296", "socket_request_max_bytes"),
    ("group_max_size = 0", "group_max_size"),
    ("max_pending_fetch_waits = 0", "max_pending_fetch_waits"),
    ("cross_shard_queue_depth = 8", "cross_shard_queue_depth"),
    # A key's range (declared in table.rs) is named with the key, also for a
    # value of the wrong type or past the type's own range.
    ("max_in_flight_per_connection = 0", "max_in_flight_per_connection = 0: must be between 1 and 4096"),
    ("max_in_flight_per_connection = 5000", "must be between 1 and 4096"),
    ('max_in_flight_per_connection = "many"', "(must be between 1 and 4096)"),
    ("max_connections = 5000000000", "(must be at least 1)"),
    # Keys in their [section] (README's groups): given twice, or in another
    # section, is refused.
    ("max_connections = 5\n[limits]\nmax_connections = 10", "`max_connections` is given twice"),
    ("[limits]\nlog_retention_ms = 5", "`log_retention_ms` belongs in [storage], not in [limits]"),
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


def test_every_key_has_a_flag_and_a_bad_flag_value_is_refused(shardline_bin, tmp_path):
    """Flags are generated from the same table as the keys: --help lists
    one per key, and a limit given as a flag is validated like the key."""
    helptext = subprocess.run([str(shardline_bin), "serve", "--help"],
                              capture_output=True, timeout=20, text=True).stdout
    for flag in ("--group-max-size", "--max-pending-fetch-waits", "--cross-shard-queue-depth",
                 "--log-retention-ms", "--authorizer-enabled", "--metrics-listen"):
        assert flag in helptext, f"{flag} missing from serve --help"
    proc = subprocess.run(
        [str(shardline_bin), "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--data-dir", str(tmp_path / "data"), "--cross-shard-queue-depth", "3"],
        capture_output=True, timeout=20, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "cross_shard_queue_depth = 3" in out and "listening" not in out, out[-2000:]


@pytest.mark.parametrize("value", ["0", "5000", "many"])
def test_a_flag_out_of_its_range_names_the_key_and_the_range(shardline_bin, tmp_path, value):
    """The range declared for a key holds for its flag too; --help shows it."""
    helptext = subprocess.run([str(shardline_bin), "serve", "--help"],
                              capture_output=True, timeout=20, text=True).stdout
    assert "[between 16 and 1048576]" in helptext, "the range of --cross-shard-queue-depth"
    proc = subprocess.run(
        [str(shardline_bin), "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--data-dir", str(tmp_path / "data"), f"--max-in-flight-per-connection={value}"],
        capture_output=True, timeout=20, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "listening" not in out, out[-2000:]
    assert "max-in-flight-per-connection" in out or "max_in_flight_per_connection" in out, out[-2000:]
    assert "must be between 1 and 4096" in out, out[-2000:]
    assert "panicked" not in out, out[-2000:]


class SectionedBroker(ConfigBroker):
    def __init__(self, binary, base):
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="sectioned")
        self.config_path.write_text(
            f'[network]\nlisten = "{HOST}:{self.port}"\n\n'
            "[storage]\nnum_partitions = 3\nlog_retention_ms = 5000\n\n"
            "[limits]\nmax_in_flight_per_connection = 32\n")


def test_a_sectioned_config_file_starts_and_its_values_apply(shardline_bin, tmp_path):
    """Keys written in their [section] tables take effect like flat ones."""
    from confluent_kafka.admin import ConfigResource, ResourceType
    with running(SectionedBroker(shardline_bin, tmp_path)) as b:
        admin = admin_client(b.bootstrap)
        res = ConfigResource(ResourceType.BROKER, "0")
        configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
        assert configs["num.partitions"].value == "3"
        assert configs["log.retention.ms"].value == "5000"
        assert configs["max.in.flight.per.connection"].value == "32"
