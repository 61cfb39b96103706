//! The SCRAM credential store: user → mechanism → [`ScramCredential`].
//!
//! Kafka keeps these in ZooKeeper/KRaft metadata; we keep them in one JSON
//! file written atomically (temp file, fsync, rename, fsync directory), so a
//! crash leaves either the old or the new file, never a torn one. Only salts
//! and derived keys are written, never passwords.
//!
//! Shards are threads: the store is an `Arc<RwLock<Arc<Snapshot>>>`. Readers
//! clone the current `Arc<Snapshot>` (cheap) and may cache it while
//! [`Credentials::generation`] is unchanged; writers copy, modify, persist
//! and swap, so a failed write leaves memory untouched.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

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
    path: Option<PathBuf>,
    current: Arc<RwLock<Arc<Snapshot>>>,
    generation: Arc<AtomicU64>,
    /// Secret for fake salts of unknown users; persisted so they are stable.
    secret: Arc<Vec<u8>>,
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
            path,
            generation: Arc::new(AtomicU64::new(snap.generation)),
            current: Arc::new(RwLock::new(Arc::new(snap))),
            secret: Arc::new(secret),
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
                let store = Self::from_parts(Some(path), Snapshot::default(), random_bytes(32)?);
                store.persist(&Snapshot::default())?;
                Ok(store)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Bumped on every change; shards compare it to their cached snapshot's.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn fake_salt_secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn lookup(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.snapshot().get(user, mechanism).cloned()
    }

    /// Any credential of the user, SHA-256 first (cheapest to verify): what
    /// SASL/PLAIN checks a password against.
    pub fn lookup_any(&self, user: &str) -> Option<ScramCredential> {
        self.snapshot().users.get(user)?.values().next().cloned()
    }

    /// Insert or replace one credential (AlterUserScramCredentials upsertion).
    pub fn upsert(&self, user: &str, cred: ScramCredential) -> Result<(), CredentialsError> {
        self.modify(|users| {
            users
                .entry(user.to_string())
                .or_default()
                .insert(cred.mechanism, cred);
            true
        })
        .map(|_| ())
    }

    #[cfg(test)]
    pub fn upsert_password(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<(), CredentialsError> {
        self.upsert(user, ScramCredential::new(mechanism, password, iterations)?)
    }

    /// Remove one credential; `Ok(false)` if there was none (Kafka answers
    /// RESOURCE_NOT_FOUND then).
    pub fn delete(&self, user: &str, mechanism: ScramMechanism) -> Result<bool, CredentialsError> {
        self.modify(|users| {
            let Some(creds) = users.get_mut(user) else {
                return false;
            };
            let removed = creds.remove(&mechanism).is_some();
            if creds.is_empty() {
                users.remove(user);
            }
            removed
        })
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
            self.modify(|users| {
                let creds = users.entry(user.to_string()).or_default();
                for c in new {
                    creds.entry(c.mechanism).or_insert(c);
                }
                true
            })?;
        }
        Ok(added)
    }

    /// Copy-modify-persist-swap under the write lock, so the file and memory
    /// change in the same order and a failed write changes nothing.
    fn modify(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>) -> bool,
    ) -> Result<bool, CredentialsError> {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&guard);
        if !f(&mut next.users) {
            return Ok(false);
        }
        next.generation += 1;
        self.persist(&next)?;
        self.generation.store(next.generation, Ordering::Release);
        *guard = Arc::new(next);
        Ok(true)
    }

    fn persist(&self, snap: &Snapshot) -> Result<(), CredentialsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| CredentialsError::Io {
            path: path.clone(),
            source,
        };
        let bytes = encode(snap, &self.secret);
        // 0600: the keys allow impersonating the server to clients.
        shard::log::index::write_durably_with_mode(path, &bytes, 0o600).map_err(io)
    }
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
        assert!(reloaded.delete("bob", ScramMechanism::Sha512).unwrap());
        assert!(!reloaded.delete("bob", ScramMechanism::Sha512).unwrap());
        assert!(!reloaded.delete("carol", ScramMechanism::Sha256).unwrap());
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
        store.delete("admin", ScramMechanism::Sha512).unwrap();
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
}
