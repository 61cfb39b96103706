//! Loading a partition's state from its files (at open, after a recovery
//! in place or a truncation): every segment, indexes rebuilt where missing,
//! the active segment scanned (torn tail cut) and synced, producer state
//! replayed, the leader-epoch cache read and brought up to date.
//!
//! Transaction state follows the producer state: the snapshot at the start
//! of the replayed run holds each producer's open transaction, the replay
//! reopens and closes transactions as the batches say, and rebuilds the
//! aborted-transaction index of every segment it scans (the active one's
//! exists only in memory; a sealed one whose `.txnindex` is missing or
//! unreadable is scanned again, from the snapshot at its own start).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use super::config::LogConfig;
use super::epoch_cache::LeaderEpochCache;
use super::error::LogError;
use super::offsets::Offsets;
use super::partition::{Inner, PAGE};
use super::pending::PendingWrite;
use super::producer_state::{BatchSeq, ProducerStates};
use super::retention::read_log_start;
use super::segment::{segment_file_name, Segment};
use super::tail_cache::TailCache;
use super::txn_index::{AbortedTxn, TxnIndex};
use super::txn_state::CompletedTxn;
use crate::record::{self, BatchView, TxnResult, NO_PRODUCER_ID};
use crate::time::{Clock, LogClock};

fn parse_segment_base(name: &str) -> Option<i64> {
    name.strip_suffix(".log")?.parse().ok()
}

