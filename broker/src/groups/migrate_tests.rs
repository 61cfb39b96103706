use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::groups::group::CommittedOffset;
use crate::metadata::{PartitionMeta, TopicMeta};

fn config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        preallocate: false,
        ..Default::default()
    }
}

fn committed(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 1,
        log_offset: 0,
    }
}

/// One batch of group records, or of a client's records (key "k", value "v").
enum Batch {
    Group(Vec<store::Entry>),
    Client(usize),
}

fn write_log(dir: PathBuf, batches: Vec<Batch>) {
    shard::runtime::run_local(move || async move {
        let log = PartitionLog::open(dir, "t".into(), config()).await.unwrap();
        for b in batches {
            let bytes = match b {
                Batch::Group(entries) => store::batch(&entries, 1),
                Batch::Client(n) => {
                    let mut b = BatchBuilder::new(Compression::None);
                    for _ in 0..n {
                        b.append(
                            1,
                            Some(Bytes::from_static(b"k")),
                            Some(Bytes::from_static(b"v")),
                            vec![],
                        )
                        .unwrap();
                    }
                    Bytes::from(b.build().unwrap())
                }
            };
            log.append(bytes, AckLevel::Durable).await.unwrap();
        }
        log.close().await.unwrap();
    })
}

/// Committed offsets of group `g` for topic `t` in the group log at `dir`.
fn restored(dir: PathBuf) -> BTreeMap<i32, i64> {
    shard::runtime::run_local(move || async move {
        let log = PartitionLog::open(dir, "t".into(), config()).await.unwrap();
        let mut r = store::Restored::default();
        store::replay(&log, &mut r, 1).await.unwrap();
        log.close().await.unwrap();
        r.groups
            .get("g")
            .map(|g| g.offsets.iter().map(|((_, p), c)| (*p, c.offset)).collect())
            .unwrap_or_default()
    })
}

fn write_metadata(data: &Path, topic: &str, partitions: usize) {
    let mut state = ClusterState::default();
    state.topics.insert(
        topic.into(),
        Arc::new(TopicMeta {
            name: topic.into(),
            id: uuid::Uuid::new_v4(),
            partitions: (0..partitions)
                .map(|p| PartitionMeta::local((p % 2) as u32, 0))
                .collect(),
            configs: BTreeMap::new(),
        }),
    );
    std::fs::write(
        data.join(METADATA_FILE),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn an_old_layout_moves_by_rename_and_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    for shard in 0..2 {
        write_log(
            data.join(format!("__consumer_offsets-{shard}")),
            vec![Batch::Group(vec![store::offset_entry(
                "g",
                "t",
                shard,
                &committed(7 + shard as i64),
            )])],
        );
    }
    let done = migrate_group_logs(data, 2, &config()).unwrap();
    assert_eq!(done.moved, vec![0, 1]);
    assert!(!data.join("__consumer_offsets-0").exists());
    assert_eq!(
        restored(internal::group_log_dir(data, 0)),
        BTreeMap::from([(0, 7)])
    );
    assert_eq!(
        restored(internal::group_log_dir(data, 1)),
        BTreeMap::from([(1, 8)])
    );
    assert_eq!(
        migrate_group_logs(data, 2, &config()).unwrap(),
        Migrated::default()
    );
}

#[test]
fn an_old_and_a_new_group_log_of_one_shard_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    write_log(data.join("__consumer_offsets-0"), vec![Batch::Client(1)]);
    write_log(internal::group_log_dir(data, 0), vec![Batch::Client(1)]);
    let err = migrate_group_logs(data, 1, &config())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("both") && err.contains("__consumer_offsets-0"),
        "{err}"
    );
}

#[test]
fn a_directory_shared_with_a_clients_topic_is_copied_not_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    write_metadata(data, "__consumer_offsets", 3);
    // Shard 0: group records with the client's records between them.
    write_log(
        data.join("__consumer_offsets-0"),
        vec![
            Batch::Group(vec![store::offset_entry("g", "t", 0, &committed(1))]),
            Batch::Client(3),
            Batch::Group(vec![
                store::offset_entry("g", "t", 0, &committed(2)),
                store::offset_entry("g", "t", 1, &committed(5)),
            ]),
            Batch::Client(1),
        ],
    );
    // Shard 1's group log had only the client's records; partition 2 is
    // the topic's alone (there is no shard 2).
    write_log(data.join("__consumer_offsets-1"), vec![Batch::Client(2)]);
    write_log(data.join("__consumer_offsets-2"), vec![Batch::Client(4)]);
    // A crash during an earlier copy left a staging directory behind.
    std::fs::create_dir_all(data.join("@internal/__consumer_offsets-0.migrating/junk")).unwrap();

    let done = migrate_group_logs(data, 2, &config()).unwrap();
    assert_eq!(done.copied, vec![(0, 3, 4), (1, 0, 2)]);
    assert!(done.moved.is_empty());
    assert!(!data
        .join("@internal/__consumer_offsets-0.migrating")
        .exists());
    assert!(!internal::group_log_dir(data, 2).exists());
    for p in 0..3 {
        assert!(
            data.join(format!("__consumer_offsets-{p}")).exists(),
            "the topic keeps partition {p}"
        );
    }
    assert_eq!(
        restored(internal::group_log_dir(data, 0)),
        BTreeMap::from([(0, 2), (1, 5)])
    );
    assert!(restored(internal::group_log_dir(data, 1)).is_empty());
    // Next start: nothing more to do, and the topic's directories stay.
    assert_eq!(
        migrate_group_logs(data, 2, &config()).unwrap(),
        Migrated::default()
    );
    assert!(data.join("__consumer_offsets-0").exists());
}

#[test]
fn a_clients_record_in_a_group_log_is_a_precise_restore_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gl");
    write_log(
        dir.clone(),
        vec![
            Batch::Group(vec![store::offset_entry("g", "t", 0, &committed(1))]),
            Batch::Client(1),
        ],
    );
    let err = shard::runtime::run_local(move || async move {
        let log = PartitionLog::open(dir, "t".into(), config()).await.unwrap();
        let mut r = store::Restored::default();
        let err = store::replay(&log, &mut r, 1).await.unwrap_err();
        log.close().await.unwrap();
        format!("{err:#}")
    });
    assert!(
        err.contains("record at offset 1") && err.contains("not a group record"),
        "{err}"
    );
}

#[test]
fn the_brokers_transaction_state_is_not_called_a_clients_topic() {
    let mut state = ClusterState::default();
    for name in [
        internal::CONSUMER_OFFSETS,
        internal::TRANSACTION_STATE,
        "__shardline_x",
        "plain",
    ] {
        state.topics.insert(
            name.into(),
            Arc::new(TopicMeta {
                name: name.into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![PartitionMeta::local(0, 0)],
                configs: BTreeMap::new(),
            }),
        );
    }
    let named: Vec<&str> = client_made_reserved_topics(Some(&state))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(named, [internal::CONSUMER_OFFSETS, "__shardline_x"]);
    assert_eq!(client_made_reserved_topics(None).count(), 0);
}
