//! How this broker reaches its peers (and itself) for followers' fetches,
//! transaction markers and AddPartitionsToTxn verification: Kafka's
//! `inter.broker.listener.name`, with TLS and SASL as that listener asks.
//!
//! Over SASL the peer sees this broker's own principal (the configured
//! inter-broker user, a super user), so with `authorizer_enabled` the
//! CLUSTER_ACTION checks on WriteTxnMarkers, replica fetches and
//! verification pass without opening them to `User:ANONYMOUS`. Over
//! PLAINTEXT the peer sees `User:ANONYMOUS`, as in Kafka.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::future::LocalBoxFuture;
use replication::conn::{tcp, Dialer, LeaderConn, SaltedCache, SaslLogin};
use rustls::pki_types::ServerName;

use crate::config::BrokerConfig;
use crate::listeners::{Listener, SecurityProtocol};
use crate::metadata::ClusterState;
use crate::security::tls_stream::TlsStream;

/// The inter-broker listener and what connecting to it takes.
pub struct InterBroker {
    /// Its name: every broker of a cluster advertises it.
    pub listener: Listener,
    /// Set for SSL / SASL_SSL: roots from `ssl_truststore_location`, and
    /// this broker's certificate for listeners that ask for one.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Set for SASL_PLAINTEXT / SASL_SSL.
    sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for InterBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBroker")
            .field("listener", &self.listener.name)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl InterBroker {
    /// The principal peers see on this broker's connections.
    pub fn principal(&self) -> Option<String> {
        self.sasl.as_ref().map(|s| format!("User:{}", s.user))
    }

    /// Choose the listener (`finish`, after the listeners are resolved).
    /// Named: it must exist and be usable, or the configuration is refused.
    /// Not named: `PLAINTEXT`, else any plaintext listener, else the first
    /// one this broker can log in to; none usable is not an error (a single
    /// node without transactions needs none), the broker warns at start.
    pub fn choose(cfg: &BrokerConfig, listeners: &[Listener]) -> Result<Option<InterBroker>> {
        if let Some(name) = &cfg.inter_broker_listener_name {
            let name = name.to_ascii_uppercase();
            let Some(l) = listeners.iter().find(|l| l.name == name) else {
                let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                bail!(
                    "inter_broker_listener_name: no client listener is named {name} (they are: {})",
                    names.join(", ")
                );
            };
            return Self::for_listener(cfg, l)
                .with_context(|| format!("inter_broker_listener_name = {name}"))
                .map(Some);
        }
        let plaintext = listeners
            .iter()
            .find(|l| l.name == "PLAINTEXT")
            .or_else(|| {
                listeners
                    .iter()
                    .find(|l| l.protocol == SecurityProtocol::Plaintext)
            });
        if let Some(l) = plaintext {
            return Self::for_listener(cfg, l).map(Some);
        }
        Ok(listeners
            .iter()
            .find_map(|l| Self::for_listener(cfg, l).ok()))
    }

    fn for_listener(cfg: &BrokerConfig, l: &Listener) -> Result<InterBroker> {
        let tls = if l.protocol.is_tls() {
            let Some(ca) = &cfg.ssl_truststore_location else {
                bail!(
                    "listener {} is {}: brokers verify each other with ssl_truststore_location, \
                     which is not set",
                    l.name,
                    l.protocol
                );
            };
            let client = cfg
                .ssl_certificate_location
                .clone()
                .zip(cfg.ssl_key_location.clone());
            let files = shardline_client::tls::TlsFiles {
                ca: ca.clone(),
                client,
            };
            Some(shardline_client::tls::client_config(&files)?)
        } else {
            None
        };
        let sasl = if l.protocol.is_sasl() {
            let mechanism = cfg
                .sasl_mechanism_inter_broker_protocol
                .to_ascii_uppercase();
            if !cfg
                .sasl_enabled_mechanisms
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&mechanism))
            {
                bail!(
                    "sasl_mechanism_inter_broker_protocol = {mechanism} is not in \
                     sasl_enabled_mechanisms"
                );
            }
            let (user, password) = match (
                &cfg.inter_broker_sasl_username,
                &cfg.inter_broker_sasl_password,
            ) {
                (Some(u), Some(p)) => (u.clone(), p.0.clone()),
                (None, None) => match (&cfg.sasl_bootstrap_user, &cfg.sasl_bootstrap_password) {
                    (Some(u), Some(p)) => (u.clone(), p.0.clone()),
                    _ => bail!(
                        "listener {} is {}: brokers log in to it with inter_broker_sasl_username \
                         and inter_broker_sasl_password (or the sasl_bootstrap_user), none set",
                        l.name,
                        l.protocol
                    ),
                },
                _ => bail!("inter_broker_sasl_username and inter_broker_sasl_password go together"),
            };
            Some(SaslLogin {
                mechanism,
                user,
                password,
            })
        } else {
            None
        };
        Ok(InterBroker {
            listener: l.clone(),
            tls,
            sasl,
        })
    }
}

