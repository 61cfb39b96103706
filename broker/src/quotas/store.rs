//! The configured client quotas: cluster-wide in the metadata log, as
//! Kafka's KRaft keeps them (`ClientQuotaRecord`; see
//! [`crate::metadata::security`]), so every broker throttles by the same
//! ones.
//!
//! Readers take an `Arc` snapshot of the published metadata (never
//! waiting for a change); a change is a command in the log, answered once
//! it is committed and applied here. The hot path's switch
//! ([`QuotaStore::enforces_any`]) is an atomic the quorum's thread keeps
//! in step with each published state.
//!
//! `DATA_DIR/quotas.json`, where a broker kept its quotas before the log
//! did, is read once at start and merged into the log (see
//! [`crate::security::migrate`]); a file that exists but does not parse
//! stops the broker, as starting without it would lift every limit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::entity::{Entity, QuotaKey};
use crate::metadata::security::SecurityCommand;
use crate::metadata::{MetadataCommand, Source};

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

    /// With `changes` applied together (`None`: nothing changed). Removing
    /// a key that is not set is not an error (as in Kafka).
    pub fn changed(&self, changes: &[Change]) -> Result<Option<Snapshot>, String> {
        let mut next = self.entities.clone();
        for (entity, ops) in changes {
            let values = next.entry(entity.clone()).or_default();
            for (key, value) in ops {
                match value {
                    Some(v) => {
                        key.validate(*v).map_err(|e| format!("{entity}: {e}"))?;
                        values.insert(*key, *v);
                    }
                    None => {
                        values.remove(key);
                    }
                }
            }
            if values.is_empty() {
                next.remove(entity);
            }
        }
        if next == self.entities {
            return Ok(None);
        }
        self.with_entities(next)
    }

    /// A snapshot of `entities`, within the limit.
    pub fn with_entities(
        &self,
        entities: BTreeMap<Entity, Values>,
    ) -> Result<Option<Snapshot>, String> {
        if entities.len() > MAX_ENTITIES {
            return Err(format!(
                "at most {MAX_ENTITIES} quota entities can be configured"
            ));
        }
        Ok(Some(Snapshot { entities }))
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
    source: Source,
    /// Whether the published snapshot sets a quota we enforce.
    enforces_any: Arc<AtomicBool>,
}

impl QuotaStore {
    pub fn new(source: Source) -> QuotaStore {
        let enforces_any = Arc::new(AtomicBool::new(false));
        let flag = enforces_any.clone();
        source.watch(Box::new(move |state| {
            flag.store(state.security.quotas.enforces_any(), Ordering::Release)
        }));
        QuotaStore {
            source,
            enforces_any,
        }
    }

    /// No quotas, in memory only (tests, tools, and a shard's stand-in
    /// until the broker hands it the real store).
    pub fn in_memory() -> QuotaStore {
        Self::new(Source::memory())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.source.state().security.quotas.clone()
    }

    /// Whether the published snapshot sets a quota we enforce: one relaxed
    /// load, for the hot path.
    #[inline]
    pub fn enforces_any(&self) -> bool {
        self.enforces_any.load(Ordering::Relaxed)
    }

    /// Apply `changes` together; returns once they are committed and
    /// applied here. Removing a key that is not set is not an error (as
    /// in Kafka).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), String> {
        let cmd = MetadataCommand::Security(SecurityCommand::AlterClientQuotas { changes });
        self.source
            .execute(cmd)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// [`Self::apply`] off the shards (tests).
    #[cfg(test)]
    pub fn apply_blocking(&self, changes: Vec<Change>) -> Result<(), String> {
        futures::executor::block_on(self.apply(changes))
    }
}

/// The quotas of a broker's `quotas.json` from before the metadata log
/// (`None`: there is no such file).
pub fn read_legacy_file(path: &Path) -> Result<Option<Snapshot>, String> {
    let bytes = crate::security::migrate::read_if_present(path)
        .map_err(|e| format!("reading quota file {}: {e}", path.display()))?;
    bytes.map(|b| decode(&b)).transpose().map_err(|e| {
        format!(
            "quota file {} is corrupt: {e}; fix or remove it (removing drops every quota)",
            path.display()
        )
    })
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

#[cfg(test)]
mod tests {
    use super::super::entity::Name;
    use super::*;
    use std::fs;

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

    /// A store on a one-node metadata log in `dir` (and the log's owner).
    fn on_disk(dir: &Path) -> (crate::metadata::MetadataStore, QuotaStore) {
        let meta = crate::metadata::MetadataStore::load_or_init(dir, 1, 0).unwrap();
        crate::security::migrate::import_legacy_files(dir, &meta.source()).unwrap();
        let store = QuotaStore::new(meta.source());
        (meta, store)
    }

    fn reopened(dir: &Path) -> Arc<Snapshot> {
        on_disk(dir).1.snapshot()
    }

    #[test]
    fn persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, store) = on_disk(dir.path());
        assert!(store.snapshot().entities.is_empty());
        assert!(!store.enforces_any());
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
        assert!(store.enforces_any());
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
        // controller_mutation_rate alone is not enforced.
        assert!(!store.enforces_any());
        drop(store);
        drop(meta);
        let again = reopened(dir.path());
        assert_eq!(again.entities.len(), 1);
        assert_eq!(
            again.entities[&default_client()][&QuotaKey::ControllerMutationRate],
            3.0
        );
        assert!(!again.enforces_any());
    }

    #[test]
    fn a_legacy_file_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quotas.json");
        fs::write(
            &path,
            r#"{"version":1,"entries":[{"entity":{"user":"alice"},"quotas":{"producer_byte_rate":1024,"request_percentage":25.5}}]}"#,
        )
        .unwrap();
        let (meta, store) = on_disk(dir.path());
        assert!(!path.exists());
        assert_eq!(
            store.snapshot().entities[&alice()][&QuotaKey::RequestPercentage],
            25.5
        );
        assert!(store.enforces_any());
        store
            .apply_blocking(vec![(alice(), vec![(QuotaKey::RequestPercentage, None)])])
            .unwrap();
        drop(store);
        drop(meta);
        let again = reopened(dir.path());
        assert_eq!(
            again.entities[&alice()],
            Values::from([(QuotaKey::ProducerByteRate, 1024.0)])
        );
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
            let err = read_legacy_file(&path).expect_err(bad);
            assert!(err.contains("quotas.json is corrupt"), "{err}");
        }
    }

    #[test]
    fn a_refused_change_changes_nothing() {
        let store = QuotaStore::in_memory();
        let err = store
            .apply_blocking(vec![
                (alice(), vec![(QuotaKey::ProducerByteRate, Some(1.0))]),
                (
                    default_client(),
                    vec![(QuotaKey::ConsumerByteRate, Some(-1.0))],
                ),
            ])
            .unwrap_err();
        assert!(err.contains("must be positive"), "{err}");
        assert!(store.snapshot().entities.is_empty());
        assert!(!store.enforces_any());
    }

    /// AlterClientQuotas from two shards at once: every change is in the
    /// metadata log when it returns and none is lost; the hot path's
    /// switch follows.
    #[test]
    fn concurrent_changes_from_two_shards_all_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, store) = on_disk(dir.path());
        let store = Arc::new(store);
        assert!(!store.enforces_any());
        let shared = store.clone();
        shard::testing::on_test_shards(2, move |shard| {
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
        let before = store.snapshot();
        drop(store);
        drop(meta);
        let again = reopened(dir.path());
        assert_eq!(again.entities.len(), 50);
        assert_eq!(again.entities, before.entities);
    }
}
