//! The storage seam of the partition log: every change the log makes to
//! the bytes of a segment file (write, fdatasync, truncate) goes through
//! these three functions.
//!
//! In the broker they are the glommio DMA calls, inlined: no trait object
//! and no allocation on the write path. In tests they first consult the
//! simulated disk of this thread (`sim_disk.rs`), when one is installed,
//! which records what is written but not yet synced (so a simulated power
//! loss can take a random part of it back), and injects EIO, ENOSPC and
//! torn writes from a seeded generator. The files themselves stay real, so
//! the code under test is exactly the broker's, alignment rules included.
//!
//! The other real operations of a log (opening and reading segments,
//! pre-allocating, the blocking pool's index and snapshot writes) go
//! through [`device`], which under the simulation runs them one at a time
//! behind the simulated disk's gate, so that a seed replays exactly
//! whatever the kernel's timing (see `sim_disk::enter`).

use std::future::Future;
use std::path::Path;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use super::error::LogError;

/// Write `buf` at `pos`; returns the bytes written.
#[inline]
pub(super) async fn write_at(file: &DmaFile, buf: DmaBuffer, pos: u64) -> Result<usize, LogError> {
    #[cfg(any(test, feature = "sim"))]
    if let Some(sim) = super::sim_disk::current() {
        return sim::write_at(&sim, file, buf, pos).await;
    }
    Ok(file.write_at(buf, pos).await?)
}

/// `fdatasync` the file: what was written to it survives a power loss.
#[inline]
pub(super) async fn fdatasync(file: &DmaFile) -> Result<(), LogError> {
    #[cfg(any(test, feature = "sim"))]
    if let Some(sim) = super::sim_disk::current() {
        return sim::fdatasync(&sim, file).await;
    }
    Ok(file.fdatasync().await?)
}

/// Cut (or extend) the file to `size` bytes.
#[inline]
pub(super) async fn truncate(file: &DmaFile, size: u64) -> Result<(), LogError> {
    #[cfg(any(test, feature = "sim"))]
    if let Some(sim) = super::sim_disk::current() {
        return sim::truncate(&sim, file, size).await;
    }
    Ok(file.truncate(size).await?)
}

/// Run one real operation on the log's files: in the broker, just that
/// (inlined); under the simulation, alone (see the module comment).
#[inline]
pub(crate) async fn device<F: Future>(op: F) -> F::Output {
    #[cfg(any(test, feature = "sim"))]
    if let Some(sim) = super::sim_disk::current() {
        let _gate = super::sim_disk::enter(&sim).await;
        return op.await;
    }
    op.await
}

/// Open a segment file for reads and writes; with `create`, create it if
/// it does not exist, and make its name durable.
pub(super) async fn open(path: &Path, create: bool) -> std::io::Result<DmaFile> {
    #[cfg(any(test, feature = "sim"))]
    let file = match super::sim_disk::current() {
        Some(sim) => sim::open(&sim, path, create).await?,
        None => dma_open(path, create).await?,
    };
    #[cfg(not(any(test, feature = "sim")))]
    let file = dma_open(path, create).await?;
    if create {
        // The fdatasync of a segment covers its bytes, not its directory
        // entry: without this sync a power loss could take a new segment
        // whole, acknowledged batches and all (found by the log simulation:
        // a partition's first segment, whose creation no later directory
        // sync covered). Kafka flushes the log directory too.
        let dir = super::index::parent_dir(path).to_path_buf();
        super::index::off_shard(move || super::index::sync_dir(&dir)).await?;
    }
    Ok(file)
}

#[inline]
async fn dma_open(path: &Path, create: bool) -> glommio::Result<DmaFile, ()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .dma_open(path)
        .await
}

/// Reserve file space up to `size` (the file's size does not change).
#[inline]
pub(super) async fn pre_allocate(file: &DmaFile, size: u64) -> std::io::Result<()> {
    Ok(device(file.pre_allocate(size, true)).await?)
}

