//! Reconciliation, epochs and fencing of consumer-protocol groups, with a
//! controllable clock.

use std::cell::Cell;
use std::rc::Rc;

use kafka_protocol::ResponseError;

use super::*;
use crate::groups::offsets::CommitEntry;
use crate::groups::{Coordinator, GroupConfig, JoinParams};

const CFG: GroupConfig = GroupConfig {
    initial_rebalance_delay_ms: 0,
    offsets_retention_ms: 60_000,
};

fn coordinator() -> (Rc<Cell<i64>>, Coordinator) {
    let t = Rc::new(Cell::new(1_000_000));
    let c = t.clone();
    let coord = Coordinator::new(CFG, Box::new(move || c.get()));
    coord.consumer.cfg.set(ConsumerConfig {
        heartbeat_interval_ms: 100,
        session_timeout_ms: 1000,
    });
    (t, coord)
}

fn sizes(t: &str) -> Option<i32> {
    (t == "t").then_some(4)
}

fn hb(c: &Coordinator, member: &str, epoch: i32, owned: Option<&[i32]>) -> HeartbeatResult {
    let p = HeartbeatParams {
        member_id: member.into(),
        member_epoch: epoch,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        owned: owned.map(|o| Assignment::from([("t".to_string(), o.iter().copied().collect())])),
        ..Default::default()
    };
    c.consumer_heartbeat("g", p, &sizes)
}

fn parts(r: &HeartbeatResult) -> Vec<i32> {
    let a = r.assignment.as_ref().expect("an assignment");
    a.get("t")
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

fn count(r: &HeartbeatResult) -> usize {
    parts(r).len()
}

#[test]
fn partitions_move_only_after_the_previous_owner_revokes() {
    let (_t, c) = coordinator();
    let a = hb(&c, "a", 0, None);
    assert_eq!((a.error, a.member_epoch), (0, 1));
    assert_eq!(parts(&a), vec![0, 1, 2, 3]);
    assert_eq!(a.heartbeat_interval_ms, 100);
    // b joins: group epoch 2, but a still holds everything.
    let b = hb(&c, "b", 0, None);
    assert_eq!((b.error, b.member_epoch), (0, 2));
    assert_eq!(count(&b), 0);
    // a is told to keep two; it stays at epoch 1 until it acknowledges.
    let a = hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    assert_eq!(a.member_epoch, 1);
    assert_eq!(count(&a), 2);
    let kept = parts(&a);
    let b = hb(&c, "b", 2, Some(&[]));
    assert!(b.assignment.is_none(), "nothing released yet: {b:?}");
    let a = hb(&c, "a", 1, Some(&kept));
    assert_eq!(a.member_epoch, 2);
    let b = hb(&c, "b", 2, Some(&[]));
    assert_eq!(count(&b), 2);
    let mut all = kept.clone();
    all.extend(parts(&b));
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    let g = c.consumer_describe("g").unwrap();
    assert_eq!(g.state_name(), "Stable");
    assert_eq!((g.epoch, g.assignment_epoch), (2, 2));
}

#[test]
fn fencing_and_leaving() {
    let (_t, c) = coordinator();
    hb(&c, "a", 0, None);
    hb(&c, "b", 0, None);
    assert_eq!(hb(&c, "a", 7, None).error, FENCED_MEMBER_EPOCH);
    assert_eq!(
        hb(&c, "nobody", 1, None).error,
        ResponseError::UnknownMemberId.code()
    );
    let left = hb(&c, "b", -1, None);
    assert_eq!((left.error, left.member_epoch), (0, -1));
    // a gets all four back at the new epoch.
    let a = hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    assert_eq!(a.error, 0);
    assert_eq!(a.member_epoch, 3);
    let a = c.consumer_describe("g").unwrap().members["a"]
        .assigned
        .clone();
    assert_eq!(a["t"].len(), 4);
}

#[test]
fn session_timeout_removes_a_member() {
    let (t, c) = coordinator();
    hb(&c, "a", 0, None);
    hb(&c, "b", 0, None);
    t.set(t.get() + 600);
    hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    t.set(t.get() + 600);
    c.consumer.tick(t.get());
    let g = c.consumer_describe("g").unwrap();
    assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(g.epoch, 3);
}

#[test]
fn static_members_hold_their_instance() {
    let (_t, c) = coordinator();
    let join = |id: &str| HeartbeatParams {
        member_id: id.into(),
        instance_id: Some("i1".into()),
        subscribed: Some(vec!["t".into()]),
        ..Default::default()
    };
    let a = c.consumer_heartbeat("g", join("a"), &sizes);
    assert_eq!(count(&a), 4);
    let b = c.consumer_heartbeat("g", join("b"), &sizes);
    assert_eq!(b.error, UNRELEASED_INSTANCE_ID);
    let left = hb(&c, "a", -2, None);
    assert_eq!(left.member_epoch, -2);
    // The instance comes back with a new member id and its partitions.
    let b = c.consumer_heartbeat("g", join("b"), &sizes);
    assert_eq!(b.error, 0);
    assert_eq!(count(&b), 4);
    assert!(c.consumer_describe("g").unwrap().members.len() == 1);
}

#[test]
fn commits_check_member_and_epoch_and_classic_joins_are_refused() {
    shard::runtime::run_local(|| async {
        let (_t, c) = coordinator();
        let a = hb(&c, "a", 0, None);
        let entry = || CommitEntry {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
        };
        assert_eq!(
            c.commit("g", "a", None, 0, vec![entry()]).await,
            STALE_MEMBER_EPOCH
        );
        assert_eq!(
            c.commit("g", "x", None, 1, vec![entry()]).await,
            ResponseError::UnknownMemberId.code()
        );
        let ok = c
            .commit("g", "a", None, a.member_epoch, vec![entry()])
            .await;
        assert_eq!(ok, 0);
        let got = c.fetch_offsets("g", None);
        assert_eq!(got[0].1[0].1.as_ref().unwrap().offset, 5);
        let joined = c
            .join(
                "g".into(),
                JoinParams {
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 10_000,
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), bytes::Bytes::new())],
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(
            joined.error,
            ResponseError::InconsistentGroupProtocol.code()
        );
    });
}

#[test]
fn a_member_that_never_revokes_is_removed_after_its_rebalance_timeout() {
    let (t, c) = coordinator();
    let join = |id: &str| HeartbeatParams {
        member_id: id.into(),
        rebalance_timeout_ms: 300,
        subscribed: Some(vec!["t".into()]),
        ..Default::default()
    };
    c.consumer_heartbeat("g", join("a"), &sizes);
    c.consumer_heartbeat("g", join("b"), &sizes);
    // a hears it must give up two partitions, then says nothing more.
    let a = hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    assert_eq!(count(&a), 2);
    t.set(t.get() + 200);
    hb(&c, "b", 2, Some(&[]));
    c.consumer.tick(t.get());
    assert!(c.consumer_describe("g").unwrap().members.contains_key("a"));
    t.set(t.get() + 200);
    c.consumer.tick(t.get());
    let g = c.consumer_describe("g").unwrap();
    assert!(!g.members.contains_key("a"));
    let b = hb(&c, "b", 2, Some(&[]));
    assert_eq!(count(&b), 4);
}
