"""Client quotas (KIP-13/124/219/546) with real clients: the `shardline
quota` CLI and kafka-python's DescribeClientQuotas/AlterClientQuotas codecs
for the admin side; confluent-kafka (librdkafka) producers and consumers
throttled by producer_byte_rate / consumer_byte_rate, measured against the
quota, while another client stays unthrottled; request_percentage; quotas
surviving a restart; a corrupt quota file stopping the broker.

The throughput tests run the broker with `quota_window_num = 3` (rates over
2-3 one-second samples instead of Kafka's 11): Kafka's algorithm lets a
greedy client use a whole window's budget at once and then mutes it, so
with 11 samples throughput comes in ~10 s bursts and a 9 s measurement
could not be within 20 % of the quota. The algorithm is the same."""

import subprocess
import threading
import time

import pytest

from conftest import create_topic, produce, unique_topic

QUOTA = 1024 * 1024  # bytes per second
WINDOW_NUM = 3
WARMUP_S = 6.0  # the first burst and its mute (up to a whole window) are over by then
MEASURE_S = 9.0
VALUE = b"q" * 1000


def quota_broker(broker_factory, tmp_path, extra=""):
    cfg = tmp_path / "quotas.toml"
    cfg.write_text(f"quota_window_num = {WINDOW_NUM}\nquota_window_size_seconds = 1\n{extra}")
    return broker_factory(extra_args=["--config", str(cfg)])


def cli(broker, *args, check=True):
    r = subprocess.run(
        [str(broker.binary), "quota", *args, "-b", broker.bootstrap],
        capture_output=True, text=True, timeout=30,
    )
    if check:
        assert r.returncode == 0, f"shardline quota {args}: {r.stderr}"
    return r


def listing(broker, *args):
    """`quota list` as {entity text: {key: value}}."""
    out = {}
    for line in cli(broker, "list", *args).stdout.splitlines()[1:]:
        entity, _, values = line.partition("  ")
        out[entity.strip()] = dict(
            (kv.split("=")[0], float(kv.split("=")[1])) for kv in values.strip().split(", ") if kv
        )
    return out


def run_producer(bootstrap, topic, client_id, warmup_s, measure_s, result, conf=None):
    """Produce flat out for warmup_s + measure_s; `result` gets the value
    bytes acknowledged per second during the measurement and the throttle
    times librdkafka reported."""
    from confluent_kafka import Producer
    throttles = []
    p = Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "acks": 1,
        "linger.ms": 5, "batch.size": 65536,
        # A small queue: the burst before the first throttle stays small.
        "queue.buffering.max.kbytes": 1024,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
        **(conf or {}),
    })
    t0 = time.monotonic()
    start, end = t0 + warmup_s, t0 + warmup_s + measure_s
    acked = [0]

    def cb(err, msg):
        now = time.monotonic()
        if err is None and start <= now < end:
            acked[0] += len(msg.value())

    while time.monotonic() < end:
        try:
            p.produce(topic, VALUE, on_delivery=cb)
        except BufferError:
            p.poll(0.02)
        p.poll(0)
    p.purge()
    p.flush(10)
    result["rate"] = acked[0] / measure_s
    result["throttles"] = throttles


def assert_near_quota(rate, what):
    assert 0.8 * QUOTA <= rate <= 1.2 * QUOTA, (
        f"{what}: {rate / 1e6:.3f} MB/s against a quota of {QUOTA / 1e6:.3f} MB/s "
        f"({rate / QUOTA:.0%})"
    )


def test_producer_is_throttled_to_its_quota_and_others_are_not(broker_factory, tmp_path):
    b = quota_broker(broker_factory, tmp_path)
    topic = unique_topic("quota-p")
    create_topic(b.bootstrap, topic)
    cli(b, "set", "--client-id", "slow-producer", "--producer-byte-rate", str(QUOTA))

    slow = {}
    t = threading.Thread(
        target=run_producer, args=(b.bootstrap, topic, "slow-producer", WARMUP_S, MEASURE_S, slow))
    t.start()
    # Meanwhile an unthrottled client-id gets far more than the quota.
    time.sleep(WARMUP_S)
    free_throttles = []
    started = time.monotonic()
    results = produce(b.bootstrap, topic, [{"value": VALUE}] * 10000,
                      conf={"client.id": "free-producer", "acks": 1,
                            "throttle_cb": lambda ev: free_throttles.append(ev.throttle_time)})
    free_rate = len(results) * len(VALUE) / (time.monotonic() - started)
    t.join(timeout=60)
    assert not t.is_alive()
    print(f"throttled producer: {slow['rate'] / 1e6:.3f} MB/s ({slow['rate'] / QUOTA:.1%} of quota); "
          f"free producer: {free_rate / 1e6:.1f} MB/s")
    assert all(r["error"] is None for r in results)
    assert_near_quota(slow["rate"], "throttled producer")
    assert free_rate > 4 * QUOTA, f"unthrottled producer only got {free_rate / 1e6:.2f} MB/s"
    # librdkafka saw the throttle time in the responses; the free client never.
    assert any(x > 0 for x in slow["throttles"]), slow["throttles"][:10]
    assert not any(x > 0 for x in free_throttles), free_throttles[:10]
    assert "client quotas of client-id slow-producer changed" in b.log_text()


