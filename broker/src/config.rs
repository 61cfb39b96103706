//! Broker configuration: a TOML file and command-line flags, flags winning.
//! Every flag has a config key of the same name (dashes become underscores)
//! and unknown keys are an error, so a typo never silently does nothing.
//! Impossible values stop the start with the key named (`validate`).

mod keys;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use shard::log::FlushMode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Address of the single PLAINTEXT listener when `listeners` is not set
    /// (every shard binds it with SO_REUSEPORT) [default: 127.0.0.1:9092].
    pub listen: Option<SocketAddr>,
    /// Address given to clients in Metadata; defaults to `listen`.
    pub advertise: Option<String>,
    /// Kafka's `listeners`: `NAME://host:port`, NAME a security protocol or
    /// a key of `listener_security_protocol_map`.
    pub listeners: Vec<String>,
    /// Kafka's `advertised.listeners`: `NAME://host:port` per listener.
    pub advertised_listeners: Vec<String>,
    /// Kafka's `listener.security.protocol.map`: listener name -> protocol.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// The listeners in effect, filled in by `finish`.
    #[serde(skip)]
    pub resolved_listeners: Vec<crate::listeners::Listener>,
    /// SASL mechanisms offered on SASL listeners.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Super-user given SCRAM credentials at start if it has none.
    pub sasl_bootstrap_user: Option<String>,
    pub sasl_bootstrap_password: Option<Secret>,
    /// PBKDF2 iterations of the bootstrap user's credentials.
    pub sasl_bootstrap_iterations: u32,
    /// KIP-368: SASL sessions last this long (0 = forever); a connection
    /// that has not re-authenticated by then is closed at its next request.
    pub connections_max_reauth_ms: i64,
    /// Failed authentications from one IP address within
    /// `sasl_failure_window_ms` before it is refused for `sasl_failure_block_ms`.
    pub sasl_max_failures: u32,
    pub sasl_failure_window_ms: u64,
    pub sasl_failure_block_ms: u64,
    /// SSL / SASL_SSL listeners: PEM certificate chain (server certificate
    /// first) and its private key (PKCS#8, PKCS#1 or SEC1).
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
    /// PEM bundle of the CAs trusted to sign client certificates (mTLS).
    pub ssl_truststore_location: Option<PathBuf>,
    /// Kafka's `ssl.client.auth` (none, requested, required) for SSL
    /// listeners. As in Kafka (KIP-684) it does not apply to SASL_SSL
    /// listeners unless set for them in `listener_ssl_client_auth`.
    pub ssl_client_auth: String,
    /// `ssl.client.auth` of one listener by name (Kafka's
    /// `listener.name.<name>.ssl.client.auth`).
    pub listener_ssl_client_auth: BTreeMap<String, String>,
    /// TLSv1.2 and/or TLSv1.3 [default: both].
    pub ssl_enabled_protocols: Vec<String>,
    /// How often the certificate files are checked for changes; new
    /// connections get the new certificates, open ones keep theirs.
    pub ssl_reload_check_ms: u64,
    /// A TLS client must finish its handshake within this time.
    pub ssl_handshake_timeout_ms: u64,
    /// Enforce Kafka ACLs (CreateAcls/DescribeAcls/DeleteAcls, stored in
    /// DATA_DIR/acls.json) on every request. Off: everything is allowed and
    /// the ACL APIs answer SECURITY_DISABLED, as Kafka without an authorizer.
    pub authorizer_enabled: bool,
    /// Kafka's `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// Kafka's `allow.everyone.if.no.acl.found`: a resource no ACL applies
    /// to is open to everybody (any ACL on it, for anybody, closes it).
    pub allow_everyone_if_no_acl_found: bool,
    pub data_dir: PathBuf,
    /// `shards` as configured: number of shards (executor threads); unset
    /// means one per core (an explicit 0 is refused).
    #[serde(rename = "shards")]
    pub shards_setting: Option<usize>,
    /// The shards in effect, filled in by `finish`.
    #[serde(skip)]
    pub shards: usize,
    pub node_id: i32,
    /// `batch` (fsync before ack, group commit) or `interval`.
    pub log_flush: FlushMode,
    pub log_flush_interval_ms: u64,
    pub log_flush_interval_bytes: u64,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub message_max_bytes: usize,
    pub log_segment_bytes: u64,
    pub log_segment_ms: i64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_index_interval_bytes: u64,
    pub log_cleanup_policy: String,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes).
    pub socket_request_max_bytes: usize,
    /// Requests of one connection handled concurrently (pipelining depth).
    pub max_in_flight_per_connection: usize,
    /// Kafka's `connections.max.idle.ms`: a connection with nothing read,
    /// written or in flight for this long is closed; -1 never closes.
    pub connections_max_idle_ms: i64,
    /// A client that has sent part of a request and then nothing for this
    /// long is disconnected (it holds a buffer and a slot) [default: 30000].
    pub request_read_timeout_ms: u64,
    /// Kafka's `max.connections`: open client connections over all
    /// listeners; more are closed as soon as they are accepted.
    pub max_connections: u32,
    /// Kafka's `max.connections.per.ip`: open connections from one address.
    pub max_connections_per_ip: u32,
    /// Locked I/O memory glommio registers per shard.
    pub io_memory_bytes: usize,
    /// Recent data kept in memory per partition for tail reads.
    pub tail_cache_bytes: usize,
    /// Pin shard threads to cores.
    pub pin_shards: bool,
    /// Kafka's `group.initial.rebalance.delay.ms`: an Empty group waits this
    /// long after its first member joins for others before the first rebalance.
    pub group_initial_rebalance_delay_ms: i64,
    /// Kafka's `offsets.retention.minutes`: committed offsets of a group
    /// that stays Empty this long are dropped.
    pub offsets_retention_minutes: i64,
    /// Classic-group members asking for a shorter session timeout are refused.
    pub group_min_session_timeout_ms: i32,
    /// Classic-group members asking for a longer session timeout are refused.
    pub group_max_session_timeout_ms: i32,
    /// Heartbeat interval given to consumer-protocol (KIP-848) members.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// A consumer-protocol member silent this long is removed.
    pub group_consumer_session_timeout_ms: i64,
    /// `shardline iotune` output to take flusher settings from
    /// [default: DATA_DIR/iotune.toml when it exists].
    pub iotune_file: Option<PathBuf>,
    /// Flushes larger than this are written as concurrent pieces of this
    /// size [default: from iotune.toml, else 1 MiB].
    pub log_write_chunk_bytes: Option<usize>,
    /// Pieces of one flush in flight [default: from iotune.toml, else 4].
    pub log_write_queue_depth: Option<usize>,
    /// Batch mode: a busy partition holds its fdatasync this long so more
    /// batches share it [default: from iotune.toml, else 0].
    pub log_group_commit_window_us: Option<u64>,
    /// Kafka's `quota.window.num`: client quota rates are measured over
    /// this many samples (the current one and `n - 1` full ones) [default: 11].
    pub quota_window_num: usize,
    /// Kafka's `quota.window.size.seconds`: the length of one quota sample;
    /// throttle times grow with it [default: 1].
    pub quota_window_size_seconds: u64,
    /// Produce is refused with KAFKA_STORAGE_ERROR while the data
    /// directory's filesystem has less free space than this (or than
    /// `disk_free_min_percent` of its size, whichever is larger); 0 = off.
    pub disk_free_min_bytes: u64,
    pub disk_free_min_percent: f64,
    /// Space held in reserve (a ballast file in the data directory) and
    /// given back when a metadata write finds the disk full, so topics and
    /// records can still be deleted; 0 = none.
    pub disk_reserve_bytes: u64,
    /// Address of the Prometheus endpoint (`GET /metrics`); off when unset.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            advertise: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: BTreeMap::new(),
            resolved_listeners: Vec::new(),
            sasl_enabled_mechanisms: vec![
                "PLAIN".into(),
                "SCRAM-SHA-256".into(),
                "SCRAM-SHA-512".into(),
            ],
            sasl_bootstrap_user: None,
            sasl_bootstrap_password: None,
            sasl_bootstrap_iterations: 4096,
            connections_max_reauth_ms: 0,
            sasl_max_failures: 10,
            sasl_failure_window_ms: 60_000,
            sasl_failure_block_ms: 10_000,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: "none".into(),
            listener_ssl_client_auth: BTreeMap::new(),
            ssl_enabled_protocols: Vec::new(),
            ssl_reload_check_ms: 5_000,
            ssl_handshake_timeout_ms: 10_000,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            data_dir: PathBuf::from("./shardline-data"),
            shards_setting: None,
            shards: 0,
            node_id: 0,
            log_flush: FlushMode::Batch,
            log_flush_interval_ms: 100,
            log_flush_interval_bytes: 1 << 20,
            auto_create_topics_enable: true,
            num_partitions: 1,
            message_max_bytes: 1_048_588,
            log_segment_bytes: 1 << 30,
            log_segment_ms: 7 * 24 * 3600 * 1000,
            log_retention_ms: 3 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 5 * 60 * 1000,
            log_index_interval_bytes: 4096,
            log_cleanup_policy: "delete".into(),
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_in_flight_per_connection: 64,
            connections_max_idle_ms: 600_000,
            request_read_timeout_ms: 30_000,
            max_connections: i32::MAX as u32,
            max_connections_per_ip: i32::MAX as u32,
            io_memory_bytes: 4 << 20,
            tail_cache_bytes: 4 << 20,
            pin_shards: true,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 10080,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_heartbeat_interval_ms: 5000,
            group_consumer_session_timeout_ms: 45000,
            iotune_file: None,
            log_write_chunk_bytes: None,
            log_write_queue_depth: None,
            log_group_commit_window_us: None,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            disk_free_min_bytes: 256 << 20,
            disk_free_min_percent: 0.0,
            disk_reserve_bytes: 8 << 20,
            metrics_listen: None,
        }
    }
}

