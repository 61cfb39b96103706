//! ACLs via CreateAcls, DescribeAcls and DeleteAcls, with kafka-acls.sh's
//! names for operations and pattern types.

use anyhow::{bail, Result};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use shardline_client::{check, sb, Client};

use crate::acl::model::{ANY, MATCH};
use crate::acl::{Operation, PatternType, Permission, ResourceType};

/// One ACL, by its wire codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter: `None` and the `ANY` codes match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl Filter {
    pub fn any() -> Filter {
        Filter {
            resource_type: ANY,
            resource_name: None,
            pattern_type: ANY,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        }
    }
}

/// The ACLs matching `f` (DescribeAcls, to the controller).
pub fn describe(client: &mut Client, f: &Filter) -> Result<Vec<Binding>> {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(f.resource_type)
        .with_resource_name_filter(f.resource_name.as_deref().map(sb))
        .with_pattern_type_filter(f.pattern_type)
        .with_principal_filter(f.principal.as_deref().map(sb))
        .with_host_filter(f.host.as_deref().map(sb))
        .with_operation(f.operation)
        .with_permission_type(f.permission);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check(resp.error_code, "listing ACLs", resp.error_message.as_ref())?;
    let mut out = Vec::new();
    for r in resp.resources {
        for a in r.acls {
            out.push(Binding {
                resource_type: r.resource_type,
                resource_name: r.resource_name.to_string(),
                pattern_type: r.pattern_type,
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: a.operation,
                permission: a.permission_type,
            });
        }
    }
    Ok(out)
}

pub fn create(client: &mut Client, bindings: &[Binding]) -> Result<()> {
    let creations = bindings
        .iter()
        .map(|b| {
            AclCreation::default()
                .with_resource_type(b.resource_type)
                .with_resource_name(sb(&b.resource_name))
                .with_resource_pattern_type(b.pattern_type)
                .with_principal(sb(&b.principal))
                .with_host(sb(&b.host))
                .with_operation(b.operation)
                .with_permission_type(b.permission)
        })
        .collect();
    let req = CreateAclsRequest::default().with_creations(creations);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    for r in resp.results {
        check(r.error_code, "creating ACL", r.error_message.as_ref())?;
    }
    Ok(())
}

/// Delete the ACLs matching any of `filters`; how many went.
pub fn delete(client: &mut Client, filters: &[Filter]) -> Result<usize> {
    let req = DeleteAclsRequest::default().with_filters(
        filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type)
                    .with_resource_name_filter(f.resource_name.as_deref().map(sb))
                    .with_pattern_type_filter(f.pattern_type)
                    .with_principal_filter(f.principal.as_deref().map(sb))
                    .with_host_filter(f.host.as_deref().map(sb))
                    .with_operation(f.operation)
                    .with_permission_type(f.permission)
            })
            .collect(),
    );
    let (resp, _) = client.admin_conn()?.send(&req)?;
    let mut removed = 0;
    for r in resp.filter_results {
        check(r.error_code, "removing ACLs", r.error_message.as_ref())?;
        removed += r.matching_acls.len();
    }
    Ok(removed)
}

/// The Kafka name of a code (`code N` for one we do not know).
pub fn code_name<T: Copy + NameOf>(code: i8, parse: fn(i8) -> Option<T>) -> String {
    parse(code).map_or_else(|| format!("code {code}"), |v| v.name_of().to_string())
}

/// The Kafka name of a coded value (for `code_name`).
pub trait NameOf {
    fn name_of(self) -> &'static str;
}

macro_rules! name_of {
    ($($t:ty),*) => { $( impl NameOf for $t { fn name_of(self) -> &'static str { self.name() } } )* };
}
name_of!(ResourceType, PatternType, Operation, Permission);

/// `literal`, `prefixed`, and for filters `any` and `match`.
pub fn pattern_code(s: &str, filter: bool) -> Result<i8> {
    match s.to_ascii_lowercase().as_str() {
        "literal" => Ok(PatternType::Literal.code()),
        "prefixed" => Ok(PatternType::Prefixed.code()),
        "any" if filter => Ok(ANY),
        "match" if filter => Ok(MATCH),
        _ if filter => bail!("resource pattern type must be any, match, literal or prefixed"),
        _ => bail!("resource pattern type must be literal or prefixed"),
    }
}

/// One operation by name: `Read`, `IdempotentWrite` (kafka-acls.sh's
/// CamelCase), `describe-configs`, `ALL`...
pub fn operation(n: &str) -> Result<Operation> {
    let snake: String = n
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter().chain(std::iter::once(c))
        })
        .collect();
    Operation::parse(n)
        .or_else(|| Operation::parse(&snake))
        .ok_or_else(|| anyhow::anyhow!("unknown operation {n:?}"))
}

pub fn operations(names: &[String]) -> Result<Vec<Operation>> {
    names.iter().map(|n| operation(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_like_kafka_acls() {
        let ops = operations(&[
            "Read".into(),
            "IdempotentWrite".into(),
            "describe-configs".into(),
            "ALL".into(),
        ])
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Operation::Read,
                Operation::IdempotentWrite,
                Operation::DescribeConfigs,
                Operation::All
            ]
        );
        assert!(operations(&["Fly".into()]).is_err());
        assert_eq!(pattern_code("PREFIXED", false).unwrap(), 4);
        assert!(pattern_code("match", false).is_err());
        assert_eq!(pattern_code("match", true).unwrap(), MATCH);
    }
}
