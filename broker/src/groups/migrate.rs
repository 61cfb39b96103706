//! Data dirs written before internal names were reserved kept each
//! shard's group log in `DATA_DIR/__consumer_offsets-<shard>`, which is
//! also the directory of partition `<shard>` of a topic named
//! `__consumer_offsets` — a topic any client could create. At start, before
//! any shard runs, the group logs move to `DATA_DIR/@internal/`, where no
//! topic's directory can be.
//!
//! Crash safety: a plain group log moves with one `rename` (atomic; both
//! directories are then synced). A directory shared with a client's topic
//! (the old bug) is not moved: its group records are copied into
//! `@internal/<name>.migrating`, which is renamed into place only when
//! complete; a start that finds a `.migrating` directory deletes it and
//! copies again. The client's topic keeps its directory and records.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use shard::log::{AckLevel, LogConfig, PartitionLog};
use shard::record::{BatchBuilder, Compression};

use super::store;
use crate::metadata::internal::{self, CONSUMER_OFFSETS};
use crate::metadata::{ClusterState, METADATA_FILE};

const STAGING_SUFFIX: &str = ".migrating";

/// What [`migrate_group_logs`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Group logs moved by rename, by shard.
    pub moved: Vec<usize>,
    /// Group logs copied out of a directory shared with a client's topic:
    /// (shard, group records copied, other records left to the topic).
    pub copied: Vec<(usize, u64, u64)>,
}

/// Bring a data dir's group logs to the current layout (see the module
/// doc). Runs on the main thread before the shards start.
pub fn migrate_group_logs(data_dir: &Path, shards: usize, config: &LogConfig) -> Result<Migrated> {
    let mut done = Migrated::default();
    if !data_dir.is_dir() {
        return Ok(done);
    }
    let internal_dir = internal::internal_dir(data_dir);
    remove_staging_leftovers(&internal_dir)?;
    let metadata = read_metadata(data_dir)?;
    warn_about_reserved_topics(metadata.as_ref());
    // Partitions of a client's topic named __consumer_offsets (old bug).
    let shared_partitions = metadata
        .as_ref()
        .and_then(|m| m.topics.get(CONSUMER_OFFSETS))
        .map_or(0, |t| t.partitions.len());
    for (n, old) in old_group_dirs(data_dir)? {
        let new = internal::group_log_dir(data_dir, n);
        if n < shared_partitions {
            if n < shards && !new.exists() {
                let (kept, left) = copy_group_records(&old, &new, n, config)?;
                tracing::warn!(
                    "{}: this directory is partition {n} of a topic '{CONSUMER_OFFSETS}' that a client \
                     created before the name was reserved, and also the group log of shard {n}: copied \
                     its {kept} group record(s) to {} and left it ({left} other record(s)) to the topic",
                    old.display(),
                    new.display()
                );
                done.copied.push((n, kept, left));
            }
            continue;
        }
        if new.exists() {
            bail!(
                "both {} (group log of shard {n}, old layout) and {} (its new place) exist; \
                 keep the right one and move the other out of the data dir",
                old.display(),
                new.display()
            );
        }
        create_dir_synced(&internal_dir)?;
        std::fs::rename(&old, &new)
            .with_context(|| format!("moving {} to {}", old.display(), new.display()))?;
        sync_dir(&internal_dir)?;
        sync_dir(data_dir)?;
        tracing::info!(
            "moved the group log of shard {n} from {} to {} (internal state no longer shares \
             a directory name with topics)",
            old.display(),
            new.display()
        );
        done.moved.push(n);
    }
    Ok(done)
}

