"""The Grafana dashboard shipped in broker/console/grafana: it has the shape
Grafana imports (a `${DS_PROMETHEUS}` input as dashboards on grafana.com
have, schemaVersion, panels with unique ids, grid positions that do not
overlap, targets with PromQL), and every metric and label its queries use
is in the `/metrics` of a real broker after produce and fetch traffic, so
no panel stays empty because of a misspelt or removed metric."""

import json
import re
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer

from conftest import HOST, running, unique_topic
from test_console_api import ConsoleBroker

DASHBOARD = (Path(__file__).resolve().parents[2] / "broker" / "console" / "grafana"
             / "shardline-dashboard.json")
# Labels Prometheus adds to every scraped series, and the histogram's.
SCRAPE_LABELS = {"instance", "job"}


def load():
    return json.loads(DASHBOARD.read_text())


def queries(dash):
    """(panel title, PromQL) of every target, and the variables' queries."""
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["query"]["query"]))
    return out


def test_the_dashboard_has_grafanas_shape():
    d = load()
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36, d["schemaVersion"]
    assert d["title"] and d["uid"] and isinstance(d["panels"], list)
    inputs = {i["name"]: i for i in d["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    cells = {}
    for p in d["panels"]:
        g = p["gridPos"]
        assert {"x", "y", "w", "h"} <= set(g) and all(isinstance(g[k], int) for k in g), p
        assert 0 <= g["x"] and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat"), p["type"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], f"{p['title']!r} has no targets"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}" and t["expr"].strip(), p["title"]
    titles = " | ".join(p["title"] for p in d["panels"]).lower()
    # What an operator expects to find (the list).
    for want in ("request rate", "latency p99", "latency p50", "bytes in and out", "errors",
                 "partitions per broker", "leaders per broker", "under-replicated",
                 "offline", "active controller", "quorum follower lag", "fenced",
                 "disk used", "disk free"):
        assert want in titles, f"no panel about {want!r}: {titles}"


def scrape(b):
    """{metric sample name: set of label names} of one /metrics scrape."""
    with urllib.request.urlopen(f"http://{HOST}:{b.admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
        assert m, line
        labels = {kv.split("=", 1)[0] for kv in (m.group(2) or "").split(",") if kv}
        out.setdefault(m.group(1), set()).update(labels)
    return out


def traffic(b):
    t = unique_topic("grafana")
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(200):
        p.produce(t, f"v{i}".encode(), key=str(i % 7).encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{t}",
                  "auto.offset.reset": "earliest"})
    try:
        c.subscribe([t])
        got, deadline = 0, time.monotonic() + 30
        while got < 200 and time.monotonic() < deadline:
            m = c.poll(0.5)
            got += m is not None and not m.error()
        assert got == 200, got
        c.commit(asynchronous=False)
    finally:
        c.close()


def test_every_metric_the_dashboard_queries_is_exported(shardline_bin, tmp_path):
    d = load()
    with running(ConsoleBroker(shardline_bin, tmp_path, open_mode=True)) as b:
        traffic(b)
        exported = scrape(b)
    problems = []
    for title, expr in queries(d):
        names = set(re.findall(r"\bshardline_[a-zA-Z0-9_]+", expr))
        if not names:
            problems.append(f"{title}: {expr!r} queries no shardline metric")
        missing = names - set(exported)
        if missing:
            problems.append(f"{title}: {sorted(missing)} not in /metrics")
            continue
        known = set().union(*(exported[n] for n in names)) | SCRAPE_LABELS
        used = set()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            used |= {x.strip() for x in group.split(",") if x.strip()}
        for sel in re.findall(r"\{([^}]*)\}", expr):
            used |= {m for m in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel)}
        if used - known:
            problems.append(f"{title}: labels {sorted(used - known)} not on {sorted(names)}")
    assert not problems, "\n".join(problems)
