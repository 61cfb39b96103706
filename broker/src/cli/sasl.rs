//! Client side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 5802), for the CLI
//! talking to SASL_PLAINTEXT listeners.

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::security::scram::ScramMechanism;

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
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("malformed SCRAM server-first message");
        };
        if !nonce.starts_with(&self.nonce) {
            bail!("SCRAM server nonce does not extend ours");
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
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
