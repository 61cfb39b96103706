//! The `shardline` client commands (`topic`, `produce`, `consume`, `group`):
//! a small blocking Kafka-protocol client that works against any
//! Kafka-compatible broker.

pub mod acl;
mod client;
pub mod cluster;
mod consume;
mod decommission;
mod group;
pub mod log_verify;
pub mod metadata;

mod produce;
mod quota;
pub mod tenant;

mod topic;
mod user;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::ops::time;

/// Where to connect; shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Bootstrap broker(s), host:port[,host:port...].
    /// [env: SHARDLINE_BOOTSTRAP]
    #[arg(long, short = 'b', global = true, default_value_t = default_bootstrap())]
    pub bootstrap: String,
    /// SASL mechanism for SASL listeners: PLAIN, SCRAM-SHA-256 or
    /// SCRAM-SHA-512 [env: SHARDLINE_SASL_MECHANISM].
    #[arg(long, global = true, env = "SHARDLINE_SASL_MECHANISM",
          value_parser = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])]
    pub sasl_mechanism: Option<String>,
    /// SASL user name [env: SHARDLINE_SASL_USER].
    #[arg(long, global = true, env = "SHARDLINE_SASL_USER")]
    pub sasl_user: Option<String>,
    /// SASL password [env: SHARDLINE_SASL_PASSWORD].
    #[arg(
        long,
        global = true,
        env = "SHARDLINE_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,
    /// Connect with TLS (SSL / SASL_SSL listeners), trusting the CAs in this
    /// PEM file [env: SHARDLINE_TLS_CA].
    #[arg(long, global = true, env = "SHARDLINE_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for listeners that require one [env: SHARDLINE_TLS_CERT].
    #[arg(long, global = true, env = "SHARDLINE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM) [env: SHARDLINE_TLS_KEY].
    #[arg(long, global = true, env = "SHARDLINE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Conn {
    /// Install the TLS and SASL settings every connection of this process uses.
    pub fn apply_sasl(&self) -> Result<()> {
        let tls = match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => Some(shardline_client::tls::TlsFiles {
                ca: ca.clone(),
                client: cert.clone().zip(key.clone()),
            }),
            (None, _, _) => anyhow::bail!("--tls-cert and --tls-key need --tls-ca"),
        };
        let auth = match (&self.sasl_mechanism, &self.sasl_user, &self.sasl_password) {
            (None, None, None) => None,
            (Some(m), Some(u), Some(p)) => Some(shardline_client::SaslAuth {
                mechanism: m.clone(),
                user: u.clone(),
                password: p.clone(),
            }),
            _ => anyhow::bail!("--sasl-mechanism, --sasl-user and --sasl-password go together"),
        };
        client::configure(tls.as_ref(), auth)
    }
}

fn default_bootstrap() -> String {
    std::env::var("SHARDLINE_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".into())
}

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(short, long)]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default].
        #[arg(short, long)]
        replication_factor: Option<i16>,
        /// Topic config override key=value (repeatable).
        #[arg(short, long = "config", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// List topics.
    List {
        /// Include internal topics (e.g. __consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Show partitions, leaders, replicas, offsets and config overrides.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Increase the number of partitions of a topic.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        num: i32,
    },
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Topic to write to (must exist).
    pub topic: String,
    /// Key for every message.
    #[arg(short, long)]
    pub key: Option<String>,
    /// Header key=value added to every message (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Partition to write to [default: by key hash (murmur2), else round robin].
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Batch compression.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// Acknowledgements: -1 (all), 0 (none, offsets unknown) or 1 (leader).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true, value_parser = clap::value_parser!(i16).range(-1..=1))]
    pub acks: i16,
    /// One message with this value instead of reading stdin.
    #[arg(short, long)]
    pub value: Option<String>,
    /// Split each stdin line into key and value at the first SEP.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Request timeout in ms.
    #[arg(long, default_value_t = 30000)]
    pub timeout_ms: i32,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Topic to read.
    pub topic: String,
    /// Partitions to read, comma separated [default: all].
    #[arg(short, long, value_delimiter = ',')]
    pub partitions: Vec<i32>,
    /// Start at the log start offset.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_beginning: bool,
    /// Start at this offset (on every partition read).
    #[arg(long, conflicts_with = "from_time")]
    pub offset: Option<i64>,
    /// Start at the first message at or after this time (ISO8601 or epoch ms).
    #[arg(long, value_parser = time::parse_time)]
    pub from_time: Option<i64>,
    /// Exit after this many messages.
    #[arg(short = 'n', long)]
    pub count: Option<usize>,
    /// Print keys (key<TAB>value).
    #[arg(long)]
    pub print_keys: bool,
    /// Print headers (k:v,k2:v2<TAB>...).
    #[arg(long)]
    pub print_headers: bool,
    /// Output format: %t topic, %p partition, %o offset, %k key, %v value,
    /// %h headers, %T timestamp (ms), %d timestamp (ISO8601), %% percent;
    /// \n and \t escapes. A newline is added unless the format ends in one.
    #[arg(long)]
    pub format: Option<String>,
    /// Exit once every partition is caught up to its high watermark.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Exit when no message arrived for this many ms.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe {
        /// The consumer group.
        group: String,
    },
    /// Delete a group (must be empty).
    Delete {
        /// The consumer group.
        group: String,
    },
    /// Plan (default) or commit (--execute) new offsets for an inactive group.
    ResetOffsets(ResetArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)
    .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
