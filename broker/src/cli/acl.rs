//! `shardline acl add|list|remove`: Kafka ACLs via CreateAcls, DescribeAcls
//! and DeleteAcls, with kafka-acls.sh's flags.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use super::client::{check, sb};
use super::Conn;
use crate::acl::model::{ANY, CLUSTER_NAME, MATCH};
use crate::acl::{Operation, PatternType, Permission, ResourceType};

#[derive(Args, Debug)]
pub struct AclArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: AclCommand,
}

/// The resources an ACL command is about.
#[derive(Args, Debug, Default)]
pub struct Resources {
    /// Topic name (or prefix with --resource-pattern-type prefixed); `*` is every topic.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Consumer group id (or prefix).
    #[arg(long)]
    pub group: Vec<String>,
    /// The cluster itself (CREATE topics, ALTER ACLs and users, ...).
    #[arg(long)]
    pub cluster: bool,
    /// Transactional id (or prefix).
    #[arg(long)]
    pub transactional_id: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: every principal x operation x resource given.
    Add {
        #[command(flatten)]
        resources: Resources,
        /// Principal to allow, e.g. User:alice or User:* (repeatable).
        #[arg(long)]
        allow_principal: Vec<String>,
        /// Principal to deny (repeatable); DENY wins over ALLOW.
        #[arg(long)]
        deny_principal: Vec<String>,
        /// Operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
        /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable).
        #[arg(long, required = true)]
        operation: Vec<String>,
        /// Client host the ACL applies to (an IP address), `*` for any.
        #[arg(long, default_value = "*")]
        host: String,
        /// literal or prefixed.
        #[arg(long, default_value = "literal")]
        resource_pattern_type: String,
    },
    /// List ACLs (all of them, or those of the resources given).
    List {
        #[command(flatten)]
        resources: Resources,
        /// Only ACLs of this principal.
        #[arg(long)]
        principal: Option<String>,
        /// any, match (every ACL that applies to the named resource), literal or prefixed.
        #[arg(long, default_value = "any")]
        resource_pattern_type: String,
    },
    /// Remove the ACLs matching the flags (unset flags match anything).
    Remove {
        #[command(flatten)]
        resources: Resources,
        /// Only ALLOW ACLs of this principal (repeatable).
        #[arg(long)]
        allow_principal: Vec<String>,
        /// Only DENY ACLs of this principal (repeatable).
        #[arg(long)]
        deny_principal: Vec<String>,
        /// Only ACLs of this operation (repeatable).
        #[arg(long)]
        operation: Vec<String>,
        /// Only ACLs of this host.
        #[arg(long)]
        host: Option<String>,
        /// any, match, literal or prefixed.
        #[arg(long, default_value = "literal")]
        resource_pattern_type: String,
    },
}

