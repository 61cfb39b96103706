//! A FIFO lock for tasks on different shards: [`crate::fifo::FifoLock`]'s
//! hand-off rule, for state every shard shares (the broker's ACL, quota
//! and credential stores).
//!
//! Waiting never blocks a thread: a task that has to wait parks and is
//! woken (across threads, as glommio allows) when the lock is handed to it.
//! The std `Mutex` inside only guards the queue for a few instructions; it
//! is never held across an await or any I/O.
//!
//! The guard is owned (`Send`), so the holder can pass it to the blocking
//! pool with the work it protects and release it there, after the work:
//! a request cancelled while its write is in the pool cannot let the next
//! writer start before that write is done.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct SharedFifoLock {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    held: bool,
    next_id: u64,
    /// Waiters in arrival order; only the front one can be granted.
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    waker: Option<Waker>,
    /// The lock was handed to this waiter (it is held on its behalf).
    granted: bool,
}

impl SharedFifoLock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the queue is borrowed; a poisoned one is
        // still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for the lock, behind everyone who asked before (on any thread).
    pub fn lock(self: &Arc<Self>) -> SharedAcquire {
        SharedAcquire {
            lock: self.clone(),
            id: None,
        }
    }

    /// Is it held (or handed to a waiter that has not run yet)?
    pub fn is_locked(&self) -> bool {
        self.state().held
    }

    fn release(&self) {
        let wake = {
            let mut state = self.state();
            assert!(state.held, "released a lock that is not held");
            match state.waiters.front_mut() {
                Some(first) => {
                    // Hand-off: it stays held, now on the first waiter's behalf.
                    first.granted = true;
                    first.waker.take()
                }
                None => {
                    state.held = false;
                    None
                }
            }
        };
        // Woken outside the queue's mutex: a wake may run the executor's
        // foreign-wake path.
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// Holds the lock until dropped; may be sent to another thread.
pub struct SharedFifoGuard {
    lock: Arc<SharedFifoLock>,
}

impl Drop for SharedFifoGuard {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// The future of [`SharedFifoLock::lock`].
pub struct SharedAcquire {
    lock: Arc<SharedFifoLock>,
    /// Our place in the queue, once we had to wait.
    id: Option<u64>,
}

impl Future for SharedAcquire {
    type Output = SharedFifoGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SharedFifoGuard> {
        let lock = self.lock.clone();
        let mut state = lock.state();
        match self.id {
            None if !state.held => {
                assert!(state.waiters.is_empty(), "free lock with waiters");
                state.held = true;
                Poll::Ready(SharedFifoGuard { lock: lock.clone() })
            }
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.waiters.push_back(Waiter {
                    id,
                    waker: Some(cx.waker().clone()),
                    granted: false,
                });
                self.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                let first = state.waiters.front().expect("a waiting acquire is queued");
                if first.id == id && first.granted {
                    state.waiters.pop_front();
                    drop(state);
                    self.id = None; // the guard owns the lock now
                    return Poll::Ready(SharedFifoGuard { lock });
                }
                let me = state
                    .waiters
                    .iter_mut()
                    .find(|w| w.id == id)
                    .expect("a waiting acquire is queued");
                if !me.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    me.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for SharedAcquire {
    fn drop(&mut self) {
        // Given up while queued (a cancelled request): leave the queue, and
        // if the lock had already been handed to us, pass it on.
        let Some(id) = self.id else { return };
        let granted = {
            let mut state = self.lock.state();
            let at = state
                .waiters
                .iter()
                .position(|w| w.id == id)
                .expect("a waiting acquire is queued");
            state.waiters.remove(at).expect("found above").granted
        };
        if granted {
            self.lock.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::run_local;
    use std::time::Duration;

    #[test]
    fn waiters_on_other_threads_get_the_lock_in_arrival_order() {
        let lock = SharedFifoLock::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = futures::executor::block_on(lock.lock());
        // Three threads queue one after another while the lock is held.
        let mut threads = Vec::new();
        for i in 0..3u32 {
            let (mine, order) = (lock.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                futures::executor::block_on(async {
                    let _g = mine.lock().await;
                    order.lock().unwrap().push(i);
                })
            }));
            // Wait until thread i is queued before starting the next.
            while lock.state().waiters.len() < i as usize + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(!lock.is_locked());
    }

    #[test]
    fn a_guard_released_on_another_thread_wakes_a_shard_task() {
        let got = run_local(|| async {
            let lock = SharedFifoLock::new();
            let held = lock.lock().await;
            let mut waiting = Box::pin(lock.lock());
            assert!(futures::poll!(waiting.as_mut()).is_pending());
            // The blocking pool releases it, as a store's write does.
            crate::blocking::run(move || drop(held)).await;
            let _g = waiting.await;
            lock.is_locked()
        });
        assert!(got);
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue_and_passes_a_granted_lock_on() {
        let lock = SharedFifoLock::new();
        futures::executor::block_on(async {
            let first = lock.lock().await;
            let mut queued = Box::pin(lock.lock());
            assert!(futures::poll!(queued.as_mut()).is_pending());
            drop(queued);
            let mut granted = Box::pin(lock.lock());
            assert!(futures::poll!(granted.as_mut()).is_pending());
            drop(first);
            assert!(lock.is_locked(), "handed to the queued waiter");
            drop(granted);
            assert!(!lock.is_locked(), "passed on: nobody else waits");
            let _again = lock.lock().await;
        });
    }
}
