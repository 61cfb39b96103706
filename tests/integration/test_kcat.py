"""kcat (librdkafka CLI) against Shardline: metadata, produce, and a
group-less consume from the beginning."""

import json
import shutil
import subprocess

import pytest

from conftest import consume, create_topic, headers_of, unique_topic

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(bootstrap, *args, input=None, timeout=60):
    assert KCAT, "kcat is not installed (apt-get install kcat)"
    proc = subprocess.run(
        [KCAT, "-b", bootstrap, "-m", "15", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    return proc


def ok(proc):
    assert proc.returncode == 0, (
        f"kcat exited {proc.returncode}\nstdout:\n{proc.stdout.decode(errors='replace')[-3000:]}"
        f"\nstderr:\n{proc.stderr.decode(errors='replace')[-3000:]}"
    )
    return proc.stdout.decode()


def kcat_consume(bootstrap, topic, *extra):
    out = ok(kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q", *extra))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_kcat_metadata(bootstrap):
    topic = unique_topic("kcat-md")
    create_topic(bootstrap, topic, 3)
    md = json.loads(ok(kcat(bootstrap, "-L", "-J")))
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert bootstrap in brokers.values(), md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, sorted(topics)
    t = topics[topic]
    assert t.get("error") in (None, ""), t
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] in brokers, p
        assert [r["id"] for r in p["replicas"]] == [p["leader"]]
        assert [r["id"] for r in p["isrs"]] == [p["leader"]]

    # Plain-text listing too.
    text = ok(kcat(bootstrap, "-L"))
    assert f'topic "{topic}" with 3 partitions' in text, text


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_consume(bootstrap, codec):
    topic = unique_topic(f"kcat-{codec}")
    n = 25
    lines = [f"key{i}:value number {i} " + "x" * i for i in range(n)]
    args = ["-P", "-t", topic, "-p", "0", "-K", ":", "-H", "origin=kcat", "-H", f"codec={codec}"]
    if codec != "none":
        args += ["-z", codec]
    ok(kcat(bootstrap, *args, input=("\n".join(lines) + "\n").encode()))

    msgs = kcat_consume(bootstrap, topic)
    assert len(msgs) == n, msgs[-3:]
    for i, m in enumerate(msgs):
        assert m["topic"] == topic
        assert m["partition"] == 0
        assert m["offset"] == i
        assert m["key"] == f"key{i}"
        assert m["payload"] == f"value number {i} " + "x" * i
        assert m["headers"] == ["origin", "kcat", "codec", codec]

    # The same data through confluent-kafka.
    got = consume(bootstrap, topic, expect=n)
    assert [(g.offset(), g.key(), headers_of(g)) for g in got] == [
        (i, f"key{i}".encode(), [("origin", b"kcat"), ("codec", codec.encode())]) for i in range(n)
    ]


def test_kcat_consume_offsets_and_count(bootstrap):
    topic = unique_topic("kcat-off")
    ok(kcat(bootstrap, "-P", "-t", topic, "-p", "0", input=b"".join(b"m%d\n" % i for i in range(30))))
    # absolute start offset
    msgs = kcat_consume(bootstrap, topic, "-p", "0", "-o", "12")
    assert [(m["offset"], m["payload"]) for m in msgs] == [(i, f"m{i}") for i in range(12, 30)]
    # relative from end
    msgs = kcat_consume(bootstrap, topic, "-p", "0", "-o", "-5")
    assert [m["offset"] for m in msgs] == list(range(25, 30))
    # count limit
    out = ok(kcat(bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "3", "-f", "%o=%s\n", "-q"))
    assert out.splitlines() == ["0=m0", "1=m1", "2=m2"]
