//! SCRAM users via AlterUserScramCredentials and
//! DescribeUserScramCredentials (KIP-554). A password never leaves this
//! process: only a random salt and the salted password are sent.

use anyhow::{bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::ResponseError;
use shardline_client::{check, sb, Client};

use crate::security::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// `SCRAM-SHA-256`, `SCRAM-SHA-512`, or both for anything else (`both`).
pub fn mechanisms(which: &str) -> Vec<ScramMechanism> {
    match ScramMechanism::from_name(which) {
        Some(m) => vec![m],
        None => ScramMechanism::ALL.to_vec(),
    }
}

fn check_results(resp: AlterUserScramCredentialsResponse) -> Result<()> {
    for r in resp.results {
        check(
            r.error_code,
            format!("user {}", r.user.as_str()),
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

/// Set `name`'s credentials for the mechanisms `which` names.
pub fn create(
    client: &mut Client,
    name: &str,
    password: &str,
    which: &str,
    iterations: u32,
) -> Result<()> {
    if name.is_empty() {
        bail!("the user name must not be empty");
    }
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        bail!("iterations must be in {MIN_ITERATIONS}..={MAX_ITERATIONS}");
    }
    let mut upsertions = Vec::new();
    for m in mechanisms(which) {
        let mut salt = vec![0u8; 32];
        getrandom::getrandom(&mut salt).map_err(|e| anyhow::anyhow!("random salt: {e}"))?;
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        upsertions.push(
            ScramCredentialUpsertion::default()
                .with_name(sb(name))
                .with_mechanism(m.kafka_type())
                .with_iterations(iterations as i32)
                .with_salt(Bytes::from(salt))
                .with_salted_password(Bytes::from(salted)),
        );
    }
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(upsertions);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check_results(resp)
}

/// Delete every credential of `name` (RESOURCE_NOT_FOUND when it has none).
pub fn delete(client: &mut Client, name: &str) -> Result<()> {
    let req = DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![UserName::default().with_name(sb(name))]));
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check(
        resp.error_code,
        "describing users",
        resp.error_message.as_ref(),
    )?;
    let Some(r) = resp.results.into_iter().next() else {
        bail!("RESOURCE_NOT_FOUND: user {name} not found");
    };
    if r.error_code == ResponseError::ResourceNotFound.code() {
        bail!("RESOURCE_NOT_FOUND: user {name} not found");
    }
    check(
        r.error_code,
        format!("user {name}"),
        r.error_message.as_ref(),
    )?;
    let deletions = r
        .credential_infos
        .iter()
        .map(|c| {
            ScramCredentialDeletion::default()
                .with_name(sb(name))
                .with_mechanism(c.mechanism)
        })
        .collect();
    let req = AlterUserScramCredentialsRequest::default().with_deletions(deletions);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check_results(resp)
}

/// A user and its credentials: (mechanism name, iterations).
pub type UserCredentials = (String, Vec<(String, i32)>);

pub fn list(client: &mut Client) -> Result<Vec<UserCredentials>> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(None);
    let (resp, _) = client.admin_conn()?.send(&req)?;
    check(
        resp.error_code,
        "describing users",
        resp.error_message.as_ref(),
    )?;
    let mut out = Vec::new();
    for r in resp.results {
        check(
            r.error_code,
            format!("user {}", r.user.as_str()),
            r.error_message.as_ref(),
        )?;
        let mechs = r
            .credential_infos
            .iter()
            .map(|c| {
                let m = ScramMechanism::from_kafka_type(c.mechanism)
                    .map_or_else(|| format!("type {}", c.mechanism), |m| m.name().to_string());
                (m, c.iterations)
            })
            .collect();
        out.push((r.user.to_string(), mechs));
    }
    out.sort();
    Ok(out)
}
