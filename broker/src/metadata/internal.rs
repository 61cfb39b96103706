//! Internal topic names and where internal state lives on disk.
//!
//! Kafka keeps its own state in topics a client must not touch
//! (`__consumer_offsets`, `__transaction_state`, `__share_group_state`,
//! and the KRaft log `__cluster_metadata`). Shardline keeps the same roles
//! in per-shard logs that are not topics, and reserves those names plus
//! the prefix [`RESERVED_PREFIX`] for internal topics of its own, so a
//! client can never create, delete, grow, reconfigure or write a topic of
//! such a name (see README "Internal topics" for the error codes and what
//! Apache Kafka 4.4.0 answers).
//!
//! Internal files live under [`INTERNAL_DIR`]: `@` cannot appear in a
//! topic name ([a-zA-Z0-9._-]), so no topic-partition directory
//! (`<topic>-<partition>`) can ever be, or be inside, it.

use std::path::{Path, PathBuf};

pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
pub const TRANSACTION_STATE: &str = "__transaction_state";
pub const SHARE_GROUP_STATE: &str = "__share_group_state";
pub const CLUSTER_METADATA: &str = "__cluster_metadata";

/// Kafka 4.x's internal topic names.
pub const KAFKA_INTERNAL_TOPICS: [&str; 4] = [
    CONSUMER_OFFSETS,
    TRANSACTION_STATE,
    SHARE_GROUP_STATE,
    CLUSTER_METADATA,
];

/// Every topic name starting with this is reserved for Shardline's own
/// future internal topics (`__shardline.metrics`, `__shardline_quotas`...).
pub const RESERVED_PREFIX: &str = "__shardline";

/// Directory under the data dir that holds internal state.
pub const INTERNAL_DIR: &str = "@internal";

/// Is `name` an internal topic name clients may not manage or write?
pub fn is_reserved(name: &str) -> bool {
    KAFKA_INTERNAL_TOPICS.contains(&name) || name.starts_with(RESERVED_PREFIX)
}

/// Metadata's `is_internal` for a topic name. Kafka 4.4.0 answers true for
/// `__consumer_offsets`, `__transaction_state` and `__share_group_state`
/// (even when they do not exist) and false for `__cluster_metadata`, which
/// is the controller's log rather than a topic; our prefix counts as
/// internal.
pub fn is_internal(name: &str) -> bool {
    is_reserved(name) && name != CLUSTER_METADATA
}

/// Kafka's message for a refused creation ("Creation of internal topic
/// __cluster_metadata is prohibited.", Kafka 4.4.0, INVALID_REQUEST).
pub fn creation_prohibited(name: &str) -> String {
    format!("Creation of internal topic {name} is prohibited.")
}

/// The same wording for the other operations Shardline refuses.
pub fn change_prohibited(what: &str, name: &str) -> String {
    format!(
        "{what} of internal topic {name} is prohibited: it holds the broker's own state \
         (names {} and any name starting with {RESERVED_PREFIX} are reserved).",
        KAFKA_INTERNAL_TOPICS.join(", ")
    )
}

/// Kafka's InvalidTopicException text for a Produce to an internal topic.
pub fn append_prohibited(name: &str) -> String {
    format!("Cannot append to internal topic {name}")
}

/// `DATA_DIR/@internal`.
pub fn internal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(INTERNAL_DIR)
}

/// Directory of the metadata quorum's log: `DATA_DIR/@internal/__cluster_metadata-0`
/// (Kafka's KRaft log is the partition `__cluster_metadata-0`).
pub fn metadata_log_dir(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join(format!("{CLUSTER_METADATA}-0"))
}

/// Directory of shard `shard`'s group log: `DATA_DIR/@internal/__consumer_offsets-<shard>`.
pub fn group_log_dir(data_dir: &Path, shard: usize) -> PathBuf {
    internal_dir(data_dir).join(group_log_name(shard))
}

/// Name of shard `shard`'s group log (in log lines and errors).
pub fn group_log_name(shard: usize) -> String {
    format!("{CONSUMER_OFFSETS}-{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{partition_dir, validate_topic_name};

    #[test]
    fn reserved_names() {
        for n in [
            "__consumer_offsets",
            "__transaction_state",
            "__share_group_state",
            "__cluster_metadata",
            "__shardline",
            "__shardline.metrics",
        ] {
            assert!(is_reserved(n), "{n}");
        }
        for n in [
            "__consumer_offsets2",
            "_consumer_offsets",
            "orders",
            "__shardlin",
        ] {
            assert!(!is_reserved(n), "{n}");
        }
        assert!(is_internal("__consumer_offsets") && !is_internal("__cluster_metadata"));
    }

    #[test]
    fn no_topic_partition_directory_can_be_internal() {
        let data = Path::new("/d");
        // '@' is not a topic-name character, so the internal dir is no
        // topic's name, and no "<topic>-<n>" is inside it.
        assert!(validate_topic_name(INTERNAL_DIR).is_err());
        assert!(!INTERNAL_DIR
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
        let gl = group_log_dir(data, 0);
        assert_ne!(gl, partition_dir(data, CONSUMER_OFFSETS, 0));
        assert!(gl.starts_with(internal_dir(data)));
        assert_eq!(partition_dir(data, "x", 0).parent(), Some(data));
    }
}
