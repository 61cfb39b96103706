//! The SCRAM credentials: user → mechanism → [`ScramCredential`],
//! cluster-wide in the metadata log as Kafka's KRaft keeps them (see
//! [`crate::metadata::security`]), so a user created through one broker
//! authenticates on every broker. Only salts and derived keys are kept,
//! never passwords.
//!
//! A lookup clones the current `Arc<Snapshot>` of the published metadata
//! (cheap, never waiting for a change); a change is a command in the log,
//! answered once it is committed and applied here.
//!
//! `DATA_DIR/credentials.json`, where a broker kept its users before the
//! log did, is read once at start and merged into the log (see
//! [`super::migrate`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::scram::{CredentialError, ScramCredential, ScramMechanism};
use crate::metadata::security::{SecurityCommand, SecurityEffect};
use crate::metadata::{Effect, MetadataCommand, Source};

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("credential store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credential store {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("{0}")]
    Metadata(crate::quorum::core::ProposeError),
}

/// One immutable view of all credentials.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub generation: u64,
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Keys the fake salts of unknown users, the same on every broker (so
    /// comparing brokers' answers does not tell which users exist). Set
    /// once, at the first start (see [`super::migrate`]).
    pub secret: Arc<Vec<u8>>,
}

impl Snapshot {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    /// The next snapshot, with `users`.
    pub fn with_users(&self, users: Users) -> Snapshot {
        Snapshot {
            generation: self.generation + 1,
            users,
            secret: self.secret.clone(),
        }
    }
}

/// A credential as the metadata log carries it (keys in base64).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    pub mechanism: ScramMechanism,
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl std::fmt::Debug for StoredCredential {
    // Keys are secret-ish: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl From<&ScramCredential> for StoredCredential {
    fn from(c: &ScramCredential) -> Self {
        StoredCredential {
            mechanism: c.mechanism,
            salt: B64.encode(&c.salt),
            iterations: c.iterations,
            stored_key: B64.encode(&c.stored_key),
            server_key: B64.encode(&c.server_key),
        }
    }
}

impl StoredCredential {
    /// The credential, checked as a credentials file's would be.
    pub fn to_credential(&self) -> Result<ScramCredential, String> {
        let b64 = |what: &str, s: &str| B64.decode(s).map_err(|e| format!("{what}: {e}"));
        let m = self.mechanism;
        let cred = ScramCredential {
            mechanism: m,
            salt: b64("salt", &self.salt)?,
            iterations: self.iterations,
            stored_key: b64("stored_key", &self.stored_key)?,
            server_key: b64("server_key", &self.server_key)?,
        };
        if cred.salt.is_empty()
            || cred.iterations == 0
            || cred.stored_key.len() != m.hash_len()
            || cred.server_key.len() != m.hash_len()
        {
            return Err(format!("invalid {m} credential"));
        }
        Ok(cred)
    }
}

/// What DescribeUserScramCredentials returns for one credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: u32,
}

#[derive(Clone)]
pub struct Credentials {
    source: Source,
}

pub(crate) type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

// --- the file from before the metadata log ---------------------------------

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    secret: String,
    users: BTreeMap<String, BTreeMap<ScramMechanism, FileCredential>>,
}

#[derive(Serialize, Deserialize)]
struct FileCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl Credentials {
    pub fn new(source: Source) -> Self {
        Credentials { source }
    }

    /// Credentials in memory only, with a fake-salt secret (tests).
    #[cfg(test)]
    pub fn in_memory() -> Result<Self, CredentialsError> {
        let store = Self::new(Source::memory());
        store
            .source
            .execute_blocking(MetadataCommand::Security(SecurityCommand::Import {
                acls: Vec::new(),
                users: Vec::new(),
                quotas: Vec::new(),
                fake_salt_secret: Some(super::scram::random_bytes(32)?),
            }))
            .map_err(CredentialsError::Metadata)?;
        Ok(store)
    }

