//! Tenants: a tenant is a set of principals that own every topic, group
//! and transactional id starting with a prefix (`NAME.` by default), and
//! nothing else; made only of standard Kafka admin requests (see
//! `cli/tenant.rs` for the model); `tenants` rebuilds them from the ACLs.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
};
use shardline_client::{check, sb, Client};

use crate::acl::model::{ANY, CLUSTER_NAME};
use crate::acl::{Operation, PatternType, Permission, ResourceType};

/// The resources a tenant owns by prefix.
pub const OWNED: [ResourceType; 3] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::TransactionalId,
];

/// The quota keys `create` may set and `delete` removes.
const QUOTA_KEYS: [&str; 3] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
];

pub fn prefix_of(name: &str, prefix: Option<String>) -> Result<String> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
        bail!("tenant name {name:?} must be non-empty and without spaces");
    }
    let prefix = prefix.unwrap_or_else(|| format!("{name}."));
    if prefix.is_empty() {
        bail!("the prefix must not be empty: it would match every resource");
    }
    Ok(prefix)
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    op: Operation,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type.code())
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern.code())
        .with_principal(sb(principal))
        .with_host(sb("*"))
        .with_operation(op.code())
        .with_permission_type(Permission::Allow.code())
}

/// The user name of a `User:` principal (quotas are per user).
fn user_of(principal: &str) -> Option<&str> {
    principal.strip_prefix("User:")
}

pub fn create(
    client: &mut Client,
    prefix: &str,
    principals: &[String],
    quotas: &[(&str, f64)],
) -> Result<()> {
    let mut creations = Vec::new();
    for p in principals {
        for rt in OWNED {
            creations.push(acl(rt, prefix, PatternType::Prefixed, p, Operation::All));
        }
        creations.push(acl(
            ResourceType::Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
            p,
            Operation::IdempotentWrite,
        ));
    }
    let (resp, _) = client
        .admin_conn()?
        .send(&CreateAclsRequest::default().with_creations(creations))?;
    for r in &resp.results {
        check(r.error_code, "creating ACLs", r.error_message.as_ref())?;
    }
    if !quotas.is_empty() {
        let ops: Vec<OpData> = quotas
            .iter()
            .map(|(k, v)| OpData::default().with_key(sb(k)).with_value(*v))
            .collect();
        if !alter_user_quotas(client, principals, &ops, "setting quotas")? {
            bail!("quotas are per user: give the tenant at least one --user");
        }
    }
    Ok(())
}

/// Apply `ops` to the user entity of every `User:` principal; false if
/// there was none (quotas are per user).
fn alter_user_quotas(
    client: &mut Client,
    principals: &[String],
    ops: &[OpData],
    what: &str,
) -> Result<bool> {
    let entries: Vec<EntryData> = principals
        .iter()
        .filter_map(|p| user_of(p))
        .map(|user| {
            EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(sb("user"))
                    .with_entity_name(Some(sb(user)))])
                .with_ops(ops.to_vec())
        })
        .collect();
    if entries.is_empty() {
        return Ok(false);
    }
    let (resp, _) = client
        .admin_conn()?
        .send(&AlterClientQuotasRequest::default().with_entries(entries))?;
    for e in &resp.entries {
        check(e.error_code, what, e.error_message.as_ref())?;
    }
    Ok(true)
}

/// Principal -> the owned resource types they hold ALLOW ALL on, per prefix.
pub type Tenants = BTreeMap<String, BTreeMap<String, Vec<i8>>>;

pub fn tenants(client: &mut Client) -> Result<Tenants> {
    // kafka-protocol's defaults for the name, principal and host filters
    // are Some(""), which match nothing: ask for everything explicitly.
    let req = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(PatternType::Prefixed.code())
        .with_operation(Operation::All.code())
        .with_permission_type(Permission::Allow.code());
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check(
        resp.error_code,
        "describing ACLs",
        resp.error_message.as_ref(),
    )?;
    let mut out = Tenants::new();
    for r in resp.resources {
        if !OWNED.iter().any(|t| t.code() == r.resource_type) {
            continue;
        }
        for a in r.acls {
            out.entry(r.resource_name.to_string())
                .or_default()
                .entry(a.principal.to_string())
                .or_default()
                .push(r.resource_type);
        }
    }
    Ok(out)
}

pub fn delete(client: &mut Client, prefix: &str) -> Result<()> {
    let found = tenants(client)?;
    let Some(members) = found.get(prefix) else {
        bail!("RESOURCE_NOT_FOUND: no tenant with prefix {prefix:?}");
    };
    let principals: Vec<String> = members.keys().cloned().collect();
    let mut filters = Vec::new();
    for p in &principals {
        for rt in OWNED {
            filters.push(
                DeleteAclsFilter::default()
                    .with_resource_type_filter(rt.code())
                    .with_resource_name_filter(Some(sb(prefix)))
                    .with_pattern_type_filter(PatternType::Prefixed.code())
                    .with_principal_filter(Some(sb(p)))
                    .with_host_filter(None)
                    .with_operation(ANY)
                    .with_permission_type(ANY),
            );
        }
    }
    let (resp, _) = client
        .admin_conn()?
        .send(&DeleteAclsRequest::default().with_filters(filters))?;
    for r in &resp.filter_results {
        check(r.error_code, "deleting ACLs", r.error_message.as_ref())?;
    }
    // Quotas set by `create`: remove the keys it may have set.
    let ops: Vec<OpData> = QUOTA_KEYS
        .iter()
        .map(|k| OpData::default().with_key(sb(k)).with_remove(true))
        .collect();
    alter_user_quotas(client, &principals, &ops, "removing quotas")?;
    Ok(())
}

/// Tenants whose principals hold all three kinds of owned resource:
/// (prefix, principals).
pub fn list(client: &mut Client) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for (prefix, members) in tenants(client)? {
        let full: Vec<String> = members
            .iter()
            .filter(|(_, types)| OWNED.iter().all(|t| types.contains(&t.code())))
            .map(|(p, _)| p.clone())
            .collect();
        if !full.is_empty() {
            out.push((prefix, full));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(prefix_of("acme", None).unwrap(), "acme.");
        assert_eq!(prefix_of("acme", Some("acme-".into())).unwrap(), "acme-");
        assert!(prefix_of("", None).is_err());
        assert!(prefix_of("a b", None).is_err());
        assert!(prefix_of("acme", Some(String::new())).is_err());
    }

    #[test]
    fn quotas_go_to_users_only() {
        assert_eq!(user_of("User:alice"), Some("alice"));
        assert_eq!(user_of("Group:ops"), None);
    }
}
