//! The ACLs: cluster-wide, in the metadata log (see
//! [`crate::metadata::security`]), so every broker enforces the same ones.
//!
//! An authorization check clones the current `Arc<AclSnapshot>` of the
//! published metadata (no I/O, no copying of ACLs, never waiting for a
//! change); a change is a command in the log, answered once it is
//! committed and applied here, so it is durable on a majority of the
//! quorum and visible to the next check on this broker.
//!
//! `DATA_DIR/acls.json`, where a broker kept its ACLs before the log did,
//! is read once at start and merged into the log (see
//! [`crate::security::migrate`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::authorizer::AclIndex;
use super::model::{AclBinding, AclFilter};
use crate::metadata::security::{SecurityCommand, SecurityEffect};
use crate::metadata::{Effect, MetadataCommand, Source};

const FORMAT_VERSION: u32 = 1;
/// Most ACLs the cluster holds: every check walks the matching ones, and
/// every change copies the set.
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
    #[error("{0}")]
    Metadata(crate::quorum::core::ProposeError),
}

/// One immutable view of all ACLs, indexed for checks.
#[derive(Debug, Default)]
pub struct AclSnapshot {
    pub generation: u64,
    pub bindings: BTreeSet<AclBinding>,
    pub index: AclIndex,
}

type Removed = Vec<Vec<AclBinding>>;

impl AclSnapshot {
    fn new(generation: u64, bindings: BTreeSet<AclBinding>) -> Self {
        let index = AclIndex::build(&bindings);
        AclSnapshot {
            generation,
            bindings,
            index,
        }
    }

    /// With `new` added (`None`: all were there already).
    pub fn created(&self, new: &[AclBinding]) -> Result<Option<AclSnapshot>, String> {
        let mut next = self.bindings.clone();
        let mut changed = false;
        for b in new {
            changed |= next.insert(b.clone());
        }
        self.successor(next, changed)
    }

    /// Without what `filters` match, and what each filter matched (a
    /// binding matched by two filters is reported by both, as Kafka does).
    pub fn deleted(&self, filters: &[AclFilter]) -> (Option<AclSnapshot>, Removed) {
        let removed: Removed = filters
            .iter()
            .map(|f| {
                self.bindings
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        let mut next = self.bindings.clone();
        next.retain(|b| !filters.iter().any(|f| f.matches(b)));
        let changed = next.len() != self.bindings.len();
        let next = self
            .successor(next, changed)
            .expect("removing never exceeds the limit");
        (next, removed)
    }

    fn successor(
        &self,
        next: BTreeSet<AclBinding>,
        changed: bool,
    ) -> Result<Option<AclSnapshot>, String> {
        if !changed {
            return Ok(None);
        }
        if next.len() > MAX_ACLS {
            return Err(format!("at most {MAX_ACLS} ACLs can be stored"));
        }
        Ok(Some(AclSnapshot::new(self.generation + 1, next)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    acls: Vec<AclBinding>,
}

#[derive(Clone)]
pub struct AclStore {
    source: Source,
}

impl AclStore {
    pub fn new(source: Source) -> Self {
        AclStore { source }
    }

    /// ACLs in memory only (tests).
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self::new(Source::memory())
    }

    pub fn snapshot(&self) -> Arc<AclSnapshot> {
        self.source.state().security.acls.clone()
    }

    /// Add bindings (already validated); ones already stored are no-ops.
    /// Returns once the change is committed and applied here.
    pub async fn create(&self, new: Vec<AclBinding>) -> Result<(), AclStoreError> {
        let cmd = MetadataCommand::Security(SecurityCommand::CreateAcls { acls: new });
        self.source
            .execute(cmd)
            .await
            .map(|_| ())
            .map_err(AclStoreError::Metadata)
    }

    /// Remove every binding matching each filter; returns what each filter
    /// removed, once the change is committed and applied here.
    pub async fn delete(&self, filters: Vec<AclFilter>) -> Result<Removed, AclStoreError> {
        let cmd = MetadataCommand::Security(SecurityCommand::DeleteAcls { filters });
        removed(self.source.execute(cmd).await)
    }

    /// [`Self::create`] off the shards (tests).
    #[cfg(test)]
    pub fn create_blocking(&self, new: Vec<AclBinding>) -> Result<(), AclStoreError> {
        futures::executor::block_on(self.create(new))
    }

    /// [`Self::delete`] off the shards (tests).
    #[cfg(test)]
    pub fn delete_blocking(&self, filters: Vec<AclFilter>) -> Result<Removed, AclStoreError> {
        futures::executor::block_on(self.delete(filters))
    }
}

fn removed(
    outcome: Result<Effect, crate::quorum::core::ProposeError>,
) -> Result<Removed, AclStoreError> {
    match outcome.map_err(AclStoreError::Metadata)? {
        Effect::Security(SecurityEffect::AclsDeleted(r)) => Ok(r),
        other => unreachable!("DeleteAcls applied as {other:?}"),
    }
}

/// The ACLs of a broker's `acls.json` from before the metadata log
/// (`None`: there is no such file). A file that does not parse is an
/// error: starting without its DENY ACLs would open up what they closed.
pub fn read_legacy_file(path: &Path) -> Result<Option<BTreeSet<AclBinding>>, AclStoreError> {
    let bytes =
        crate::security::migrate::read_if_present(path).map_err(|source| AclStoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    bytes
        .map(|b| decode(&b))
        .transpose()
        .map_err(|detail| AclStoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        })
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