/// `DATA_DIR/__consumer_offsets-<n>` directories, by n.
fn old_group_dirs(data_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    let prefix = format!("{CONSUMER_OFFSETS}-");
    for entry in std::fs::read_dir(data_dir)
        .with_context(|| format!("listing data dir {}", data_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix(&prefix))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn remove_staging_leftovers(internal_dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(internal_dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(STAGING_SUFFIX) {
            tracing::warn!(
                "{}: an interrupted group log migration; removing it to copy again",
                path.display()
            );
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The metadata: the file of a data dir from before the metadata log
/// (migrated into the log when the broker starts), else the log's
/// committed state.
fn read_metadata(data_dir: &Path) -> Result<Option<ClusterState>> {
    let path = data_dir.join(METADATA_FILE);
    if !path.exists() {
        return crate::quorum::read_committed(&internal::metadata_log_dir(data_dir));
    }
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not valid cluster metadata", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Topics that clients made with names reserved since: kept readable and
/// deletable, refused writes and changes; say so at every start.
fn warn_about_reserved_topics(metadata: Option<&ClusterState>) {
    for t in client_made_reserved_topics(metadata) {
        tracing::warn!(
            "topic '{}' ({} partition(s)) was created by a client before Shardline reserved \
             internal topic names; it is kept as it is: consumers can read it, producers get \
             INVALID_TOPIC_EXCEPTION, and it cannot be grown or reconfigured. Copy what you \
             need, then delete it (DeleteTopics, `shardline topic delete {}`)",
            t.name,
            t.partitions.len(),
            t.name
        );
    }
}

/// The topics with reserved names that a client made. `__transaction_state`
/// is the broker's own (the transaction coordinators create it), never a
/// client's: telling the operator to delete it would lose every
/// transaction's state.
fn client_made_reserved_topics(
    metadata: Option<&ClusterState>,
) -> impl Iterator<Item = &crate::metadata::TopicMeta> {
    metadata
        .into_iter()
        .flat_map(|m| m.topics.values())
        .filter(|t| internal::is_reserved(&t.name) && t.name != internal::TRANSACTION_STATE)
        .map(|t| t.as_ref())
}

/// Copy the group records of `old` (shared with a client's topic) into a
/// fresh group log at `new`, through a staging directory. Returns
/// (records copied, records that were not group records).
fn copy_group_records(
    old: &Path,
    new: &Path,
    shard: usize,
    config: &LogConfig,
) -> Result<(u64, u64)> {
    let staging = PathBuf::from(format!("{}{STAGING_SUFFIX}", new.display()));
    let internal_dir = new
        .parent()
        .expect("group logs live in a directory")
        .to_path_buf();
    create_dir_synced(&internal_dir)?;
    let (old_path, staging_path, config) = (old.to_path_buf(), staging.clone(), config.clone());
    let counts = shard::runtime::run_local(move || async move {
        copy_on_executor(&old_path, &staging_path, shard, config).await
    })
    .with_context(|| format!("copying the group records of {}", old.display()))?;
    std::fs::rename(&staging, new)
        .with_context(|| format!("moving {} to {}", staging.display(), new.display()))?;
    sync_dir(&internal_dir)?;
    Ok(counts)
}

async fn copy_on_executor(
    old: &Path,
    staging: &Path,
    shard: usize,
    config: LogConfig,
) -> Result<(u64, u64)> {
    let name = internal::group_log_name(shard);
    let src = PartitionLog::open(old.to_path_buf(), name.clone(), config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", old.display()))?;
    let dst = PartitionLog::open(staging.to_path_buf(), name, config)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", staging.display()))?;
    // Keep exactly what the group store accepts, in order; a scratch
    // restore decides (a client's records fail to parse as group records).
    let mut scratch = store::Restored::default();
    let mut kept = Vec::new();
    let mut left = 0u64;
    let now = super::wall_clock_ms();
    store::for_each_record(&src, |r| {
        let value = r.value.clone();
        if store::apply(&mut scratch, &r.key, value, r.offset, r.timestamp, now).is_ok() {
            kept.push(r);
        } else {
            left += 1;
        }
        Ok(())
    })
    .await?;
    for chunk in kept.chunks(512) {
        let mut b = BatchBuilder::new(Compression::None);
        for r in chunk {
            b.append(
                r.timestamp,
                Some(r.key.clone()),
                r.value.clone(),
                Vec::new(),
            )
            .map_err(|e| anyhow::anyhow!("re-encoding a group record: {e}"))?;
        }
        let batch = Bytes::from(b.build().map_err(|e| anyhow::anyhow!("{e}"))?);
        dst.append(batch, AckLevel::Durable)
            .await
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", staging.display()))?;
    }
    let copied = kept.len() as u64;
    dst.close()
        .await
        .map_err(|e| anyhow::anyhow!("closing {}: {e}", staging.display()))?;
    let _ = src.close().await;
    Ok((copied, left))
}

fn create_dir_synced(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
