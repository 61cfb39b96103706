//! A value every shard reads and any shard may change, kept in a file:
//! the broker's ACL, quota and credential stores.
//!
//! Readers clone an `Arc` of the current value under a read lock that is
//! only ever write-locked for a pointer swap, so a reader never waits for
//! I/O. A change:
//! 1. waits its turn in a [`SharedFifoLock`] (arrival order, across shards;
//!    a shard thread waits by parking its task, never by blocking);
//! 2. on the blocking pool (see [`crate::blocking`]), computes the next
//!    value from the current one, makes it durable with
//!    [`Persist::persist`], and only then publishes it;
//! 3. releases the lock there, after publishing.
//!
//! So the answer to a change comes after it is durable, concurrent changes
//! apply one after another (none is lost or reordered), a failed write
//! changes nothing, and a request cancelled mid-write cannot let the next
//! writer start from a value the disk has already left behind.

use std::sync::{Arc, RwLock};

use crate::shared_fifo::SharedFifoLock;

/// How a [`Durable`] value is written.
pub trait Persist: Send + Sync + 'static {
    type Value: Send + Sync + 'static;
    type Error: Send + 'static;

    /// Make `value` durable (write, fsync, rename). Runs off the shard
    /// threads, one call at a time per store.
    fn persist(&self, value: &Self::Value) -> Result<(), Self::Error>;

    /// `value` has just become the current one (still in writer order):
    /// for flags derived from it.
    fn published(&self, _value: &Self::Value) {}
}

/// What a change decided: the next value (`None`: nothing changed, nothing
/// written) and what to answer.
pub type Planned<V, R> = (Option<V>, R);

pub struct Durable<P: Persist> {
    inner: Arc<Inner<P>>,
}

