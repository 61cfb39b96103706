//! Topics: CreateTopics, Metadata, DescribeConfigs, IncrementalAlterConfigs,
//! ListOffsets, DeleteTopics, CreatePartitions, DescribeLogDirs (sizes).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeLogDirsRequest, IncrementalAlterConfigsRequest,
};
use shardline_client::{check, check_created, creatable_topic, sb, topic_name, Client};

use super::offsets::{leaders, list_offsets, topic_partitions, PartitionInfo, EARLIEST, LATEST};

const TIMEOUT_MS: i32 = 30_000;
pub const RESOURCE_TOPIC: i8 = 2;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;

/// Create `name`; `None` partitions or replication factor: the broker's
/// default (CreateTopics v4+; older brokers answer INVALID_PARTITIONS).
pub fn create(
    client: &mut Client,
    name: &str,
    partitions: Option<i32>,
    rf: Option<i16>,
    config: &[(String, String)],
) -> Result<()> {
    let conn = client.admin_conn()?;
    let topic = creatable_topic(name, partitions.unwrap_or(-1), rf.unwrap_or(-1), config);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT_MS);
    let (resp, _) = conn.send(&req)?;
    check_created(&resp, name, false)
}

/// One topic of a Metadata answer.
#[derive(Debug, Clone)]
pub struct TopicListing {
    pub name: String,
    pub internal: bool,
    pub partitions: usize,
    pub replication_factor: usize,
}

/// Every topic the caller may DESCRIBE (the broker leaves the others out
/// of Metadata), sorted by name.
pub fn list(client: &mut Client, internal: bool) -> Result<Vec<TopicListing>> {
    let md = client.metadata(None)?;
    let mut out: Vec<TopicListing> = md
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .filter_map(|t| {
            Some(TopicListing {
                name: t.name.as_ref()?.to_string(),
                internal: t.is_internal,
                partitions: t.partitions.len(),
                replication_factor: t
                    .partitions
                    .iter()
                    .map(|p| p.replica_nodes.len())
                    .max()
                    .unwrap_or(0),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Topic configs that differ from the broker's defaults.
pub fn is_override(c: &DescribeConfigsResourceResult, version: i16) -> bool {
    if version == 0 {
        !c.is_default
    } else {
        c.config_source == SOURCE_DYNAMIC_TOPIC
    }
}

/// One config entry of a resource.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for a sensitive or unset value.
    pub value: Option<String>,
    pub is_override: bool,
    pub sensitive: bool,
    pub read_only: bool,
}

/// DescribeConfigs of one resource (`RESOURCE_TOPIC` or `RESOURCE_BROKER`).
pub fn configs(client: &mut Client, kind: i8, name: &str) -> Result<Vec<ConfigEntry>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(sb(name))
            .with_configuration_keys(None)]);
    let (resp, version) = client.admin_conn()?.send(&req)?;
    let mut out = Vec::new();
    for r in &resp.results {
        check(
            r.error_code,
            format!("describing configs of {name}"),
            r.error_message.as_ref(),
        )?;
        for c in &r.configs {
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: if c.is_sensitive {
                    None
                } else {
                    c.value.as_ref().map(|v| v.to_string())
                },
                is_override: is_override(c, version),
                sensitive: c.is_sensitive,
                read_only: c.read_only,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// IncrementalAlterConfigs of a topic: `Some(v)` sets, `None` deletes (back
/// to the broker's default). All apply or none (one resource).
pub fn alter_configs(
    client: &mut Client,
    topic: &str,
    changes: &[(String, Option<String>)],
) -> Result<()> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(sb(topic))
            .with_configs(
                changes
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(if v.is_some() { SET } else { DELETE })
                            .with_value(v.as_deref().map(sb))
                    })
                    .collect(),
            ),
    ]);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    for r in &resp.responses {
        check(
            r.error_code,
            format!("altering configs of {topic}"),
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

/// A topic described: its partitions with log start and end offsets.
pub struct TopicDescription {
    pub topic_id: String,
    pub partitions: Vec<PartitionInfo>,
    pub log_start: BTreeMap<i32, i64>,
    pub log_end: BTreeMap<i32, i64>,
}

pub fn describe(client: &mut Client, name: &str) -> Result<TopicDescription> {
    let parts = topic_partitions(client, name)?;
    let md = client.metadata(Some(&[name.to_string()]))?;
    let topic_id = md
        .topics
        .first()
        .map(|t| t.topic_id.to_string())
        .unwrap_or_default();
    let healthy: Vec<i32> = parts
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| p.partition)
        .collect();
    let ldr = leaders(&parts, &healthy, name)?;
    let log_start = list_offsets(client, name, &ldr, EARLIEST)?;
    let log_end = list_offsets(client, name, &ldr, LATEST)?;
    Ok(TopicDescription {
        topic_id,
        partitions: parts,
        log_start,
        log_end,
    })
}

pub fn delete(client: &mut Client, name: &str) -> Result<()> {
    let conn = client.admin_conn()?;
    let version = conn.version(ApiKey::DeleteTopics)?;
    let req = DeleteTopicsRequest::default().with_timeout_ms(TIMEOUT_MS);
    let req = if version >= 6 {
        req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name)))
        ])
    } else {
        req.with_topic_names(vec![topic_name(name)])
    };
    let (resp, _) = conn.send(&req)?;
    let r = resp
        .responses
        .first()
        .ok_or_else(|| anyhow!("DeleteTopics returned no result"))?;
    check(
        r.error_code,
        format!("deleting topic {name}"),
        r.error_message.as_ref(),
    )
}

