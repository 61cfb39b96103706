//! Records: Kafka's default partitioner (murmur2), decoding fetched batches
//! (with read_committed's aborted-transaction filter, as Kafka's consumer
//! does it), one Fetch of one partition, and producing one record.

use std::collections::{BTreeMap, HashSet};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest};
use shard::record::{
    decode_records, message_set_to_batches, parse_txn_marker, peek_magic, BatchBuilder, BatchView,
    Compression, RecordHeader, TxnResult,
};
use shardline_client::{check, topic_name, Client};

/// Kafka's murmur2 (the default partitioner's key hash).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the default Kafka partitioner picks for `key`.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// One record as printed.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Decode the records of a Fetch response partition at or after `position`;
/// returns them and the offset to fetch next.
pub fn decode_fetched(
    topic: &str,
    partition: i32,
    data: &[u8],
    position: i64,
) -> Result<(Vec<Rec>, i64)> {
    decode_partition(topic, partition, data, position, None)
}

/// [`decode_fetched`] for read_committed: `aborted` is the response's
/// aborted transactions (producer id, first offset); records of a
/// transaction aborted there are skipped up to its abort marker, as Kafka's
/// consumer skips them.
pub fn decode_partition(
    topic: &str,
    partition: i32,
    data: &[u8],
    mut position: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Result<(Vec<Rec>, i64)> {
    let mut pending: Vec<(i64, i64)> = aborted.map(<[_]>::to_vec).unwrap_or_default();
    // By first offset, taken from the front as batches pass them.
    pending.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 17 {
        let size = 12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]).max(0) as usize;
        if size > rest.len() {
            break; // a partial batch at the end of the response
        }
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let owned: Vec<Vec<u8>> = if peek_magic(chunk).unwrap_or(2) < 2 {
            message_set_to_batches(chunk)?
        } else {
            vec![chunk.to_vec()]
        };
        for batch in &owned {
            let view = BatchView::parse(batch)?;
            let next = view.last_offset() + 1;
            if aborted.is_some() && view.is_transactional() {
                while pending.last().is_some_and(|a| a.1 <= view.last_offset()) {
                    let (pid, _) = pending.pop().expect("checked");
                    aborting.insert(pid);
                }
            }
            let skip = aborted.is_some()
                && view.is_transactional()
                && aborting.contains(&view.producer_id());
            if view.is_control() {
                if let Ok(Some(m)) = parse_txn_marker(&view) {
                    if m.result == TxnResult::Abort {
                        aborting.remove(&view.producer_id());
                    }
                }
            } else if !skip {
                for r in decode_records(&view)? {
                    let offset = view.base_offset() + r.offset_delta as i64;
                    if offset < position {
                        continue;
                    }
                    let timestamp = if view.is_log_append_time() {
                        view.max_timestamp()
                    } else {
                        view.base_timestamp().wrapping_add(r.timestamp_delta)
                    };
                    out.push(Rec {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        timestamp,
                        key: r.key.map(|b| b.to_vec()),
                        value: r.value.map(|b| b.to_vec()),
                        headers: r
                            .headers
                            .into_iter()
                            .map(|h| (h.key, h.value.map(|v| v.to_vec())))
                            .collect(),
                    });
                }
            }
            position = position.max(next);
        }
    }
    Ok((out, position))
}

/// What one Fetch of one partition returned.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub records: Vec<Rec>,
    /// Where the next fetch starts (past control batches and skipped ones).
    pub next: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// One Fetch of `topic[partition]` from `leader` at `offset`, up to
/// `max_bytes`, read_committed or not, waiting at most `max_wait_ms`.
#[allow(clippy::too_many_arguments)]
pub fn fetch_once(
    client: &mut Client,
    leader: i32,
    topic: &str,
    partition: i32,
    offset: i64,
    read_committed: bool,
    max_bytes: i32,
    max_wait_ms: i32,
) -> Result<Fetched> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(read_committed as i8)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes)])]);
    let (resp, _) = client.conn(leader)?.send(&req)?;
    check(resp.error_code, format!("fetching {topic}"), None)?;
    let pd = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| anyhow!("Fetch returned nothing for {topic}[{partition}]"))?;
    check(
        pd.error_code,
        format!("fetching {topic}[{partition}] at offset {offset}"),
        None,
    )?;
    let aborted: Option<Vec<(i64, i64)>> = read_committed.then(|| {
        pd.aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect()
    });
    let (records, next) = match &pd.records {
        Some(data) => decode_partition(topic, partition, data, offset, aborted.as_deref())?,
        None => (Vec::new(), offset),
    };
    Ok(Fetched {
        records,
        next,
        high_watermark: pd.high_watermark,
        last_stable_offset: pd.last_stable_offset,
        log_start_offset: pd.log_start_offset,
    })
}

/// Produce one record to `topic[partition]` on `leader` (acks=all): its offset.
#[allow(clippy::too_many_arguments)]
pub fn produce_one(
    client: &mut Client,
    leader: i32,
    topic: &str,
    partition: i32,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<RecordHeader>,
) -> Result<i64> {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(timestamp, key, value, headers)?;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(b.build()?)))])]);
    let (resp, _) = client.conn(leader)?.send(&req)?;
    let mut base: BTreeMap<i32, i64> = BTreeMap::new();
    for t in resp.responses {
        for p in t.partition_responses {
            check(
                p.error_code,
                format!("producing to {topic}[{}]", p.index),
                p.error_message.as_ref(),
            )?;
            base.insert(p.index, p.base_offset);
        }
    }
    base.get(&partition)
        .copied()
        .ok_or_else(|| anyhow!("no produce response for {topic}[{partition}]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shard::record::build_txn_marker_batch;

    fn txn_batch(base: i64, pid: i64, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None)
            .base_offset(base)
            .producer(pid, 0, 0)
            .transactional(true);
        for v in values {
            b.append(1, None, Some(Bytes::from(v.to_string())), vec![])
                .unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn key_partition_is_in_range() {
        for k in ["a", "b", "key-1", ""] {
            let p = key_partition(k.as_bytes(), 3);
            assert!((0..3).contains(&p));
        }
    }

    #[test]
    fn read_committed_skips_aborted_transactions_up_to_their_marker() {
        let mut data = Vec::new();
        data.extend(txn_batch(0, 7, &["aborted-1", "aborted-2"]));
        data.extend(txn_batch(2, 8, &["committed"]));
        data.extend(build_txn_marker_batch(
            4,
            1,
            0,
            7,
            0,
            shard::record::EndTxnMarker {
                result: TxnResult::Abort,
                coordinator_epoch: 0,
            },
        ));
        data.extend(txn_batch(5, 7, &["later"]));
        let (all, _) = decode_fetched("t", 0, &data, 0).unwrap();
        let values = |rs: &[Rec]| -> Vec<String> {
            rs.iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(
            values(&all),
            ["aborted-1", "aborted-2", "committed", "later"]
        );
        let (committed, next) = decode_partition("t", 0, &data, 0, Some(&[(7, 0)])).unwrap();
        assert_eq!(values(&committed), ["committed", "later"]);
        assert_eq!(next, 6);
    }
}
