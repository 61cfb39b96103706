//! Producer worker: one connection, `in_flight` pipelined Produce requests,
//! each carrying one pre-encoded batch per partition of the connection.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};

use shardline_record::{BatchTemplate, Compression};

use crate::args::RunArgs;
use crate::conn::{self, decode_body, encode_frame, error_name, sb, Pending};
use crate::payload;
use crate::rate::{latencies, now_ns, Schedule};
use crate::run::RunState;

#[derive(Clone)]
pub struct ProduceCfg {
    pub topic: String,
    pub acks: i16,
    pub timeout_ms: i32,
    pub in_flight: usize,
    pub batch_records: usize,
    pub message_size: usize,
    pub codec: Compression,
    /// Messages per second for this connection (open loop), or unthrottled.
    pub rate_per_conn: Option<f64>,
    /// e2e: write the send time into each value (costs a re-encode).
    pub stamp: bool,
    /// The transactional id Produce requests carry (transactional producers).
    pub transactional_id: Option<String>,
}

impl ProduceCfg {
    pub fn from_args(a: &RunArgs, conns: usize, parts_per_conn: usize, stamp: bool) -> ProduceCfg {
        let rate_per_conn = a.rate.map(|r| r as f64 / conns.max(1) as f64);
        let mut batch_records = a.batch_records();
        if let Some(r) = rate_per_conn {
            batch_records = crate::rate::records_per_batch(
                r / parts_per_conn.max(1) as f64,
                a.linger_ms,
                batch_records,
            );
        }
        ProduceCfg {
            topic: a.topic.clone(),
            acks: a.acks,
            timeout_ms: a.timeout_ms,
            in_flight: a.in_flight.max(1),
            batch_records,
            message_size: a.message_size,
            codec: a.compression,
            rate_per_conn,
            stamp,
            transactional_id: None,
        }
    }
}

pub fn build_frame(
    cfg: &ProduceCfg,
    version: i16,
    batches: Vec<(i32, Bytes)>,
    out: &mut BytesMut,
) -> Result<()> {
    let req = ProduceRequest::default()
        .with_transactional_id(
            cfg.transactional_id
                .as_deref()
                .map(|id| TransactionalId(sb(id))),
        )
        .with_acks(cfg.acks)
        .with_timeout_ms(cfg.timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(&cfg.topic)))
            .with_partition_data(
                batches
                    .into_iter()
                    .map(|(p, b)| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(b))
                    })
                    .collect(),
            )]);
    out.clear();
    encode_frame(&req, version, out)
}

/// Split the last, short request's `n` messages over the partitions.
fn split_counts(parts: &[i32], per_batch: usize, mut n: usize) -> Vec<(i32, u32)> {
    let mut out = Vec::new();
    for p in parts {
        if n == 0 {
            break;
        }
        let k = n.min(per_batch);
        out.push((*p, k as u32));
        n -= k;
    }
    out
}

