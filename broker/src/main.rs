//! `shardline`: a Kafka-wire-compatible broker, thread-per-core.

mod acl;
mod alloc_guard;
mod background;
mod cli;
mod config;
mod controller;
mod disk_monitor;
mod groups;
mod handlers;
mod listeners;
mod metadata;
mod metrics;
mod quotas;
mod routing;
mod security;
mod server;
mod shard_state;
mod tune_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shard::log::FlushMode;

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
}

/// Flags override the config file; each has a config key of the same name.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (keys as in README; unknown keys are an error).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port given to clients in Metadata [default: the listen address].
    #[arg(long)]
    advertise: Option<String>,
    /// Kafka-style listeners, comma-separated: NAME://host:port with NAME
    /// PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (or mapped in the config
    /// file). Replaces --listen.
    #[arg(long, value_delimiter = ',')]
    listeners: Option<Vec<String>>,
    /// NAME://host:port per listener, comma-separated, given to clients.
    #[arg(long, value_delimiter = ',')]
    advertised_listeners: Option<Vec<String>>,
    /// PEM certificate chain of SSL / SASL_SSL listeners.
    #[arg(long)]
    ssl_certificate_location: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long)]
    ssl_key_location: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to (mTLS).
    #[arg(long)]
    ssl_truststore_location: Option<PathBuf>,
    /// Client certificates on SSL listeners: none, requested or required.
    #[arg(long)]
    ssl_client_auth: Option<String>,
    /// Data directory [default: ./shardline-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (one thread per core) [default: number of cores].
    #[arg(long)]
    shards: Option<usize>,
    /// Durability: batch (fsync before ack) or interval.
    #[arg(long, value_parser = parse_flush)]
    log_flush: Option<FlushMode>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long)]
    num_partitions: Option<i32>,
    /// Create topics on first use [default: true].
    #[arg(long)]
    auto_create_topics_enable: Option<bool>,
    /// How often retention runs, in ms [default: 300000].
    #[arg(long)]
    log_retention_check_interval_ms: Option<u64>,
    /// Largest record batch accepted [default: 1048588].
    #[arg(long)]
    message_max_bytes: Option<usize>,
    /// Wait for more members before a new group's first rebalance, in ms [default: 3000].
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<i64>,
    /// Keep committed offsets of an Empty group this long, in minutes [default: 10080].
    #[arg(long)]
    offsets_retention_minutes: Option<i64>,
    /// Shortest classic-group session timeout accepted, in ms [default: 6000].
    #[arg(long)]
    group_min_session_timeout_ms: Option<i32>,
    /// Longest classic-group session timeout accepted, in ms [default: 1800000].
    #[arg(long)]
    group_max_session_timeout_ms: Option<i32>,
    /// Heartbeat interval of consumer-protocol group members, in ms [default: 5000].
    #[arg(long)]
    group_consumer_heartbeat_interval_ms: Option<i32>,
    /// Session timeout of consumer-protocol group members, in ms [default: 45000].
    #[arg(long)]
    group_consumer_session_timeout_ms: Option<i64>,
}

fn parse_flush(s: &str) -> Result<FlushMode, String> {
    match s {
        "batch" => Ok(FlushMode::Batch),
        "interval" => Ok(FlushMode::Interval),
        _ => Err(format!("'{s}' is not batch or interval")),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(path) => BrokerConfig::from_toml_file(path)?,
        None => BrokerConfig::default(),
    };
    macro_rules! apply {
        ($($field:ident),*) => { $( if let Some(v) = args.$field { cfg.$field = v; } )* };
    }
    if let Some(l) = args.listen {
        // Flags win over the file, whichever of the two styles each uses.
        cfg.listen = Some(l);
        cfg.listeners.clear();
        cfg.advertised_listeners.clear();
    }
    if let Some(ls) = args.listeners {
        cfg.listeners = ls;
        cfg.listen = None;
        cfg.advertise = None;
    }
    if let Some(v) = args.ssl_certificate_location {
        cfg.ssl_certificate_location = Some(v);
    }
    if let Some(v) = args.ssl_key_location {
        cfg.ssl_key_location = Some(v);
    }
    if let Some(v) = args.ssl_truststore_location {
        cfg.ssl_truststore_location = Some(v);
    }
    apply!(
        advertised_listeners,
        ssl_client_auth,
        data_dir,
        log_flush,
        num_partitions,
        auto_create_topics_enable,
        log_retention_check_interval_ms,
        message_max_bytes,
        group_initial_rebalance_delay_ms,
        offsets_retention_minutes,
        group_min_session_timeout_ms,
        group_max_session_timeout_ms,
        group_consumer_heartbeat_interval_ms,
        group_consumer_session_timeout_ms
    );
    if let Some(n) = args.shards {
        cfg.shards_setting = Some(n);
    }
    if let Some(a) = args.advertise {
        cfg.advertise = Some(a);
    }
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
    };
    if let Err(e) = outcome {
        eprintln!("shardline: {e:#}");
        std::process::exit(1);
    }
}