impl BrokerConfig {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parse a config file's text: unknown keys are named with the nearest
    /// valid one, wrong types by serde (with the line).
    pub fn from_toml(text: &str) -> Result<Self> {
        let table: toml::Table = text.parse()?;
        keys::check(&table)?;
        Ok(toml::from_str(text)?)
    }

    /// Apply derived defaults and reject impossible values, naming the key.
    pub fn finish(mut self) -> Result<Self> {
        self.shards = match self.shards_setting {
            None => shard::runtime::available_cores(),
            Some(0) => {
                bail!("shards = 0: must be at least 1 (leave the key out for one shard per core)")
            }
            Some(n) => n,
        };
        validate::check(&self)?;
        self.resolved_listeners = self.resolve_listeners()?;
        Ok(self)
    }

    /// The flusher settings in effect (unset keys take LogConfig's defaults).
    pub fn io_settings(&self) -> tuning::iotune::Settings {
        let d = shard::log::LogConfig::default();
        tuning::iotune::Settings {
            write_queue_depth: self.log_write_queue_depth.unwrap_or(d.write_queue_depth),
            write_chunk_bytes: self.log_write_chunk_bytes.unwrap_or(d.write_chunk_bytes),
            group_commit_window_us: self
                .log_group_commit_window_us
                .unwrap_or(d.group_commit_window_us),
        }
    }

