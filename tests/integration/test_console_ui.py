"""The console's web UI (issue 17), in real headless Chromium (Debian's
`/usr/bin/chromium` driven by playwright-core from tests/js) against a real
broker with SASL/SCRAM and the authorizer on: log in, create a topic, send
messages from the UI and find them by offset and by time; a confluent-kafka
consumer group's lag and its lag chart drawn; a reset to a time refused
while the member is active, then previewed and applied, and the consumer
resumes there; a user without DESCRIBE on a topic does not see it; the open
mode's banner; an alert rule on a group's lag created in the UI fires to
a webhook receiver run by the test and resolves once the consumer catches
up. Each scenario is a function of tests/js/console_ui.mjs; the
screenshots of every page land in target/console-screenshots/."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from conftest import running, unique_topic
from webhook_receiver import Receiver
from test_console_api import ADMIN, ADMIN_PW, Api, ConsoleBroker, wait_for

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
SHOTS = ROOT / "target" / "console-screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def scenario(name, base, shots, **cfg):
    """Run one browser scenario; its failure message is the test's."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium (tests/run.sh does)"
    assert (JS / "node_modules" / "playwright-core").exists(), "run npm ci in tests/js (tests/run.sh does)"
    shots.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["node", "console_ui.mjs", name,
                        json.dumps({"base": base, "screenshots": str(shots), **cfg})],
                       cwd=JS, capture_output=True, text=True, timeout=240)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for png in shots.glob("*.png"):
        shutil.copy(png, SHOTS / png.name)
    assert r.returncode == 0, f"scenario {name}:\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def cb(shardline_bin, tmp_path_factory):
    b = ConsoleBroker(shardline_bin, tmp_path_factory.mktemp("console-ui"))
    b.extra_args += ["--alert-eval-interval-ms", "500"]  # alerts within seconds
    with running(b):
        b.base = f"http://127.0.0.1:{b.admin_port}"
        b.admin = Api(b.admin_port)
        b.admin.login(ADMIN, ADMIN_PW)
        yield b


