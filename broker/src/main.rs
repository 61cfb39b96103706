//! `shardline`: a Kafka-wire-compatible broker, thread-per-core.

mod acl;
mod admin;
mod alloc_guard;
mod background;
mod cli;
mod config;
mod console;
mod controller;
mod disk_monitor;
mod groups;
mod handlers;
mod inter_broker;
mod listeners;
mod messages;
mod metadata;
mod metrics;
mod ops;
mod partitions;
mod quorum;
mod quotas;
mod reconcile;
mod replica;
mod routing;
mod security;
mod server;
mod shard_state;
mod tune_cmd;
mod txn;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::BrokerConfig;

#[global_allocator]
static ALLOCATOR: alloc_guard::GuardedAllocator = alloc_guard::GuardedAllocator;

#[derive(Parser)]
#[command(
    name = "shardline",
    version,
    about = "Kafka-compatible thread-per-core message broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    Serve(ServeArgs),
    /// Create, list, describe, delete topics and add partitions.
    Topic(cli::TopicArgs),
    /// Write messages (stdin lines or -v) to a topic.
    Produce(cli::ProduceArgs),
    /// Read messages from a topic (no consumer group).
    Consume(cli::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    Group(cli::GroupArgs),
    /// Create, delete and list SASL/SCRAM users (Alter/DescribeUserScramCredentials).
    User(cli::UserArgs),
    /// Create, delete and list tenants: principals owning a resource prefix
    /// (ACLs), with quotas.
    Tenant(cli::tenant::TenantArgs),
    /// Set, remove and list client quotas (Alter/DescribeClientQuotas).
    Quota(cli::QuotaArgs),
    /// Add, list and remove Kafka ACLs (Create/Describe/DeleteAcls).
    Acl(cli::acl::AclArgs),
    /// Check (and with --apply, fix) host settings the broker cares about.
    Tune(tune_cmd::TuneArgs),
    /// Measure the data directory's disk and write iotune.toml for the broker.
    Iotune(tune_cmd::IotuneArgs),
    /// Check partition logs on disk, offline and read-only (`log verify`).
    Log(cli::log_verify::LogArgs),
    /// Print a data directory's committed cluster metadata (`metadata export`), offline.
    Metadata(cli::metadata::MetadataArgs),
    /// The metadata quorum and the brokers; add or decommission a broker.
    Cluster(cli::cluster::ClusterArgs),
}

/// Flags override the config file: one per config key, of the same name
/// with dashes (generated from `config/table.rs`).
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (keys as in README; unknown keys are an error).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    keys: config::ConfigFlags,
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(path) => BrokerConfig::from_toml_file(path)?,
        None => BrokerConfig::default(),
    };
    // Flags win over the file, whichever of the two listener styles each
    // uses: a flag of one style drops the file's keys of the other.
    if args.keys.given("listen") {
        cfg.listeners.clear();
        cfg.advertised_listeners.clear();
    }
    if args.keys.given("listeners") {
        cfg.listen = None;
        cfg.advertise = None;
    }
    args.keys.apply(&mut cfg)?;
    let mut cfg = cfg.finish().with_context(|| match &args.config {
        Some(path) => format!("config file {} (and flags)", path.display()),
        None => "flags".to_string(),
    })?;
    tune_cmd::apply_iotune(&mut cfg)?;
    // Before any shard opens a log: group logs of older data dirs move to
    // DATA_DIR/@internal, where no topic's directory can be.
    groups::migrate::migrate_group_logs(&cfg.data_dir, cfg.shards, &groups::group_log_config(&cfg))
        .context("upgrading the data dir layout")?;
    disk_monitor::start_storage_services(&cfg)?;
    server::run(cfg)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDLINE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic(args) => cli::topic(args),
        Command::Produce(args) => cli::produce(args),
        Command::Consume(args) => cli::consume(args),
        Command::Group(args) => cli::group(args),
        Command::User(args) => cli::user(args),
        Command::Tenant(args) => cli::tenant(args),
        Command::Quota(args) => cli::quota(args),
        Command::Acl(args) => cli::acl(args),
        Command::Tune(args) => tune_cmd::tune(args),
        Command::Iotune(args) => tune_cmd::iotune(args),
        Command::Log(args) => std::process::exit(cli::log_verify::run(args)),
        Command::Metadata(args) => cli::metadata::run(args),
        Command::Cluster(args) => cli::cluster(args),
    };
    if let Err(e) = outcome {
        eprintln!("shardline: {e:#}");
        std::process::exit(1);
    }
}
