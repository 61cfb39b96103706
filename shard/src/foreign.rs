//! Handing a shard's DMA read buffer to another shard without copying it —
//! Seastar's `foreign_ptr`, for glommio's `ReadResult`.
//!
//! A `ReadResult` is reference counted with `Rc`, so it may only be cloned
//! or dropped on the thread that made it. Reading its bytes is a plain
//! pointer dereference and safe from any thread while the buffer lives.
//! `ForeignBuf` therefore lets the bytes travel (as a `bytes::Bytes`, via
//! `Bytes::from_owner`) to the shard that writes them to a socket, and sends
//! the buffer back to its home shard to be dropped there.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::thread::ThreadId;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;
use glommio::io::ReadResult;

/// A `ReadResult` on its way back home to be dropped.
struct Homeward {
    _buf: ReadResult,
}
// SAFETY: a `Homeward` is only moved through the channel and dropped by the
// home shard's reclaim task; nothing touches its `Rc` on the way.
unsafe impl Send for Homeward {}

thread_local! {
    static RECLAIM: RefCell<Option<mpsc::UnboundedSender<Homeward>>> = const { RefCell::new(None) };
}

/// This thread's reclaim queue, started on first use (inside an executor).
fn reclaim_sender() -> mpsc::UnboundedSender<Homeward> {
    RECLAIM.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded::<Homeward>();
                crate::rt::spawn_detached(async move {
                    while let Some(buf) = rx.next().await {
                        drop(buf);
                    }
                });
                tx
            })
            .clone()
    })
}

pub struct ForeignBuf {
    buf: ManuallyDrop<ReadResult>,
    home: ThreadId,
    reclaim: mpsc::UnboundedSender<Homeward>,
}

// SAFETY: the only thing done with `buf` off its home thread is reading its
// bytes (`as_ref`); dropping happens at home (see `Drop`), and `ForeignBuf`
// is not `Clone`.
unsafe impl Send for ForeignBuf {}

impl AsRef<[u8]> for ForeignBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for ForeignBuf {
    fn drop(&mut self) {
        // SAFETY: `buf` is taken exactly once, here.
        let buf = unsafe { ManuallyDrop::take(&mut self.buf) };
        if std::thread::current().id() == self.home {
            drop(buf);
        } else if let Err(e) = self.reclaim.unbounded_send(Homeward { _buf: buf }) {
            // The home shard is gone (shutdown): its executor is finished, so
            // leaking this one buffer is the only safe choice.
            std::mem::forget(e.into_inner());
        }
    }
}

/// Wrap part of a DMA read as `Bytes` that any shard may hold and send.
pub fn dma_bytes(read: &ReadResult, offset: usize, len: usize) -> Bytes {
    if len == 0 {
        return Bytes::new();
    }
    let slice = ReadResult::slice(read, offset, len).expect("slice within the read");
    Bytes::from_owner(ForeignBuf {
        buf: ManuallyDrop::new(slice),
        home: std::thread::current().id(),
        reclaim: reclaim_sender(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::run_local;

    #[test]
    fn dma_bytes_are_read_and_dropped_on_another_thread() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data");
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::tempdir_in(root).unwrap();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            crate::log::direct_io::prepare_dir(&path).await.unwrap();
            let file_path = path.join("data");
            std::fs::write(
                &file_path,
                (0..8192u32).map(|i| i as u8).collect::<Vec<_>>(),
            )
            .unwrap();
            let file = glommio::io::DmaFile::open(&file_path).await.unwrap();
            let read = file.read_at(0, 8192).await.unwrap();
            let bytes = dma_bytes(&read, 100, 50);
            drop(read);
            let seen = std::thread::spawn(move || {
                let v = bytes.to_vec();
                drop(bytes); // dropped away from home: goes back through the queue
                v
            })
            .join()
            .unwrap();
            assert_eq!(seen, (100..150u32).map(|i| i as u8).collect::<Vec<_>>());
            // Let the reclaim task run the home-side drop.
            for _ in 0..10 {
                glommio::yield_if_needed().await;
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            file.close().await.unwrap();
        });
    }
}