def test_the_ui_is_served_with_its_assets(cb):
    import urllib.request
    with urllib.request.urlopen(cb.base + "/groups/some-group", timeout=10) as r:
        page = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/html") and r.headers["Cache-Control"] == "no-cache"
    script = page.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/assets/") and script.endswith(".js"), page
    with urllib.request.urlopen(cb.base + script, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
        assert "immutable" in r.headers["Cache-Control"] and len(r.read()) > 10_000


def test_log_in_create_a_topic_send_and_browse(cb, tmp_path):
    t = unique_topic("ui")
    scenario("topics_and_messages", cb.base, tmp_path, user=ADMIN, password=ADMIN_PW, topic=t)
    # What the UI sent is in the log as sent.
    page = cb.admin.ok("GET", f"/api/v1/topics/{t}/partitions/0/messages")
    assert [m["value"]["text"] for m in page["messages"]] == ["first", '{"n":2}', "third", "fourth"]
    assert page["messages"][0]["key"]["text"] == "k0"
    assert page["messages"][0]["headers"][0]["value"]["text"] == "ui-test"


def test_group_lag_chart_and_a_reset_to_a_time(cb, tmp_path):
    t = unique_topic("uig")
    g = f"g-{t}"
    cb.admin.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    now = int(time.time() * 1000)
    p = Producer(cb.kafka_conf())
    for i in range(10):  # five two hours old, five now
        p.produce(t, value=f"m{i}".encode(), partition=0, timestamp=now - 7_200_000 if i < 5 else now)
    assert p.flush(30) == 0
    conf = {**cb.kafka_conf(), "group.id": g, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    c = Consumer(conf)
    try:
        c.subscribe([t])
        got = []
        wait_for("3 messages", lambda: got.extend(
            m for m in [c.poll(0.5)] if m is not None and not m.error()) or len(got) >= 3)
        c.commit(offsets=None, message=got[2], asynchronous=False)  # committed 3 of 10
        # The sampler reads group lag every 30 s: a line needs two points.
        wait_for("two lag samples", lambda: len(cb.admin.ok(
            "GET", f"/api/v1/groups/{g}/lag-history")["series"].get(f"group_lag:{g}", [])) >= 2,
            timeout=100, interval=2)
        scenario("group_active", cb.base, tmp_path, user=ADMIN, password=ADMIN_PW, group=g,
                 topic=t, lag=7)
    finally:
        c.close()
    wait_for("an empty group", lambda: cb.admin.ok("GET", f"/api/v1/groups/{g}")["state"] == "Empty")
    scenario("group_reset", cb.base, tmp_path, user=ADMIN, password=ADMIN_PW, group=g, topic=t,
             reset_time=now - 3_600_000, committed=3, expect_offset=5)
    c = Consumer(conf)
    try:
        c.subscribe([t])
        first = wait_for("a message", lambda: (lambda m: m if m is not None and not m.error()
                                               else None)(c.poll(0.5)))
        assert first.offset() == 5 and first.value() == b"m5", (first.offset(), first.value())
    finally:
        c.close()


def test_a_lag_alert_made_in_the_ui_fires_to_a_webhook_and_resolves(cb, tmp_path):
    t = unique_topic("uia")
    g, rule = f"g-{t}", f"lag-{t}"
    hook = Receiver()
    cb.admin.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    p = Producer(cb.kafka_conf())
    conf = {**cb.kafka_conf(), "group.id": g, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    c = Consumer(conf)
    try:
        c.subscribe([t])

        def produce(n, start):
            for i in range(start, start + n):
                p.produce(t, value=f"m{i}".encode(), partition=0)
            assert p.flush(30) == 0

        def consume_all(upto):
            got = []
            wait_for(f"offsets up to {upto}", lambda: got.extend(
                m for m in [c.poll(0.5)] if m is not None and not m.error())
                or (got and got[-1].offset() >= upto - 1))
            c.commit(message=got[-1], asynchronous=False)

        produce(5, 0)
        consume_all(5)  # caught up: lag 0
        produce(50, 5)  # the consumer stops polling: it falls 50 behind
        scenario("alert_rule", cb.base, tmp_path, user=ADMIN, password=ADMIN_PW, rule=rule,
                 group=g, threshold=20, webhook=hook.url)
        fired = wait_for("the firing webhook", lambda: hook.of(rule, "firing"))
        assert fired[0]["subject"] == f"group={g}" and fired[0]["value"] == 50, fired
        assert fired[0]["severity"] == "critical"
        consume_all(55)  # caught up again
        resolved = wait_for("the resolved webhook", lambda: hook.of(rule, "resolved"))
        assert resolved[0]["value"] == 0 and resolved[0]["subject"] == f"group={g}", resolved
        scenario("alert_resolved", cb.base, tmp_path, user=ADMIN, password=ADMIN_PW, rule=rule)
        assert cb.admin.ok("GET", f"/api/v1/alerts/rules/{rule}")["enabled"] is False
        assert len(hook.of(rule, "firing")) == 1 and len(hook.of(rule, "resolved")) == 1
    finally:
        c.close()
        hook.close()


def test_a_user_without_describe_does_not_see_the_topic(cb, tmp_path):
    visible, hidden = unique_topic("bobs"), unique_topic("hidden")
    for x in (visible, hidden):
        cb.admin.ok("POST", "/api/v1/topics", {"name": x, "partitions": 1})
    cb.admin.ok("POST", "/api/v1/users", {"name": "bob", "password": "bob-secret"})
    cb.admin.ok("POST", "/api/v1/acls", {"resource_type": "topic", "resource_name": visible,
                                         "principal": "User:bob", "operation": "describe"})
    scenario("acl_view", cb.base, tmp_path, user="bob", password="bob-secret", visible=visible,
             hidden=hidden)


def test_the_open_console_says_so(shardline_bin, tmp_path):
    (tmp_path / "b").mkdir()
    with running(ConsoleBroker(shardline_bin, tmp_path / "b", open_mode=True)) as b:
        scenario("open_banner", f"http://127.0.0.1:{b.admin_port}", tmp_path / "shots")
