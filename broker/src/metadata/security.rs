//! ACLs, SCRAM credentials and client quotas: cluster-wide state in the
//! metadata log, as KRaft keeps them (`AccessControlEntryRecord`,
//! `UserScramCredentialRecord`, `ClientQuotaRecord`), so every broker
//! authorizes, authenticates and throttles alike, whichever one a change
//! was sent to.
//!
//! Each part is an immutable snapshot behind an `Arc`, built when a
//! command is applied (on the quorum's thread, never a shard's): an
//! authorization check or a SCRAM lookup clones the `Arc` and reads, with
//! the ACL index already built. Every change is a delta (create, delete
//! by filter, alter one user, change some quota keys) applied to the state
//! the log has reached, so changes sent to different brokers at once
//! compose instead of one overwriting the other.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::model::{AclBinding, AclFilter};
use crate::acl::store::AclSnapshot;
use crate::quotas::store::{Change, Snapshot as QuotaSnapshot};
use crate::security::credentials::{alter_user, Snapshot as ScramSnapshot, StoredCredential};
use crate::security::scram::ScramMechanism;

use super::command::Effect;

/// Longest fake-salt secret accepted (it is 32 random bytes).
const MAX_SECRET: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct SecurityState {
    pub acls: Arc<AclSnapshot>,
    pub scram: Arc<ScramSnapshot>,
    pub quotas: Arc<QuotaSnapshot>,
}

impl PartialEq for SecurityState {
    fn eq(&self, other: &Self) -> bool {
        self.acls.bindings == other.acls.bindings
            && self.scram.users == other.scram.users
            && self.scram.secret == other.scram.secret
            && self.quotas.entities == other.quotas.entities
    }
}

/// The security commands of the metadata log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SecurityCommand {
    /// Add ACLs (already validated); stored ones are no-ops.
    CreateAcls { acls: Vec<AclBinding> },
    /// Remove every ACL matching each filter.
    DeleteAcls { filters: Vec<AclFilter> },
    /// One user's AlterUserScramCredentials: deletions, then upsertions,
    /// all or nothing. With `only_missing`, upsertions never replace a
    /// credential (the configured bootstrap user, proposed by every
    /// broker at start).
    AlterScramUser {
        user: String,
        deletions: Vec<ScramMechanism>,
        upsertions: Vec<StoredCredential>,
        only_missing: bool,
    },
    /// AlterClientQuotas: set or remove keys of entities.
    AlterClientQuotas { changes: Vec<Change> },
    /// What a broker kept in its own files before the metadata log held
    /// it (`acls.json`, `credentials.json`, `quotas.json`), merged in at
    /// its first start on this build: ACLs are added, users and quota
    /// entities the log lacks are taken; the fake-salt secret is set once.
    Import {
        acls: Vec<AclBinding>,
        users: Vec<(String, Vec<StoredCredential>)>,
        quotas: Vec<Change>,
        fake_salt_secret: Option<Vec<u8>>,
    },
}

