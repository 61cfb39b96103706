//! Alerting (issue 17, "Alerts"): rules on consumer-group lag, partitions,
//! brokers, disk, error rates and latency, evaluated by the active
//! controller only and notified to webhooks and the log.
//!
//! - The rules, silences, firing alerts and their history are in the
//!   cluster metadata (`metadata::alerts`): every broker's console shows
//!   and changes the same ones.
//! - Every broker runs the evaluator thread ([`evaluator`]), never a
//!   shard: each round it asks the metadata quorum whether this node is
//!   the active controller and does nothing else when it is not.
//! - Each transition (firing, resolved) is committed to the metadata log
//!   before it is notified, and `apply` takes each transition once: of
//!   two nodes that both believe they lead (a change of leadership in
//!   progress), only the one whose record commits notifies.
//! - At a failover the new controller starts from the committed firing
//!   alerts: it does not notify them again, and sends their resolved
//!   notifications when they resolve. Pending alerts (`for` not elapsed)
//!   are the old controller's memory only: their `for` starts over. A
//!   transition committed by a controller that then died before its
//!   webhook POST went out is not sent by anyone (at most once).

pub mod evaluator;
pub mod inputs;
pub mod machine;
pub mod notify;
pub mod post;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::BrokerConfig;
use crate::metadata::MetadataStore;

/// What the API reads of this broker's evaluator.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// This node evaluated the last round (it is the active controller).
    pub evaluating: bool,
    /// When the last round ended (epoch ms).
    pub last_round_ms: Option<i64>,
    /// Pending alerts: (rule, subject, since epoch ms, last value).
    pub pending: Vec<(String, String, i64, f64)>,
    /// Inputs that could not be read in the last round, and why.
    pub problems: Vec<String>,
}

/// The alerting state of this broker: its metadata and evaluator.
pub struct Alerts {
    pub node_id: i32,
    pub metadata: Arc<MetadataStore>,
    pub interval: Duration,
    pub status: Mutex<Status>,
    /// For other brokers' HTTPS admin listeners (their metrics).
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// `alert_webhook_allowed_hosts`: a rule written through this broker
    /// may name only these hosts (empty: any).
    pub webhook_hosts: Vec<String>,
}

static ALERTS: OnceLock<Arc<Alerts>> = OnceLock::new();

/// This broker's alerting, once the metadata is open.
pub fn get() -> Option<Arc<Alerts>> {
    ALERTS.get().cloned()
}

/// Start the evaluator thread over `metadata` (once per process).
pub fn start(config: &BrokerConfig, metadata: Arc<MetadataStore>) {
    let alerts = Arc::new(Alerts {
        node_id: config.node_id,
        metadata,
        interval: Duration::from_millis(config.alert_eval_interval_ms.max(1)),
        status: Mutex::new(Status::default()),
        peer_tls: super::peer_tls(config),
        webhook_hosts: config.alert_webhook_allowed_hosts.clone(),
    });
    if ALERTS.set(alerts.clone()).is_err() {
        return;
    }
    let lag = crate::admin::lag_source(config, super::kafka_target(config));
    let policy = post::Policy::from_config(config);
    if let Err(e) = evaluator::Evaluator::new(alerts, lag, policy).and_then(|e| e.spawn()) {
        tracing::warn!("alerts: no evaluator thread: {e}");
    }
}
