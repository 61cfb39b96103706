//! Reconciliation, epochs and fencing of consumer-protocol groups, with a
//! controllable clock.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use shard::time::{Clock, LogClock, ManualClock};

use super::subscription::MAX_REGEX_LEN;
use super::*;
use crate::groups::offsets::CommitEntry;
use crate::groups::{Coordinator, GroupConfig, JoinParams};

const CFG: GroupConfig = GroupConfig {
    initial_rebalance_delay_ms: 0,
    offsets_retention_ms: 60_000,
    max_size: i32::MAX as u32,
};

fn coordinator() -> (Rc<ManualClock>, Coordinator) {
    let t = Rc::new(ManualClock::new(1_000_000));
    let coord = Coordinator::new(CFG, LogClock::Manual(t.clone()));
    coord.consumer.cfg.set(ConsumerConfig {
        heartbeat_interval_ms: 100,
        session_timeout_ms: 1000,
        ..Default::default()
    });
    (t, coord)
}

/// Without a group log the coordinator never waits on I/O, so its
/// futures complete on the first poll.
fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// One topic `t` with four partitions.
fn catalog() -> BTreeMap<String, i32> {
    BTreeMap::from([("t".to_string(), 4)])
}

fn hb(c: &Coordinator, member: &str, epoch: i32, owned: Option<&[i32]>) -> HeartbeatResult {
    let p = HeartbeatParams {
        member_id: member.into(),
        member_epoch: epoch,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        owned: owned.map(|o| Assignment::from([("t".to_string(), o.iter().copied().collect())])),
        ..Default::default()
    };
    run(c.consumer_heartbeat("g", p, &catalog()))
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
    t.set_wall_ms(t.now_ms() + 600);
    hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    t.set_wall_ms(t.now_ms() + 600);
    c.consumer.tick(t.now_ms());
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
    let a = run(c.consumer_heartbeat("g", join("a"), &catalog()));
    assert_eq!(count(&a), 4);
    let b = run(c.consumer_heartbeat("g", join("b"), &catalog()));
    assert_eq!(b.error, UNRELEASED_INSTANCE_ID);
    let left = hb(&c, "a", -2, None);
    assert_eq!(left.member_epoch, -2);
    // The instance comes back with a new member id and its partitions.
    let b = run(c.consumer_heartbeat("g", join("b"), &catalog()));
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
    run(c.consumer_heartbeat("g", join("a"), &catalog()));
    run(c.consumer_heartbeat("g", join("b"), &catalog()));
    // a hears it must give up two partitions, then says nothing more.
    let a = hb(&c, "a", 1, Some(&[0, 1, 2, 3]));
    assert_eq!(count(&a), 2);
    t.set_wall_ms(t.now_ms() + 200);
    hb(&c, "b", 2, Some(&[]));
    c.consumer.tick(t.now_ms());
    assert!(c.consumer_describe("g").unwrap().members.contains_key("a"));
    t.set_wall_ms(t.now_ms() + 200);
    c.consumer.tick(t.now_ms());
    let g = c.consumer_describe("g").unwrap();
    assert!(!g.members.contains_key("a"));
    let b = hb(&c, "b", 2, Some(&[]));
    assert_eq!(count(&b), 4);
}

fn regex_join(id: &str, regex: &str) -> HeartbeatParams {
    HeartbeatParams {
        member_id: id.into(),
        subscribed: Some(vec![]),
        subscribed_regex: Some(regex.into()),
        ..Default::default()
    }
}

#[test]
fn a_regex_subscription_takes_matching_topics_created_later() {
    let (_t, c) = coordinator();
    let mut topics = BTreeMap::from([("orders-eu".to_string(), 2), ("audit".to_string(), 3)]);
    let a = run(c.consumer_heartbeat("g", regex_join("a", "orders-.*"), &topics));
    assert_eq!(a.error, 0, "{a:?}");
    let got = a.assignment.expect("assignment");
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["orders-eu"]);
    assert_eq!(got["orders-eu"].len(), 2);
    // The whole name must match: "my-orders-x" is not taken.
    topics.insert("orders-us".into(), 1);
    topics.insert("my-orders-x".into(), 1);
    let p = HeartbeatParams {
        member_id: "a".into(),
        member_epoch: a.member_epoch,
        owned: Some(got),
        ..Default::default()
    };
    let a2 = run(c.consumer_heartbeat("g", p, &topics));
    assert_eq!(a2.error, 0);
    assert!(a2.member_epoch > a.member_epoch);
    let got = a2.assignment.expect("new assignment");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["orders-eu", "orders-us"]
    );
    let g = c.consumer_describe("g").unwrap();
    assert_eq!(
        g.members["a"].subscribed_regex.as_ref().unwrap().source,
        "orders-.*"
    );
}