impl SecurityState {
    pub fn apply(&mut self, cmd: &SecurityCommand) -> Result<Effect, String> {
        match cmd {
            SecurityCommand::CreateAcls { acls } => {
                validate_acls(acls)?;
                if let Some(next) = self.acls.created(acls)? {
                    self.acls = Arc::new(next);
                }
                Ok(Effect::Security(SecurityEffect::Done))
            }
            SecurityCommand::DeleteAcls { filters } => {
                let (next, removed) = self.acls.deleted(filters);
                if let Some(next) = next {
                    self.acls = Arc::new(next);
                }
                Ok(Effect::Security(SecurityEffect::AclsDeleted(removed)))
            }
            SecurityCommand::AlterScramUser {
                user,
                deletions,
                upsertions,
                only_missing,
            } => {
                let new = credentials(upsertions)?;
                let mut users = self.scram.users.clone();
                let new = if *only_missing {
                    let have = users.get(user);
                    new.into_iter()
                        .filter(|c| have.is_none_or(|h| !h.contains_key(&c.mechanism)))
                        .collect()
                } else {
                    new
                };
                let (changed, found) = alter_user(&mut users, user, deletions.clone(), new);
                if changed && found {
                    self.scram = Arc::new(self.scram.with_users(users));
                }
                Ok(Effect::Security(SecurityEffect::ScramAltered { found }))
            }
            SecurityCommand::AlterClientQuotas { changes } => {
                if let Some(next) = self.quotas.changed(changes)? {
                    self.quotas = Arc::new(next);
                }
                Ok(Effect::Security(SecurityEffect::Done))
            }
            SecurityCommand::Import {
                acls,
                users,
                quotas,
                fake_salt_secret,
            } => {
                validate_acls(acls)?;
                let mut scram_users = self.scram.users.clone();
                for (user, creds) in users {
                    let have = scram_users.entry(user.clone()).or_default();
                    for c in credentials(creds)? {
                        have.entry(c.mechanism).or_insert(c);
                    }
                    if have.is_empty() {
                        scram_users.remove(user);
                    }
                }
                let mut entities = self.quotas.entities.clone();
                let absent: Vec<Change> = quotas
                    .iter()
                    .filter(|(e, _)| !entities.contains_key(e))
                    .cloned()
                    .collect();
                let next_quotas = QuotaSnapshot::default().changed(&absent)?;
                if let Some(q) = next_quotas {
                    entities.extend(q.entities);
                }
                let secret = match (&self.scram.secret, fake_salt_secret) {
                    (have, _) if !have.is_empty() => have.clone(),
                    (_, Some(s)) if !s.is_empty() && s.len() <= MAX_SECRET => Arc::new(s.clone()),
                    (_, Some(s)) => return Err(format!("a fake-salt secret of {} bytes", s.len())),
                    (have, None) => have.clone(),
                };
                // Everything is checked: now change.
                if let Some(next) = self.acls.created(acls)? {
                    self.acls = Arc::new(next);
                }
                let mut scram = self.scram.with_users(scram_users);
                scram.secret = secret;
                self.scram = Arc::new(scram);
                if let Some(q) = QuotaSnapshot::default().with_entities(entities)? {
                    self.quotas = Arc::new(q);
                }
                Ok(Effect::Security(SecurityEffect::Done))
            }
        }
    }
}

/// What a security command did, beyond changing the state.
#[derive(Debug, Clone, PartialEq)]
pub enum SecurityEffect {
    Done,
    /// The ACLs each DeleteAcls filter removed (one binding may be listed
    /// under two filters, as Kafka reports it).
    AclsDeleted(Vec<Vec<AclBinding>>),
    /// `found`: every credential the change deleted existed (Kafka answers
    /// RESOURCE_NOT_FOUND otherwise; nothing changed then).
    ScramAltered {
        found: bool,
    },
}

fn validate_acls(acls: &[AclBinding]) -> Result<(), String> {
    for b in acls {
        b.validate()
            .map_err(|e| format!("ACL {b:?} is invalid: {e}"))?;
    }
    Ok(())
}

fn credentials(
    records: &[StoredCredential],
) -> Result<Vec<crate::security::scram::ScramCredential>, String> {
    let mut seen = BTreeSet::new();
    records
        .iter()
        .map(|r| {
            let c = r.to_credential()?;
            if !seen.insert(c.mechanism) {
                return Err(format!("{} is given twice", c.mechanism));
            }
            Ok(c)
        })
        .collect()
}

/// The users of `snap` as [`SecurityCommand::Import`] carries them.
pub fn users_of(snap: &ScramSnapshot) -> Vec<(String, Vec<StoredCredential>)> {
    snap.users
        .iter()
        .map(|(u, creds)| {
            (
                u.clone(),
                creds.values().map(StoredCredential::from).collect(),
            )
        })
        .collect()
}

/// The quota entities of `snap` as changes that set them.
pub fn quota_changes_of(snap: &QuotaSnapshot) -> Vec<Change> {
    snap.entities
        .iter()
        .map(|(e, v)| (e.clone(), v.iter().map(|(k, v)| (*k, Some(*v))).collect()))
        .collect()
}