/// Rebuild a log's state from its files: every segment, indexes rebuilt
/// where missing, the active segment scanned (torn tail truncated) and
/// synced, producer state replayed. Used at open and by recovery in place.
pub(super) async fn load(
    dir: &Path,
    name: &str,
    config: &LogConfig,
    clock: &LogClock,
) -> Result<Inner, LogError> {
    super::compaction::recover_leftovers(dir).await?;
    let (bases, checkpoint_start, epoch_checkpoint) = {
        let dir = dir.to_path_buf();
        super::index::off_shard(move || {
            list_segment_bases(&dir).map(|bases| {
                let start = read_log_start(&dir);
                (bases, start, super::epoch_cache::read_checkpoint(&dir))
            })
        })
        .await?
    };
    // Epochs seen in the batches recovery scans: the checkpoint may lack them.
    let mut scanned_epochs = LeaderEpochCache::default();
    let mut opened: Vec<Option<Segment>> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let sealed = match bases.get(i + 1) {
            Some(&next) => Segment::open_sealed(dir, base, next).await?,
            None => None,
        };
        opened.push(sealed);
    }
    // Segments are sealed in order, so those not sealed cleanly form a
    // trailing run (the active one, plus any rolled away from but not yet
    // sealed at a crash or a failed write). Producer state is replayed over
    // that run from the snapshot at its start: a snapshot is written only
    // after the segment before it is sealed, so it never counts batches
    // that did not reach the disk.
    let replay_from = opened
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    let (mut producers, replay_unknown_from) = match bases.get(replay_from) {
        Some(&base) => {
            let dir = dir.to_path_buf();
            let found = super::index::off_shard(move || load_producer_snapshot(&dir, base)).await;
            // No snapshot where offsets did not start: what producers did
            // before is unknown (see `index_batch`).
            let unknown = (found.is_none() && base > 0).then_some(base);
            (found.unwrap_or_default(), unknown)
        }
        None => (ProducerStates::default(), None),
    };
    let mut segments = BTreeMap::new();
    // Set when a segment of the trailing unsealed run ends short of the next
    // one: what follows it is dropped (below), and it becomes the active one.
    let mut cut_after: Option<usize> = None;
    for (i, (&base, sealed)) in bases.iter().zip(opened).enumerate() {
        if cut_after.is_some() {
            break;
        }
        if let Some(seg) = sealed {
            segments.insert(base, seg);
            continue;
        }
        let mut is_last = i + 1 == bases.len();
        if !is_last {
            tracing::info!("{name}: segment {base} has no index; rebuilding it");
        }
        let replay = i >= replay_from;
        // A sealed segment scanned only to rebuild its indexes is not part
        // of the replay: its transaction index is rebuilt from the producer
        // snapshot at its own start.
        let mut own = if replay {
            None
        } else {
            let owned = dir.to_path_buf();
            let found = super::index::off_shard(move || load_producer_snapshot(&owned, base)).await;
            let unknown = (found.is_none() && base > 0).then_some(base);
            Some((found.unwrap_or_default(), unknown))
        };
        let mut txn_index = TxnIndex::default();
        let (mut seg, outcome) = Segment::recover(
            dir,
            base,
            bases.get(i + 1).copied(),
            config.index_interval_bytes,
            |batch| {
                match own.as_mut() {
                    None => index_batch(&mut producers, &mut txn_index, batch, replay_unknown_from),
                    Some((states, unknown)) => index_batch(states, &mut txn_index, batch, *unknown),
                }
                note_epoch(&mut scanned_epochs, batch);
            },
        )
        .await?;
        seg.txn_index = txn_index;
        if let Some(why) = &outcome.stopped_because {
            tracing::warn!(
                "{name}: segment {base}: truncated to {} bytes (next offset {}): {why}",
                outcome.valid_end,
                outcome.next_offset
            );
        }
        if let Some(&next_base) = bases.get(i + 1).filter(|_| replay) {
            // A segment sealed once has the next one's producer snapshot
            // (written after the seal): if it ends early, compaction removed
            // its last batches and those offsets stay unused.
            let never_sealed = {
                let snapshot = dir.join(segment_file_name(next_base, "snapshot"));
                !super::index::off_shard(move || snapshot.exists()).await
            };
            if outcome.next_offset < next_base && never_sealed {
                // Batches of a rolled segment that never reached the disk
                // (a failed write, a crash) before it was sealed: the
                // segments after it were created at their end and hold
                // nothing acknowledged (the flusher writes in order).
                // Keeping them would skip offsets `next_offset..next_base`;
                // like Kafka's log loader, drop them so the offsets stay
                // dense and are given again.
                tracing::warn!(
                    "{name}: segment {base} ends at offset {} before the next segment \
                     {next_base}; deleting the segments from {next_base} on",
                    outcome.next_offset
                );
                let (dir, doomed) = (dir.to_path_buf(), bases[i + 1..].to_vec());
                super::index::off_shard(move || delete_segments_from(&dir, &doomed)).await;
                cut_after = Some(i);
                is_last = true;
            }
        }
        if !is_last {
            super::disk::fdatasync(&*seg.file.get().await?).await?;
            match seg.write_indexes(dir).await {
                Ok(()) => {}
                // On a full disk the log still opens: the indexes are in
                // memory and are rebuilt again at the next start.
                Err(e) if super::health::is_out_of_space(&e) => {
                    tracing::warn!("{name}: segment {base}: index not saved ({e})");
                }
                Err(e) => return Err(e.into()),
            }
            seg.sealed = true;
            seg.file.close_if_idle();
        }
        segments.insert(base, seg);
    }
    if segments.is_empty() {
        let base = checkpoint_start.unwrap_or(0);
        let seg = Segment::create(dir, base).await?;
        segments.insert(base, seg);
    }
    let (&active_base, active) = segments.iter().next_back().expect("at least one segment");
    let next_offset = active.next_offset;
    let aligned = active.size / PAGE as u64 * PAGE as u64;
    let tail = if aligned < active.size {
        let file = active.file.get().await?;
        super::disk::device(file.read_at(aligned, (active.size - aligned) as usize))
            .await?
            .to_vec()
    } else {
        Vec::new()
    };
    let pending = PendingWrite::new(active_base, active.file.clone(), aligned, tail);
    let first_base = *segments.keys().next().expect("non-empty");
    let log_start_offset = checkpoint_start
        .unwrap_or(first_base)
        .max(first_base)
        .min(next_offset);
    let epochs = super::epoch_cache::load_epochs(
        dir,
        name,
        epoch_checkpoint,
        scanned_epochs,
        &segments,
        log_start_offset,
        next_offset,
    )
    .await?;
    // What was found is durable from now on (a crash may have left it in
    // the page cache only), so it may all be served.
    let active_file = &segments.values().next_back().expect("active").file;
    super::disk::fdatasync(&*active_file.get().await?).await?;
    // Opened only to recover; the partition's first read or write reopens.
    active_file.close_if_idle();
    let mut inner = Inner {
        segments,
        offsets: Offsets::loaded(log_start_offset, next_offset),
        cache: TailCache::default(),
        active: pending,
        sealing: VecDeque::new(),
        unsynced_bytes: 0,
        unsynced_file: None,
        last_sync: clock.monotonic(),
        producers,
        leader_epoch: 0,
        epochs_persisted: epochs.version(),
        epochs,
        storage_error: None,
        retry_recovery_at: None,
        faults_in_a_row: 0,
        generation: 0,
        durable_before: (u64::MAX, i64::MIN),
    };
    inner.offsets.debug_check_segments(&inner.segments);
    // Everything loaded is below the high watermark (the log end): only
    // the open transactions are unstable.
    inner.refresh_last_stable();
    Ok(inner)
}

