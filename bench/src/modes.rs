//! The produce, consume and e2e runs: setup, worker threads, the stop
//! logic of each mode, and assembling the report.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

use crate::args::{From, RunArgs};
use crate::churn::{churn, ChurnCfg, ChurnReport, ChurnStats};
use crate::cluster::{assign, list_offsets, topic_parts, EARLIEST, LATEST};
use crate::conn::connect_bootstrap;
use crate::consume::{consumer, ConsumeCfg};
use crate::limits::Limits;
use crate::proc_stats::BrokerSampler;
use crate::produce::{producer, ProduceCfg};
use crate::rate::now_ns;
use crate::report::{Config, Point, Report, SideReport};
use crate::run::{join_all, pin, Monitor, RunState, Snapshot};
use crate::txn::coordinator::Coordinator;
use crate::txn::producer::txn_producer;
use crate::txn::{TxnReport, MAX_IN_FLIGHT};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

type Workers = Vec<JoinHandle<Result<()>>>;

fn all_finished(ws: &Workers) -> bool {
    ws.iter().all(|h| h.is_finished())
}

pub fn run(mode: Mode, a: &RunArgs) -> Result<Report> {
    let t0 = now_ns();
    if mode == Mode::E2e && a.message_size < 8 {
        bail!("e2e needs --message-size of at least 8 (the send timestamp lives in the value)");
    }
    if mode == Mode::Consume && a.admin_churn.is_some() {
        bail!("--admin-churn runs beside producers: use it with produce or e2e");
    }
    if a.segment_bytes.is_some() && !a.create_topic {
        bail!("--segment-bytes configures the topic the bench creates: add --create-topic");
    }
    let configs: Vec<(String, String)> = a
        .segment_bytes
        .map(|n| ("segment.bytes".to_string(), n.to_string()))
        .into_iter()
        .collect();
    let tcfg = a.txn()?.map(Arc::new);
    if tcfg.is_some() && mode != Mode::Produce {
        bail!("--transactional-id works with produce only");
    }
    let limits = a.limits_json.as_deref().map(Limits::load).transpose()?;
    let mut boot = connect_bootstrap(&a.bootstrap)?;
    let create = a.create_topic.then_some(&configs[..]);
    let parts = topic_parts(&mut boot, &a.topic, a.partitions, create)?;
    drop(boot);
    let mut notes = Vec::new();
    let passign = assign(&parts, a.connections, true);
    // Transactional producers take their producer ids before the clock
    // starts (a fresh Kafka creates its transaction log then); a broker that
    // refuses ends the run here, with its error.
    let mut coords: Vec<Option<Coordinator>> = Vec::new();
    if let Some(t) = &tcfg {
        for i in 0..passign.len() {
            let id = t.id_of(i, passign.len());
            let c = Coordinator::connect(&a.bootstrap, &id, t.timeout_ms)
                .with_context(|| format!("transactional producer {id}"))?;
            coords.push(Some(c));
        }
    }

    let warmup_end = now_ns() + a.warmup.as_nanos() as u64;
    let st = Arc::new(RunState::new(
        warmup_end,
        if mode == Mode::Consume {
            None
        } else {
            a.messages
        },
        if mode == Mode::Consume {
            a.messages
        } else {
            None
        },
    ));
    let sampler = a.broker_pid.map(BrokerSampler::start).transpose()?;
    let mut thread_no = 0;

    let mut consumers: Workers = Vec::new();
    if mode != Mode::Produce {
        // e2e reads what this run produces, so it starts at the end.
        let from = match (mode, a.from) {
            (Mode::E2e, _) | (_, From::Tail) => LATEST,
            (_, From::Earliest) => EARLIEST,
        };
        let offsets = list_offsets(&a.topic, &parts, from)?;
        let cfg = Arc::new(ConsumeCfg {
            topic: a.topic.clone(),
            fetch_wait_ms: a.fetch_wait_ms,
            e2e: mode == Mode::E2e,
        });
        for (addr, ps) in assign(&parts, a.connections, false) {
            let positions = ps.iter().map(|p| (*p, offsets[p])).collect();
            let (cfg, st, pin_on, n) = (cfg.clone(), st.clone(), a.pin, thread_no);
            thread_no += 1;
            consumers.push(std::thread::spawn(move || {
                pin(pin_on, n);
                consumer(addr, positions, cfg, st)
            }));
        }
    }

    let mut producers: Workers = Vec::new();
    let per_conn = passign.iter().map(|(_, ps)| ps.len()).max().unwrap_or(1);
    let pcfg = Arc::new(ProduceCfg::from_args(
        a,
        passign.len(),
        per_conn,
        mode == Mode::E2e,
    ));
    if mode != Mode::Consume {
        for (i, (addr, ps)) in passign.into_iter().enumerate() {
            let (cfg, st, pin_on, n) = (pcfg.clone(), st.clone(), a.pin, thread_no);
            thread_no += 1;
            let seed = i as u64 + 1;
            let txn = tcfg.clone().zip(coords.get_mut(i).and_then(Option::take));
            producers.push(std::thread::spawn(move || {
                pin(pin_on, n);
                match txn {
                    Some((t, coord)) => txn_producer(addr, ps, cfg, t, coord, st, seed),
                    None => producer(addr, ps, cfg, st, seed),
                }
            }));
        }
    }

    let churn_cfg = a.admin_churn.map(|rate| {
        Arc::new(ChurnCfg {
            bootstrap: a.bootstrap.clone(),
            rate,
            prefix: format!("{}-churn-{}", a.topic, std::process::id()),
            configs: configs.clone(),
        })
    });
    let churn_stats = Arc::new(ChurnStats::default());
    let mut churner: Workers = Vec::new();
    if let Some(cfg) = &churn_cfg {
        let (cfg, st, stats) = (cfg.clone(), st.clone(), churn_stats.clone());
        churner.push(std::thread::spawn(move || churn(&cfg, &st, &stats)));
    }

    let mut mon = Monitor::new(&st, a.progress);
    let stop_at = a
        .messages
        .is_none()
        .then(|| warmup_end + a.duration.as_nanos() as u64);
    let (p_end, c_end) = match mode {
        Mode::Produce => {
            let end = mon.watch(&st, || all_finished(&producers), stop_at, &st.stop_produce);
            (Some(end), None)
        }
        Mode::Consume => {
            let end = mon.watch(&st, || all_finished(&consumers), stop_at, &st.stop_consume);
            (None, Some(end))
        }
        Mode::E2e => {
            let p_end = mon.watch(&st, || all_finished(&producers), stop_at, &st.stop_produce);
            // Everything acknowledged must arrive: the consumers stop once
            // they have that many, or at the drain timeout.
            st.consume_target
                .store(st.produce.msgs.load(Relaxed), Relaxed);
            let drain_end = now_ns() + a.drain_timeout.as_nanos() as u64;
            let c_end = mon.watch(
                &st,
                || all_finished(&consumers),
                Some(drain_end),
                &st.stop_consume,
            );
            if !st.consume_done() {
                notes.push(format!(
                    "consumer did not catch up within the {:?} drain timeout",
                    a.drain_timeout
                ));
            }
            (Some(p_end), Some(c_end))
        }
    };
    st.stop_produce.store(true, Relaxed);
    st.stop_consume.store(true, Relaxed);
    join_all(&st, producers);
    join_all(&st, consumers);
    join_all(&st, churner);

    // Rates are measured from the end of warm-up; a run that ended earlier
    // is measured whole.
    let warmup_excluded = mon.base.is_some();
    let base = mon.base.unwrap_or(Snapshot {
        ns: mon.start_ns,
        ..Default::default()
    });
    let point = |s: &Snapshot, produce: bool| {
        if produce {
            Point {
                ns: s.ns,
                msgs: s.p_msgs,
                bytes: s.p_bytes,
            }
        } else {
            Point {
                ns: s.ns,
                msgs: s.c_msgs,
                bytes: s.c_bytes,
            }
        }
    };
    let rated = a.rate.is_some();
    let produce = p_end.map(|e| {
        let unc = st.produce.hist_uncorrected.snapshot();
        let mut s = SideReport::new(
            point(&base, true),
            point(&e, true),
            &st.produce.hist.snapshot(),
            rated.then_some(&unc),
        );
        if let Some(l) = &limits {
            s.set_limit(l.produce_limit());
        }
        s
    });
    let consume = c_end.map(|e| {
        let mut s = SideReport::new(
            point(&base, false),
            point(&e, false),
            &st.consume.hist.snapshot(),
            None,
        );
        if let Some(l) = &limits {
            s.set_limit(l.loopback_bytes_per_sec);
        }
        s
    });
    let txn = tcfg.as_ref().zip(p_end).map(|(t, e)| {
        TxnReport::new(
            t,
            coords.len(),
            &st.txn,
            e.p_txns.saturating_sub(base.p_txns),
            e.p_msgs.saturating_sub(base.p_msgs),
            produce.as_ref().map_or(0.0, |s| s.measured_seconds),
        )
    });
    if let Some(t) = &tcfg {
        notes.push(format!(
            "transactional ({}): produced counts the records of committed transactions; request latency is per Produce request, commit latency the EndTxn round trip",
            match (t.txn_records, t.interval) {
                (Some(n), Some(i)) => format!("{n} records or {} ms per transaction", i.as_millis()),
                (Some(n), None) => format!("{n} records per transaction"),
                (None, Some(i)) => format!("a commit every {} ms", i.as_millis()),
                (None, None) => unreachable!("checked by RunArgs::txn"),
            }
        ));
        if a.in_flight > MAX_IN_FLIGHT {
            notes.push(format!(
                "transactional producers keep at most {MAX_IN_FLIGHT} requests in flight (Kafka's limit for idempotence), not {}",
                a.in_flight
            ));
        }
    }
    let churn = churn_cfg.as_ref().map(|cfg| {
        let p = produce.as_ref();
        ChurnReport::new(
            cfg,
            &churn_stats,
            p.map_or(0.0, |s| s.measured_seconds),
            p.and_then(|s| s.latency_us.as_ref()),
        )
    });
    if let Some(c) = &churn {
        notes.push(format!(
            "produce latency was measured while a side connection created and deleted a topic {}/s (--admin-churn)",
            c.target_rate
        ));
    }
    if mode != Mode::Consume && a.acks == 0 {
        notes.push("acks=0: the broker sends no responses, so produce latency is not measured and produced counts messages sent".into());
    }
    if rated {
        notes.push("latency is measured from each request's intended send time (coordinated omission corrected); the uncorrected figure is from the actual send".into());
    }
    if !warmup_excluded {
        notes.push("run ended before warm-up did: the whole run is measured".into());
    }
    let batch_bytes = pcfg.batch_records * (a.message_size + 12);
    if mode != Mode::Consume && batch_bytes > 1 << 20 {
        notes.push(format!(
            "batches of ~{batch_bytes} bytes may exceed the broker's message.max.bytes"
        ));
    }
    let payload = match mode {
        Mode::Consume => consume.as_ref().map_or(0, |s| s.bytes),
        _ => produce.as_ref().map_or(0, |s| s.bytes),
    };
    let broker = match sampler {
        Some(s) => Some(s.finish(payload)?),
        None => None,
    };
    let errors = st.errors.lock().unwrap().clone();
    Ok(Report {
        mode: match mode {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        },
        config: Config::new(a, parts.len(), pcfg.batch_records, a.connections),
        elapsed_seconds: (now_ns() - t0) as f64 / 1e9,
        warmup_excluded,
        produced: produce.as_ref().map(|s| s.messages),
        consumed: consume.as_ref().map(|s| s.messages),
        produce,
        consume,
        churn,
        txn,
        failed_messages: st.produce_failed.load(Relaxed),
        unsent_messages: st.produce_unsent.load(Relaxed),
        errors_total: errors.values().sum(),
        errors,
        broker,
        limits,
        notes,
    })
}