    fn resolve_listeners(&self) -> Result<Vec<crate::listeners::Listener>> {
        use crate::listeners::{resolve, Listener};
        let listeners = if self.listeners.is_empty() {
            if !self.advertised_listeners.is_empty() {
                bail!("advertised_listeners needs listeners");
            }
            let bind = self
                .listen
                .unwrap_or_else(|| "127.0.0.1:9092".parse().expect("valid"));
            vec![Listener::plaintext(bind, self.advertise.as_deref())]
        } else {
            if self.listen.is_some() || self.advertise.is_some() {
                bail!("listen/advertise and listeners/advertised_listeners are alternatives: use one pair");
            }
            resolve(
                &self.listeners,
                &self.advertised_listeners,
                &self.listener_security_protocol_map,
            )?
        };
        for name in self.listener_ssl_client_auth.keys() {
            if !listeners
                .iter()
                .any(|l| l.name == *name && l.protocol.is_tls())
            {
                bail!("listener_ssl_client_auth: {name} is not an SSL or SASL_SSL listener");
            }
        }
        for l in listeners.iter().filter(|l| l.protocol.is_tls()) {
            self.tls_settings(l)?;
        }
        Ok(listeners)
    }

    /// `super_users` plus the bootstrap user: it exists to administer a
    /// fresh broker, which with the authorizer on needs a super user.
    pub fn effective_super_users(&self) -> Vec<String> {
        let mut users = self.super_users.clone();
        if let Some(u) = &self.sasl_bootstrap_user {
            let principal = format!("User:{u}");
            if !users.contains(&principal) {
                users.push(principal);
            }
        }
        users
    }

