//! Every broker setting, declared once: key, type, default (the value and
//! how README shows it), the Kafka property it follows, and the meaning.
//! [`broker_config!`] turns the table into the serde struct
//! ([`BrokerConfig`]), its `Default`, the list of keys the file and the
//! flags accept ([`SETTINGS`]: unknown-key hints, one `--flag` per key),
//! README's Configuration table (`readme.rs`, checked by a test) and the
//! broker resource's DescribeConfigs list (`#[describe]` keys and the
//! `fixed` block, `describe.rs`). A key's
//! `#[range = ...]` is its bounds: checked for the file and the flags alike
//! (`check_ranges`, `bounds.rs`); rules across keys stay in `validate.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use shard::log::FlushMode;

use super::describe as shown;
use super::flags::FlagValue;
use super::validate::{MAX_INTERVAL_MS, MAX_PENDING_FETCH_WAITS, MAX_SHARDS};
use super::{ReplicaSelector, Secret};
use crate::metadata::topic_config::ConfigType;

/// One key as the file, the flags and README know it.
pub struct Setting {
    /// The key's section: README's group, and the `[section]` table a
    /// config file may give it in (`limits`, `security`, ...).
    pub section: &'static str,
    pub key: &'static str,
    /// Kafka's property this key follows, when there is one.
    pub kafka: Option<&'static str>,
    /// The default as README shows it.
    pub shown_default: &'static str,
    /// The meaning (README's third column, the flag's help).
    pub doc: &'static str,
    /// A flag's text as the TOML value of this key.
    pub parse_flag: fn(&str) -> Result<toml::Value, String>,
    /// The declared range, as an error shows it ("between 1 and 4096").
    pub bound: Option<fn() -> String>,
}

macro_rules! key_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $rename:literal) => {
        $rename
    };
}

macro_rules! opt_kafka {
    () => {
        None
    };
    ($k:literal) => {
        Some($k)
    };
}

macro_rules! opt_bound {
    () => {
        None
    };
    ($range:expr) => {
        Some(|| super::bounds::describe(&$range))
    };
}

macro_rules! check_range {
    ($key:expr, $value:expr) => {};
    ($key:expr, $value:expr, $range:expr) => {
        super::bounds::check($key, $value, $range)?
    };
}

macro_rules! describe_key {
    ($out:ident, $cfg:ident, $name:expr, $value:expr) => {};
    ($out:ident, $cfg:ident, $name:expr, $value:expr, $kind:ident, $doc:literal) => {
        $out.push(super::describe::Described {
            name: $name,
            value: super::describe::DescribeValue::describe_value($value),
            kind: ConfigType::$kind,
            doc: $doc,
        })
    };
    ($out:ident, $cfg:ident, $name:expr, $value:expr, $kind:ident, $doc:literal, $f:expr) => {
        $out.push(super::describe::Described {
            name: $name,
            value: ($f)($cfg),
            kind: ConfigType::$kind,
            doc: $doc,
        })
    };
}

