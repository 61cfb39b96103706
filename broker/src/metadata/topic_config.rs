//! The topic-level configs Shardline understands: their types, defaults
//! (from the broker config, as Kafka derives `retention.ms` from
//! `log.retention.ms`), validation, and the log settings they resolve to.

use std::collections::BTreeMap;

use shard::log::LogConfig;
use shard::record::Compression;

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

/// Kafka's throttled replica lists: empty, `*`, or `partition:broker`
/// pairs separated by commas.
fn throttled_replicas(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for pair in v.split(',') {
        let ok = pair.trim().split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        });
        if !ok {
            return Err(format!(
                "{v}: Value must be a list of partition:brokerId pairs or the wildcard '*'"
            ));
        }
    }
    Ok(())
}

/// Whether `list` (a throttled replica list) names `partition` on `broker`.
pub fn throttles(list: &str, partition: i32, broker: i32) -> bool {
    let list = list.trim();
    list == "*"
        || list.split(',').any(|pair| {
            pair.trim().split_once(':').is_some_and(|(p, b)| {
                p.trim().parse::<i32>() == Ok(partition) && b.trim().parse::<i32>() == Ok(broker)
            })
        })
}

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

fn int_range(v: &str, min: i32, max: i32) -> Result<(), String> {
    match v.parse::<i32>() {
        Ok(n) if n < min => Err(format!("Value must be at least {min}")),
        Ok(n) if n > max => Err(format!("Value must be no more than {max}")),
        Ok(_) => Ok(()),
        Err(_) => Err("Not a number of type INT".into()),
    }
}

/// Kafka 3.9's `MetadataVersion` names (what its `message.format.version`
/// validator accepts), oldest first; a release without its "-IVn" suffix
/// is accepted too.
const METADATA_VERSIONS: &[&str] = &[
    "0.8.0",
    "0.8.1",
    "0.8.2",
    "0.9.0",
    "0.10.0-IV0",
    "0.10.0-IV1",
    "0.10.1-IV0",
    "0.10.1-IV1",
    "0.10.1-IV2",
    "0.10.2-IV0",
    "0.11.0-IV0",
    "0.11.0-IV1",
    "0.11.0-IV2",
    "1.0-IV0",
    "1.1-IV0",
    "2.0-IV0",
    "2.0-IV1",
    "2.1-IV0",
    "2.1-IV1",
    "2.1-IV2",
    "2.2-IV0",
    "2.2-IV1",
    "2.3-IV0",
    "2.3-IV1",
    "2.4-IV0",
    "2.4-IV1",
    "2.5-IV0",
    "2.6-IV0",
    "2.7-IV0",
    "2.7-IV1",
    "2.7-IV2",
    "2.8-IV0",
    "2.8-IV1",
    "3.0-IV0",
    "3.0-IV1",
    "3.1-IV0",
    "3.2-IV0",
    "3.3-IV0",
    "3.3-IV1",
    "3.3-IV2",
    "3.3-IV3",
    "3.4-IV0",
    "3.5-IV0",
    "3.5-IV1",
    "3.5-IV2",
    "3.6-IV0",
    "3.6-IV1",
    "3.6-IV2",
    "3.7-IV0",
    "3.7-IV1",
    "3.7-IV2",
    "3.7-IV3",
    "3.7-IV4",
    "3.8-IV0",
    "3.9-IV0",
];

