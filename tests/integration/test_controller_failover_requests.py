"""An admin request in flight when the active controller dies.

A broker proposes a metadata change through its own quorum node, which
forwards it to the active controller. Here that controller is frozen
(SIGSTOP) so the forward lands in its socket and is never committed, then
killed. Kafka's broker-to-controller channel sends such a request again to
the next controller; Shardline's quorum node does the same when it hears of
a new leader, and the log keeps one copy of it (a copy the old leader did
commit is skipped by its proposal id). Before, the client waited 10 s for
REQUEST_TIMED_OUT ("whether it happened is unknown")."""

import os
import signal
import struct
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

import raw
from cluster import Cluster, wait_until
from conftest import unique_topic

CREATE_TOPICS = 19
CREATE_PARTITIONS = 37


@pytest.fixture
def cluster(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path)
    try:
        yield c.start().wait_registered()
    finally:
        c.close()

def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _read_str(buf, off):
    (n,) = struct.unpack_from(">h", buf, off)
    off += 2
    if n < 0:
        return None, off
    return buf[off:off + n].decode(), off + n


def admin_v(node, api_key, version, body, timeout_ms):
    """Send one request with a topics-array body to `node` itself (a client
    library would send it to the controller Metadata names: the frozen
    one) and return the first topic result's (error_code, error_message),
    in the layout CreateTopics v4 and CreatePartitions v1 share:
    correlation id, throttle_time_ms, [name, error_code, error_message]."""
    s = raw.connect(node, timeout=timeout_ms / 1000 + 15)
    try:
        s.sendall(raw.request(api_key, version, 41, body))
        resp = raw.read_response(s)
    finally:
        s.close()
    corr, _throttle, n = struct.unpack_from(">iii", resp, 0)
    assert corr == 41 and n == 1
    _name, off = _read_str(resp, 12)
    (code,) = struct.unpack_from(">h", resp, off)
    message, _ = _read_str(resp, off + 2)
    return code, message


def create_topic_v4(node, topic, partitions, timeout_ms=30000):
    """CreateTopics v4: `partitions` partitions, 3 replicas."""
    body = (struct.pack(">i", 1) + _str(topic) + struct.pack(">ihii", partitions, 3, 0, 0)
            + struct.pack(">i?", timeout_ms, False))
    return admin_v(node, CREATE_TOPICS, 4, body, timeout_ms)


def create_partitions_v1(node, topic, count, timeout_ms=30000):
    """CreatePartitions v1 (to a total of `count`)."""
    body = (struct.pack(">i", 1) + _str(topic) + struct.pack(">ii", count, -1)
            + struct.pack(">i?", timeout_ms, False))
    return admin_v(node, CREATE_PARTITIONS, 1, body, timeout_ms)


def partitions_of(node, topic):
    md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return len(t.partitions)


def freeze_then_kill(cluster, request):
    """Freeze the active controller, run `request(via)` on another node in
    a thread, kill the frozen controller once the request is under way, and
    return (result, seconds, via, old)."""
    old = int(cluster.nodes[1].gauge("shardline_active_controller"))
    via = next(i for i in cluster.nodes if i != old)
    victim = cluster.nodes[old]
    out = {}

    def run():
        t0 = time.monotonic()
        out["result"] = request(cluster.nodes[via])
        out["seconds"] = time.monotonic() - t0

    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=run)
        th.start()
        # The forward reaches the frozen controller's socket long before
        # the others' election timeout (1-2 s) ends.
        time.sleep(0.5)
    finally:
        victim.kill9()
    th.join(60)
    assert not th.is_alive(), "the request was never answered"
    return out["result"], out["seconds"], via, old


def test_a_create_topics_forwarded_to_a_controller_that_dies_is_sent_to_the_next(cluster):
    seconds = []
    for round_ in range(2):
        topic = unique_topic(f"in-flight{round_}")
        (code, message), took, via, old = freeze_then_kill(
            cluster, lambda node: create_topic_v4(node, topic, 3))
        assert code == 0, f"round {round_}: CreateTopics answered {code}: {message}"
        seconds.append(took)
        # Created once, with its partitions, on every live node.
        for i, n in cluster.nodes.items():
            if i != old:
                wait_until(f"node {i} has {topic}", lambda: partitions_of(n, topic) == 3)
        resent = cluster.nodes[via].gauge("shardline_quorum_proposals_resent")
        assert resent >= 1, "the broker sent the proposal again to the new controller"
        cluster.nodes[old].start()
        wait_until(f"node {old} has {topic}", lambda: partitions_of(cluster.nodes[old], topic) == 3)
    print(f"CreateTopics across a controller kill answered in {[round(s, 2) for s in seconds]} s")
    # The 10 s proposal timeout would have answered REQUEST_TIMED_OUT.
    assert max(seconds) < 10, seconds


def test_a_create_partitions_in_flight_ends_as_asked(cluster):
    """CreatePartitions in flight across the kill ends as asked: the client
    is answered success (not REQUEST_TIMED_OUT, nor INVALID_PARTITIONS from
    a second copy refused because the first made the count), and every
    node, the old controller too once back, has the 5 partitions."""
    topic = unique_topic("grow")
    assert create_topic_v4(cluster.nodes[1], topic, 2)[0] == 0
    (code, message), took, via, old = freeze_then_kill(
        cluster, lambda node: create_partitions_v1(node, topic, 5))
    assert code == 0, f"CreatePartitions answered {code}: {message} after {took:.1f}s"
    for i, n in cluster.nodes.items():
        if i != old:
            wait_until(f"node {i} sees 5 partitions", lambda: partitions_of(n, topic) == 5)
    cluster.nodes[old].start()
    wait_until("the old controller catches up",
               lambda: partitions_of(cluster.nodes[old], topic) == 5)
