"""The console's cluster-wide metrics history on three brokers: any broker
serves every broker's history (`GET /api/v1/metrics/cluster-history`),
fetching the others' from the admin listener each registered with the
controller; a frozen broker and a stopped one are listed as missing with
the reason, within the call's short timeouts, never as an error; and the
admin endpoint in the registrations never reaches a Kafka client."""

import signal
import time

from kafka import KafkaAdminClient

from cluster import Cluster, wait_until
from pki import Ca
from test_console_api import Api


def cluster_history(node, ca=None, **query):
    api = Api(node.admin_port) if ca is None else Api(node.admin_port, scheme="https", ca=ca)
    status, out = api.call("GET", "/api/v1/metrics/cluster-history", query=query or None)
    assert status == 200, out
    return {b["id"]: b for b in out["brokers"]}


def own_history(node, series):
    status, out = Api(node.admin_port).call("GET", "/api/v1/metrics/history",
                                            query={"series": series})
    assert status == 200, out
    return out["series"][series]


def test_every_brokers_history_and_missing_ones(shardline_bin, tmp_path):
    c = Cluster(shardline_bin, tmp_path).start()
    try:
        c.wait_registered()
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]

        # Each broker samples every 10 s; wait until all three have points.
        def all_sampled():
            h = cluster_history(n1, series="partitions,disk_free_bytes")
            ok = sorted(h) == [1, 2, 3] and all(
                b["status"] == "ok" and b["series"].get("partitions") for b in h.values())
            return h if ok else None
        h = wait_until("every broker's history through node 1", all_sampled, timeout=45, every=1)
        assert [h[i]["self"] for i in (1, 2, 3)] == [True, False, False], h
        assert all(b["error"] is None and set(b["series"]) == {"partitions", "disk_free_bytes"}
                   for b in h.values()), h
        # What node 1 relays for node 2 is node 2's own history.
        theirs = {t: v for t, v in own_history(n2, "disk_free_bytes")}
        relayed = h[2]["series"]["disk_free_bytes"]
        assert relayed and all(theirs.get(t) == v for t, v in relayed), (relayed, theirs)
        # Any broker serves it; one broker alone on request.
        assert sorted(cluster_history(n3)) == [1, 2, 3]
        only = cluster_history(n3, broker="1", series="partitions")
        assert list(only) == [1] and only[1]["status"] == "ok" and not only[1]["self"], only

        # A frozen broker accepts connections and never answers: missing,
        # within the call's timeout.
        n2.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            h = cluster_history(n1, series="partitions")
            took = time.monotonic() - t0
        finally:
            n2.proc.send_signal(signal.SIGCONT)
        assert took < 6, took
        assert h[2]["status"] == "missing" and h[2]["series"] == {}, h
        assert f"127.0.0.1:{n2.admin_port}" in h[2]["error"], h[2]
        assert h[1]["status"] == h[3]["status"] == "ok", h

        # A stopped broker stays registered (fenced) and shows as missing.
        n3.terminate()
        h = cluster_history(n1, series="partitions")
        assert sorted(h) == [1, 2, 3], h
        assert h[3]["status"] == "missing" and h[3]["series"] == {}, h
        assert f"127.0.0.1:{n3.admin_port}" in h[3]["error"], h[3]
        assert h[1]["status"] == h[2]["status"] == "ok", h
        one = cluster_history(n2, broker="3")
        assert one[3]["status"] == "missing", one

        # The registrations carry the admin listener; no Kafka response
        # shows it (DescribeCluster lists the client listener's endpoints).
        admin = KafkaAdminClient(bootstrap_servers=c.bootstrap(1), request_timeout_ms=5000)
        try:
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        ports = {b["port"] for b in brokers}
        assert ports <= {n.port for n in c.nodes.values()}, brokers
        assert not ports & {n.admin_port for n in c.nodes.values()}, brokers
    finally:
        c.close()


def test_https_admin_listeners_are_verified_against_the_truststore(shardline_bin, tmp_path):
    """Brokers with a certificate serve their admin listener over HTTPS and
    register it so; a broker with the CA in ssl_truststore_location fetches
    the others' history over verified HTTPS, one without says why it cannot."""
    ca = Ca(tmp_path / "pki")
    cert, key = ca.issue("broker", server=True, CN="localhost")
    tls = ["--ssl-certificate-location", str(cert), "--ssl-key-location", str(key)]
    c = Cluster(shardline_bin, tmp_path, extra_args=tls)
    for i in (2, 3):
        c.nodes[i].extra_args = tls + ["--ssl-truststore-location", str(ca.cert_path)]
    c.start()
    try:
        c.wait_registered()
        n1, n2 = c.nodes[1], c.nodes[2]

        def sampled():
            h = cluster_history(n2, ca=ca.cert_path, series="partitions")
            return h if all(b["status"] == "ok" and b["series"].get("partitions")
                            for b in h.values()) and len(h) == 3 else None
        wait_until("every broker's history over HTTPS", sampled, timeout=45, every=1)
        h = cluster_history(n1, ca=ca.cert_path, series="partitions")
        assert h[1]["status"] == "ok", h
        for i in (2, 3):
            assert h[i]["status"] == "missing", h
            assert h[i]["error"].startswith(f"https://127.0.0.1:{c.nodes[i].admin_port}/"), h[i]
            assert "ssl_truststore_location" in h[i]["error"], h[i]
    finally:
        c.close()
