//! Consumer worker: assign-style Fetch (no group) of its partitions from
//! given offsets, one fetch in flight per connection (the next fetch's
//! offsets depend on this one's answer, as in every Kafka client).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};

use shardline_record::{for_each_batch, for_each_record, BatchView};

use crate::conn::{self, decode_body, encode_frame, error_name, sb, Pending};
use crate::histogram::{new_hist, record};
use crate::rate::now_ns;
use crate::run::RunState;

pub struct ConsumeCfg {
    pub topic: String,
    pub fetch_wait_ms: i32,
    /// e2e: values start with the producer's send time; record latency.
    pub e2e: bool,
}

const FETCH_MAX_BYTES: i32 = 64 << 20;
const OFFSET_OUT_OF_RANGE: i16 = 1;

pub fn consumer(
    addr: String,
    mut positions: Vec<(i32, i64)>,
    cfg: Arc<ConsumeCfg>,
    st: Arc<RunState>,
) -> Result<()> {
    let mut conn = conn::connect(&addr)?;
    let version = conn.version(ApiKey::Fetch)?;
    let part_max = (FETCH_MAX_BYTES / positions.len().max(1) as i32).max(1 << 20);
    let topic = TopicName(sb(&cfg.topic));
    let mut frame = BytesMut::new();
    // Per-message latencies go to a local histogram, folded into the shared
    // one every 100 ms, so the hot loop takes no lock.
    let mut local = new_hist();
    let mut last_merge = now_ns();
    while !st.stop_consume.load(Relaxed) && !st.consume_done() {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(cfg.fetch_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1) // full fetch, no incremental session
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(
                    positions
                        .iter()
                        .map(|(p, off)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(*off)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(part_max)
                        })
                        .collect(),
                )]);
        frame.clear();
        encode_frame(&req, version, &mut frame)?;
        conn.send_frame(&mut frame, true, Pending::default())?;
        let (_, body) = conn.recv(None)?.expect("blocking recv");
        let arrived = now_ns();
        let resp: FetchResponse = decode_body(body, version)?;
        if resp.error_code != 0 {
            st.add_error(&error_name(resp.error_code), 1);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let (mut msgs, mut bytes) = (0u64, 0u64);
        for t in &resp.responses {
            for pd in &t.partitions {
                if pd.error_code != 0 {
                    st.add_error(&error_name(pd.error_code), 1);
                    if pd.error_code == OFFSET_OUT_OF_RANGE {
                        bail!("{}[{}]: OFFSET_OUT_OF_RANGE", cfg.topic, pd.partition_index);
                    }
                    continue;
                }
                let Some(pos) = positions.iter_mut().find(|(p, _)| *p == pd.partition_index) else {
                    continue;
                };
                let Some(records) = &pd.records else { continue };
                for_each_batch(records, |b: BatchView| -> Result<()> {
                    if b.last_offset() < pos.1 {
                        return Ok(());
                    }
                    if !b.is_control() {
                        for_each_record(&b, |r| {
                            let off = b.base_offset() + r.offset_delta as i64;
                            let v = r.value.unwrap_or_default();
                            if off < pos.1 {
                                return; // before the fetch offset, already counted
                            }
                            msgs += 1;
                            bytes += v.len() as u64;
                            if cfg.e2e && v.len() >= 8 {
                                let sent = u64::from_le_bytes(v[..8].try_into().unwrap());
                                if sent >= st.warmup_end_ns {
                                    record(&mut local, arrived.saturating_sub(sent));
                                }
                            }
                        })?;
                    }
                    pos.1 = b.last_offset() + 1;
                    Ok(())
                })?;
            }
        }
        st.add_consumed(msgs, bytes);
        if arrived - last_merge > 100_000_000 && !local.is_empty() {
            st.consume.hist.merge(&local);
            local.reset();
            last_merge = arrived;
        }
    }
    st.consume.hist.merge(&local);
    Ok(())
}
