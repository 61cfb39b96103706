//! The topic-level configs Shardline understands: their types, defaults
//! (from the broker config, as Kafka derives `retention.ms` from
//! `log.retention.ms`), validation, and the log settings they resolve to.

use std::collections::BTreeMap;

use shard::log::LogConfig;

use crate::config::BrokerConfig;

/// Kafka's DescribeConfigs config types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// The broker-level setting the default comes from, as Kafka names it.
    pub broker_synonym: Option<&'static str>,
    pub doc: &'static str,
    default: fn(&BrokerConfig) -> String,
    validate: fn(&str) -> Result<(), String>,
}

// The validators' texts are Kafka 4.4.0's ("Invalid value -2 for
// configuration retention.ms: Value must be at least -1" as an
// INVALID_CONFIG message); `validate` adds the "Invalid value" prefix.

fn long_min(v: &str, min: i64) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("Value must be at least {min}")),
        Err(_) => Err("Not a number of type LONG".into()),
    }
}
fn int_min(v: &str, min: i32) -> Result<(), String> {
    match v.parse::<i32>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("Value must be at least {min}")),
        Err(_) => Err("Not a number of type INT".into()),
    }
}
fn boolean(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("Expected value to be either true or false".into()),
    }
}

/// Smallest segment: Kafka 3.x's 14 KiB (Kafka 4.x refuses below 1 MiB;
/// Shardline keeps small segments possible, as tests of retention use).
pub const MIN_SEGMENT_BYTES: i32 = 14 * 1024;

pub fn validate_cleanup_policy(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
        return Err("String must be one of: compact, delete".into());
    }
    Ok(())
}

pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        kind: ConfigType::List,
        broker_synonym: Some("log.cleanup.policy"),
        doc: "delete: remove old segments by retention; compact: keep the latest record per key",
        default: |b| b.log_cleanup_policy.clone(),
        validate: validate_cleanup_policy,
    },
    TopicConfigDef {
        name: "retention.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.retention.ms"),
        doc: "Age after which a segment is deleted (-1: forever)",
        default: |b| b.log_retention_ms.to_string(),
        validate: |v| long_min(v, -1),
    },
    TopicConfigDef {
        name: "retention.bytes",
        kind: ConfigType::Long,
        broker_synonym: Some("log.retention.bytes"),
        doc: "Size per partition above which the oldest segments are deleted (-1: no limit)",
        default: |b| b.log_retention_bytes.to_string(),
        // Kafka 4.4.0 takes any long (negative = no limit); below -1 is
        // refused here as meaningless.
        validate: |v| long_min(v, -1),
    },
    TopicConfigDef {
        name: "segment.bytes",
        kind: ConfigType::Int,
        broker_synonym: Some("log.segment.bytes"),
        doc: "Size at which a new segment is rolled",
        default: |b| b.log_segment_bytes.to_string(),
        // An INT: the offset index's positions are 32-bit (Kafka: Int.MaxValue).
        validate: |v| int_min(v, MIN_SEGMENT_BYTES),
    },
    TopicConfigDef {
        name: "segment.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.roll.ms"),
        doc: "Age at which a new segment is rolled",
        default: |b| b.log_segment_ms.to_string(),
        validate: |v| long_min(v, 1),
    },
    TopicConfigDef {
        name: "max.message.bytes",
        kind: ConfigType::Int,
        broker_synonym: Some("message.max.bytes"),
        doc: "Largest record batch accepted",
        default: |b| b.message_max_bytes.to_string(),
        validate: |v| int_min(v, 0),
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        kind: ConfigType::String,
        broker_synonym: Some("log.message.timestamp.type"),
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's",
        default: |_| "CreateTime".into(),
        validate: |v| match v {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err("String must be one of: CreateTime, LogAppendTime".into()),
        },
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.cleaner.delete.retention.ms"),
        doc: "How long tombstones are kept on compacted topics",
        default: |_| "86400000".into(),
        validate: |v| long_min(v, 0),
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        kind: ConfigType::Int,
        broker_synonym: Some("log.index.interval.bytes"),
        doc: "Bytes of log between offset-index entries",
        default: |b| b.log_index_interval_bytes.to_string(),
        validate: |v| int_min(v, 0),
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        kind: ConfigType::Int,
        broker_synonym: Some("min.insync.replicas"),
        doc: "Replicas that must acknowledge acks=all writes (one broker: 1)",
        default: |_| "1".into(),
        validate: |v| int_min(v, 1),
    },
    TopicConfigDef {
        name: "compression.type",
        kind: ConfigType::String,
        broker_synonym: Some("compression.type"),
        doc: "producer: batches are stored exactly as the producer compressed them",
        default: |_| "producer".into(),
        validate: |v| {
            match v {
            "producer" => Ok(()),
            _ => Err(format!(
                "compression.type '{v}' would need recompression on the broker, which Shardline does not do; \
                 only 'producer' is accepted"
            )),
        }
        },
    },
    TopicConfigDef {
        name: "preallocate",
        kind: ConfigType::Boolean,
        broker_synonym: Some("log.preallocate"),
        doc: "Reserve segment space on disk ahead of writes, in steps that follow the partition's write rate (64 KiB to 32 MiB)",
        default: |_| "true".into(),
        validate: boolean,
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        kind: ConfigType::Boolean,
        broker_synonym: Some("unclean.leader.election.enable"),
        doc: "Single node: no effect",
        default: |_| "false".into(),
        validate: boolean,
    },
    TopicConfigDef {
        name: "message.timestamp.difference.max.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.message.timestamp.difference.max.ms"),
        doc: "Accepted difference between a record's timestamp and the broker's clock",
        default: |_| i64::MAX.to_string(),
        // Kafka 3.x's validator (Kafka 4 removed this config).
        validate: |v| long_min(v, 0),
    },
];

pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Check one override; the error text (Kafka's) goes back to the client
/// with INVALID_CONFIG and names the config.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = definition(name).ok_or_else(|| unknown(name))?;
    (def.validate)(value)
        .map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))
}

/// Kafka 4.4.0's INVALID_CONFIG message for a config it does not know.
pub fn unknown(name: &str) -> String {
    format!("Unknown topic config name: {name}")
}

pub fn default_value(def: &TopicConfigDef, broker: &BrokerConfig) -> String {
    (def.default)(broker)
}

/// The effective value: the topic override, else the broker default.
pub fn effective(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Option<String> {
    overrides
        .get(name)
        .cloned()
        .or_else(|| definition(name).map(|d| default_value(d, broker)))
}

/// Resolve the log settings of a topic.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> LogConfig {
    let get = |name: &str| effective(name, overrides, broker).unwrap_or_default();
    let policy = get("cleanup.policy");
    let io = broker.io_settings();
    LogConfig {
        segment_bytes: get("segment.bytes")
            .parse()
            .unwrap_or(broker.log_segment_bytes),
        segment_ms: get("segment.ms").parse().unwrap_or(broker.log_segment_ms),
        retention_ms: get("retention.ms")
            .parse()
            .unwrap_or(broker.log_retention_ms),
        retention_bytes: get("retention.bytes")
            .parse()
            .unwrap_or(broker.log_retention_bytes),
        index_interval_bytes: get("index.interval.bytes")
            .parse()
            .unwrap_or(broker.log_index_interval_bytes),
        max_message_bytes: get("max.message.bytes")
            .parse()
            .unwrap_or(broker.message_max_bytes),
        cleanup_delete: policy.split(',').any(|p| p.trim() == "delete"),
        cleanup_compact: policy.split(',').any(|p| p.trim() == "compact"),
        delete_retention_ms: get("delete.retention.ms").parse().unwrap_or(86_400_000),
        log_append_time: get("message.timestamp.type") == "LogAppendTime",
        flush_mode: broker.log_flush,
        flush_interval_ms: broker.log_flush_interval_ms,
        flush_interval_bytes: broker.log_flush_interval_bytes,
        tail_cache_bytes: broker.tail_cache_bytes,
        preallocate: get("preallocate") != "false",
        write_chunk_bytes: io.write_chunk_bytes,
        write_queue_depth: io.write_queue_depth,
        group_commit_window_us: io.group_commit_window_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_broker_and_overrides_win() {
        let broker = BrokerConfig::default();
        let mut o = BTreeMap::new();
        assert_eq!(effective("retention.ms", &o, &broker).unwrap(), "259200000");
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let lc = log_config(&o, &broker);
        assert_eq!(lc.retention_ms, 1000);
        assert!(lc.cleanup_compact && lc.cleanup_delete);
    }

    #[test]
    fn validation_explains_bad_values() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert_eq!(
            validate("retention.ms", "-2").unwrap_err(),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            validate("segment.bytes", "3000000000").unwrap_err(),
            "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"
        );
        assert!(validate("retention.bytes", "-2").is_err());
        assert!(validate("retention.bytes", "-1").is_ok());
        assert!(validate("segment.ms", "0").is_err());
        assert!(validate("delete.retention.ms", "-1").is_err());
        assert!(validate("index.interval.bytes", "-1").is_err());
        assert!(validate("max.message.bytes", "-1").is_err());
        assert!(validate("min.insync.replicas", "0").is_err());
        assert!(validate("message.timestamp.difference.max.ms", "-1").is_err());
        assert!(validate("preallocate", "yes").is_err());
        assert!(validate("segment.bytes", "100").is_err());
        assert!(validate("cleanup.policy", "compact, delete").is_ok());
        assert!(validate("cleanup.policy", "forever").is_err());
        assert_eq!(
            validate("no.such.config", "1").unwrap_err(),
            "Unknown topic config name: no.such.config"
        );
        assert!(validate("compression.type", "zstd").is_err());
    }
}
