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

/// The longest wait we accept for a timer (about 24.8 days, Kafka's INT ms).
const MAX_INTERVAL_MS: u64 = i32::MAX as u64;

fn at_least<T: PartialOrd + std::fmt::Display>(key: &str, v: T, min: T) -> Result<()> {
    if v < min {
        bail!("{key} = {v}: must be at least {min}");
    }
    Ok(())
}

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

/// Every check; the first failure is returned.
pub fn check(c: &BrokerConfig) -> Result<()> {
    // Shards (`shards` itself is resolved by `finish`: unset = one per core).
    between("shards", c.shards, 1, MAX_SHARDS)?;
    if c.data_dir.as_os_str().is_empty() {
        bail!("data_dir is empty: give a directory on ext4 or xfs");
    }
    // Kafka: node.id must be >= 0 in KRaft mode.
    at_least("node_id", c.node_id, 0)?;

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
    between("message_max_bytes", c.message_max_bytes, 64, 1 << 30)?;
    // Kafka: log.flush.interval.ms / .messages and the retention check
    // interval are atLeast(1); 0 would be a timer that never waits.
    between(
        "log_flush_interval_ms",
        c.log_flush_interval_ms,
        1,
        MAX_INTERVAL_MS,
    )?;
    at_least("log_flush_interval_bytes", c.log_flush_interval_bytes, 1)?;
    between(
        "log_retention_check_interval_ms",
        c.log_retention_check_interval_ms,
        1,
        MAX_INTERVAL_MS,
    )?;
    // Auto-created topics obey the same bound as CreateTopics.
    between(
        "num_partitions",
        c.num_partitions,
        1,
        crate::controller::MAX_PARTITIONS_PER_TOPIC,
    )?;

    // Connections. A frame's size is a 32-bit signed length.
    between(
        "socket_request_max_bytes",
        c.socket_request_max_bytes,
        1,
        i32::MAX as usize,
    )?;
    if c.socket_request_max_bytes < c.message_max_bytes {
        bail!(
            "socket_request_max_bytes = {} is below message_max_bytes = {}: a batch of the \
             largest allowed size could not arrive",
            c.socket_request_max_bytes,
            c.message_max_bytes
        );
    }
    // Pipelined requests are queued per connection: keep it bounded.
    between(
        "max_in_flight_per_connection",
        c.max_in_flight_per_connection,
        1,
        4096,
    )?;
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
    between(
        "request_read_timeout_ms",
        c.request_read_timeout_ms,
        100,
        MAX_INTERVAL_MS,
    )?;
    // Kafka's max.connections / max.connections.per.ip are atLeast(0); 0
    // would refuse every client, which is never what is meant.
    at_least("max_connections", c.max_connections, 1)?;
    at_least("max_connections_per_ip", c.max_connections_per_ip, 1)?;
    // glommio allocates at least 64 KiB of I/O memory per shard.
    at_least("io_memory_bytes", c.io_memory_bytes, 64 << 10)?;

    // Groups (Kafka's GroupCoordinatorConfig validators).
    between(
        "group_initial_rebalance_delay_ms",
        c.group_initial_rebalance_delay_ms,
        0,
        MAX_INTERVAL_MS as i64,
    )?;
    between(
        "offsets_retention_minutes",
        c.offsets_retention_minutes,
        1,
        i64::from(i32::MAX),
    )?;
    at_least(
        "group_min_session_timeout_ms",
        c.group_min_session_timeout_ms,
        1,
    )?;
    if c.group_max_session_timeout_ms < c.group_min_session_timeout_ms {
        bail!(
            "group_max_session_timeout_ms = {} is below group_min_session_timeout_ms = {}",
            c.group_max_session_timeout_ms,
            c.group_min_session_timeout_ms
        );
    }
    at_least(
        "group_consumer_heartbeat_interval_ms",
        c.group_consumer_heartbeat_interval_ms,
        1,
    )?;
    if c.group_consumer_session_timeout_ms <= i64::from(c.group_consumer_heartbeat_interval_ms) {
        bail!(
            "group_consumer_session_timeout_ms = {} must exceed \
             group_consumer_heartbeat_interval_ms = {}",
            c.group_consumer_session_timeout_ms,
            c.group_consumer_heartbeat_interval_ms
        );
    }
    at_least(
        "group_consumer_session_timeout_ms",
        c.group_consumer_session_timeout_ms,
        1,
    )?;

    // The free-space floor: a percent above half the disk is a typo.
    if !(0.0..=50.0).contains(&c.disk_free_min_percent) {
        bail!(
            "disk_free_min_percent = {}: must be between 0 and 50",
            c.disk_free_min_percent
        );
    }

    // Quotas: one sample would forget everything at each window boundary.
    between("quota_window_num", c.quota_window_num, 2, 1000)?;
    between(
        "quota_window_size_seconds",
        c.quota_window_size_seconds,
        1,
        3600,
    )?;

    // Security.
    at_least("connections_max_reauth_ms", c.connections_max_reauth_ms, 0)?;
    between(
        "sasl_bootstrap_iterations",
        c.sasl_bootstrap_iterations,
        crate::security::scram::MIN_ITERATIONS,
        crate::security::scram::MAX_ITERATIONS,
    )?;
    at_least("sasl_max_failures", c.sasl_max_failures, 1)?;
    between(
        "sasl_failure_window_ms",
        c.sasl_failure_window_ms,
        1,
        MAX_INTERVAL_MS,
    )?;
    between(
        "sasl_failure_block_ms",
        c.sasl_failure_block_ms,
        0,
        MAX_INTERVAL_MS,
    )?;
    between(
        "ssl_reload_check_ms",
        c.ssl_reload_check_ms,
        1,
        MAX_INTERVAL_MS,
    )?;
    between(
        "ssl_handshake_timeout_ms",
        c.ssl_handshake_timeout_ms,
        1,
        MAX_INTERVAL_MS,
    )?;
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
