//! Metadata commands: the pure `apply`, its inverses, the round trip
//! through the file, and files written before replicas were recorded.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;

const SHARDS: usize = 3;
const NODE: i32 = 7;

/// A small seeded generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

fn parts(rng: &mut Rng, n: u64, shards: u64) -> Vec<PartitionMeta> {
    (0..n)
        .map(|_| PartitionMeta::local(rng.below(shards) as u32, NODE))
        .collect()
}

/// A random command: mostly ones that fit the state, some that do not
/// (a shard out of range, a stale id, a gap in partition numbers).
fn random_command(rng: &mut Rng, s: &ClusterState) -> MetadataCommand {
    let names = ["a", "b", "c", "d"];
    let name = names[rng.below(names.len() as u64) as usize].to_string();
    let existing = s.topic(&name).cloned();
    let id = match (&existing, rng.below(10)) {
        (Some(t), 0..=8) => t.id,
        _ => rng.uuid(),
    };
    // One in ten commands places a partition on a shard that is not there.
    let shards = (if rng.below(10) == 0 {
        SHARDS + 1
    } else {
        SHARDS
    }) as u64;
    let count = existing.as_ref().map_or(0, |t| t.partitions.len()) as u32;
    match rng.below(6) {
        0 => MetadataCommand::CreateTopic {
            name,
            id,
            partitions: {
                let n = 1 + rng.below(4);
                parts(rng, n, shards)
            },
            configs: BTreeMap::from([("retention.ms".to_string(), rng.below(1000).to_string())]),
        },
        1 => MetadataCommand::DeleteTopic { name, id },
        2 => MetadataCommand::CreatePartitions {
            name,
            id,
            first: if rng.below(8) == 0 { count + 1 } else { count },
            partitions: {
                let n = 1 + rng.below(3);
                parts(rng, n, shards)
            },
        },
        3 => MetadataCommand::TruncatePartitions {
            name,
            id,
            count: rng.below(count as u64 + 2) as u32,
        },
        4 => MetadataCommand::AlterTopicConfigs {
            name,
            id,
            configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        },
        _ => MetadataCommand::AllocateProducerIds {
            block_end: s.producer_id_block_end + rng.below(3) as i64 * PRODUCER_ID_BLOCK
                - PRODUCER_ID_BLOCK / 2,
        },
    }
}

/// The state as the file gives it back.
fn reloaded(s: &ClusterState) -> ClusterState {
    let mut back: ClusterState = serde_json::from_slice(&serde_json::to_vec_pretty(s).unwrap())
        .expect("the written state reads back");
    back.adopt_unrecorded_replicas(NODE);
    back.reindex();
    back
}

#[test]
fn random_command_sequences_survive_the_file_and_rejections_change_nothing() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut s = ClusterState {
            cluster_id: "c".into(),
            ..Default::default()
        };
        let mut applied = 0;
        for step in 0..60 {
            let cmd = random_command(&mut rng, &s);
            let before = s.clone();
            match s.apply(&cmd, SHARDS) {
                Ok(_) => {
                    applied += 1;
                    assert_eq!(s.check_invariants(SHARDS), Ok(()));
                    assert_eq!(reloaded(&s), s, "seed {seed} step {step}: {cmd:?}");
                    // A command's meaning is in the command: applied to a
                    // copy of the old state, it gives the same new state.
                    let mut replay = before.clone();
                    replay.apply(&cmd, SHARDS).unwrap();
                    assert_eq!(replay, s, "seed {seed} step {step}");
                }
                Err(_) => assert_eq!(s, before, "seed {seed} step {step}: rejected {cmd:?}"),
            }
        }
        assert!(applied > 10, "seed {seed}: only {applied} commands fit");
    }
}

