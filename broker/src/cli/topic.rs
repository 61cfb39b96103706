//! `shardline topic ...`: CreateTopics, Metadata, DescribeConfigs,
//! ListOffsets, DeleteTopics, CreatePartitions.

use anyhow::{anyhow, Result};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
};

use super::client::{check, check_created, creatable_topic, sb, topic_name, Client};
use super::offsets::{leaders, list_offsets, topic_partitions, EARLIEST, LATEST};
use super::TopicCommand;

const TIMEOUT_MS: i32 = 30_000;
const RESOURCE_TOPIC: i8 = 2;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;

pub fn run(bootstrap: &str, cmd: TopicCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => create(&mut client, &name, partitions, replication_factor, &config),
        TopicCommand::List { internal } => list(&mut client, internal),
        TopicCommand::Describe { name } => describe(&mut client, &name),
        TopicCommand::Delete { name } => delete(&mut client, &name),
        TopicCommand::AddPartitions { name, num } => add_partitions(&mut client, &name, num),
    }
}

fn create(
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
    // Defaults (-1) need CreateTopics v4; older brokers reject them with
    // INVALID_PARTITIONS / INVALID_REPLICATION_FACTOR, reported below.
    let (resp, _) = conn.send(&req)?;
    check_created(&resp, name, false)?;
    println!("Created topic {name}.");
    Ok(())
}

fn list(client: &mut Client, internal: bool) -> Result<()> {
    let md = client.metadata(None)?;
    let mut names: Vec<String> = md
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// Topic configs that differ from the broker's defaults.
pub fn is_override(c: &DescribeConfigsResourceResult, version: i16) -> bool {
    if version == 0 {
        !c.is_default
    } else {
        c.config_source == SOURCE_DYNAMIC_TOPIC
    }
}

fn describe(client: &mut Client, name: &str) -> Result<()> {
    let parts = topic_partitions(client, name)?;
    let md = client.metadata(Some(&[name.to_string()]))?;
    let topic_id = md
        .topics
        .first()
        .map(|t| t.topic_id.to_string())
        .unwrap_or_default();
    let rf = parts.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
    let healthy: Vec<i32> = parts
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| p.partition)
        .collect();
    let ldr = leaders(&parts, &healthy, name)?;
    let start = list_offsets(client, name, &ldr, EARLIEST)?;
    let end = list_offsets(client, name, &ldr, LATEST)?;

    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(sb(name))
            .with_configuration_keys(None)]);
    let (resp, version) = client.admin_conn()?.send(&req)?;
    let mut overrides = Vec::new();
    for r in &resp.results {
        check(
            r.error_code,
            format!("describing configs of {name}"),
            r.error_message.as_ref(),
        )?;
        for c in &r.configs {
            if is_override(c, version) {
                let v = match (&c.value, c.is_sensitive) {
                    (_, true) => "<sensitive>".to_string(),
                    (Some(v), _) => v.to_string(),
                    (None, _) => "null".into(),
                };
                overrides.push(format!("{}={v}", c.name.as_str()));
            }
        }
    }
    overrides.sort();

    println!(
        "Topic: {name}\tTopicId: {topic_id}\tPartitionCount: {}\tReplicationFactor: {rf}",
        parts.len()
    );
    println!("Configs: {}", overrides.join(","));
    println!(
        "{:<10} {:<7} {:<12} {:<12} {:>12} {:>15}",
        "PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"
    );
    let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &parts {
        let off = |m: &std::collections::BTreeMap<i32, i64>| {
            m.get(&p.partition).map_or("-".to_string(), i64::to_string)
        };
        println!(
            "{:<10} {:<7} {:<12} {:<12} {:>12} {:>15}{}",
            p.partition,
            p.leader,
            join(&p.replicas),
            join(&p.isr),
            off(&start),
            off(&end),
            if p.error != 0 {
                format!("  ({})", super::client::error_name(p.error))
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn delete(client: &mut Client, name: &str) -> Result<()> {
    let conn = client.admin_conn()?;
    let version = conn.version(kafka_protocol::messages::ApiKey::DeleteTopics)?;
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
    )?;
    println!("Deleted topic {name}.");
    Ok(())
}

fn add_partitions(client: &mut Client, name: &str, num: i32) -> Result<()> {
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
    )?;
    println!("Topic {name} now has {num} partitions.");
    Ok(())
}
