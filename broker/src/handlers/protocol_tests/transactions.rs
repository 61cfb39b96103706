//! Transactional data through Fetch and ListOffsets: a partition log holds
//! a committed, an aborted and an open transaction around plain batches;
//! read_committed and read_uncommitted fetches of several versions, the
//! legacy down-converted fetch, ListOffsets by isolation level, and a
//! read_committed long-poll woken by the commit that moves the LSO.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use shard::log::{AckLevel, PartitionLog, TxnMarker};
use shard::record::{BatchBuilder, BatchView, Compression, EndTxnMarker, TxnResult};

use super::{decode_reply, handle_frame, new_state, peer, request_frame, tn, TOPIC};
use crate::shard_state::ShardState;

fn batch(producer: Option<(i64, i16, i32)>, transactional: bool, ts: i64, n: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None).transactional(transactional);
    if let Some((pid, epoch, seq)) = producer {
        b = b.producer(pid, epoch, seq);
    }
    for i in 0..n {
        b.append(ts, Some(Bytes::from(format!("k{i}"))), None, vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

async fn marker(log: &PartitionLog, pid: i64, result: TxnResult) -> i64 {
    log.append_txn_marker(
        TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            marker: EndTxnMarker {
                result,
                coordinator_epoch: 0,
            },
            transaction_version: 1,
        },
        AckLevel::Durable,
    )
    .await
    .unwrap()
    .base_offset
}

/// 0: plain; 1..=2: producer 100, committed at 3; 4: producer 200,
/// aborted at 5; 6: producer 300, open; 7: plain.
async fn fill(log: &PartitionLog) {
    let put = |b| async move { log.append(b, AckLevel::Durable).await.unwrap().base_offset };
    assert_eq!(put(batch(None, false, 1_000, 1)).await, 0);
    assert_eq!(put(batch(Some((100, 0, 0)), true, 2_000, 2)).await, 1);
    assert_eq!(marker(log, 100, TxnResult::Commit).await, 3);
    assert_eq!(put(batch(Some((200, 0, 0)), true, 3_000, 1)).await, 4);
    assert_eq!(marker(log, 200, TxnResult::Abort).await, 5);
    assert_eq!(put(batch(Some((300, 0, 0)), true, 4_000, 1)).await, 6);
    assert_eq!(put(batch(None, false, 5_000, 1)).await, 7);
    assert_eq!((log.last_stable_offset(), log.high_watermark()), (6, 8));
}

fn fetch_request(
    state: &ShardState,
    version: i16,
    offset: i64,
    isolation: i8,
    max_wait_ms: i32,
) -> RequestKind {
    let id = state.metadata.snapshot().topic(TOPIC).unwrap().id;
    let mut topic = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)]);
    if version >= 13 {
        topic = topic.with_topic_id(id);
    } else {
        topic = topic.with_topic(tn(TOPIC));
    }
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation)
            .with_topics(vec![topic]),
    )
}

async fn fetch(
    state: &std::rc::Rc<ShardState>,
    version: i16,
    offset: i64,
    isolation: i8,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let req = fetch_request(state, version, offset, isolation, max_wait_ms);
    let frame = request_frame(ApiKey::Fetch, version, 7, &req);
    match decode_reply(
        ApiKey::Fetch,
        version,
        7,
        handle_frame(state, frame, peer()).await,
    ) {
        ResponseKind::Fetch(mut r) => r.responses.remove(0).partitions.remove(0),
        other => panic!("{other:?}"),
    }
}

/// (base offset, control?) of each batch in a v4+ fetch's records.
fn batches(p: &fetch_response::PartitionData) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    let records = p.records.clone().unwrap_or_default();
    let mut rest = &records[..];
    while !rest.is_empty() {
        let b = BatchView::parse_verified(rest).unwrap();
        out.push((b.base_offset(), b.is_control()));
        rest = &rest[b.size()..];
    }
    out
}

fn aborted(p: &fetch_response::PartitionData) -> Option<Vec<(i64, i64)>> {
    p.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect()
    })
}

