"""The HTTP admin listener (`admin_listen`): `/metrics` counts the requests
of real clients per Kafka API and the bytes on the wire, and shows the
partitions this broker holds and leads; `/health` answers 200 with status ok
once the broker serves; `metrics_listen`, the older name, serves the same on
its own address; other paths get a 404 with a hint."""

import json
import re
import urllib.error
import urllib.request

from conftest import consume, create_topic, free_port, produce, unique_topic

SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """{(name, labels): value} of one /metrics scrape."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    assert text.endswith("# EOF\n")
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def requests_of(metrics, api):
    return metrics.get(("shardline_requests_total", f'api="{api}"'), 0.0)


def test_metrics_and_health_over_the_admin_listener(broker_factory):
    admin, old = free_port(), free_port()
    b = broker_factory(extra_args=["--shards", "2",
                                   "--admin-listen", f"127.0.0.1:{admin}",
                                   "--metrics-listen", f"127.0.0.1:{old}"])

    status, body = get(admin, "/health")
    assert status == 200, body
    health = json.loads(body)
    assert health["status"] == "ok" and health["shards_serving"] == health["shards"] == 2, health

    before = scrape(admin)
    topic = unique_topic("admin")
    create_topic(b.bootstrap, topic, partitions=3)
    messages = [{"value": f"m{i}".encode() * 50, "partition": i % 3} for i in range(300)]
    assert all(r["error"] is None for r in produce(b.bootstrap, topic, messages))
    for p in range(3):
        assert len(consume(b.bootstrap, topic, partition=p, expect=100, drain_s=0.2)) == 100
    after = scrape(admin)

    for api in ("Produce", "Fetch", "Metadata", "CreateTopics"):
        assert requests_of(after, api) > requests_of(before, api), api
    produces = requests_of(after, "Produce")
    assert after[("shardline_request_duration_seconds_count", 'api="Produce"')] == produces
    assert after[("shardline_request_duration_seconds_bucket", 'le="+Inf",api="Produce"')] == produces
    assert after[("shardline_request_duration_seconds_sum", 'api="Produce"')] > 0
    assert after[("shardline_request_errors_total", 'api="Produce"')] == 0
    # 300 values of 100-odd bytes went in with the produces and out with the fetches.
    assert after[("shardline_bytes_in_total", "")] - before[("shardline_bytes_in_total", "")] > 30_000
    assert after[("shardline_bytes_out_total", "")] - before[("shardline_bytes_out_total", "")] > 30_000
    assert after[("shardline_partitions", "")] >= 3
    assert after[("shardline_leader_partitions", "")] == after[("shardline_partitions", "")]
    assert after[("shardline_offline_partitions", "")] == 0
    assert after[("shardline_storage_offline_partitions", "")] == 0

    # The older key serves the same endpoints on its own address.
    assert requests_of(scrape(old), "Produce") >= produces
    status, body = get(old, "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body

    status, body = get(admin, "/metrix")
    assert status == 404 and "/metrics" in body and "/health" in body, body
