//! `shardline quota ...`: client quotas via AlterClientQuotas and
//! DescribeClientQuotas (KIP-546), against any Kafka-compatible broker.

use anyhow::{bail, Result};

use super::client::Client;
use super::{QuotaCommand, QuotaEntityArgs, QuotaValues};
use crate::ops::quotas as ops;

pub fn run(bootstrap: &str, cmd: QuotaCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        QuotaCommand::Set { entity, values } => set(&mut client, &entity, &values),
        QuotaCommand::Remove { entity, keys } => remove(&mut client, &entity, &keys),
        QuotaCommand::List { entity } => list(&mut client, &entity),
    }
}

/// (type, name) pairs of the entity the flags name; None = default entity.
fn entity_parts(e: &QuotaEntityArgs) -> Vec<(&'static str, Option<String>)> {
    let mut out = Vec::new();
    if let Some(u) = &e.user {
        out.push(("user", Some(u.clone())));
    } else if e.default_user {
        out.push(("user", None));
    }
    if let Some(c) = &e.client_id {
        out.push(("client-id", Some(c.clone())));
    } else if e.default_client_id {
        out.push(("client-id", None));
    }
    out
}

fn alter(client: &mut Client, e: &QuotaEntityArgs, ops: Vec<(String, Option<f64>)>) -> Result<()> {
    let parts: ops::Entity = entity_parts(e)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if parts.is_empty() {
        bail!("name an entity: --user/--default-user and/or --client-id/--default-client-id");
    }
    ops::alter(client, &parts, &ops)
}

fn set(client: &mut Client, e: &QuotaEntityArgs, v: &QuotaValues) -> Result<()> {
    let pairs = [
        ("producer_byte_rate", v.producer_byte_rate),
        ("consumer_byte_rate", v.consumer_byte_rate),
        ("request_percentage", v.request_percentage),
        ("controller_mutation_rate", v.controller_mutation_rate),
    ];
    let ops: Vec<(String, Option<f64>)> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), Some(v))))
        .collect();
    if ops.is_empty() {
        bail!("give at least one of --producer-byte-rate, --consumer-byte-rate, --request-percentage, --controller-mutation-rate");
    }
    alter(client, e, ops)?;
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    println!("quotas set: {}", set.join(", "));
    Ok(())
}

fn remove(client: &mut Client, e: &QuotaEntityArgs, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        bail!("give the quota keys to remove with --key (repeatable)");
    }
    let ops = keys.iter().map(|k| (k.clone(), None)).collect();
    alter(client, e, ops)?;
    println!("quotas removed: {}", keys.join(", "));
    Ok(())
}

fn list(client: &mut Client, e: &QuotaEntityArgs) -> Result<()> {
    // Entity flags narrow the listing (EXACT or DEFAULT), not strictly.
    let filter: ops::Entity = entity_parts(e)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    println!("{:<48} QUOTAS", "ENTITY");
    for (entity, values) in ops::describe(client, &filter)? {
        let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{:<48} {}", ops::show_entity(&entity), values.join(", "));
    }
    Ok(())
}
