//! The SCRAM credential store: user → mechanism → [`ScramCredential`].
//!
//! Kafka keeps these in ZooKeeper/KRaft metadata; we keep them in one JSON
//! file written atomically (temp file, fsync, rename, fsync directory), so a
//! crash leaves either the old or the new file, never a torn one. Only salts
//! and derived keys are written, never passwords.
//!
//! Shards are threads: the store is a [`Durable`] snapshot. Readers clone
//! the current `Arc<Snapshot>` (cheap, never waiting for a write); a writer
//! waits its turn behind earlier ones from any shard, then copies,
//! modifies and persists on the blocking pool and only then swaps, so a
//! failed write leaves memory untouched and no shard thread blocks on it.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use shard::durable::{Durable, Persist, Planned};

use super::scram::{random_bytes, CredentialError, ScramCredential, ScramMechanism};

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
}

/// One immutable view of all credentials.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub generation: u64,
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl Snapshot {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
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
    current: Durable<CredentialFile>,
}

/// Where the credentials are written (`None`: in memory only).
struct CredentialFile {
    path: Option<PathBuf>,
    /// Secret for fake salts of unknown users; persisted so they are stable.
    secret: Vec<u8>,
}

impl Persist for CredentialFile {
    type Value = Snapshot;
    type Error = CredentialsError;

    fn persist(&self, snap: &Snapshot) -> Result<(), CredentialsError> {
        shard::blocking::assert_not_shard("Credentials::persist");
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = encode(snap, &self.secret);
        // 0600: the keys allow impersonating the server to clients.
        shard::log::index::write_durably_with_mode(path, &bytes, 0o600).map_err(|source| {
            CredentialsError::Io {
                path: path.clone(),
                source,
            }
        })
    }
}

type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// A change of the user map; `false`: nothing changed.
fn plan<R: Send + 'static>(
    change: impl FnOnce(&mut Users) -> (bool, R) + Send + 'static,
) -> impl FnOnce(&Snapshot) -> Result<Planned<Snapshot, R>, CredentialsError> + Send + 'static {
    move |current| {
        let mut next = current.clone();
        let (changed, answer) = change(&mut next.users);
        if !changed {
            return Ok((None, answer));
        }
        next.generation += 1;
        Ok((Some(next), answer))
    }
}

// --- on-disk format -------------------------------------------------------

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
    /// A store that is never persisted (tests, or SASL disabled).
    #[cfg(test)]
    pub fn in_memory() -> Result<Self, CredentialsError> {
        Ok(Self::from_parts(
            None,
            Snapshot::default(),
            random_bytes(32)?,
        ))
    }

    fn from_parts(path: Option<PathBuf>, snap: Snapshot, secret: Vec<u8>) -> Self {
        Credentials {
            current: Durable::new(CredentialFile { path, secret }, snap),
        }
    }

    /// Load the store at `path`, creating an empty one (with a fresh secret)
    /// if the file does not exist. A file that exists but does not parse is
    /// an error: silently starting empty would lock everybody out.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, CredentialsError> {
        let path = path.into();
        let io = |source| CredentialsError::Io {
            path: path.clone(),
            source,
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let (snap, secret) =
                    decode(&bytes).map_err(|detail| CredentialsError::Corrupt {
                        path: path.clone(),
                        detail,
                    })?;
                Ok(Self::from_parts(Some(path), snap, secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(io)?;
                }
                // Start-up, before the shards run: written in place.
                let store = Self::from_parts(Some(path), Snapshot::default(), random_bytes(32)?);
                store.current.persister().persist(&Snapshot::default())?;
                Ok(store)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Bumped on every change; shards compare it to their cached snapshot's.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.snapshot()
    }

    pub fn fake_salt_secret(&self) -> &[u8] {
        &self.current.persister().secret
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
    /// Returns once the change is durable.
    pub async fn alter(
        &self,
        user: String,
        deletions: Vec<ScramMechanism>,
        upsertions: Vec<ScramCredential>,
    ) -> Result<bool, CredentialsError> {
        self.current
            .update(plan(move |users| {
                alter_user(users, &user, deletions, upsertions)
            }))
            .await
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
        let user = user.to_string();
        self.current
            .update_blocking(plan(move |users| {
                alter_user(users, &user, Vec::new(), vec![cred])
            }))
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
        let user = user.to_string();
        self.current.update_blocking(plan(move |users| {
            alter_user(users, &user, vec![mechanism], Vec::new())
        }))
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
    /// lacks. Returns how many were added; an existing credential is kept
    /// (it may have been changed since via AlterUserScramCredentials).
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
                new.push(ScramCredential::new(m, password, iterations)?);
            }
        }
        let added = new.len();
        if added > 0 {
            // Start-up (or a test), not a shard thread.
            let user = user.to_string();
            self.current.update_blocking(plan(move |users| {
                let creds = users.entry(user).or_default();
                for c in new {
                    creds.entry(c.mechanism).or_insert(c);
                }
                (true, ())
            }))?;
        }
        Ok(added)
    }
}

