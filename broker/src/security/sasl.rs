//! The SASL state of one connection on a SASL listener, and the state shared
//! by all shards (credential store, failure limiter, enabled mechanisms).
//!
//! The connection feeds it SaslHandshake mechanisms and SASL tokens (from
//! SaslAuthenticate requests, or raw length-prefixed frames after
//! SaslHandshake v0) and acts on the outcomes; nothing here does I/O.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::auth_limiter::AuthFailureLimiter;
use super::credentials::Credentials;
use super::plain;
use super::scram::{ScramCredential, ScramMechanism, ScramServer, Step};
use crate::config::BrokerConfig;

/// What every shard shares for authentication.
pub struct Security {
    pub credentials: Credentials,
    pub limiter: AuthFailureLimiter,
    pub mechanisms: Vec<String>,
    /// KIP-368 session lifetime; zero: sessions never expire.
    pub reauth: Duration,
    /// ACL authorization (off unless `authorizer_enabled`).
    pub authorizer: crate::acl::Authorizer,
}

impl Security {
    fn with_store(
        config: &BrokerConfig,
        credentials: Credentials,
        acls: crate::acl::store::AclStore,
    ) -> Self {
        Security {
            authorizer: crate::acl::Authorizer::new(
                config.authorizer_enabled,
                &config.effective_super_users(),
                config.allow_everyone_if_no_acl_found,
                acls,
            ),
            credentials,
            limiter: AuthFailureLimiter::new(
                config.sasl_max_failures,
                Duration::from_millis(config.sasl_failure_window_ms),
                Duration::from_millis(config.sasl_failure_block_ms),
            ),
            mechanisms: config.sasl_enabled_mechanisms.clone(),
            reauth: Duration::from_millis(config.connections_max_reauth_ms.max(0) as u64),
        }
    }

    /// The credentials and ACLs of the metadata log behind `source`, after
    /// merging in what this broker kept in its own files before the log
    /// held them (see [`super::migrate`]), with the bootstrap user's
    /// credentials added if the cluster lacks them (the password is never
    /// logged).
    pub fn open(
        config: &BrokerConfig,
        data_dir: &Path,
        source: &crate::metadata::Source,
    ) -> anyhow::Result<Self> {
        super::migrate::import_legacy_files(data_dir, source)?;
        let credentials = Credentials::new(source.clone());
        if let (Some(user), Some(password)) =
            (&config.sasl_bootstrap_user, &config.sasl_bootstrap_password)
        {
            let added = credentials.ensure_bootstrap_user(
                user,
                &password.0,
                config.sasl_bootstrap_iterations,
            )?;
            if added > 0 {
                tracing::info!("bootstrap user {user:?}: created {added} SCRAM credential(s)");
            }
        }
        let acls = crate::acl::store::AclStore::new(source.clone());
        if config.authorizer_enabled {
            tracing::info!(
                "authorizer enabled: {} ACL(s), super users: {:?}",
                acls.snapshot().bindings.len(),
                config.effective_super_users()
            );
        }
        Ok(Self::with_store(config, credentials, acls))
    }

    #[cfg(test)]
    pub fn in_memory(config: &BrokerConfig) -> Result<Self, super::credentials::CredentialsError> {
        Ok(Self::with_store(
            config,
            Credentials::in_memory()?,
            crate::acl::store::AclStore::in_memory(),
        ))
    }

    pub fn enabled(&self, mechanism: &str) -> Option<Mechanism> {
        if !self.mechanisms.iter().any(|m| m == mechanism) {
            return None;
        }
        if mechanism == plain::MECHANISM {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::from_name(mechanism).map(Mechanism::Scram)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => plain::MECHANISM,
            Mechanism::Scram(m) => m.name(),
        }
    }
}

type Lookup = Box<dyn Fn(&str) -> Option<ScramCredential>>;

enum State {
    /// Waiting for SaslHandshake (first time, or a KIP-368 re-authentication).
    Handshake,
    /// Mechanism chosen; tokens expected.
    Tokens {
        mechanism: Mechanism,
        scram: Option<Box<ScramServer<Lookup>>>,
    },
}

/// What the connection does with a token's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// Send this challenge; more tokens follow.
    Continue(Vec<u8>),
    /// Send this final token; the connection now acts as `User:<user>`.
    Done { response: Vec<u8>, user: String },
    /// Tell the client `client_message` (SASL_AUTHENTICATION_FAILED), log
    /// `log`, close the connection.
    Failed { log: String, client_message: String },
}

/// Why a handshake is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// UNSUPPORTED_SASL_MECHANISM.
    Unsupported,
    /// ILLEGAL_SASL_STATE: a handshake in the middle of an exchange.
    IllegalState,
}

