//! A partition's side of the write-ahead ring: which ring it uses, and
//! the barrier before its files change.

use std::rc::Rc;

use super::ShardWal;
use crate::fifo::FifoGuard;
use crate::log::config::FlushMode;
use crate::log::error::LogError;
use crate::log::partition::PartitionLog;

/// The ring a partition writes to, and its directory relative to the
/// ring's data directory (the prefix of its entries' paths).
pub(in crate::log) struct WalLink {
    pub(in crate::log) wal: Rc<ShardWal>,
    pub(in crate::log) dir: String,
}

impl WalLink {
    /// The shard's ring, if one is installed and `dir` is inside its data
    /// directory (a partition elsewhere syncs its own files).
    pub(in crate::log) fn for_dir(dir: &std::path::Path) -> Option<Self> {
        let wal = super::current()?;
        let rel = dir.strip_prefix(wal.root()).ok()?.to_str()?.to_string();
        (!rel.is_empty() && rel.len() < super::frame::MAX_PATH / 2)
            .then_some(Self { wal, dir: rel })
    }

    pub(in crate::log) fn entry(&self, segment_base: i64) -> String {
        format!(
            "{}/{}",
            self.dir,
            crate::log::segment::segment_file_name(segment_base, "log")
        )
    }
}

impl PartitionLog {
    /// The ring, when this cycle's durability comes from it: batch mode
    /// with a ring installed when the log was opened.
    pub(in crate::log) fn wal_for_batch(&self) -> Option<&WalLink> {
        let link = self.wal.as_ref()?;
        (self.config.borrow().flush_mode == FlushMode::Batch).then_some(link)
    }

    /// Take the files lock to change the set or size of this partition's
    /// files; first, a checkpoint must cover every frame that wrote them,
    /// or a restart would redo those writes into the changed files.
    pub(in crate::log) async fn lock_files(&self) -> Result<FifoGuard<'_>, LogError> {
        let guard = self.files_lock.lock().await;
        if let (Some(link), Some(seq)) = (&self.wal, self.wal_seq.get()) {
            link.wal.barrier(seq).await?;
        }
        Ok(guard)
    }
}
