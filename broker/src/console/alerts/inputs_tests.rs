//! Each kind's observed values from a state and a round's inputs.

use std::sync::Arc;

use super::*;
use crate::metadata::alerts::tests::rule;
use crate::metadata::{BrokerMeta, PartitionMeta, TopicMeta};

fn state() -> ClusterState {
    let mut s = ClusterState::default();
    for (id, fenced) in [(1, false), (2, true)] {
        s.brokers.insert(
            id,
            BrokerMeta {
                id,
                incarnation: uuid::Uuid::nil(),
                epoch: 0,
                endpoints: vec![],
                rack: None,
                shards: 1,
                fenced,
            },
        );
    }
    let p = |leader: i32, replicas: Vec<i32>, isr: Vec<i32>| PartitionMeta {
        leader,
        shards: vec![0; replicas.len()],
        replicas,
        isr,
        ..PartitionMeta::local(0, 1)
    };
    for (name, parts) in [
        (
            "orders",
            vec![p(1, vec![1, 2], vec![1]), p(1, vec![1, 2], vec![1, 2])],
        ),
        ("audit", vec![p(-1, vec![2, 3], vec![2])]),
    ] {
        s.topics.insert(
            name.into(),
            Arc::new(TopicMeta {
                name: name.into(),
                id: uuid::Uuid::new_v4(),
                partitions: parts,
                configs: Default::default(),
            }),
        );
    }
    s
}

fn values(o: Observed) -> Vec<(String, Option<f64>)> {
    o.into_iter().collect()
}

#[test]
fn partitions_and_brokers_come_from_the_metadata() {
    let s = state();
    let i = Inputs::default();
    let urp = rule("u", AlertKind::UnderReplicatedPartitions, 0.0);
    assert_eq!(
        values(observe(&urp, &s, &i).unwrap()),
        [("cluster".into(), Some(2.0))]
    );
    let mut only_orders = urp.clone();
    only_orders.topic = Some("ord*".into());
    assert_eq!(
        values(observe(&only_orders, &s, &i).unwrap()),
        [("cluster".into(), Some(1.0))]
    );
    let off = rule("o", AlertKind::OfflinePartitions, 0.0);
    assert_eq!(
        values(observe(&off, &s, &i).unwrap()),
        [("cluster".into(), Some(1.0))]
    );
    let down = rule("d", AlertKind::BrokerDown, 0.0);
    assert_eq!(
        values(observe(&down, &s, &i).unwrap()),
        [
            ("broker=1".into(), Some(0.0)),
            ("broker=2".into(), Some(1.0)),
            ("broker=3".into(), Some(1.0)),
        ],
        "2 is fenced, 3 holds replicas but is not registered"
    );
}

#[test]
fn lag_disk_and_metrics_rules_read_the_round_inputs() {
    let s = state();
    let part = |topic: &str, lag, age| PartLag {
        topic: topic.into(),
        partition: 0,
        lag,
        age_s: age,
    };
    let mut i = Inputs::default();
    let lag = rule("l", AlertKind::ConsumerLag, 0.0);
    assert!(observe(&lag, &s, &i).is_none(), "no group data at all");
    i.groups = Some(BTreeMap::from([
        (
            "billing".to_string(),
            Some(vec![part("orders", 5, Some(3.0)), part("audit", 7, None)]),
        ),
        ("search".to_string(), None),
    ]));
    assert_eq!(
        values(observe(&lag, &s, &i).unwrap()),
        [
            ("group=billing".into(), Some(12.0)),
            ("group=search".into(), None)
        ]
    );
    let mut filtered = lag.clone();
    filtered.group = Some("bill*".into());
    filtered.topic = Some("orders".into());
    assert_eq!(
        values(observe(&filtered, &s, &i).unwrap()),
        [("group=billing".into(), Some(5.0))]
    );
    let mut secs = rule("s", AlertKind::ConsumerLagSeconds, 0.0);
    assert_eq!(
        values(observe(&secs, &s, &i).unwrap())[0],
        ("group=billing".into(), None),
        "one partition's age unknown: the group's is"
    );
    secs.topic = Some("orders".into());
    assert_eq!(
        values(observe(&secs, &s, &i).unwrap())[0],
        ("group=billing".into(), Some(3.0))
    );

    i.disks = BTreeMap::from([(1, Some((25, 100))), (4, None)]);
    let pct = rule("p", AlertKind::DiskFreePercent, 10.0);
    assert_eq!(
        values(observe(&pct, &s, &i).unwrap()),
        [("broker=1".into(), Some(25.0)), ("broker=4".into(), None)]
    );
    let bytes = rule("b", AlertKind::DiskFreeBytes, 10.0);
    assert_eq!(
        values(observe(&bytes, &s, &i).unwrap())[0],
        ("broker=1".into(), Some(25.0))
    );

    let errs = rule("e", AlertKind::ProduceErrorRate, 1.0);
    assert!(observe(&errs, &s, &i).is_none(), "no metrics round yet");
    i.metrics = Some(BTreeMap::from([
        (
            1,
            Some(BTreeMap::from([
                ("produce_errors_per_s".to_string(), 2.5),
                ("request_p99_ms:Produce".to_string(), 40.0),
                ("request_p99_ms:Fetch".to_string(), 500.0),
            ])),
        ),
        (
            3,
            Some(BTreeMap::from([("request_p99_ms:Fetch".to_string(), 7.0)])),
        ),
        (4, None),
    ]));
    assert_eq!(
        values(observe(&errs, &s, &i).unwrap()),
        [
            ("broker=1".into(), Some(2.5)),
            ("broker=3".into(), Some(0.0)),
            ("broker=4".into(), None),
        ],
        "no series: no Produce requests, so no errors; 4 not read"
    );
    let fetch = rule("f", AlertKind::FetchErrorRate, 1.0);
    assert_eq!(
        values(observe(&fetch, &s, &i).unwrap())[0],
        ("broker=1".into(), Some(0.0))
    );
    let mut p99 = rule("q", AlertKind::RequestP99Ms, 100.0);
    p99.api = Some("Fetch".into());
    assert_eq!(
        values(observe(&p99, &s, &i).unwrap()),
        [
            ("broker=1,api=Fetch".into(), Some(500.0)),
            ("broker=3,api=Fetch".into(), Some(7.0)),
        ]
    );
}

