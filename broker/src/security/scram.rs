//! SCRAM-SHA-256 / SCRAM-SHA-512 server side (RFC 5802, RFC 7677), as Kafka
//! speaks it inside SaslAuthenticate (or as raw tokens after SaslHandshake v0).
//!
//! Only the derived keys are ever kept: `StoredKey = H(HMAC(SaltedPassword,
//! "Client Key"))` lets us check a client proof, `ServerKey` lets us prove we
//! know the credential. Neither lets an attacker who reads the store log in
//! directly (they would still need the ClientKey, which only the password or
//! an observed exchange yields).

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Kafka's bounds for SCRAM iteration counts (`ScramMechanism.minIterations`
/// / `maxIterations`); AlterUserScramCredentials rejects anything outside.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Length of salts we generate (and of the fake salts for unknown users, so
/// the two cannot be told apart by length).
pub const SALT_LEN: usize = 32;
/// Longest SCRAM message we accept; real ones are a few hundred bytes.
const MAX_MESSAGE_LEN: usize = 8192;

/// The mechanism enum and its hash, HMAC and `Hi()` live in the client crate,
/// so the CLI's SCRAM client and this server derive keys the same way.
pub use shardline_client::scram::ScramMechanism;

/// Why a credential could not be created (AlterUserScramCredentials maps
/// these to UNACCEPTABLE_CREDENTIAL).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("iterations {0} outside [{MIN_ITERATIONS}, {MAX_ITERATIONS}]")]
    Iterations(u32),
    #[error("salt must not be empty")]
    EmptySalt,
    #[error("password must not be empty")]
    EmptyPassword,
    #[error("salted password must be {expected} bytes for this mechanism, got {got}")]
    SaltedPasswordLength { expected: usize, got: usize },
    #[error("system random number generator failed")]
    Random,
}

/// What the server keeps for one user and one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    // Keys are secret-ish: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, CredentialError> {
    let mut v = vec![0u8; n];
    getrandom::getrandom(&mut v).map_err(|_| CredentialError::Random)?;
    Ok(v)
}

fn check_iterations(iterations: u32) -> Result<(), CredentialError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::Iterations(iterations))
    }
}

impl ScramCredential {
    /// Derive a credential from a password with a fresh random salt.
    pub fn new(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        if password.is_empty() {
            return Err(CredentialError::EmptyPassword);
        }
        check_iterations(iterations)?;
        let salt = random_bytes(SALT_LEN)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// KIP-554 upsertion: the client (kafka-configs / Admin) sends the salt and
    /// `SaltedPassword`; we only keep the keys derived from it.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        if salted_password.len() != mechanism.hash_len() {
            return Err(CredentialError::SaltedPasswordLength {
                expected: mechanism.hash_len(),
                got: salted_password.len(),
            });
        }
        Ok(Self::derive_keys(
            mechanism,
            salt,
            salted_password,
            iterations,
        ))
    }

    fn derive_keys(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// Re-derive from a candidate password with our salt and compare stored
    /// keys in constant time: how SASL/PLAIN checks passwords without the
    /// store ever holding one.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = self
            .mechanism
            .salted_password(password, &self.salt, self.iterations);
        let stored = self
            .mechanism
            .hash(&self.mechanism.hmac(&salted, b"Client Key"));
        bool::from(stored.ct_eq(&self.stored_key))
    }
}

/// A failed SCRAM/PLAIN exchange. `Display` is for the broker log; clients
/// only ever get [`AuthError::client_message`] so nothing leaks (e.g. whether
/// the user exists).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("malformed {mechanism} message: {detail}")]
    Malformed {
        mechanism: &'static str,
        detail: String,
    },
    #[error("unsupported {0}")]
    Unsupported(String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("invalid credentials for user {0:?}")]
    BadCredentials(String),
    #[error("authorization id {authzid:?} differs from user {user:?}")]
    AuthzidMismatch { authzid: String, user: String },
    #[error("nonce mismatch")]
    NonceMismatch,
    #[error("channel binding mismatch")]
    ChannelBinding,
    #[error("SASL message received in state {0}")]
    InvalidState(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    /// The only text a client sees (SaslAuthenticate error_message with
    /// SASL_AUTHENTICATION_FAILED).
    pub fn client_message(&self) -> &'static str {
        "Authentication failed"
    }
}

