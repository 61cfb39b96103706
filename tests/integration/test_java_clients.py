"""The Apache Kafka Java client (org.apache.kafka:kafka-clients) across eight
versions, 0.10.0.1 to 4.4.0, against Shardline.

Each version is one Maven module under tests/java (clients-0.10.0 ...
clients-4) with the driver io.shardline.compat.Driver (tests/java/clients/src:
shared code plus small per-API "slot" classes, so each version compiles
exactly the API it has). One JVM per version runs every capability the
version has and prints, per capability, what it sent and what it read back;
the tests below judge those observations (offsets, keys, values, timestamps,
headers, config values, group offsets) and check some of them independently
with confluent-kafka. A capability the version lacks is skipped with
"not in <version>", after checking that the driver indeed found no such API.

Cross-version: each version writes one topic (12 records over 2 partitions,
explicit timestamps, a null key, a null value, headers from 0.11, half of
them gzip-compressed), then each version reads all eight topics in one JVM;
every (writer, reader) pair must see the writer's records exactly: partition,
offset, key, value, timestamp, and headers where both versions have them.
The same exchange runs on Apache Kafka 4.4 (kafka_ref) for the versions it
still serves (2.1 onwards: KIP-896 removed the older protocol versions), as a
check of the drivers themselves.

kafka-clients 0.10.0 sends no ApiVersions and its assign-only consumers fetch
committed offsets under the empty group id (the default group.id before 2.2).
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka.admin import NewTopic

from conftest import admin_client, unique_topic
from java import json_lines, run_java

DRIVER = "io.shardline.compat.Driver"

# label -> (Maven module, kafka-clients version). 3.9.2 is the newest 3.9 and
# 4.4.0 the newest 4.x that Maven Central serves.
VERSIONS = {
    "0.10.0": ("clients-0.10.0", "0.10.0.1"),
    "0.10.2": ("clients-0.10.2", "0.10.2.2"),
    "0.11": ("clients-0.11", "0.11.0.3"),
    "1.1": ("clients-1.1", "1.1.1"),
    "2.0": ("clients-2.0", "2.0.1"),
    "2.6": ("clients-2.6", "2.6.0"),
    "3.9": ("clients-3.9", "3.9.2"),
    "4": ("clients-4", "4.4.0"),
}


def vtuple(label):
    return tuple(int(x) for x in VERSIONS[label][1].split(".")[:2])


def codecs(label):
    # zstd arrived in 2.1 (KIP-110).
    return ["none", "gzip", "snappy", "lz4"] + (["zstd"] if vtuple(label) >= (2, 1) else [])


# capability -> first kafka-clients version with the API it needs.
SINCE = {
    "auto-create": (0, 10),
    "admin-create": (0, 11),        # AdminClient (KIP-117)
    "produce-none": (0, 10),
    "produce-gzip": (0, 10),
    "produce-snappy": (0, 10),
    "produce-lz4": (0, 10),
    "produce-zstd": (2, 1),
    "idempotent": (0, 11),          # KIP-98
    "group": (0, 10),
    "empty-group": (0, 10),         # until 2.2: group.id defaulted to "" (KIP-289)
    "groups-admin": (2, 0),         # list/describe consumer groups (KIP-222)
    "times": (0, 10, 1),            # offsetsForTimes (KIP-79)
    "delete-records": (2, 0),       # KIP-204
    "admin-configs": (0, 11),       # alterConfigs; incrementalAlterConfigs from 2.3 (KIP-339)
    "create-partitions": (1, 0),    # KIP-195
}


def has(label, cap):
    full = tuple(int(x) for x in VERSIONS[label][1].split("."))
    if cap == "empty-group" and full >= (2, 2):
        return False
    return full >= SINCE[cap]


def has_headers(label):
    return vtuple(label) >= (0, 11)


XV_RECORDS = 12


def run_driver(label, *args, timeout=180):
    """(JSON lines after the version line, None) or (None, why it failed):
    a failing JVM fails only the tests that need its output, once."""
    module, version = VERSIONS[label]
    try:
        cp = run_java(module, DRIVER, args, timeout=timeout, check=False)
    except BaseException as e:  # pytest.fail on timeout
        return None, f"kafka-clients {version}: {e}"
    lines = json_lines(cp.stdout)
    if cp.returncode != 0 or not lines or lines[0] != {"client_version": version}:
        return None, (f"kafka-clients {version}: {args[0]} exited {cp.returncode}\n--- stdout\n"
                      f"{cp.stdout[-3000:]}\n--- stderr\n{cp.stderr[-5000:]}")
    return lines[1:], None


class Matrix:
    """Runs the suites (one JVM per version, a few at a time: most of their
    time is spent waiting on group rebalances) and the cross-version reads,
    once per broker, on first use. Per version: (results, None) or (None,
    failure)."""

    def __init__(self, bootstrap, labels):
        self.bootstrap = bootstrap
        self.labels = labels
        self.run = unique_topic("jc")
        self.base_ts = (int(time.time()) - 3600) * 1000  # explicit timestamps, within retention
        self._suites = None
        self._reads = None

    def xv_topic(self, label):
        return f"{self.run}-xv-{label}"

    def suites(self, caps_only=()):
        if self._suites is None:
            admin = admin_client(self.bootstrap)
            futures = admin.create_topics(
                [NewTopic(self.xv_topic(v), num_partitions=2, replication_factor=1) for v in self.labels]
            )
            for f in futures.values():
                f.result(30)

            def one(label):
                lines, failure = run_driver(
                    label, "suite", self.bootstrap, f"{self.run}-{label}", ",".join(codecs(label)),
                    self.xv_topic(label), self.base_ts, *caps_only)
                return label, ({line["cap"]: line for line in lines} if lines is not None else None, failure)

            with ThreadPoolExecutor(4) as pool:
                self._suites = dict(pool.map(one, self.labels))
        return self._suites

    def suite(self, label):
        results, failure = self.suites()[label]
        if failure:
            pytest.fail(failure, pytrace=False)
        return results

    def reads(self):
        if self._reads is None:
            self.suites()
            spec = ",".join(f"{self.xv_topic(v)}:{XV_RECORDS}" for v in self.labels)

            def one(label):
                lines, failure = run_driver(label, "read-all", self.bootstrap, spec)
                return label, ({line["topic"]: line for line in lines} if lines is not None else None, failure)

            with ThreadPoolExecutor(4) as pool:
                self._reads = dict(pool.map(one, self.labels))
        return self._reads

    def read(self, label):
        results, failure = self.reads()[label]
        if failure:
            pytest.fail(failure, pytrace=False)
        return results


@pytest.fixture(scope="module")
def matrix(request):
    # JAVA_MATRIX_BROKER=kafka runs the whole matrix on Apache Kafka 4.4
    # instead, to see what Kafka does (its 0.10 tests then fail: Kafka 4
    # refuses those clients).
    if os.environ.get("JAVA_MATRIX_BROKER") == "kafka":
        return Matrix(request.getfixturevalue("kafka_ref").bootstrap, list(VERSIONS))
    return Matrix(request.getfixturevalue("broker").bootstrap, list(VERSIONS))


# Versions whose produce and fetch Apache Kafka 4.x still serves: KIP-896
# removed Produce v0-v2 and Fetch v0-v3, which is all 0.10 clients speak.
KAFKA4_LABELS = [v for v in VERSIONS if vtuple(v) >= (0, 11)]


@pytest.fixture(scope="module")
def kafka_matrix(request):
    kafka = request.getfixturevalue("kafka_ref")
    return Matrix(kafka.bootstrap, KAFKA4_LABELS)


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def by_position(records):
    return sorted(records, key=lambda r: (r["p"], r["o"]))


def assert_round_trip(label, out, count):
    """What the version sent (offsets from its acks) is what it read back."""
    sent, read = by_position(out["sent"]), by_position(out["read"])
    assert len(sent) == count
    for p in {r["p"] for r in sent}:
        offsets = [r["o"] for r in sent if r["p"] == p]
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets {offsets}"
    assert [(r["p"], r["o"], r["k"], r["v"], r["ts"]) for r in read] == \
        [(r["p"], r["o"], r["k"], r["v"], r["ts"]) for r in sent]
    assert {r["tt"] for r in read} == {"CreateTime"}
    if has_headers(label):
        assert [r["h"] for r in read] == [r["h"] for r in sent]
        assert all(r["h"] == [["n", r["v"].split("-")[1]]] for r in sent)


def check_auto_create(label, out, m):
    assert out["partitions"] == 1  # the broker's default num.partitions
    assert_round_trip(label, out, 5)


def check_admin_create(label, out, m):
    assert out["partitions"] == 3
    assert_round_trip(label, out, 30)
    assert {r["p"] for r in out["sent"]} == {0, 1, 2}  # keyed records spread over the 3 partitions


def check_produce(codec):
    def check(label, out, m):
        assert_round_trip(label, out, 20)
        assert all(f"-{codec}-" in r["v"] for r in out["read"])
    return check


def check_idempotent(label, out, m):
    assert_round_trip(label, out, 50)
    assert [r["o"] for r in out["read"]] == list(range(50))


def check_group(label, out, m):
    first, committed, second = out["first_consumer"], out["committed"], out["second_consumer"]
    assert out["produced"] == 10
    assert first and first == list(range(len(first)))
    assert len(first) <= 4  # max.poll.records
    assert committed == len(first)
    assert second == list(range(committed, 10))  # resumed exactly at the committed offset


def check_empty_group(label, out, m):
    assert out["first_read"] == 6
    assert out["resumed"] == [3, 4, 5]  # from the offset committed under group id ""


def check_groups_admin(label, out, m):
    assert out["listed"] is True
    d = out["description"]
    assert (d["group"], d["state"], d["members"]) == (out["group"], "Empty", 0)
    assert out["offsets"] == {f"{m.run}-{label}-group/0": 10}  # the second consumer's commit


def check_times(label, out, m):
    base = m.base_ts
    assert [r["ts"] for r in by_position(out["sent"])] == [base + i * 1000 for i in range(10)]
    assert out["at_3500"] == [4, base + 4000]  # first record at or after the time
    assert out["at_9000"] == [9, base + 9000]
    assert out["at_20000"] is None
    seek = out["after_seek"]
    assert (seek["o"], seek["ts"], seek["k"]) == (4, base + 4000, "k-4")


def check_delete_records(label, out, m):
    assert out["low_watermark"] == 5
    assert out["beginning_offset"] == 5
    assert [r["o"] for r in out["read"]] == [5, 6, 7, 8, 9]


def check_admin_configs(label, out, m):
    assert out["before"] == {"retention.ms": ["86400000", False], "cleanup.policy": ["delete", True]}
    assert out["api"] == ("incrementalAlterConfigs" if vtuple(label) >= (2, 3) else "alterConfigs")
    assert out["after"] == {"retention.ms": ["172800000", False], "cleanup.policy": ["delete", True]}


def check_create_partitions(label, out, m):
    assert out["partitions"] == 5
    md = admin_client(m.bootstrap).list_topics(out["topic"], timeout=10)
    assert len(md.topics[out["topic"]].partitions) == 5


CHECKS = {
    "auto-create": check_auto_create,
    "admin-create": check_admin_create,
    **{f"produce-{c}": check_produce(c) for c in ["none", "gzip", "snappy", "lz4", "zstd"]},
    "idempotent": check_idempotent,
    "group": check_group,
    "empty-group": check_empty_group,
    "groups-admin": check_groups_admin,
    "times": check_times,
    "delete-records": check_delete_records,
    "admin-configs": check_admin_configs,
    "create-partitions": check_create_partitions,
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cap", list(CHECKS))
@pytest.mark.parametrize("label", list(VERSIONS))
def test_client(matrix, label, cap):
    results = matrix.suite(label)
    if not has(label, cap):
        # The driver must agree that the API is missing (no silent pass).
        if cap.startswith("produce-"):
            assert cap not in results
        else:
            assert results[cap] == {"cap": cap, "not_in_version": True}
        why = " (group.id has no empty default from 2.2, KIP-289)" if cap == "empty-group" else ""
        pytest.skip(f"not in {VERSIONS[label][1]}{why}")
    out = results.get(cap)
    assert out is not None, f"driver printed no result for {cap}"
    assert "error" not in out, f"{cap} failed in kafka-clients {VERSIONS[label][1]}:\n{out['error']}"
    CHECKS[cap](label, out, matrix)


# --------------------------------------------------------------------------
# Cross-version
# --------------------------------------------------------------------------

def expected_xv(writer, base_ts):
    """The records Driver.writeCrossVersion sends, in send order."""
    version = VERSIONS[writer][1]
    out = []
    for i in range(XV_RECORDS):
        h = [["writer", version], ["i", str(i)]]
        if i == 4:
            h.append(["empty", ""])
        if i == 6:
            h.append(["null", None])
        if i == 8:
            h.append(["i", "again"])
        out.append({
            "p": i % 2,
            "o": i // 2,  # each partition gets every other record, in order
            "k": None if i == 5 else f"k-{i}",
            "v": None if i == 7 else f"value-{i}-from-{version}",
            "ts": base_ts + i * 1000,
            "h": h,
        })
    return out


def check_cross_version(m, writer, reader):
    written = m.suite(writer)["xv-write"]
    assert "error" not in written, written["error"]
    expected = expected_xv(writer, m.base_ts)
    fields = ("p", "o", "k", "v", "ts")
    assert [tuple(r[f] for f in fields) for r in written["sent"]] == [tuple(r[f] for f in fields) for r in expected]

    got = m.read(reader)[m.xv_topic(writer)]
    assert "error" not in got, got["error"]
    read = by_position(got["records"])
    want = by_position(expected)
    assert [tuple(r[f] for f in fields) for r in read] == [tuple(r[f] for f in fields) for r in want]
    assert {r["tt"] for r in read} == {"CreateTime"}
    if has_headers(reader):
        # A writer without headers (0.10) wrote records without any.
        assert [r["h"] for r in read] == [r["h"] if has_headers(writer) else [] for r in want]
    else:
        assert all("h" not in r for r in read)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("reader", list(VERSIONS))
@pytest.mark.parametrize("writer", list(VERSIONS))
def test_cross_version(matrix, writer, reader):
    check_cross_version(matrix, writer, reader)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("reader", KAFKA4_LABELS)
@pytest.mark.parametrize("writer", KAFKA4_LABELS)
def test_cross_version_on_kafka(kafka_matrix, writer, reader):
    """The same exchange on Apache Kafka 4.4: checks the drivers and the
    expectations above (older clients cannot talk to Kafka 4 at all)."""
    kafka_matrix.suites(caps_only=("xv-write",))
    check_cross_version(kafka_matrix, writer, reader)