/// Where broker `id` takes inter-broker connections: its endpoint of the
/// inter-broker listener. The advertised host must be an IP address (or
/// `localhost`): resolving a name is a blocking call, which a shard never
/// makes.
pub fn peer_addr(snap: &ClusterState, id: i32, cfg: &BrokerConfig) -> Option<SocketAddr> {
    let name = &cfg.inter_broker.as_ref()?.listener.name;
    let e = snap.brokers.get(&id)?.endpoint(name)?;
    let ip = match e.host.as_str() {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        host => match host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                tracing::warn!(
                    "broker {id} advertises {host} for {name}, not an IP address: its peers \
                     cannot reach it (advertise an address)"
                );
                return None;
            }
        },
    };
    Some(SocketAddr::new(ip, e.port))
}

/// This broker's own inter-broker listener (before it is registered).
pub fn own_addr(cfg: &BrokerConfig) -> Option<SocketAddr> {
    let mut addr = cfg.inter_broker.as_ref()?.listener.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Some(addr)
}

/// A shard's dialer of peers: TCP, then TLS and SASL as the inter-broker
/// listener asks. One per shard (the SCRAM cache is the shard's).
pub struct BrokerDialer {
    inter: Option<Arc<InterBroker>>,
    cache: SaltedCache,
    /// When a failed login was last logged: callers retry every few tens of
    /// milliseconds, the log says it at most every [`WARN_EVERY`].
    warned: Cell<Option<Instant>>,
}

const WARN_EVERY: Duration = Duration::from_secs(10);

impl BrokerDialer {
    pub fn new(cfg: &BrokerConfig) -> Self {
        Self {
            inter: cfg.inter_broker.clone(),
            cache: SaltedCache::default(),
            warned: Cell::new(None),
        }
    }

    async fn connect(&self, addr: SocketAddr, within: Duration) -> Result<LeaderConn> {
        let inter = self
            .inter
            .as_ref()
            .ok_or_else(|| anyhow!("no inter-broker listener is configured"))?;
        let stream = tcp(addr, within).await?;
        let mut conn = match &inter.tls {
            None => LeaderConn::over(Box::new(stream), addr),
            Some(config) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let tls = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| anyhow!("TLS to {addr}: {e}"))?;
                let mut s = TlsStream::client(stream, tls);
                shard::rt::timeout(within, s.handshake())
                    .await
                    .map_err(|_| anyhow!("TLS handshake with {addr} took over {within:?}"))?
                    .map_err(|e| anyhow!("TLS handshake with {addr}: {e}"))?;
                LeaderConn::over(Box::new(s), addr)
            }
        };
        if let Some(login) = &inter.sasl {
            if let Err(e) = conn.authenticate(login, &self.cache, within).await {
                // A wrong inter-broker credential stops replication and
                // transactions: say so where an operator looks.
                if self.warned.get().is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    self.warned.set(Some(Instant::now()));
                    tracing::warn!(
                        "inter-broker login failed: {e:#} (check inter_broker_sasl_username and \
                         inter_broker_sasl_password, or the sasl_bootstrap_user, on every broker)"
                    );
                }
                return Err(e);
            }
        }
        Ok(conn)
    }
}

impl Dialer for BrokerDialer {
    fn dial(&self, addr: SocketAddr, within: Duration) -> LocalBoxFuture<'_, Result<LeaderConn>> {
        Box::pin(self.connect(addr, within))
    }
}