#[test]
fn inverse_commands_restore_the_state() {
    let mut s = ClusterState::default();
    let id = Uuid::from_u128(1);
    s.apply(
        &MetadataCommand::CreateTopic {
            name: "t".into(),
            id,
            partitions: vec![PartitionMeta::local(0, NODE)],
            configs: BTreeMap::new(),
        },
        SHARDS,
    )
    .unwrap();
    let one = s.clone();
    s.apply(
        &MetadataCommand::CreatePartitions {
            name: "t".into(),
            id,
            first: 1,
            partitions: vec![PartitionMeta::local(1, NODE), PartitionMeta::local(2, NODE)],
        },
        SHARDS,
    )
    .unwrap();
    assert_eq!(s.shard_load(NODE, SHARDS), vec![1, 1, 1]);
    s.apply(
        &MetadataCommand::TruncatePartitions {
            name: "t".into(),
            id,
            count: 1,
        },
        SHARDS,
    )
    .unwrap();
    assert_eq!(s, one);
    let deleted = s
        .apply(
            &MetadataCommand::DeleteTopic {
                name: "t".into(),
                id,
            },
            SHARDS,
        )
        .unwrap();
    assert!(matches!(deleted, Effect::TopicDeleted(t) if t.id == id));
    assert_eq!(s, ClusterState::default());
}

#[test]
fn producer_id_blocks_follow_each_other_whoever_asks() {
    let mut s = ClusterState::default();
    let reserve = MetadataCommand::ReserveProducerIds { count: 1000 };
    // Two brokers asking at once get consecutive blocks, not a refusal.
    assert_eq!(
        s.apply(&reserve, SHARDS),
        Ok(Effect::ProducerIds {
            start: 0,
            end: 1000
        })
    );
    assert_eq!(
        s.apply(&reserve, SHARDS),
        Ok(Effect::ProducerIds {
            start: 1000,
            end: 2000
        })
    );
    // The older command, from single-node logs, still applies after them.
    let old = MetadataCommand::AllocateProducerIds { block_end: 3000 };
    assert_eq!(
        s.apply(&old, SHARDS),
        Ok(Effect::ProducerIds {
            start: 2000,
            end: 3000
        })
    );
    for bad in [0, -5, 2_000_000] {
        assert!(s
            .apply(&MetadataCommand::ReserveProducerIds { count: bad }, SHARDS)
            .is_err());
    }
    assert_eq!(s.producer_id_block_end, 3000);
}

#[test]
fn commands_that_break_an_invariant_are_rejected() {
    let mut s = ClusterState::default();
    let create = |name: &str, id: u128, p: PartitionMeta| MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(id),
        partitions: vec![p],
        configs: BTreeMap::new(),
    };
    s.apply(&create("t", 1, PartitionMeta::local(0, NODE)), SHARDS)
        .unwrap();
    let before = s.clone();
    let rejected = [
        create("t", 2, PartitionMeta::local(0, NODE)),
        create("u", 1, PartitionMeta::local(0, NODE)),
        create("u", 0, PartitionMeta::local(0, NODE)),
        create("u", 2, PartitionMeta::local(SHARDS as u32, NODE)),
        create(
            "u",
            2,
            PartitionMeta {
                leader: NODE + 1,
                ..PartitionMeta::local(0, NODE)
            },
        ),
        create(
            "u",
            2,
            PartitionMeta {
                replicas: vec![NODE, NODE],
                ..PartitionMeta::local(0, NODE)
            },
        ),
        MetadataCommand::CreatePartitions {
            name: "t".into(),
            id: Uuid::from_u128(1),
            first: 2,
            partitions: vec![PartitionMeta::local(0, NODE)],
        },
        MetadataCommand::DeleteTopic {
            name: "t".into(),
            id: Uuid::from_u128(9),
        },
        MetadataCommand::TruncatePartitions {
            name: "t".into(),
            id: Uuid::from_u128(1),
            count: 0,
        },
        MetadataCommand::AllocateProducerIds { block_end: 0 },
    ];
    for cmd in rejected {
        assert!(s.apply(&cmd, SHARDS).is_err(), "{cmd:?} was accepted");
        assert_eq!(s, before);
    }
    let ids = s
        .apply(
            &MetadataCommand::AllocateProducerIds { block_end: 1000 },
            SHARDS,
        )
        .unwrap();
    assert_eq!(
        ids,
        Effect::ProducerIds {
            start: 0,
            end: 1000
        }
    );
}

