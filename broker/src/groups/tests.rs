//! State-machine tests on a hand-driven clock: every timer fires because a
//! test calls `tick(now)` with a later `now`, never by sleeping.

use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::ResponseError;
use shard::time::{Clock, LogClock, ManualClock};

use super::group::{Group, GroupConfig, GroupState, JoinParams, JoinResult, Reply, SyncParams};
use super::offsets::CommitEntry;
use super::Coordinator;

const CFG: GroupConfig = GroupConfig {
    initial_rebalance_delay_ms: 0,
    offsets_retention_ms: 60_000,
    max_size: i32::MAX as u32,
};

fn params(member_id: &str) -> JoinParams {
    JoinParams {
        member_id: member_id.into(),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        ..Default::default()
    }
}

fn static_params(member_id: &str, inst: &str) -> JoinParams {
    JoinParams {
        instance_id: Some(inst.into()),
        ..params(member_id)
    }
}

fn waiting<T>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

fn now_value<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(v) => v,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn ready<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("not cancelled").expect("answered")
}

fn pending<T>(rx: &mut oneshot::Receiver<T>) {
    assert!(
        rx.try_recv().expect("not cancelled").is_none(),
        "answered too early"
    );
}

/// Two members joined and synced: (group, leader id, follower id).
fn stable_pair(now: i64) -> (Group, String, String) {
    let mut g = Group::new("g".into(), now);
    let mut r1 = waiting(g.join(params(""), now, &CFG));
    // One member and no delay: its join completes at once.
    let j1 = ready(&mut r1);
    assert_eq!((j1.error, j1.generation), (0, 1));
    let mut r2 = waiting(g.join(params(""), now, &CFG));
    pending(&mut r2);
    let mut r1 = waiting(g.join(params(&j1.member_id), now, &CFG));
    let (j1, j2) = (ready(&mut r1), ready(&mut r2));
    assert_eq!((j1.generation, j2.generation), (2, 2));
    assert_eq!(j1.leader, j1.member_id);
    sync_all(&mut g, &j1, &j2, now);
    (g, j1.member_id, j2.member_id)
}

fn sync_all(g: &mut Group, leader: &JoinResult, follower: &JoinResult, now: i64) {
    let mut rf = waiting(g.sync(
        &follower.member_id,
        None,
        follower.generation,
        None,
        None,
        vec![],
        now,
    ));
    pending(&mut rf);
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"A")),
        (follower.member_id.clone(), Bytes::from_static(b"B")),
    ];
    let mut rl = waiting(g.sync(
        &leader.member_id,
        None,
        leader.generation,
        None,
        None,
        assignments,
        now,
    ));
    assert_eq!(&ready(&mut rl).assignment[..], b"A");
    assert_eq!(&ready(&mut rf).assignment[..], b"B");
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn join_and_sync_with_initial_delay() {
    let cfg = GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..CFG
    };
    let mut g = Group::new("g".into(), 0);
    let mut r1 = waiting(g.join(params(""), 0, &cfg));
    let mut r2 = waiting(g.join(params(""), 50, &cfg));
    g.tick(99, &cfg);
    pending(&mut r1);
    // A member arrived during the delay: it is extended once more.
    g.tick(100, &cfg);
    pending(&mut r1);
    g.tick(200, &cfg);
    let (j1, j2) = (ready(&mut r1), ready(&mut r2));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    assert_eq!((j1.generation, j2.generation), (1, 1));
    // Between join and sync a member's plain commit waits for the
    // assignment; its producer's transactional one does not (Kafka's
    // ClassicGroup.validateOffsetCommit).
    assert_eq!(
        g.check_commit(&j2.member_id, None, 1, false),
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(g.check_commit(&j2.member_id, None, 1, true), 0);
    assert_eq!(j1.members.len(), 2, "the leader gets every member");
    assert!(j2.members.is_empty());
    assert_eq!(j1.protocol_name.as_deref(), Some("range"));
    sync_all(&mut g, &j1, &j2, 200);
}

