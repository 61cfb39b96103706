//! `shardline topic ...`: CreateTopics, Metadata, DescribeConfigs,
//! ListOffsets, DeleteTopics, CreatePartitions (the requests are
//! `crate::ops::topics`, shared with the console).

use anyhow::Result;

use super::client::Client;
use super::TopicCommand;
use crate::ops::topics::{self as ops, RESOURCE_TOPIC};

pub fn run(bootstrap: &str, cmd: TopicCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => {
            ops::create(&mut client, &name, partitions, replication_factor, &config)?;
            println!("Created topic {name}.");
        }
        TopicCommand::List { internal } => {
            for t in ops::list(&mut client, internal)? {
                println!("{}", t.name);
            }
        }
        TopicCommand::Describe { name } => describe(&mut client, &name)?,
        TopicCommand::Delete { name } => {
            ops::delete(&mut client, &name)?;
            println!("Deleted topic {name}.");
        }
        TopicCommand::AddPartitions { name, num } => {
            ops::add_partitions(&mut client, &name, num)?;
            println!("Topic {name} now has {num} partitions.");
        }
    }
    Ok(())
}

fn describe(client: &mut Client, name: &str) -> Result<()> {
    let d = ops::describe(client, name)?;
    let mut overrides: Vec<String> = ops::configs(client, RESOURCE_TOPIC, name)?
        .into_iter()
        .filter(|c| c.is_override)
        .map(|c| {
            let v = match (&c.value, c.sensitive) {
                (_, true) => "<sensitive>".to_string(),
                (Some(v), _) => v.clone(),
                (None, _) => "null".into(),
            };
            format!("{}={v}", c.name)
        })
        .collect();
    overrides.sort();
    let parts = &d.partitions;
    let rf = parts.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
    println!(
        "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}",
        d.topic_id,
        parts.len()
    );
    println!("Configs: {}", overrides.join(","));
    println!(
        "{:<10} {:<7} {:<12} {:<12} {:>12} {:>15}",
        "PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"
    );
    let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in parts {
        let off = |m: &std::collections::BTreeMap<i32, i64>| {
            m.get(&p.partition).map_or("-".to_string(), i64::to_string)
        };
        println!(
            "{:<10} {:<7} {:<12} {:<12} {:>12} {:>15}{}",
            p.partition,
            p.leader,
            join(&p.replicas),
            join(&p.isr),
            off(&d.log_start),
            off(&d.log_end),
            if p.error != 0 {
                format!("  ({})", super::client::error_name(p.error))
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
