//! The alerting state's commands: validation with Kafka-style errors,
//! duplicates, the firing/resolved bookkeeping that keeps one sender per
//! notification, silences and the bounded history.

use super::*;
use crate::metadata::{ClusterState, MetadataCommand};

pub(crate) fn rule(name: &str, kind: AlertKind, threshold: f64) -> AlertRule {
    AlertRule {
        name: name.into(),
        kind,
        group: None,
        topic: None,
        api: None,
        threshold,
        for_ms: 0,
        severity: Severity::Warning,
        webhooks: vec!["http://127.0.0.1:9/hook".into()],
        enabled: true,
        description: String::new(),
    }
}

fn fire(rule: &str, subject: &str, at: i64) -> AlertCommand {
    AlertCommand::Fire(ActiveAlert {
        rule: rule.into(),
        subject: subject.into(),
        severity: Severity::Info,
        value: 7.0,
        threshold: 5.0,
        starts_at: at,
        silenced: false,
    })
}

fn resolve(rule: &str, subject: &str, at: i64) -> AlertCommand {
    AlertCommand::Resolve {
        rule: rule.into(),
        subject: subject.into(),
        value: 1.0,
        ends_at: at,
        silenced: false,
    }
}

/// A state with one of everything (the image test archives it).
pub(crate) fn sample_state() -> AlertsState {
    let mut s = AlertsState::default();
    let mut r = rule("lag", AlertKind::ConsumerLag, 100.0);
    r.group = Some("billing-*".into());
    r.topic = Some("orders".into());
    r.for_ms = 30_000;
    r.severity = Severity::Critical;
    r.description = "billing is behind".into();
    s.apply(&AlertCommand::PutRule {
        rule: r,
        create: true,
    })
    .unwrap();
    let mut p = rule("p99", AlertKind::RequestP99Ms, 250.0);
    p.api = Some("Produce".into());
    p.enabled = false;
    p.webhooks.clear();
    s.apply(&AlertCommand::PutRule {
        rule: p,
        create: true,
    })
    .unwrap();
    s.apply(&AlertCommand::PutSilence(Silence {
        id: "s1".into(),
        rule: Some("lag".into()),
        subject: None,
        starts_at: 10,
        ends_at: 20,
        comment: "deploy".into(),
        created_by: "User:alice".into(),
    }))
    .unwrap();
    s.apply(&fire("lag", "group=billing-eu", 100)).unwrap();
    s.apply(&resolve("lag", "group=billing-eu", 200)).unwrap();
    s.apply(&fire("lag", "group=billing-us", 300)).unwrap();
    s
}

#[test]
fn rules_are_validated_with_clear_errors() {
    let bad = |r: AlertRule, want: &str| {
        let e = r.validate().unwrap_err();
        assert!(e.contains(want), "{e} lacks {want}");
    };
    assert!(rule("ok", AlertKind::ConsumerLag, 0.0).validate().is_ok());
    bad(
        rule("neg", AlertKind::ConsumerLag, -1.0),
        "INVALID_CONFIG: threshold -1",
    );
    bad(
        rule("nan", AlertKind::ConsumerLag, f64::NAN),
        "not a number",
    );
    bad(rule("pct", AlertKind::DiskFreePercent, 101.0), "percentage");
    bad(rule("down", AlertKind::BrokerDown, 1.0), "must be 0");
    bad(rule("p99", AlertKind::RequestP99Ms, 0.0), "above 0");
    bad(
        rule("has space", AlertKind::ConsumerLag, 1.0),
        "INVALID_REQUEST",
    );
    bad(rule("", AlertKind::ConsumerLag, 1.0), "1 to 128");
    let mut r = rule("g", AlertKind::OfflinePartitions, 0.0);
    r.group = Some("x".into());
    bad(r, "takes no group filter");
    let mut r = rule("w", AlertKind::ConsumerLag, 1.0);
    r.webhooks = vec!["ftp://example.com/".into()];
    bad(r, "http://");
    let mut r = rule("w", AlertKind::ConsumerLag, 1.0);
    r.webhooks = vec!["http://".into()];
    bad(r, "not a valid URL");
    let mut r = rule("f", AlertKind::ConsumerLag, 1.0);
    r.for_ms = MAX_FOR_MS + 1;
    bad(r, "7 days");
    // Unknown kinds do not parse (the API names them).
    assert_eq!(
        AlertKind::parse("consumer_lag"),
        Some(AlertKind::ConsumerLag)
    );
    assert_eq!(AlertKind::parse("cpu"), None);
    for k in AlertKind::ALL {
        assert_eq!(AlertKind::from_code(k.code()), Some(k));
        assert_eq!(AlertKind::parse(k.name()), Some(k));
    }
}