async fn list_offset(
    state: &std::rc::Rc<ShardState>,
    version: i16,
    timestamp: i64,
    isolation: i8,
) -> i64 {
    let req = RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tn(TOPIC))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)])]),
    );
    let frame = request_frame(ApiKey::ListOffsets, version, 3, &req);
    match decode_reply(
        ApiKey::ListOffsets,
        version,
        3,
        handle_frame(state, frame, peer()).await,
    ) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0);
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fetch_and_list_offsets_by_isolation_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let state = new_state(&path).await;
        let log = state.partitions.log(TOPIC, 0).unwrap();
        fill(&log).await;
        for version in [4i16, 5, 11, 12, 13, 15, 16] {
            // read_committed: up to the LSO, with the aborted transaction.
            let p = fetch(&state, version, 0, 1, 0).await;
            assert_eq!(p.error_code, 0, "v{version}");
            assert_eq!(
                (p.high_watermark, p.last_stable_offset),
                (8, 6),
                "v{version}"
            );
            assert_eq!(
                batches(&p),
                vec![(0, false), (1, false), (3, true), (4, false), (5, true)],
                "v{version}"
            );
            assert_eq!(aborted(&p), Some(vec![(200, 4)]), "v{version}");
            // From after the aborted transaction: an empty list, not null.
            let p = fetch(&state, version, 6, 1, 0).await;
            assert!(batches(&p).is_empty(), "v{version}");
            assert_eq!(aborted(&p), Some(vec![]), "v{version}");
            // read_uncommitted: everything below the high watermark, null.
            let p = fetch(&state, version, 0, 0, 0).await;
            assert_eq!(p.last_stable_offset, 6, "v{version}");
            assert_eq!(batches(&p).len(), 7, "v{version}");
            assert_eq!(aborted(&p), None, "v{version}");
        }
        // Legacy fetches (v0–v3: down-converted, no isolation) never show
        // markers, whatever the isolation level field would say.
        for version in 0..=3i16 {
            let p = fetch(&state, version, 0, 1, 0).await;
            let set = p.records.clone().unwrap();
            let offsets: Vec<i64> = shard::record::parse_message_set(&set)
                .unwrap()
                .iter()
                .map(|m| m.offset)
                .collect();
            assert_eq!(offsets, vec![0, 1, 2, 4, 6, 7], "v{version}");
        }
        // ListOffsets: LATEST is the LSO for read_committed (v2+); a
        // timestamp found only in the open transaction is not found.
        for version in 2..=7i16 {
            assert_eq!(list_offset(&state, version, -1, 1).await, 6, "v{version}");
            assert_eq!(list_offset(&state, version, -1, 0).await, 8, "v{version}");
            assert_eq!(
                list_offset(&state, version, 3_500, 1).await,
                -1,
                "v{version}"
            );
            assert_eq!(
                list_offset(&state, version, 3_500, 0).await,
                6,
                "v{version}"
            );
            assert_eq!(
                list_offset(&state, version, 2_500, 1).await,
                4,
                "v{version}"
            );
        }
        // v0/v1 have no isolation level: the high watermark.
        assert_eq!(list_offset(&state, 1, -1, 0).await, 8);
    });
}

#[test]
fn a_read_committed_long_poll_waits_at_the_lso_and_wakes_on_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let state = new_state(&path).await;
        let log = state.partitions.log(TOPIC, 0).unwrap();
        fill(&log).await;
        // Nothing below the LSO past 6 while producer 300's transaction is
        // open: the fetch waits its whole max_wait (data above the LSO
        // does not release it).
        let started = Instant::now();
        let p = fetch(&state, 12, 6, 1, 300).await;
        assert!(batches(&p).is_empty());
        assert!(started.elapsed() >= Duration::from_millis(290));
        // The commit moves the LSO past the open transaction: a waiting
        // fetch returns with it, long before its max_wait.
        let committer = {
            let log = log.clone();
            shard::rt::spawn_local(async move {
                shard::rt::sleep(Duration::from_millis(100)).await;
                marker(&log, 300, TxnResult::Commit).await
            })
        };
        let started = Instant::now();
        let p = fetch(&state, 12, 6, 1, 20_000).await;
        assert_eq!(committer.await, 8);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(p.last_stable_offset, 9);
        assert_eq!(batches(&p), vec![(6, false), (7, false), (8, true)]);
        assert_eq!(aborted(&p), Some(vec![]));
    });
}
