//! The metadata log on disk: raft-rs's [`Storage`] over two files.
//!
//! - `log`: an append-only sequence of records, each
//!   `[len u32][crc32c u32][kind u8][payload]` (little endian, the CRC
//!   covers kind and payload). Kinds: a raft entry (protobuf, as raft-rs
//!   encodes it) or a hard state (term, vote, commit). An entry whose index
//!   is not past the last one replaces that suffix (raft truncating a
//!   follower's divergent tail), so replaying the file in order rebuilds
//!   the log. A torn or corrupt tail is cut off at open: it was never
//!   synced, so never acknowledged to anyone.
//! - `snapshot`: the state machine's image at an applied index with that
//!   index, its term and the configuration (voters and learners), written
//!   whole to a temporary file, synced and renamed. Entries up to it are
//!   dropped from `log` by rewriting the file the same way.
//!
//! Everything here blocks: it runs on the quorum thread, never a shard.
//! The metadata log is small (admin operations, registrations), so entries
//! since the last snapshot are also kept in memory for raft to read.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

const LOG: &str = "log";
const SNAPSHOT: &str = "snapshot";
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const SNAPSHOT_MAGIC: u32 = 0x534c_4d53; // "SLMS"
/// No single record is larger: a metadata command, or a conf change.
pub const MAX_RECORD: usize = 64 << 20;

pub struct MetaStorage {
    dir: PathBuf,
    log: File,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    hard_state: HardState,
    snapshot: Snapshot,
    /// Written since the last sync.
    dirty: bool,
}

/// What a node starts from when its directory is new.
pub struct Bootstrap {
    pub conf_state: ConfState,
    /// An image to start from (a migrated single-node state) at index 1,
    /// term 1; `None`: an empty log at index 0.
    pub image: Option<Vec<u8>>,
}