pub fn run(args: AclArgs) -> Result<()> {
    args.conn.apply_sasl()?;
    let mut client = super::client::connect(&args.conn.bootstrap)?;
    match args.command {
        AclCommand::Add {
            resources,
            allow_principal,
            deny_principal,
            operation,
            host,
            resource_pattern_type,
        } => {
            let pattern = pattern_code(&resource_pattern_type, false)?;
            let ops = operations(&operation)?;
            let resources = resource_list(&resources, true)?;
            if allow_principal.is_empty() && deny_principal.is_empty() {
                bail!("give --allow-principal or --deny-principal");
            }
            let mut creations = Vec::new();
            for (perm, principals) in [
                (Permission::Allow, &allow_principal),
                (Permission::Deny, &deny_principal),
            ] {
                for p in principals {
                    for (kind, name) in &resources {
                        for op in &ops {
                            creations.push(
                                AclCreation::default()
                                    .with_resource_type(kind.code())
                                    .with_resource_name(sb(name))
                                    .with_resource_pattern_type(pattern)
                                    .with_principal(sb(p))
                                    .with_host(sb(&host))
                                    .with_operation(op.code())
                                    .with_permission_type(perm.code()),
                            );
                        }
                    }
                }
            }
            let n = creations.len();
            let req = CreateAclsRequest::default().with_creations(creations);
            let (resp, _) = client.admin_conn()?.send(&req)?;
            for r in resp.results {
                check(r.error_code, "creating ACL", r.error_message.as_ref())?;
            }
            println!("added {n} ACL(s)");
            Ok(())
        }
        AclCommand::List {
            resources,
            principal,
            resource_pattern_type,
        } => {
            let pattern = pattern_code(&resource_pattern_type, true)?;
            let mut targets: Vec<(i8, Option<String>)> = resource_list(&resources, false)?
                .into_iter()
                .map(|(k, n)| (k.code(), Some(n)))
                .collect();
            if targets.is_empty() {
                targets.push((ANY, None));
            }
            println!(
                "{:<16} {:<24} {:<9} {:<20} {:<16} {:<16} PERMISSION",
                "RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION"
            );
            for (kind, name) in targets {
                let req = DescribeAclsRequest::default()
                    .with_resource_type_filter(kind)
                    .with_resource_name_filter(name.as_deref().map(sb))
                    .with_pattern_type_filter(pattern)
                    .with_principal_filter(principal.as_deref().map(sb))
                    .with_host_filter(None)
                    .with_operation(ANY)
                    .with_permission_type(ANY);
                let (resp, _) = client.admin_conn()?.send(&req)?;
                check(resp.error_code, "listing ACLs", resp.error_message.as_ref())?;
                for r in resp.resources {
                    for a in r.acls {
                        println!(
                            "{:<16} {:<24} {:<9} {:<20} {:<16} {:<16} {}",
                            code_name(r.resource_type, ResourceType::from_code),
                            r.resource_name.as_str(),
                            code_name(r.pattern_type, PatternType::from_code),
                            a.principal.as_str(),
                            a.host.as_str(),
                            code_name(a.operation, Operation::from_code),
                            code_name(a.permission_type, Permission::from_code),
                        );
                    }
                }
            }
            Ok(())
        }
        AclCommand::Remove {
            resources,
            allow_principal,
            deny_principal,
            operation,
            host,
            resource_pattern_type,
        } => {
            let pattern = pattern_code(&resource_pattern_type, true)?;
            let ops: Vec<i8> = if operation.is_empty() {
                vec![ANY]
            } else {
                operations(&operation)?.iter().map(|o| o.code()).collect()
            };
            let mut targets: Vec<(i8, Option<String>)> = resource_list(&resources, false)?
                .into_iter()
                .map(|(k, n)| (k.code(), Some(n)))
                .collect();
            if targets.is_empty() {
                targets.push((ANY, None));
            }
            let mut who: Vec<(i8, Option<&str>)> = Vec::new();
            who.extend(
                allow_principal
                    .iter()
                    .map(|p| (Permission::Allow.code(), Some(p.as_str()))),
            );
            who.extend(
                deny_principal
                    .iter()
                    .map(|p| (Permission::Deny.code(), Some(p.as_str()))),
            );
            if who.is_empty() {
                who.push((ANY, None));
            }
            let mut filters = Vec::new();
            for (kind, name) in &targets {
                for (perm, principal) in &who {
                    for op in &ops {
                        filters.push(
                            DeleteAclsFilter::default()
                                .with_resource_type_filter(*kind)
                                .with_resource_name_filter(name.as_deref().map(sb))
                                .with_pattern_type_filter(pattern)
                                .with_principal_filter(principal.map(sb))
                                .with_host_filter(host.as_deref().map(sb))
                                .with_operation(*op)
                                .with_permission_type(*perm),
                        );
                    }
                }
            }
            let req = DeleteAclsRequest::default().with_filters(filters);
            let (resp, _) = client.admin_conn()?.send(&req)?;
            let mut removed = 0;
            for r in resp.filter_results {
                check(r.error_code, "removing ACLs", r.error_message.as_ref())?;
                removed += r.matching_acls.len();
            }
            println!("removed {removed} ACL(s)");
            Ok(())
        }
    }
}

fn code_name<T: Copy + NameOf>(code: i8, parse: fn(i8) -> Option<T>) -> String {
    parse(code).map_or_else(|| format!("code {code}"), |v| v.name_of().to_string())
}

/// The Kafka name of a coded value (for `code_name`).
trait NameOf {
    fn name_of(self) -> &'static str;
}

macro_rules! name_of {
    ($($t:ty),*) => { $( impl NameOf for $t { fn name_of(self) -> &'static str { self.name() } } )* };
}
name_of!(ResourceType, PatternType, Operation, Permission);

fn pattern_code(s: &str, filter: bool) -> Result<i8> {
    match s.to_ascii_lowercase().as_str() {
        "literal" => Ok(PatternType::Literal.code()),
        "prefixed" => Ok(PatternType::Prefixed.code()),
        "any" if filter => Ok(ANY),
        "match" if filter => Ok(MATCH),
        _ if filter => bail!("--resource-pattern-type must be any, match, literal or prefixed"),
        _ => bail!("--resource-pattern-type must be literal or prefixed"),
    }
}

fn operations(names: &[String]) -> Result<Vec<Operation>> {
    names
        .iter()
        .map(|n| {
            // Accept kafka-acls.sh's CamelCase (IdempotentWrite) as well.
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
                .ok_or_else(|| anyhow::anyhow!("unknown --operation {n:?}"))
        })
        .collect()
}

fn resource_list(r: &Resources, required: bool) -> Result<Vec<(ResourceType, String)>> {
    let mut out: Vec<(ResourceType, String)> = Vec::new();
    out.extend(r.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
    out.extend(r.group.iter().map(|g| (ResourceType::Group, g.clone())));
    out.extend(
        r.transactional_id
            .iter()
            .map(|t| (ResourceType::TransactionalId, t.clone())),
    );
    if r.cluster {
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    if required && out.is_empty() {
        bail!("give a resource: --topic, --group, --cluster or --transactional-id");
    }
    Ok(out)
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