fn metadata_version(v: &str) -> Result<(), String> {
    let known = METADATA_VERSIONS
        .iter()
        .any(|m| *m == v || m.split("-IV").next() == Some(v));
    if known {
        Ok(())
    } else {
        Err(format!("Version {v} is not a valid version"))
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
        doc: "producer: batches are stored as the producer compressed them; a codec \
              (uncompressed, gzip, snappy, lz4, zstd): batches in another codec are recompressed to it",
        default: |_| "producer".into(),
        validate: |v| match v {
            "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer" => Ok(()),
            _ => Err("String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer".into()),
        },
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        kind: ConfigType::Int,
        broker_synonym: Some("compression.gzip.level"),
        doc: "Level of gzip when compression.type is gzip (KIP-390; -1: zlib's default)",
        default: |_| "-1".into(),
        validate: |v| match v.parse::<i32>() {
            Ok(-1 | 1..=9) => Ok(()),
            Ok(_) => Err("Value must be between 1 and 9 or equal to -1".into()),
            Err(_) => Err("Not a number of type INT".into()),
        },
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        kind: ConfigType::Int,
        broker_synonym: Some("compression.lz4.level"),
        doc: "Level of lz4 when compression.type is lz4 (KIP-390)",
        default: |_| "9".into(),
        validate: |v| int_range(v, 1, 17),
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        kind: ConfigType::Int,
        broker_synonym: Some("compression.zstd.level"),
        doc: "Level of zstd when compression.type is zstd (KIP-390)",
        default: |_| "3".into(),
        validate: |v| int_range(v, -131_072, 22),
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
        doc: "Let a live replica outside the ISR lead a partition left with no live in-sync replica (acknowledged records may be lost)",
        default: |_| "false".into(),
        validate: boolean,
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        kind: ConfigType::List,
        broker_synonym: None,
        doc: "Replicas (partition:broker, or *) whose leaders throttle what followers fetch at leader.replication.throttled.rate",
        default: |_| "".into(),
        validate: throttled_replicas,
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        kind: ConfigType::List,
        broker_synonym: None,
        doc: "Replicas (partition:broker, or *) whose fetches are throttled at their broker's follower.replication.throttled.rate",
        default: |_| "".into(),
        validate: throttled_replicas,
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.message.timestamp.before.max.ms"),
        doc: "CreateTime topics: records older than this before the broker's clock are refused (INVALID_TIMESTAMP)",
        default: |_| i64::MAX.to_string(),
        validate: |v| long_min(v, 0),
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.message.timestamp.after.max.ms"),
        doc: "CreateTime topics: records more than this ahead of the broker's clock are refused (INVALID_TIMESTAMP)",
        // Kafka 4's default (Kafka 3.x: no limit).
        default: |_| "3600000".into(),
        validate: |v| long_min(v, 0),
    },
    // Kafka 3.9's deprecated topic configs, which Kafka 4 removed (it
    // answers "Unknown topic config name"): accepted with Kafka 3.9's
    // validation and reported, so tools and scripts written for Kafka 3
    // keep working.
    TopicConfigDef {
        name: "message.timestamp.difference.max.ms",
        kind: ConfigType::Long,
        broker_synonym: Some("log.message.timestamp.difference.max.ms"),
        doc: "[DEPRECATED, Kafka 3] Used for message.timestamp.before.max.ms and after.max.ms where those are not set",
        default: |_| i64::MAX.to_string(),
        validate: |v| long_min(v, 0),
    },
    TopicConfigDef {
        name: "message.format.version",
        kind: ConfigType::String,
        broker_synonym: Some("log.message.format.version"),
        doc: "[DEPRECATED, Kafka 3] Ignored: batches are always stored in format v2 (as Kafka 3 does from 3.0)",
        default: |_| "3.0-IV1".into(),
        validate: metadata_version,
    },
    TopicConfigDef {
        name: "message.downconversion.enable",
        kind: ConfigType::Boolean,
        broker_synonym: Some("log.message.downconversion.enable"),
        doc: "[DEPRECATED, Kafka 3] Ignored: old fetch versions are always down-converted",
        default: |_| "true".into(),
        validate: boolean,
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

/// `message.timestamp.before.max.ms` or `after.max.ms`: the topic's own
/// value, else (Kafka 3.9) its deprecated `message.timestamp.difference.max.ms`,
/// else the default.
fn timestamp_limit(name: &str, overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> i64 {
    overrides
        .get(name)
        .or_else(|| overrides.get("message.timestamp.difference.max.ms"))
        .and_then(|v| v.parse().ok())
        .or_else(|| effective(name, overrides, broker).and_then(|v| v.parse().ok()))
        .unwrap_or(i64::MAX)
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
        timestamp_before_max_ms: timestamp_limit(
            "message.timestamp.before.max.ms",
            overrides,
            broker,
        ),
        timestamp_after_max_ms: timestamp_limit(
            "message.timestamp.after.max.ms",
            overrides,
            broker,
        ),
        compression: match get("compression.type").as_str() {
            "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        },
        compression_level: match get("compression.type").as_str() {
            "gzip" => get("compression.gzip.level").parse().ok(),
            "lz4" => get("compression.lz4.level").parse().ok(),
            "zstd" => get("compression.zstd.level").parse().ok(),
            _ => None,
        },
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
    fn compression_and_timestamp_limits_resolve() {
        let broker = BrokerConfig::default();
        let mut o = BTreeMap::new();
        let lc = log_config(&o, &broker);
        assert_eq!(lc.compression, None);
        assert_eq!(lc.timestamp_before_max_ms, i64::MAX);
        assert_eq!(lc.timestamp_after_max_ms, 3_600_000);
        o.insert("compression.type".to_string(), "zstd".to_string());
        o.insert("compression.zstd.level".to_string(), "7".to_string());
        o.insert("compression.gzip.level".to_string(), "2".to_string());
        // Kafka 3.9: the deprecated difference applies where before/after are not set.
        o.insert(
            "message.timestamp.difference.max.ms".to_string(),
            "1000".to_string(),
        );
        o.insert(
            "message.timestamp.after.max.ms".to_string(),
            "5".to_string(),
        );
        let lc = log_config(&o, &broker);
        assert_eq!(lc.compression, Some(Compression::Zstd));
        assert_eq!(lc.compression_level, Some(7));
        assert_eq!(lc.timestamp_before_max_ms, 1000);
        assert_eq!(lc.timestamp_after_max_ms, 5);
        o.insert("compression.type".to_string(), "uncompressed".to_string());
        let lc = log_config(&o, &broker);
        assert_eq!(
            (lc.compression, lc.compression_level),
            (Some(Compression::None), None)
        );
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
        for codec in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            assert!(validate("compression.type", codec).is_ok());
        }
        assert_eq!(
            validate("compression.type", "none").unwrap_err(),
            "Invalid value none for configuration compression.type: \
             String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert!(validate("compression.gzip.level", "-1").is_ok());
        assert!(validate("compression.gzip.level", "0").is_err());
        assert!(validate("compression.lz4.level", "18").is_err());
        assert!(validate("compression.zstd.level", "-131072").is_ok());
        assert!(validate("compression.zstd.level", "23").is_err());
        assert!(validate("message.format.version", "0.10.0").is_ok());
        assert!(validate("message.format.version", "3.0-IV1").is_ok());
        assert_eq!(
            validate("message.format.version", "0.10").unwrap_err(),
            "Invalid value 0.10 for configuration message.format.version: \
             Version 0.10 is not a valid version"
        );
        assert!(validate("message.downconversion.enable", "false").is_ok());
        assert!(validate("message.downconversion.enable", "no").is_err());
    }
}
