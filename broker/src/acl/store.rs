//! The ACL store: every binding, persisted in `DATA_DIR/acls.json`.
//!
//! Like the credential store, the file is written atomically (temp file,
//! fsync, rename, fsync directory) and memory is a [`Durable`] snapshot:
//! an authorization check clones the current `Arc<AclSnapshot>` (no I/O,
//! no copying of ACLs, never waiting for a write); a change waits its turn
//! behind earlier ones (from any shard), copies, modifies and persists on
//! the blocking pool, then swaps, so a failed write changes nothing, the
//! file and memory change in the same order, and no shard thread blocks.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shard::durable::{Durable, Persist, Planned};

use super::authorizer::AclIndex;
use super::model::{AclBinding, AclFilter};

const FORMAT_VERSION: u32 = 1;
/// Most ACLs the store holds: every check walks the matching ones, and
/// every change rewrites the file.
pub const MAX_ACLS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    #[error("ACL file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ACL file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("at most {MAX_ACLS} ACLs can be stored")]
    TooMany,
}

/// One immutable view of all ACLs, indexed for checks.
#[derive(Debug, Default)]
pub struct AclSnapshot {
    pub generation: u64,
    pub bindings: BTreeSet<AclBinding>,
    pub index: AclIndex,
}

impl AclSnapshot {
    fn new(generation: u64, bindings: BTreeSet<AclBinding>) -> Self {
        let index = AclIndex::build(&bindings);
        AclSnapshot {
            generation,
            bindings,
            index,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    acls: Vec<AclBinding>,
}

pub struct AclStore {
    current: Durable<AclFile>,
}

/// Where the ACLs are written (`None`: kept in memory only, for tests).
struct AclFile {
    path: Option<PathBuf>,
}

impl Persist for AclFile {
    type Value = AclSnapshot;
    type Error = AclStoreError;

    fn persist(&self, snap: &AclSnapshot) -> Result<(), AclStoreError> {
        shard::blocking::assert_not_shard("AclStore::persist");
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = FileFormat {
            version: FORMAT_VERSION,
            acls: snap.bindings.iter().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("ACLs serialize");
        shard::log::index::write_durably(path, &bytes).map_err(|source| AclStoreError::Io {
            path: path.clone(),
            source,
        })
    }
}

type Removed = Vec<Vec<AclBinding>>;

impl AclStore {
    fn with(path: Option<PathBuf>, bindings: BTreeSet<AclBinding>) -> Self {
        AclStore {
            current: Durable::new(AclFile { path }, AclSnapshot::new(0, bindings)),
        }
    }

    /// A store that is never persisted (tests).
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self::with(None, BTreeSet::new())
    }

    /// Load `path`; a missing file is an empty store. A file that does not
    /// parse is an error: starting without its DENY ACLs would open up
    /// what they closed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AclStoreError> {
        let path = path.into();
        let bindings = match fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|detail| AclStoreError::Corrupt {
                path: path.clone(),
                detail,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => return Err(AclStoreError::Io { path, source }),
        };
        Ok(Self::with(Some(path), bindings))
    }

    pub fn snapshot(&self) -> Arc<AclSnapshot> {
        self.current.snapshot()
    }

    /// Add bindings (already validated); ones already stored are no-ops.
    /// Returns once the change is durable.
    pub async fn create(&self, new: Vec<AclBinding>) -> Result<(), AclStoreError> {
        self.current.update(plan_create(new)).await
    }

    /// Remove every binding matching each filter; returns what each filter
    /// removed (a binding matched by two filters is reported by both, as
    /// Kafka does), once the change is durable.
    pub async fn delete(&self, filters: Vec<AclFilter>) -> Result<Removed, AclStoreError> {
        self.current.update(plan_delete(filters)).await
    }

    /// [`Self::create`] off the shards (tests).
    #[cfg(test)]
    pub fn create_blocking(&self, new: Vec<AclBinding>) -> Result<(), AclStoreError> {
        self.current.update_blocking(plan_create(new))
    }

    /// [`Self::delete`] off the shards (tests).
    #[cfg(test)]
    pub fn delete_blocking(&self, filters: Vec<AclFilter>) -> Result<Removed, AclStoreError> {
        self.current.update_blocking(plan_delete(filters))
    }
}

type Plan<R> = Result<Planned<AclSnapshot, R>, AclStoreError>;

fn plan_create(new: Vec<AclBinding>) -> impl FnOnce(&AclSnapshot) -> Plan<()> + Send + 'static {
    move |current| {
        let mut next = current.bindings.clone();
        let mut changed = false;
        for b in new {
            changed |= next.insert(b);
        }
        Ok((successor(current, next, changed)?, ()))
    }
}

fn plan_delete(
    filters: Vec<AclFilter>,
) -> impl FnOnce(&AclSnapshot) -> Plan<Removed> + Send + 'static {
    move |current| {
        let removed: Removed = filters
            .iter()
            .map(|f| {
                current
                    .bindings
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        let mut next = current.bindings.clone();
        next.retain(|b| !filters.iter().any(|f| f.matches(b)));
        let changed = next.len() != current.bindings.len();
        Ok((successor(current, next, changed)?, removed))
    }
}

/// The snapshot after a change (`None` if nothing changed).
fn successor(
    current: &AclSnapshot,
    next: BTreeSet<AclBinding>,
    changed: bool,
) -> Result<Option<AclSnapshot>, AclStoreError> {
    if !changed {
        return Ok(None);
    }
    if next.len() > MAX_ACLS {
        return Err(AclStoreError::TooMany);
    }
    Ok(Some(AclSnapshot::new(current.generation + 1, next)))
}

fn decode(bytes: &[u8]) -> Result<BTreeSet<AclBinding>, String> {
    let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} is not {FORMAT_VERSION}",
            file.version
        ));
    }
    if file.acls.len() > MAX_ACLS {
        return Err(format!("more than {MAX_ACLS} ACLs"));
    }
    let mut set = BTreeSet::new();
    for b in file.acls {
        b.validate()
            .map_err(|e| format!("ACL {b:?} is invalid: {e}"))?;
        set.insert(b);
    }
    Ok(set)
}