#[test]
fn rules_are_created_replaced_and_deleted_through_apply() {
    let mut s = ClusterState::default();
    let put =
        |r: AlertRule, create| MetadataCommand::Alerts(AlertCommand::PutRule { rule: r, create });
    s.apply(&put(rule("a", AlertKind::ConsumerLag, 5.0), true), 1)
        .unwrap();
    let e = s
        .apply(&put(rule("a", AlertKind::ConsumerLag, 9.0), true), 1)
        .unwrap_err();
    assert!(e.starts_with("DUPLICATE_RESOURCE"), "{e}");
    assert_eq!(
        s.alerts.rules["a"].threshold, 5.0,
        "a refused command changes nothing"
    );
    s.apply(&put(rule("a", AlertKind::ConsumerLag, 9.0), false), 1)
        .unwrap();
    assert_eq!(s.alerts.rules["a"].threshold, 9.0);
    let e = s
        .apply(&put(rule("b", AlertKind::ConsumerLag, 9.0), false), 1)
        .unwrap_err();
    assert!(e.starts_with("RESOURCE_NOT_FOUND"), "{e}");
    let e = s
        .apply(&put(rule("c", AlertKind::ConsumerLag, -9.0), true), 1)
        .unwrap_err();
    assert!(e.starts_with("INVALID_CONFIG"), "{e}");
    // Deleting a rule resolves its firing alerts, in the history.
    s.apply(&MetadataCommand::Alerts(fire("a", "group=g", 1)), 1)
        .unwrap();
    assert_eq!(s.alerts.active.len(), 1);
    let events = s.alerts.history.len();
    s.apply(
        &MetadataCommand::Alerts(AlertCommand::DeleteRule {
            name: "a".into(),
            at: 5_000,
        }),
        1,
    )
    .unwrap();
    assert!(s.alerts.rules.is_empty() && s.alerts.active.is_empty());
    assert_eq!(s.alerts.history.len(), events + 1);
    let last = s.alerts.history.back().unwrap();
    assert_eq!(
        (last.status, last.subject.as_str(), last.ends_at),
        (AlertStatus::Resolved, "group=g", Some(5_000))
    );
    // An entry written before `at` was carried still reads.
    let old: AlertCommand = serde_json::from_str(r#"{"DeleteRule":{"name":"x"}}"#).unwrap();
    assert_eq!(
        old,
        AlertCommand::DeleteRule {
            name: "x".into(),
            at: 0
        }
    );
    let e = s
        .apply(
            &MetadataCommand::Alerts(AlertCommand::DeleteRule {
                name: "a".into(),
                at: 0,
            }),
            1,
        )
        .unwrap_err();
    assert!(e.starts_with("RESOURCE_NOT_FOUND"), "{e}");
}

#[test]
fn a_transition_is_recorded_once() {
    let mut s = AlertsState::default();
    s.apply(&AlertCommand::PutRule {
        rule: rule("lag", AlertKind::ConsumerLag, 5.0),
        create: true,
    })
    .unwrap();
    s.apply(&fire("lag", "group=g", 10)).unwrap();
    // A second controller's Fire of the same alert is refused: it must not notify.
    let e = s.apply(&fire("lag", "group=g", 11)).unwrap_err();
    assert!(e.starts_with("DUPLICATE_RESOURCE"), "{e}");
    assert_eq!(
        s.active[&("lag".to_string(), "group=g".to_string())].starts_at,
        10
    );
    assert_eq!(
        s.active[&("lag".to_string(), "group=g".to_string())].severity,
        Severity::Warning,
        "the rule's severity"
    );
    s.apply(&resolve("lag", "group=g", 20)).unwrap();
    assert!(s.apply(&resolve("lag", "group=g", 21)).is_err());
    assert!(
        s.apply(&fire("nope", "group=g", 1)).is_err(),
        "unknown rule"
    );
    let kinds: Vec<(AlertStatus, Option<i64>)> =
        s.history.iter().map(|e| (e.status, e.ends_at)).collect();
    assert_eq!(
        kinds,
        [
            (AlertStatus::Firing, None),
            (AlertStatus::Resolved, Some(20))
        ]
    );
    assert_eq!(s.history[1].starts_at, 10);
}

#[test]
fn the_history_is_bounded() {
    let mut s = AlertsState::default();
    s.apply(&AlertCommand::PutRule {
        rule: rule("lag", AlertKind::ConsumerLag, 5.0),
        create: true,
    })
    .unwrap();
    for i in 0..(MAX_HISTORY as i64) {
        s.apply(&fire("lag", "group=g", i * 2)).unwrap();
        s.apply(&resolve("lag", "group=g", i * 2 + 1)).unwrap();
    }
    assert_eq!(s.history.len(), MAX_HISTORY);
    assert_eq!(
        s.history.back().unwrap().ends_at,
        Some(2 * MAX_HISTORY as i64 - 1)
    );
    assert_eq!(
        s.history.front().unwrap().starts_at,
        MAX_HISTORY as i64,
        "oldest gone"
    );
}

#[test]
fn silences_match_expire_and_are_validated() {
    let mut s = AlertsState::default();
    let silence = |id: &str, rule: Option<&str>, subject: Option<&str>| Silence {
        id: id.into(),
        rule: rule.map(str::to_string),
        subject: subject.map(str::to_string),
        starts_at: 100,
        ends_at: 200,
        comment: String::new(),
        created_by: "User:a".into(),
    };
    s.apply(&AlertCommand::PutSilence(silence(
        "s",
        Some("lag"),
        Some("group=orders-*"),
    )))
    .unwrap();
    assert!(s.silenced_by("lag", "group=orders-eu", 150).is_some());
    assert!(s.silenced_by("lag", "group=billing", 150).is_none());
    assert!(s.silenced_by("disk", "group=orders-eu", 150).is_none());
    assert!(
        s.silenced_by("lag", "group=orders-eu", 99).is_none(),
        "not yet"
    );
    assert!(
        s.silenced_by("lag", "group=orders-eu", 200).is_none(),
        "over"
    );
    let e = s
        .apply(&AlertCommand::PutSilence(silence("s", Some("x"), None)))
        .unwrap_err();
    assert!(e.starts_with("DUPLICATE_RESOURCE"), "{e}");
    assert!(s
        .apply(&AlertCommand::PutSilence(silence("t", None, None)))
        .unwrap_err()
        .contains("needs a rule or a subject"));
    let mut backwards = silence("u", Some("x"), None);
    backwards.ends_at = 50;
    assert!(s.apply(&AlertCommand::PutSilence(backwards)).is_err());
    s.apply(&AlertCommand::ExpireSilence {
        id: "s".into(),
        at: 150,
    })
    .unwrap();
    assert_eq!(s.silences["s"].ends_at, 150);
    assert!(s.silenced_by("lag", "group=orders-eu", 160).is_none());
    assert!(s
        .apply(&AlertCommand::ExpireSilence {
            id: "zz".into(),
            at: 1
        })
        .unwrap_err()
        .starts_with("RESOURCE_NOT_FOUND"));
}

#[test]
fn globs_match_as_written() {
    assert!(glob_match("abc", "abc"));
    assert!(!glob_match("abc", "abcd"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*", "abc"));
    assert!(glob_match("*c", "abc"));
    assert!(glob_match("a*c*e", "abcde"));
    assert!(!glob_match("a*c*e", "abde"));
    assert!(!glob_match("ab*ba", "aba"), "the ends may not overlap");
}
