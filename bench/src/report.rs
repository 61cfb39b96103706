//! The final report: one struct with every figure, printed as text or as a
//! single JSON object (`--json`) for scripts.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::RunArgs;
use crate::churn::ChurnReport;
use crate::histogram::LatencySummary;
use crate::limits::Limits;
use crate::proc_stats::BrokerStats;
use crate::run::fmt_us;
use crate::txn::TxnReport;

/// Counters as (messages, payload bytes) at a time (ns).
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    pub ns: u64,
    pub msgs: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SideReport {
    /// Whole run, warm-up included: acknowledged (produce; sent with
    /// acks=0) or consumed messages.
    pub messages: u64,
    pub bytes: u64,
    /// The measured window (after warm-up) the rates are computed over.
    pub measured_messages: u64,
    pub measured_bytes: u64,
    pub measured_seconds: f64,
    pub msgs_per_sec: f64,
    /// 10^6 payload bytes per second.
    pub mb_per_sec: f64,
    /// Produce: request→response (from the intended send time under --rate).
    /// e2e consume: send→arrival at the consumer. Absent when not measured.
    pub latency_us: Option<LatencySummary>,
    /// Produce under --rate: from the actual send (not CO-corrected).
    pub latency_uncorrected_us: Option<LatencySummary>,
    /// Throughput as % of the host limit from --limits-json.
    pub pct_of_limit: Option<f64>,
}

impl SideReport {
    pub fn new(
        base: Point,
        end: Point,
        hist: &Histogram<u64>,
        uncorrected: Option<&Histogram<u64>>,
    ) -> SideReport {
        let secs = end.ns.saturating_sub(base.ns) as f64 / 1e9;
        let m = end.msgs.saturating_sub(base.msgs);
        let b = end.bytes.saturating_sub(base.bytes);
        let per_sec = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
        SideReport {
            messages: end.msgs,
            bytes: end.bytes,
            measured_messages: m,
            measured_bytes: b,
            measured_seconds: secs,
            msgs_per_sec: per_sec(m),
            mb_per_sec: per_sec(b) / 1e6,
            latency_us: LatencySummary::from_hist(hist),
            latency_uncorrected_us: uncorrected.and_then(LatencySummary::from_hist),
            pct_of_limit: None,
        }
    }

