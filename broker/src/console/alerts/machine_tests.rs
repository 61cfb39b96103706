//! The alert state machine, driven with an injected clock.

use super::*;
use crate::metadata::alerts::tests::rule;
use crate::metadata::alerts::{AlertCommand, AlertKind, AlertsState};

fn obs(pairs: &[(&str, f64)]) -> Observed {
    pairs
        .iter()
        .map(|(s, v)| (s.to_string(), Some(*v)))
        .collect()
}

const NOT_SILENCED: &dyn Fn(&str) -> bool = &|_| false;

fn lag_rule(for_ms: u64) -> AlertRule {
    let mut r = rule("lag", AlertKind::ConsumerLag, 100.0);
    r.for_ms = for_ms;
    r
}

#[test]
fn pending_fires_once_for_has_elapsed_then_resolves() {
    let r = lag_rule(30_000);
    let mut m = Machine::default();
    let t0 = 1_000_000;
    assert!(m
        .step(&r, Some(&obs(&[("group=g", 150.0)])), t0, NOT_SILENCED)
        .is_empty());
    assert_eq!(
        m.phase("lag", "group=g"),
        Some(Phase::Pending { since: t0 })
    );
    assert!(m
        .step(
            &r,
            Some(&obs(&[("group=g", 160.0)])),
            t0 + 29_999,
            NOT_SILENCED
        )
        .is_empty());
    let fired = m.step(
        &r,
        Some(&obs(&[("group=g", 170.0)])),
        t0 + 30_000,
        NOT_SILENCED,
    );
    assert_eq!(
        fired,
        [Transition::Fire {
            rule: "lag".into(),
            subject: "group=g".into(),
            value: 170.0,
            threshold: 100.0,
            starts_at: t0 + 30_000,
            silenced: false
        }]
    );
    // Still breached: no second notification.
    assert!(m
        .step(
            &r,
            Some(&obs(&[("group=g", 500.0)])),
            t0 + 40_000,
            NOT_SILENCED
        )
        .is_empty());
    // At the threshold is not above it: resolved, with the value then.
    let resolved = m.step(
        &r,
        Some(&obs(&[("group=g", 100.0)])),
        t0 + 50_000,
        NOT_SILENCED,
    );
    assert_eq!(
        resolved,
        [Transition::Resolve {
            rule: "lag".into(),
            subject: "group=g".into(),
            value: 100.0,
            threshold: 100.0,
            starts_at: t0 + 30_000,
            ends_at: t0 + 50_000,
            silenced: false
        }]
    );
    assert_eq!(m.phase("lag", "group=g"), None);
}

#[test]
fn flapping_below_for_never_fires() {
    let r = lag_rule(20_000);
    let mut m = Machine::default();
    let mut t = 0;
    for i in 0..10 {
        let v = if i % 2 == 0 { 200.0 } else { 10.0 };
        assert!(m
            .step(&r, Some(&obs(&[("group=g", v)])), t, NOT_SILENCED)
            .is_empty());
        t += 10_000;
    }
    // Pending restarts at each breach after a clear.
    m.step(&r, Some(&obs(&[("group=g", 200.0)])), t, NOT_SILENCED);
    assert_eq!(m.phase("lag", "group=g"), Some(Phase::Pending { since: t }));
}

#[test]
fn for_zero_fires_at_once_and_disk_fires_below() {
    let r = rule("disk", AlertKind::DiskFreePercent, 10.0);
    let mut m = Machine::default();
    let out = m.step(
        &r,
        Some(&obs(&[("broker=1", 50.0), ("broker=2", 5.0)])),
        7,
        NOT_SILENCED,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key(), ("disk", "broker=2"));
}

#[test]
fn missing_subjects_resolve_unreadable_ones_keep_their_state() {
    let r = lag_rule(0);
    let mut m = Machine::default();
    assert_eq!(
        m.step(
            &r,
            Some(&obs(&[("group=a", 500.0), ("group=b", 500.0)])),
            1,
            NOT_SILENCED
        )
        .len(),
        2
    );
    // No data at all this round: nothing changes.
    assert!(m.step(&r, None, 2, NOT_SILENCED).is_empty());
    // a could not be read, b is gone (deleted group): only b resolves.
    let mut o = Observed::new();
    o.insert("group=a".into(), None);
    let out = m.step(&r, Some(&o), 3, NOT_SILENCED);
    assert_eq!(out.len(), 1);
    assert!(
        matches!(&out[0], Transition::Resolve { subject, value, .. } if subject == "group=b" && *value == 500.0)
    );
    assert_eq!(m.phase("lag", "group=a"), Some(Phase::Firing { since: 1 }));
    // Disabling the rule resolves what it fired.
    let mut off = r.clone();
    off.enabled = false;
    let out = m.step(&off, Some(&obs(&[("group=a", 900.0)])), 4, NOT_SILENCED);
    assert!(matches!(&out[..], [Transition::Resolve { subject, .. }] if subject == "group=a"));
}

#[test]
fn a_silence_marks_transitions_and_they_are_still_produced() {
    let r = lag_rule(0);
    let mut m = Machine::default();
    let silenced = |s: &str| s == "group=quiet";
    let out = m.step(
        &r,
        Some(&obs(&[("group=quiet", 500.0), ("group=loud", 500.0)])),
        1,
        &silenced,
    );
    let flags: Vec<(&str, bool)> = out.iter().map(|t| (t.key().1, t.silenced())).collect();
    assert_eq!(flags, [("group=loud", false), ("group=quiet", true)]);
    let out = m.step(&r, Some(&Observed::new()), 2, &silenced);
    assert_eq!(out.len(), 2, "both resolve and are recorded");
    assert!(out.iter().any(|t| t.silenced()));
}

#[test]
fn sync_follows_the_committed_firing_state() {
    let r = lag_rule(0);
    let mut committed = AlertsState::default();
    committed
        .apply(&AlertCommand::PutRule {
            rule: r.clone(),
            create: true,
        })
        .unwrap();
    // A new controller: what the last one fired is firing here, not fired again.
    committed
        .apply(&AlertCommand::Fire(ActiveAlert {
            rule: "lag".into(),
            subject: "group=old".into(),
            severity: r.severity,
            value: 300.0,
            threshold: 100.0,
            starts_at: 5,
            silenced: false,
        }))
        .unwrap();
    let mut m = Machine::default();
    m.sync(&committed);
    assert_eq!(
        m.phase("lag", "group=old"),
        Some(Phase::Firing { since: 5 })
    );
    assert!(m
        .step(&r, Some(&obs(&[("group=old", 300.0)])), 10, NOT_SILENCED)
        .is_empty());
    // A Fire that did not commit goes back to pending and fires again.
    let out = m.step(
        &r,
        Some(&obs(&[("group=old", 300.0), ("group=new", 300.0)])),
        11,
        NOT_SILENCED,
    );
    assert_eq!(out.len(), 1);
    m.sync(&committed);
    assert_eq!(
        m.phase("lag", "group=new"),
        Some(Phase::Pending { since: 11 })
    );
    let out = m.step(
        &r,
        Some(&obs(&[("group=old", 300.0), ("group=new", 300.0)])),
        12,
        NOT_SILENCED,
    );
    assert!(matches!(&out[..], [Transition::Fire { subject, .. }] if subject == "group=new"));
    // A deleted rule's state is dropped.
    committed
        .apply(&AlertCommand::DeleteRule {
            name: "lag".into(),
            at: 13,
        })
        .unwrap();
    m.sync(&committed);
    assert_eq!(m.phase("lag", "group=old"), None);
    assert!(m.pending().is_empty());
}