#[command(group(clap::ArgGroup::new("scope").required(true).multiple(true).args(["topic", "all_topics"])))]
pub struct ResetArgs {
    /// The consumer group (must be inactive for --execute).
    pub group: String,
    /// TOPIC or TOPIC:P1,P2 (repeatable).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to each partition's log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (clamped to the partition's log range).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// ISO8601 (e.g. 2026-11-24T10:00:00Z) or epoch ms.
    #[arg(long, value_parser = time::parse_time)]
    pub to_datetime: Option<i64>,
    /// Move the committed offset by N (may be negative).
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Commit the plan (default: only print it).
    #[arg(long)]
    pub execute: bool,
}

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not key=value")),
    }
}

/// Die quietly on a closed stdout (`shardline ... | head`) instead of
/// panicking in `println!`, like other command-line tools.
fn default_sigpipe() {
    // SAFETY: resetting a signal disposition to its default, before any
    // threads are started, has no memory-safety implications.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn topic(args: TopicArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    topic::run(&args.conn.bootstrap, args.command)
}

pub fn produce(args: ProduceArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    produce::run(args)
}

pub fn consume(args: ConsumeArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    consume::run(args)
}

pub fn group(args: GroupArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    group::run(&args.conn.bootstrap, args.command)
}

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (or change its password): SCRAM credentials, which
    /// also serve SASL/PLAIN.
    Create {
        /// User name.
        name: String,
        /// The user's password (sent to the broker only as a salted hash).
        #[arg(long)]
        password: String,
        /// Which SCRAM credentials to create.
        #[arg(long, default_value = "both", value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512", "both"])]
        mechanism: String,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Delete all SCRAM credentials of a user.
    Delete {
        /// User name.
        name: String,
    },
    /// List users and their SCRAM mechanisms.
    List,
}

pub fn tenant(args: tenant::TenantArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    tenant::run(args)
}

pub fn acl(args: acl::AclArgs) -> Result<()> {
    default_sigpipe();
    acl::run(args)
}

pub fn cluster(args: cluster::ClusterArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    cluster::run(&args.conn.bootstrap, args.command)
}

pub fn user(args: UserArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    user::run(&args.conn.bootstrap, args.command)
}

#[derive(Args, Debug)]
pub struct QuotaArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: QuotaCommand,
}

/// The quota entity: a user and/or a client id, specific or default.
#[derive(Args, Debug, Clone)]
pub struct QuotaEntityArgs {
    /// User name (the SASL user; `ANONYMOUS` for unauthenticated clients).
    #[arg(long, conflicts_with = "default_user")]
    pub user: Option<String>,
    /// The default user entity (`<default>`).
    #[arg(long)]
    pub default_user: bool,
    /// Client id.
    #[arg(long, conflicts_with = "default_client_id")]
    pub client_id: Option<String>,
    /// The default client-id entity (`<default>`).
    #[arg(long)]
    pub default_client_id: bool,
}

