"""The console's JSON API on the admin listener (`/api/v1`, issue 17 part 1),
against real brokers: SCRAM login (a wrong password is 401), every endpoint
as a super user, ACLs applied to a session exactly as to a Kafka client (a
user without DESCRIBE on a topic does not see it and may not browse it),
read_committed browsing hides aborted and open transactions, offset resets
previewed then refused while a confluent-kafka consumer is active and
applied once it left, bad input on each endpoint answered 4xx with a JSON
error (never 5xx), HTTPS with the broker's certificate, the open mode of a
broker without SASL, and `/metrics` answering while slow API calls run.

Every answer of every call here, errors included, is checked against
broker/console/openapi.yaml (console_openapi.py, with openapi-core), and one
test walks every operation of the document with a valid request."""

import http.client
import http.cookiejar
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import openapi_spec_validator
from confluent_kafka import Consumer, Producer, TopicPartition

from console_openapi import SPEC
from conftest import HOST, ConfigBroker, free_port, running, unique_topic
from pki import Ca

ADMIN, ADMIN_PW = "admin", "admin-secret"
ALICE, ALICE_PW = "alice", "alice-secret"


class ConsoleBroker(ConfigBroker):
    """PLAINTEXT + SASL_PLAINTEXT (+ the admin listener), the authorizer on
    unless `open_mode` (then PLAINTEXT only: the console is open); TLS
    certificate when `ca` is given (the admin listener then speaks HTTPS)."""

    def __init__(self, binary, base, open_mode=False, ca=None):
        self.sasl_port = free_port()
        self.admin_port = free_port()
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="console")
        listeners = [f"PLAINTEXT://{HOST}:{self.port}"]
        text = f'admin_listen = "{HOST}:{self.admin_port}"\n'
        if not open_mode:
            listeners.append(f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}")
            text += (f'sasl_bootstrap_user = "{ADMIN}"\n'
                     f'sasl_bootstrap_password = "{ADMIN_PW}"\n'
                     'authorizer_enabled = true\n'
                     'super_users = ["User:admin"]\n'
                     # Transaction markers go between brokers as admin.
                     'inter_broker_listener_name = "SASL_PLAINTEXT"\n'
                     "sasl_max_failures = 10000\n")
        self.ca = ca
        if ca is not None:
            cert, key = ca.issue("broker", server=True, CN="localhost")
            text += f'ssl_certificate_location = "{cert}"\nssl_key_location = "{key}"\n'
        self.config_path.write_text(
            "listeners = [" + ", ".join(f'"{l}"' for l in listeners) + "]\n" + text)

    @property
    def sasl_bootstrap(self):
        return f"{HOST}:{self.sasl_port}"

    def kafka_conf(self, user=ADMIN, pw=ADMIN_PW):
        return {"bootstrap.servers": self.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": pw}


# (method, path) of every call made, to check every documented endpoint is
# exercised (see the last test).
CALLED = set()


class Api:
    """A console client with its own cookie jar (one session)."""

    def __init__(self, port, scheme="http", ca=None):
        self.base = f"{scheme}://{HOST}:{port}"
        handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())]
        if ca is not None:
            handlers.append(urllib.request.HTTPSHandler(
                context=ssl.create_default_context(cafile=str(ca))))
        self.opener = urllib.request.build_opener(*handlers)
        self.headers = {}

    def call(self, method, path, body=None, query=None, raw=None, ctype="application/json",
             timeout=60):
        """(status, parsed JSON body or text)."""
        CALLED.add((method, path))
        url = self.base + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None and ctype:
            req.add_header("Content-Type", ctype)
        for k, v in self.headers.items():
            req.add_header(k, v)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                status, raw_out, ct = r.status, r.read(), r.headers.get("Content-Type")
        except urllib.error.HTTPError as e:
            status, raw_out, ct = e.code, e.read(), e.headers.get("Content-Type")
        # Every answer, of every test here, is what openapi.yaml documents
        # for its operation and status; and no input is a server error.
        SPEC.check_response(method, path, query_pairs(query), status, ct, raw_out)
        assert status < 500, f"{method} {path} {query}: {status} {raw_out[:500]!r}"
        text = raw_out.decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def ok(self, method, path, body=None, query=None, expect=(200, 201)):
        status, out = self.call(method, path, body, query)
        assert status in expect, f"{method} {path}: {status} {out}"
        return out

    def login(self, user, pw):
        return self.ok("POST", "/api/v1/session", {"username": user, "password": pw})


def query_pairs(query):
    """The query as (name, value) pairs, as urlencode(doseq=True) sends it."""
    if not query:
        return []
    items = query.items() if isinstance(query, dict) else query
    return [(k, str(x)) for k, v in items for x in (v if isinstance(v, (list, tuple)) else [v])]


def assert_error(status, out, want_status, code=None):
    assert status == want_status, (status, out)
    assert isinstance(out, dict) and set(out) == {"error", "code"} and out["error"], out
    if code is not None:
        assert out["code"] == code, out


@pytest.fixture(scope="module")
def cb(shardline_bin, tmp_path_factory):
    with running(ConsoleBroker(shardline_bin, tmp_path_factory.mktemp("console"))) as b:
        admin = Api(b.admin_port)
        admin.login(ADMIN, ADMIN_PW)
        admin.ok("POST", "/api/v1/users", {"name": ALICE, "password": ALICE_PW,
                                           "mechanism": "SCRAM-SHA-512", "iterations": 4096})
        b.admin = admin
        yield b