/// The base offsets of the `.log` files in `dir`, in order (blocks).
fn list_segment_bases(dir: &Path) -> std::io::Result<Vec<i64>> {
    crate::blocking::assert_not_shard("listing segments");
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_base(e.file_name().to_str()?))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Delete the files of the segments at `bases` (their log, indexes and the
/// producer snapshot taken at their start). Used when recovery cuts the log
/// before them. Losing an unlink to a power loss is harmless: the next load
/// finds the same short segment before them and deletes them again.
pub(super) fn delete_segments_from(dir: &Path, bases: &[i64]) {
    crate::blocking::assert_not_shard("deleting segments");
    for &base in bases {
        for ext in ["log", "index", "timeindex", "txnindex", "snapshot"] {
            let path = dir.join(segment_file_name(base, ext));
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", path.display());
                }
            }
        }
    }
}

/// Note a batch's leader epoch, if it starts a later one.
pub(super) fn note_epoch(epochs: &mut LeaderEpochCache, batch: &BatchView) {
    let epoch = batch.partition_leader_epoch();
    if epoch >= 0 && epoch > epochs.latest_epoch().unwrap_or(-1) {
        epochs.assign(epoch, batch.base_offset());
    }
}

/// Replay `batch` into `producers` and `index` (`txn::apply_batch`).
/// `unknown_from`: the state before that offset is unknown (no snapshot).
/// An ABORT marker of a producer not seen since then may close a
/// transaction that began before it; it is indexed as if that transaction
/// began there, which hides nothing wrongly (the producer wrote nothing
/// else since) and keeps the aborted records of the replayed range hidden.
fn index_batch(
    producers: &mut ProducerStates,
    index: &mut TxnIndex,
    batch: &BatchView,
    unknown_from: Option<i64>,
) {
    let unseen = batch.is_control() && producers.entry(batch.producer_id()).is_none();
    let done = super::txn::apply_batch(producers, index, batch);
    let Some(from) = unknown_from.filter(|_| unseen && done.is_none()) else {
        return;
    };
    if let Ok(Some(marker)) = record::parse_txn_marker(batch) {
        if marker.result == TxnResult::Abort && from <= batch.base_offset() {
            index.push(AbortedTxn {
                producer_id: batch.producer_id(),
                first_offset: from,
                last_offset: batch.base_offset(),
                // Unknown: the lowest it can be, so searches never stop here.
                last_stable_offset: from,
            });
        }
    }
}

/// Record a batch in the producer state: its sequences (data), the
/// transaction it opens (transactional data) or closes (a marker, whose
/// completed transaction is returned). Control batches that are not
/// transaction markers change nothing.
pub(super) fn record_producer(
    producers: &mut ProducerStates,
    batch: &BatchView,
) -> Option<CompletedTxn> {
    if batch.producer_id() == NO_PRODUCER_ID {
        return None;
    }
    if batch.is_control() {
        let marker = match record::parse_txn_marker(batch) {
            Ok(marker) => marker?,
            Err(e) => {
                // CRC-valid but not a marker Kafka would write: as Kafka's
                // replicas, skip it rather than fail the partition.
                tracing::warn!(
                    "control batch at offset {} of producer {}: {e}; ignored",
                    batch.base_offset(),
                    batch.producer_id()
                );
                return None;
            }
        };
        return producers.note_marker(
            batch.producer_id(),
            batch.producer_epoch(),
            marker,
            batch.base_offset(),
            batch.max_timestamp(),
        );
    }
    producers.record(
        batch.producer_id(),
        batch.producer_epoch(),
        BatchSeq {
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
        },
        batch.max_timestamp(),
    );
    producers.note_txn_data(
        batch.producer_id(),
        batch.base_offset(),
        batch.is_transactional(),
    );
    None
}

/// The producer snapshot at `base`, if there is a readable one (blocks).
pub(super) fn load_producer_snapshot(dir: &Path, base: i64) -> Option<ProducerStates> {
    crate::blocking::assert_not_shard("reading a producer snapshot");
    let path = dir.join(segment_file_name(base, "snapshot"));
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice::<ProducerStates>(&bytes) {
        Ok(mut states) => {
            states.rebuild_transactions();
            Some(states)
        }
        Err(e) => {
            tracing::warn!(
                "{}: unreadable producer snapshot ({e}); starting empty",
                path.display()
            );
            None
        }
    }
}

/// Write the producer snapshot at `base` durably, off the shard thread.
pub(super) async fn save_producer_snapshot(
    dir: &Path,
    base: i64,
    states: &ProducerStates,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(states).map_err(std::io::Error::other)?;
    let path = dir.join(segment_file_name(base, "snapshot"));
    super::index::off_shard(move || super::index::write_durably(&path, &bytes)).await
}
