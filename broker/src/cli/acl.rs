//! `shardline acl add|list|remove`: Kafka ACLs via CreateAcls, DescribeAcls
//! and DeleteAcls, with kafka-acls.sh's flags (the requests are
//! `crate::ops::acls`, shared with the console).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Conn;
use crate::acl::model::{ANY, CLUSTER_NAME};
use crate::acl::{Operation, PatternType, Permission, ResourceType};
use crate::ops::acls::{self as ops, code_name, operations, pattern_code, Binding, Filter};

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
            let mut bindings = Vec::new();
            for (perm, principals) in [
                (Permission::Allow, &allow_principal),
                (Permission::Deny, &deny_principal),
            ] {
                for p in principals {
                    for (kind, name) in &resources {
                        for op in &ops {
                            bindings.push(Binding {
                                resource_type: kind.code(),
                                resource_name: name.clone(),
                                pattern_type: pattern,
                                principal: p.clone(),
                                host: host.clone(),
                                operation: op.code(),
                                permission: perm.code(),
                            });
                        }
                    }
                }
            }
            ops::create(&mut client, &bindings)?;
            println!("added {} ACL(s)", bindings.len());
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
                let filter = Filter {
                    resource_type: kind,
                    resource_name: name,
                    pattern_type: pattern,
                    principal: principal.clone(),
                    ..Filter::any()
                };
                for b in ops::describe(&mut client, &filter)? {
                    println!(
                        "{:<16} {:<24} {:<9} {:<20} {:<16} {:<16} {}",
                        code_name(b.resource_type, ResourceType::from_code),
                        b.resource_name,
                        code_name(b.pattern_type, PatternType::from_code),
                        b.principal,
                        b.host,
                        code_name(b.operation, Operation::from_code),
                        code_name(b.permission, Permission::from_code),
                    );
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
                        filters.push(Filter {
                            resource_type: *kind,
                            resource_name: name.clone(),
                            pattern_type: pattern,
                            principal: principal.map(str::to_string),
                            host: host.clone(),
                            operation: *op,
                            permission: *perm,
                        });
                    }
                }
            }
            let removed = ops::delete(&mut client, &filters)?;
            println!("removed {removed} ACL(s)");
            Ok(())
        }
    }
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