    /// Bumped on every change.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.source.state().security.scram.clone()
    }

    pub fn fake_salt_secret(&self) -> Arc<Vec<u8>> {
        self.snapshot().secret.clone()
    }

    pub fn lookup(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.snapshot().get(user, mechanism).cloned()
    }

    /// Any credential of the user, SHA-256 first (cheapest to verify): what
    /// SASL/PLAIN checks a password against.
    pub fn lookup_any(&self, user: &str) -> Option<ScramCredential> {
        self.snapshot().users.get(user)?.values().next().cloned()
    }

    /// One user's AlterUserScramCredentials changes, applied together
    /// (as Kafka does: all of a user's changes or none): remove the
    /// credentials of `deletions`, then insert or replace `upsertions`.
    /// `Ok(false)` if a deletion names a credential that does not exist
    /// (Kafka answers RESOURCE_NOT_FOUND then); nothing changed then.
    /// Returns once the change is committed and applied here.
    pub async fn alter(
        &self,
        user: String,
        deletions: Vec<ScramMechanism>,
        upsertions: Vec<ScramCredential>,
    ) -> Result<bool, CredentialsError> {
        let cmd = MetadataCommand::Security(SecurityCommand::AlterScramUser {
            user,
            deletions,
            upsertions: upsertions.iter().map(StoredCredential::from).collect(),
            only_missing: false,
        });
        found(self.source.execute(cmd).await)
    }

    #[cfg(test)]
    pub fn upsert_password(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<(), CredentialsError> {
        let cred = ScramCredential::new(mechanism, password, iterations)?;
        futures::executor::block_on(self.alter(user.to_string(), Vec::new(), vec![cred]))
            .map(|_| ())
    }

    /// Remove one credential off the shards (tests); `Ok(false)` if there
    /// was none.
    #[cfg(test)]
    pub fn delete_blocking(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<bool, CredentialsError> {
        futures::executor::block_on(self.alter(user.to_string(), vec![mechanism], Vec::new()))
    }

    /// Mechanisms and iteration counts of one user; `None` if unknown.
    pub fn describe(&self, user: &str) -> Option<Vec<CredentialInfo>> {
        let snap = self.snapshot();
        Some(info(snap.users.get(user)?))
    }

    pub fn describe_all(&self) -> Vec<(String, Vec<CredentialInfo>)> {
        let snap = self.snapshot();
        snap.users
            .iter()
            .map(|(u, c)| (u.clone(), info(c)))
            .collect()
    }

    /// Give the configured super-user credentials for every mechanism it
    /// lacks (start-up: every broker of a cluster asks; the log keeps the
    /// first of each). Returns how many this call added; an existing
    /// credential is kept (it may have been changed since via
    /// AlterUserScramCredentials).
    pub fn ensure_bootstrap_user(
        &self,
        user: &str,
        password: &str,
        iterations: u32,
    ) -> Result<usize, CredentialsError> {
        let snap = self.snapshot();
        let mut new = Vec::new();
        for m in ScramMechanism::ALL {
            if snap.get(user, m).is_none() {
                new.push(StoredCredential::from(&ScramCredential::new(
                    m, password, iterations,
                )?));
            }
        }
        if new.is_empty() {
            return Ok(0);
        }
        let cmd = MetadataCommand::Security(SecurityCommand::AlterScramUser {
            user: user.to_string(),
            deletions: Vec::new(),
            upsertions: new,
            only_missing: true,
        });
        self.source
            .execute_blocking(cmd)
            .map_err(CredentialsError::Metadata)?;
        let after = self.snapshot();
        Ok(ScramMechanism::ALL
            .iter()
            .filter(|m| snap.get(user, **m).is_none() && after.get(user, **m).is_some())
            .count())
    }
}

fn found(
    outcome: Result<Effect, crate::quorum::core::ProposeError>,
) -> Result<bool, CredentialsError> {
    match outcome.map_err(CredentialsError::Metadata)? {
        Effect::Security(SecurityEffect::ScramAltered { found }) => Ok(found),
        other => unreachable!("AlterScramUser applied as {other:?}"),
    }
}

/// The users and fake-salt secret of a broker's `credentials.json` from
/// before the metadata log (`None`: there is no such file). A file that
/// exists but does not parse is an error: silently starting without it
/// would lock everybody out.
pub fn read_legacy_file(path: &Path) -> Result<Option<(Snapshot, Vec<u8>)>, CredentialsError> {
    let bytes = super::migrate::read_if_present(path).map_err(|source| CredentialsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    bytes
        .map(|b| decode(&b))
        .transpose()
        .map_err(|detail| CredentialsError::Corrupt {
            path: path.to_path_buf(),
            detail,
        })
}

/// Apply one user's deletions, then upsertions; all or nothing.
pub(crate) fn alter_user(
    users: &mut Users,
    user: &str,
    deletions: Vec<ScramMechanism>,
    upsertions: Vec<ScramCredential>,
) -> (bool, bool) {
    let changed = !deletions.is_empty() || !upsertions.is_empty();
    let mut next = users.get(user).cloned().unwrap_or_default();
    for m in deletions {
        if next.remove(&m).is_none() {
            return (false, false);
        }
    }
    for c in upsertions {
        next.insert(c.mechanism, c);
    }
    if next.is_empty() {
        users.remove(user);
    } else {
        users.insert(user.to_string(), next);
    }
    (changed, true)
}

fn info(creds: &BTreeMap<ScramMechanism, ScramCredential>) -> Vec<CredentialInfo> {
    creds
        .values()
        .map(|c| CredentialInfo {
            mechanism: c.mechanism,
            iterations: c.iterations,
        })
        .collect()
}

fn decode(bytes: &[u8]) -> Result<(Snapshot, Vec<u8>), String> {
    let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!("unsupported version {}", file.version));
    }
    let b64 = |what: &str, s: &str| B64.decode(s).map_err(|e| format!("{what}: {e}"));
    let secret = b64("secret", &file.secret)?;
    if secret.is_empty() {
        return Err("empty secret".into());
    }
    let mut users = BTreeMap::new();
    for (user, creds) in file.users {
        let mut map = BTreeMap::new();
        for (m, fc) in creds {
            // The file's fields are the log's, without the mechanism.
            let stored = StoredCredential {
                mechanism: m,
                salt: fc.salt,
                iterations: fc.iterations,
                stored_key: fc.stored_key,
                server_key: fc.server_key,
            };
            let cred = stored
                .to_credential()
                .map_err(|e| format!("user {user:?}: {e}"))?;
            map.insert(m, cred);
        }
        users.insert(user, map);
    }
    Ok((
        Snapshot {
            generation: 0,
            users,
            secret: Arc::new(Vec::new()),
        },
        secret,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramServer, Step};
    use std::fs;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// Credentials on a one-node metadata log in `dir` (and its owner).
    fn on_disk(dir: &std::path::Path) -> (crate::metadata::MetadataStore, Credentials) {
        let meta = crate::metadata::MetadataStore::load_or_init(dir, 1, 0).unwrap();
        super::super::migrate::import_legacy_files(dir, &meta.source()).unwrap();
        let store = Credentials::new(meta.source());
        (meta, store)
    }

    /// Every file under `dir`, read.
    fn all_bytes(dir: &std::path::Path) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(all_bytes(&p));
            } else {
                out.push(fs::read(&p).unwrap());
            }
        }
        out
    }

    #[test]
    fn persist_reload_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, store) = on_disk(dir.path());
        let g0 = store.generation();
        store
            .upsert_password("alice", ScramMechanism::Sha256, "Tr0ub4dor&3", 4096)
            .unwrap();
        store
            .upsert_password("alice", ScramMechanism::Sha512, "Tr0ub4dor&3", 8192)
            .unwrap();
        store
            .upsert_password("bob", ScramMechanism::Sha512, "correct horse", 4096)
            .unwrap();
        assert!(store.generation() > g0);
        let secret = store.fake_salt_secret().to_vec();
        assert_eq!(secret.len(), 32);
        let before: Vec<_> = ScramMechanism::ALL
            .iter()
            .map(|m| store.lookup("alice", *m))
            .collect();
        drop(store);
        drop(meta);

        // Only the broker's user may read the metadata log (SCRAM keys).
        use std::os::unix::fs::PermissionsExt;
        let log_dir = crate::metadata::internal::metadata_log_dir(dir.path());
        assert_eq!(
            fs::metadata(&log_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // No password reaches the metadata log.
        for bytes in all_bytes(dir.path()) {
            assert!(!contains(&bytes, b"Tr0ub4dor&3"));
            assert!(!contains(&bytes, b"correct horse"));
            assert!(!contains(&bytes, B64.encode("Tr0ub4dor&3").as_bytes()));
        }

        let (meta, reloaded) = on_disk(dir.path());
        assert_eq!(&reloaded.fake_salt_secret()[..], &secret[..]);
        let after: Vec<_> = ScramMechanism::ALL
            .iter()
            .map(|m| reloaded.lookup("alice", *m))
            .collect();
        assert_eq!(after, before);
        assert_eq!(
            reloaded.describe("alice").unwrap(),
            vec![
                CredentialInfo {
                    mechanism: ScramMechanism::Sha256,
                    iterations: 4096
                },
                CredentialInfo {
                    mechanism: ScramMechanism::Sha512,
                    iterations: 8192
                },
            ]
        );
        assert_eq!(reloaded.describe("nobody"), None);
        assert_eq!(reloaded.describe_all().len(), 2);

        // The reloaded credential authenticates a SCRAM exchange.
        let lookup = |u: &str| reloaded.lookup(u, ScramMechanism::Sha512);
        let mut server = ScramServer::new(ScramMechanism::Sha512, lookup)
            .with_secret(&reloaded.fake_salt_secret());
        let mut client = crate::security::scram::tests::TestClient::new(
            ScramMechanism::Sha512,
            "bob",
            "correct horse",
            "cn",
        );
        let Step::Continue(sf) = server.step(&client.first()).unwrap() else {
            panic!()
        };
        assert!(matches!(
            server.step(&client.final_msg(&sf)),
            Ok(Step::Done { .. })
        ));

        // Delete, including the last mechanism of a user.
        assert!(reloaded
            .delete_blocking("bob", ScramMechanism::Sha512)
            .unwrap());
        assert!(!reloaded
            .delete_blocking("bob", ScramMechanism::Sha512)
            .unwrap());
        assert!(!reloaded
            .delete_blocking("carol", ScramMechanism::Sha256)
            .unwrap());
        drop(reloaded);
        drop(meta);
        let (_meta, again) = on_disk(dir.path());
        assert_eq!(again.describe("bob"), None);
        assert!(again.describe("alice").is_some());
    }

    /// A broker's credentials.json from before the metadata log: imported
    /// once at start (users and fake-salt secret), then renamed.
    #[test]
    fn a_legacy_file_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let cred = ScramCredential::new(ScramMechanism::Sha256, "pw", 4096).unwrap();
        let mut users = Users::new();
        users.insert(
            "old".to_string(),
            BTreeMap::from([(ScramMechanism::Sha256, cred.clone())]),
        );
        let secret = vec![7u8; 32];
        let snap = Snapshot {
            generation: 0,
            users,
            secret: Arc::new(Vec::new()),
        };
        let path = dir.path().join("credentials.json");
        fs::write(&path, encode_legacy(&snap, &secret)).unwrap();
        let (meta, store) = on_disk(dir.path());
        assert_eq!(store.lookup("old", ScramMechanism::Sha256), Some(cred));
        assert_eq!(&store.fake_salt_secret()[..], &secret[..]);
        assert!(!path.exists());
        assert!(dir.path().join("credentials.json.migrated").exists());
        // Deleted since: a second start does not bring it back.
        assert!(store
            .delete_blocking("old", ScramMechanism::Sha256)
            .unwrap());
        drop(store);
        drop(meta);
        let (_meta, again) = on_disk(dir.path());
        assert_eq!(again.describe("old"), None);
        assert_eq!(&again.fake_salt_secret()[..], &secret[..]);
    }

    fn encode_legacy(snap: &Snapshot, secret: &[u8]) -> Vec<u8> {
        let file = FileFormat {
            version: FORMAT_VERSION,
            secret: B64.encode(secret),
            users: snap
                .users
                .iter()
                .map(|(u, creds)| {
                    let creds = creds
                        .iter()
                        .map(|(m, c)| {
                            let fc = FileCredential {
                                salt: B64.encode(&c.salt),
                                iterations: c.iterations,
                                stored_key: B64.encode(&c.stored_key),
                                server_key: B64.encode(&c.server_key),
                            };
                            (*m, fc)
                        })
                        .collect();
                    (u.clone(), creds)
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).unwrap()
    }

    #[test]
    fn bootstrap_user_is_added_once() {
        let store = Credentials::in_memory().unwrap();
        assert_eq!(store.ensure_bootstrap_user("admin", "pw", 4096).unwrap(), 2);
        let before = store.lookup("admin", ScramMechanism::Sha256).unwrap();
        assert_eq!(
            store.ensure_bootstrap_user("admin", "other", 4096).unwrap(),
            0
        );
        assert_eq!(
            store.lookup("admin", ScramMechanism::Sha256).unwrap(),
            before
        );
        store
            .delete_blocking("admin", ScramMechanism::Sha512)
            .unwrap();
        assert_eq!(store.ensure_bootstrap_user("admin", "pw", 4096).unwrap(), 1);
        assert!(store.lookup_any("admin").unwrap().verify_password(b"pw"));
        assert!(matches!(
            store.ensure_bootstrap_user("x", "pw", 1),
            Err(CredentialsError::Credential(CredentialError::Iterations(1)))
        ));
    }

    #[test]
    fn snapshot_generation_for_shard_caches() {
        let store = Credentials::in_memory().unwrap();
        let shard_view = store.clone();
        let cached = shard_view.snapshot();
        let g = shard_view.generation();
        store
            .upsert_password("alice", ScramMechanism::Sha256, "pw", 4096)
            .unwrap();
        assert_ne!(shard_view.generation(), g);
        assert!(cached.get("alice", ScramMechanism::Sha256).is_none());
        assert!(shard_view
            .snapshot()
            .get("alice", ScramMechanism::Sha256)
            .is_some());
        assert_eq!(shard_view.snapshot().generation, shard_view.generation());
        std::thread::spawn(move || assert!(shard_view.lookup_any("alice").is_some()))
            .join()
            .unwrap();
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        for bad in [
            &b"{not json"[..],
            br#"{"version":2,"secret":"AAAA","users":{}}"#,
            br#"{"version":1,"secret":"!!","users":{}}"#,
            br#"{"version":1,"secret":"AAAA","users":{"a":{"SCRAM-SHA-256":{"salt":"AAAA","iterations":4096,"stored_key":"AAAA","server_key":"AAAA"}}}}"#,
            br#"{"version":1,"secret":"AAAA","users":{"a":{"SCRAM-MD5":{}}}}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let err = read_legacy_file(&path).expect_err("must fail");
            assert!(matches!(err, CredentialsError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("creds.json is corrupt"), "{err}");
        }
    }

    /// AlterUserScramCredentials from two shards at once: every user is
    /// in the metadata log when its change returns and none is lost.
    #[test]
    fn concurrent_changes_from_two_shards_all_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, store) = on_disk(dir.path());
        let shared = store.clone();
        let g0 = store.generation();
        shard::testing::on_test_shards(2, move |shard| {
            let store = shared.clone();
            async move {
                let changes: Vec<_> = (0..10)
                    .map(|i| {
                        let store = store.clone();
                        let cred =
                            ScramCredential::new(ScramMechanism::Sha256, "pw", 4096).unwrap();
                        let user = format!("u{shard}-{i}");
                        shard::rt::spawn_local(async move {
                            assert!(store.alter(user, Vec::new(), vec![cred]).await.unwrap());
                        })
                    })
                    .collect();
                for c in changes {
                    c.await;
                }
                // A deletion of a credential that does not exist changes
                // nothing, even with an upsertion beside it.
                let cred = ScramCredential::new(ScramMechanism::Sha256, "pw", 4096).unwrap();
                let user = format!("u{shard}-0");
                assert!(!store
                    .alter(user, vec![ScramMechanism::Sha512], vec![cred])
                    .await
                    .unwrap());
            }
        });
        assert_eq!(store.generation(), g0 + 20);
        let all = store.describe_all();
        drop(store);
        drop(meta);
        let (_meta, reloaded) = on_disk(dir.path());
        assert_eq!(reloaded.describe_all().len(), 20);
        assert_eq!(reloaded.describe_all(), all);
    }
}