/// A file written before partitions recorded their leader and replicas
/// (Shardline before issue 12), byte for byte.
const OLD_FILE: &str = r#"{
  "cluster_id": "AAAAAAAAAAAAAAAAAAAAAA",
  "producer_id_block_end": 2000,
  "topics": {
    "orders": {
      "name": "orders",
      "id": "6f1c3a52-8e0b-4b7e-9a51-3c2d7e0f4a11",
      "partitions": [
        {
          "shard": 0,
          "leader_epoch": 0
        },
        {
          "shard": 1,
          "leader_epoch": 0
        }
      ],
      "configs": {
        "retention.ms": "60000"
      }
    }
  }
}"#;

#[test]
fn an_old_metadata_file_loads_with_this_node_as_leader() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(METADATA_FILE), OLD_FILE).unwrap();
    let store = MetadataStore::load_or_init(dir.path(), 2, NODE).unwrap();
    let snap = store.snapshot();
    assert_eq!(snap.cluster_id, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(snap.producer_id_block_end, 2000);
    let t = snap.topic("orders").unwrap();
    assert_eq!(snap.topic_by_id(&t.id).unwrap().name, "orders");
    assert_eq!(t.configs["retention.ms"], "60000");
    assert_eq!(
        t.partitions,
        vec![PartitionMeta::local(0, NODE), PartitionMeta::local(1, NODE)]
    );
    // Moved into the metadata log, which loads to the same state (and
    // keeps the leader it recorded, whatever the node id is now).
    drop(store);
    assert!(!dir.path().join(METADATA_FILE).exists());
    assert!(dir
        .path()
        .join(format!("{METADATA_FILE}.migrated"))
        .exists());
    let again = MetadataStore::load_or_init(dir.path(), 2, NODE + 1).unwrap();
    assert_eq!(*again.snapshot(), *snap);
}

#[test]
fn a_rejected_command_leaves_the_store_as_it_was_and_restarts_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetadataStore::load_or_init(dir.path(), 1, NODE).unwrap();
    let before = store.snapshot();
    let err = shard::runtime::run_local(move || async move {
        let cmd = MetadataCommand::AllocateProducerIds { block_end: -5 };
        let err = store.execute(cmd).await.unwrap_err();
        // Only the window of applied proposal ids moved (a refusal is its
        // proposal's outcome, once).
        let same = |s: &ClusterState| ClusterState {
            applied_proposals: Default::default(),
            ..s.clone()
        };
        assert_eq!(same(&store.snapshot()), same(&before));
        // Refused where it was applied, so it changes nothing on a replay.
        drop(store);
        let again = MetadataStore::load_or_init(dir.path(), 1, NODE).unwrap();
        assert_eq!(same(&again.snapshot()), same(&before));
        err
    });
    assert!(err.to_string().contains("not past"), "{err}");
}

/// Three live brokers and a topic `r` on all of them, led by 1.
fn replicated() -> (ClusterState, Uuid) {
    let mut s = ClusterState::default();
    for id in 1..=3 {
        let b = BrokerMeta {
            id,
            incarnation: Uuid::from_u64_pair(9, id as u64),
            epoch: 0,
            endpoints: vec![],
            rack: None,
            shards: 1,
            fenced: true,
        };
        let epoch = match s.apply(&MetadataCommand::RegisterBroker(b), 1).unwrap() {
            Effect::BrokerRegistered { epoch } => epoch,
            other => panic!("{other:?}"),
        };
        s.apply(&MetadataCommand::UnfenceBroker { id, epoch }, 1)
            .unwrap();
    }
    let id = Uuid::from_u128(77);
    let p = PartitionMeta {
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        shards: vec![0, 0, 0],
        ..PartitionMeta::local(0, 1)
    };
    s.apply(
        &MetadataCommand::CreateTopic {
            name: "r".into(),
            id,
            partitions: vec![p],
            configs: BTreeMap::new(),
        },
        1,
    )
    .unwrap();
    (s, id)
}

fn alter(
    id: Uuid,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: &[i32],
) -> MetadataCommand {
    MetadataCommand::AlterPartition {
        topic: "r".into(),
        id,
        partition: 0,
        leader,
        leader_epoch,
        partition_epoch,
        isr: isr.to_vec(),
    }
}

