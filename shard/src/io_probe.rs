//! A scratch file on a data device, written and read the way the log does
//! it: O_DIRECT through io_uring, with page-aligned buffers taken from the
//! file and filled by one copy (as the flusher fills its chunks).
//!
//! `shardline iotune` measures the device through this, so its numbers are
//! those the broker's own I/O path will see; keeping the file type here
//! keeps the executor's types out of the tuning crate. Run it on an
//! executor of its own ([`crate::rt::run_standalone`]), after
//! [`crate::log::direct_io::prepare_dir`] on the directory.

use std::io;
use std::path::Path;

use glommio::io::{DmaFile, OpenOptions};

/// A direct-I/O file created (or truncated) for measuring; the caller
/// removes it when done.
pub struct ScratchFile {
    file: DmaFile,
}

impl ScratchFile {
    /// Create `path` (truncating an existing file), open for reads and
    /// writes.
    pub async fn create(path: &Path) -> io::Result<ScratchFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(path)
            .await?;
        Ok(ScratchFile { file })
    }

    /// Reserve `len` bytes of extents (fallocate, size unchanged).
    pub async fn preallocate(&self, len: u64) -> io::Result<()> {
        Ok(self.file.pre_allocate(len, false).await?)
    }

    /// Reserve `len` bytes of extents and keep the size: a segment's
    /// preallocation (each write then grows the file).
    pub async fn reserve(&self, len: u64) -> io::Result<()> {
        Ok(self.file.pre_allocate(len, true).await?)
    }

    /// Write `data` at `pos` (both multiples of the device's block size)
    /// from a fresh aligned buffer; returns the bytes written.
    pub async fn write_at(&self, data: &[u8], pos: u64) -> io::Result<usize> {
        let mut buf = self.file.alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        Ok(self.file.write_at(buf, pos).await?)
    }

    pub async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.file.fdatasync().await?)
    }

    /// Read `len` bytes at `pos` (aligned); returns how many were read.
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<usize> {
        Ok(self.file.read_at(pos, len).await?.len())
    }

    pub async fn close(self) -> io::Result<()> {
        Ok(self.file.close().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_and_sync() {
        // O_DIRECT needs a real filesystem; /tmp may be tmpfs.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data");
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::tempdir_in(root).unwrap();
        let path = dir.path().join("scratch");
        let (written, read) =
            crate::rt::run_standalone("probe-test", 1 << 20, move || async move {
                crate::log::direct_io::prepare_dir(path.parent().unwrap())
                    .await
                    .unwrap();
                let f = ScratchFile::create(&path).await.unwrap();
                f.preallocate(1 << 20).await.unwrap();
                let data = vec![7u8; 8192];
                let written = f.write_at(&data, 4096).await.unwrap();
                f.fdatasync().await.unwrap();
                let read = f.read_at(4096, 8192).await.unwrap();
                f.close().await.unwrap();
                (written, read)
            })
            .unwrap();
        assert_eq!((written, read), (8192, 8192));
    }
}