macro_rules! broker_config {
    (
        $(
            [$section:literal]
            $(
                $(#[doc = $doc:literal])+
                $(#[key = $rename:literal])?
                $(#[kafka = $kafka:literal])?
                $(#[range = $range:expr])?
                $(#[describe($kind:ident, $ddesc:literal $(, $dvalue:expr)?)])?
                $field:ident: $ty:ty = $default:expr, shown $shown:literal;
            )*
        )*
        fixed {
            $( $fname:literal: $fkind:ident = $fvalue:expr, $fdoc:literal; )*
        }
        derived {
            $( $(#[doc = $ddoc:literal])+ $dfield:ident: $dty:ty = $ddefault:expr; )*
        }
    ) => {
        /// The broker's settings (see [`SETTINGS`] and README, Configuration).
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct BrokerConfig {
            $($(
                $(#[doc = $doc])+
                $(#[serde(rename = $rename)])?
                pub $field: $ty,
            )*)*
            $(
                $(#[doc = $ddoc])+
                #[serde(skip)]
                pub $dfield: $dty,
            )*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                Self {
                    $($( $field: $default, )*)*
                    $( $dfield: $ddefault, )*
                }
            }
        }

        /// Every key, in README order.
        pub const SETTINGS: &[Setting] = &[
            $($(
                Setting {
                    section: $section,
                    key: key_name!($field $($rename)?),
                    kafka: opt_kafka!($($kafka)?),
                    shown_default: $shown,
                    doc: concat!($($doc),+),
                    parse_flag: <$ty as FlagValue>::parse_flag,
                    bound: opt_bound!($($range)?),
                },
            )*)*
        ];

        impl BrokerConfig {
            /// Set the key `key` from a TOML value (the file's or a flag's);
            /// false if no such key. A value of the wrong type is refused
            /// here, naming the key (and its bounds, if it has any).
            pub fn set_key(&mut self, key: &str, value: toml::Value) -> Result<bool, String> {
                $($(
                    if key == key_name!($field $($rename)?) {
                        let shown = value.to_string();
                        self.$field = <$ty>::deserialize(value).map_err(|e| {
                            super::bounds::type_error(key, &shown, e, opt_bound!($($range)?))
                        })?;
                        return Ok(true);
                    }
                )*)*
                Ok(false)
            }

            /// The broker resource's configs as DescribeConfigs answers
            /// them: the keys marked `#[describe]`, then the `fixed` ones.
            // One push per declared key: a vec![] would need every key's arm.
            #[allow(clippy::vec_init_then_push)]
            pub fn described(&self) -> Vec<super::describe::Described> {
                let mut out = Vec::new();
                $($(
                    describe_key!(
                        out,
                        self,
                        super::describe::name(key_name!($field $($rename)?), opt_kafka!($($kafka)?)),
                        &self.$field
                        $(, $kind, $ddesc $(, $dvalue)?)?
                    );
                )*)*
                $(
                    out.push(super::describe::Described {
                        name: $fname.to_string(),
                        value: ($fvalue)(self),
                        kind: ConfigType::$fkind,
                        doc: $fdoc,
                    });
                )*
                out
            }

            /// Every key's declared range (`#[range = ...]` in the table);
            /// the first value outside its range is refused, naming the key
            /// and the range.
            pub fn check_ranges(&self) -> Result<(), String> {
                $($(
                    check_range!(key_name!($field $($rename)?), &self.$field $(, $range)?);
                )*)*
                Ok(())
            }
        }
    };
}

broker_config! {
    ["network"]
    /// address of the single PLAINTEXT listener (when `listeners` is not set)
    listen: Option<SocketAddr> = None, shown "`127.0.0.1:9092`";
    /// `host:port` given to clients in Metadata (with `listen`)
    advertise: Option<String> = None, shown "listen address";
    /// Kafka's `listeners`, instead of `listen`: `["PLAINTEXT://127.0.0.1:9092",
    /// "SASL_PLAINTEXT://:9094", "NAME://host:port"]`
    #[kafka = "listeners"]
    #[describe(List, "Addresses the Kafka listeners bind (config keys: listeners, or listen)", shown::listeners)]
    listeners: Vec<String> = Vec::new(), shown "—";
    /// Kafka's `advertised.listeners`: `NAME://host:port` per listener
    #[kafka = "advertised.listeners"]
    #[describe(List, "Addresses given to clients in Metadata, per listener (config keys: advertised_listeners, or advertise)", shown::advertised_listeners)]
    advertised_listeners: Vec<String> = Vec::new(), shown "each listener's bind address";
    /// protocol of named listeners, e.g. `{ CLIENTS = "SASL_PLAINTEXT" }`; a
    /// listener named after a protocol needs no entry
    #[kafka = "listener.security.protocol.map"]
    #[describe(List, "Security protocol of each listener", shown::protocol_map)]
    listener_security_protocol_map: BTreeMap<String, String> = BTreeMap::new(), shown "—";

    ["security"]
    /// PEM certificate chain (server certificate first) of SSL / SASL_SSL listeners
    #[kafka = "ssl.certificate.location"]
    ssl_certificate_location: Option<PathBuf> = None, shown "—";
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate
    #[kafka = "ssl.key.location"]
    ssl_key_location: Option<PathBuf> = None, shown "—";
    /// PEM CA bundle client certificates (mTLS) and peer brokers' certificates
    /// (a TLS inter-broker listener) must chain to
    #[kafka = "ssl.truststore.location"]
    ssl_truststore_location: Option<PathBuf> = None, shown "—";
    /// Kafka's `ssl.client.auth` for SSL listeners: `none`, `requested` or `required`
    #[kafka = "ssl.client.auth"]
    ssl_client_auth: String = "none".into(), shown "`none`";
    /// the same per listener name (Kafka's `listener.name.NAME.ssl.client.auth`),
    /// e.g. `{ SASL_SSL = "requested" }`; as in Kafka, SASL_SSL listeners ask for
    /// no certificate unless set here
    listener_ssl_client_auth: BTreeMap<String, String> = BTreeMap::new(), shown "—";
    /// `["TLSv1.2", "TLSv1.3"]` or one of them
    #[kafka = "ssl.enabled.protocols"]
    ssl_enabled_protocols: Vec<String> = Vec::new(), shown "both";
    /// how often the certificate files are checked (≥ 1); changed files apply
    /// to new connections, open ones keep theirs
    #[range = 1..=MAX_INTERVAL_MS]
    ssl_reload_check_ms: u64 = 5_000, shown "`5000`";
    /// a client that has not finished the TLS handshake by then is dropped (≥ 1)
    #[range = 1..=MAX_INTERVAL_MS]
    ssl_handshake_timeout_ms: u64 = 10_000, shown "`10000`";
    /// offered in SaslHandshake
    #[kafka = "sasl.enabled.mechanisms"]
    #[describe(List, "SASL mechanisms offered on SASL listeners")]
    sasl_enabled_mechanisms: Vec<String> = vec![
        "PLAIN".into(),
        "SCRAM-SHA-256".into(),
        "SCRAM-SHA-512".into(),
    ], shown "`[\"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]`";
    /// super-user given SCRAM-SHA-256 and -512 credentials at start if it has
    /// none (with `sasl_bootstrap_password`)
    sasl_bootstrap_user: Option<String> = None, shown "—";
    /// that user's password (never logged or stored)
    sasl_bootstrap_password: Option<Secret> = None, shown "—";
    /// PBKDF2 iterations of those credentials (4096–16384, Kafka's SCRAM bounds)
    #[range = crate::security::scram::MIN_ITERATIONS..=crate::security::scram::MAX_ITERATIONS]
    sasl_bootstrap_iterations: u32 = 4096, shown "`4096`";
    /// KIP-368 session lifetime: a SASL connection not re-authenticated by then
    /// is closed at its next request (0 = never)
    #[kafka = "connections.max.reauth.ms"]
    #[range = 0..]
    #[describe(Long, "SASL session lifetime (KIP-368); 0 = no limit")]
    connections_max_reauth_ms: i64 = 0, shown "`0`";
    /// after this many failed authentications (≥ 1) from one IP address within
    /// `sasl_failure_window_ms`, it is refused for `sasl_failure_block_ms`
    #[range = 1..]
    sasl_max_failures: u32 = 10, shown "`10`";
    /// the window of `sasl_max_failures` (≥ 1)
    #[range = 1..=MAX_INTERVAL_MS]
    sasl_failure_window_ms: u64 = 60_000, shown "`60000`";
    /// how long an IP address with too many failures is refused
    #[range = 0..=MAX_INTERVAL_MS]
    sasl_failure_block_ms: u64 = 10_000, shown "`10000`";
    /// the listener brokers connect to each other on (followers' fetches,
    /// transaction markers); every broker of a cluster must have one of that
    /// name. Over SASL they log in as `inter_broker_sasl_username`
    #[kafka = "inter.broker.listener.name"]
    inter_broker_listener_name: Option<String> = None, shown "`PLAINTEXT`, else a plaintext listener, else the first usable";
    /// SASL mechanism brokers log in to each other with (PLAIN, SCRAM-SHA-256
    /// or SCRAM-SHA-512; one of `sasl_enabled_mechanisms`)
    #[kafka = "sasl.mechanism.inter.broker.protocol"]
    sasl_mechanism_inter_broker_protocol: String = "SCRAM-SHA-512".into(), shown "`SCRAM-SHA-512`";
    /// the SCRAM user brokers log in as on a SASL inter-broker listener; a
    /// super user (default: `sasl_bootstrap_user`)
    inter_broker_sasl_username: Option<String> = None, shown "`sasl_bootstrap_user`";
    /// its password (never logged or stored)
    inter_broker_sasl_password: Option<Secret> = None, shown "`sasl_bootstrap_password`";
    /// enforce ACLs on every API (see Authorization); off, the ACL APIs answer
    /// SECURITY_DISABLED
    authorizer_enabled: bool = false, shown "`false`";
    /// principals allowed everything, e.g. `["User:admin"]`; `sasl_bootstrap_user`
    /// and the SASL inter-broker user always are
    #[kafka = "super.users"]
    super_users: Vec<String> = Vec::new(), shown "`[]`";
    /// a resource no ACL applies to is open to all
    #[kafka = "allow.everyone.if.no.acl.found"]
    allow_everyone_if_no_acl_found: bool = false, shown "`false`";

    ["storage"]
    /// where logs and metadata live (must support O_DIRECT: ext4, xfs; not tmpfs)
    #[kafka = "log.dirs"]
    #[describe(List, "The data directory (config key: data_dir)", shown::log_dirs)]
    data_dir: PathBuf = PathBuf::from("./shardline-data"), shown "`./shardline-data`";
    /// executor threads, one per core (1–256); leave it unset for one per core,
    /// `0` is refused
    #[key = "shards"]
    #[range = 1..=MAX_SHARDS]
    #[describe(Int, "Shardline: number of shards, one thread per core", shown::shards)]
    shards_setting: Option<usize> = None, shown "number of cores";
    /// broker id (≥ 0)
    #[kafka = "node.id"]
    #[range = 0..]
    #[describe(Int, "This broker's id")]
    node_id: i32 = 0, shown "`0`";
    /// durability mode, see below
    #[describe(String, "Shardline: batch = fdatasync before every acknowledgement (group commit); interval = fdatasync on an interval", shown::log_flush)]
    log_flush: FlushMode = FlushMode::Batch, shown "`batch`";
    /// `interval` mode: fsync at least this often (≥ 1)
    #[kafka = "log.flush.interval.ms"]
    #[range = 1..=MAX_INTERVAL_MS]
    #[describe(Long, "With log.flush = interval: longest time between fdatasyncs")]
    log_flush_interval_ms: u64 = 100, shown "`100`";
    /// `interval` mode: fsync after this many bytes (≥ 1)
    #[range = 1..]
    #[describe(Long, "Shardline: with log.flush = interval, most bytes written between fdatasyncs")]
    log_flush_interval_bytes: u64 = 1 << 20, shown "`1048576`";
    /// `batch` mode: bytes of each shard's write-ahead ring (`DATA_DIR/wal`), which
    /// makes one commit round of every partition durable with one fdatasync; `0`
    /// turns it off (each partition fdatasyncs its own segment); else a multiple
    /// of 4096, ≥ 1048576
    #[describe(Long, "Shardline: with log.flush = batch, bytes of each shard's write-ahead ring (0: none)")]
    log_wal_bytes: u64 = 128 << 20, shown "`134217728`";
    /// create topics on first Metadata/Produce
    #[kafka = "auto.create.topics.enable"]
    #[describe(Boolean, "Create topics on first use")]
    auto_create_topics_enable: bool = true, shown "`true`";
    /// partitions of auto-created topics (1–10000)
    #[kafka = "num.partitions"]
    #[range = 1..=crate::controller::MAX_PARTITIONS_PER_TOPIC]
    #[describe(Int, "Partitions of auto-created topics")]
    num_partitions: i32 = 1, shown "`1`";
    /// largest record batch (topic `max.message.bytes` default; 64 B–1 GiB)
    #[kafka = "message.max.bytes"]
    #[range = 64..=1 << 30]
    #[describe(Int, "Largest record batch accepted")]
    message_max_bytes: usize = 1_048_588, shown "`1048588`";
    /// segment size (topic `segment.bytes`; 14 KiB–2147483647, the offset
    /// index's positions are 32-bit)
    #[kafka = "log.segment.bytes"]
    #[describe(Int, "Size at which a new segment is rolled")]
    log_segment_bytes: u64 = 1 << 30, shown "`1073741824`";
    /// segment age before rolling (topic `segment.ms`; ≥ 1)
    #[kafka = "log.roll.ms"]
    #[describe(Long, "Age at which a new segment is rolled (config key: log_segment_ms)")]
    log_segment_ms: i64 = 7 * 24 * 3600 * 1000, shown "`604800000`";
    /// topic `retention.ms` default; `-1` keeps forever (≥ -1)
    #[kafka = "log.retention.ms"]
    #[describe(Long, "Age after which a segment is deleted (-1: forever)")]
    log_retention_ms: i64 = 3 * 24 * 3600 * 1000, shown "`259200000` (3 days)";
    /// topic `retention.bytes` default (≥ -1)
    #[kafka = "log.retention.bytes"]
    #[describe(Long, "Size per partition above which the oldest segments are deleted (-1: no limit)")]
    log_retention_bytes: i64 = -1, shown "`-1`";
    /// how often retention runs (≥ 1)
    #[kafka = "log.retention.check.interval.ms"]
    #[range = 1..=MAX_INTERVAL_MS]
    #[describe(Long, "How often retention runs")]
    log_retention_check_interval_ms: u64 = 5 * 60 * 1000, shown "`300000`";
    /// bytes between offset-index entries (≤ 2147483647)
    #[kafka = "log.index.interval.bytes"]
    #[describe(Int, "Bytes of log between offset-index entries")]
    log_index_interval_bytes: u64 = 4096, shown "`4096`";
    /// topic `cleanup.policy` default
    #[kafka = "log.cleanup.policy"]
    #[describe(List, "Default cleanup policy of topics: delete and/or compact")]
    log_cleanup_policy: String = "delete".into(), shown "`delete`";
    /// locked I/O memory per shard (≥ 64 KiB; see below)
    #[range = (64 << 10)..]
    #[describe(Long, "Shardline: locked I/O memory per shard")]
    io_memory_bytes: usize = 4 << 20, shown "`4194304`";
    /// recent batches kept in memory per partition
    #[describe(Long, "Shardline: recent data kept in memory per partition")]
    tail_cache_bytes: usize = 4 << 20, shown "`4194304`";
    /// most memory of recent batches per shard, shared equally by its partitions
    /// (each keeps at most `tail_cache_bytes`)
    #[describe(Long, "Shardline: recent data kept in memory per shard, shared by its partitions")]
    tail_cache_shard_bytes: usize = 256 << 20, shown "`268435456`";
    /// pin shard threads to cores
    #[describe(Boolean, "Shardline: pin shard threads to cores")]
    pin_shards: bool = true, shown "`true`";
    /// settings measured by `shardline iotune` (the three below); explicit keys win
    iotune_file: Option<PathBuf> = None, shown "`DATA_DIR/iotune.toml` if present";
    /// flushes larger than this are written as concurrent page-aligned pieces
    /// of this size
    log_write_chunk_bytes: Option<usize> = None, shown "iotune, else `1048576`";
    /// pieces of one flush in flight (1–256)
    log_write_queue_depth: Option<usize> = None, shown "iotune, else `4`";
    /// with `log_flush = batch`, a partition that keeps receiving appends holds
    /// its fdatasync this long so more batches share it (≤ 100000)
    log_group_commit_window_us: Option<u64> = None, shown "iotune, else `0`";

    ["cluster"]
    /// Kafka's `process.roles`: `broker`, `controller`, or both (a node with
    /// both serves clients and votes in the metadata quorum)
    #[kafka = "process.roles"]
    #[describe(List, "The roles of this node")]
    process_roles: Vec<String> = vec!["broker".into(), "controller".into()], shown "`[\"broker\", \"controller\"]`";
    /// Kafka's `controller.quorum.voters`: `["1@host:port", "2@host:port", ...]`,
    /// the metadata quorum's voters and their controller listeners; empty: this
    /// node alone is the quorum
    #[kafka = "controller.quorum.voters"]
    #[describe(List, "The metadata quorum's voters (id@host:port)")]
    controller_quorum_voters: Vec<String> = Vec::new(), shown "— (this node alone)";
    /// the listener names in `listeners` that serve the quorum (not clients)
    #[kafka = "controller.listener.names"]
    #[describe(List, "Listeners of the metadata quorum")]
    controller_listener_names: Vec<String> = vec!["CONTROLLER".into()], shown "`[\"CONTROLLER\"]`";
    /// this broker's rack (zone): replicas of a partition go to different racks
    #[kafka = "broker.rack"]
    broker_rack: Option<String> = None, shown "—";
    /// how often a broker heartbeats to the active controller (50–60000)
    #[kafka = "broker.heartbeat.interval.ms"]
    #[range = 50..=60_000]
    #[describe(Int, "Time between a broker's heartbeats to the active controller")]
    broker_heartbeat_interval_ms: u64 = 2_000, shown "`2000`";
    /// a broker not heard from for this long is fenced: it leads nothing
    /// (> the heartbeat interval; ≤ 600000)
    #[kafka = "broker.session.timeout.ms"]
    #[range = 100..=600_000]
    #[describe(Int, "Time without heartbeats after which a broker is fenced")]
    broker_session_timeout_ms: u64 = 9_000, shown "`9000`";
    /// an in-sync follower not caught up with its leader for this long leaves
    /// the ISR (100–3600000)
    #[kafka = "replica.lag.time.max.ms"]
    #[range = 100..=3_600_000]
    #[describe(Long, "Time a follower may lag before it leaves the ISR")]
    replica_lag_time_max_ms: u64 = 30_000, shown "`30000`";
    /// the active controller moves leadership back to each partition's
    /// preferred replica (the first) when it is a live in-sync replica
    #[kafka = "auto.leader.rebalance.enable"]
    #[describe(Boolean, "Move leaders back to their preferred replicas")]
    auto_leader_rebalance_enable: bool = true, shown "`true`";
    /// how often the active controller looks for partitions not led by their
    /// preferred replica (1–86400)
    #[kafka = "leader.imbalance.check.interval.seconds"]
    #[range = 1..=86_400]
    #[describe(Long, "Seconds between preferred-leader balancing rounds")]
    leader_imbalance_check_interval_seconds: u64 = 300, shown "`300`";
    /// where a consumer naming a `client.rack` reads (KIP-392): `rack` sends it
    /// to an in-sync follower in its rack when the leader is in another
    /// (Kafka's `RackAwareReplicaSelector`); `leader` always reads from the
    /// leader (Kafka's default). Followers serve consumers either way
    #[kafka = "replica.selector.class"]
    replica_selector: ReplicaSelector = ReplicaSelector::Rack, shown "`rack`";
    /// replicas of a topic created without a replication factor (1–16)
    #[kafka = "default.replication.factor"]
    #[range = 1..=crate::controller::MAX_REPLICATION_FACTOR as i32]
    #[describe(Int, "Replication factor of topics created without one")]
    default_replication_factor: i32 = 1, shown "`1`";
    /// partitions of Kafka's `__consumer_offsets`: groups hash to one, and the
    /// broker leading it coordinates them (1–1000; fixed once placed)
    #[kafka = "offsets.topic.num.partitions"]
    #[range = 1..=1000]
    #[describe(Int, "Group coordinator partitions (__consumer_offsets)")]
    offsets_topic_num_partitions: i32 = 50, shown "`50`";
    /// replicas of each coordinator partition, at most the live brokers when
    /// they are placed (1–16)
    #[kafka = "offsets.topic.replication.factor"]
    #[range = 1..=crate::controller::MAX_REPLICATION_FACTOR as i32]
    #[describe(Int, "Replicas of each group coordinator partition")]
    offsets_topic_replication_factor: i32 = 3, shown "`3`";
    /// the `transaction.version` feature finalized in ApiVersions (KIP-890):
    /// 2 lets Java 4.x producers use transaction version 2 (Produce v12, an
    /// epoch bump per transaction, no AddPartitionsToTxn per partition); 0
    /// or 1 keeps them on the older protocol (0–2)
    #[range = 0..=2]
    transaction_version: i32 = 2, shown "`2`";
    /// partitions of Kafka's `__transaction_state`: transactional ids hash to
    /// one, and the broker leading it coordinates them (1–1000; fixed once
    /// the topic exists)
    #[kafka = "transaction.state.log.num.partitions"]
    #[range = 1..=1000]
    #[describe(Int, "Transaction coordinator partitions (__transaction_state)")]
    transaction_state_log_num_partitions: i32 = 50, shown "`50`";
    /// replicas of each `__transaction_state` partition, at most the live
    /// brokers when the topic is created (1–16)
    #[kafka = "transaction.state.log.replication.factor"]
    #[range = 1..=crate::controller::MAX_REPLICATION_FACTOR as i32]
    #[describe(Int, "Replicas of each transaction state partition")]
    transaction_state_log_replication_factor: i32 = 3, shown "`3`";
    /// `min.insync.replicas` of `__transaction_state` (capped at its
    /// replicas): a coordinator's state change needs this many copies
    #[kafka = "transaction.state.log.min.isr"]
    #[range = 1..=crate::controller::MAX_REPLICATION_FACTOR as i32]
    #[describe(Int, "min.insync.replicas of the transaction state topic")]
    transaction_state_log_min_isr: i32 = 2, shown "`2`";
    /// the longest transaction timeout a producer may ask for; InitProducerId
    /// above it is refused with INVALID_TRANSACTION_TIMEOUT (1–2147483647)
    #[kafka = "transaction.max.timeout.ms"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "Longest transaction timeout a producer may ask for")]
    transaction_max_timeout_ms: i64 = 900_000, shown "`900000`";
    /// how often a coordinator looks for transactions open longer than their
    /// timeout and aborts them (fencing their producer) (1–3600000)
    #[kafka = "transaction.abort.timed.out.transaction.cleanup.interval.ms"]
    #[range = 1..=3_600_000]
    #[describe(Int, "How often timed-out transactions are aborted")]
    transaction_abort_timed_out_transaction_cleanup_interval_ms: i64 = 10_000, shown "`10000`";
    /// a transactional id unused for this long (no transaction open) is
    /// forgotten (1–2147483647)
    #[kafka = "transactional.id.expiration.ms"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "Time after which an unused transactional id is forgotten")]
    transactional_id_expiration_ms: i64 = 604_800_000, shown "`604800000`";
    /// how often expired transactional ids are looked for (1–2147483647)
    #[kafka = "transaction.remove.expired.transaction.cleanup.interval.ms"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "How often expired transactional ids are removed")]
    transaction_remove_expired_transaction_cleanup_interval_ms: i64 = 3_600_000, shown "`3600000`";
    /// a producer id with no open transaction and no batch or marker for
    /// this long is forgotten by each partition (1–2147483647)
    #[kafka = "producer.id.expiration.ms"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "Time after which a partition forgets an idle producer id")]
    producer_id_expiration_ms: i64 = 86_400_000, shown "`86400000` (1 day)";
    /// how often partitions look for idle producer ids (1–2147483647)
    #[kafka = "producer.id.expiration.check.interval.ms"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "How often idle producer ids are looked for")]
    producer_id_expiration_check_interval_ms: i64 = 600_000, shown "`600000`";
    /// metadata changes between snapshots of the metadata log (which then
    /// drops what they cover); a node further behind receives the snapshot
    /// (4–1048576)
    #[range = 4..=1_048_576]
    metadata_snapshot_every: u64 = 1024, shown "`1024`";

    ["connections"]
    /// largest request frame; larger ones close the connection
    /// (≥ `message_max_bytes`, ≤ 2147483647)
    #[kafka = "socket.request.max.bytes"]
    #[range = 1..=i32::MAX as usize]
    #[describe(Int, "Largest request frame accepted")]
    socket_request_max_bytes: usize = 100 * 1024 * 1024, shown "`104857600`";
    /// Kafka's `connections.max.idle.ms`: a connection with nothing read,
    /// written or in flight for this long is closed (within 1.25× of it);
    /// `-1` never, else ≥ 100
    #[kafka = "connections.max.idle.ms"]
    connections_max_idle_ms: i64 = 600_000, shown "`600000`";
    /// a client that sent part of a request and then nothing for this long is
    /// disconnected (a slow but moving one is not); ≥ 100
    #[range = 100..=MAX_INTERVAL_MS]
    request_read_timeout_ms: u64 = 30_000, shown "`30000`";

    ["limits"]
    /// Kafka's `max.connections`, over all listeners; connections beyond it are
    /// closed as soon as they are accepted (Kafka instead stops accepting until
    /// one closes)
    #[kafka = "max.connections"]
    #[range = 1..]
    max_connections: u32 = i32::MAX as u32, shown "`2147483647` (no limit)";
    /// Kafka's `max.connections.per.ip`: connections beyond it from one address
    /// are closed when accepted, as in Kafka
    #[kafka = "max.connections.per.ip"]
    #[range = 1..]
    max_connections_per_ip: u32 = i32::MAX as u32, shown "`2147483647` (no limit)";
    /// pipelined requests handled at once per connection (1–4096)
    #[range = 1..=4096]
    #[describe(Int, "Shardline: requests of one connection handled concurrently")]
    max_in_flight_per_connection: usize = 64, shown "`64`";
    /// Kafka's `group.max.size` (and, for consumer-protocol groups,
    /// `group.consumer.max.size`): members one group may have (≥ 1); a new
    /// member beyond it gets GROUP_MAX_SIZE_REACHED from JoinGroup or
    /// ConsumerGroupHeartbeat
    #[kafka = "group.max.size"]
    #[range = 1..=i32::MAX as u32]
    group_max_size: u32 = i32::MAX as u32, shown "`2147483647` (no limit)";
    /// consumer groups the broker holds at once, classic and consumer
    /// protocol, with members or only committed offsets (≥ 1); a JoinGroup,
    /// ConsumerGroupHeartbeat or OffsetCommit that would create one more gets
    /// GROUP_MAX_SIZE_REACHED (Kafka has no such limit)
    #[range = 1..=i32::MAX as u32]
    #[describe(Int, "Shardline: consumer groups the broker holds at once")]
    max_groups: u32 = i32::MAX as u32, shown "`2147483647` (no limit)";
    /// Fetch requests one shard keeps waiting for data (`max_wait_ms`) at once
    /// (≥ 1); beyond it a Fetch is answered at once with what there is, as if
    /// its wait had expired
    #[range = 1..=MAX_PENDING_FETCH_WAITS]
    max_pending_fetch_waits: usize = 10_000, shown "`10000`";
    /// messages one shard's inbox holds from the other shards before senders
    /// wait (16–1048576)
    #[range = 16..=1 << 20]
    cross_shard_queue_depth: usize = 1024, shown "`1024`";

    ["groups"]
    /// Kafka's `group.initial.rebalance.delay.ms`: a new group waits this long
    /// for more members before its first rebalance
    #[kafka = "group.initial.rebalance.delay.ms"]
    #[range = 0..=MAX_INTERVAL_MS as i64]
    #[describe(Int, "Wait before the first rebalance of an empty group, so more members can join")]
    group_initial_rebalance_delay_ms: i64 = 3000, shown "`3000`";
    /// Kafka's `group.min.session.timeout.ms`: shorter classic-group session
    /// timeouts get INVALID_SESSION_TIMEOUT
    #[kafka = "group.min.session.timeout.ms"]
    #[range = 1..]
    #[describe(Int, "Shortest session timeout a classic-group member may ask for")]
    group_min_session_timeout_ms: i32 = 6000, shown "`6000`";
    /// Kafka's `group.max.session.timeout.ms`
    #[kafka = "group.max.session.timeout.ms"]
    #[describe(Int, "Longest session timeout a classic-group member may ask for")]
    group_max_session_timeout_ms: i32 = 1_800_000, shown "`1800000`";
    /// Kafka's `offsets.retention.minutes`: offsets of a group that stays Empty
    /// this long are dropped
    #[kafka = "offsets.retention.minutes"]
    #[range = 1..=i32::MAX as i64]
    #[describe(Int, "Committed offsets of empty groups expire after this long")]
    offsets_retention_minutes: i64 = 10080, shown "`10080`";
    /// Kafka's `group.consumer.heartbeat.interval.ms`: heartbeat interval of
    /// consumer-protocol (KIP-848) members
    #[kafka = "group.consumer.heartbeat.interval.ms"]
    #[range = 1..]
    #[describe(Int, "Heartbeat interval of consumer-protocol group members")]
    group_consumer_heartbeat_interval_ms: i32 = 5000, shown "`5000`";
    /// Kafka's `group.consumer.session.timeout.ms`: a silent consumer-protocol
    /// member is removed after this long
    #[kafka = "group.consumer.session.timeout.ms"]
    #[range = 1..]
    #[describe(Int, "Consumer-protocol group members silent this long are removed")]
    group_consumer_session_timeout_ms: i64 = 45000, shown "`45000`";

    ["quotas"]
    /// Kafka's `quota.window.num`: client quota rates are measured over this
    /// many samples (2–1000), see Quotas
    #[kafka = "quota.window.num"]
    #[range = 2..=1000]
    quota_window_num: usize = 11, shown "`11`";
    /// Kafka's `quota.window.size.seconds`: length of one quota sample (1–3600)
    #[kafka = "quota.window.size.seconds"]
    #[range = 1..=3600]
    quota_window_size_seconds: u64 = 1, shown "`1`";

    ["disk"]
    /// produce is refused with KAFKA_STORAGE_ERROR while the data directory's
    /// filesystem has less free space than this; `0` = no floor. See "A full disk"
    disk_free_min_bytes: u64 = 256 << 20, shown "`268435456` (256 MiB)";
    /// the same floor as a percentage of the filesystem's size (0–50); the
    /// larger of the two applies
    #[range = 0.0..=50.0]
    disk_free_min_percent: f64 = 0.0, shown "`0`";
    /// space held in a ballast file (`DATA_DIR/disk-reserve.ballast`) and given
    /// back when a metadata write finds the disk full, so topics and records
    /// can still be deleted; `0` = none
    disk_reserve_bytes: u64 = 8 << 20, shown "`8388608`";

    ["metrics"]
    /// `host:port` of the HTTP admin listener: `GET /metrics` (Prometheus,
    /// OpenMetrics text), `GET /health` (200 when serving, else 503 and
    /// why) and the console's JSON API under `/api/v1`; HTTPS when
    /// `ssl_certificate_location` is set; see "Metrics" and "Console"
    admin_listen: Option<SocketAddr> = None, shown "— (off)";
    /// the older name of `admin_listen`, serving the same; if both are set to
    /// different addresses, both are served
    metrics_listen: Option<SocketAddr> = None, shown "— (off)";
    /// how often the active controller evaluates the console's alert rules
    /// (see "Console", alerts)
    #[range = 100..=MAX_INTERVAL_MS]
    alert_eval_interval_ms: u64 = 10_000, shown "`10000`";
    /// hosts alert webhooks may be sent to: names, addresses or globs
    /// (`["*.example.com", "10.0.0.7"]`); empty = any host. Checked when a
    /// rule is written through this broker and before each POST
    alert_webhook_allowed_hosts: Vec<String> = Vec::new(), shown "`[]` (any)";
    /// PEM CA bundle `https://` webhooks' certificates must chain to; unset =
    /// the system's CA store
    alert_webhook_truststore_location: Option<PathBuf> = None, shown "— (system CAs)";

    fixed {
        "broker.id": Int = shown::node_id, "This broker's id (same as node.id)";
        "log.cleaner.delete.retention.ms": Long = |_| "86400000".into(), "How long tombstones are kept on compacted topics";
        "log.message.timestamp.type": String = |_| "CreateTime".into(), "Default timestamp type of topics";
        "log.message.timestamp.before.max.ms": Long = |_| i64::MAX.to_string(), "Default of topics: CreateTime records older than this before the broker's clock are refused";
        "log.message.timestamp.after.max.ms": Long = |_| "3600000".into(), "Default of topics: CreateTime records more than this ahead of the broker's clock are refused";
        "log.message.timestamp.difference.max.ms": Long = |_| i64::MAX.to_string(), "[DEPRECATED, Kafka 3] Default of the topic config of that name";
        "log.message.format.version": String = |_| "3.0-IV1".into(), "[DEPRECATED, Kafka 3] Ignored: batches are stored in format v2";
        "log.message.downconversion.enable": Boolean = |_| "true".into(), "[DEPRECATED, Kafka 3] Ignored: old fetch versions are always down-converted";
        "log.preallocate": Boolean = |_| "true".into(), "Reserve segment space on disk when a segment is created";
        "min.insync.replicas": Int = |_| "1".into(), "Single node: always 1";
        "compression.type": String = |_| "producer".into(), "Default of topics: batches are stored as the producer compressed them";
        "compression.gzip.level": Int = |_| "-1".into(), "Default of topics: gzip level for recompression (-1: zlib's default)";
        "compression.lz4.level": Int = |_| "9".into(), "Default of topics: lz4 level for recompression";
        "compression.zstd.level": Int = |_| "3".into(), "Default of topics: zstd level for recompression";
        "unclean.leader.election.enable": Boolean = |_| "false".into(), "Only in-sync replicas become leaders";
    }

    derived {
        /// The client listeners in effect, filled in by `finish`.
        resolved_listeners: Vec<crate::listeners::Listener> = Vec::new();
        /// The listener of the metadata quorum (`controller_listener_names`),
        /// filled in by `finish`; none for a single node.
        controller_listener: Option<crate::listeners::Listener> = None;
        /// `controller_quorum_voters` parsed: node id and address.
        quorum_voters: Vec<(i32, String)> = Vec::new();
        /// The shards in effect, filled in by `finish`.
        shards: usize = 0;
        /// The inter-broker listener and how to log in to it, filled in by
        /// `finish`; none when no listener is usable.
        inter_broker: Option<std::sync::Arc<crate::inter_broker::InterBroker>> = None;
    }
}
