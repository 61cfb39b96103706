//! `soak`: a broker kept for hours the way production keeps it — many
//! long-lived connections that only refresh metadata now and then, and a
//! trickle of acks=all traffic that is consumed and checked record by
//! record — while the broker process is sampled from /proc. The verdict
//! (in `soak_report`) fails when the broker stopped answering, lost or
//! duplicated an acknowledged record, dropped a connection it should have
//! kept, or grew in memory, CPU or descriptors.
//!
//! This is what would have caught the executor's waker leak that stopped
//! every broker 27 minutes after start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProduceResponse, TopicName,
};

use crate::args::SoakArgs;
use shardline_record::{for_each_batch, for_each_record, BatchView, Compression};

use crate::cluster::{list_offsets, metadata, topic_parts, LATEST};
use crate::conn::{
    self, connect_bootstrap, decode_body, encode_frame, error_name, sb, Conn, Pending,
};
use crate::histogram::SharedHist;
use crate::payload;
use crate::proc_stats::cpu_seconds;
use crate::produce::{build_frame, ProduceCfg};
use crate::rate::now_ns;
use crate::soak_report::{ProcSample, Sample, SoakReport};

/// Counters the workers share with the sampler.
#[derive(Default)]
pub struct Shared {
    stop: AtomicBool,
    stop_consume: AtomicBool,
    pub produced: AtomicU64,
    pub produce_errors: AtomicU64,
    pub consumed: AtomicU64,
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    pub idle_open: AtomicU64,
    /// Idle connections the broker closed (or that failed a request).
    pub idle_lost: AtomicU64,
    pub idle_requests: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Sequence numbers acknowledged, and those consumed.
    acked: Mutex<Vec<bool>>,
    seen: Mutex<Vec<bool>>,
    /// Latencies of the current sample window (swapped out by the sampler).
    pub produce_window: SharedHist,
    pub e2e_window: SharedHist,
}

impl Shared {
    fn error(&self, what: String) {
        *self.last_error.lock().unwrap() = Some(what);
    }

    fn mark(list: &Mutex<Vec<bool>>, seq: u64) -> bool {
        let mut v = list.lock().unwrap();
        let i = seq as usize;
        if v.len() <= i {
            v.resize(i + 1, false);
        }
        std::mem::replace(&mut v[i], true)
    }

    /// Acknowledged sequence numbers never consumed.
    pub fn lost(&self) -> u64 {
        let acked = self.acked.lock().unwrap();
        let seen = self.seen.lock().unwrap();
        acked
            .iter()
            .enumerate()
            .filter(|(i, a)| **a && !seen.get(*i).copied().unwrap_or(false))
            .count() as u64
    }
}

/// A trickle value: send time (ns) and sequence number, then filler.
fn value_prefix(ts_ns: u64, seq: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&ts_ns.to_le_bytes());
    p[8..].copy_from_slice(&seq.to_le_bytes());
    p
}

fn parse_prefix(v: &[u8]) -> Option<(u64, u64)> {
    let ts = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some((ts, seq))
}

