//! The one Kafka client of the project, used by the `shardline` CLI and by
//! `shardline-bench`. Blocking and thread-per-connection on purpose: neither
//! tool runs on a shard, and a blocking socket keeps the bench's send and
//! receive loop free of executor overhead.
//!
//! * [`Conn`]: one pipelined connection (requests written without waiting,
//!   responses matched to a FIFO of pending requests), optionally over TLS
//!   and SASL-authenticated, with its negotiated API versions.
//! * [`Client`]: a bootstrap connection plus lazily opened connections to
//!   other brokers, metadata, partition leaders and group coordinators.
//! * [`versions`]: the versions this client can encode per API and
//!   [`pick_version`]; [`errors`]: Kafka error names.

mod client;
mod conn;
pub mod errors;
pub mod sasl;
pub mod scram;
pub mod tls;
mod transport;
pub mod versions;

pub use client::{connect_bootstrap, partition_leaders, Client, PartitionLeader};
pub use conn::{decode_body, encode_frame, Conn, Options};
pub use errors::{check, error_name, kafka_error};
pub use sasl::SaslAuth;
pub use versions::pick_version;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A Kafka string from a Rust one.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// One topic of a CreateTopics request: `-1` partitions or replication
/// factor means the broker's default (CreateTopics v4 and later).
pub fn creatable_topic(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> kafka_protocol::messages::create_topics_request::CreatableTopic {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        )
}

/// Whether a one-topic CreateTopics answer created `topic`: `Ok`, or its
/// error named with the broker's message. With `exists_ok`,
/// TOPIC_ALREADY_EXISTS counts as created (someone else made it first).
pub fn check_created(
    resp: &kafka_protocol::messages::CreateTopicsResponse,
    topic: &str,
    exists_ok: bool,
) -> anyhow::Result<()> {
    let r = resp
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("CreateTopics returned no result"))?;
    if exists_ok && r.error_code == kafka_protocol::ResponseError::TopicAlreadyExists.code() {
        return Ok(());
    }
    check(
        r.error_code,
        format!("creating topic {topic}"),
        r.error_message.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::CreateTopicsResponse;

    #[test]
    fn check_created_names_the_error_unless_it_is_an_accepted_exists() {
        let answer = |code: i16| {
            CreateTopicsResponse::default().with_topics(vec![CreatableTopicResult::default()
                .with_name(topic_name("t"))
                .with_error_code(code)])
        };
        assert!(check_created(&answer(0), "t", false).is_ok());
        assert!(check_created(&answer(36), "t", true).is_ok());
        let e = check_created(&answer(36), "t", false).unwrap_err();
        assert_eq!(e.to_string(), "TOPIC_ALREADY_EXISTS: creating topic t");
        let e = check_created(&answer(37), "t", true).unwrap_err();
        assert_eq!(e.to_string(), "INVALID_PARTITIONS: creating topic t");
        let empty = CreateTopicsResponse::default();
        assert!(check_created(&empty, "t", true).is_err());
    }
}
