//! Security: SCRAM users, ACLs, client quotas and tenants (list, create,
//! delete), each through the same admin requests as the CLI.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::router::{ApiResult, Reply};
use super::super::{done, ok, Call};
use crate::acl::model::{ANY, CLUSTER_NAME};
use crate::acl::{Operation, PatternType, Permission, ResourceType};
use crate::ops::acls::{self, Binding, Filter};
use crate::ops::{quotas, tenants, users};
use crate::security::scram::{MAX_ITERATIONS, MIN_ITERATIONS};

pub fn list_users(c: &mut Call) -> ApiResult {
    c.kafka(|client| {
        let rows: Vec<Value> = users::list(client)?
            .into_iter()
            .map(|(user, mechs)| {
                json!({
                    "user": user,
                    "credentials": mechs.iter().map(|(m, i)| json!({"mechanism": m, "iterations": i})).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({"users": rows}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    /// SCRAM-SHA-256, SCRAM-SHA-512 or both (default).
    mechanism: Option<String>,
    iterations: Option<u32>,
}

pub fn create_user(c: &mut Call) -> ApiResult {
    let u: NewUser = c.body()?;
    super::name("name", &u.name)?;
    if u.password.is_empty() {
        return Err(ApiError::bad("password must not be empty"));
    }
    let mechanism = u.mechanism.unwrap_or_else(|| "both".into());
    if !["SCRAM-SHA-256", "SCRAM-SHA-512", "both"].contains(&mechanism.as_str()) {
        return Err(ApiError::bad(format!(
            "mechanism {mechanism:?}: SCRAM-SHA-256, SCRAM-SHA-512 or both"
        )));
    }
    let iterations = u.iterations.unwrap_or(8192);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(ApiError::bad(format!(
            "iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"
        )));
    }
    c.kafka(|client| {
        Ok(users::create(
            client,
            &u.name,
            &u.password,
            &mechanism,
            iterations,
        )?)
    })?;
    Ok(Reply::created(json!({"ok": true, "user": u.name})))
}

pub fn delete_user(c: &mut Call) -> ApiResult {
    let name = c.param("user").to_string();
    super::name("user", &name)?;
    c.kafka(|client| Ok(users::delete(client, &name)?))?;
    done(&format!("deleted user {name}"))
}

fn resource_type(s: &str) -> Result<i8, ApiError> {
    ResourceType::parse(s)
        .filter(|r| {
            matches!(
                r,
                ResourceType::Topic
                    | ResourceType::Group
                    | ResourceType::Cluster
                    | ResourceType::TransactionalId
            )
        })
        .map(|r| r.code())
        .ok_or_else(|| {
            ApiError::bad(format!(
                "resource_type {s:?}: topic, group, cluster or transactional_id"
            ))
        })
}

fn binding_json(b: &Binding) -> Value {
    let name = |code, f: fn(i8) -> Option<&'static str>| f(code).map(str::to_ascii_lowercase);
    json!({
        "resource_type": name(b.resource_type, |c| ResourceType::from_code(c).map(ResourceType::name)),
        "resource_name": b.resource_name,
        "pattern_type": name(b.pattern_type, |c| PatternType::from_code(c).map(PatternType::name)),
        "principal": b.principal,
        "host": b.host,
        "operation": name(b.operation, |c| Operation::from_code(c).map(Operation::name)),
        "permission": name(b.permission, |c| Permission::from_code(c).map(Permission::name)),
    })
}

/// An ACL filter from the query: every field optional (any).
fn filter_of(c: &Call) -> Result<Filter, ApiError> {
    let mut f = Filter::any();
    if let Some(t) = c.query("resource_type") {
        f.resource_type = resource_type(t)?;
    }
    f.resource_name = c.query("resource_name").map(str::to_string);
    if let Some(p) = c.query("pattern_type") {
        f.pattern_type = acls::pattern_code(p, true).map_err(|e| ApiError::bad(e.to_string()))?;
    }
    f.principal = c.query("principal").map(str::to_string);
    f.host = c.query("host").map(str::to_string);
    if let Some(o) = c.query("operation") {
        f.operation = acls::operation(o)
            .map_err(|e| ApiError::bad(e.to_string()))?
            .code();
    }
    if let Some(p) = c.query("permission") {
        f.permission = Permission::parse(p)
            .ok_or_else(|| ApiError::bad(format!("permission {p:?}: allow or deny")))?
            .code();
    }
    Ok(f)
}

pub fn list_acls(c: &mut Call) -> ApiResult {
    let f = filter_of(c)?;
    c.kafka(|client| {
        let rows: Vec<Value> = acls::describe(client, &f)?
            .iter()
            .map(binding_json)
            .collect();
        Ok(json!({"acls": rows}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAcl {
    resource_type: String,
    resource_name: Option<String>,
    pattern_type: Option<String>,
    principal: String,
    host: Option<String>,
    operation: String,
    permission: Option<String>,
}

pub fn create_acl(c: &mut Call) -> ApiResult {
    let a: NewAcl = c.body()?;
    let rt = resource_type(&a.resource_type)?;
    let name = match (rt == ResourceType::Cluster.code(), a.resource_name) {
        (true, _) => CLUSTER_NAME.to_string(),
        (false, Some(n)) if !n.is_empty() => n,
        (false, _) => return Err(ApiError::bad("resource_name is required")),
    };
    let pattern = acls::pattern_code(a.pattern_type.as_deref().unwrap_or("literal"), false)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    if !a.principal.contains(':') || a.principal.ends_with(':') {
        return Err(ApiError::bad(format!(
            "principal {:?} is not TYPE:NAME (e.g. User:alice)",
            a.principal
        )));
    }
    let op = acls::operation(&a.operation).map_err(|e| ApiError::bad(e.to_string()))?;
    let perm = Permission::parse(a.permission.as_deref().unwrap_or("allow"))
        .ok_or_else(|| ApiError::bad("permission: allow or deny"))?;
    let b = Binding {
        resource_type: rt,
        resource_name: name,
        pattern_type: pattern,
        principal: a.principal,
        host: a.host.unwrap_or_else(|| "*".into()),
        operation: op.code(),
        permission: perm.code(),
    };
    c.kafka(|client| Ok(acls::create(client, std::slice::from_ref(&b))?))?;
    Ok(Reply::created(json!({"ok": true, "acl": binding_json(&b)})))
}

/// Delete the ACLs matching the query's filter; a filter is required (an
/// empty one would remove every ACL).
pub fn delete_acls(c: &mut Call) -> ApiResult {
    if c.query.is_empty() {
        return Err(ApiError::bad(
            "give a filter (resource_type, resource_name, principal, ...): an empty one would \
             delete every ACL",
        ));
    }
    let mut f = filter_of(c)?;
    if c.query("pattern_type").is_none() {
        f.pattern_type = ANY;
    }
    c.kafka(|client| {
        let n = acls::delete(client, &[f])?;
        Ok(json!({"ok": true, "deleted": n}))
    })
    .and_then(ok)
}

/// The quota entity of the query: `user` / `client_id` (empty value: the
/// default entity of that type).
fn entity_of(c: &Call) -> quotas::Entity {
    let mut e = Vec::new();
    for (q, t) in [("user", "user"), ("client_id", "client-id")] {
        if let Some(v) = c.query(q) {
            e.push((t.to_string(), (!v.is_empty()).then(|| v.to_string())));
        }
    }
    e
}

fn entity_json(e: &quotas::Entity) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in e {
        m.insert(k.replace('-', "_"), json!(v));
    }
    Value::Object(m)
}

pub fn list_quotas(c: &mut Call) -> ApiResult {
    let filter = entity_of(c);
    c.kafka(|client| {
        let rows: Vec<Value> = quotas::describe(client, &filter)?
            .iter()
            .map(|(e, v)| {
                json!({
                    "entity": entity_json(e),
                    "quotas": v.iter().cloned().collect::<BTreeMap<String, f64>>(),
                })
            })
            .collect();
        Ok(json!({"quotas": rows}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntity {
    user: Option<String>,
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuotas {
    /// `{"user": "alice"}`, `{"client_id": "app"}`, both; `""` = default.
    entity: QuotaEntity,
    quotas: BTreeMap<String, f64>,
}

pub fn set_quotas(c: &mut Call) -> ApiResult {
    let s: SetQuotas = c.body()?;
    let mut entity: quotas::Entity = Vec::new();
    if let Some(u) = s.entity.user {
        entity.push(("user".into(), (!u.is_empty()).then_some(u)));
    }
    if let Some(id) = s.entity.client_id {
        entity.push(("client-id".into(), (!id.is_empty()).then_some(id)));
    }
    if entity.is_empty() {
        return Err(ApiError::bad(
            "entity needs user and/or client_id (\"\" for the default)",
        ));
    }
    if s.quotas.is_empty() {
        return Err(ApiError::bad("quotas must name at least one key"));
    }
    for (k, v) in &s.quotas {
        if !quotas::KEYS.contains(&k.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown quota {k:?}; known: {}",
                quotas::KEYS.join(", ")
            )));
        }
        if !v.is_finite() || *v <= 0.0 {
            return Err(ApiError::bad(format!(
                "quota {k} must be a positive number"
            )));
        }
    }
    let ops: Vec<(String, Option<f64>)> = s
        .quotas
        .iter()
        .map(|(k, v)| (k.clone(), Some(*v)))
        .collect();
    c.kafka(|client| Ok(quotas::alter(client, &entity, &ops)?))?;
    done(&format!("quotas of {} set", quotas::show_entity(&entity)))
}

/// Remove quota keys (`key`, repeatable; default every key) of the query's
/// entity.
pub fn delete_quotas(c: &mut Call) -> ApiResult {
    let entity = entity_of(c);
    if entity.is_empty() {
        return Err(ApiError::bad(
            "give user and/or client_id in the query (empty for the default)",
        ));
    }
    let keys: Vec<String> = c
        .query
        .iter()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(k) = keys.iter().find(|k| !quotas::KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad(format!("unknown quota {k:?}")));
    }
    let keys = if keys.is_empty() {
        quotas::KEYS.iter().map(|k| k.to_string()).collect()
    } else {
        keys
    };
    let ops: Vec<(String, Option<f64>)> = keys.into_iter().map(|k| (k, None)).collect();
    c.kafka(|client| Ok(quotas::alter(client, &entity, &ops)?))?;
    done(&format!(
        "quotas of {} removed",
        quotas::show_entity(&entity)
    ))
}

pub fn list_tenants(c: &mut Call) -> ApiResult {
    c.kafka(|client| {
        let rows: Vec<Value> = tenants::list(client)?
            .into_iter()
            .map(|(prefix, principals)| json!({"prefix": prefix, "principals": principals}))
            .collect();
        Ok(json!({"tenants": rows}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    prefix: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    quotas: BTreeMap<String, f64>,
}

pub fn create_tenant(c: &mut Call) -> ApiResult {
    let t: NewTenant = c.body()?;
    let prefix =
        tenants::prefix_of(&t.name, t.prefix.clone()).map_err(|e| ApiError::bad(e.to_string()))?;
    let mut all: Vec<String> = t.users.iter().map(|u| format!("User:{u}")).collect();
    all.extend(t.principals.iter().cloned());
    if all.is_empty() {
        return Err(ApiError::bad(
            "a tenant needs at least one user or principal",
        ));
    }
    for p in &all {
        if !p.contains(':') || p.ends_with(':') || p.ends_with(":*") {
            return Err(ApiError::bad(format!(
                "principal {p:?} is not TYPE:NAME of one principal"
            )));
        }
    }
    let allowed = [
        "producer_byte_rate",
        "consumer_byte_rate",
        "request_percentage",
    ];
    for (k, v) in &t.quotas {
        if !allowed.contains(&k.as_str()) || !v.is_finite() || *v <= 0.0 {
            return Err(ApiError::bad(format!(
                "quota {k}={v}: one of {} and positive",
                allowed.join(", ")
            )));
        }
    }
    if !t.quotas.is_empty() && t.users.is_empty() {
        return Err(ApiError::bad(
            "quotas are per user: give the tenant at least one user",
        ));
    }
    let quotas: Vec<(&str, f64)> = t.quotas.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    c.kafka(|client| Ok(tenants::create(client, &prefix, &all, &quotas)?))?;
    Ok(Reply::created(
        json!({"ok": true, "tenant": t.name, "prefix": prefix, "principals": all}),
    ))
}

pub fn delete_tenant(c: &mut Call) -> ApiResult {
    let name = c.param("tenant").to_string();
    let prefix = tenants::prefix_of(&name, c.query("prefix").map(str::to_string))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    c.kafka(|client| Ok(tenants::delete(client, &prefix)?))?;
    done(&format!("tenant {name} deleted"))
}