    /// The TLS settings of an SSL / SASL_SSL listener (the files are read
    /// when the listener starts).
    pub fn tls_settings(
        &self,
        listener: &crate::listeners::Listener,
    ) -> Result<crate::security::tls::TlsSettings> {
        use crate::listeners::SecurityProtocol;
        use crate::security::tls::{ClientAuth, TlsSettings};
        let (Some(cert), Some(key)) = (&self.ssl_certificate_location, &self.ssl_key_location)
        else {
            bail!(
                "listener {} is {}: set ssl_certificate_location and ssl_key_location (PEM files)",
                listener.name,
                listener.protocol
            );
        };
        let client_auth = match self.listener_ssl_client_auth.get(&listener.name) {
            Some(v) => v.parse::<ClientAuth>(),
            None if listener.protocol == SecurityProtocol::Ssl => self.ssl_client_auth.parse(),
            None => Ok(ClientAuth::None),
        }
        .with_context(|| format!("listener {}", listener.name))?;
        if client_auth != ClientAuth::None && self.ssl_truststore_location.is_none() {
            bail!(
                "listener {}: ssl client auth {client_auth} needs ssl_truststore_location (PEM CA bundle)",
                listener.name
            );
        }
        for p in &self.ssl_enabled_protocols {
            if p != "TLSv1.2" && p != "TLSv1.3" {
                bail!("ssl_enabled_protocols: {p:?} is not TLSv1.2 or TLSv1.3");
            }
        }
        let mut s = TlsSettings::new(cert, key);
        s.client_auth = client_auth;
        s.ca_bundle = self.ssl_truststore_location.clone();
        s.protocols = self.ssl_enabled_protocols.clone();
        Ok(s)
    }

    /// The first listener.
    #[cfg(test)]
    pub fn first_listener(&self) -> &crate::listeners::Listener {
        &self.resolved_listeners[0]
    }

    /// Settings of the group coordinator.
    pub fn group_config(&self) -> crate::groups::GroupConfig {
        crate::groups::GroupConfig {
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
        }
    }

    /// Settings of consumer-protocol (KIP-848) groups.
    pub fn consumer_group_config(&self) -> crate::groups::consumer_protocol::ConsumerConfig {
        crate::groups::consumer_protocol::ConsumerConfig {
            heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            session_timeout_ms: self.group_consumer_session_timeout_ms,
        }
    }

    pub fn flush_mode_name(&self) -> &'static str {
        match self.log_flush {
            FlushMode::Batch => "batch (fdatasync before every acknowledgement, group commit)",
            FlushMode::Interval => {
                "interval (written before acknowledgement, fdatasync on interval)"
            }
        }
    }
}