#[test]
fn names_and_regex_combine_and_an_empty_regex_clears_it() {
    let (_t, c) = coordinator();
    let topics = BTreeMap::from([("t".to_string(), 4), ("x1".to_string(), 1)]);
    let mut p = regex_join("a", "x[0-9]");
    p.subscribed = Some(vec!["t".into()]);
    let a = run(c.consumer_heartbeat("g", p, &topics));
    assert_eq!(a.assignment.unwrap().len(), 2);
    let clear = HeartbeatParams {
        member_id: "a".into(),
        member_epoch: a.member_epoch,
        subscribed_regex: Some(String::new()),
        ..Default::default()
    };
    run(c.consumer_heartbeat("g", clear, &topics));
    let g = c.consumer_describe("g").unwrap();
    assert_eq!(g.members["a"].topics, vec!["t".to_string()]);
    assert!(g.members["a"].subscribed_regex.is_none());
}

#[test]
fn a_bad_regex_is_refused_and_changes_nothing() {
    let (_t, c) = coordinator();
    let r = run(c.consumer_heartbeat("g", regex_join("a", "orders-(["), &catalog()));
    assert_eq!(r.error, INVALID_REGULAR_EXPRESSION);
    assert!(r.message.unwrap().contains("orders-(["));
    assert!(c
        .consumer_describe("g")
        .is_none_or(|g| g.members.is_empty()));
    let huge = "a".repeat(MAX_REGEX_LEN + 1);
    let r = run(c.consumer_heartbeat("g", regex_join("a", &huge), &catalog()));
    assert_eq!(r.error, INVALID_REGULAR_EXPRESSION);
}

fn log_config() -> shard::log::LogConfig {
    shard::log::LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        preallocate: false,
        ..Default::default()
    }
}

#[test]
fn groups_survive_a_restart_and_members_keep_their_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let (_t, c) = coordinator();
        c.open(&path, 0, log_config()).await.unwrap();
        let mut p = regex_join("a", "t|u");
        p.instance_id = Some("i-a".into());
        let a = c.consumer_heartbeat("g", p, &catalog()).await;
        assert_eq!(a.error, 0);
        let b = c
            .consumer_heartbeat("g", regex_join("b", "t"), &catalog())
            .await;
        assert_eq!(b.error, 0);
        // a is told to give up two partitions; it has not answered yet.
        let owned = Assignment::from([("t".to_string(), (0..4).collect())]);
        let a1 = c
            .consumer_heartbeat(
                "g",
                HeartbeatParams {
                    member_id: "a".into(),
                    member_epoch: a.member_epoch,
                    owned: Some(owned),
                    ..Default::default()
                },
                &catalog(),
            )
            .await;
        assert_eq!(count(&a1), 2);
        let before = c.consumer_describe("g").unwrap();
        c.close().await;

        let (_t, c) = coordinator();
        c.open(&path, 0, log_config()).await.unwrap();
        let after = c.consumer_describe("g").expect("group restored");
        assert_eq!(
            (after.epoch, after.assignment_epoch),
            (before.epoch, before.assignment_epoch)
        );
        assert_eq!(after.target, before.target);
        for (id, m) in &before.members {
            let r = &after.members[id];
            assert_eq!(
                (r.epoch, &r.assigned, &r.pending_revoke, &r.instance_id),
                (m.epoch, &m.assigned, &m.pending_revoke, &m.instance_id)
            );
            assert_eq!(r.subscribed_regex, m.subscribed_regex);
        }
        // The members carry on with their epochs: no fencing, no rejoin.
        let a2 = c
            .consumer_heartbeat(
                "g",
                HeartbeatParams {
                    member_id: "a".into(),
                    member_epoch: a1.member_epoch,
                    owned: Some(a1.assignment.clone().unwrap()),
                    ..Default::default()
                },
                &catalog(),
            )
            .await;
        assert_eq!(a2.error, 0, "{a2:?}");
        // Deleting the (emptied) group is remembered too.
        for id in ["a", "b"] {
            let leave = HeartbeatParams {
                member_id: id.into(),
                member_epoch: -1,
                ..Default::default()
            };
            assert_eq!(c.consumer_heartbeat("g", leave, &catalog()).await.error, 0);
        }
        assert_eq!(c.delete("g").await, 0);
        c.close().await;
        let (_t, c) = coordinator();
        c.open(&path, 0, log_config()).await.unwrap();
        assert!(c.consumer_describe("g").is_none());
        c.close().await;
    });
}

