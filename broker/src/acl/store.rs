//! The ACL store: every binding, persisted in `DATA_DIR/acls.json`.
//!
//! Like the credential store, the file is written atomically (temp file,
//! fsync, rename, fsync directory) and memory is an
//! `RwLock<Arc<AclSnapshot>>`: an authorization check clones the current
//! snapshot (no I/O, no copying of ACLs); a change copies, modifies,
//! persists and swaps under the write lock, so a failed write changes
//! nothing and the file and memory change in the same order.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

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
    path: Option<PathBuf>,
    current: RwLock<Arc<AclSnapshot>>,
}

impl AclStore {
    /// A store that is never persisted (tests).
    #[cfg(test)]
    pub fn in_memory() -> Self {
        AclStore {
            path: None,
            current: RwLock::new(Arc::new(AclSnapshot::default())),
        }
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
        Ok(AclStore {
            path: Some(path),
            current: RwLock::new(Arc::new(AclSnapshot::new(0, bindings))),
        })
    }

    pub fn snapshot(&self) -> Arc<AclSnapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Add bindings (already validated); ones already stored are no-ops.
    pub fn create(&self, new: Vec<AclBinding>) -> Result<(), AclStoreError> {
        self.modify(|set| {
            let mut changed = false;
            for b in new {
                changed |= set.insert(b);
            }
            changed
        })
        .map(|_| ())
    }

    /// Remove every binding matching each filter; returns what each filter
    /// removed (a binding matched by two filters is reported by both, as
    /// Kafka does).
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AclStoreError> {
        let mut removed = Vec::with_capacity(filters.len());
        self.modify(|set| {
            for f in filters {
                removed.push(set.iter().filter(|b| f.matches(b)).cloned().collect());
            }
            let before = set.len();
            set.retain(|b| !filters.iter().any(|f| f.matches(b)));
            set.len() != before
        })?;
        Ok(removed)
    }

    fn modify(
        &self,
        f: impl FnOnce(&mut BTreeSet<AclBinding>) -> bool,
    ) -> Result<bool, AclStoreError> {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut next = guard.bindings.clone();
        if !f(&mut next) {
            return Ok(false);
        }
        if next.len() > MAX_ACLS {
            return Err(AclStoreError::TooMany);
        }
        self.persist(&next)?;
        *guard = Arc::new(AclSnapshot::new(guard.generation + 1, next));
        Ok(true)
    }

    fn persist(&self, bindings: &BTreeSet<AclBinding>) -> Result<(), AclStoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| AclStoreError::Io {
            path: path.clone(),
            source,
        };
        let file = FileFormat {
            version: FORMAT_VERSION,
            acls: bindings.iter().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("ACLs serialize");
        shard::log::index::write_durably(path, &bytes).map_err(io)
    }
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