/// Grow `name` to `num` partitions.
pub fn add_partitions(client: &mut Client, name: &str, num: i32) -> Result<()> {
    let conn = client.admin_conn()?;
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(num)
            .with_assignments(None)])
        .with_timeout_ms(TIMEOUT_MS);
    let (resp, _) = conn.send(&req)?;
    let r = resp
        .results
        .first()
        .ok_or_else(|| anyhow!("CreatePartitions returned no result"))?;
    check(
        r.error_code,
        format!("adding partitions to {name}"),
        r.error_message.as_ref(),
    )
}

/// What DescribeLogDirs tells of one broker: bytes per (topic, partition)
/// and, v4+, its volume's total and usable bytes.
#[derive(Debug, Clone, Default)]
pub struct LogDirs {
    pub sizes: BTreeMap<(String, i32), i64>,
    pub total_bytes: Option<i64>,
    pub usable_bytes: Option<i64>,
}

/// DescribeLogDirs of broker `node` (needs DESCRIBE on the cluster).
pub fn log_dirs(client: &mut Client, node: i32) -> Result<LogDirs> {
    let req = DescribeLogDirsRequest::default().with_topics(None);
    let (resp, _) = client.conn(node)?.send(&req)?;
    check(
        resp.error_code,
        format!("describing log dirs of {node}"),
        None,
    )?;
    let mut out = LogDirs::default();
    for d in resp.results {
        check(d.error_code, format!("log dir of broker {node}"), None)?;
        if d.total_bytes >= 0 {
            *out.total_bytes.get_or_insert(0) += d.total_bytes;
        }
        if d.usable_bytes >= 0 {
            *out.usable_bytes.get_or_insert(0) += d.usable_bytes;
        }
        for t in d.topics {
            for p in t.partitions {
                *out.sizes
                    .entry((t.name.to_string(), p.partition_index))
                    .or_default() += p.partition_size;
            }
        }
    }
    Ok(out)
}

/// Some configs (`keys`) of many topics in one DescribeConfigs: topic ->
/// key -> value. A topic the caller may not describe is left out.
pub fn configs_of(
    client: &mut Client,
    names: &[String],
    keys: &[&str],
) -> Result<BTreeMap<String, BTreeMap<String, Option<String>>>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let req = DescribeConfigsRequest::default().with_resources(
        names
            .iter()
            .map(|n| {
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(sb(n))
                    .with_configuration_keys(Some(keys.iter().map(|k| sb(k)).collect()))
            })
            .collect(),
    );
    let (resp, _) = client.admin_conn()?.send(&req)?;
    let mut out = BTreeMap::new();
    for r in resp.results {
        if r.error_code != 0 {
            continue;
        }
        let m: BTreeMap<String, Option<String>> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        out.insert(r.resource_name.to_string(), m);
    }
    Ok(out)
}
