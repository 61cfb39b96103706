"""The console's alerts (issue 17, "Alerts") against real brokers: rules and
silences through `/api/v1/alerts/...` (create, read, replace, patch,
delete; duplicates 409, unknown 404, bad input 4xx with a JSON error and
never 5xx), authorization as Kafka's (DESCRIBE on the cluster to read,
ALTER to change), a consumer-group lag rule firing to a webhook receiver run
by the test and resolving once the group catches up, `for` keeping an
alert pending, a silence recording but not notifying, disk and latency
rules read from DescribeLogDirs and the controller's metrics, and in a
three-node cluster exactly one notification per alert, sent by the active
controller, with no second firing notification after a failover."""

import re
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from cluster import Cluster
from webhook_receiver import Receiver
from conftest import running, unique_topic
from test_console_api import (ADMIN, ADMIN_PW, ALICE, ALICE_PW, Api, ConsoleBroker,
                              assert_error, wait_for)
from console_openapi import SPEC

# Rounds every 300 ms: the tests wait seconds, not the default 10 s rounds.
FAST = ["--alert-eval-interval-ms", "300"]

CALLED = set()


class AlertsApi(Api):
    def call(self, method, path, *a, **kw):
        CALLED.add((method, path))
        return super().call(method, path, *a, **kw)


@pytest.fixture(scope="module")
def cb(shardline_bin, tmp_path_factory):
    b = ConsoleBroker(shardline_bin, tmp_path_factory.mktemp("alerts"))
    b.extra_args += FAST
    with running(b):
        admin = AlertsApi(b.admin_port)
        admin.login(ADMIN, ADMIN_PW)
        admin.ok("POST", "/api/v1/users", {"name": ALICE, "password": ALICE_PW,
                                           "mechanism": "SCRAM-SHA-512", "iterations": 4096})
        b.admin = admin
        yield b


@pytest.fixture()
def hook():
    r = Receiver()
    yield r
    r.close()


def rule(name, kind, threshold, **kw):
    return {"name": name, "kind": kind, "threshold": threshold, **kw}


def test_rules_are_created_read_changed_and_deleted(cb):
    a = cb.admin
    name = unique_topic("r")
    r = a.ok("POST", "/api/v1/alerts/rules",
             rule(name, "consumer_lag", 100, group="billing-*", topic="orders", for_ms=30000,
                  severity="critical", webhooks=["http://127.0.0.1:9/x"], description="behind"))
    assert r["kind"] == "consumer_lag" and r["enabled"] is True and r["firing"] == 0, r
    assert a.ok("GET", f"/api/v1/alerts/rules/{name}")["group"] == "billing-*"
    names = [x["name"] for x in a.ok("GET", "/api/v1/alerts/rules")["rules"]]
    assert name in names
    status, out = a.call("POST", "/api/v1/alerts/rules", rule(name, "consumer_lag", 5))
    assert_error(status, out, 409, "DUPLICATE_RESOURCE")
    r = a.ok("PUT", f"/api/v1/alerts/rules/{name}", rule(name, "offline_partitions", 0))
    assert r["kind"] == "offline_partitions" and r["group"] is None and r["severity"] == "warning"
    r = a.ok("PATCH", f"/api/v1/alerts/rules/{name}", {"enabled": False, "threshold": 2})
    assert r["enabled"] is False and r["threshold"] == 2 and r["kind"] == "offline_partitions"
    assert a.ok("GET", f"/api/v1/alerts/rules/{name}")["enabled"] is False
    a.ok("DELETE", f"/api/v1/alerts/rules/{name}")
    for method, body in [("GET", None), ("DELETE", None), ("PUT", rule(name, "broker_down", 0)),
                         ("PATCH", {"enabled": True})]:
        status, out = a.call(method, f"/api/v1/alerts/rules/{name}", body)
        assert_error(status, out, 404, "RESOURCE_NOT_FOUND")
    kinds = [k["kind"] for k in a.ok("GET", "/api/v1/alerts/kinds")["kinds"]]
    assert len(kinds) == 10 and "consumer_lag_seconds" in kinds and "request_p99_ms" in kinds


