//! The configured quotas and their file, `DATA_DIR/quotas.json`.
//!
//! Readers take an `Arc` snapshot (never waiting for a write); a change
//! waits its turn behind earlier ones from any shard, then on the blocking
//! pool builds the next snapshot, writes it atomically (temp file, fsync,
//! rename, fsync directory) and only then publishes it (see
//! [`shard::durable`]), so memory never holds what the disk does not and
//! no shard thread blocks on the write.
//! A file that exists but does not parse stops the broker: starting
//! without the quotas would silently lift every limit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shard::durable::{Durable, Persist, Planned};

use super::entity::{Entity, QuotaKey};

/// Upper bound on configured entities: each one is a map entry every
/// snapshot copies, and quotas are few in practice.
pub const MAX_ENTITIES: usize = 10_000;

pub type Values = BTreeMap<QuotaKey, f64>;

#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub entities: BTreeMap<Entity, Values>,
}

impl Snapshot {
    /// Whether any quota we enforce is set (the hot path's switch).
    pub fn enforces_any(&self) -> bool {
        self.entities
            .values()
            .any(|v| v.keys().any(|k| *k != QuotaKey::ControllerMutationRate))
    }
}

/// One change: set (`Some`) or remove (`None`) a key of an entity.
pub type Change = (Entity, Vec<(QuotaKey, Option<f64>)>);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    /// Entity type -> name, null for the default entity.
    entity: BTreeMap<String, Option<String>>,
    quotas: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    entries: Vec<FileEntry>,
}

const FORMAT_VERSION: u32 = 1;

pub struct QuotaStore {
    current: Durable<QuotaFile>,
}

/// Where the quotas are written (`None`: in memory only), and the hot
/// path's switch, kept in step with the published snapshot.
struct QuotaFile {
    path: Option<PathBuf>,
    enforces_any: AtomicBool,
}

impl Persist for QuotaFile {
    type Value = Snapshot;
    type Error = String;

    fn persist(&self, snap: &Snapshot) -> Result<(), String> {
        match &self.path {
            Some(path) => {
                persist(path, snap).map_err(|e| format!("writing {}: {e}", path.display()))
            }
            None => Ok(()),
        }
    }

    fn published(&self, snap: &Snapshot) {
        self.enforces_any
            .store(snap.enforces_any(), Ordering::Release);
    }
}

impl QuotaStore {
    fn with(path: Option<PathBuf>, snap: Snapshot) -> QuotaStore {
        let file = QuotaFile {
            path,
            enforces_any: AtomicBool::new(snap.enforces_any()),
        };
        QuotaStore {
            current: Durable::new(file, snap),
        }
    }

    pub fn in_memory() -> QuotaStore {
        Self::with(None, Snapshot::default())
    }

    /// Load `path`; a missing file is an empty store (created on the first
    /// change).
    pub fn open(path: impl Into<PathBuf>) -> Result<QuotaStore, String> {
        let path = path.into();
        let snap = match fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|e| {
                format!(
                    "quota file {} is corrupt: {e}; fix or remove it (removing drops every quota)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(format!("reading quota file {}: {e}", path.display())),
        };
        Ok(Self::with(Some(path), snap))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.snapshot()
    }

    /// Whether the published snapshot sets a quota we enforce: one relaxed
    /// load, for the hot path.
    #[inline]
    pub fn enforces_any(&self) -> bool {
        self.current
            .persister()
            .enforces_any
            .load(Ordering::Relaxed)
    }

    /// Apply `changes` together and persist them; returns once they are
    /// durable and published. Removing a key that is not set is not an
    /// error (as in Kafka).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), String> {
        self.current.update(plan(changes)).await
    }

    /// [`Self::apply`] off the shards (tests).
    #[cfg(test)]
    pub fn apply_blocking(&self, changes: Vec<Change>) -> Result<(), String> {
        self.current.update_blocking(plan(changes))
    }
}

type Plan = Result<Planned<Snapshot, ()>, String>;

fn plan(changes: Vec<Change>) -> impl FnOnce(&Snapshot) -> Plan + Send + 'static {
    move |current| {
        let mut next = current.clone();
        for (entity, ops) in &changes {
            let values = next.entities.entry(entity.clone()).or_default();
            for (key, value) in ops {
                match value {
                    Some(v) => {
                        values.insert(*key, *v);
                    }
                    None => {
                        values.remove(key);
                    }
                }
            }
            if values.is_empty() {
                next.entities.remove(entity);
            }
        }
        if next.entities.len() > MAX_ENTITIES {
            return Err(format!(
                "at most {MAX_ENTITIES} quota entities can be configured"
            ));
        }
        Ok((Some(next), ()))
    }
}

fn encode(snap: &Snapshot) -> Vec<u8> {
    let entries = snap
        .entities
        .iter()
        .map(|(e, v)| FileEntry {
            entity: e
                .parts()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n.map(str::to_string)))
                .collect(),
            quotas: v.iter().map(|(k, v)| (k.name().to_string(), *v)).collect(),
        })
        .collect();
    let file = FileFormat {
        version: FORMAT_VERSION,
        entries,
    };
    let mut out = serde_json::to_vec_pretty(&file).expect("quotas serialise");
    out.push(b'\n');
    out
}

fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this broker reads {FORMAT_VERSION})",
            file.version
        ));
    }
    let mut snap = Snapshot::default();
    for entry in file.entries {
        let entity =
            Entity::from_parts(entry.entity.iter().map(|(k, v)| (k.as_str(), v.as_deref())))?;
        let mut values = Values::new();
        for (k, v) in entry.quotas {
            let key = QuotaKey::from_name(&k).ok_or(format!("unknown quota key {k:?}"))?;
            key.validate(v).map_err(|e| format!("{entity}: {e}"))?;
            values.insert(key, v);
        }
        if snap.entities.insert(entity.clone(), values).is_some() {
            return Err(format!("{entity} appears twice"));
        }
    }
    Ok(snap)
}

fn persist(path: &Path, snap: &Snapshot) -> std::io::Result<()> {
    shard::blocking::assert_not_shard("quota store persist");
    shard::log::index::write_durably(path, &encode(snap))
}

#[cfg(test)]
mod tests {
    use super::super::entity::Name;
    use super::*;

    fn alice() -> Entity {
        Entity {
            user: Some(Name::Named("alice".into())),
            client_id: None,
        }
    }

    fn default_client() -> Entity {
        Entity {
            user: None,
            client_id: Some(Name::Default),
        }
    }

    #[test]
    fn persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quotas.json");
        let store = QuotaStore::open(&path).unwrap();
        assert!(store.snapshot().entities.is_empty());
        store
            .apply_blocking(vec![
                (
                    alice(),
                    vec![
                        (QuotaKey::ProducerByteRate, Some(1024.0)),
                        (QuotaKey::RequestPercentage, Some(25.5)),
                    ],
                ),
                (
                    default_client(),
                    vec![(QuotaKey::ControllerMutationRate, Some(3.0))],
                ),
            ])
            .unwrap();
        assert!(store.snapshot().enforces_any());
        let again = QuotaStore::open(&path).unwrap().snapshot();
        assert_eq!(again.entities.len(), 2);
        assert_eq!(again.entities[&alice()][&QuotaKey::RequestPercentage], 25.5);
        assert_eq!(
            again.entities[&default_client()][&QuotaKey::ControllerMutationRate],
            3.0
        );
        // Removing every key removes the entity.
        store
            .apply_blocking(vec![(
                alice(),
                vec![
                    (QuotaKey::ProducerByteRate, None),
                    (QuotaKey::RequestPercentage, None),
                ],
            )])
            .unwrap();
        let again = QuotaStore::open(&path).unwrap().snapshot();
        assert_eq!(again.entities.len(), 1);
        // controller_mutation_rate alone is not enforced.
        assert!(!again.enforces_any());
        assert!(!dir.path().join("quotas.tmp").exists());
    }

    #[test]
    fn corrupt_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quotas.json");
        for bad in [
            "{not json",
            r#"{"version":2,"entries":[]}"#,
            r#"{"version":1,"entries":[{"entity":{"user":"a"},"quotas":{"bogus":1}}]}"#,
            r#"{"version":1,"entries":[{"entity":{"user":"a"},"quotas":{"producer_byte_rate":-5}}]}"#,
            r#"{"version":1,"entries":[{"entity":{},"quotas":{}}]}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let err = QuotaStore::open(&path).err().expect(bad);
            assert!(err.contains("quotas.json is corrupt"), "{err}");
        }
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The "file" is a directory: the rename fails.
        let path = dir.path().join("quotas.json");
        fs::create_dir(&path).unwrap();
        let store = QuotaStore::with(Some(path), Snapshot::default());
        let err = store
            .apply_blocking(vec![(
                alice(),
                vec![(QuotaKey::ProducerByteRate, Some(1.0))],
            )])
            .unwrap_err();
        assert!(err.contains("quotas.json"), "{err}");
        assert!(store.snapshot().entities.is_empty());
    }

    /// AlterClientQuotas from two shards at once: every change is durable
    /// when it returns and none is lost; the hot path's switch follows.
    #[test]
    fn concurrent_changes_from_two_shards_all_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quotas.json");
        let store = Arc::new(QuotaStore::open(&path).unwrap());
        assert!(!store.enforces_any());
        let shared = store.clone();
        shard::durable::on_test_shards(2, move |shard| {
            let store = shared.clone();
            async move {
                let changes: Vec<_> = (0..25)
                    .map(|i| {
                        let store = store.clone();
                        let entity = Entity {
                            user: None,
                            client_id: Some(Name::Named(format!("c{shard}-{i}"))),
                        };
                        let change = vec![(entity, vec![(QuotaKey::ProducerByteRate, Some(1e6))])];
                        shard::rt::spawn_local(async move { store.apply(change).await.unwrap() })
                    })
                    .collect();
                for c in changes {
                    c.await;
                }
            }
        });
        assert!(store.enforces_any());
        let again = QuotaStore::open(&path).unwrap().snapshot();
        assert_eq!(again.entities.len(), 50);
        assert_eq!(again.entities, store.snapshot().entities);
    }
}