impl MetaStorage {
    /// Open `dir`'s log, or start it from `bootstrap()` when it has none.
    pub fn open(dir: &Path, bootstrap: impl FnOnce() -> Bootstrap) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // The log holds SCRAM keys (which let a holder impersonate the
        // broker to clients): only the broker's user may read it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let snap_path = dir.join(SNAPSHOT);
        let log_path = dir.join(LOG);
        let fresh = !snap_path.exists() && !log_path.exists();
        let snapshot = if fresh {
            let b = bootstrap();
            let mut s = Snapshot::default();
            s.mut_metadata().set_conf_state(b.conf_state);
            if let Some(image) = b.image {
                s.mut_metadata().index = 1;
                s.mut_metadata().term = 1;
                s.data = image.into();
            }
            write_snapshot(dir, &s)?;
            s
        } else if snap_path.exists() {
            read_snapshot(&snap_path)?
        } else {
            anyhow::bail!(
                "{} has a metadata log but no snapshot file: it is not a Shardline metadata directory",
                dir.display()
            );
        };
        let (entries, hard_state, good_len) = replay(&log_path, &snapshot)?;
        let log = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&log_path)?;
        // Cut a torn tail: the next append must follow the last good record.
        if log.metadata()?.len() != good_len {
            log.set_len(good_len)?;
            log.sync_all()?;
        }
        let mut log = log;
        seek_end(&mut log)?;
        let mut s = Self {
            dir: dir.to_path_buf(),
            log,
            entries,
            hard_state,
            snapshot,
            dirty: false,
        };
        let snap_index = s.snapshot.get_metadata().index;
        if s.hard_state.commit < snap_index {
            s.hard_state.commit = snap_index;
            s.hard_state.term = s.hard_state.term.max(s.snapshot.get_metadata().term);
        }
        s.check();
        Ok(s)
    }

    fn check(&self) {
        let first = self.snapshot.get_metadata().index + 1;
        for (want, e) in (first..).zip(&self.entries) {
            assert_eq!(e.index, want, "metadata log entries are contiguous");
        }
        assert!(
            self.hard_state.commit <= self.last(),
            "commit {} beyond the last entry {}",
            self.hard_state.commit,
            self.last()
        );
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Append `ents` (written, not yet synced): a suffix at or before the
    /// last index replaces what was there.
    pub fn append(&mut self, ents: &[Entry]) -> anyhow::Result<()> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        assert!(
            first.index >= self.first() && first.index <= self.last() + 1,
            "append at {} to a log holding {}..={}",
            first.index,
            self.first(),
            self.last()
        );
        let mut buf = Vec::new();
        for e in ents {
            let bytes = e.write_to_bytes()?;
            encode_record(&mut buf, KIND_ENTRY, &bytes)?;
        }
        self.write_log(&buf)?;
        let keep = (first.index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        self.check();
        Ok(())
    }

    /// Record a new hard state (written, not yet synced).
    pub fn set_hard_state(&mut self, hs: &HardState) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        encode_record(&mut buf, KIND_HARD_STATE, &hard_state_bytes(hs))?;
        self.write_log(&buf)?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// The commit index raft reports without a new hard state. raft-rs
    /// does not need it persisted (a restarted node learns it again), but
    /// it is written (synced with the next write) so that offline readers
    /// ([`read_log`]) see the last committed change too.
    pub fn set_commit(&mut self, commit: u64) -> anyhow::Result<()> {
        assert!(commit <= self.last());
        if commit > self.hard_state.commit {
            let mut hs = self.hard_state.clone();
            hs.commit = commit;
            self.set_hard_state(&hs)?;
        }
        Ok(())
    }

    /// Append `buf` to the log file. On a full disk the disk reserve is
    /// given back and the write tried once more (metadata changes such as
    /// DeleteTopics are how space is freed); a failed write is cut off so
    /// no partial record is left for the next one to follow.
    fn write_log(&mut self, buf: &[u8]) -> anyhow::Result<()> {
        let before = seek_end(&mut self.log)?;
        let mut result = self.log.write_all(buf);
        if let Err(e) = &result {
            self.log.set_len(before)?;
            seek_end(&mut self.log)?;
            if shard::log::health::is_out_of_space(e) && shard::log::reserve::release() {
                result = self.log.write_all(buf);
                if result.is_err() {
                    self.log.set_len(before)?;
                    seek_end(&mut self.log)?;
                }
            }
        }
        result?;
        self.dirty = true;
        Ok(())
    }

    /// Make everything written durable.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        if self.dirty {
            if let Err(e) = self.log.sync_data() {
                if !(shard::log::health::is_out_of_space(&e) && shard::log::reserve::release()) {
                    return Err(e.into());
                }
                self.log.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// A snapshot received from the leader replaces the whole log.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        let meta = snap.get_metadata();
        if meta.index < self.first() {
            anyhow::bail!(
                "snapshot at {} is older than the log's first index {}",
                meta.index,
                self.first()
            );
        }
        write_snapshot(&self.dir, snap)?;
        self.snapshot = snap.clone();
        self.entries.clear();
        self.hard_state.commit = meta.index;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.rewrite_log()
    }

    /// Our own snapshot of the state at `index` (applied): saved, then the
    /// entries up to it dropped.
    pub fn compact_to(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> anyhow::Result<()> {
        assert!(
            index <= self.hard_state.commit,
            "snapshot past the commit index"
        );
        if index < self.first() {
            return Ok(());
        }
        let term = self.term(index).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata().set_conf_state(conf_state);
        s.data = data.into();
        write_snapshot(&self.dir, &s)?;
        self.snapshot = s;
        let drop = (index + 1 - self.entries[0].index) as usize;
        self.entries.drain(..drop);
        self.rewrite_log()?;
        self.check();
        Ok(())
    }

    /// Write the hard state and the kept entries to a new `log`, synced,
    /// renamed over the old one.
    fn rewrite_log(&mut self) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            KIND_HARD_STATE,
            &hard_state_bytes(&self.hard_state),
        )?;
        for e in &self.entries {
            encode_record(&mut buf, KIND_ENTRY, &e.write_to_bytes()?)?;
        }
        shard::log::reserve::write_durably_or_release(&self.dir.join(LOG), &buf)?;
        let mut log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(LOG))?;
        seek_end(&mut log)?;
        self.log = log;
        self.dirty = false;
        Ok(())
    }
}

/// Put the file position at the end, where the next record goes.
fn seek_end(f: &mut File) -> std::io::Result<u64> {
    use std::io::Seek;
    f.seek(std::io::SeekFrom::End(0))
}

impl Storage for MetaStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.snapshot.get_metadata().get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = self.first();
        let mut out = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index || self.snapshot.data.is_empty() {
            // The driver snapshots again soon; raft asks again then.
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

/// The log in `dir` as it is on disk, without opening it for writing (safe
/// beside a running broker): the snapshot, the entries after it and the
/// last hard state. `None` when `dir` holds no metadata log.
pub fn read_log(dir: &Path) -> anyhow::Result<Option<(Snapshot, Vec<Entry>, HardState)>> {
    let snap_path = dir.join(SNAPSHOT);
    if !snap_path.exists() {
        return Ok(None);
    }
    let snapshot = read_snapshot(&snap_path)?;
    let (entries, mut hs, _) = replay(&dir.join(LOG), &snapshot)?;
    hs.commit = hs.commit.max(snapshot.get_metadata().index);
    Ok(Some((snapshot, entries, hs)))
}

fn hard_state_bytes(hs: &HardState) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&hs.term.to_le_bytes());
    b[8..16].copy_from_slice(&hs.vote.to_le_bytes());
    b[16..].copy_from_slice(&hs.commit.to_le_bytes());
    b
}