/// Apply one user's deletions, then upsertions; all or nothing.
fn alter_user(
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

fn encode(snap: &Snapshot, secret: &[u8]) -> Vec<u8> {
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
    let mut out = serde_json::to_vec_pretty(&file).expect("plain data serializes");
    out.push(b'\n');
    out
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
            let cred = ScramCredential {
                mechanism: m,
                salt: b64("salt", &fc.salt)?,
                iterations: fc.iterations,
                stored_key: b64("stored_key", &fc.stored_key)?,
                server_key: b64("server_key", &fc.server_key)?,
            };
            if cred.salt.is_empty()
                || cred.iterations == 0
                || cred.stored_key.len() != m.hash_len()
                || cred.server_key.len() != m.hash_len()
            {
                return Err(format!("invalid {m} credential for user {user:?}"));
            }
            map.insert(m, cred);
        }
        users.insert(user, map);
    }
    Ok((
        Snapshot {
            generation: 0,
            users,
        },
        secret,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramServer, Step};

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn persist_reload_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/credentials.json");
        let store = Credentials::open(&path).unwrap();
        assert!(path.exists());
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

        let bytes = fs::read(&path).unwrap();
        assert!(!contains(&bytes, b"Tr0ub4dor&3"));
        assert!(!contains(&bytes, b"correct horse"));
        assert!(!contains(&bytes, B64.encode("Tr0ub4dor&3").as_bytes()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let reloaded = Credentials::open(&path).unwrap();
        assert_eq!(reloaded.fake_salt_secret(), &secret[..]);
        for m in ScramMechanism::ALL {
            assert_eq!(reloaded.lookup("alice", m), store.lookup("alice", m));
        }
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
            .with_secret(reloaded.fake_salt_secret());
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
        let again = Credentials::open(&path).unwrap();
        assert_eq!(again.describe("bob"), None);
        assert!(again.describe("alice").is_some());
        assert!(!path.with_extension("tmp").exists());
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
            let err = Credentials::open(&path).err().expect("must fail");
            assert!(matches!(err, CredentialsError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("creds.json is corrupt"), "{err}");
        }
    }

    #[test]
    fn failed_persist_leaves_memory_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/creds.json");
        let store = Credentials::open(&path).unwrap();
        // Make the temp file path (see `write_durably`) a directory so the
        // write fails.
        fs::create_dir(dir.path().join("d/creds.tmp")).unwrap();
        let g = store.generation();
        assert!(store
            .upsert_password("alice", ScramMechanism::Sha256, "pw", 4096)
            .is_err());
        assert_eq!(store.generation(), g);
        assert!(store.describe("alice").is_none());
    }

    /// AlterUserScramCredentials from two shards at once: every user is
    /// durable when its change returns and none is lost.
    #[test]
    fn concurrent_changes_from_two_shards_all_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let store = Credentials::open(&path).unwrap();
        let shared = store.clone();
        shard::durable::on_test_shards(2, move |shard| {
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
        assert_eq!(store.generation(), 20);
        let reloaded = Credentials::open(&path).unwrap();
        assert_eq!(reloaded.describe_all().len(), 20);
        assert_eq!(reloaded.describe_all(), store.describe_all());
    }
}