def test_scram_user_is_throttled_by_its_user_quota(shardline_bin, tmp_path):
    from test_sasl import SaslBroker, create_scram_user, sasl_conf
    from conftest import free_port
    b = SaslBroker(shardline_bin, tmp_path, free_port())
    with open(b.config_path, "a") as f:
        f.write(f"quota_window_num = {WINDOW_NUM}\n")
    try:
        b.start()
        create_scram_user(b, "quser", "quser-secret")
        topic = unique_topic("quota-u")
        create_topic(b.bootstrap, topic)
        # The user entity, whatever client id the user's clients send.
        cli(b, "set", "--user", "quser", "--producer-byte-rate", str(QUOTA))
        slow = {}
        run_producer(b.sasl_bootstrap, topic, "any-client-id", WARMUP_S, MEASURE_S, slow,
                     conf=sasl_conf("SCRAM-SHA-256", "quser", "quser-secret"))
        print(f"throttled SCRAM user: {slow['rate'] / 1e6:.3f} MB/s ({slow['rate'] / QUOTA:.1%} of quota)")
        assert_near_quota(slow["rate"], "SCRAM user quser")
        assert any(x > 0 for x in slow["throttles"])
    finally:
        b.close()


def test_consumer_is_throttled_to_its_quota(broker_factory, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    b = quota_broker(broker_factory, tmp_path)
    topic = unique_topic("quota-c")
    create_topic(b.bootstrap, topic)
    # Enough data that the consumer never catches up during the test.
    total = int(QUOTA * (WARMUP_S + MEASURE_S + WINDOW_NUM) * 2.5)
    # Batches of 64 KiB: a fetch returns whole batches, so their size is
    # the step in which the consumer's rate moves (a 1 MiB batch would be a
    # whole second of this quota at once).
    produce(b.bootstrap, topic, [{"value": VALUE}] * (total // len(VALUE)),
            conf={"acks": 1, "batch.size": 64 << 10})
    cli(b, "set", "--client-id", "slow-consumer", "--consumer-byte-rate", str(QUOTA))
    throttles = []
    c = Consumer({
        "bootstrap.servers": b.bootstrap, "client.id": "slow-consumer",
        "group.id": "quota-test", "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        # Responses of at most 1/8 of a second's quota, so each is a small
        # step of the rate rather than a window's budget and a long mute.
        "max.partition.fetch.bytes": QUOTA // 8, "fetch.max.bytes": QUOTA // 8,
        "message.max.bytes": QUOTA // 8,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
    })
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        t0 = time.monotonic()
        start, end = t0 + WARMUP_S, t0 + WARMUP_S + MEASURE_S
        got = 0
        per_s = {}
        while time.monotonic() < end:
            for m in c.consume(num_messages=1000, timeout=0.2):
                now = time.monotonic()
                per_s[int(now - t0)] = per_s.get(int(now - t0), 0) + len(m.value() or b"")
                if m.error() is None and now >= start:
                    got += len(m.value())
        print("bytes per second:", sorted(per_s.items()), "throttles:", throttles[:20])
    finally:
        c.close()
    rate = got / MEASURE_S
    print(f"throttled consumer: {rate / 1e6:.3f} MB/s ({rate / QUOTA:.1%} of quota)")
    assert_near_quota(rate, "throttled consumer")
    assert any(x > 0 for x in throttles), throttles[:10]


def test_request_percentage_throttles_request_time(broker_factory, tmp_path):
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest
    b = quota_broker(broker_factory, tmp_path)
    # 0.001 % of a core (10 µs a second): a stream of requests is over it.
    cli(b, "set", "--client-id", "busy", "--request-percentage", "0.001")
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="busy")
    seen = []

    async def hammer():
        for _ in range(300):
            r = await admin._manager.send(DescribeClientQuotasRequest(components=[], strict=False))
            seen.append(r.throttle_time_ms)
            if r.throttle_time_ms > 0:
                return

    try:
        admin._manager.run(hammer)
    finally:
        admin.close()
    assert seen and seen[-1] > 0, f"never throttled: {seen}"


def test_admin_round_trip_with_kafka_python(broker_factory, tmp_path):
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin.client_quotas import (
        AlterClientQuotasRequest, DescribeClientQuotasRequest,
    )
    b = quota_broker(broker_factory, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    out = {}

    async def go():
        out["alter"] = await admin._manager.send(AlterClientQuotasRequest(entries=[
            ([("user", "kp"), ("client-id", None)], [("consumer_byte_rate", 4096.0, False),
                                                     ("controller_mutation_rate", 2.5, False)]),
            ([("user", None)], [("producer_byte_rate", 1000.0, False)]),
            ([("user", "bad")], [("producer_byte_rate", -1.0, False)]),
            ([("user", "bad2")], [("no_such_quota", 1.0, False)]),
            ([("client-id", "x")], [("request_percentage", 5.0, False)]),
        ], validate_only=False))
        out["validate_only"] = await admin._manager.send(AlterClientQuotasRequest(entries=[
            ([("client-id", "never")], [("producer_byte_rate", 1.0, False)]),
        ], validate_only=True))
        out["remove"] = await admin._manager.send(AlterClientQuotasRequest(entries=[
            ([("client-id", "x")], [("request_percentage", 0.0, True)]),
        ], validate_only=False))
        out["exact"] = await admin._manager.send(
            DescribeClientQuotasRequest(components=[("user", 0, "kp")], strict=False))
        out["exact_strict"] = await admin._manager.send(
            DescribeClientQuotasRequest(components=[("user", 0, "kp")], strict=True))
        out["default"] = await admin._manager.send(
            DescribeClientQuotasRequest(components=[("user", 1, None)], strict=True))
        out["any"] = await admin._manager.send(
            DescribeClientQuotasRequest(components=[("user", 2, None)], strict=False))
        out["all"] = await admin._manager.send(DescribeClientQuotasRequest(components=[], strict=False))
        out["invalid"] = await admin._manager.send(
            DescribeClientQuotasRequest(components=[("user", 0, None)], strict=False))

    try:
        admin._manager.run(go)
    finally:
        admin.close()
    codes = [(e.error_code, e.error_message) for e in out["alter"].entries]
    assert [c for c, _ in codes] == [0, 0, 42, 42, 0], codes
    assert "must be positive" in codes[2][1]
    assert "unknown quota key" in codes[3][1]
    assert out["validate_only"].entries[0].error_code == 0
    assert out["remove"].entries[0].error_code == 0

    def entities(resp):
        assert resp.error_code == 0, resp
        return sorted(
            (tuple((e.entity_type, e.entity_name or "<default>") for e in entry.entity),
             tuple(sorted((v.key, v.value) for v in entry.values)))
            for entry in resp.entries)

    kp = ((("user", "kp"), ("client-id", "<default>")),
          (("consumer_byte_rate", 4096.0), ("controller_mutation_rate", 2.5)))
    default_user = ((("user", "<default>"),), (("producer_byte_rate", 1000.0),))
    assert entities(out["exact"]) == [kp]
    assert entities(out["exact_strict"]) == []
    assert entities(out["default"]) == [default_user]
    assert entities(out["any"]) == sorted([kp, default_user])
    # validate_only stored nothing; the removed key took its entity along.
    assert entities(out["all"]) == sorted([kp, default_user])
    assert out["invalid"].error_code == 42 and "EXACT" in out["invalid"].error_message
    # The CLI sees the same.
    assert listing(b) == {
        "user=kp client-id=<default>": {"consumer_byte_rate": 4096.0, "controller_mutation_rate": 2.5},
        "user=<default>": {"producer_byte_rate": 1000.0},
    }


def test_cli_validation_persistence_and_corrupt_file(broker_factory, tmp_path):
    b = quota_broker(broker_factory, tmp_path)
    cli(b, "set", "--user", "alice", "--producer-byte-rate", "1048576", "--consumer-byte-rate", "2097152")
    cli(b, "set", "--default-user", "--default-client-id", "--request-percentage", "50")
    cli(b, "set", "--client-id", "app", "--controller-mutation-rate", "10")
    bad = cli(b, "set", "--user", "bob", "--producer-byte-rate", "1.5", check=False)
    assert bad.returncode != 0 and "INVALID_REQUEST" in bad.stderr and "whole number" in bad.stderr
    bad = cli(b, "set", "--user", "bob", "--consumer-byte-rate=-10", check=False)
    assert bad.returncode != 0 and "must be positive" in bad.stderr, bad.stderr
    bad = cli(b, "remove", "--user", "alice", "--key", "bogus_rate", check=False)
    assert bad.returncode != 0 and "unknown quota key" in bad.stderr
    cli(b, "remove", "--user", "alice", "--key", "consumer_byte_rate")
    want = {
        "user=alice": {"producer_byte_rate": 1048576.0},
        "user=<default> client-id=<default>": {"request_percentage": 50.0},
        "client-id=app": {"controller_mutation_rate": 10.0},
    }
    assert listing(b) == want
    assert listing(b, "--user", "alice") == {"user=alice": want["user=alice"]}

    b.restart()
    assert listing(b) == want

    b.terminate()
    (b.data_dir / "quotas.json").write_text('{"version": 1, "entries": [')
    with pytest.raises(RuntimeError) as err:
        b.start(timeout=15)
    assert "quotas.json is corrupt" in str(err.value)