/// Kafka's group.max.size: a new member beyond it gets
/// GROUP_MAX_SIZE_REACHED and no member id, during a rebalance (members
/// waiting to join count) and in a Stable group; members already in rejoin.
#[test]
fn a_full_group_refuses_new_members() {
    let cfg = GroupConfig {
        max_size: 2,
        initial_rebalance_delay_ms: 100, // both joins wait
        ..CFG
    };
    let full = ResponseError::GroupMaxSizeReached.code();
    let mut g = Group::new("g".into(), 0);
    let _r1 = waiting(g.join(params(""), 0, &cfg));
    let _r2 = waiting(g.join(params(""), 0, &cfg));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let third = now_value(g.join(params(""), 0, &cfg));
    assert_eq!((third.error, third.member_id.as_str()), (full, ""));
    assert_eq!(g.members.len(), 2);
    let (mut g, leader, _) = stable_pair(0);
    let g_cfg = GroupConfig { max_size: 2, ..CFG };
    let third = now_value(g.join(params(""), 10, &g_cfg));
    assert_eq!(third.error, full);
    // JoinGroup v4+ (member id required): refused before getting an id,
    // as Kafka 4.4.0 answers.
    let v4 = JoinParams {
        require_known_member_id: true,
        ..params("")
    };
    let third = now_value(g.join(v4, 10, &g_cfg));
    assert_eq!((third.error, third.member_id.as_str()), (full, ""));
    assert_eq!(
        g.state,
        GroupState::Stable,
        "a refused join starts no rebalance"
    );
    // A member of the group still rejoins.
    let _again = waiting(g.join(params(&leader), 10, &g_cfg));
    assert_eq!(g.members.len(), 2);
    // During a rebalance the members waiting to join count: a newcomer
    // takes the place of a member that has not rejoined yet, and that
    // member, rejoining last, is removed.
    let (mut g, leader, follower) = stable_pair(0);
    let _l = waiting(g.join(params(&leader), 10, &g_cfg)); // rebalance; 1 waiting
    let _n = waiting(g.join(params(""), 10, &g_cfg)); // accepted: 2 waiting
    let late = now_value(g.join(params(&follower), 10, &g_cfg));
    assert_eq!(late.error, full);
    assert!(!g.members.contains_key(&follower));
    assert_eq!(g.members.len(), 2);
}

#[test]
fn member_id_required_then_rejoin() {
    let mut g = Group::new("g".into(), 0);
    let p = JoinParams {
        require_known_member_id: true,
        ..params("")
    };
    let first = now_value(g.join(p.clone(), 0, &CFG));
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    assert_eq!(g.state, GroupState::Empty);
    let mut rx = waiting(g.join(
        JoinParams {
            member_id: first.member_id.clone(),
            ..p
        },
        1,
        &CFG,
    ));
    let j = ready(&mut rx);
    assert_eq!(
        (j.error, j.generation, j.member_id),
        (0, 1, first.member_id)
    );
}

#[test]
fn session_timeout_removes_member_and_rebalances() {
    let (mut g, leader, follower) = stable_pair(0);
    assert_eq!(g.heartbeat(&leader, None, 2, 9_000), 0);
    g.tick(10_000, &CFG); // follower's session (10 s from 0) ran out
    assert!(!g.members.contains_key(&follower));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&leader, None, 2, 10_001),
        ResponseError::RebalanceInProgress.code()
    );
    let mut rx = waiting(g.join(params(&leader), 10_002, &CFG));
    let j = ready(&mut rx);
    assert_eq!((j.generation, j.members.len()), (3, 1));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let (mut g, leader, follower) = stable_pair(0);
    // The leader rejoining starts a rebalance; the follower keeps its
    // session alive by heartbeats but never rejoins.
    let mut rx = waiting(g.join(params(&leader), 1_000, &CFG));
    for t in (2_000..31_000).step_by(5_000) {
        let e = g.heartbeat(&follower, None, 2, t);
        assert_eq!(e, ResponseError::RebalanceInProgress.code());
        g.tick(t, &CFG);
    }
    g.tick(30_999, &CFG);
    pending(&mut rx);
    g.tick(31_000, &CFG);
    let j = ready(&mut rx);
    assert_eq!((j.error, j.generation, j.members.len()), (0, 3, 1));
    assert!(!g.members.contains_key(&follower));
}

