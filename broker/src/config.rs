//! Broker configuration: a TOML file and command-line flags, flags winning.
//! Every key is declared once, in `table.rs`, which makes the struct, a
//! flag per key (dashes for underscores, `flags.rs`) and README's table
//! (`readme.rs`). Unknown keys are an error, so a typo never silently does
//! nothing. Impossible values stop the start with the key named (`validate`).

mod bounds;
mod describe;
mod flags;
mod keys;
mod readme;
mod table;
pub mod validate;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use shard::log::FlushMode;

pub use flags::ConfigFlags;
pub use table::{BrokerConfig, SETTINGS};

impl BrokerConfig {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parse a config file's text, keys flat or in their sections
    /// (`keys::flatten`): unknown keys are named with the nearest valid
    /// one; each value is set through [`set_key`](Self::set_key), the path
    /// the flags take, so a wrong type names the key (and the line).
    pub fn from_toml(text: &str) -> Result<Self> {
        let table: toml::Table = text.parse()?;
        let mut cfg = Self::default();
        for k in keys::flatten(table)? {
            let known = cfg.set_key(&k.key, k.value).map_err(|e| {
                anyhow::anyhow!("{e}{}", keys::line_of(text, k.section.as_deref(), &k.key))
            })?;
            debug_assert!(known, "{} passed keys::flatten", k.key);
        }
        Ok(cfg)
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
        let wal = self.log_wal_bytes;
        if wal != 0 && (wal < shard::log::wal::replay::MIN_RING_BYTES || !wal.is_multiple_of(4096))
        {
            bail!("log_wal_bytes = {wal}: must be 0 (no ring) or a multiple of 4096 of at least 1048576");
        }
        let mut listeners = self.resolve_listeners()?;
        self.controller_listener = self.take_controller_listener(&mut listeners)?;
        self.inter_broker =
            crate::inter_broker::InterBroker::choose(&self, &listeners)?.map(std::sync::Arc::new);
        self.resolved_listeners = listeners;
        self.quorum_voters = self
            .controller_quorum_voters
            .iter()
            .map(|v| crate::quorum::transport::parse_voter(v))
            .collect::<std::result::Result<_, _>>()
            .map_err(anyhow::Error::msg)?;
        self.check_cluster()?;
        Ok(self)
    }

    /// Separate the quorum's listener from the clients' (Kafka's
    /// `controller.listener.names`: the first named one serves the quorum).
    fn take_controller_listener(
        &self,
        listeners: &mut Vec<crate::listeners::Listener>,
    ) -> Result<Option<crate::listeners::Listener>> {
        let names: Vec<String> = self
            .controller_listener_names
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        let mut controller: Vec<_> = Vec::new();
        listeners.retain(|l| {
            let quorum = names.contains(&l.name);
            if quorum {
                controller.push(l.clone());
            }
            !quorum
        });
        if controller.len() > 1 {
            bail!(
                "listeners: more than one controller listener ({})",
                controller.len()
            );
        }
        if let Some(l) = controller.first() {
            if l.protocol != crate::listeners::SecurityProtocol::Plaintext {
                bail!(
                    "listener {}: the controller listener is PLAINTEXT only for now (it is {})",
                    l.name,
                    l.protocol
                );
            }
        }
        Ok(controller.pop())
    }

    /// The cluster keys agree with each other.
    fn check_cluster(&self) -> Result<()> {
        for r in &self.process_roles {
            if r != "broker" && r != "controller" {
                bail!("process_roles: {r:?} is neither \"broker\" nor \"controller\"");
            }
        }
        if !self.process_roles.iter().any(|r| r == "broker") {
            bail!("process_roles must include \"broker\" (controller-only nodes are not supported yet)");
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            bail!(
                "broker_session_timeout_ms = {} must be larger than broker_heartbeat_interval_ms = {}",
                self.broker_session_timeout_ms,
                self.broker_heartbeat_interval_ms
            );
        }
        if self.quorum_voters.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<i32> = self.quorum_voters.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.quorum_voters.len() {
            bail!("controller_quorum_voters names a node twice");
        }
        let voter = ids.contains(&self.node_id);
        let controller = self.process_roles.iter().any(|r| r == "controller");
        if voter != controller {
            bail!(
                "node_id {} is {} controller_quorum_voters but process_roles {} \"controller\"",
                self.node_id,
                if voter { "in" } else { "not in" },
                if controller { "has" } else { "lacks" }
            );
        }
        if self.controller_listener.is_none() {
            bail!(
                "controller_quorum_voters is set: add a controller listener to listeners, \
                 named as in controller_listener_names (e.g. \"CONTROLLER://127.0.0.1:9093\")"
            );
        }
        Ok(())
    }

