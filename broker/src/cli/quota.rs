//! `shardline quota ...`: client quotas via AlterClientQuotas and
//! DescribeClientQuotas (KIP-546), against any Kafka-compatible broker.

use anyhow::{bail, Result};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use super::client::{check, sb, Client};
use super::{QuotaCommand, QuotaEntityArgs, QuotaValues};

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

fn show_entity(parts: &[(String, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn alter(client: &mut Client, e: &QuotaEntityArgs, ops: Vec<OpData>) -> Result<()> {
    let parts = entity_parts(e);
    if parts.is_empty() {
        bail!("name an entity: --user/--default-user and/or --client-id/--default-client-id");
    }
    let entity = parts
        .iter()
        .map(|(k, v)| {
            EntityData::default()
                .with_entity_type(sb(k))
                .with_entity_name(v.as_deref().map(sb))
        })
        .collect();
    let req = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)]);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    let shown = show_entity(
        &parts
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>(),
    );
    for r in resp.entries {
        check(r.error_code, &shown, r.error_message.as_ref())?;
    }
    Ok(())
}

fn set(client: &mut Client, e: &QuotaEntityArgs, v: &QuotaValues) -> Result<()> {
    let pairs = [
        ("producer_byte_rate", v.producer_byte_rate),
        ("consumer_byte_rate", v.consumer_byte_rate),
        ("request_percentage", v.request_percentage),
        ("controller_mutation_rate", v.controller_mutation_rate),
    ];
    let ops: Vec<OpData> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| OpData::default().with_key(sb(k)).with_value(v)))
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
    let ops = keys
        .iter()
        .map(|k| OpData::default().with_key(sb(k)).with_remove(true))
        .collect();
    alter(client, e, ops)?;
    println!("quotas removed: {}", keys.join(", "));
    Ok(())
}

fn list(client: &mut Client, e: &QuotaEntityArgs) -> Result<()> {
    // Entity flags narrow the listing (EXACT or DEFAULT), not strictly.
    let components = entity_parts(e)
        .into_iter()
        .map(|(k, v)| {
            ComponentData::default()
                .with_entity_type(sb(k))
                .with_match_type(if v.is_some() { 0 } else { 1 })
                .with_match(v.as_deref().map(sb))
        })
        .collect();
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(false);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check(
        resp.error_code,
        "describing client quotas",
        resp.error_message.as_ref(),
    )?;
    println!("{:<48} QUOTAS", "ENTITY");
    for entry in resp.entries.unwrap_or_default() {
        let parts: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let values: Vec<String> = entry
            .values
            .iter()
            .map(|v| format!("{}={}", v.key.as_str(), v.value))
            .collect();
        println!("{:<48} {}", show_entity(&parts), values.join(", "));
    }
    Ok(())
}