#[test]
fn offsets_of_topics_no_member_reads_expire_while_the_group_runs() {
    let (t, c) = coordinator();
    let a = hb(&c, "a", 0, None);
    let entry = |topic: &str| CommitEntry {
        topic: topic.into(),
        partition: 0,
        offset: 7,
        leader_epoch: -1,
        metadata: String::new(),
    };
    let commit = c.commit(
        "g",
        "a",
        None,
        a.member_epoch,
        vec![entry("t"), entry("old")],
    );
    assert_eq!(run(commit), 0);
    t.set_wall_ms(t.now_ms() + CFG.offsets_retention_ms - 1);
    run(c.expire_offsets(t.now_ms()));
    assert_eq!(run_fetch(&c).len(), 2);
    t.set_wall_ms(t.now_ms() + 1);
    run(c.expire_offsets(t.now_ms()));
    // KIP-496: "old" is nobody's subscription any more; "t" is kept.
    assert_eq!(run_fetch(&c), vec!["t".to_string()]);
}

/// Topics the group "g" has committed offsets for.
fn run_fetch(c: &Coordinator) -> Vec<String> {
    c.fetch_offsets("g", None)
        .into_iter()
        .filter(|(_, parts)| parts.iter().any(|(_, o)| o.is_some()))
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn preferred_assignor_is_the_most_asked_for_else_uniform() {
    // As Kafka's computePreferredServerAssignor; an empty group reports the
    // default (Kafka 4.4 describes it so, test_differential checks).
    let mut g = ConsumerGroup::new("g".into());
    assert_eq!(g.preferred_assignor(), "uniform");
    let member = |a: Option<&str>| ConsumerMember {
        server_assignor: a.map(str::to_string),
        ..Default::default()
    };
    g.members.insert("a".into(), member(Some("range")));
    assert_eq!(g.preferred_assignor(), "range");
    g.members.insert("b".into(), member(Some("uniform")));
    g.members.insert("c".into(), member(Some("uniform")));
    g.members.insert("d".into(), member(None));
    assert_eq!(g.preferred_assignor(), "uniform");
    g.members.remove("c");
    // A tie: the first by name.
    assert_eq!(g.preferred_assignor(), "range");
    g.members.clear();
    assert_eq!(g.preferred_assignor(), "uniform");
}

/// Kafka's group.consumer.max.size (`group_max_size` here): a new member of
/// a full group gets GROUP_MAX_SIZE_REACHED with Kafka's message and is not
/// added; members already in the group keep heartbeating.
#[test]
fn a_full_group_refuses_a_new_member() {
    let (_t, c) = coordinator();
    c.consumer.cfg.set(ConsumerConfig {
        max_size: 2,
        ..c.consumer.cfg.get()
    });
    assert_eq!(hb(&c, "a", 0, None).error, 0);
    assert_eq!(hb(&c, "b", 0, None).error, 0);
    let third = hb(&c, "c", 0, None);
    assert_eq!(third.error, ResponseError::GroupMaxSizeReached.code());
    assert_eq!(
        third.message.as_deref(),
        Some("The consumer group has reached its maximum capacity of 2 members.")
    );
    assert_eq!(c.consumer_describe("g").unwrap().members.len(), 2);
    assert_eq!(hb(&c, "a", 1, Some(&[0, 1, 2, 3])).error, 0);
}