pub fn producer(
    addr: String,
    parts: Vec<i32>,
    cfg: Arc<ProduceCfg>,
    st: Arc<RunState>,
    seed: u64,
) -> Result<()> {
    let mut conn = conn::connect(&addr)?;
    let version = conn.version(ApiKey::Produce)?;
    let per_batch = cfg.batch_records;
    let per_req = (per_batch * parts.len()) as u64;
    let mut templates = parts
        .iter()
        .enumerate()
        .map(|(i, _)| {
            payload::template(
                per_batch,
                cfg.message_size,
                cfg.codec,
                seed * 1000 + i as u64,
            )
        })
        .collect::<Result<Vec<BatchTemplate>>>()?;
    let full_counts: Vec<(i32, u32)> = parts.iter().map(|p| (*p, per_batch as u32)).collect();
    // The request re-sent unchanged (only the correlation id differs).
    let mut full = BytesMut::new();
    let batches = parts
        .iter()
        .zip(&templates)
        .map(|(p, t)| (*p, Bytes::copy_from_slice(t.bytes())));
    build_frame(&cfg, version, batches.collect(), &mut full)?;
    let mut scratch = BytesMut::new();
    let expect = cfg.acks != 0;
    let sched = cfg
        .rate_per_conn
        .map(|r| Schedule::new(now_ns(), r, per_req));
    let mut i = 0u64;
    let mut finished = false;
    loop {
        while !finished && (!expect || conn.in_flight() < cfg.in_flight) {
            if st.stop_produce.load(Relaxed) {
                finished = true;
                if let Some(s) = sched {
                    record_unsent(&s, i, per_req, &st);
                }
                break;
            }
            let now = now_ns();
            let intended = match sched {
                Some(s) if s.intended(i) > now => break,
                Some(s) => s.intended(i),
                None => now,
            };
            let n = match st.produce_budget {
                Some(max) => {
                    let c = st.claimed.fetch_add(per_req, Relaxed);
                    if c >= max {
                        finished = true;
                        break;
                    }
                    (max - c).min(per_req)
                }
                None => per_req,
            };
            let counts = if n < per_req {
                // The tail of a --messages run: smaller batches, built once.
                let counts = split_counts(&parts, per_batch, n as usize);
                let mut batches = Vec::new();
                for (j, (p, k)) in counts.iter().enumerate() {
                    let mut t = payload::template(
                        *k as usize,
                        cfg.message_size,
                        cfg.codec,
                        seed + j as u64,
                    )?;
                    if cfg.stamp {
                        payload::stamp(&mut t, intended)?;
                    }
                    batches.push((*p, Bytes::copy_from_slice(t.bytes())));
                }
                build_frame(&cfg, version, batches, &mut scratch)?;
                counts
            } else if cfg.stamp {
                let mut batches = Vec::with_capacity(parts.len());
                for (p, t) in parts.iter().zip(templates.iter_mut()) {
                    // Stamped with the intended time so e2e latency is
                    // CO-corrected too.
                    payload::stamp(t, intended)?;
                    batches.push((*p, Bytes::copy_from_slice(t.bytes())));
                }
                build_frame(&cfg, version, batches, &mut scratch)?;
                full_counts.clone()
            } else {
                full_counts.clone()
            };
            let frame = if n < per_req || cfg.stamp {
                &mut scratch
            } else {
                &mut full
            };
            let p = Pending {
                intended_ns: intended,
                sent_ns: now_ns(),
                counts,
            };
            conn.send_frame(frame, expect, p)?;
            if !expect {
                // acks=0: nothing comes back; "sent" is all we can count.
                st.produce.add(n, n * cfg.message_size as u64);
            }
            i += 1;
        }
        if conn.in_flight() == 0 {
            if finished {
                return Ok(());
            }
            if let Some(s) = sched {
                let wait = s.intended(i).saturating_sub(now_ns()).min(50_000_000);
                std::thread::sleep(Duration::from_nanos(wait));
            }
            continue;
        }
        // Wait for a response; under --rate only until the next request is
        // due, unless the in-flight window is full anyway.
        let timeout = match sched {
            Some(s) if !finished && conn.in_flight() < cfg.in_flight => {
                Some(Duration::from_nanos(s.intended(i).saturating_sub(now_ns())))
            }
            _ => None,
        };
        if let Some((p, body)) = conn.recv(timeout)? {
            let done = now_ns();
            let resp: ProduceResponse = decode_body(body, version)?;
            let (mut ok, mut failed) = (0u64, 0u64);
            for t in &resp.responses {
                for pr in &t.partition_responses {
                    let n = p
                        .counts
                        .iter()
                        .find(|(q, _)| *q == pr.index)
                        .map_or(0, |c| c.1 as u64);
                    if pr.error_code == 0 {
                        ok += n;
                    } else {
                        failed += n;
                        st.add_error(&error_name(pr.error_code), 1);
                    }
                }
            }
            st.produce.add(ok, ok * cfg.message_size as u64);
            st.produce_failed.fetch_add(failed, Relaxed);
            if p.intended_ns >= st.warmup_end_ns {
                let (corrected, uncorrected) = latencies(p.intended_ns, p.sent_ns, done);
                st.produce.hist.record(corrected);
                if sched.is_some() {
                    st.produce.hist_uncorrected.record(uncorrected);
                }
            }
        }
    }
}

/// Under `--rate`, the requests that were due by the end of the run but
/// never sent because the broker's answers fell behind the schedule. Each
/// is recorded with the latency it has at least (the end of the run minus
/// its intended send time): dropping them would hide exactly the tail an
/// open-loop run exists to show, and leave no latency at all when every
/// measured request is still waiting.
fn record_unsent(sched: &Schedule, first: u64, per_req: u64, st: &RunState) {
    let end = now_ns();
    let mut j = first;
    while sched.intended(j) <= end {
        let intended = sched.intended(j);
        if intended >= st.warmup_end_ns {
            st.produce.hist.record(end - intended);
            st.produce_unsent.fetch_add(per_req, Relaxed);
        }
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_request_splits_over_partitions() {
        assert_eq!(
            split_counts(&[0, 1, 2], 10, 25),
            vec![(0, 10), (1, 10), (2, 5)]
        );
        assert_eq!(split_counts(&[0, 1], 10, 3), vec![(0, 3)]);
    }
}
