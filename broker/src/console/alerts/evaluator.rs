//! The evaluation loop: a thread of its own (it blocks on Kafka requests
//! and on the metadata quorum, which a shard must never do), one round
//! every `alert_eval_interval_ms`, doing work only while this node is the
//! active controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use shardline_client::Client;

use super::inputs::{self, Inputs, Needs};
use super::machine::{Machine, Transition};
use super::notify::{self, Notification, Notifier};
use super::Alerts;
use crate::console::history::{LagSource, Samples};
use crate::metadata::alerts::{ActiveAlert, AlertCommand, AlertRule, AlertsState};
use crate::metadata::{ClusterState, MetadataCommand};

pub struct Evaluator {
    alerts: Arc<Alerts>,
    /// How group lag and disks are read over the Kafka protocol (as the
    /// inter-broker or bootstrap user; anonymously in open mode).
    lag: Option<LagSource>,
    registry: prometheus_client::registry::Registry,
    notifier: Notifier,
    machine: Machine,
    client: Option<Client>,
    prev: Option<(Instant, Samples)>,
    was_leader: bool,
    /// The alerting state at the end of the last round this node led: a
    /// rule deleted since, with alerts firing then, has them notified
    /// resolved (the deletion resolved them in the history).
    last_seen: Option<Arc<AlertsState>>,
    /// The clock (epoch ms): the state machine takes time from here only.
    now: fn() -> i64,
}

impl Evaluator {
    pub fn new(
        alerts: Arc<Alerts>,
        lag: Option<LagSource>,
        policy: notify::Policy,
    ) -> std::io::Result<Evaluator> {
        Ok(Evaluator {
            alerts,
            lag,
            registry: crate::metrics::registry(),
            notifier: Notifier::start(policy)?,
            machine: Machine::default(),
            client: None,
            prev: None,
            was_leader: false,
            last_seen: None,
            now: crate::ops::time::now_ms,
        })
    }

    pub fn spawn(mut self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("alert-evaluator".into())
            .spawn(move || loop {
                std::thread::sleep(self.alerts.interval);
                self.round();
            })?;
        Ok(())
    }

    fn round(&mut self) {
        let view = self.alerts.metadata.quorum().view();
        if !view.is_leader {
            if self.was_leader {
                tracing::info!(
                    "alerts: no longer the active controller; node {:?} evaluates the rules now",
                    view.leader
                );
            }
            // What was pending here starts over wherever evaluation goes;
            // the firing state is in the metadata.
            self.was_leader = false;
            self.machine = Machine::default();
            self.prev = None;
            self.last_seen = None;
            let mut s = self.alerts.status.lock().expect("alerts status lock");
            s.evaluating = false;
            s.pending.clear();
            return;
        }
        let state = self.alerts.metadata.snapshot();
        if !self.was_leader {
            tracing::info!(
                "alerts: this node is the active controller; evaluating {} rule(s), {} alert(s) firing",
                state.alerts.rules.len(),
                state.alerts.active.len()
            );
            self.was_leader = true;
        }
        self.resolve_deleted(&state.alerts);
        self.machine.sync(&state.alerts);
        let mut problems = Vec::new();
        let inputs = self.gather(&state, &mut problems);
        let now = (self.now)();
        for rule in state.alerts.rules.values() {
            let observed = inputs::observe(rule, &state, &inputs);
            let silenced =
                |subject: &str| state.alerts.silenced_by(&rule.name, subject, now).is_some();
            for t in self.machine.step(rule, observed.as_ref(), now, &silenced) {
                self.record(rule, &t);
            }
        }
        self.last_seen = Some(self.alerts.metadata.snapshot().alerts.clone());
        let mut s = self.alerts.status.lock().expect("alerts status lock");
        s.evaluating = true;
        s.last_round_ms = Some((self.now)());
        s.pending = self.machine.pending();
        s.problems = problems;
    }