def test_bad_input_is_answered_4xx_with_a_message(cb):
    a = cb.admin
    name = unique_topic("bad")
    cases = [
        (rule(name, "cpu_load", 1), 400, "unknown alert kind"),
        (rule(name, "consumer_lag", -1), 400, "threshold"),
        (rule(name, "disk_free_percent", 150), 400, "percentage"),
        (rule(name, "broker_down", 1), 400, "must be 0"),
        (rule(name, "request_p99_ms", 0), 400, "above 0"),
        (rule(name, "consumer_lag", 1, webhooks=["ftp://example.com/"]), 400, "https://"),
        (rule(name, "consumer_lag", 1, webhooks=["not a url"]), 400, "spaces"),
        (rule(name, "consumer_lag", 1, webhooks=["example.com/hook"]), 400, "not a valid URL"),
        (rule("has space", "consumer_lag", 1), 400, "contains"),
        (rule(name, "offline_partitions", 0, group="g"), 400, "takes no group filter"),
        (rule(name, "consumer_lag", 1, severity="page-me"), 400, "severity"),
        (rule(name, "consumer_lag", 1, for_ms=-5), 400, "bad alert rule"),
        (rule(name, "consumer_lag", "ten"), 400, "bad alert rule"),
        (rule(name, "consumer_lag", 1, colour="red"), 400, "unknown field"),
        ({"kind": "consumer_lag"}, 400, "needs a name"),
        ([1, 2], 400, "JSON object"),
    ]
    for body, want, text in cases:
        status, out = a.call("POST", "/api/v1/alerts/rules", body)
        assert status == want, (body, status, out)
        assert text in out["error"], (body, out)
    status, out = a.call("POST", "/api/v1/alerts/rules", raw=b"{nope")
    assert_error(status, out, 400)
    status, out = a.call("POST", "/api/v1/alerts/rules", raw=b"{}", ctype="text/plain")
    assert_error(status, out, 415)
    a.ok("POST", "/api/v1/alerts/rules", rule(name, "consumer_lag", 1))
    status, out = a.call("PUT", f"/api/v1/alerts/rules/{name}", rule("other", "consumer_lag", 1))
    assert_error(status, out, 400)
    assert "renamed" in out["error"]
    status, out = a.call("PATCH", f"/api/v1/alerts/rules/{name}", {"threshold": -3})
    assert_error(status, out, 400, "INVALID_CONFIG")
    a.ok("DELETE", f"/api/v1/alerts/rules/{name}")
    now = int(time.time() * 1000)
    for body, text in [
        ({"duration_ms": 60000}, "needs a rule or a subject"),
        ({"rule": "x"}, "ends_at or duration_ms"),
        ({"rule": "x", "ends_at": now - 1000}, "already be over"),
        ({"rule": "x", "ends_at": now + 1000, "duration_ms": 5}, "not both"),
        ({"rule": "x", "ends_at": "yesterday-ish"}, "epoch milliseconds or ISO 8601"),
        ({"rule": "x", "duration_ms": 0}, "duration_ms"),
        ({"rule": "x", "duration_ms": 1000, "who": "me"}, "unknown field"),
    ]:
        status, out = a.call("POST", "/api/v1/alerts/silences", body)
        assert_error(status, out, 400)
        assert text in out["error"], (body, out)
    status, out = a.call("DELETE", "/api/v1/alerts/silences/no-such-silence")
    assert_error(status, out, 404, "RESOURCE_NOT_FOUND")
    for q in ({"limit": "0"}, {"limit": "5000"}, {"limit": "many"}):
        status, out = a.call("GET", "/api/v1/alerts/history", query=q)
        assert_error(status, out, 400)
    status, out = a.call("POST", "/api/v1/alerts", {})
    assert_error(status, out, 405)


def test_reading_needs_describe_and_changing_alter_on_the_cluster(cb):
    alice = AlertsApi(cb.admin_port)
    alice.login(ALICE, ALICE_PW)
    status, out = alice.call("GET", "/api/v1/alerts/rules")
    assert_error(status, out, 403, "CLUSTER_AUTHORIZATION_FAILED")
    status, out = alice.call("GET", "/api/v1/alerts")
    assert_error(status, out, 403, "CLUSTER_AUTHORIZATION_FAILED")
    acl = {"resource_type": "cluster", "resource_name": "kafka-cluster", "pattern_type": "literal",
           "principal": f"User:{ALICE}", "host": "*", "operation": "describe",
           "permission": "allow"}
    cb.admin.ok("POST", "/api/v1/acls", acl)
    try:
        wait_for("alice may describe the cluster",
                 lambda: alice.call("GET", "/api/v1/alerts/rules")[0] == 200)
        alice.ok("GET", "/api/v1/alerts/history")
        status, out = alice.call("POST", "/api/v1/alerts/rules",
                                 rule(unique_topic("a"), "broker_down", 0))
        assert_error(status, out, 403, "CLUSTER_AUTHORIZATION_FAILED")
        status, out = alice.call("POST", "/api/v1/alerts/silences",
                                 {"rule": "x", "duration_ms": 60000})
        assert_error(status, out, 403, "CLUSTER_AUTHORIZATION_FAILED")
    finally:
        cb.admin.ok("DELETE", "/api/v1/acls", query={k: v for k, v in acl.items()})