pub fn run(a: &SoakArgs) -> Result<()> {
    if a.message_size < 16 {
        bail!("--message-size must be at least 16 (time and sequence number)");
    }
    if a.rate == 0 {
        bail!("--rate must be at least 1");
    }
    let mut boot = connect_bootstrap(&a.bootstrap)?;
    let parts = topic_parts(&mut boot, &a.topic, Some(1), Some(&[]))?;
    drop(boot);
    let leader = parts[0].leader.clone();
    let start_offset = *list_offsets(&a.topic, &parts, LATEST)?
        .get(&0)
        .context("no offset for partition 0")?;
    let shared = Arc::new(Shared::default());
    let mut workers = Vec::new();
    let producer_thread = {
        let (s, addr, a) = (shared.clone(), leader.clone(), a.clone());
        std::thread::spawn(move || producer(&s, &addr, &a))
    };
    {
        let (s, addr, a) = (shared.clone(), leader.clone(), a.clone());
        workers.push(std::thread::spawn(move || {
            consumer(&s, &addr, &a, start_offset)
        }));
    }
    {
        let (s, a) = (shared.clone(), a.clone());
        workers.push(std::thread::spawn(move || idle_pool(&s, &a)));
    }
    let started = Instant::now();
    let mut report = SoakReport::new(a);
    let mut last_cpu = a.broker_pid.map(cpu_seconds).transpose()?;
    let mut last_at = Instant::now();
    let mut probe_conn = Some(conn::connect(&a.bootstrap)?);
    let mut last_connect_probe = Instant::now();
    while started.elapsed() < a.duration {
        let left = a.duration.saturating_sub(started.elapsed());
        std::thread::sleep(a.sample_every.min(left));
        let now = Instant::now();
        let probe = probe_on(&mut probe_conn, &a.bootstrap, &a.topic, a.probe_timeout);
        let last = started.elapsed() >= a.duration;
        let connect = (last || now - last_connect_probe >= a.connect_probe_every).then(|| {
            last_connect_probe = now;
            probe_new(&a.bootstrap, &a.topic, a.probe_timeout)
        });
        let proc = a.broker_pid.map(|pid| {
            let cpu = cpu_seconds(pid).ok();
            let pct = match (cpu, last_cpu) {
                (Some(c), Some(l)) => Some(100.0 * (c - l) / (now - last_at).as_secs_f64()),
                _ => None,
            };
            last_cpu = cpu.or(last_cpu);
            ProcSample::read(pid, pct)
        });
        last_at = now;
        let sample = Sample::new(
            started.elapsed(),
            &shared,
            probe,
            connect,
            proc,
            &shared.produce_window.take(),
            &shared.e2e_window.take(),
        );
        eprintln!("{}", sample.line());
        report.samples.push(sample);
    }
    shared.stop.store(true, Relaxed);
    // The producer's last request may still be in flight: wait for its
    // answer before judging what the consumer missed, or a record
    // acknowledged after the consumer stopped would count as lost.
    join_worker(&shared, producer_thread);
    // Let the consumer catch up with the last acknowledged records.
    let drain = Instant::now();
    while shared.lost() > 0 && drain.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    shared.stop_consume.store(true, Relaxed);
    for w in workers {
        join_worker(&shared, w);
    }
    report.finish(&shared);
    report.print(a.json);
    if let Some(path) = &a.report {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.verdict.passed {
        bail!("soak failed: {}", report.verdict.failures.join("; "));
    }
    Ok(())
}

fn join_worker(shared: &Shared, w: std::thread::JoinHandle<Result<()>>) {
    match w.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.error(format!("worker failed: {e:#}")),
        Err(_) => shared.error("worker panicked".into()),
    }
}

/// Metadata on the long-lived probe connection; how long it took. A
/// failed probe drops the connection, and the next one reconnects.
fn probe_on(
    conn: &mut Option<Conn>,
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let c = match conn {
        Some(c) => c,
        None => conn.insert(conn::connect(bootstrap).map_err(|e| format!("connecting: {e:#}"))?),
    };
    c.set_timeout(timeout).map_err(|e| format!("{e:#}"))?;
    let outcome = match metadata(c, topic) {
        Ok(Ok(_)) => Ok(t0.elapsed()),
        Ok(Err(code)) => Err(format!("Metadata: {}", error_name(code))),
        Err(e) => Err(format!("{e:#}")),
    };
    if outcome.is_err() {
        *conn = None;
    }
    outcome
}

/// A new connection: ApiVersions and Metadata; how long they took.
fn probe_new(bootstrap: &str, topic: &str, timeout: Duration) -> Result<Duration, String> {
    probe_on(&mut None, bootstrap, topic, timeout).map_err(|e| format!("new connection: {e}"))
}

/// One acks=all record every 1/rate s, each with the next sequence number.
fn producer(s: &Shared, addr: &str, a: &SoakArgs) -> Result<()> {
    let cfg = ProduceCfg {
        topic: a.topic.clone(),
        acks: -1,
        timeout_ms: 30_000,
        in_flight: 1,
        batch_records: 1,
        message_size: a.message_size,
        codec: Compression::None,
        rate_per_conn: Some(a.rate as f64),
        stamp: true,
        transactional_id: None,
    };
    let mut conn = conn::connect(addr)?;
    let mut template = payload::template(1, a.message_size, Compression::None, 7)?;
    let mut frame = BytesMut::new();
    let period = Duration::from_secs_f64(1.0 / a.rate as f64);
    let mut next = Instant::now();
    let mut seq = 0u64;
    while !s.stop.load(Relaxed) {
        let sent = now_ns();
        template.restamp(&value_prefix(sent, seq), payload::now_ms())?;
        let version = conn.version(ApiKey::Produce)?;
        build_frame(
            &cfg,
            version,
            vec![(0, Bytes::copy_from_slice(template.bytes()))],
            &mut frame,
        )?;
        let outcome = conn
            .send_frame(&mut frame, true, Pending::default())
            .and_then(|_| conn.recv(None))
            .and_then(|r| {
                let (_, body) = r.expect("blocking recv");
                decode_body::<ProduceResponse>(body, version)
            });
        match outcome {
            Ok(resp) => {
                let code = resp
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .map_or(-1, |p| p.error_code);
                if code == 0 {
                    Shared::mark(&s.acked, seq);
                    s.produced.fetch_add(1, Relaxed);
                    s.produce_window.record(now_ns() - sent);
                } else {
                    s.produce_errors.fetch_add(1, Relaxed);
                    s.error(format!("produce #{seq}: {}", error_name(code)));
                }
            }
            Err(e) => {
                s.produce_errors.fetch_add(1, Relaxed);
                s.error(format!("produce #{seq}: {e:#}"));
                std::thread::sleep(Duration::from_secs(1));
                conn = match conn::connect(addr) {
                    Ok(c) => c,
                    Err(_) => continue,
                };
            }
        }
        seq += 1;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // fell behind (a slow request): do not burst
        }
    }
    Ok(())
}