/// The same calls with the simulated disk in between.
#[cfg(any(test, feature = "sim"))]
mod sim {
    use std::path::PathBuf;

    use glommio::io::{DmaBuffer, DmaFile};

    use super::super::error::LogError;
    use super::super::sim_disk::{self, Fault, GateGuard, SimDiskRef};

    /// One call on the simulated device; counted until it ends or its
    /// future is dropped (a failed chunk drops the other chunks' writes).
    struct InFlight<'a>(&'a SimDiskRef);

    impl InFlight<'_> {
        /// The call ended; after a crash its result is refused, so the
        /// crashed log goes no further (it writes no index or snapshot).
        fn finish(self) -> std::io::Result<()> {
            let crashed = self.0.borrow().is_crashed();
            drop(self);
            if crashed {
                return Err(std::io::Error::other("simulated crash: the device is gone"));
            }
            Ok(())
        }
    }

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.borrow_mut().end_io();
        }
    }

    /// Wait a seeded number of steps (so that concurrent calls reach the
    /// device in an order the seed decides), then take the device.
    async fn take_device(sim: &SimDiskRef) -> GateGuard {
        let steps = sim.borrow_mut().delay();
        for _ in 0..steps {
            sim_disk::step(sim).await;
        }
        sim_disk::enter(sim).await
    }

    fn path_of(file: &DmaFile) -> PathBuf {
        file.path()
            .map(|p| p.to_path_buf())
            .expect("segment files have a path")
    }

    pub(super) async fn write_at(
        sim: &SimDiskRef,
        file: &DmaFile,
        buf: DmaBuffer,
        pos: u64,
    ) -> Result<usize, LogError> {
        let path = path_of(file);
        let _device = take_device(sim).await;
        let fault = sim.borrow_mut().before_write(&path, pos, buf.len())?;
        let op = InFlight(sim);
        let outcome = match fault {
            Fault::None => file.write_at(buf, pos).await.map_err(LogError::from),
            Fault::Fail(e) => Err(e.into()),
            Fault::Torn(keep, e) => {
                // The first `keep` bytes reach the device, then it fails.
                let mut part = glommio::allocate_dma_buffer(keep);
                part.as_bytes_mut().copy_from_slice(&buf.as_bytes()[..keep]);
                match file.write_at(part, pos).await {
                    Ok(_) => Err(e.into()),
                    Err(other) => Err(other.into()),
                }
            }
        };
        op.finish()?;
        outcome
    }

    pub(super) async fn fdatasync(sim: &SimDiskRef, file: &DmaFile) -> Result<(), LogError> {
        let path = path_of(file);
        let _device = take_device(sim).await;
        let covered = sim.borrow_mut().before_sync(&path)?;
        let op = InFlight(sim);
        // Durability is what the simulated disk tracks; the real fdatasync
        // would only make the run slow. Yield, as the real call would.
        let _ = file;
        futures_lite::future::yield_now().await;
        op.finish()?;
        sim.borrow_mut().synced(&path, covered);
        Ok(())
    }

    /// A file created here has no durable directory entry until its
    /// directory is synced: the simulated disk remembers it.
    pub(super) async fn open(
        sim: &SimDiskRef,
        path: &std::path::Path,
        create: bool,
    ) -> std::io::Result<DmaFile> {
        let _device = take_device(sim).await;
        sim.borrow_mut().before_open()?;
        let op = InFlight(sim);
        let new = create && !path.exists();
        let opened = super::dma_open(path, create).await;
        op.finish()?;
        let file = opened?;
        if new {
            sim.borrow_mut().created(path);
        }
        Ok(file)
    }

    pub(super) async fn truncate(
        sim: &SimDiskRef,
        file: &DmaFile,
        size: u64,
    ) -> Result<(), LogError> {
        let path = path_of(file);
        let _device = take_device(sim).await;
        sim.borrow_mut().before_truncate(&path, size)?;
        let op = InFlight(sim);
        let outcome = file.truncate(size).await;
        op.finish()?;
        Ok(outcome?)
    }
}