#[derive(Args, Debug, Clone)]
pub struct QuotaValues {
    /// Bytes per second of produce requests.
    #[arg(long)]
    pub producer_byte_rate: Option<f64>,
    /// Bytes per second of fetch responses.
    #[arg(long)]
    pub consumer_byte_rate: Option<f64>,
    /// Percent of one core's time spent handling the entity's requests.
    #[arg(long)]
    pub request_percentage: Option<f64>,
    /// Stored only: Shardline does not throttle controller mutations.
    #[arg(long)]
    pub controller_mutation_rate: Option<f64>,
}

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set quotas of an entity.
    Set {
        #[command(flatten)]
        entity: QuotaEntityArgs,
        #[command(flatten)]
        values: QuotaValues,
    },
    /// Remove quota keys of an entity.
    Remove {
        #[command(flatten)]
        entity: QuotaEntityArgs,
        /// Quota key to remove, e.g. producer_byte_rate (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
    },
    /// List configured quotas (entity flags narrow the list).
    List {
        #[command(flatten)]
        entity: QuotaEntityArgs,
    },
}

pub fn quota(args: QuotaArgs) -> Result<()> {
    default_sigpipe();
    args.conn.apply_sasl()?;
    quota::run(&args.conn.bootstrap, args.command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(subcommand)]
        c: Sub,
    }
    #[derive(Subcommand, Debug)]
    enum Sub {
        Topic(TopicArgs),
        Produce(ProduceArgs),
        Consume(ConsumeArgs),
        Group(GroupArgs),
        Quota(QuotaArgs),
    }

    fn parse(args: &[&str]) -> Result<Sub, clap::Error> {
        T::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|t| t.c)
    }

    #[test]
    fn key_value() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("a="), Ok(("a".into(), "".into())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
    }

    #[test]
    fn topic_create_args() {
        let Sub::Topic(t) = parse(&[
            "topic",
            "create",
            "x",
            "-p",
            "3",
            "-r",
            "1",
            "-c",
            "retention.ms=5",
            "-c",
            "a=b",
        ])
        .unwrap() else {
            panic!()
        };
        let TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } = t.command
        else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), partitions, replication_factor),
            ("x", Some(3), Some(1))
        );
        assert_eq!(config.len(), 2);
    }

    #[test]
    fn produce_args() {
        let Sub::Produce(p) = parse(&[
            "produce", "t", "--acks", "-1", "-H", "a=1", "-k", "k", "-b", "h:1",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.acks, p.conn.bootstrap.as_str(), p.headers.len()),
            (-1, "h:1", 1)
        );
        assert!(parse(&["produce", "t", "--acks", "2"]).is_err());
        assert!(parse(&["produce", "t", "--compression", "brotli"]).is_err());
    }

    #[test]
    fn consume_args() {
        let Sub::Consume(c) = parse(&[
            "consume",
            "t",
            "-p",
            "0,2",
            "--from-time",
            "2026-11-24T10:00:00Z",
            "-n",
            "5",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.partitions, vec![0, 2]);
        assert_eq!(c.from_time, Some(1_795_514_400_000));
        assert!(parse(&["consume", "t", "--from-beginning", "--offset", "3"]).is_err());
        assert!(parse(&["consume", "t", "--from-time", "soon"]).is_err());
    }

    #[test]
    fn quota_args() {
        let Sub::Quota(q) = parse(&[
            "quota",
            "set",
            "--user",
            "alice",
            "--default-client-id",
            "--producer-byte-rate",
            "1048576",
        ])
        .unwrap() else {
            panic!()
        };
        let QuotaCommand::Set { entity, values } = q.command else {
            panic!()
        };
        assert_eq!(entity.user.as_deref(), Some("alice"));
        assert!(entity.default_client_id && !entity.default_user);
        assert_eq!(values.producer_byte_rate, Some(1048576.0));
        assert!(parse(&["quota", "set", "--user", "a", "--default-user"]).is_err());
        assert!(parse(&[
            "quota",
            "remove",
            "--client-id",
            "x",
            "--key",
            "a",
            "--key",
            "b"
        ])
        .is_ok());
    }

    #[test]
    fn reset_args_need_one_target_and_a_scope() {
        assert!(parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--shift-by",
            "-2"
        ])
        .is_ok());
        assert!(parse(&["group", "reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(parse(&["group", "reset-offsets", "g", "--to-earliest"]).is_err());
        assert!(parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
    }
}