#[test]
fn isr_changes_are_fenced_by_the_leader_and_partition_epochs() {
    let (mut s, id) = replicated();
    let p = |s: &ClusterState| s.topic("r").unwrap().partitions[0].clone();
    assert_eq!(
        s.apply(&alter(id, 1, 0, 0, &[1, 2]), 1),
        Ok(Effect::PartitionAltered { partition_epoch: 1 })
    );
    assert_eq!((p(&s).isr, p(&s).partition_epoch), (vec![1, 2], 1));
    let before = s.clone();
    for (cmd, why) in [
        (alter(id, 1, 0, 0, &[1]), "INVALID_UPDATE_VERSION"),
        (alter(id, 2, 0, 1, &[2]), "FENCED_LEADER_EPOCH"),
        (alter(id, 1, 3, 1, &[1]), "FENCED_LEADER_EPOCH"),
        (
            alter(id, 1, 0, 1, &[2, 3]),
            "not among the in-sync replicas",
        ),
        (alter(id, 1, 0, 1, &[1, 4]), "INELIGIBLE_REPLICA"),
        (alter(id, 1, 0, 1, &[1, 1]), "repeat"),
    ] {
        let err = s.apply(&cmd, 1).unwrap_err();
        assert!(err.contains(why), "{cmd:?}: {err}");
        assert_eq!(s, before, "a refused change changes nothing");
    }
    // A fenced broker cannot join; once live again it can.
    let epoch3 = s.brokers[&3].epoch;
    s.apply(
        &MetadataCommand::FenceBroker {
            id: 3,
            epoch: epoch3,
        },
        1,
    )
    .unwrap();
    let err = s.apply(&alter(id, 1, 0, 1, &[1, 2, 3]), 1).unwrap_err();
    assert!(err.contains("INELIGIBLE_REPLICA"), "{err}");
    s.apply(
        &MetadataCommand::UnfenceBroker {
            id: 3,
            epoch: epoch3,
        },
        1,
    )
    .unwrap();
    s.apply(&alter(id, 1, 0, 1, &[1, 2, 3]), 1).unwrap();
    assert_eq!((p(&s).isr, p(&s).partition_epoch), (vec![1, 2, 3], 2));
}

#[test]
fn fencing_bumps_the_partition_epoch_with_the_isr_and_the_leader() {
    let (mut s, _) = replicated();
    let p = |s: &ClusterState| s.topic("r").unwrap().partitions[0].clone();
    // A follower fenced: out of the ISR, same leader and leader epoch.
    let e2 = s.brokers[&2].epoch;
    s.apply(&MetadataCommand::FenceBroker { id: 2, epoch: e2 }, 1)
        .unwrap();
    let after = p(&s);
    assert_eq!(
        (after.leader, after.leader_epoch, after.partition_epoch),
        (1, 0, 1)
    );
    assert_eq!(after.isr, vec![1, 3]);
    // The leader fenced: 3 leads in a new epoch.
    let e1 = s.brokers[&1].epoch;
    s.apply(&MetadataCommand::FenceBroker { id: 1, epoch: e1 }, 1)
        .unwrap();
    let after = p(&s);
    assert_eq!(
        (after.leader, after.leader_epoch, after.partition_epoch),
        (3, 1, 2)
    );
    assert_eq!(after.isr, vec![3]);
    // The last member fenced: offline, still in the ISR; back: leads again.
    let e3 = s.brokers[&3].epoch;
    s.apply(&MetadataCommand::FenceBroker { id: 3, epoch: e3 }, 1)
        .unwrap();
    assert_eq!(
        (p(&s).leader, p(&s).isr.clone(), p(&s).partition_epoch),
        (-1, vec![3], 3)
    );
    s.apply(&MetadataCommand::UnfenceBroker { id: 3, epoch: e3 }, 1)
        .unwrap();
    assert_eq!(
        (p(&s).leader, p(&s).leader_epoch, p(&s).partition_epoch),
        (3, 3, 4)
    );
}