def wait_for(what, fn, timeout=30, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def test_login_logout_and_refusals(cb):
    a = Api(cb.admin_port)
    status, info = a.call("GET", "/api/v1/info")
    assert status == 200 and info["login_required"] and not info["open"], info
    assert info["authorizer_enabled"] and info["mechanism"] == "SCRAM-SHA-512", info
    assert "Log in" in info["message"], info
    assert_error(*a.call("GET", "/api/v1/topics"), 401)
    status, out = a.call("POST", "/api/v1/session", {"username": ALICE, "password": "wrong"})
    assert_error(status, out, 401, "SASL_AUTHENTICATION_FAILED")
    assert_error(*a.call("POST", "/api/v1/session", {"username": "nobody", "password": "x"}), 401)
    me = a.login(ALICE, ALICE_PW)
    assert me["principal"] == "User:alice" and len(me["token"]) == 64, me
    assert a.ok("GET", "/api/v1/session")["principal"] == "User:alice"
    # Scripts may send the token instead of the cookie.
    bearer = Api(cb.admin_port)
    req = urllib.request.Request(bearer.base + "/api/v1/session",
                                 headers={"Authorization": f"Bearer {me['token']}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["principal"] == "User:alice"
    out = a.ok("DELETE", "/api/v1/session")
    assert out["ended"] is True
    assert_error(*a.call("GET", "/api/v1/session"), 401)


def test_every_endpoint_as_a_super_user(cb):
    a = cb.admin
    t = unique_topic("console")
    assert a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 2,
                                           "configs": {"retention.ms": "3600000"}})["name"] == t
    assert_error(*a.call("POST", "/api/v1/topics", {"name": t, "partitions": 1}), 409,
                 "TOPIC_ALREADY_EXISTS")
    listed = {x["name"]: x for x in a.ok("GET", "/api/v1/topics")["topics"]}
    assert listed[t]["partitions"] == 2 and listed[t]["retention_ms"] == 3600000, listed[t]
    assert listed[t]["size_bytes"] == 0, listed[t]

    for i in range(5):
        sent = a.ok("POST", f"/api/v1/topics/{t}/messages",
                    {"key": f"k{i % 2}", "value": json.dumps({"n": i}), "partition": 0,
                     "headers": {"src": "console"}})
        assert sent == {"topic": t, "partition": 0, "offset": i}, sent
    by_key = a.ok("POST", f"/api/v1/topics/{t}/messages", {"key": "some-key", "value": "v"})
    assert by_key["partition"] in (0, 1)
    n0 = 5 + (by_key["partition"] == 0)  # records in partition 0

    d = a.ok("GET", f"/api/v1/topics/{t}")
    p0 = d["partitions"][0]
    assert p0["partition"] == 0 and p0["leader"] == 0 and p0["replicas"] == [0] and p0["isr"] == [0]
    assert p0["log_start_offset"] == 0 and p0["log_end_offset"] >= 5, p0
    assert d["config_overrides"] == {"retention.ms": "3600000"}, d

    page = a.ok("GET", f"/api/v1/topics/{t}/partitions/0/messages", query={"limit": 3})
    assert [m["offset"] for m in page["messages"]] == [0, 1, 2] and page["next_offset"] == 3
    m0 = page["messages"][0]
    assert m0["key"]["text"] == "k0" and json.loads(m0["value"]["json"]) == {"n": 0}, m0
    assert m0["value"]["hex"] == json.dumps({"n": 0}).encode().hex()
    assert m0["headers"] == [{"key": "src", "value": m0["headers"][0]["value"]}]
    assert m0["headers"][0]["value"]["text"] == "console"
    rest = a.ok("GET", f"/api/v1/topics/{t}/partitions/0/messages", query={"offset": 3})
    assert [m["offset"] for m in rest["messages"]][:2] == [3, 4] and rest["end_reached"]
    keyed = a.ok("GET", f"/api/v1/topics/{t}/partitions/0/messages", query={"key": "k1"})
    assert [m["offset"] for m in keyed["messages"]] == [1, 3], keyed
    later = a.ok("GET", f"/api/v1/topics/{t}/partitions/0/messages",
                 query={"time": str(int(time.time() * 1000) + 3_600_000)})
    assert later["messages"] == [] and later["start_offset"] >= 5, later

    assert a.ok("POST", f"/api/v1/topics/{t}/partitions", {"count": 3})["ok"]
    assert len(a.ok("GET", f"/api/v1/topics/{t}")["partitions"]) == 3
    a.ok("PATCH", f"/api/v1/topics/{t}/configs", {"set": {"cleanup.policy": "compact"},
                                                   "delete": ["retention.ms"]})
    confs = {c["name"]: c for c in a.ok("GET", f"/api/v1/topics/{t}/configs")["configs"]}
    assert confs["cleanup.policy"]["value"] == "compact" and confs["cleanup.policy"]["override"]
    assert not confs["retention.ms"]["override"], confs["retention.ms"]

    ov = a.ok("GET", "/api/v1/cluster")
    assert ov["controller_id"] == 0 and ov["offline_partitions"] == 0, ov
    assert ov["partitions"] >= 3 and ov["brokers"][0]["status"] == "up", ov
    disk = ov["brokers"][0]["disk"]
    assert disk["total_bytes"] > 0 and disk["free_bytes"] > 0 and disk["used_bytes"] >= 0, disk

    # Groups: a real consumer commits, then the resets.
    g = f"g-{t}"
    c = Consumer({**cb.kafka_conf(), "group.id": g, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([t])
        got = []
        wait_for("6 messages", lambda: got.extend(
            m for m in [c.poll(0.5)] if m is not None and not m.error()) or len(got) >= 6)
        c.commit(asynchronous=False)
        assert g in [x["group"] for x in a.ok("GET", "/api/v1/groups")["groups"]]
        gd = wait_for("a stable group", lambda: (lambda d: d if d["state"] == "Stable" else None)(
            a.ok("GET", f"/api/v1/groups/{g}")))
        assert gd["protocol_type"] == "consumer" and len(gd["members"]) == 1, gd
        assert {(x["topic"], x["partition"]) for x in gd["members"][0]["assignment"]} >= {(t, 0)}
        row = next(r for r in gd["offsets"] if r["partition"] == 0)
        assert row["committed_offset"] == n0 and row["lag"] == 0, row
        preview = a.ok("POST", f"/api/v1/groups/{g}/reset-offsets",
                       {"topics": [{"topic": t, "partitions": [0]}], "to": "earliest"})
        assert not preview["can_apply"] and not preview["applied"], preview
        assert preview["partitions"] == [{"topic": t, "partition": 0, "current_offset": n0,
                                          "new_offset": 0}], preview
        status, out = a.call("POST", f"/api/v1/groups/{g}/reset-offsets",
                             {"topics": [{"topic": t, "partitions": [0]}], "to": "earliest",
                              "apply": True})
        assert_error(status, out, 409, "NON_EMPTY_GROUP")
        assert "Stable" in out["error"], out
        assert_error(*a.call("DELETE", f"/api/v1/groups/{g}"), 409, "NON_EMPTY_GROUP")
    finally:
        c.close()
    wait_for("an empty group", lambda: a.ok("GET", f"/api/v1/groups/{g}")["state"] == "Empty")
    done = a.ok("POST", f"/api/v1/groups/{g}/reset-offsets",
                {"topics": [{"topic": t, "partitions": [0]}], "to": "offset", "offset": 2,
                 "apply": True})
    assert done["applied"] and done["partitions"][0]["new_offset"] == 2, done
    row = next(r for r in a.ok("GET", f"/api/v1/groups/{g}")["offsets"] if r["partition"] == 0)
    assert row["committed_offset"] == 2 and row["lag"] == n0 - 2, row
    shifted = a.ok("POST", f"/api/v1/groups/{g}/reset-offsets",
                   {"topics": [{"topic": t, "partitions": [0]}], "to": "shift", "shift": 1})
    assert shifted["partitions"][0]["new_offset"] == 3, shifted
    by_time = a.ok("POST", f"/api/v1/groups/{g}/reset-offsets",
                   {"topics": [{"topic": t}], "to": "time", "time": "2000-01-01T00:00:00Z"})
    assert {p["new_offset"] for p in by_time["partitions"] if p["partition"] == 0} == {0}
    lag = a.ok("GET", f"/api/v1/groups/{g}/lag-history")
    assert lag["resolution_s"] == 10 and isinstance(lag["series"], dict), lag
    a.ok("DELETE", f"/api/v1/groups/{g}")
    assert_error(*a.call("GET", f"/api/v1/groups/{g}"), 404)

    # Security: users, ACLs, quotas, tenants.
    a.ok("POST", "/api/v1/users", {"name": "carol", "password": "pw"})
    users = {u["user"]: u for u in a.ok("GET", "/api/v1/users")["users"]}
    assert {c["mechanism"] for c in users["carol"]["credentials"]} == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    a.ok("DELETE", "/api/v1/users/carol")
    assert_error(*a.call("DELETE", "/api/v1/users/carol"), 404, "RESOURCE_NOT_FOUND")
    acl = {"resource_type": "topic", "resource_name": t, "principal": "User:carol",
           "operation": "read"}
    assert a.ok("POST", "/api/v1/acls", acl)["acl"]["permission"] == "allow"
    mine = a.ok("GET", "/api/v1/acls", query={"principal": "User:carol"})["acls"]
    assert mine == [{"resource_type": "topic", "resource_name": t, "pattern_type": "literal",
                     "principal": "User:carol", "host": "*", "operation": "read",
                     "permission": "allow"}], mine
    assert a.ok("DELETE", "/api/v1/acls", query={"principal": "User:carol"})["deleted"] == 1
    assert a.ok("GET", "/api/v1/acls", query={"principal": "User:carol"})["acls"] == []
    a.ok("PUT", "/api/v1/quotas", {"entity": {"user": "carol"},
                                   "quotas": {"producer_byte_rate": 1048576}})
    q = a.ok("GET", "/api/v1/quotas", query={"user": "carol"})["quotas"]
    assert q == [{"entity": {"user": "carol"}, "quotas": {"producer_byte_rate": 1048576.0}}], q
    a.ok("DELETE", "/api/v1/quotas", query={"user": "carol"})
    assert a.ok("GET", "/api/v1/quotas", query={"user": "carol"})["quotas"] == []
    ten = a.ok("POST", "/api/v1/tenants", {"name": "acme", "users": ["dave"],
                                           "quotas": {"consumer_byte_rate": 2048}})
    assert ten["prefix"] == "acme." and ten["principals"] == ["User:dave"], ten
    assert {"prefix": "acme.", "principals": ["User:dave"]} in a.ok("GET", "/api/v1/tenants")["tenants"]
    a.ok("DELETE", "/api/v1/tenants/acme")
    assert all(x["prefix"] != "acme." for x in a.ok("GET", "/api/v1/tenants")["tenants"])
    assert_error(*a.call("DELETE", "/api/v1/tenants/acme"), 404, "RESOURCE_NOT_FOUND")

    a.ok("DELETE", f"/api/v1/topics/{t}")
    assert_error(*a.call("GET", f"/api/v1/topics/{t}"), 404, "UNKNOWN_TOPIC_OR_PARTITION")

    # The metrics history: two samples 10 s apart make the first rates.
    def sampled():
        names = a.ok("GET", "/api/v1/metrics/series")["series"]
        return names if "bytes_in_per_s" in names else None
    names = wait_for("the first rates", sampled, timeout=40, interval=1)
    assert {"partitions", "disk_used_bytes", "disk_free_bytes", "produce_requests_per_s",
            "offline_partitions", "under_replicated_partitions"} <= set(names), names
    h = a.ok("GET", "/api/v1/metrics/history", query={"series": "bytes_in_per_s,partitions"})
    assert h["resolution_s"] == 10 and set(h["series"]) == {"bytes_in_per_s", "partitions"}
    ts, v = h["series"]["partitions"][-1]
    assert abs(ts / 1000 - time.time()) < 60 and v >= 0, h
    assert_error(*a.call("GET", "/api/v1/metrics/history", query={"series": "nope"}), 404)


def test_a_session_sees_only_what_its_acls_allow(cb):
    a = cb.admin
    secret, mine = unique_topic("secret"), unique_topic("alice")
    for t in (secret, mine):
        a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
        a.ok("POST", f"/api/v1/topics/{t}/messages", {"value": "x"})
    for op in ("describe", "read"):
        a.ok("POST", "/api/v1/acls", {"resource_type": "topic", "resource_name": mine,
                                      "principal": "User:alice", "operation": op})
    alice = Api(cb.admin_port)
    alice.login(ALICE, ALICE_PW)
    names = [x["name"] for x in alice.ok("GET", "/api/v1/topics")["topics"]]
    assert mine in names and secret not in names, names
    assert len(alice.ok("GET", f"/api/v1/topics/{mine}/partitions/0/messages")["messages"]) == 1
    assert_error(*alice.call("GET", f"/api/v1/topics/{secret}/partitions/0/messages"), 403,
                 "TOPIC_AUTHORIZATION_FAILED")
    assert_error(*alice.call("GET", f"/api/v1/topics/{secret}"), 403, "TOPIC_AUTHORIZATION_FAILED")
    assert_error(*alice.call("POST", f"/api/v1/topics/{mine}/messages", {"value": "y"}), 403,
                 "TOPIC_AUTHORIZATION_FAILED")
    assert_error(*alice.call("DELETE", f"/api/v1/topics/{mine}"), 403, "TOPIC_AUTHORIZATION_FAILED")
    assert_error(*alice.call("POST", "/api/v1/users", {"name": "eve", "password": "pw"}), 403,
                 "CLUSTER_AUTHORIZATION_FAILED")
    ov = alice.ok("GET", "/api/v1/cluster")
    assert ov["brokers"][0]["disk"]["error"]["code"] == "CLUSTER_AUTHORIZATION_FAILED", ov


def test_read_committed_browsing_hides_aborted_and_open_transactions(cb):
    a = cb.admin
    t = unique_topic("txn")
    a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    p = Producer({**cb.kafka_conf(), "transactional.id": f"tx-{t}", "linger.ms": 0})
    p.init_transactions(30)
    for outcome in ("commit", "abort", "open"):
        p.begin_transaction()
        for i in range(3):
            p.produce(t, f"{outcome}-{i}".encode(), partition=0)
        p.flush(30)
        if outcome == "commit":
            p.commit_transaction(30)
        elif outcome == "abort":
            p.abort_transaction(30)
    path = f"/api/v1/topics/{t}/partitions/0/messages"

    def values(isolation):
        page = a.ok("GET", path, query={"isolation": isolation, "limit": 100})
        return [m["value"]["text"] for m in page["messages"]], page

    committed, page = values("read_committed")
    assert committed == ["commit-0", "commit-1", "commit-2"], page
    assert page["last_stable_offset"] < page["high_watermark"], page
    everything, _ = values("read_uncommitted")
    assert everything == [f"{o}-{i}" for o in ("commit", "abort", "open") for i in range(3)]
    p.commit_transaction(30)
    committed = wait_for("the open transaction committed",
                         lambda: (lambda v: v if len(v) == 6 else None)(values("read_committed")[0]))
    assert committed == [f"{o}-{i}" for o in ("commit", "open") for i in range(3)]


def test_bad_input_is_answered_4xx_with_a_json_error(cb):
    a = cb.admin
    t = unique_topic("bad")
    a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    g = "no-such-group-" + t
    cases = [
        ("POST", "/api/v1/session", {"username": ""}, None, 400),
        ("POST", "/api/v1/session", {"username": "", "password": ""}, None, 400),
        ("POST", "/api/v1/topics", {"name": "bad name!"}, None, 400),
        ("POST", "/api/v1/topics", {"name": t + "x", "partitions": 0}, None, 400),
        ("POST", "/api/v1/topics", {"name": t + "x", "extra": 1}, None, 400),
        ("POST", "/api/v1/topics", [1, 2], None, 400),
        ("GET", "/api/v1/topics", None, {"internal": "maybe"}, 400),
        ("GET", "/api/v1/topics/nope-" + t, None, None, 404),
        ("DELETE", "/api/v1/topics/nope-" + t, None, None, 404),
        ("POST", f"/api/v1/topics/{t}/partitions", {"count": 0}, None, 400),
        ("POST", f"/api/v1/topics/{t}/partitions", {"count": 1}, None, 400),
        ("POST", f"/api/v1/topics/{t}/partitions", {}, None, 400),
        ("GET", "/api/v1/topics/nope-" + t + "/configs", None, None, 404),
        ("PATCH", f"/api/v1/topics/{t}/configs", {}, None, 400),
        ("PATCH", f"/api/v1/topics/{t}/configs", {"set": {"no.such.config": "1"}}, None, 400),
        ("PATCH", f"/api/v1/topics/{t}/configs", {"set": {"retention.ms": "soon"}}, None, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/x/messages", None, None, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/7/messages", None, None, 404),
        ("GET", f"/api/v1/topics/{t}/partitions/0/messages", None, {"limit": "0"}, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/0/messages", None, {"offset": "-3"}, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/0/messages", None, {"time": "yesterday"}, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/0/messages", None, {"offset": "1", "time": "1"}, 400),
        ("GET", f"/api/v1/topics/{t}/partitions/0/messages", None, {"isolation": "dirty"}, 400),
        ("POST", f"/api/v1/topics/{t}/messages", {"partition": 9, "value": "v"}, None, 404),
        ("POST", f"/api/v1/topics/{t}/messages", {"partition": -1}, None, 400),
        ("POST", f"/api/v1/topics/{t}/messages", {"headers": 5}, None, 400),
        ("GET", f"/api/v1/groups/{g}", None, None, 404),
        ("DELETE", f"/api/v1/groups/{g}", None, None, 404),
        ("POST", f"/api/v1/groups/{g}/reset-offsets", {"to": "sideways", "all_topics": True}, None, 400),
        ("POST", f"/api/v1/groups/{g}/reset-offsets", {"to": "offset", "topics": [{"topic": t}]}, None, 400),
        ("POST", f"/api/v1/groups/{g}/reset-offsets", {"to": "earliest"}, None, 400),
        ("GET", f"/api/v1/groups/{g}/lag-history", None, {"since": "x"}, 400),
        ("POST", "/api/v1/users", {"name": "u", "password": ""}, None, 400),
        ("POST", "/api/v1/users", {"name": "u", "password": "p", "iterations": 1}, None, 400),
        ("POST", "/api/v1/users", {"name": "u", "password": "p", "mechanism": "MD5"}, None, 400),
        ("DELETE", "/api/v1/users/nobody-" + t, None, None, 404),
        ("GET", "/api/v1/acls", None, {"resource_type": "planet"}, 400),
        ("POST", "/api/v1/acls", {"resource_type": "topic", "resource_name": t,
                                  "principal": "alice", "operation": "read"}, None, 400),
        ("POST", "/api/v1/acls", {"resource_type": "topic", "resource_name": t,
                                  "principal": "User:a", "operation": "fly"}, None, 400),
        ("DELETE", "/api/v1/acls", None, None, 400),
        ("GET", "/api/v1/quotas", None, None, None),
        ("PUT", "/api/v1/quotas", {"entity": {}, "quotas": {"producer_byte_rate": 1}}, None, 400),
        ("PUT", "/api/v1/quotas", {"entity": {"user": "u"}, "quotas": {"speed": 1}}, None, 400),
        ("PUT", "/api/v1/quotas", {"entity": {"user": "u"}, "quotas": {"producer_byte_rate": -5}}, None, 400),
        ("DELETE", "/api/v1/quotas", None, None, 400),
        ("DELETE", "/api/v1/quotas", None, {"user": "u", "key": "speed"}, 400),
        ("GET", "/api/v1/tenants", None, None, None),
        ("POST", "/api/v1/tenants", {"name": "t1"}, None, 400),
        ("POST", "/api/v1/tenants", {"name": "a b", "users": ["x"]}, None, 400),
        ("POST", "/api/v1/tenants", {"name": "t2", "principals": ["User:*"]}, None, 400),
        ("DELETE", "/api/v1/tenants/none-" + t, None, None, 404),
        ("GET", "/api/v1/metrics/history", None, {"since": "-1"}, 400),
        ("GET", "/api/v1/metrics/history", None, {"series": "nope"}, 404),
        ("GET", "/api/v1/metrics/cluster-history", None, {"broker": "one"}, 400),
        ("GET", "/api/v1/metrics/cluster-history", None, {"broker": "99"}, 404),
        ("GET", "/api/v1/metrics/cluster-history", None, {"since": "-1"}, 400),
        ("GET", "/api/v1/metrics/cluster-history", None, {"series": "group_lag:g"}, 404),
        ("GET", "/api/v1/nope", None, None, 404),
        ("PUT", "/api/v1/topics", {}, None, 405),
        ("GET", "/api/v1/topics/%zz", None, None, 400),
    ]
    for method, path, body, query, want in cases:
        status, out = a.call(method, path, body, query)
        if want is None:  # listed for coverage: a plain read
            assert status == 200, (method, path, status, out)
            continue
        assert status == want, (method, path, body, query, status, out)
        assert_error(status, out, want)
    # Not JSON, or no JSON content type, or no body where one is needed.
    assert_error(*a.call("POST", "/api/v1/topics", raw=b"{nope"), 400)
    assert_error(*a.call("POST", "/api/v1/topics", raw=b'{"name": "x"}', ctype="text/plain"), 415)
    assert_error(*a.call("POST", "/api/v1/topics", raw=b""), 400)


def test_metrics_answer_while_slow_api_calls_run(cb):
    a = cb.admin
    t = unique_topic("slow")
    a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    p = Producer({**cb.kafka_conf(), "linger.ms": 5, "message.max.bytes": 2_000_000})
    value = b"v" * 100_000
    for _ in range(300):
        p.produce(t, value, partition=0)
    assert p.flush(60) == 0
    spans = []

    def browse():
        start = time.monotonic()
        status, out = a.call("GET", f"/api/v1/topics/{t}/partitions/0/messages",
                             query={"limit": 300, "isolation": "read_uncommitted"}, timeout=120)
        assert status == 200, out
        spans.append((start, time.monotonic(), len(out["messages"])))

    threads = [threading.Thread(target=browse) for _ in range(3)]
    for th in threads:
        th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://{HOST}:{cb.admin_port}/metrics", timeout=10) as r:
        assert r.status == 200 and r.read().decode().endswith("# EOF\n")
    metrics_done = time.monotonic()
    for th in threads:
        th.join(120)
    assert len(spans) == 3 and all(n > 0 for _, _, n in spans), spans
    # /metrics answered fast, while every browse was still running.
    assert metrics_done - t0 < 2.0, metrics_done - t0
    assert all(end > metrics_done for _, end, _ in spans), (metrics_done, spans)


def test_group_lag_history_is_sampled_and_shown_to_who_may_describe_the_group(cb):
    a = cb.admin
    t = unique_topic("lag")
    g = f"g-{t}"
    a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
    for i in range(4):
        a.ok("POST", f"/api/v1/topics/{t}/messages", {"value": f"m{i}", "partition": 0})
    c = Consumer({**cb.kafka_conf(), "group.id": g, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([t])
        m = wait_for("a message", lambda: (lambda m: m if m is not None and not m.error() else None)(
            c.poll(0.5)))
        c.commit(message=m, asynchronous=False)  # committed 1 of 4: lag 3
    finally:
        c.close()
    # The sampler describes groups every 30 s.
    series = wait_for("the group's lag sampled", lambda: (lambda s: s if f"group_lag:{g}" in s
                      else None)(a.ok("GET", f"/api/v1/groups/{g}/lag-history")["series"]),
                      timeout=70, interval=2)
    assert series[f"group_lag:{g}"][-1][1] == 3, series
    assert series[f"group_lag:{g}:{t}:0"][-1][1] == 3, series
    # Not in the open metrics history, and not for a session that may not
    # describe the group.
    assert not any(n.startswith("group_lag") for n in
                   a.ok("GET", "/api/v1/metrics/series")["series"])
    assert_error(*a.call("GET", "/api/v1/metrics/history", query={"series": f"group_lag:{g}"}), 404)
    alice = Api(cb.admin_port)
    alice.login(ALICE, ALICE_PW)
    assert_error(*alice.call("GET", f"/api/v1/groups/{g}/lag-history"), 403,
                 "GROUP_AUTHORIZATION_FAILED")


def test_failed_logins_are_limited_per_client_address(shardline_bin, tmp_path):
    with running(ConsoleBroker(shardline_bin, tmp_path)) as b:
        a = Api(b.admin_port)
        for _ in range(5):
            assert_error(*a.call("POST", "/api/v1/session",
                                 {"username": ADMIN, "password": "guess"}), 401,
                         "SASL_AUTHENTICATION_FAILED")
        # Even the right password waits out the window now.
        status, out = a.call("POST", "/api/v1/session", {"username": ADMIN, "password": ADMIN_PW})
        assert_error(status, out, 429)
        assert "failed logins" in out["error"], out


def test_the_console_is_open_without_a_sasl_listener(shardline_bin, tmp_path):
    with running(ConsoleBroker(shardline_bin, tmp_path, open_mode=True)) as b:
        a = Api(b.admin_port)
        info = a.ok("GET", "/api/v1/info")
        assert info["open"] and not info["login_required"] and not info["authorizer_enabled"]
        assert "open" in info["message"] and "User:ANONYMOUS" in info["message"], info
        t = unique_topic("open")
        a.ok("POST", "/api/v1/topics", {"name": t, "partitions": 1})
        assert t in [x["name"] for x in a.ok("GET", "/api/v1/topics")["topics"]]
        assert a.ok("GET", "/api/v1/session")["principal"] == "User:ANONYMOUS"
        assert a.login("anyone", "anything")["principal"] == "User:ANONYMOUS"


def test_https_with_the_brokers_certificate(shardline_bin, tmp_path):
    ca = Ca(tmp_path / "pki")
    with running(ConsoleBroker(shardline_bin, tmp_path, ca=ca)) as b:
        a = Api(b.admin_port, scheme="https", ca=ca.cert_path)
        assert a.ok("GET", "/api/v1/info")["login_required"]
        status, out = a.call("POST", "/api/v1/session", {"username": ADMIN, "password": ADMIN_PW})
        assert status == 200, out
        assert a.ok("GET", "/api/v1/session")["principal"] == "User:admin"
        ctx = ssl.create_default_context(cafile=str(ca.cert_path))
        with urllib.request.urlopen(f"https://{HOST}:{b.admin_port}/metrics", context=ctx,
                                    timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"https://{HOST}:{b.admin_port}/health", context=ctx,
                                    timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"
        # Plain HTTP to the TLS port gets no HTTP answer (a TLS alert at most).
        with pytest.raises((urllib.error.URLError, OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://{HOST}:{b.admin_port}/metrics", timeout=5).read()


def test_the_openapi_document_is_complete_and_strict():
    """Every operation documents a JSON success body and its 4xx errors
    with the Error schema, and no schema is a bare `type: object`: so the
    checks of every answer above have something to hold answers to."""
    openapi_spec_validator.validate(SPEC.raw)
    comp = SPEC.raw["components"]

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            kind, name = node["$ref"].split("/")[-2:]
            node = comp[kind][name]
        return node

    def schema_of(resp):
        return resolve(resp).get("content", {}).get("application/json", {}).get("schema")

    loose = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and not ({"properties", "additionalProperties"} & set(node)):
                loose.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")
    walk(SPEC.raw, "")
    assert not loose, f"object schemas that say nothing of their fields: {loose}"
    problems = []
    for (method, path), op in sorted(SPEC.operations().items()):
        codes = {str(c): r for c, r in op["responses"].items()}
        ok = [c for c in codes if c in ("200", "201", "204")]
        if not ok:
            problems.append(f"{method} {path}: no 200/201/204")
        for c in ok:
            s = resolve(schema_of(codes[c])) if c != "204" else {}
            if c != "204" and not (s and (s.get("properties") or s.get("$ref"))):
                problems.append(f"{method} {path} {c}: no body schema")
        errors = [c for c in codes if c.startswith(("4", "5"))]
        if not any(c.startswith("4") for c in errors):
            problems.append(f"{method} {path}: no 4xx documented")
        for c in errors:
            if schema_of(codes[c]) != {"$ref": "#/components/schemas/Error"}:
                problems.append(f"{method} {path} {c}: not the Error schema")
        if "requestBody" in op and "415" not in codes:
            problems.append(f"{method} {path}: takes a body but documents no 415")
    assert not problems, "\n".join(problems)


def test_every_operation_in_openapi_answers_as_documented(cb):
    """Walks every operation of openapi.yaml with a valid request (valid by
    the document too), as a script would: with the Bearer token. Each
    answer is checked against its schema by Api.call; every operation of
    the document must have a step here."""
    a = Api(cb.admin_port)
    n = unique_topic("walk")
    t, g, user, tenant = n, f"g-{n}", f"u-{n}", f"tn{n[-8:]}"
    steps = []

    def step(method, template, path_args=None, query=None, body=None, want=200):
        path = template.format(**(path_args or {}))
        SPEC.check_request(method, path, query_pairs(query),
                           None if body is None else json.dumps(body).encode(), a.headers)
        status, out = a.call(method, path, body, query)
        assert status == want, (method, path, status, out)
        steps.append((method, template))
        return out

    step("GET", "/api/v1/info")
    token = step("POST", "/api/v1/session", body={"username": ADMIN, "password": ADMIN_PW})["token"]
    a.headers["Authorization"] = f"Bearer {token}"
    assert step("GET", "/api/v1/session")["principal"] == "User:admin"
    step("GET", "/api/v1/cluster")
    step("POST", "/api/v1/topics", body={"name": t, "partitions": 1, "replication_factor": 1,
                                         "configs": {"retention.ms": "600000"}}, want=201)
    step("GET", "/api/v1/topics", query={"internal": "true"})
    tp = {"topic": t}
    step("POST", "/api/v1/topics/{topic}/partitions", tp, body={"count": 2})
    step("GET", "/api/v1/topics/{topic}", tp)
    step("GET", "/api/v1/topics/{topic}/configs", tp)
    step("PATCH", "/api/v1/topics/{topic}/configs", tp,
         body={"set": {"retention.ms": "1200000"}, "delete": ["cleanup.policy"]})
    step("POST", "/api/v1/topics/{topic}/messages", tp,
         body={"partition": 0, "key": "k", "value": json.dumps({"a": [1, 2]}),
               "headers": [{"key": "h", "value": "v"}, {"key": "n", "value": None}],
               "timestamp": int(time.time() * 1000)}, want=201)
    step("POST", "/api/v1/topics/{topic}/messages", tp, body={"key": None, "value": None,
                                                             "headers": {"x": "y"}}, want=201)
    page = step("GET", "/api/v1/topics/{topic}/partitions/{partition}/messages",
                {"topic": t, "partition": 0},
                query={"limit": 10, "isolation": "read_uncommitted", "offset": 0})
    assert page["messages"][0]["headers"][1]["value"] is None, page
    # A group with a committed offset and no members.
    c = Consumer({**cb.kafka_conf(), "group.id": g, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False)
    finally:
        c.close()
    step("GET", "/api/v1/groups")
    gp = {"group": g}
    step("GET", "/api/v1/groups/{group}", gp)
    step("POST", "/api/v1/groups/{group}/reset-offsets", gp,
         body={"topics": [{"topic": t, "partitions": [0]}], "to": "time",
               "time": "2000-01-01T00:00:00Z", "apply": True})
    step("GET", "/api/v1/groups/{group}/lag-history", gp, query={"since": 0})
    step("DELETE", "/api/v1/groups/{group}", gp)
    step("POST", "/api/v1/users", body={"name": user, "password": "pw", "mechanism": "SCRAM-SHA-256",
                                        "iterations": 4096}, want=201)
    step("GET", "/api/v1/users")
    step("DELETE", "/api/v1/users/{user}", {"user": user})
    acl = {"resource_type": "group", "resource_name": g, "pattern_type": "prefixed",
           "principal": f"User:{user}", "host": "*", "operation": "describe", "permission": "deny"}
    step("POST", "/api/v1/acls", body=acl, want=201)
    assert step("GET", "/api/v1/acls", query={"principal": f"User:{user}"})["acls"] == [acl]
    assert step("DELETE", "/api/v1/acls", query={"principal": f"User:{user}"})["deleted"] == 1
    step("PUT", "/api/v1/quotas", body={"entity": {"user": user, "client_id": ""},
                                        "quotas": {"consumer_byte_rate": 1024}})
    q = step("GET", "/api/v1/quotas", query={"user": user})["quotas"]
    assert q == [{"entity": {"user": user, "client_id": None},
                  "quotas": {"consumer_byte_rate": 1024.0}}], q
    step("DELETE", "/api/v1/quotas", query={"user": user, "client_id": "", "key": "consumer_byte_rate"})
    step("POST", "/api/v1/tenants", body={"name": tenant, "users": [user],
                                          "quotas": {"producer_byte_rate": 2048}}, want=201)
    step("GET", "/api/v1/tenants")
    step("DELETE", "/api/v1/tenants/{tenant}", {"tenant": tenant})
    step("GET", "/api/v1/metrics/series")
    step("GET", "/api/v1/metrics/history", query={"since": 0})
    mine = step("GET", "/api/v1/metrics/cluster-history",
                query={"broker": "all", "series": "partitions,no_such_series", "since": 0})["brokers"]
    assert [(b["id"], b["self"], b["status"]) for b in mine] == [(0, True, "ok")], mine
    # Alerts: a rule and a silence of the walk's own, removed at the end.
    assert len(step("GET", "/api/v1/alerts/kinds")["kinds"]) == 10
    ar = f"walk-{n}"
    rp = {"rule": ar}
    r = step("POST", "/api/v1/alerts/rules",
             body={"name": ar, "kind": "consumer_lag", "group": g, "topic": t,
                   "threshold": 1e9, "for_ms": 60000, "severity": "info",
                   "webhooks": ["http://127.0.0.1:9/hook"], "enabled": True,
                   "description": "the walk's"}, want=201)
    assert (r["group"], r["firing"], r["api"]) == (g, 0, None), r
    assert ar in [x["name"] for x in step("GET", "/api/v1/alerts/rules")["rules"]]
    assert step("GET", "/api/v1/alerts/rules/{rule}", rp)["threshold"] == 1e9
    r = step("PUT", "/api/v1/alerts/rules/{rule}", rp,
             body={"kind": "request_p99_ms", "api": "Produce", "threshold": 60000})
    assert (r["kind"], r["api"], r["group"], r["severity"]) == \
        ("request_p99_ms", "Produce", None, "warning"), r
    r = step("PATCH", "/api/v1/alerts/rules/{rule}", rp, body={"enabled": False, "api": None})
    assert (r["enabled"], r["api"], r["threshold"]) == (False, None, 60000), r
    now = step("GET", "/api/v1/alerts")
    assert now["this_node"] == 0 and not [x for x in now["firing"] if x["rule"] == ar], now
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    sil = step("POST", "/api/v1/alerts/silences",
               body={"rule": ar, "subject": "broker=*", "starts_at": int(time.time() * 1000),
                     "ends_at": until, "comment": "walk"}, want=201)
    assert (sil["state"], sil["created_by"]) == ("active", "User:admin"), sil

    def silence_state():
        listed = step("GET", "/api/v1/alerts/silences")["silences"]
        return [x["state"] for x in listed if x["id"] == sil["id"]]
    assert silence_state() == ["active"]
    step("DELETE", "/api/v1/alerts/silences/{silence}", {"silence": sil["id"]})
    assert silence_state() == ["expired"]
    assert step("GET", "/api/v1/alerts/history", query={"limit": 10, "rule": ar})["events"] == []
    step("DELETE", "/api/v1/alerts/rules/{rule}", rp)
    step("DELETE", "/api/v1/topics/{topic}", tp)
    assert step("DELETE", "/api/v1/session")["ended"] is True
    missing = set(SPEC.operations()) - set(steps)
    assert not missing, f"operations of openapi.yaml with no step here: {sorted(missing)}"


def test_every_documented_endpoint_was_called_by_these_tests():
    """Runs last: every operation of broker/console/openapi.yaml was called
    above (a unit test checks the file against the route table)."""
    if len(CALLED) < 10:
        pytest.skip("only part of this module ran")
    # The alerts endpoints have their own module (test_console_alerts.py)
    # with the same check.
    ops = {op for op in SPEC.operations() if not op[1].startswith("/api/v1/alerts")}
    assert len(ops) >= 30, ops

    def matches(template, path):
        t, p = template.split("/"), path.split("/")
        return len(t) == len(p) and all(a == b or a.startswith("{") for a, b in zip(t, p))

    missed = [(m, tpl) for m, tpl in sorted(ops)
              if not any(cm == m and matches(tpl, cp) for cm, cp in CALLED)]
    assert not missed, f"documented endpoints never called: {missed}"
