"""Alert rules under the soak (SOAK_ALERTS=1): a webhook receiver, rules
that fire through the soak's bounces (broker_down, disk on every broker,
Produce p99 on every broker), and the check that matters across controller
failovers: no notification is sent twice (two firing POSTs of one alert,
the same rule, subject and start, would mean two senders)."""

import json
import urllib.request
from collections import Counter

from webhook_receiver import Receiver

RULES = [
    {"name": "soak-broker-down", "kind": "broker_down", "threshold": 0},
    {"name": "soak-disk", "kind": "disk_free_percent", "threshold": 100},
    {"name": "soak-p99", "kind": "request_p99_ms", "threshold": 0.0001, "api": "Produce"},
]


class AlertWatch:
    def __init__(self, cluster, say):
        self.cluster, self.say = cluster, say
        self.receiver = Receiver()
        self.url = self.receiver.url

    def create_rules(self):
        node = next(n for n in self.cluster.nodes.values() if n.is_running())
        for r in RULES:
            req = urllib.request.Request(
                f"http://127.0.0.1:{node.admin_port}/api/v1/alerts/rules",
                data=json.dumps({**r, "webhooks": [self.url]}).encode(), method="POST",
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 201, resp.status
        self.say(f"alerts: {len(RULES)} rules posting to {self.url}")

    def summary(self):
        with self.receiver.lock:
            bodies = list(self.receiver.bodies)
        counts = Counter((b["rule"], b["status"]) for b in bodies)
        senders = Counter(b["sender"] for b in bodies)
        return bodies, counts, senders

    def problems(self):
        bodies, counts, _ = self.summary()
        out = []
        if not bodies:
            out.append("no alert notification at all")
        for status in ("firing", "resolved"):
            keys = Counter((b["rule"], b["subject"], b["startsAt"]) for b in bodies
                           if b["status"] == status)
            twice = [k for k, n in keys.items() if n > 1]
            if twice:
                out.append(f"{len(twice)} alerts notified {status} more than once "
                           f"(first: {twice[0]})")
        return out

    def describe(self):
        _, counts, senders = self.summary()
        per_rule = ", ".join(f"{r} {s} {n}" for (r, s), n in sorted(counts.items()))
        return f"alerts: {per_rule or 'none'}; senders {dict(sorted(senders.items()))}"

    def close(self):
        self.receiver.close()