def lagging_group(cb, topic, group, produced, committed):
    """`produced` messages in `topic`, `group`'s offset committed at `committed`."""
    a = cb.admin
    a.ok("POST", "/api/v1/topics", {"name": topic, "partitions": 1, "replication_factor": 1})
    p = Producer(cb.kafka_conf())
    for i in range(produced):
        p.produce(topic, f"m{i}".encode())
    assert p.flush(30) == 0
    commit(cb, topic, group, committed)


def commit(cb, topic, group, offset):
    c = Consumer({**cb.kafka_conf(), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_a_lag_rule_fires_to_the_webhook_and_resolves(cb, hook):
    a = cb.admin
    topic, group, name = unique_topic("lag"), unique_topic("g"), unique_topic("lagrule")
    lagging_group(cb, topic, group, produced=10, committed=2)
    a.ok("POST", "/api/v1/alerts/rules",
         rule(name, "consumer_lag", 5, group=group, severity="critical", webhooks=[hook.url]))
    fired = wait_for("the firing notification", lambda: hook.of(name, "firing"))
    f = fired[0]
    assert f["subject"] == f"group={group}" and f["value"] == 8 and f["threshold"] == 5, f
    assert f["severity"] == "critical" and f["endsAt"] is None and f["startsAt"].endswith("Z")
    assert f["alerts"][0]["labels"]["alertname"] == name, f
    now = a.ok("GET", "/api/v1/alerts")
    assert now["evaluated_here"] is True and now["interval_ms"] == 300, now
    assert [(x["rule"], x["subject"]) for x in now["firing"] if x["rule"] == name] == \
        [(name, f"group={group}")]
    assert a.ok("GET", f"/api/v1/alerts/rules/{name}")["firing"] == 1
    commit(cb, topic, group, 10)  # caught up
    resolved = wait_for("the resolved notification", lambda: hook.of(name, "resolved"))
    assert resolved[0]["value"] == 0 and resolved[0]["endsAt"] >= resolved[0]["startsAt"]
    time.sleep(1.5)  # several rounds: still exactly one of each
    assert len(hook.of(name, "firing")) == 1 and len(hook.of(name, "resolved")) == 1
    events = a.ok("GET", "/api/v1/alerts/history", query={"rule": name})["events"]
    assert [e["status"] for e in events] == ["resolved", "firing"], events
    assert not [x for x in a.ok("GET", "/api/v1/alerts")["firing"] if x["rule"] == name]
    a.ok("DELETE", f"/api/v1/alerts/rules/{name}")


def test_for_keeps_an_alert_pending_and_lag_seconds_reads_record_times(cb, hook):
    a = cb.admin
    topic, group = unique_topic("pend"), unique_topic("g")
    lagging_group(cb, topic, group, produced=3, committed=0)
    slow, secs = unique_topic("slow"), unique_topic("secs")
    a.ok("POST", "/api/v1/alerts/rules",
         rule(slow, "consumer_lag", 1, group=group, for_ms=3_600_000, webhooks=[hook.url]))
    pending = wait_for("a pending alert", lambda: [
        p for p in a.ok("GET", "/api/v1/alerts")["pending"] if p["rule"] == slow])
    assert pending[0]["subject"] == f"group={group}" and pending[0]["value"] == 3
    time.sleep(2.2)  # the records are now > 2 s old
    a.ok("POST", "/api/v1/alerts/rules",
         rule(secs, "consumer_lag_seconds", 2, group=group, webhooks=[hook.url]))
    f = wait_for("lag in seconds fires", lambda: hook.of(secs, "firing"))[0]
    assert 2 < f["value"] < 600, f
    assert not hook.of(slow), "pending is not notified"
    # Disabling a rule resolves what it fired.
    a.ok("PATCH", f"/api/v1/alerts/rules/{secs}", {"enabled": False})
    wait_for("resolved when disabled", lambda: hook.of(secs, "resolved"))
    for n in (slow, secs):
        a.ok("DELETE", f"/api/v1/alerts/rules/{n}")
    wait_for("a deleted rule's pending alert goes", lambda: not [
        p for p in a.ok("GET", "/api/v1/alerts")["pending"] if p["rule"] == slow])


def test_a_silence_records_but_does_not_notify(cb, hook):
    a = cb.admin
    topic, group, name = unique_topic("sil"), unique_topic("g"), unique_topic("silrule")
    lagging_group(cb, topic, group, produced=4, committed=0)
    s = a.ok("POST", "/api/v1/alerts/silences",
             {"rule": name, "subject": "group=*", "duration_ms": 600_000, "comment": "deploy"})
    assert s["state"] == "active" and s["created_by"] == f"User:{ADMIN}", s
    a.ok("POST", "/api/v1/alerts/rules", rule(name, "consumer_lag", 1, webhooks=[hook.url],
                                               group=group))
    events = wait_for("the silenced alert is recorded", lambda: a.ok(
        "GET", "/api/v1/alerts/history", query={"rule": name})["events"])
    assert events[0]["status"] == "firing" and events[0]["silenced"] is True, events
    firing = [x for x in a.ok("GET", "/api/v1/alerts")["firing"] if x["rule"] == name]
    assert firing[0]["silenced_now"] is True
    time.sleep(1)
    assert hook.of(name) == [], "silenced: nothing sent"

    def listed():
        return {x["id"]: x for x in a.ok("GET", "/api/v1/alerts/silences")["silences"]}
    assert listed()[s["id"]] == s, "listed as created, still active"
    a.ok("DELETE", f"/api/v1/alerts/silences/{s['id']}")
    expired = listed()[s["id"]]
    assert expired["state"] == "expired" and expired["ends_at"] < s["ends_at"], expired
    # Resolved after the silence ended: notified.
    commit(cb, topic, group, 4)
    r = wait_for("the resolved notification", lambda: hook.of(name, "resolved"))
    assert r[0]["subject"] == f"group={group}"
    # Firing again with the silence expired: notified, and not silenced.
    commit(cb, topic, group, 1)
    f = wait_for("a new firing notification", lambda: hook.of(name, "firing"))
    assert f[0]["subject"] == f"group={group}" and f[0]["value"] == 3, f
    events = a.ok("GET", "/api/v1/alerts/history", query={"rule": name})["events"]
    assert [(e["status"], e["silenced"]) for e in events] == \
        [("firing", False), ("resolved", False), ("firing", True)], events
    a.ok("DELETE", f"/api/v1/alerts/rules/{name}")


def test_disk_and_latency_rules_read_log_dirs_and_metrics(cb, hook):
    a = cb.admin
    disk, p99 = unique_topic("disk"), unique_topic("p99")
    a.ok("POST", "/api/v1/alerts/rules", rule(disk, "disk_free_percent", 100, webhooks=[hook.url]))
    f = wait_for("disk fires (free below 100%)", lambda: hook.of(disk, "firing"))[0]
    assert f["subject"] == "broker=0" and 0 < f["value"] < 100, f
    # Every console call sends Metadata and DescribeCluster requests.
    a.ok("POST", "/api/v1/alerts/rules", rule(p99, "request_p99_ms", 0.0001, api="*",
                                               webhooks=[hook.url]))

    def fired():
        a.ok("GET", "/api/v1/alerts/rules")
        return hook.of(p99, "firing")
    f = wait_for("p99 fires", fired)[0]
    assert f["subject"].startswith("broker=0,api="), f
    for n in (disk, p99):
        a.ok("DELETE", f"/api/v1/alerts/rules/{n}")


def test_one_notification_per_alert_from_the_controller_of_three_nodes(shardline_bin, tmp_path,
                                                                        hook):
    """Every node evaluates only while it leads the metadata quorum: each
    alert is notified once, by the controller; after the controller is
    killed the new one takes the firing alerts over without notifying them
    again, and resolves the dead node's."""
    c = Cluster(shardline_bin, tmp_path, extra_args=FAST)
    try:
        c.start().wait_registered()
        apis = {i: AlertsApi(n.admin_port) for i, n in c.nodes.items()}  # open mode
        name = "disk-everywhere"
        apis[2].ok("POST", "/api/v1/alerts/rules",
                   rule(name, "disk_free_percent", 100, webhooks=[hook.url]))
        # Every node's console shows the rule: it is in the metadata.
        for api in apis.values():
            wait_for("the rule on every node", lambda: api.ok(
                "GET", "/api/v1/alerts/rules")["rules"])
        subjects = {f"broker={i}" for i in c.nodes}
        wait_for("one alert per broker",
                 lambda: {b["subject"] for b in hook.of(name, "firing")} == subjects)
        time.sleep(2)  # several rounds on every node
        fired = hook.of(name, "firing")
        assert len(fired) == 3, fired
        controller = apis[1].ok("GET", "/api/v1/alerts")["controller"]
        assert {b["sender"] for b in fired} == {controller}, (fired, controller)
        states = {i: api.ok("GET", "/api/v1/alerts") for i, api in apis.items()}
        assert [i for i, s in states.items() if s["evaluated_here"]] == [controller], states
        assert all(len(s["firing"]) == 3 for s in states.values()), states
        # Fail over: kill the controller.
        c.nodes[controller].proc.send_signal(signal.SIGKILL)
        c.nodes[controller].proc.wait()
        others = [i for i in c.nodes if i != controller]
        api = apis[others[0]]
        new = wait_for("a new controller evaluates", lambda: next(
            (s["controller"] for s in [api.ok("GET", "/api/v1/alerts")]
             if s["controller"] not in (None, controller) and s["controller"] in others
             and apis[s["controller"]].ok("GET", "/api/v1/alerts")["evaluated_here"]), None),
            timeout=60)
        gone = wait_for("the dead broker's disk alert resolves",
                        lambda: hook.of(name, "resolved"), timeout=60)
        assert [b["subject"] for b in gone] == [f"broker={controller}"], gone
        assert gone[0]["sender"] == new
        time.sleep(2)
        assert len(hook.of(name, "firing")) == 3, "no firing notification sent again"
        assert len(hook.of(name, "resolved")) == 1
        history = api.ok("GET", "/api/v1/alerts/history", query={"rule": name})["events"]
        assert sorted(e["status"] for e in history) == ["firing"] * 3 + ["resolved"], history
    finally:
        c.close()


def test_latency_rules_watch_every_broker_of_three(shardline_bin, tmp_path, hook):
    """The controller reads every other broker's request latencies from its
    admin listener: a p99 rule fires for each of three brokers, all sent by
    the controller; a broker killed (then fenced) resolves its alert."""
    import raw
    c = Cluster(shardline_bin, tmp_path, extra_args=FAST)
    stop = threading.Event()

    def traffic():
        # ApiVersions to each broker itself, so each has its own latencies.
        while not stop.is_set():
            for n in list(c.nodes.values()):
                try:
                    s = raw.connect(n, timeout=2)
                    raw.api_versions_v0(s)
                    s.close()
                except OSError:
                    pass
            stop.wait(0.2)
    try:
        c.start().wait_registered()
        apis = {i: AlertsApi(n.admin_port) for i, n in c.nodes.items()}  # open mode
        threading.Thread(target=traffic, daemon=True).start()
        name = unique_topic("p99-everywhere")
        apis[1].ok("POST", "/api/v1/alerts/rules",
                   rule(name, "request_p99_ms", 0.0001, api="ApiVersions",
                        webhooks=[hook.url]))
        subjects = {f"broker={i},api=ApiVersions" for i in c.nodes}
        # A peer's history has a point every 10 s.
        wait_for("an alert per broker",
                 lambda: {b["subject"] for b in hook.of(name, "firing")} == subjects,
                 timeout=60)
        controller = apis[1].ok("GET", "/api/v1/alerts")["controller"]
        fired = hook.of(name, "firing")
        assert len(fired) == 3 and {b["sender"] for b in fired} == {controller}, fired
        status = apis[controller].ok("GET", "/api/v1/alerts")
        assert status["evaluated_here"] and not status["problems"], status
        # Another broker dies: once fenced, its alert resolves (that it is
        # down is the broker-down rule's); the others keep firing.
        victim = next(i for i in sorted(c.nodes) if i != controller)
        c.nodes[victim].proc.send_signal(signal.SIGKILL)
        c.nodes[victim].proc.wait()
        gone = wait_for("the dead broker's latency alert resolves",
                        lambda: hook.of(name, "resolved"), timeout=60)
        assert [b["subject"] for b in gone] == [f"broker={victim},api=ApiVersions"], gone
        time.sleep(12)  # over a history step: the live brokers' alerts hold
        firing = {a["subject"] for a in apis[controller].ok("GET", "/api/v1/alerts")["firing"]
                  if a["rule"] == name}
        assert firing == subjects - {f"broker={victim},api=ApiVersions"}, firing
        assert len(hook.of(name, "resolved")) == 1
    finally:
        stop.set()
        c.close()


def test_https_webhooks_the_allowed_hosts_and_deleting_a_rule(shardline_bin, tmp_path):
    """An https:// webhook gets the notification when its certificate
    chains to alert_webhook_truststore_location, and nothing when it does
    not (the broker logs why); a webhook host outside
    alert_webhook_allowed_hosts is refused with 400; deleting a rule with a
    firing alert sends its resolved notification and records it."""
    from pki import Ca
    ca, other = Ca(tmp_path / "ca"), Ca(tmp_path / "other", name="Other CA")
    good = Receiver(tls=ca.issue("hook", server=True, CN="localhost"))
    bad = Receiver(tls=other.issue("hook", server=True, CN="localhost"))
    b = ConsoleBroker(shardline_bin, tmp_path / "b", open_mode=True)
    b.extra_args += FAST
    with open(b.config_path, "a") as f:
        f.write(f'alert_webhook_truststore_location = "{ca.cert_path}"\n'
                'alert_webhook_allowed_hosts = ["127.0.0.1", "*.example.com"]\n')
    try:
        with running(b):
            api = AlertsApi(b.admin_port)
            for hook_url in ("http://localhost:9/hook", "https://10.1.2.3/hook",
                             "https://example.com.evil.net/"):
                status, out = api.call("POST", "/api/v1/alerts/rules",
                                       rule("refused", "broker_down", 0, webhooks=[hook_url]))
                assert status == 400 and "alert_webhook_allowed_hosts" in out["error"], out
            status, out = api.call("POST", "/api/v1/alerts/rules",
                                   rule("creds", "broker_down", 0,
                                        webhooks=["https://u:p@hooks.example.com/"]))
            assert status == 400 and "credentials" in out["error"], out
            name = "disk-https"
            api.ok("POST", "/api/v1/alerts/rules",
                   rule(name, "disk_free_percent", 100, webhooks=[good.url, bad.url]))
            # PATCHing other webhooks is checked too; disabling is not.
            status, out = api.call("PATCH", f"/api/v1/alerts/rules/{name}",
                                   {"webhooks": ["http://localhost:9/"]})
            assert status == 400 and "alert_webhook_allowed_hosts" in out["error"], out
            f = wait_for("the https receiver is notified", lambda: good.of(name, "firing"))
            assert f[0]["subject"] == "broker=0", f
            wait_for("the untrusted receiver's failure is logged", lambda: re.search(
                rf"webhook {re.escape(bad.url)} failed 3 times.*(certificate|UnknownIssuer)",
                b.log_text()), timeout=30)
            assert not bad.of(name), "a receiver whose certificate does not verify got it"
            # Deleting the rule resolves its alert: notified, and in the history.
            api.ok("DELETE", f"/api/v1/alerts/rules/{name}")
            r = wait_for("resolved on deletion", lambda: good.of(name, "resolved"))
            assert len(r) == 1 and r[0]["subject"] == "broker=0", r
            events = api.ok("GET", "/api/v1/alerts/history", query={"rule": name})["events"]
            assert sorted(e["status"] for e in events) == ["firing", "resolved"], events
            time.sleep(1)
            assert len(good.of(name, "resolved")) == 1 and len(good.of(name, "firing")) == 1
    finally:
        good.close()
        bad.close()


def test_every_alerts_endpoint_was_called():
    """Runs last in this module: every /api/v1/alerts operation of
    openapi.yaml was called above."""
    if len(CALLED) < 8:
        pytest.skip("only part of this module ran")

    def matches(template, path):
        t, p = template.split("/"), path.split("/")
        return len(t) == len(p) and all(x == y or x.startswith("{") for x, y in zip(t, p))
    ops = [op for op in SPEC.operations() if op[1].startswith("/api/v1/alerts")]
    assert len(ops) >= 12, ops
    missed = [(m, t) for m, t in sorted(ops)
              if not any(cm == m and matches(t, cp) for cm, cp in CALLED)]
    assert not missed, f"alerts endpoints never called: {missed}"
