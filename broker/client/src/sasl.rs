//! Client side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 5802), run inside
//! SaslHandshake v1 + SaslAuthenticate right after ApiVersions.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};

use crate::conn::Conn;
use crate::errors::{check, kafka_error};
use crate::sb;
use crate::scram::ScramMechanism;

/// SASL settings of a connection.
#[derive(Clone, Debug)]
pub struct SaslAuth {
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

/// SaslHandshake v1, then the mechanism's tokens in SaslAuthenticate.
pub(crate) fn authenticate<P>(conn: &mut Conn<P>, auth: &SaslAuth) -> Result<()> {
    let addr = conn.addr.clone();
    run(conn, auth).with_context(|| format!("SASL {} as {:?} to {addr}", auth.mechanism, auth.user))
}

fn run<P>(conn: &mut Conn<P>, auth: &SaslAuth) -> Result<()> {
    let req = SaslHandshakeRequest::default().with_mechanism(sb(&auth.mechanism));
    let resp = conn.call(&req)?;
    if resp.error_code != 0 {
        let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(kafka_error(
            resp.error_code,
            format!(
                "mechanism {} (broker offers {})",
                auth.mechanism,
                offered.join(", ")
            ),
            None,
        ));
    }
    let mut exchange = |token: Vec<u8>| -> Result<Vec<u8>> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let resp = conn.call(&req)?;
        check(
            resp.error_code,
            "SaslAuthenticate",
            resp.error_message.as_ref(),
        )?;
        Ok(resp.auth_bytes.to_vec())
    };
    match ScramMechanism::from_name(&auth.mechanism) {
        None => {
            exchange(plain_message(&auth.user, &auth.password))?;
        }
        Some(m) => {
            let mut c = ScramClient::new(m, &auth.user, &auth.password);
            let server_first = exchange(c.first_message().into_bytes())?;
            let fin = c.final_message(&String::from_utf8_lossy(&server_first))?;
            let server_final = exchange(fin.into_bytes())?;
            c.verify_server_final(&String::from_utf8_lossy(&server_final))?;
        }
    }
    Ok(())
}

/// The single PLAIN message: `NUL user NUL password`.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        let mut raw = [0u8; 18];
        getrandom::getrandom(&mut raw).expect("system random number generator");
        let nonce = B64.encode(raw);
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", escape(user)),
            nonce,
            server_signature: None,
        }
    }

    pub fn first_message(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answer the server-first message with the client proof.
    pub fn final_message(&mut self, server_first: &str) -> Result<String> {
        let (salt, iterations) = Self::salt_and_iterations(server_first)?;
        let salted = self
            .mechanism
            .salted_password(self.password.as_bytes(), &salt, iterations);
        self.final_message_salted(server_first, &salted)
    }

    /// The salt and iteration count of a server-first message (to derive,
    /// or reuse, the salted password).
    pub fn salt_and_iterations(server_first: &str) -> Result<(Vec<u8>, u32)> {
        let (_, salt, iterations) = parse_server_first(server_first)?;
        Ok((salt, iterations))
    }

    /// [`Self::final_message`] with the salted password already derived
    /// from this server-first message's salt and iterations.
    pub fn final_message_salted(&mut self, server_first: &str, salted: &[u8]) -> Result<String> {
        let (nonce, _, _) = parse_server_first(server_first)?;
        if !nonce.starts_with(&self.nonce) {
            bail!("SCRAM server nonce does not extend ours");
        }
        let m = self.mechanism;
        let client_key = m.hmac(salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check the server's `v=` signature: the server knows our credential.
    pub fn verify_server_final(&self, server_final: &str) -> Result<()> {
        if let Some(e) = server_final.strip_prefix("e=") {
            bail!("SCRAM server error: {e}");
        }
        let v = server_final
            .strip_prefix("v=")
            .ok_or_else(|| anyhow!("malformed SCRAM server-final message"))?;
        let got = B64.decode(v)?;
        if Some(got) != self.server_signature {
            bail!("the broker's SCRAM signature is wrong: it does not know this credential");
        }
        Ok(())
    }
}

/// Nonce, salt and iterations of a server-first message.
fn parse_server_first(server_first: &str) -> Result<(String, Vec<u8>, u32)> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for attr in server_first.split(',') {
        match attr.split_once('=') {
            Some(("r", v)) => nonce = Some(v.to_string()),
            Some(("s", v)) => salt = Some(B64.decode(v)?),
            Some(("i", v)) => iterations = Some(v.parse::<u32>()?),
            Some(("e", v)) => bail!("SCRAM server error: {v}"),
            _ => {}
        }
    }
    match (nonce, salt, iterations) {
        (Some(n), Some(s), Some(i)) => Ok((n, s, i)),
        _ => bail!("malformed SCRAM server-first message"),
    }
}
