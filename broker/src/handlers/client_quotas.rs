//! DescribeClientQuotas and AlterClientQuotas (KIP-546), v0–1.
//!
//! Alter validates every entry on its own (per-entity error codes, as
//! Kafka), then applies the valid ones together with one write of
//! `quotas.json`; `validate_only` stops before applying. The write is a
//! small synchronous fsync on this shard, like the SCRAM credential store:
//! quota changes are rare admin operations.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribeEntity, EntryData as DescribeEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::Operation;
use crate::quotas::entity::{Entity, QuotaKey};
use crate::quotas::filter::Filter;
use crate::quotas::store::Change;
use crate::shard_state::ShardState;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn describe(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // Kafka: DESCRIBE_CONFIGS on the cluster.
    if !ctx.cluster_allowed(state, Operation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(
                "describing quotas needs DESCRIBE_CONFIGS on the cluster",
            )))
            .with_entries(None);
    }
    let filter = Filter::new(
        req.components.iter().map(|c| {
            (
                c.entity_type.as_str(),
                c.match_type,
                c._match.as_ref().map(|m| m.as_str()),
            )
        }),
        req.strict,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(why) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(&why)))
                .with_entries(None)
        }
    };
    let snap = state.quotas.snapshot();
    let entries = snap
        .entities
        .iter()
        .filter(|(e, _)| filter.matches(e))
        .map(|(e, values)| {
            DescribeEntry::default()
                .with_entity(
                    e.parts()
                        .into_iter()
                        .map(|(kind, name)| {
                            DescribeEntity::default()
                                .with_entity_type(sb(kind))
                                .with_entity_name(name.map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k.name())).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}

/// Check one AlterClientQuotas entry; `Err` is its INVALID_REQUEST message.
fn validate_entry(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Change, String> {
    let entity = Entity::from_parts(entry.entity.iter().map(|e| {
        (
            e.entity_type.as_str(),
            e.entity_name.as_ref().map(|n| n.as_str()),
        )
    }))?;
    let mut seen = BTreeSet::new();
    let mut ops = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let name = op.key.as_str();
        let key = QuotaKey::from_name(name).ok_or_else(|| {
            format!(
                "unknown quota key {name:?} (known: producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate)"
            )
        })?;
        if !seen.insert(key) {
            return Err(format!("quota key {name} given twice for {entity}"));
        }
        if op.remove {
            ops.push((key, None));
        } else {
            key.validate(op.value)?;
            ops.push((key, Some(op.value)));
        }
    }
    Ok((entity, ops))
}

pub async fn alter(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut results: Vec<(i16, Option<String>)> = Vec::with_capacity(req.entries.len());
    // Kafka: ALTER_CONFIGS on the cluster, else every entry is refused.
    if !ctx.cluster_allowed(state, Operation::AlterConfigs) {
        let why = "changing quotas needs ALTER_CONFIGS on the cluster";
        for _ in &req.entries {
            results.push((
                ResponseError::ClusterAuthorizationFailed.code(),
                Some(why.to_string()),
            ));
        }
        return respond(&req, results);
    }
    let mut changes = Vec::new();
    let mut valid_at = Vec::new();
    let mut entities_seen = BTreeSet::new();
    for (i, entry) in req.entries.iter().enumerate() {
        let checked = validate_entry(entry).and_then(|c| {
            if entities_seen.insert(c.0.clone()) {
                Ok(c)
            } else {
                Err(format!("{} appears twice in the request", c.0))
            }
        });
        match checked {
            Ok(change) => {
                results.push((0, None));
                changes.push(change);
                valid_at.push(i);
            }
            Err(why) => results.push((ResponseError::InvalidRequest.code(), Some(why))),
        }
    }
    if !req.validate_only && !changes.is_empty() {
        match state.quotas.apply(changes.clone()).await {
            Ok(()) => {
                for (entity, ops) in &changes {
                    tracing::info!(
                        "client quotas of {entity} changed by {} ({}): {}",
                        ctx.principal,
                        ctx.peer,
                        ops.iter()
                            .map(|(k, v)| match v {
                                Some(v) => format!("{}={v}", k.name()),
                                None => format!("{} removed", k.name()),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            Err(why) => {
                tracing::error!("changing client quotas: {why}");
                for i in valid_at {
                    results[i] = (ResponseError::UnknownServerError.code(), Some(why.clone()));
                }
            }
        }
    }
    respond(&req, results)
}

/// One result per entry, naming its entity as the request did.
fn respond(
    req: &AlterClientQuotasRequest,
    results: Vec<(i16, Option<String>)>,
) -> AlterClientQuotasResponse {
    let entries = req
        .entries
        .iter()
        .zip(results)
        .map(|(entry, (code, message))| {
            AlterEntry::default()
                .with_error_code(code)
                .with_error_message(message.as_deref().map(sb))
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            AlterEntity::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
