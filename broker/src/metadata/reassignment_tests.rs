//! Elections and reassignments through the pure `apply`.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::codes::*;
use super::*;
use crate::metadata::{BrokerMeta, Effect, MetadataCommand};

const SHARDS: usize = 2;

/// Brokers 1..=4 live (2 shards each), and topic `r` on {1,2,3} led by 1.
fn cluster() -> (ClusterState, PartitionRef) {
    let mut s = ClusterState::default();
    for id in 1..=4 {
        let b = BrokerMeta {
            id,
            incarnation: Uuid::from_u64_pair(9, id as u64),
            epoch: 0,
            endpoints: vec![],
            rack: None,
            shards: SHARDS as u32,
            fenced: true,
        };
        let epoch = match s.apply(&MetadataCommand::RegisterBroker(b), SHARDS) {
            Ok(Effect::BrokerRegistered { epoch }) => epoch,
            other => panic!("{other:?}"),
        };
        s.apply(&MetadataCommand::UnfenceBroker { id, epoch }, SHARDS)
            .unwrap();
    }
    let id = Uuid::from_u128(5);
    let p = PartitionMeta {
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        shards: vec![0, 1, 0],
        ..PartitionMeta::local(0, 1)
    };
    s.apply(
        &MetadataCommand::CreateTopic {
            name: "r".into(),
            id,
            partitions: vec![p],
            configs: BTreeMap::new(),
        },
        SHARDS,
    )
    .unwrap();
    let r = PartitionRef {
        topic: "r".into(),
        id,
        partition: 0,
    };
    (s, r)
}

fn part(s: &ClusterState) -> PartitionMeta {
    s.topic("r").unwrap().partitions[0].clone()
}

fn outcomes(s: &mut ClusterState, cmd: MetadataCommand) -> Vec<i16> {
    match s.apply(&cmd, SHARDS) {
        Ok(Effect::Outcomes(o)) => o.into_iter().map(|(code, _)| code).collect(),
        other => panic!("{other:?}"),
    }
}

fn elect(election: Election, r: &PartitionRef) -> MetadataCommand {
    MetadataCommand::ElectLeaders {
        election,
        partitions: vec![r.clone()],
    }
}

fn reassign(r: &PartitionRef, to: &[i32]) -> MetadataCommand {
    MetadataCommand::Reassign {
        moves: vec![(
            r.clone(),
            Move::To {
                replicas: to.to_vec(),
                shards: vec![1; to.len()],
            },
        )],
    }
}

fn fence(s: &mut ClusterState, id: i32) {
    let epoch = s.brokers[&id].epoch;
    s.apply(&MetadataCommand::FenceBroker { id, epoch }, SHARDS)
        .unwrap();
}

fn alter_isr(s: &mut ClusterState, r: &PartitionRef, isr: &[i32]) {
    let p = part(s);
    s.apply(
        &MetadataCommand::AlterPartition {
            topic: r.topic.clone(),
            id: r.id,
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: isr.to_vec(),
        },
        SHARDS,
    )
    .unwrap();
}

#[test]
fn the_preferred_replica_gets_its_leadership_back() {
    let (mut s, r) = cluster();
    assert_eq!(
        outcomes(&mut s, elect(Election::Preferred, &r)),
        [ELECTION_NOT_NEEDED]
    );
    fence(&mut s, 1);
    let p = part(&s);
    assert_eq!(
        (p.leader, p.leader_epoch),
        (2, 1),
        "the next replica in order"
    );
    assert_eq!(
        outcomes(&mut s, elect(Election::Preferred, &r)),
        [PREFERRED_LEADER_NOT_AVAILABLE],
        "broker 1 is fenced and out of the ISR"
    );
    // Back and in sync again: the election moves the leadership.
    let epoch = s.brokers[&1].epoch;
    s.apply(&MetadataCommand::UnfenceBroker { id: 1, epoch }, SHARDS)
        .unwrap();
    alter_isr(&mut s, &r, &[1, 2, 3]);
    let before = part(&s);
    assert_eq!(outcomes(&mut s, elect(Election::Preferred, &r)), [NONE]);
    let p = part(&s);
    assert_eq!(p.leader, 1);
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert_eq!(p.partition_epoch, before.partition_epoch + 1);
    let unknown = PartitionRef {
        partition: 9,
        ..r.clone()
    };
    assert_eq!(
        outcomes(&mut s, elect(Election::Preferred, &unknown)),
        [UNKNOWN_TOPIC_OR_PARTITION]
    );
}