    fn gather(&mut self, state: &ClusterState, problems: &mut Vec<String>) -> Inputs {
        let me = self.alerts.node_id;
        let needs = Needs::of(state.alerts.rules.values());
        // This broker's own series: read every round, so the next round's
        // rates cover one round.
        let own = inputs::read_metrics(&mut self.prev, &self.registry);
        let mut metrics = BTreeMap::from([(me, own)]);
        if needs.peer_metrics {
            let now = (self.now)();
            let tls = self.alerts.peer_tls.as_ref();
            metrics.extend(inputs::read_peer_metrics(state, me, now, tls, problems));
        }
        let mut inputs = Inputs {
            // Before a first round of this broker's own, nothing: a rule
            // then waits for one (rather than resolving what fired).
            metrics: metrics[&me].is_some().then_some(metrics),
            ..Inputs::default()
        };
        if !(needs.groups || needs.disks) {
            return inputs;
        }
        let Some(src) = &self.lag else {
            problems.push(
                "group lag and disks: no Kafka listener and user to read them as".to_string(),
            );
            return inputs;
        };
        if self.client.is_none() {
            match src.target.connect(src.auth.as_ref()) {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    problems.push(format!("connecting to read group lag and disks: {e:#}"));
                    return inputs;
                }
            }
        }
        let client = self.client.as_mut().expect("connected above");
        if needs.groups {
            match inputs::read_groups(client, needs.ages, (self.now)()) {
                Ok(g) => inputs.groups = Some(g),
                Err(e) => {
                    problems.push(format!("listing groups: {e:#}"));
                    self.client = None;
                    return inputs;
                }
            }
        }
        if needs.disks {
            inputs.disks = inputs::read_disks(client, state);
            for (id, d) in &inputs.disks {
                if d.is_none() {
                    problems.push(format!("DescribeLogDirs of broker {id} failed"));
                }
            }
        }
        inputs
    }

    /// Commit `t` to the metadata, then log and notify it; one that does
    /// not commit is neither (see the module doc of `super`).
    fn record(&mut self, rule: &AlertRule, t: &Transition) {
        let cmd = match t.clone() {
            Transition::Fire {
                rule: name,
                subject,
                value,
                threshold,
                starts_at,
                silenced,
            } => AlertCommand::Fire(ActiveAlert {
                rule: name,
                subject,
                severity: rule.severity,
                value,
                threshold,
                starts_at,
                silenced,
            }),
            Transition::Resolve {
                rule,
                subject,
                value,
                ends_at,
                silenced,
                ..
            } => AlertCommand::Resolve {
                rule,
                subject,
                value,
                ends_at,
                silenced,
            },
        };
        let (name, subject) = t.key();
        let status = t.status();
        let committed =
            futures::executor::block_on(self.alerts.metadata.execute(MetadataCommand::Alerts(cmd)));
        if let Err(e) = committed {
            tracing::info!(
                "alerts: {name} {subject} {status}: not recorded, so not notified here: {e}"
            );
            return;
        }
        self.announce(rule, t);
    }

    /// Alerts firing at the end of the last round whose rule has been
    /// deleted since: notified resolved, as the deletion recorded them.
    /// Only by a node that led that round too, so a new controller does
    /// not (it never saw them): at most once.
    fn resolve_deleted(&mut self, now_state: &AlertsState) {
        let Some(prev) = self.last_seen.take() else {
            return;
        };
        let now = (self.now)();
        for a in prev.active.values() {
            if now_state.rules.contains_key(&a.rule) {
                continue;
            }
            let Some(rule) = prev.rules.get(&a.rule) else {
                continue;
            };
            let t = Transition::Resolve {
                rule: a.rule.clone(),
                subject: a.subject.clone(),
                value: a.value,
                threshold: a.threshold,
                starts_at: a.starts_at,
                ends_at: now,
                silenced: a.silenced || now_state.silenced_by(&a.rule, &a.subject, now).is_some(),
            };
            tracing::info!(
                "alerts: rule {} was deleted; {} resolves",
                a.rule,
                a.subject
            );
            self.announce(rule, &t);
        }
    }

    /// Log `t` and post it to the rule's webhooks (unless silenced).
    fn announce(&self, rule: &AlertRule, t: &Transition) {
        let status = t.status();
        let body = notify::body(t, rule, self.alerts.node_id);
        let silenced = t.silenced();
        tracing::warn!(
            "ALERT {} [{}] {}{}",
            status.to_uppercase(),
            rule.severity.name(),
            body["summary"].as_str().unwrap_or(""),
            if silenced {
                " (silenced: not notified)"
            } else {
                ""
            }
        );
        if silenced {
            return;
        }
        for url in &rule.webhooks {
            self.notifier.send(Notification {
                url: url.clone(),
                body: body.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::console::alerts::notify::tests::receiver;
    use crate::metadata::alerts::tests::rule;
    use crate::metadata::alerts::{AlertKind, AlertStatus, Silence};
    use crate::metadata::{MetadataStore, PartitionMeta};

    static NOW: AtomicI64 = AtomicI64::new(0);

    fn run(store: &MetadataStore, cmd: MetadataCommand) {
        futures::executor::block_on(store.execute(cmd)).unwrap();
    }

    /// Rounds on a single node (its own controller) with the clock in the
    /// test's hand: pending, then firing once `for` elapsed, committed to
    /// the metadata and posted; a silenced alert committed and not posted.
    #[test]
    fn rounds_record_then_notify_and_silences_only_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetadataStore::load_or_init(dir.path(), 1, 0).unwrap());
        // One partition with a replica out of sync: under-replicated.
        let mut p = PartitionMeta::local(0, 0);
        p.replicas = vec![0, 1];
        p.shards = vec![0, 0];
        run(
            &store,
            MetadataCommand::CreateTopic {
                name: "t".into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![p],
                configs: BTreeMap::new(),
            },
        );
        let (url, posts) = receiver(200);
        let mut urp = rule("urp", AlertKind::UnderReplicatedPartitions, 0.0);
        urp.for_ms = 60_000;
        urp.webhooks = vec![url.clone()];
        let mut quiet = rule("quiet", AlertKind::UnderReplicatedPartitions, 0.0);
        quiet.webhooks = vec![url];
        for r in [urp, quiet] {
            run(
                &store,
                MetadataCommand::Alerts(AlertCommand::PutRule {
                    rule: r,
                    create: true,
                }),
            );
        }
        let t0 = 1_800_000_000_000;
        run(
            &store,
            MetadataCommand::Alerts(AlertCommand::PutSilence(Silence {
                id: "s".into(),
                rule: Some("quiet".into()),
                subject: None,
                starts_at: t0,
                ends_at: t0 + 3_600_000,
                comment: String::new(),
                created_by: "User:test".into(),
            })),
        );
        let alerts = Arc::new(Alerts {
            node_id: 0,
            metadata: store.clone(),
            interval: Duration::from_millis(100),
            status: Mutex::new(Default::default()),
            peer_tls: None,
            webhook_hosts: Vec::new(),
        });
        let open = || notify::Policy::new(Vec::new(), None);
        let mut e = Evaluator::new(alerts.clone(), None, open()).unwrap();
        e.now = || NOW.load(Ordering::Relaxed);
        NOW.store(t0, Ordering::Relaxed);
        e.round();
        let firing = |s: &MetadataStore| -> Vec<String> {
            s.snapshot()
                .alerts
                .active
                .keys()
                .map(|k| k.0.clone())
                .collect()
        };
        assert_eq!(firing(&store), ["quiet"], "urp waits for its `for`");
        assert_eq!(alerts.status.lock().unwrap().pending.len(), 1);
        NOW.store(t0 + 59_999, Ordering::Relaxed);
        e.round();
        assert_eq!(firing(&store), ["quiet"]);
        NOW.store(t0 + 60_000, Ordering::Relaxed);
        e.round();
        assert_eq!(firing(&store), ["quiet", "urp"]);
        e.round();
        let post = posts.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            post.contains("\"rule\":\"urp\"") && post.contains("\"status\":\"firing\""),
            "{post}"
        );
        assert!(
            posts.recv_timeout(Duration::from_millis(500)).is_err(),
            "one post: none for the silenced rule, none again for urp"
        );
        let history = store.snapshot().alerts.history.clone();
        let recorded: Vec<(&str, AlertStatus, bool)> = history
            .iter()
            .map(|h| (h.rule.as_str(), h.status, h.silenced))
            .collect();
        assert_eq!(
            recorded,
            [
                ("quiet", AlertStatus::Firing, true),
                ("urp", AlertStatus::Firing, false)
            ]
        );
        // A new evaluator (a new controller) takes the firing alerts over:
        // nothing is fired or posted again.
        let mut again = Evaluator::new(alerts, None, open()).unwrap();
        again.now = e.now;
        again.round();
        assert_eq!(store.snapshot().alerts.history.len(), 2);
        assert!(posts.recv_timeout(Duration::from_millis(500)).is_err());
        // Deleting the rule resolves its alert: in the history, and posted
        // once by the controller that saw it firing.
        let deleted = |name: &str| {
            MetadataCommand::Alerts(AlertCommand::DeleteRule {
                name: name.into(),
                at: t0 + 61_000,
            })
        };
        run(&store, deleted("urp"));
        run(&store, deleted("quiet"));
        again.round();
        let post = posts.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            post.contains("\"rule\":\"urp\"") && post.contains("\"status\":\"resolved\""),
            "{post}"
        );
        again.round();
        assert!(
            posts.recv_timeout(Duration::from_millis(500)).is_err(),
            "once; none for the silenced rule"
        );
        let last: Vec<_> = store
            .snapshot()
            .alerts
            .history
            .iter()
            .skip(2)
            .map(|h| (h.rule.clone(), h.status))
            .collect();
        assert_eq!(
            last,
            [
                ("urp".to_string(), AlertStatus::Resolved),
                ("quiet".to_string(), AlertStatus::Resolved)
            ]
        );
    }
}