fn malformed(detail: impl Into<String>) -> AuthError {
    AuthError::Malformed {
        mechanism: "SCRAM",
        detail: detail.into(),
    }
}

/// Decode an RFC 5802 `saslname`: `=2C` is ',' and `=3D` is '='; any other
/// '=' (and a bare ',') is invalid. Full SASLprep is not applied, like Kafka.
pub fn decode_saslname(s: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['=', ',']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(malformed("bad escape in username"));
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A per-process secret for fake salts when the caller provides none; a
/// persisted one (see `Credentials::fake_salt_secret`) keeps fake salts stable
/// across restarts, which is better.
fn process_secret() -> &'static [u8] {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    SECRET.get_or_init(|| random_bytes(32).unwrap_or_else(|_| b"shardline-fallback".to_vec()))
}

/// A deterministic stand-in credential for a user that does not exist, so the
/// server-first message looks the same as for a real user and repeated tries
/// see the same salt: usernames cannot be probed.
pub fn fake_credential(mechanism: ScramMechanism, secret: &[u8], user: &str) -> ScramCredential {
    let seed = ScramMechanism::Sha512.hmac(secret, format!("fake:{mechanism}:{user}").as_bytes());
    ScramCredential {
        mechanism,
        salt: seed[..SALT_LEN].to_vec(),
        iterations: MIN_ITERATIONS,
        stored_key: mechanism.hash(&seed),
        server_key: mechanism.hmac(&seed, b"Server Key"),
    }
}

/// What the caller sends back after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge and wait for the next client message.
    Continue(Vec<u8>),
    /// Send this final message; `user` is authenticated.
    Done { response: Vec<u8>, user: String },
}

enum State {
    ClientFirst,
    ClientFinal {
        user: String,
        known: bool,
        cred: ScramCredential,
        /// `base64(gs2-header)`: what `c=` must be in the final message.
        channel_binding: String,
        nonce: String,
        /// Length of the client's part at the start of `nonce`.
        client_nonce_len: usize,
        auth_message_prefix: String,
    },
    Finished,
}

pub struct ScramServer<L> {
    mechanism: ScramMechanism,
    lookup: L,
    secret: Vec<u8>,
    fixed_nonce: Option<String>,
    state: State,
}

impl<L: Fn(&str) -> Option<ScramCredential>> ScramServer<L> {
    pub fn new(mechanism: ScramMechanism, lookup: L) -> Self {
        ScramServer {
            mechanism,
            lookup,
            secret: process_secret().to_vec(),
            fixed_nonce: None,
            state: State::ClientFirst,
        }
    }

    /// Use a persistent secret for fake salts of unknown users.
    pub fn with_secret(mut self, secret: &[u8]) -> Self {
        self.secret = secret.to_vec();
        self
    }

