//! `shardline tenant ...`: a tenant is a set of principals that own every
//! topic, group and transactional id starting with a prefix (`NAME.` by
//! default), and nothing else. `create` is made only of standard Kafka
//! admin requests, so it works on any Kafka-compatible broker with an ACL
//! authorizer:
//!
//! - CreateAcls: for each principal, ALLOW ALL on the prefixed TOPIC, GROUP
//!   and TRANSACTIONAL_ID resources, and IDEMPOTENT_WRITE on the cluster
//!   (idempotent producers, the default in librdkafka and Java);
//! - AlterClientQuotas: the byte-rate / request quotas, per user.
//!
//! Isolation follows from the authorizer: a principal with no ACL on a
//! resource may not use it (`allow_everyone_if_no_acl_found = false`), and
//! Metadata and ListGroups hide what it may not describe. `delete` removes
//! the prefixed ACLs and those users' quotas; `list` rebuilds the tenants
//! from the ACLs.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::client::Client;
use super::Conn;
use crate::ops::tenants as ops;

#[derive(Args, Debug)]
pub struct TenantArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Give principals their own prefixed topics, groups and transactional
    /// ids (ACLs), and optionally quotas.
    Create {
        /// Tenant name; the resource prefix is `NAME.` unless --prefix is given.
        name: String,
        /// A user of the tenant (principal `User:NAME`); repeatable.
        #[arg(long = "user")]
        users: Vec<String>,
        /// A principal of the tenant, e.g. `User:CN=app,O=Acme` for mTLS; repeatable.
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// Resource prefix [default: NAME.].
        #[arg(long)]
        prefix: Option<String>,
        /// Produce quota per user, bytes/s.
        #[arg(long)]
        producer_byte_rate: Option<u64>,
        /// Fetch quota per user, bytes/s.
        #[arg(long)]
        consumer_byte_rate: Option<u64>,
        /// Request-time quota per user, % of one core.
        #[arg(long)]
        request_percentage: Option<f64>,
    },
    /// Remove a tenant's prefixed ACLs and its users' quotas (the topics
    /// and groups stay).
    Delete {
        name: String,
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Tenants found in the ACLs: prefix and principals.
    List,
}

pub fn run(args: TenantArgs) -> Result<()> {
    let mut client = super::client::connect(&args.conn.bootstrap)?;
    match args.command {
        TenantCommand::Create {
            name,
            users,
            principals,
            prefix,
            producer_byte_rate,
            consumer_byte_rate,
            request_percentage,
        } => {
            let prefix = ops::prefix_of(&name, prefix)?;
            let mut all: Vec<String> = users.iter().map(|u| format!("User:{u}")).collect();
            all.extend(principals);
            if all.is_empty() {
                bail!("a tenant needs at least one --user or --principal");
            }
            for p in &all {
                if !p.contains(':') || p.ends_with(':') {
                    bail!("principal {p:?} is not TYPE:NAME (e.g. User:alice)");
                }
                if p.ends_with(":*") {
                    bail!("principal {p:?} would give the tenant's resources to everyone");
                }
            }
            let quotas: Vec<(&str, f64)> = [
                ("producer_byte_rate", producer_byte_rate.map(|v| v as f64)),
                ("consumer_byte_rate", consumer_byte_rate.map(|v| v as f64)),
                ("request_percentage", request_percentage),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
            ops::create(&mut client, &prefix, &all, &quotas)?;
            println!(
                "tenant {name}: {} own topics, groups and transactional ids starting with {prefix:?}{}",
                all.join(", "),
                if quotas.is_empty() {
                    String::new()
                } else {
                    let q: Vec<String> = quotas.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("; quotas per user: {}", q.join(", "))
                }
            );
            Ok(())
        }
        TenantCommand::Delete { name, prefix } => {
            let prefix = ops::prefix_of(&name, prefix)?;
            ops::delete(&mut client, &prefix)?;
            println!("tenant {name} deleted: ACLs on {prefix:?} removed, quotas removed");
            Ok(())
        }
        TenantCommand::List => list(&mut client),
    }
}

fn list(client: &mut Client) -> Result<()> {
    println!("{:<24} PRINCIPALS", "PREFIX");
    for (prefix, principals) in ops::list(client)? {
        println!("{prefix:<24} {}", principals.join(", "));
    }
    Ok(())
}
