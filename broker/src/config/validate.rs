//! Refusing impossible broker settings at start, each error naming its key.
//!
//! The bounds follow Kafka's validators where Kafka has the setting
//! (`atLeast(1)` for intervals, `atLeast(-1)` for retention, INT-sized
//! segment and request sizes; KafkaConfig / LogConfig / GroupCoordinatorConfig),
//! and otherwise what Shardline's code can do: an interval of 0 would make
//! a timer loop spin, a size beyond 32 bits would overflow the offset
//! index's positions or a frame's length. The log defaults are checked
//! with the same validators as the topic configs they default.

use anyhow::{bail, Result};

use super::BrokerConfig;
use crate::metadata::topic_config;

/// Most shards (executor threads) one broker runs.
pub const MAX_SHARDS: usize = 256;

/// Most Fetch requests one shard keeps parked (each is a task and a timer).
pub const MAX_PENDING_FETCH_WAITS: usize = 1_000_000;

/// The longest wait we accept for a timer (about 24.8 days, Kafka's INT ms).
pub const MAX_INTERVAL_MS: u64 = i32::MAX as u64;

fn between<T: PartialOrd + std::fmt::Display>(key: &str, v: T, min: T, max: T) -> Result<()> {
    if v < min || v > max {
        bail!("{key} = {v}: must be between {min} and {max}");
    }
    Ok(())
}

/// A broker default checked by the validator of the topic config it is
/// the default of.
fn as_topic_config(key: &str, topic_key: &str, v: impl ToString) -> Result<()> {
    let v = v.to_string();
    topic_config::validate(topic_key, &v).map_err(|e| {
        // "Invalid value X for configuration retention.ms: why" -> why
        let why = e.rsplit_once(": ").map_or(e.as_str(), |(_, w)| w);
        anyhow::anyhow!("{key} = {v}: {why} (as topic config {topic_key})")
    })
}

/// Every check; the first failure is returned. The bounds of single keys
/// are declared in `table.rs` (`#[range = ...]`) and checked first; what
/// follows are the rules no range can say (between keys, lists, paths,
/// the topic-config validators).
///
/// Why the ranges are what they are: Kafka's `atLeast(1)` for intervals
/// (0 would be a timer that never waits), `atLeast(-1)` / `atLeast(0)`
/// where Kafka has it, INT-sized frames and timers, `group.max.size`
/// atLeast(1), two quota samples at least (one would forget everything at
/// each window boundary), 64 KiB of I/O memory (glommio's minimum), and
/// bounded queues (in-flight requests, pending fetch waits, the cross-shard
/// inbox).
pub fn check(c: &BrokerConfig) -> Result<()> {
    c.check_ranges().map_err(anyhow::Error::msg)?;
    // Shards in effect (`shards` itself is resolved by `finish`: unset =
    // one per core, which may be more than we run).
    between("shards", c.shards, 1, MAX_SHARDS)?;
    if c.data_dir.as_os_str().is_empty() {
        bail!("data_dir is empty: give a directory on ext4 or xfs");
    }

    // The log: the same rules as the topic configs they default.
    as_topic_config("log_segment_bytes", "segment.bytes", c.log_segment_bytes)?;
    as_topic_config("log_segment_ms", "segment.ms", c.log_segment_ms)?;
    as_topic_config("log_retention_ms", "retention.ms", c.log_retention_ms)?;
    as_topic_config(
        "log_retention_bytes",
        "retention.bytes",
        c.log_retention_bytes,
    )?;
    as_topic_config(
        "log_index_interval_bytes",
        "index.interval.bytes",
        c.log_index_interval_bytes,
    )?;
    as_topic_config(
        "message_max_bytes",
        "max.message.bytes",
        c.message_max_bytes,
    )?;
    topic_config::validate_cleanup_policy(&c.log_cleanup_policy)
        .map_err(|e| anyhow::anyhow!("log_cleanup_policy = {:?}: {e}", c.log_cleanup_policy))?;

    // Connections.
    if c.socket_request_max_bytes < c.message_max_bytes {
        bail!(
            "socket_request_max_bytes = {} is below message_max_bytes = {}: a batch of the \
             largest allowed size could not arrive",
            c.socket_request_max_bytes,
            c.message_max_bytes
        );
    }
    // Kafka's connections.max.idle.ms; -1 (never) is ours. The watchdog
    // checks four times per bound, so tiny bounds would spin it.
    if c.connections_max_idle_ms != -1 {
        between(
            "connections_max_idle_ms",
            c.connections_max_idle_ms,
            100,
            MAX_INTERVAL_MS as i64,
        )?;
    }

    // Groups (Kafka's GroupCoordinatorConfig validators).
    if c.group_max_session_timeout_ms < c.group_min_session_timeout_ms {
        bail!(
            "group_max_session_timeout_ms = {} is below group_min_session_timeout_ms = {}",
            c.group_max_session_timeout_ms,
            c.group_min_session_timeout_ms
        );
    }
    if c.group_consumer_session_timeout_ms <= i64::from(c.group_consumer_heartbeat_interval_ms) {
        bail!(
            "group_consumer_session_timeout_ms = {} must exceed \
             group_consumer_heartbeat_interval_ms = {}",
            c.group_consumer_session_timeout_ms,
            c.group_consumer_heartbeat_interval_ms
        );
    }

    // Security.
    for m in &c.sasl_enabled_mechanisms {
        if m != "PLAIN" && crate::security::scram::ScramMechanism::from_name(m).is_none() {
            bail!("sasl_enabled_mechanisms: {m:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
        }
    }
    if c.sasl_bootstrap_user.is_some() != c.sasl_bootstrap_password.is_some() {
        bail!("sasl_bootstrap_user and sasl_bootstrap_password go together");
    }
    if c.sasl_bootstrap_user.as_deref() == Some("") {
        bail!("sasl_bootstrap_user must not be empty");
    }
    for u in &c.super_users {
        if !u
            .split_once(':')
            .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
        {
            bail!("super_users: {u:?} is not a principal such as \"User:admin\"");
        }
    }
    // The flusher's settings, with the same limits as an iotune file's.
    c.io_settings()
        .validate()
        .map_err(|e| anyhow::anyhow!("log_{e}"))?;
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