    /// Fix the server nonce part (tests with published vectors only).
    #[cfg(test)]
    pub fn with_nonce(mut self, nonce: &str) -> Self {
        self.fixed_nonce = Some(nonce.to_string());
        self
    }

    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Feed one client message. Any error is final: the exchange is over.
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(malformed("message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
        match state {
            State::ClientFirst => self.client_first(msg),
            State::ClientFinal {
                user,
                known,
                cred,
                channel_binding,
                nonce,
                client_nonce_len,
                auth_message_prefix,
            } => {
                let final_msg = parse_client_final(msg)?;
                if final_msg.channel_binding != channel_binding {
                    return Err(AuthError::ChannelBinding);
                }
                // librdkafka before 2.6.1 (librdkafka#4895; Debian's kcat
                // has 2.0.2) sends the client nonce twice: client nonce +
                // the full nonce. Kafka 3.8.1-3.9 accept that (the full
                // nonce, server part included, is still there); take
                // exactly that form too, nothing looser.
                let librdkafka_form = final_msg.nonce.len() == nonce.len() + client_nonce_len
                    && final_msg.nonce.ends_with(nonce.as_str())
                    && final_msg.nonce[..client_nonce_len] == nonce[..client_nonce_len];
                if final_msg.nonce != nonce && !librdkafka_form {
                    return Err(AuthError::NonceMismatch);
                }
                let auth_message = format!("{auth_message_prefix},{}", final_msg.without_proof);
                let proof = B64
                    .decode(final_msg.proof)
                    .map_err(|_| malformed("proof is not base64"))?;
                let m = cred.mechanism;
                let signature = m.hmac(&cred.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Err(malformed("proof has the wrong length"));
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                let ok = bool::from(m.hash(&client_key).ct_eq(&cred.stored_key));
                if !known {
                    return Err(AuthError::UnknownUser(user));
                }
                if !ok {
                    return Err(AuthError::BadCredentials(user));
                }
                let server_sig = m.hmac(&cred.server_key, auth_message.as_bytes());
                Ok(Step::Done {
                    response: format!("v={}", B64.encode(server_sig)).into_bytes(),
                    user,
                })
            }
            State::Finished => Err(AuthError::InvalidState("finished")),
        }
    }

    fn client_first(&mut self, msg: &str) -> Result<Step, AuthError> {
        // gs2-header = cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let cbind = parts.next().unwrap_or("");
        let authzid = parts
            .next()
            .ok_or_else(|| malformed("missing gs2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| malformed("missing gs2 header"))?;
        match cbind {
            // "y": the client could bind but thinks we can't; fine, we can't.
            "n" | "y" => {}
            c if c.starts_with("p=") => {
                return Err(AuthError::Unsupported("channel binding".into()))
            }
            _ => return Err(malformed("bad channel binding flag")),
        }
        let authzid = match authzid {
            "" => None,
            a => Some(decode_saslname(
                a.strip_prefix("a=")
                    .ok_or_else(|| malformed("bad authzid"))?,
            )?),
        };
        let gs2_header = &msg[..msg.len() - bare.len()];

        let mut attrs = bare.split(',');
        let first = attrs.next().unwrap_or("");
        if first.starts_with("m=") {
            return Err(AuthError::Unsupported("mandatory extension".into()));
        }
        let user = decode_saslname(
            first
                .strip_prefix("n=")
                .ok_or_else(|| malformed("missing username"))?,
        )?;
        if user.is_empty() {
            return Err(malformed("empty username"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed("missing nonce"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(malformed("bad nonce"));
        }
        // Kafka uses extensions for delegation tokens (`tokenauth=true`),
        // which we do not support; nothing else is defined, so refuse all.
        if let Some(ext) = attrs.next() {
            let key = ext.split('=').next().unwrap_or("");
            return Err(AuthError::Unsupported(format!("SCRAM extension {key:?}")));
        }
        if let Some(a) = authzid {
            if a != user {
                return Err(AuthError::AuthzidMismatch { authzid: a, user });
            }
        }

        let (cred, known) = match (self.lookup)(&user) {
            Some(c) if c.mechanism == self.mechanism => (c, true),
            _ => (fake_credential(self.mechanism, &self.secret, &user), false),
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => B64.encode(random_bytes(24).map_err(|e| AuthError::Internal(e.to_string()))?),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&cred.salt),
            cred.iterations
        );
        self.state = State::ClientFinal {
            auth_message_prefix: format!("{bare},{server_first}"),
            channel_binding: B64.encode(gs2_header),
            user,
            known,
            cred,
            nonce,
            client_nonce_len: client_nonce.len(),
        };
        Ok(Step::Continue(server_first.into_bytes()))
    }
}

struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    proof: &'a str,
    without_proof: &'a str,
}

fn parse_client_final(msg: &str) -> Result<ClientFinal<'_>, AuthError> {
    // c=...,r=...[,ext...],p=...   (p must be last, per RFC 5802)
    let cut = msg.rfind(",p=").ok_or_else(|| malformed("missing proof"))?;
    let without_proof = &msg[..cut];
    let proof = &msg[cut + 3..];
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed("missing channel binding"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("missing nonce"))?;
    if proof.is_empty() || proof.contains(',') {
        return Err(malformed("bad proof"));
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

#[cfg(test)]
#[path = "scram_tests.rs"]
pub(crate) mod tests;
