"""kafkajs against Shardline. kafkajs can only consume through a consumer
group (not implemented by the broker yet), so the node script creates the
topic and produces, and the data is verified here with confluent-kafka."""

import json
import shutil
import subprocess
from pathlib import Path

from conftest import consume, headers_of, unique_topic

JS_DIR = Path(__file__).resolve().parents[1] / "js"

def test_kafkajs_admin_and_produce(bootstrap):
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), f"run `npm install` in {JS_DIR}"

    topic = unique_topic("kjs")
    n = 60
    proc = subprocess.run(
        [node, str(JS_DIR / "produce.js"), bootstrap, topic, str(n)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"node exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    deliveries = report["deliveries"]
    assert len(deliveries) == n

    expected = {0: [], 1: []}
    for d in deliveries:
        i = d["i"]
        expected[d["partition"]].append(
            (d["offset"], b"key-%d" % i, b"kafkajs-value-%d" % i, [("idx", str(i).encode()), ("client", b"kafkajs")])
        )
    for p, exp in expected.items():
        exp.sort()
        assert [e[0] for e in exp] == list(range(len(exp))), f"partition {p} offsets not dense: {exp}"
        got = consume(bootstrap, topic, partition=p, expect=len(exp))
        assert [(m.offset(), m.key(), m.value(), headers_of(m)) for m in got] == exp