/// Tail the partition from where the soak started; check each sequence
/// number arrives once, in order, and time it from its send.
fn consumer(s: &Shared, addr: &str, a: &SoakArgs, mut offset: i64) -> Result<()> {
    let mut conn = conn::connect(addr)?;
    let version = conn.version(ApiKey::Fetch)?;
    let topic = TopicName(sb(&a.topic));
    let mut frame = BytesMut::new();
    let mut last_seq: Option<u64> = None;
    while !s.stop_consume.load(Relaxed) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        frame.clear();
        encode_frame(&req, version, &mut frame)?;
        let reply = conn
            .send_frame(&mut frame, true, Pending::default())
            .and_then(|_| conn.recv(None));
        let body = match reply {
            Ok(r) => r.expect("blocking recv").1,
            Err(e) => {
                s.error(format!("fetch at {offset}: {e:#}"));
                std::thread::sleep(Duration::from_secs(1));
                if let Ok(c) = conn::connect(addr) {
                    conn = c;
                }
                continue;
            }
        };
        let arrived = now_ns();
        let resp: FetchResponse = decode_body(body, version)?;
        for pd in resp.responses.iter().flat_map(|t| &t.partitions) {
            if pd.error_code != 0 {
                s.error(format!("fetch at {offset}: {}", error_name(pd.error_code)));
                continue;
            }
            let Some(records) = &pd.records else { continue };
            for_each_batch(records, |b: BatchView| -> Result<()> {
                if b.last_offset() < offset {
                    return Ok(());
                }
                for_each_record(&b, |r| {
                    let off = b.base_offset() + r.offset_delta as i64;
                    let v = r.value.unwrap_or_default();
                    if off < offset {
                        return;
                    }
                    let Some((ts, seq)) = parse_prefix(v) else {
                        return;
                    };
                    if Shared::mark(&s.seen, seq) {
                        s.duplicates.fetch_add(1, Relaxed);
                    }
                    if last_seq.is_some_and(|l| seq <= l) {
                        s.out_of_order.fetch_add(1, Relaxed);
                    }
                    last_seq = Some(seq);
                    s.consumed.fetch_add(1, Relaxed);
                    s.e2e_window.record(arrived.saturating_sub(ts));
                })?;
                offset = b.last_offset() + 1;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Long-lived connections that each send Metadata every `idle_refresh`
/// (spread out evenly), as idle Kafka clients do.
fn idle_pool(s: &Shared, a: &SoakArgs) -> Result<()> {
    let mut conns = Vec::with_capacity(a.idle_connections);
    for _ in 0..a.idle_connections {
        let mut c = conn::connect(&a.bootstrap)?;
        metadata(&mut c, &a.topic)?.map_err(|code| anyhow::anyhow!(error_name(code)))?;
        conns.push(c);
        s.idle_open.fetch_add(1, Relaxed);
    }
    if conns.is_empty() {
        return Ok(());
    }
    let gap = a.idle_refresh / conns.len() as u32;
    let mut i = 0;
    let mut next = Instant::now() + gap;
    while !s.stop.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(200)));
            continue;
        }
        next += gap;
        let n = conns.len();
        let c = &mut conns[i];
        i = (i + 1) % n;
        s.idle_requests.fetch_add(1, Relaxed);
        if let Err(e) = metadata(c, &a.topic) {
            s.idle_lost.fetch_add(1, Relaxed);
            s.error(format!("idle connection: {e:#}"));
            if let Ok(fresh) = conn::connect(&a.bootstrap) {
                *c = fresh;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_time_and_sequence() {
        let p = value_prefix(123, 456);
        let mut v = p.to_vec();
        v.extend_from_slice(b"filler");
        assert_eq!(parse_prefix(&v), Some((123, 456)));
        assert_eq!(parse_prefix(&v[..10]), None);
    }

    #[test]
    fn lost_counts_acknowledged_but_unseen() {
        let s = Shared::default();
        for seq in [0, 1, 2, 5] {
            Shared::mark(&s.acked, seq);
        }
        for seq in [0, 2, 3] {
            assert!(!Shared::mark(&s.seen, seq));
        }
        assert!(Shared::mark(&s.seen, 2), "second sighting is a duplicate");
        assert_eq!(s.lost(), 2, "1 and 5 were acknowledged and never seen");
    }
}
