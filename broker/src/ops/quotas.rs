//! Client quotas via AlterClientQuotas and DescribeClientQuotas (KIP-546).

use anyhow::{bail, Result};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use shardline_client::{check, sb, Client};

/// An entity: (type, name) pairs, `user` and/or `client-id`; a `None` name
/// is the default entity of that type.
pub type Entity = Vec<(String, Option<String>)>;

/// An entity and its quotas (key, value).
pub type EntityQuotas = (Entity, Vec<(String, f64)>);

/// The quota keys Kafka knows.
pub const KEYS: [&str; 4] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

pub fn show_entity(parts: &[(String, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Set (`Some`) or remove (`None`) quota keys of one entity.
pub fn alter(client: &mut Client, entity: &Entity, ops: &[(String, Option<f64>)]) -> Result<()> {
    if entity.is_empty() {
        bail!("name an entity: a user and/or a client id (or their defaults)");
    }
    let data = entity
        .iter()
        .map(|(k, v)| {
            EntityData::default()
                .with_entity_type(sb(k))
                .with_entity_name(v.as_deref().map(sb))
        })
        .collect();
    let ops = ops
        .iter()
        .map(|(k, v)| match v {
            Some(v) => OpData::default().with_key(sb(k)).with_value(*v),
            None => OpData::default().with_key(sb(k)).with_remove(true),
        })
        .collect();
    let req = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(data).with_ops(ops)]);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    let shown = show_entity(entity);
    for r in resp.entries {
        check(r.error_code, &shown, r.error_message.as_ref())?;
    }
    Ok(())
}

/// The quotas of the entities matching `filter` (not strictly: an entity
/// with more parts matches too); an empty filter lists every entity.
pub fn describe(client: &mut Client, filter: &Entity) -> Result<Vec<EntityQuotas>> {
    let components = filter
        .iter()
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
    Ok(resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|p| {
                    (
                        p.entity_type.to_string(),
                        p.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let values = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            (entity, values)
        })
        .collect())
}
