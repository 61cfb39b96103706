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

fn long(v: &str) -> Result<(), String> {
    v.parse::<i64>()
        .map(|_| ())
        .map_err(|_| format!("'{v}' is not a long"))
}
fn long_min(v: &str, min: i64) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("{n} is below the minimum {min}")),
        Err(_) => Err(format!("'{v}' is not a number")),
    }
}
fn int_min(v: &str, min: i32) -> Result<(), String> {
    match v.parse::<i32>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("{n} is below the minimum {min}")),
        Err(_) => Err(format!("'{v}' is not an int")),
    }
}
fn boolean(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err(format!("'{v}' is not true or false")),
    }
}

pub fn validate_cleanup_policy(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
        return Err(format!("'{v}' must be a list of delete and compact"));
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
        validate: |v| long_min(v, -1),
    },
    TopicConfigDef {
        name: "segment.bytes",
        kind: ConfigType::Int,
        broker_synonym: Some("log.segment.bytes"),
        doc: "Size at which a new segment is rolled",
        default: |b| b.log_segment_bytes.to_string(),
        validate: |v| int_min(v, 14 * 1024),
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
            _ => Err(format!("'{v}' must be CreateTime or LogAppendTime")),
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
        validate: long,
    },
];

pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Check one override; the error text goes back to the client.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = definition(name).ok_or_else(|| format!("unknown topic config '{name}'"))?;
    (def.validate)(value)
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
        assert!(validate("retention.ms", "-2")
            .unwrap_err()
            .contains("minimum"));
        assert!(validate("segment.bytes", "100").is_err());
        assert!(validate("cleanup.policy", "compact, delete").is_ok());
        assert!(validate("cleanup.policy", "forever").is_err());
        assert!(validate("no.such.config", "1")
            .unwrap_err()
            .contains("unknown"));
        assert!(validate("compression.type", "zstd").is_err());
    }
}