fn encode_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) -> anyhow::Result<()> {
    if payload.len() + 1 > MAX_RECORD {
        anyhow::bail!(
            "metadata record of {} bytes is over the {MAX_RECORD}-byte limit",
            payload.len()
        );
    }
    let len = (payload.len() + 1) as u32;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    Ok(())
}

/// Replay `log`: the entries after `snapshot`, the last hard state, and the
/// length of the good prefix of the file.
fn replay(path: &Path, snapshot: &Snapshot) -> anyhow::Result<(Vec<Entry>, HardState, u64)> {
    let mut bytes = Vec::new();
    if path.exists() {
        File::open(path)?.read_to_end(&mut bytes)?;
    }
    let snap_index = snapshot.get_metadata().index;
    let mut entries: Vec<Entry> = Vec::new();
    let mut hs = HardState::default();
    let mut at = 0usize;
    while bytes.len() - at >= 9 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if len == 0 || len > MAX_RECORD || bytes.len() - at - 8 < len {
            break;
        }
        let body = &bytes[at + 8..at + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let (kind, payload) = (body[0], &body[1..]);
        match kind {
            KIND_ENTRY => {
                let e = Entry::parse_from_bytes(payload)?;
                if e.index > snap_index {
                    let first = snap_index + 1;
                    let next = first + entries.len() as u64;
                    anyhow::ensure!(
                        e.index <= next,
                        "{}: entry {} follows {}: a gap in the metadata log",
                        path.display(),
                        e.index,
                        next - 1
                    );
                    entries.truncate((e.index - first) as usize);
                    entries.push(e);
                }
            }
            KIND_HARD_STATE if payload.len() == 24 => {
                hs.term = u64::from_le_bytes(payload[..8].try_into().unwrap());
                hs.vote = u64::from_le_bytes(payload[8..16].try_into().unwrap());
                hs.commit = u64::from_le_bytes(payload[16..].try_into().unwrap());
            }
            _ => anyhow::bail!(
                "{}: unknown record kind {kind} at byte {at}",
                path.display()
            ),
        }
        at += 8 + len;
    }
    let last = entries.last().map_or(snap_index, |e| e.index);
    // A hard state is written with the entries it commits, so a commit past
    // the last good entry means the tail was lost after it was synced:
    // refuse rather than forget committed metadata.
    anyhow::ensure!(
        hs.commit <= last,
        "{}: commit index {} is past the last entry {last}; the metadata log lost synced records",
        path.display(),
        hs.commit
    );
    Ok((entries, hs, at as u64))
}

fn write_snapshot(dir: &Path, s: &Snapshot) -> anyhow::Result<()> {
    let meta = s.get_metadata();
    let conf = meta.get_conf_state().write_to_bytes()?;
    let mut buf = Vec::with_capacity(40 + conf.len() + s.data.len());
    buf.extend_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
    buf.extend_from_slice(&meta.index.to_le_bytes());
    buf.extend_from_slice(&meta.term.to_le_bytes());
    buf.extend_from_slice(&(conf.len() as u32).to_le_bytes());
    buf.extend_from_slice(&conf);
    buf.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
    buf.extend_from_slice(&s.data);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    // Written whole beside the old one, synced, renamed over it; on a full
    // disk the reserve is given back for it.
    Ok(shard::log::reserve::write_durably_or_release(
        &dir.join(SNAPSHOT),
        &buf,
    )?)
}

fn read_snapshot(path: &Path) -> anyhow::Result<Snapshot> {
    let bytes = std::fs::read(path)?;
    let bad = |why: &str| anyhow::anyhow!("{}: {why}", path.display());
    if bytes.len() < 4 + 8 + 8 + 4 + 8 + 4 {
        return Err(bad("too short for a metadata snapshot"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
        return Err(bad("checksum mismatch (the snapshot is corrupt)"));
    }
    if u32::from_le_bytes(body[..4].try_into().unwrap()) != SNAPSHOT_MAGIC {
        return Err(bad("not a Shardline metadata snapshot"));
    }
    let index = u64::from_le_bytes(body[4..12].try_into().unwrap());
    let term = u64::from_le_bytes(body[12..20].try_into().unwrap());
    let conf_len = u32::from_le_bytes(body[20..24].try_into().unwrap()) as usize;
    let rest = &body[24..];
    if rest.len() < conf_len + 8 {
        return Err(bad("truncated configuration"));
    }
    let conf = ConfState::parse_from_bytes(&rest[..conf_len])?;
    let data_len = u64::from_le_bytes(rest[conf_len..conf_len + 8].try_into().unwrap()) as usize;
    let data = &rest[conf_len + 8..];
    if data.len() != data_len {
        return Err(bad("truncated image"));
    }
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().set_conf_state(conf);
    s.data = data.to_vec().into();
    Ok(s)
}
