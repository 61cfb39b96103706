//! Transactional produce (`produce --transactional-id ID`): each connection
//! is one transactional producer in Kafka's transaction protocol version 1,
//! writing transactions of `--txn-records` records and/or of
//! `--txn-interval-ms`, and the figures that go with it: committed records,
//! transactions per second, commit (EndTxn) latency.

pub mod batch;
pub mod coordinator;
pub mod producer;
pub mod state;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::histogram::{LatencySummary, SharedHist};

/// Kafka's limit for idempotent producers (max.in.flight.requests.per.connection):
/// the broker remembers the last 5 batches per producer and partition.
pub const MAX_IN_FLIGHT: usize = 5;

/// The transactional settings of a run.
#[derive(Debug, Clone)]
pub struct TxnCfg {
    pub transactional_id: String,
    pub txn_records: Option<u64>,
    pub interval: Option<Duration>,
    pub timeout_ms: i32,
}

impl TxnCfg {
    /// The transactional id of producer `i` of `n`: the id itself when
    /// there is one producer, `ID-i` when there are several.
    pub fn id_of(&self, i: usize, n: usize) -> String {
        if n <= 1 {
            self.transactional_id.clone()
        } else {
            format!("{}-{i}", self.transactional_id)
        }
    }
}

/// Shared counters of the transactional producers.
#[derive(Default)]
pub struct TxnStats {
    pub committed: AtomicU64,
    pub aborted: AtomicU64,
    /// Records acknowledged in transactions that were then aborted.
    pub aborted_records: AtomicU64,
    /// EndTxn(commit) round trip.
    pub commit: SharedHist,
    /// AddPartitionsToTxn, CONCURRENT_TRANSACTIONS retries included: how
    /// long the next transaction waits for the previous one's markers.
    pub begin: SharedHist,
    /// A whole transaction: AddPartitionsToTxn sent → EndTxn answered.
    pub whole: SharedHist,
    /// Coordinator requests answered with a retriable error and re-sent.
    pub coordinator_retries: AtomicU64,
    /// Producer epochs taken after the first (InitProducerId after an abort).
    pub new_epochs: AtomicU64,
}

/// The transactional part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct TxnReport {
    pub transactional_id: String,
    pub producers: usize,
    pub txn_records: Option<u64>,
    pub txn_interval_ms: Option<u64>,
    pub transaction_timeout_ms: i32,
    /// Whole run, warm-up included.
    pub committed_transactions: u64,
    pub aborted_transactions: u64,
    pub aborted_records: u64,
    /// Transactions committed in the measured window, and per second.
    pub measured_transactions: u64,
    pub transactions_per_sec: f64,
    /// Records per committed transaction (measured window).
    pub records_per_transaction: f64,
    /// EndTxn(commit) round trip.
    pub commit_latency_us: Option<LatencySummary>,
    /// AddPartitionsToTxn including CONCURRENT_TRANSACTIONS retries.
    pub begin_latency_us: Option<LatencySummary>,
    /// AddPartitionsToTxn sent → EndTxn answered.
    pub transaction_latency_us: Option<LatencySummary>,
    pub coordinator_retries: u64,
    pub new_epochs: u64,
}

impl TxnReport {
    /// `txns` committed and `records` in them over `seconds` of the
    /// measured window.
    pub fn new(
        cfg: &TxnCfg,
        producers: usize,
        stats: &TxnStats,
        txns: u64,
        records: u64,
        seconds: f64,
    ) -> TxnReport {
        TxnReport {
            transactional_id: cfg.transactional_id.clone(),
            producers,
            txn_records: cfg.txn_records,
            txn_interval_ms: cfg.interval.map(|d| d.as_millis() as u64),
            transaction_timeout_ms: cfg.timeout_ms,
            committed_transactions: stats.committed.load(Relaxed),
            aborted_transactions: stats.aborted.load(Relaxed),
            aborted_records: stats.aborted_records.load(Relaxed),
            measured_transactions: txns,
            transactions_per_sec: if seconds > 0.0 {
                txns as f64 / seconds
            } else {
                0.0
            },
            records_per_transaction: if txns > 0 {
                records as f64 / txns as f64
            } else {
                0.0
            },
            commit_latency_us: LatencySummary::from_hist(&stats.commit.snapshot()),
            begin_latency_us: LatencySummary::from_hist(&stats.begin.snapshot()),
            transaction_latency_us: LatencySummary::from_hist(&stats.whole.snapshot()),
            coordinator_retries: stats.coordinator_retries.load(Relaxed),
            new_epochs: stats.new_epochs.load(Relaxed),
        }
    }
}
