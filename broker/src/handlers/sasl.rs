//! SASL responses, and the SCRAM credential admin APIs
//! (DescribeUserScramCredentials / AlterUserScramCredentials, KIP-554).
//!
//! The SASL exchange itself runs in the connection (`server::connection`),
//! which owns the per-connection state; these build its responses.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::Operation;
use crate::security::sasl::Security;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::shard_state::ShardState;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn handshake_response(error_code: i16, security: &Security) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(error_code)
        .with_mechanisms(security.mechanisms.iter().map(|m| sb(m)).collect())
}

pub fn authenticate_ok(token: Vec<u8>, session_lifetime_ms: i64) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_auth_bytes(Bytes::from(token))
        .with_session_lifetime_ms(session_lifetime_ms)
}

pub fn authenticate_error(error_code: i16, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(error_code)
        .with_error_message(Some(sb(message)))
}

pub fn describe_user_scram_credentials(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // Kafka: DESCRIBE on the cluster.
    if !ctx.cluster_allowed(state, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("describing users needs DESCRIBE on the cluster")));
    }
    let creds = &state.security.credentials;
    let infos = |list: Vec<crate::security::credentials::CredentialInfo>| {
        list.into_iter()
            .map(|i| {
                CredentialInfo::default()
                    .with_mechanism(i.mechanism.kafka_type())
                    .with_iterations(i.iterations as i32)
            })
            .collect::<Vec<_>>()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => creds
            .describe_all()
            .into_iter()
            .map(|(user, list)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(sb(&user))
                    .with_credential_infos(infos(list))
            })
            .collect(),
        Some(users) => {
            let mut seen = BTreeMap::<String, usize>::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_default() += 1;
            }
            let mut done = BTreeSet::new();
            users
                .into_iter()
                .filter_map(|u| {
                    let name = u.name.to_string();
                    if !done.insert(name.clone()) {
                        return None;
                    }
                    let r = DescribeUserScramCredentialsResult::default().with_user(sb(&name));
                    Some(if seen[&name] > 1 {
                        r.with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(sb("Cannot describe SCRAM credentials for the same user twice in a single request")))
                    } else {
                        match creds.describe(&name) {
                            Some(list) => r.with_credential_infos(infos(list)),
                            None => r
                                .with_error_code(ResponseError::ResourceNotFound.code())
                                .with_error_message(Some(sb(
                                    "Attempt to describe a user credential that does not exist",
                                ))),
                        }
                    })
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One user's requested changes.
#[derive(Default)]
struct UserChanges {
    deletions: Vec<i8>,
    upsertions: Vec<(i8, i32, Bytes, Bytes)>,
}

pub async fn alter_user_scram_credentials(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let creds = &state.security.credentials;
    // Kafka: ALTER on the cluster, else every user's result is refused.
    let allowed = ctx.cluster_allowed(state, Operation::Alter);
    let mut by_user: BTreeMap<String, UserChanges> = BTreeMap::new();
    for d in req.deletions {
        by_user
            .entry(d.name.to_string())
            .or_default()
            .deletions
            .push(d.mechanism);
    }
    for u in req.upsertions {
        by_user
            .entry(u.name.to_string())
            .or_default()
            .upsertions
            .push((u.mechanism, u.iterations, u.salt, u.salted_password));
    }
    let mut results = Vec::new();
    for (user, changes) in by_user {
        let (code, message) = if allowed {
            alter_one(creds, &user, changes).await
        } else {
            (
                ResponseError::ClusterAuthorizationFailed.code(),
                Some("changing users needs ALTER on the cluster".to_string()),
            )
        };
        if code == 0 {
            tracing::info!(
                "SCRAM credentials of {user:?} changed by {} from {}",
                ctx.principal,
                ctx.peer
            );
        }
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(sb(&user))
                .with_error_code(code)
                .with_error_message(message.map(|m| sb(&m))),
        );
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

async fn alter_one(
    creds: &crate::security::credentials::Credentials,
    user: &str,
    changes: UserChanges,
) -> (i16, Option<String>) {
    let unacceptable = |m: String| (ResponseError::UnacceptableCredential.code(), Some(m));
    if user.is_empty() {
        return unacceptable("Username must not be empty".into());
    }
    let mut mechanisms = BTreeSet::new();
    let all = changes
        .deletions
        .iter()
        .chain(changes.upsertions.iter().map(|u| &u.0));
    for &t in all {
        if ScramMechanism::from_kafka_type(t).is_none() {
            return (
                ResponseError::UnsupportedSaslMechanism.code(),
                Some(format!("Unknown SCRAM mechanism type {t}")),
            );
        }
        if !mechanisms.insert(t) {
            return (
                ResponseError::DuplicateResource.code(),
                Some("A user credential cannot be altered twice in the same request".into()),
            );
        }
    }
    // Validate every upsertion before changing anything.
    let mut new = Vec::new();
    for (t, iterations, salt, salted) in changes.upsertions {
        let m = ScramMechanism::from_kafka_type(t).expect("checked above");
        let Ok(iterations) = u32::try_from(iterations) else {
            return unacceptable(format!("iterations {iterations} is out of range"));
        };
        match ScramCredential::from_salted_password(m, salt.to_vec(), &salted, iterations) {
            Ok(c) => new.push(c),
            Err(e) => return unacceptable(e.to_string()),
        }
    }
    let deletions = changes
        .deletions
        .iter()
        .map(|&t| ScramMechanism::from_kafka_type(t).expect("checked above"))
        .collect();
    // All of the user's changes in one durable write, or none (Kafka too
    // applies a user's changes only when all of them are valid).
    match creds.alter(user.to_string(), deletions, new).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                ResponseError::ResourceNotFound.code(),
                Some("Attempt to delete a user credential that does not exist".into()),
            )
        }
        Err(e) => {
            return (
                ResponseError::UnknownServerError.code(),
                Some(e.to_string()),
            )
        }
    }
    (0, None)
}