#[test]
fn an_unclean_election_takes_a_live_replica_out_of_sync() {
    let (mut s, r) = cluster();
    // 2 and 3 drop out of the ISR, then 1 dies: offline.
    alter_isr(&mut s, &r, &[1]);
    fence(&mut s, 1);
    assert_eq!(part(&s).leader, -1);
    assert_eq!(part(&s).isr, vec![1], "the last member stays");
    let before = part(&s);
    assert_eq!(outcomes(&mut s, elect(Election::Unclean, &r)), [NONE]);
    let p = part(&s);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert_eq!(
        outcomes(&mut s, elect(Election::Unclean, &r)),
        [ELECTION_NOT_NEEDED]
    );
    for id in [2, 3] {
        fence(&mut s, id);
    }
    assert_eq!(part(&s).leader, -1);
    assert_eq!(
        outcomes(&mut s, elect(Election::Unclean, &r)),
        [ELIGIBLE_LEADERS_NOT_AVAILABLE]
    );
}

#[test]
fn a_reassignment_adds_first_and_removes_once_the_targets_are_in_sync() {
    let (mut s, r) = cluster();
    assert_eq!(outcomes(&mut s, reassign(&r, &[2, 3, 4])), [NONE]);
    let p = part(&s);
    assert_eq!(p.replicas, vec![2, 3, 4, 1]);
    assert_eq!(
        p.shards,
        vec![1, 0, 1, 0],
        "kept shards, the new one as placed"
    );
    assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![1]));
    assert_eq!((p.leader, p.leader_epoch), (1, 0), "1 leads until the end");
    assert_eq!(p.target_replicas(), vec![2, 3, 4]);
    // Broker 4 catches up: the leader's expand completes the move.
    alter_isr(&mut s, &r, &[1, 2, 3, 4]);
    let p = part(&s);
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.shards, vec![1, 0, 1]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert!(!p.reassigning());
    assert_eq!((p.leader, p.leader_epoch), (2, 1), "the first target leads");
    assert_eq!(s.check_invariants(SHARDS), Ok(()));
}

#[test]
fn a_reassignment_that_only_removes_completes_at_once() {
    let (mut s, r) = cluster();
    assert_eq!(outcomes(&mut s, reassign(&r, &[3, 1])), [NONE]);
    let p = part(&s);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (vec![3, 1], vec![1, 3])
    );
    assert_eq!(p.shards, vec![0, 0]);
    assert_eq!(p.leader, 1, "the leader stays a replica");
    assert!(!p.reassigning());
}

#[test]
fn a_reassignment_is_cancelled_or_replaced() {
    let (mut s, r) = cluster();
    let cancel = MetadataCommand::Reassign {
        moves: vec![(r.clone(), Move::Cancel)],
    };
    assert_eq!(
        outcomes(&mut s, cancel.clone()),
        [NO_REASSIGNMENT_IN_PROGRESS]
    );
    outcomes(&mut s, reassign(&r, &[4, 2, 3]));
    // A new target replaces the old one, from the original replicas.
    outcomes(&mut s, reassign(&r, &[1, 2, 4]));
    let p = part(&s);
    assert_eq!(p.replicas, vec![1, 2, 4, 3]);
    assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![3]));
    assert_eq!(outcomes(&mut s, cancel), [NONE]);
    let p = part(&s);
    assert_eq!(p.replicas, vec![1, 2, 3]);
    assert_eq!(p.shards, vec![0, 1, 0]);
    assert_eq!(p.isr, vec![1, 2, 3]);
    assert!(!p.reassigning());
}

#[test]
fn bad_targets_are_refused_and_change_nothing() {
    let (mut s, r) = cluster();
    let before = part(&s);
    for target in [vec![], vec![2, 2], vec![2, 9]] {
        assert_eq!(
            outcomes(&mut s, reassign(&r, &target)),
            [INVALID_REPLICA_ASSIGNMENT],
            "{target:?}"
        );
    }
    let off_shard = MetadataCommand::Reassign {
        moves: vec![(
            r.clone(),
            Move::To {
                replicas: vec![4],
                shards: vec![SHARDS as u32],
            },
        )],
    };
    assert_eq!(outcomes(&mut s, off_shard), [INVALID_REPLICA_ASSIGNMENT]);
    assert_eq!(part(&s), before);
}

#[test]
fn a_partition_in_reassignment_survives_the_image() {
    let (mut s, r) = cluster();
    outcomes(&mut s, reassign(&r, &[2, 3, 4]));
    s.apply(
        &MetadataCommand::AlterBrokerConfigs {
            broker: -1,
            configs: BTreeMap::from([("leader.replication.throttled.rate".into(), "1000".into())]),
        },
        SHARDS,
    )
    .unwrap();
    let back = crate::quorum::image::decode(&crate::quorum::image::encode(&s)).unwrap();
    assert_eq!(back, s);
    assert_eq!(part(&back).adding, vec![4]);
    // And through the JSON of the log's entries.
    let json = serde_json::to_string(&reassign(&r, &[2, 3, 4])).unwrap();
    assert_eq!(
        serde_json::from_str::<MetadataCommand>(&json).unwrap(),
        reassign(&r, &[2, 3, 4])
    );
}
