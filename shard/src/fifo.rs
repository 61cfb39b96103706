//! A lock that is taken in the order it was asked for, for the places where
//! order is the point: a partition's appends (a producer pipelines several
//! requests to one partition and Kafka keeps them in request order) and the
//! controller's admin operations.
//!
//! Why not glommio's `Semaphore`: on release it wakes the first waiter but
//! leaves the unit free until that waiter runs, and a newer task that runs
//! first (the next pipelined request, already in the run queue) takes it.
//! Under a lock held across an await — a segment roll, write back-pressure
//! — that put a later produce request's batch before an earlier one's.
//! Here a release hands the lock straight to the first waiter.
//!
//! Single-threaded (one shard), no allocation when uncontended.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct FifoLock {
    held: Cell<bool>,
    next_id: Cell<u64>,
    /// Waiters in arrival order; only the front one can be granted.
    waiters: RefCell<VecDeque<Waiter>>,
}

struct Waiter {
    id: u64,
    waker: Option<Waker>,
    /// The lock was handed to this waiter (it is held on its behalf).
    granted: bool,
}

impl FifoLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait for the lock, behind everyone who asked before.
    pub fn lock(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            id: None,
        }
    }

    /// Is it held (or handed to a waiter that has not run yet)?
    pub fn is_locked(&self) -> bool {
        self.held.get()
    }

    fn release(&self) {
        assert!(self.held.get(), "released a lock that is not held");
        let mut waiters = self.waiters.borrow_mut();
        match waiters.front_mut() {
            Some(first) => {
                // Hand-off: it stays held, now on the first waiter's behalf.
                first.granted = true;
                if let Some(w) = first.waker.take() {
                    w.wake();
                }
            }
            None => self.held.set(false),
        }
    }
}

/// Holds the lock until dropped.
pub struct FifoGuard<'a> {
    lock: &'a FifoLock,
}

impl Drop for FifoGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// The future of [`FifoLock::lock`].
pub struct Acquire<'a> {
    lock: &'a FifoLock,
    /// Our place in the queue, once we had to wait.
    id: Option<u64>,
}

impl<'a> Future for Acquire<'a> {
    type Output = FifoGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FifoGuard<'a>> {
        let lock = self.lock;
        let mut waiters = lock.waiters.borrow_mut();
        match self.id {
            None if !lock.held.get() => {
                assert!(waiters.is_empty(), "free lock with waiters");
                lock.held.set(true);
                Poll::Ready(FifoGuard { lock })
            }
            None => {
                let id = lock.next_id.get();
                lock.next_id.set(id + 1);
                waiters.push_back(Waiter {
                    id,
                    waker: Some(cx.waker().clone()),
                    granted: false,
                });
                self.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                let first = waiters.front_mut().expect("a waiting acquire is queued");
                if first.id == id && first.granted {
                    waiters.pop_front();
                    self.id = None; // the guard owns the lock now
                    return Poll::Ready(FifoGuard { lock });
                }
                let me = waiters
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

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        // Given up while queued (a cancelled request): leave the queue, and
        // if the lock had already been handed to us, pass it on.
        let Some(id) = self.id else { return };
        let granted = {
            let mut waiters = self.lock.waiters.borrow_mut();
            let at = waiters
                .iter()
                .position(|w| w.id == id)
                .expect("a waiting acquire is queued");
            waiters.remove(at).expect("found above").granted
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
    use std::rc::Rc;
    use std::time::Duration;

    async fn tick() {
        glommio::timer::sleep(Duration::from_micros(1)).await;
    }

    /// The produce pattern. The lock is held across an await (a roll) and B
    /// waits. When it is released, a task that was already queued — the
    /// shard's inbox, or a connection's reader — runs before B and starts
    /// the next request, C, which asks for the lock. `take(i)` is task i's
    /// use of the lock; returns the order in which tasks got it.
    async fn handover<G, F>(hold: G, take: impl Fn(u32) -> F) -> Vec<u32>
    where
        F: Future<Output = ()> + 'static,
    {
        let b = crate::rt::spawn_local(take(1));
        tick().await; // B waits now
        let (go, went) = futures::channel::oneshot::channel::<()>();
        let c = take(2);
        let spawner = crate::rt::spawn_local(async move {
            let _ = went.await;
            crate::rt::spawn_local(c).await;
        });
        let _ = go.send(()); // the spawner is queued ...
        drop(hold); // ... before B is woken
        b.await;
        spawner.await;
        ORDER.with(|o| o.take())
    }

    thread_local!(static ORDER: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) });

    fn got(i: u32) {
        ORDER.with(|o| o.borrow_mut().push(i));
    }

    #[test]
    fn waiters_get_the_lock_in_arrival_order() {
        let order = run_local(|| async {
            let lock = Rc::new(FifoLock::new());
            let first = lock.lock().await;
            handover(first, |i| {
                let lock = lock.clone();
                async move {
                    let _g = lock.lock().await;
                    got(i);
                    tick().await; // held across an await, as a roll does
                }
            })
            .await
        });
        assert_eq!(order, vec![1, 2]);
    }

    /// The control: glommio's Semaphore lets C overtake B in the same
    /// scenario, which is why this lock exists.
    #[test]
    fn glommio_semaphore_lets_a_newcomer_overtake() {
        let order = run_local(|| async {
            let sem = Rc::new(glommio::sync::Semaphore::new(1));
            let first = sem.acquire_permit(1).await.unwrap();
            handover(first, |i| {
                let sem = sem.clone();
                async move {
                    let _p = sem.acquire_permit(1).await.unwrap();
                    got(i);
                    tick().await;
                }
            })
            .await
        });
        assert_eq!(
            order,
            vec![2, 1],
            "glommio's Semaphore became fair: FifoLock may go"
        );
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue_and_passes_a_granted_lock_on() {
        run_local(|| async {
            let lock = Rc::new(FifoLock::new());
            let first = lock.lock().await;
            // Queued, then dropped before being granted.
            let mut queued = Box::pin(lock.lock());
            assert!(futures::poll!(queued.as_mut()).is_pending());
            drop(queued);
            // Queued, granted by the release, then dropped before running.
            let mut granted = Box::pin(lock.lock());
            assert!(futures::poll!(granted.as_mut()).is_pending());
            drop(first);
            assert!(lock.is_locked(), "handed to the queued waiter");
            drop(granted);
            assert!(!lock.is_locked(), "passed on: nobody else waits");
            let _again = lock.lock().await;
        });
    }

    #[test]
    fn uncontended_lock_and_unlock() {
        run_local(|| async {
            let lock = FifoLock::new();
            for _ in 0..3 {
                let g = lock.lock().await;
                assert!(lock.is_locked());
                drop(g);
                assert!(!lock.is_locked());
            }
        });
    }
}