/// A broker whose metrics could not be read keeps its latency alerts as
/// they are (`None`), not resolved: which APIs it had is only known from
/// the firing alerts.
#[test]
fn a_broker_not_read_keeps_its_latency_alerts() {
    use crate::metadata::alerts::ActiveAlert;
    let mut s = state();
    let p99 = rule("q", AlertKind::RequestP99Ms, 100.0);
    for (rule_name, subject) in [
        ("q", "broker=4,api=Fetch"),
        ("q", "broker=44,api=Fetch"),
        ("other", "broker=4,api=Produce"),
    ] {
        Arc::make_mut(&mut s.alerts).active.insert(
            (rule_name.into(), subject.into()),
            ActiveAlert {
                rule: rule_name.into(),
                subject: subject.into(),
                severity: crate::metadata::alerts::Severity::Warning,
                value: 900.0,
                threshold: 100.0,
                starts_at: 1,
                silenced: false,
            },
        );
    }
    let i = Inputs {
        metrics: Some(BTreeMap::from([(1, Some(BTreeMap::new())), (4, None)])),
        ..Inputs::default()
    };
    assert_eq!(
        values(observe(&p99, &s, &i).unwrap()),
        [("broker=4,api=Fetch".into(), None)],
        "only this rule's alerts of broker 4 (not 44's)"
    );
}

#[test]
fn a_peers_history_answer_gives_the_newest_point_in_the_window() {
    let body = serde_json::json!({
        "resolution_s": 10,
        "series": {
            "produce_errors_per_s": [[1_000, 9.0], [20_000, 1.5]],
            "request_p99_ms:Fetch": [[25_000, 30.0]],
            "request_p99_ms:Metadata": [[5_000, 80.0]],
            "request_p99_ms:Produce": [],
            "bytes_in_per_s": [[25_000, 1e6]],
        }
    });
    assert_eq!(
        latest_points(&body, 10_000).unwrap(),
        BTreeMap::from([
            ("produce_errors_per_s".to_string(), 1.5),
            ("request_p99_ms:Fetch".to_string(), 30.0),
        ]),
        "Metadata's newest point is older than the window; other series are not read"
    );
    assert!(latest_points(&serde_json::json!({"error": "x"}), 0).is_err());
    let bad = serde_json::json!({"series": {"fetch_errors_per_s": [["x", 1]]}});
    assert!(latest_points(&bad, 0)
        .unwrap_err()
        .contains("fetch_errors_per_s"));
}

#[test]
fn needs_follow_the_enabled_rules() {
    let mut secs = rule("s", AlertKind::ConsumerLagSeconds, 0.0);
    let disk = rule("d", AlertKind::DiskFreeBytes, 0.0);
    let n = Needs::of([&secs, &disk].into_iter());
    assert!(n.groups && n.ages && n.disks && !n.peer_metrics);
    let p99 = rule("q", AlertKind::RequestP99Ms, 1.0);
    assert!(Needs::of([&p99].into_iter()).peer_metrics);
    secs.enabled = false;
    let n = Needs::of([&secs].into_iter());
    assert!(!n.groups && !n.ages && !n.disks);
}