impl<P: Persist> Clone for Durable<P> {
    fn clone(&self) -> Self {
        Durable {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<P: Persist> {
    persister: P,
    current: RwLock<Arc<P::Value>>,
    writers: Arc<SharedFifoLock>,
}

impl<P: Persist> Durable<P> {
    /// A store whose current value is `value` (as loaded; not written).
    pub fn new(persister: P, value: P::Value) -> Self {
        Durable {
            inner: Arc::new(Inner {
                persister,
                current: RwLock::new(Arc::new(value)),
                writers: SharedFifoLock::new(),
            }),
        }
    }

    pub fn persister(&self) -> &P {
        &self.inner.persister
    }

    /// The current value; never waits for a write.
    pub fn snapshot(&self) -> Arc<P::Value> {
        self.inner.snapshot()
    }

    /// Apply `plan` to the current value after every change that asked
    /// before it; returns once the result is durable and published. Must
    /// be awaited on a glommio executor.
    pub async fn update<R, F>(&self, plan: F) -> Result<R, P::Error>
    where
        R: Send + 'static,
        F: FnOnce(&P::Value) -> Result<Planned<P::Value, R>, P::Error> + Send + 'static,
    {
        let turn = self.inner.writers.lock().await;
        let inner = self.inner.clone();
        crate::blocking::run(move || {
            let outcome = inner.apply(plan);
            drop(turn); // after publishing: the next writer starts from ours
            outcome
        })
        .await
    }

    /// [`Self::update`] for a thread that is not a shard (start-up, tools,
    /// tests): blocks the calling thread.
    pub fn update_blocking<R, F>(&self, plan: F) -> Result<R, P::Error>
    where
        F: FnOnce(&P::Value) -> Result<Planned<P::Value, R>, P::Error>,
    {
        crate::blocking::assert_not_shard("Durable::update_blocking");
        let _turn = futures::executor::block_on(self.inner.writers.lock());
        self.inner.apply(plan)
    }
}

impl<P: Persist> Inner<P> {
    fn snapshot(&self) -> Arc<P::Value> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Plan, persist, publish; the caller holds the writers' lock.
    fn apply<R>(
        &self,
        plan: impl FnOnce(&P::Value) -> Result<Planned<P::Value, R>, P::Error>,
    ) -> Result<R, P::Error> {
        crate::blocking::assert_not_shard("a durable store's write");
        debug_assert!(self.writers.is_locked(), "a write outside its turn");
        let current = self.snapshot();
        let (next, answer) = plan(&current)?;
        if let Some(next) = next {
            self.persister.persist(&next)?;
            let next = Arc::new(next);
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
            self.persister.published(&next);
        }
        Ok(answer)
    }
}

/// For the stores' tests: run `task(shard)` on `shards` executors at once,
/// each on its own thread marked as a shard thread (so a blocking write
/// reached on it fails a debug build), and collect their results.
pub fn on_test_shards<T, Fut>(
    shards: usize,
    task: impl Fn(usize) -> Fut + Clone + Send + 'static,
) -> Vec<T>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let threads: Vec<_> = (0..shards)
        .map(|shard| {
            let task = task.clone();
            std::thread::spawn(move || {
                crate::runtime::run_local(move || async move {
                    crate::blocking::forbid_here();
                    task(shard).await
                })
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a test shard panicked"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A list of numbers in a file, one per line.
    struct Lines {
        path: PathBuf,
        writes: AtomicUsize,
    }

    impl Persist for Lines {
        type Value = Vec<u32>;
        type Error = std::io::Error;
        fn persist(&self, value: &Vec<u32>) -> std::io::Result<()> {
            crate::blocking::assert_not_shard("Lines::persist");
            self.writes.fetch_add(1, Ordering::Relaxed);
            let text: String = value.iter().map(|n| format!("{n}\n")).collect();
            crate::log::index::write_durably(&self.path, text.as_bytes())
        }
    }

    fn read(path: &std::path::Path) -> Vec<u32> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }

    fn push(n: u32) -> impl FnOnce(&Vec<u32>) -> std::io::Result<Planned<Vec<u32>, ()>> {
        move |v| {
            let mut next = v.clone();
            next.push(n);
            Ok((Some(next), ()))
        }
    }

    /// Two shards (threads marked as shards) push concurrently; every push
    /// is in the file and in memory, and each shard's pushes keep their
    /// order.
    #[test]
    fn concurrent_changes_from_two_shards_all_persist_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        let store = Durable::new(
            Lines {
                path: path.clone(),
                writes: AtomicUsize::new(0),
            },
            Vec::new(),
        );
        let store_for_shards = store.clone();
        on_test_shards(2, move |shard| {
            let store = store_for_shards.clone();
            async move {
                // Pipelined: all queued before the first completes.
                let pushes: Vec<_> = (0..50u32)
                    .map(|i| {
                        let store = store.clone();
                        let n = shard as u32 * 1000 + i;
                        crate::rt::spawn_local(async move { store.update(push(n)).await.unwrap() })
                    })
                    .collect();
                for p in pushes {
                    p.await;
                }
            }
        });
        let on_disk = read(&path);
        assert_eq!(on_disk.len(), 100, "{on_disk:?}");
        assert_eq!(*store.snapshot(), on_disk);
        for shard in 0..2 {
            let mine: Vec<u32> = on_disk
                .iter()
                .copied()
                .filter(|n| n / 1000 == shard)
                .collect();
            assert_eq!(mine, (0..50).map(|i| shard * 1000 + i).collect::<Vec<_>>());
        }
        assert_eq!(store.persister().writes.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_failed_write_changes_nothing_and_a_no_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails.
        let path = dir.path().join("lines");
        std::fs::create_dir(&path).unwrap();
        let store = Durable::new(
            Lines {
                path,
                writes: AtomicUsize::new(0),
            },
            vec![1],
        );
        assert!(store.update_blocking(push(2)).is_err());
        assert_eq!(*store.snapshot(), vec![1]);
        let answer = store
            .update_blocking(|v: &Vec<u32>| Ok((None, v.len())))
            .unwrap();
        assert_eq!(answer, 1);
        assert_eq!(store.persister().writes.load(Ordering::Relaxed), 1);
    }

    /// The regression guard: a store write reached on a shard thread
    /// itself (not through the blocking pool) fails in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    fn a_blocking_update_on_a_shard_thread_panics_in_debug_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        let panicked = crate::runtime::run_local(move || async move {
            crate::blocking::forbid_here();
            let store = Durable::new(
                Lines {
                    path,
                    writes: AtomicUsize::new(0),
                },
                Vec::new(),
            );
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.update_blocking(push(1))
            }))
            .is_err()
        });
        assert!(panicked);
    }
}