    /// This node votes in a quorum of several (a cluster).
    pub fn is_clustered(&self) -> bool {
        !self.quorum_voters.is_empty()
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
            // A controller listener needs no entry in the map (it is
            // PLAINTEXT), unlike Kafka, which insists on one.
            let mut map = self.listener_security_protocol_map.clone();
            for name in &self.controller_listener_names {
                map.entry(name.to_ascii_uppercase())
                    .or_insert_with(|| "PLAINTEXT".into());
            }
            resolve(&self.listeners, &self.advertised_listeners, &map)?
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

    /// `super_users` plus the bootstrap user (it exists to administer a
    /// fresh broker, which with the authorizer on needs a super user) and
    /// the inter-broker user (brokers' fetches and markers need
    /// CLUSTER_ACTION, as Kafka's broker principal is a super user).
    pub fn effective_super_users(&self) -> Vec<String> {
        let mut users = self.super_users.clone();
        let extra = [
            self.sasl_bootstrap_user
                .as_ref()
                .map(|u| format!("User:{u}")),
            self.inter_broker.as_ref().and_then(|i| i.principal()),
        ];
        for principal in extra.into_iter().flatten() {
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
            max_size: self.group_max_size,
        }
    }

    /// Settings of consumer-protocol (KIP-848) groups.
    pub fn consumer_group_config(&self) -> crate::groups::consumer_protocol::ConsumerConfig {
        crate::groups::consumer_protocol::ConsumerConfig {
            heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            session_timeout_ms: self.group_consumer_session_timeout_ms,
            max_size: self.group_max_size,
        }
    }

    /// Bytes of each shard's write-ahead ring; 0 when none is used.
    pub fn wal_ring_bytes(&self) -> u64 {
        match self.log_flush {
            FlushMode::Batch => self.log_wal_bytes,
            FlushMode::Interval => 0,
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

/// `replica_selector`: where a consumer that names its rack (`client.rack`,
/// Fetch v11+) is told to read from (KIP-392). Kafka chooses with a class,
/// `replica.selector.class`; these are its two built-in behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaSelector {
    /// Kafka's `RackAwareReplicaSelector`: an in-sync follower in the
    /// client's rack, when the leader is not in it.
    Rack,
    /// Kafka's default (no selector): always the leader.
    Leader,
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

    fn finished(toml_text: &str) -> anyhow::Result<BrokerConfig> {
        toml::from_str::<BrokerConfig>(toml_text)
            .map_err(anyhow::Error::from)?
            .finish()
    }

    #[test]
    fn the_inter_broker_listener() {
        // Default: PLAINTEXT, and peers see User:ANONYMOUS.
        let cfg = finished(
            "listeners = [\"SASL_PLAINTEXT://127.0.0.1:2\", \"PLAINTEXT://127.0.0.1:1\"]\n\
             sasl_bootstrap_user = \"admin\"\nsasl_bootstrap_password = \"x\"",
        )
        .unwrap();
        let ib = cfg.inter_broker.as_ref().unwrap();
        assert_eq!(ib.listener.name, "PLAINTEXT");
        assert_eq!(ib.principal(), None);
        assert_eq!(cfg.effective_super_users(), ["User:admin"]);
        // Named SASL: the bootstrap user logs in unless another is given,
        // and that user is a super user.
        let base = "listeners = [\"SASL_PLAINTEXT://127.0.0.1:2\", \"PLAINTEXT://127.0.0.1:1\"]\n\
                    sasl_bootstrap_user = \"admin\"\nsasl_bootstrap_password = \"x\"\n\
                    inter_broker_listener_name = \"sasl_plaintext\"\n";
        let cfg = finished(base).unwrap();
        assert_eq!(
            cfg.inter_broker.as_ref().unwrap().principal().as_deref(),
            Some("User:admin")
        );
        let cfg = finished(&format!(
            "{base}inter_broker_sasl_username = \"broker\"\ninter_broker_sasl_password = \"y\""
        ))
        .unwrap();
        assert_eq!(cfg.effective_super_users(), ["User:admin", "User:broker"]);
        assert!(!format!("{cfg:?}").contains("\"y\""));
        // Refusals name the key.
        for (extra, says) in [
            ("inter_broker_sasl_username = \"b\"", "go together"),
            (
                "sasl_mechanism_inter_broker_protocol = \"SCRAM-SHA-512\"\n\
                 sasl_enabled_mechanisms = [\"PLAIN\"]",
                "not in sasl_enabled_mechanisms",
            ),
        ] {
            let err = finished(&format!("{base}{extra}")).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{err:#}");
        }
        let err = finished(
            "listeners = [\"PLAINTEXT://127.0.0.1:1\"]\ninter_broker_listener_name = \"INTERNAL\"",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("no client listener is named INTERNAL"));
        let err = finished(
            "listeners = [\"SASL_PLAINTEXT://127.0.0.1:2\"]\ninter_broker_listener_name = \"SASL_PLAINTEXT\"",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("inter_broker_sasl_username"),
            "{err:#}"
        );
        // Not named and nothing usable: no inter-broker listener (warned at
        // start), not a refusal.
        let cfg = finished("listeners = [\"SASL_PLAINTEXT://127.0.0.1:2\"]").unwrap();
        assert!(cfg.inter_broker.is_none());
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