#[test]
fn generation_fencing_errors() {
    let (mut g, leader, follower) = stable_pair(0);
    assert_eq!(
        g.heartbeat(&leader, None, 1, 1),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, 1),
        ResponseError::UnknownMemberId.code()
    );
    let old = now_value(g.sync(&follower, None, 1, None, None, vec![], 1));
    assert_eq!(old.error, ResponseError::IllegalGeneration.code());
    let wrong = now_value(g.sync(&follower, None, 2, Some("other"), None, vec![], 1));
    assert_eq!(wrong.error, ResponseError::InconsistentGroupProtocol.code());
    for transactional in [false, true] {
        assert_eq!(
            g.check_commit(&follower, None, 1, transactional),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            g.check_commit("nobody", None, 2, transactional),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(g.check_commit(&follower, None, 2, transactional), 0);
    }
    // No member and no generation: refused for a group with members,
    // unless it is a TxnOffsetCommit v0-v2 (a 0.11-3.x producer's
    // sendOffsetsToTransaction(offsets, groupId)), which Kafka accepts.
    assert_eq!(
        g.check_commit("", None, -1, false),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(g.check_commit("", None, -1, true), 0);
    let bad = JoinParams {
        protocol_type: "connect".into(),
        ..params("")
    };
    assert_eq!(
        now_value(g.join(bad, 1, &CFG)).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // Stable and the same metadata: a follower's rejoin changes nothing.
    let same = now_value(g.join(params(&follower), 2, &CFG));
    assert_eq!((same.error, same.generation), (0, 2));
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let mut g = Group::new("g".into(), 0);
    let mut ra = waiting(g.join(static_params("", "a"), 0, &CFG));
    let ja = ready(&mut ra);
    let mut rb = waiting(g.join(static_params("", "b"), 0, &CFG));
    let mut ra = waiting(g.join(static_params(&ja.member_id, "a"), 0, &CFG));
    let (ja, jb) = (ready(&mut ra), ready(&mut rb));
    sync_all(&mut g, &ja, &jb, 0);
    // "b" restarts: unknown member id, same instance id and protocols.
    let again = now_value(g.join(static_params("", "b"), 100, &CFG));
    assert_eq!((again.error, again.generation), (0, jb.generation));
    assert_ne!(again.member_id, jb.member_id);
    assert_eq!(g.state, GroupState::Stable, "no rebalance");
    let sync = now_value(g.sync(
        &again.member_id,
        Some("b"),
        again.generation,
        None,
        None,
        vec![],
        101,
    ));
    assert_eq!(&sync.assignment[..], b"B", "the old assignment is kept");
    assert_eq!(
        g.heartbeat(&jb.member_id, Some("b"), jb.generation, 102),
        ResponseError::FencedInstanceId.code()
    );
    // Leaving by instance id alone (LeaveGroup v3+).
    assert_eq!(g.leave("", Some("b"), 103, &CFG), 0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
}

#[test]
fn leave_rebalances_and_last_leave_empties() {
    let (mut g, leader, follower) = stable_pair(0);
    assert_eq!(g.leave(&follower, None, 1, &CFG), 0);
    assert_eq!(
        g.leave(&follower, None, 1, &CFG),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut rx = waiting(g.join(params(&leader), 2, &CFG));
    assert_eq!(ready(&mut rx).generation, 3);
    assert_eq!(g.leave(&leader, None, 3, &CFG), 0);
    assert_eq!(g.state, GroupState::Empty);
    assert!(g.members.is_empty());
}

#[test]
fn rebalance_during_sync_phase_fails_waiting_syncs() {
    let mut g = Group::new("g".into(), 0);
    let j1 = ready(&mut waiting(g.join(params(""), 0, &CFG)));
    let mut r2 = waiting(g.join(params(""), 0, &CFG));
    let mut r1 = waiting(g.join(params(&j1.member_id), 0, &CFG));
    let (j1, j2) = (ready(&mut r1), ready(&mut r2));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let mut rf = waiting(g.sync(&j2.member_id, None, j2.generation, None, None, vec![], 1));
    pending(&mut rf);
    // A third member arrives before the leader's SyncGroup.
    let _r3 = g.join(params(""), 2, &CFG);
    assert_eq!(
        ready(&mut rf).error,
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let late = now_value(g.sync(&j1.member_id, None, j1.generation, None, None, vec![], 3));
    assert_eq!(late.error, ResponseError::RebalanceInProgress.code());
}

fn clock() -> (Rc<ManualClock>, LogClock) {
    let t = Rc::new(ManualClock::new(1_000_000));
    (t.clone(), LogClock::Manual(t))
}

fn entry(topic: &str, partition: i32, offset: i64) -> CommitEntry {
    CommitEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: format!("md{offset}"),
    }
}

#[test]
fn simple_commits_expire_and_the_group_goes() {
    shard::runtime::run_local(|| async {
        let (t, clock) = clock();
        let c = Coordinator::new(CFG, clock);
        assert_eq!(c.commit("s", "", None, -1, vec![entry("t", 0, 5)]).await, 0);
        assert_eq!(
            c.commit("s", "m", None, 4, vec![entry("t", 0, 6)]).await,
            ResponseError::UnknownMemberId.code()
        );
        let got = c.fetch_offsets("s", None);
        assert_eq!(got[0].1[0].1.as_ref().unwrap().offset, 5);
        c.expire_offsets(t.now_ms() + CFG.offsets_retention_ms - 1)
            .await;
        assert_eq!(c.list().len(), 1);
        t.set_wall_ms(t.now_ms() + CFG.offsets_retention_ms);
        c.expire_offsets(t.now_ms()).await;
        assert!(c.fetch_offsets("s", None).is_empty());
        assert!(
            c.list().is_empty(),
            "an empty group without offsets is removed"
        );
        assert_eq!(c.delete("s").await, ResponseError::GroupIdNotFound.code());
    });
}

#[test]
fn offsets_and_groups_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let config = shard::log::LogConfig {
            cleanup_compact: true,
            cleanup_delete: false,
            preallocate: false,
            ..Default::default()
        };
        let (_, clk) = clock();
        let c = Coordinator::new(CFG, clk);
        c.open(&path, 0, config.clone()).await.unwrap();
        let j = c.join("g".into(), params("")).await;
        let s = c
            .sync(
                "g".into(),
                SyncParams {
                    member_id: j.member_id.clone(),
                    generation: j.generation,
                    assignments: vec![(j.member_id.clone(), Bytes::from_static(b"A"))],
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(s.error, 0);
        for i in 0..5 {
            let e = c
                .commit(
                    "g",
                    &j.member_id,
                    None,
                    j.generation,
                    vec![entry("t", i % 2, i.into())],
                )
                .await;
            assert_eq!(e, 0);
        }
        assert_eq!(
            c.commit("simple", "", None, -1, vec![entry("u", 0, 9)])
                .await,
            0
        );
        assert_eq!(
            c.commit("gone", "", None, -1, vec![entry("u", 0, 1)]).await,
            0
        );
        assert_eq!(c.delete("gone").await, 0);
        let before = (c.fetch_offsets("g", None), c.fetch_offsets("simple", None));
        c.close().await;

        let (_, clk) = clock();
        let c2 = Coordinator::new(CFG, clk);
        c2.open(&path, 0, config).await.unwrap();
        let after = (
            c2.fetch_offsets("g", None),
            c2.fetch_offsets("simple", None),
        );
        assert_eq!(format!("{before:?}").len(), format!("{after:?}").len());
        let offs: Vec<(i32, i64, i32, String)> = after.0[0]
            .1
            .iter()
            .map(|(p, c)| {
                let c = c.as_ref().unwrap();
                (*p, c.offset, c.leader_epoch, c.metadata.clone())
            })
            .collect();
        assert_eq!(offs, vec![(0, 4, 3, "md4".into()), (1, 3, 3, "md3".into())]);
        assert_eq!(after.1[0].1[0].1.as_ref().unwrap().offset, 9);
        let desc = c2.describe("g");
        assert_eq!(desc.state, "Stable");
        assert_eq!(&desc.members[0].assignment[..], b"A");
        assert_eq!(c2.describe("gone").state, "Dead");
        // The restored member carries on in its generation.
        assert_eq!(c2.heartbeat("g", &j.member_id, None, j.generation), 0);
        c2.close().await;
    });
}

/// Found by the group simulation (`sim_tests.rs`, seed 0): a JoinGroup v4+
/// to a new (Empty) group gets MEMBER_ID_REQUIRED and a pending member id;
/// the client never comes back. The timers skipped Empty groups, so the
/// pending id never lapsed while `next_deadline` kept offering it:
/// `run_timers` found its deadline always due and called `tick` in a loop
/// that never awaits, hanging the shard.
#[test]
fn a_pending_member_id_of_an_empty_group_lapses() {
    shard::runtime::run_local(|| async {
        let (t, clk) = clock();
        let c = Coordinator::new(CFG, clk);
        let p = JoinParams {
            require_known_member_id: true,
            ..params("")
        };
        let j = c.join("g".into(), p).await;
        assert_eq!(j.error, ResponseError::MemberIdRequired.code());
        assert_eq!(c.groups.borrow()["g"].state, GroupState::Empty);
        let lapse = t.now_ms() + i64::from(params("").session_timeout_ms);
        // The expiry check alone is not due before then.
        assert!(lapse < t.now_ms() + 60_000);
        assert_eq!(c.next_deadline(), lapse);
        t.set_wall_ms(lapse);
        c.tick().await;
        assert!(
            c.next_deadline() > lapse,
            "the timers must not stay due after they ran"
        );
        // The lapsed id is no member: it must join afresh.
        let again = c.join("g".into(), params(&j.member_id)).await;
        assert_eq!(again.error, ResponseError::UnknownMemberId.code());
    });
}

/// Found by the group simulation (seed 11): a static member that restarts
/// (JoinGroup with no member id, its instance id) while its group
/// rebalances took the old member's place under a new id, then looked
/// itself up by the empty id it sent and panicked, taking the shard down.
/// Kafka 4.4 lets it replace the old member and join the rebalance.
#[test]
fn a_static_member_restarting_during_a_rebalance_joins_it() {
    let mut g = Group::new("g".into(), 0);
    let mut ra = waiting(g.join(static_params("", "a"), 0, &CFG));
    let ja = ready(&mut ra);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    // In the sync phase, and again once a newcomer starts a rebalance.
    let mut r1 = waiting(g.join(static_params("", "a"), 1, &CFG));
    let j1 = ready(&mut r1);
    assert_eq!((j1.error, j1.generation), (0, ja.generation + 1));
    assert_eq!(j1.leader, j1.member_id);
    let mut rb = waiting(g.join(params(""), 2, &CFG));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut r2 = waiting(g.join(static_params("", "a"), 3, &CFG));
    let (j2, jb) = (ready(&mut r2), ready(&mut rb));
    assert_eq!((j2.error, jb.error), (0, 0));
    assert_eq!(j2.generation, j1.generation + 1);
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.static_members["a"], j2.member_id);
    assert_eq!(
        g.heartbeat(&j1.member_id, Some("a"), j2.generation, 4),
        ResponseError::FencedInstanceId.code()
    );
}

/// `max_groups` over two shards' coordinators sharing one census: a new
/// group beyond it (JoinGroup, or a commit of a simple group) gets
/// GROUP_MAX_SIZE_REACHED; existing groups go on; a deleted group frees
/// its place for the other shard.
#[test]
fn max_groups_counts_every_shard() {
    shard::runtime::run_local(|| async {
        let census = super::census::GroupCensus::new(3).expect("a limit");
        let (_t, clock) = clock();
        let (a, b) = (
            Coordinator::new(CFG, clock.clone()),
            Coordinator::new(CFG, clock),
        );
        a.census.join(census.clone());
        b.census.join(census);
        let full = ResponseError::GroupMaxSizeReached.code();
        let v4 = || JoinParams {
            require_known_member_id: true,
            ..params("")
        };
        assert_eq!(
            a.commit("s1", "", None, -1, vec![entry("t", 0, 1)]).await,
            0
        );
        assert_eq!(
            b.commit("s2", "", None, -1, vec![entry("t", 0, 1)]).await,
            0
        );
        let joined = a.join("g".into(), v4()).await;
        assert_eq!(joined.error, ResponseError::MemberIdRequired.code());
        // Three groups: nothing new on either shard.
        assert_eq!(
            b.commit("s3", "", None, -1, vec![entry("t", 0, 1)]).await,
            full
        );
        assert_eq!(b.join("g2".into(), v4()).await.error, full);
        assert_eq!(a.join("g3".into(), v4()).await.error, full);
        assert!(
            b.fetch_offsets("s3", None).is_empty(),
            "a refused commit stores nothing"
        );
        // Existing groups go on.
        assert_eq!(
            b.commit("s2", "", None, -1, vec![entry("t", 0, 2)]).await,
            0
        );
        assert_eq!(
            a.join("g".into(), v4()).await.error,
            ResponseError::MemberIdRequired.code()
        );
        // A deletion on one shard makes room on the other.
        assert_eq!(a.delete("s1").await, 0);
        assert_eq!(
            b.commit("s3", "", None, -1, vec![entry("t", 0, 1)]).await,
            0
        );
        assert_eq!(
            b.commit("s4", "", None, -1, vec![entry("t", 0, 1)]).await,
            full
        );
    });
}