pub struct SaslSession {
    state: State,
    /// After SaslHandshake v0 the tokens come as raw frames (no header).
    pub raw_tokens: bool,
    /// The authenticated user (principal `User:<name>`).
    pub user: Option<String>,
    /// KIP-368: when the session ends unless re-authenticated.
    pub expires_at: Option<Instant>,
}

impl Default for SaslSession {
    fn default() -> Self {
        Self::new()
    }
}

impl SaslSession {
    pub fn new() -> Self {
        SaslSession {
            state: State::Handshake,
            raw_tokens: false,
            user: None,
            expires_at: None,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.user.is_some()
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Milliseconds left in the session, for SaslAuthenticate v1+.
    pub fn lifetime_ms(&self, now: Instant) -> i64 {
        self.expires_at
            .map(|t| t.saturating_duration_since(now).as_millis() as i64)
            .unwrap_or(0)
    }

    /// SaslHandshake: choose the mechanism. `version` 0 switches the
    /// connection to raw tokens.
    pub fn handshake(
        &mut self,
        security: &Security,
        mechanism: &str,
        version: i16,
    ) -> Result<Mechanism, HandshakeError> {
        if !matches!(self.state, State::Handshake) {
            return Err(HandshakeError::IllegalState);
        }
        let m = security
            .enabled(mechanism)
            .ok_or(HandshakeError::Unsupported)?;
        let scram = match m {
            Mechanism::Plain => None,
            Mechanism::Scram(sm) => {
                let creds = security.credentials.clone();
                let lookup: Lookup = Box::new(move |u| creds.lookup(u, sm));
                Some(Box::new(
                    ScramServer::new(sm, lookup)
                        .with_secret(&security.credentials.fake_salt_secret()),
                ))
            }
        };
        self.state = State::Tokens {
            mechanism: m,
            scram,
        };
        self.raw_tokens = version == 0;
        Ok(m)
    }

    /// One client token (SaslAuthenticate auth_bytes or a raw frame).
    pub fn token(&mut self, security: &Security, ip: IpAddr, token: &[u8]) -> TokenOutcome {
        let now = Instant::now();
        let State::Tokens { mechanism, scram } = &mut self.state else {
            return TokenOutcome::Failed {
                log: "SASL token before SaslHandshake".into(),
                client_message: "SaslAuthenticate before SaslHandshake".into(),
            };
        };
        let mechanism = *mechanism;
        if let Err(left) = security.limiter.check(ip, now) {
            self.state = State::Handshake;
            return TokenOutcome::Failed {
                log: format!(
                    "{} authentication refused: too many failures from {ip} (blocked {}s more)",
                    mechanism.name(),
                    left.as_secs() + 1
                ),
                client_message: "Authentication failed: too many failed attempts, try again later"
                    .into(),
            };
        }
        let result = match (mechanism, scram) {
            (Mechanism::Plain, _) => {
                let creds = &security.credentials;
                plain::authenticate(token, &creds.fake_salt_secret(), |u| creds.lookup_any(u)).map(
                    |user| Step::Done {
                        response: Vec::new(),
                        user,
                    },
                )
            }
            (Mechanism::Scram(_), Some(server)) => server.step(token),
            (Mechanism::Scram(_), None) => unreachable!("SCRAM sessions have a server"),
        };
        match result {
            Ok(Step::Continue(challenge)) => TokenOutcome::Continue(challenge),
            Ok(Step::Done { response, user }) => {
                self.state = State::Handshake;
                self.raw_tokens = false;
                if let Some(prev) = &self.user {
                    if *prev != user {
                        return TokenOutcome::Failed {
                            log: format!(
                                "re-authentication as {user:?} on a connection of {prev:?}"
                            ),
                            client_message: "Re-authentication must keep the same principal".into(),
                        };
                    }
                }
                security.limiter.record_success(ip);
                self.expires_at = (!security.reauth.is_zero()).then(|| now + security.reauth);
                self.user = Some(user.clone());
                TokenOutcome::Done { response, user }
            }
            Err(e) => {
                self.state = State::Handshake;
                let blocked = security.limiter.record_failure(ip, now);
                let mut log = format!("{} authentication failed: {e}", mechanism.name());
                if let Some(d) = blocked {
                    log.push_str(&format!(
                        "; {ip} is refused for {}s after repeated failures",
                        d.as_secs()
                    ));
                }
                TokenOutcome::Failed {
                    log,
                    client_message: format!(
                        "{} with SASL mechanism {}",
                        e.client_message(),
                        mechanism.name()
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::frame::{raw_token_frame, read_frame};

    fn security() -> Security {
        let cfg = BrokerConfig {
            sasl_max_failures: 2,
            ..Default::default()
        };
        let s = Security::in_memory(&cfg).unwrap();
        s.credentials
            .ensure_bootstrap_user("alice", "secret", 4096)
            .unwrap();
        s
    }

    fn ip() -> IpAddr {
        "10.0.0.1".parse().unwrap()
    }

    #[test]
    fn plain_over_raw_tokens_after_handshake_v0() {
        let sec = security();
        let mut s = SaslSession::new();
        assert_eq!(s.handshake(&sec, "PLAIN", 0), Ok(Mechanism::Plain));
        assert!(s.raw_tokens);
        // What a 0.10 client writes after the handshake: length + token.
        let mut wire = Vec::new();
        let token = b"\0alice\0secret";
        wire.extend_from_slice(&(token.len() as i32).to_be_bytes());
        wire.extend_from_slice(token);
        let mut input = &wire[..];
        let frame =
            futures::executor::block_on(read_frame(&mut input, 1 << 20, &Default::default()))
                .unwrap()
                .unwrap();
        let out = s.token(&sec, ip(), &frame);
        let TokenOutcome::Done { response, user } = out else {
            panic!("{out:?}")
        };
        assert_eq!(user, "alice");
        // PLAIN's success is an empty token: a bare zero length on the wire.
        assert_eq!(&raw_token_frame(&response)[..], &[0, 0, 0, 0]);
        assert_eq!(&raw_token_frame(b"ab")[..], &[0, 0, 0, 2, b'a', b'b']);
        assert!(!s.raw_tokens);
        assert!(s.authenticated());
        assert!(s.expires_at.is_none());
    }

    #[test]
    fn scram_exchange_and_reauthentication() {
        let sec = security();
        let mut s = SaslSession::new();
        s.handshake(&sec, "SCRAM-SHA-512", 1).unwrap();
        assert!(!s.raw_tokens);
        let m = ScramMechanism::Sha512;
        let (first, out) = client_exchange(&mut s, &sec, m, "alice", "secret");
        assert!(first.starts_with("r="));
        assert!(matches!(out, TokenOutcome::Done { ref user, .. } if user == "alice"));
        // KIP-368: a second handshake + exchange on the same connection.
        s.handshake(&sec, "SCRAM-SHA-512", 1).unwrap();
        let (_, out) = client_exchange(&mut s, &sec, m, "alice", "secret");
        assert!(matches!(out, TokenOutcome::Done { .. }));
    }

    #[test]
    fn failures_unknown_mechanisms_and_blocking() {
        let sec = security();
        let mut s = SaslSession::new();
        assert_eq!(
            s.handshake(&sec, "GSSAPI", 1),
            Err(HandshakeError::Unsupported)
        );
        s.handshake(&sec, "PLAIN", 1).unwrap();
        assert_eq!(
            s.handshake(&sec, "PLAIN", 1),
            Err(HandshakeError::IllegalState)
        );
        let out = s.token(&sec, ip(), b"\0alice\0wrong");
        let TokenOutcome::Failed {
            client_message,
            log,
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(client_message.contains("PLAIN"), "{client_message}");
        assert!(!client_message.contains("alice"));
        assert!(log.contains("alice"), "{log}");
        s.handshake(&sec, "PLAIN", 1).unwrap();
        assert!(matches!(
            s.token(&sec, ip(), b"\0nobody\0x"),
            TokenOutcome::Failed { .. }
        ));
        // Two failures: this address is now blocked, even with a good password.
        s.handshake(&sec, "PLAIN", 1).unwrap();
        let out = s.token(&sec, ip(), b"\0alice\0secret");
        assert!(
            matches!(out, TokenOutcome::Failed { ref log, .. } if log.contains("too many")),
            "{out:?}"
        );
        // Another address is not.
        s.handshake(&sec, "PLAIN", 1).unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(matches!(
            s.token(&sec, other, b"\0alice\0secret"),
            TokenOutcome::Done { .. }
        ));
    }

    /// A SCRAM client (RFC 5802) against the session; returns the server's
    /// first message and the final outcome.
    fn client_exchange(
        s: &mut SaslSession,
        sec: &Security,
        m: ScramMechanism,
        user: &str,
        password: &str,
    ) -> (String, TokenOutcome) {
        let mut client = shardline_client::sasl::ScramClient::new(m, user, password);
        let first = client.first_message();
        let TokenOutcome::Continue(server_first) = s.token(sec, ip(), first.as_bytes()) else {
            panic!("no challenge")
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let fin = client.final_message(&server_first).unwrap();
        let out = s.token(sec, ip(), fin.as_bytes());
        if let TokenOutcome::Done { response, .. } = &out {
            client
                .verify_server_final(std::str::from_utf8(response).unwrap())
                .unwrap();
        }
        (server_first, out)
    }
}