    pub fn set_limit(&mut self, limit_bytes_per_sec: f64) {
        if limit_bytes_per_sec > 0.0 {
            self.pct_of_limit = Some(100.0 * self.mb_per_sec * 1e6 / limit_bytes_per_sec);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: usize,
    pub message_size: usize,
    pub batch_records: usize,
    pub connections: usize,
    pub in_flight: usize,
    pub acks: &'static str,
    #[serde(serialize_with = "codec_name")]
    pub compression: shardline_record::Compression,
    pub rate: Option<u64>,
    pub linger_ms: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub messages_limit: Option<u64>,
    /// `--admin-churn`: topic create+delete cycles per second asked for.
    pub admin_churn: Option<f64>,
    pub segment_bytes: Option<usize>,
}

/// The codec as Kafka names it (`compression.type`).
fn codec_name<S: serde::Serializer>(
    c: &shardline_record::Compression,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

impl Config {
    pub fn new(a: &RunArgs, partitions: usize, batch_records: usize, connections: usize) -> Config {
        Config {
            bootstrap: a.bootstrap.clone(),
            topic: a.topic.clone(),
            partitions,
            message_size: a.message_size,
            batch_records,
            connections,
            in_flight: a.in_flight,
            acks: a.acks_name(),
            compression: a.compression,
            rate: a.rate,
            linger_ms: a.linger_ms,
            duration_s: a.duration.as_secs_f64(),
            warmup_s: a.warmup.as_secs_f64(),
            messages_limit: a.messages,
            admin_churn: a.admin_churn,
            segment_bytes: a.segment_bytes,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub config: Config,
    pub elapsed_seconds: f64,
    /// False when the run ended before warm-up did (then the whole run is measured).
    pub warmup_excluded: bool,
    pub produce: Option<SideReport>,
    pub consume: Option<SideReport>,
    /// `--admin-churn`: what the side connection did, and the produce
    /// p99.99 in its window.
    pub churn: Option<ChurnReport>,
    /// `--transactional-id`: transactions committed and aborted, per
    /// second, commit latency. (`produce` then counts committed records.)
    pub txn: Option<TxnReport>,
    /// Same as produce.messages / consume.messages, for scripts.
    pub produced: Option<u64>,
    pub consumed: Option<u64>,
    /// Messages in produce requests answered with an error.
    pub failed_messages: u64,
    /// `--rate`: messages due in the measured window but never sent because
    /// the broker fell behind (counted in the latency percentiles with the
    /// latency they had reached when the run ended, a lower bound).
    pub unsent_messages: u64,
    /// Failed requests/partitions by Kafka error name (CLIENT_ERROR: a
    /// connection of ours failed).
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub broker: Option<BrokerStats>,
    pub limits: Option<Limits>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("report serialises")
            );
        } else {
            print!("{}", self.text());
        }
    }

    pub fn text(&self) -> String {
        let c = &self.config;
        let mut s = format!(
            "{} {}: {} partition(s), {} B messages, {} records/batch, {} conn x {} in flight, acks={}, compression={:?}, rate={}\n",
            self.mode,
            c.topic,
            c.partitions,
            c.message_size,
            c.batch_records,
            c.connections,
            c.in_flight,
            c.acks,
            c.compression,
            c.rate.map_or("unthrottled".to_string(), |r| format!("{r} msg/s")),
        );
        let produced = if self.txn.is_some() {
            "produced (committed)"
        } else {
            "produced"
        };
        for (name, side) in [(produced, &self.produce), ("consumed", &self.consume)] {
            let Some(r) = side else { continue };
            s += &format!(
                "{name}: {} msgs ({:.1} MB); measured {:.2} s: {:.0} msgs/s, {:.1} MB/s",
                r.messages,
                r.bytes as f64 / 1e6,
                r.measured_seconds,
                r.msgs_per_sec,
                r.mb_per_sec
            );
            if let Some(p) = r.pct_of_limit {
                s += &format!(" ({p:.1}% of host limit)");
            }
            s += "\n";
            let what = if name.starts_with("produced") {
                "request latency"
            } else {
                "end-to-end latency"
            };
            if let Some(l) = &r.latency_us {
                s += &format!("  {what}: {}\n", latency_line(l));
            }
            if let Some(l) = &r.latency_uncorrected_us {
                s += &format!(
                    "  {what} (uncorrected, from actual send): {}\n",
                    latency_line(l)
                );
            }
        }
        if let Some(t) = &self.txn {
            s += &txn_text(t);
        }
        if let Some(c) = &self.churn {
            s += &churn_text(c);
        }
        if self.unsent_messages > 0 {
            s += &format!(
                "behind schedule: {} messages due were never sent (in the latency figures as lower bounds)\n",
                self.unsent_messages
            );
        }
        if self.errors.is_empty() {
            s += "errors: none\n";
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s += &format!(
                "errors: {} ({}), {} messages failed\n",
                self.errors_total,
                list.join(", "),
                self.failed_messages
            );
        }
        if let Some(b) = &self.broker {
            s += &format!("broker pid {}: {:.2} CPU-s", b.pid, b.cpu_seconds);
            if let Some(g) = b.cpu_seconds_per_gb {
                s += &format!(", {g:.2} CPU-s per GB of payload");
            }
            if let Some(r) = b.peak_rss_bytes {
                s += &format!(", peak RSS {:.1} MiB", r as f64 / (1 << 20) as f64);
            }
            s += "\n";
        }
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        s
    }
}

fn churn_text(c: &ChurnReport) -> String {
    let mut s = format!(
        "admin churn: {} topic create+delete cycles, {:.1}/s measured (target {}/s); produce p99.99 in the churn window {}\n",
        c.cycles,
        c.cycles_per_sec,
        c.target_rate,
        fmt_us(c.produce_p9999_us)
    );
    for (what, l) in [
        ("CreateTopics", &c.create_latency_us),
        ("DeleteTopics", &c.delete_latency_us),
    ] {
        if let Some(l) = l {
            s += &format!("  {what} latency: {}\n", latency_line(l));
        }
    }
    if !c.errors.is_empty() {
        let list: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        s += &format!("  churn errors: {}\n", list.join("; "));
    }
    s
}

fn txn_text(t: &TxnReport) -> String {
    let mut s = format!(
        "transactions: {} committed, {} aborted ({} records); measured {} at {:.1} txn/s, {:.0} records/txn ({} producer(s), id {})\n",
        t.committed_transactions,
        t.aborted_transactions,
        t.aborted_records,
        t.measured_transactions,
        t.transactions_per_sec,
        t.records_per_transaction,
        t.producers,
        t.transactional_id,
    );
    for (what, l) in [
        ("commit (EndTxn) latency", &t.commit_latency_us),
        (
            "begin (AddPartitionsToTxn, retries included) latency",
            &t.begin_latency_us,
        ),
        (
            "transaction latency (begin to commit answered)",
            &t.transaction_latency_us,
        ),
    ] {
        if let Some(l) = l {
            s += &format!("  {what}: {}\n", latency_line(l));
        }
    }
    if t.coordinator_retries > 0 || t.new_epochs > 0 {
        s += &format!(
            "  coordinator retries (CONCURRENT_TRANSACTIONS and the like): {}; new producer epochs after aborts: {}\n",
            t.coordinator_retries, t.new_epochs
        );
    }
    s
}

fn latency_line(l: &LatencySummary) -> String {
    format!(
        "p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {} (n={})",
        fmt_us(Some(l.p50_us)),
        fmt_us(Some(l.p90_us)),
        fmt_us(Some(l.p99_us)),
        fmt_us(Some(l.p999_us)),
        fmt_us(Some(l.p9999_us)),
        fmt_us(Some(l.max_us)),
        l.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use crate::histogram::{new_hist, record};
    use clap::Parser;

    fn report() -> Report {
        let Command::Produce(a) = Cli::parse_from(["b", "produce", "--rate", "1000"]).cmd else {
            unreachable!()
        };
        let mut h = new_hist();
        for us in 1..=1000u64 {
            record(&mut h, us * 1000);
        }
        let base = Point {
            ns: 2_000_000_000,
            msgs: 500,
            bytes: 50_000,
        };
        let end = Point {
            ns: 12_000_000_000,
            msgs: 10_500,
            bytes: 1_050_000,
        };
        let mut side = SideReport::new(base, end, &h, Some(&new_hist()));
        side.set_limit(1e6);
        let mut errors = BTreeMap::new();
        errors.insert("NOT_LEADER_OR_FOLLOWER".to_string(), 2);
        Report {
            mode: "produce",
            config: Config::new(&a, 3, 100, 1),
            elapsed_seconds: 12.0,
            warmup_excluded: true,
            produced: Some(side.messages),
            produce: Some(side),
            consume: None,
            churn: None,
            txn: None,
            consumed: None,
            failed_messages: 200,
            unsent_messages: 0,
            errors_total: 2,
            errors,
            broker: None,
            limits: None,
            notes: vec![],
        }
    }

    #[test]
    fn json_has_every_field_with_known_values() {
        let v: serde_json::Value = serde_json::to_value(report()).unwrap();
        let p = &v["produce"];
        assert_eq!(p["messages"], 10_500);
        assert_eq!(p["measured_messages"], 10_000);
        assert_eq!(p["measured_seconds"], 10.0);
        assert_eq!(p["msgs_per_sec"], 1000.0);
        assert_eq!(p["mb_per_sec"], 0.1);
        assert_eq!(p["pct_of_limit"], 10.0);
        let l = &p["latency_us"];
        for k in [
            "count", "min_us", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us",
            "max_us",
        ] {
            assert!(l.get(k).is_some(), "missing latency field {k}");
        }
        assert_eq!(l["count"], 1000);
        assert!((l["p50_us"].as_f64().unwrap() - 500.0).abs() < 1.0);
        assert!((l["p99_us"].as_f64().unwrap() - 990.0).abs() < 1.0);
        assert!((l["max_us"].as_f64().unwrap() - 1000.0).abs() < 1.0);
        // Empty uncorrected histogram: reported as not measured.
        assert!(p["latency_uncorrected_us"].is_null());
        assert_eq!(v["produced"], 10_500);
        assert!(v["consume"].is_null());
        assert_eq!(v["errors"]["NOT_LEADER_OR_FOLLOWER"], 2);
        assert_eq!(v["errors_total"], 2);
        assert_eq!(v["failed_messages"], 200);
        assert_eq!(v["config"]["acks"], "1");
        assert_eq!(v["config"]["rate"], 1000);
        assert_eq!(v["config"]["compression"], "none");
        for k in [
            "mode",
            "elapsed_seconds",
            "warmup_excluded",
            "broker",
            "limits",
            "notes",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }

    #[test]
    fn text_report_names_errors_and_percentiles() {
        let t = report().text();
        assert!(t.contains("NOT_LEADER_OR_FOLLOWER=2"), "{t}");
        assert!(t.contains("p99.99"), "{t}");
        assert!(t.contains("1000 msgs/s"), "{t}");
    }

    #[test]
    fn transactions_are_reported_in_text_and_json() {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = crate::txn::TxnStats::default();
        stats.committed.store(120, Relaxed);
        stats.aborted.store(1, Relaxed);
        stats.aborted_records.store(50, Relaxed);
        for ms in 1..=100u64 {
            stats.commit.record(ms * 1_000_000);
        }
        stats.begin.record(3_000_000);
        let cfg = crate::txn::TxnCfg {
            transactional_id: "tx".into(),
            txn_records: Some(1000),
            interval: None,
            timeout_ms: 60_000,
        };
        let mut r = report();
        r.txn = Some(TxnReport::new(&cfg, 1, &stats, 100, 100_000, 10.0));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let t = &v["txn"];
        assert_eq!(t["committed_transactions"], 120);
        assert_eq!(t["aborted_transactions"], 1);
        assert_eq!(t["measured_transactions"], 100);
        assert_eq!(t["transactions_per_sec"], 10.0);
        assert_eq!(t["records_per_transaction"], 1000.0);
        assert_eq!(t["txn_records"], 1000);
        assert!(t["txn_interval_ms"].is_null());
        assert_eq!(t["commit_latency_us"]["count"], 100);
        assert!((t["commit_latency_us"]["p50_us"].as_f64().unwrap() - 50_000.0).abs() < 100.0);
        assert!((t["commit_latency_us"]["p99_us"].as_f64().unwrap() - 99_000.0).abs() < 100.0);
        assert!(t["commit_latency_us"].get("p999_us").is_some());
        assert_eq!(t["begin_latency_us"]["count"], 1);
        assert!(t["transaction_latency_us"].is_null());
        let text = r.text();
        assert!(text.contains("produced (committed): 10500 msgs"), "{text}");
        assert!(
            text.contains("transactions: 120 committed, 1 aborted (50 records); measured 100 at 10.0 txn/s, 1000 records/txn"),
            "{text}"
        );
        assert!(text.contains("commit (EndTxn) latency: p50 50"), "{text}");
    }

    #[test]
    fn churn_is_reported_with_the_produce_tail() {
        let mut r = report();
        let stats = crate::churn::ChurnStats::default();
        stats.cycles.store(25, std::sync::atomic::Ordering::Relaxed);
        stats
            .measured_cycles
            .store(20, std::sync::atomic::Ordering::Relaxed);
        stats.create.record(3_000_000);
        stats.delete.record(2_000_000);
        let cfg = crate::churn::ChurnCfg {
            bootstrap: String::new(),
            rate: 2.0,
            prefix: "t".into(),
            configs: vec![],
        };
        let p = r.produce.as_ref().unwrap();
        r.churn = Some(ChurnReport::new(
            &cfg,
            &stats,
            p.measured_seconds,
            p.latency_us.as_ref(),
        ));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let c = &v["churn"];
        assert_eq!(c["cycles"], 25);
        assert_eq!(c["cycles_per_sec"], 2.0);
        assert_eq!(c["target_rate"], 2.0);
        assert_eq!(
            c["produce_p9999_us"],
            v["produce"]["latency_us"]["p9999_us"]
        );
        assert_eq!(c["create_latency_us"]["count"], 1);
        let t = r.text();
        assert!(
            t.contains("admin churn: 25 topic create+delete cycles, 2.0/s"),
            "{t}"
        );
        assert!(t.contains("produce p99.99 in the churn window"), "{t}");
        assert!(t.contains("CreateTopics latency: p50"), "{t}");
    }
}