/// A string kept out of `Debug` output (passwords in the config).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<BrokerConfig>("listen = \"127.0.0.1:1\"\nlisten_adress = 1")
            .unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");
        let err = BrokerConfig::from_toml("listen = \"127.0.0.1:1\"\nshard = 2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key `shard`") && err.contains("`shards`"),
            "{err}"
        );
    }

    #[test]
    fn file_values_parse_and_defaults_fill_in() {
        let cfg: BrokerConfig = toml::from_str(
            "listen = \"127.0.0.1:19092\"\nlog_flush = \"interval\"\nnum_partitions = 3\nshards = 2",
        )
        .unwrap();
        let cfg = cfg.finish().unwrap();
        assert_eq!(cfg.first_listener().bind.port(), 19092);
        assert_eq!(cfg.log_flush, FlushMode::Interval);
        assert_eq!(cfg.num_partitions, 3);
        assert_eq!(cfg.log_retention_ms, 259_200_000);
        assert_eq!(
            cfg.first_listener().advertised(),
            ("127.0.0.1".to_string(), 19092)
        );
    }

    #[test]
    fn listeners_from_toml() {
        let cfg: BrokerConfig = toml::from_str(
            r#"
listeners = ["PLAINTEXT://127.0.0.1:19092", "CLIENTS://127.0.0.1:19094"]
advertised_listeners = ["CLIENTS://kafka.example:9094"]
listener_security_protocol_map = { CLIENTS = "SASL_PLAINTEXT" }
sasl_bootstrap_user = "admin"
sasl_bootstrap_password = "hunter2"
connections_max_reauth_ms = 60000
"#,
        )
        .unwrap();
        let cfg = cfg.finish().unwrap();
        let ls = &cfg.resolved_listeners;
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[1].name, "CLIENTS");
        assert!(ls[1].protocol.is_sasl());
        assert_eq!(ls[1].advertised(), ("kafka.example".into(), 9094));
        assert!(!format!("{cfg:?}").contains("hunter2"));
        // The old keys and the new ones are alternatives.
        let both: BrokerConfig =
            toml::from_str("listen = \"127.0.0.1:1\"\nlisteners = [\"PLAINTEXT://127.0.0.1:2\"]")
                .unwrap();
        assert!(both.finish().is_err());
        // TLS listeners need a certificate and key.
        let tls: BrokerConfig = toml::from_str("listeners = [\"SSL://127.0.0.1:2\"]").unwrap();
        assert!(tls.finish().is_err());
        let bad: BrokerConfig = toml::from_str("super_users = [\"admin\"]").unwrap();
        assert!(bad.finish().is_err());
        let half: BrokerConfig = toml::from_str("sasl_bootstrap_user = \"a\"").unwrap();
        assert!(half.finish().is_err());
    }

    #[test]
    fn the_bootstrap_user_is_a_super_user() {
        let cfg: BrokerConfig = toml::from_str(
            "super_users = [\"User:ops\", \"User:admin\"]\nsasl_bootstrap_user = \"admin\"\nsasl_bootstrap_password = \"x\"",
        )
        .unwrap();
        assert_eq!(cfg.effective_super_users(), ["User:ops", "User:admin"]);
        let cfg = BrokerConfig {
            sasl_bootstrap_user: Some("root".into()),
            ..Default::default()
        };
        assert_eq!(cfg.effective_super_users(), ["User:root"]);
        assert!(BrokerConfig::default().effective_super_users().is_empty());
    }

    #[test]
    fn tls_settings_per_listener() {
        use crate::security::tls::ClientAuth;
        let cfg: BrokerConfig = toml::from_str(
            r#"
listeners = ["SSL://127.0.0.1:1", "SASL_SSL://127.0.0.1:2", "OPT://127.0.0.1:3"]
listener_security_protocol_map = { OPT = "SSL" }
ssl_certificate_location = "/c.pem"
ssl_key_location = "/k.pem"
ssl_truststore_location = "/ca.pem"
ssl_client_auth = "required"
listener_ssl_client_auth = { OPT = "requested" }
"#,
        )
        .unwrap();
        let cfg = cfg.finish().unwrap();
        let auth = |i: usize| {
            cfg.tls_settings(&cfg.resolved_listeners[i])
                .unwrap()
                .client_auth
        };
        // ssl_client_auth is for SSL listeners; SASL_SSL needs its own key.
        assert_eq!(auth(0), ClientAuth::Required);
        assert_eq!(auth(1), ClientAuth::None);
        assert_eq!(auth(2), ClientAuth::Requested);
        for bad in [
            // client auth without a CA to check certificates against
            "listeners = [\"SSL://127.0.0.1:1\"]\nssl_certificate_location = \"/c\"\nssl_key_location = \"/k\"\nssl_client_auth = \"required\"",
            "listeners = [\"SSL://127.0.0.1:1\"]\nssl_certificate_location = \"/c\"\nssl_key_location = \"/k\"\nssl_client_auth = \"maybe\"",
            "listeners = [\"SSL://127.0.0.1:1\"]\nssl_certificate_location = \"/c\"\nssl_key_location = \"/k\"\nssl_enabled_protocols = [\"SSLv3\"]",
            // an override for a listener that is not TLS
            "listeners = [\"PLAINTEXT://127.0.0.1:1\"]\nlistener_ssl_client_auth = { PLAINTEXT = \"required\" }",
        ] {
            let cfg: BrokerConfig = toml::from_str(bad).unwrap();
            assert!(cfg.finish().is_err(), "{bad}");
        }
    }
}
