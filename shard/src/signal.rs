//! A shard-local "something changed" broadcast: waiters register and are all
//! woken by the next `notify_all`. Used for fetch long-polls (new data
//! appended) and for durability waiters. Single-threaded by construction.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    generation: u64,
    /// Wakers of the current generation; a dropped waiter empties its slot
    /// and leaves it in `free` for the next one to reuse.
    waiters: Vec<Option<Waker>>,
    free: Vec<usize>,
}

#[derive(Default, Clone)]
pub struct Signal {
    state: Rc<RefCell<State>>,
}

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wake everyone currently waiting.
    pub fn notify_all(&self) {
        let waiters = {
            let mut st = self.state.borrow_mut();
            st.generation += 1;
            st.free.clear();
            std::mem::take(&mut st.waiters)
        };
        for w in waiters.into_iter().flatten() {
            w.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified {
        let generation = self.state.borrow().generation;
        Notified {
            state: self.state.clone(),
            generation,
            slot: None,
        }
    }

    /// Slots in use or free in the current generation (for tests: waiters
    /// that give up must not make it grow).
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

pub struct Notified {
    state: Rc<RefCell<State>>,
    generation: u64,
    /// This future's slot in its generation's list, once polled.
    slot: Option<usize>,
}

impl Future for Notified {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation {
            drop(st);
            self.slot = None;
            return Poll::Ready(());
        }
        // One slot per future, replaced in place when the waker changes: a
        // scan of the list instead would cost O(waiters) per poll (a signal
        // that a thousand partitions wait on made that quadratic, issue
        // 13), and pushing a waker per poll or leaving the dropped ones
        // behind grew the list of a signal that is rarely notified (an
        // idle partition's fetch long-polls time out every few hundred
        // milliseconds) without bound, each waker keeping its task alive.
        match self.slot {
            Some(i) => {
                let slot = &mut st.waiters[i];
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            None => {
                let waker = Some(cx.waker().clone());
                let i = match st.free.pop() {
                    Some(i) => {
                        debug_assert!(st.waiters[i].is_none(), "a free slot is empty");
                        st.waiters[i] = waker;
                        i
                    }
                    None => {
                        st.waiters.push(waker);
                        st.waiters.len() - 1
                    }
                };
                drop(st);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let Some(i) = self.slot else { return };
        // Only a slot of the current generation is ours to free; an older
        // generation's list is gone. A borrow held elsewhere cannot be (the
        // signal never drops a waiter while borrowed), but if it were, the
        // slot would only wait for the next notify.
        if let Ok(mut st) = self.state.try_borrow_mut() {
            if st.generation == self.generation {
                debug_assert!(st.waiters[i].is_some(), "a held slot has a waker");
                st.waiters[i] = None;
                st.free.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(AtomicUsize);
    impl futures::task::ArcWake for Count {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(n: &mut Notified, waker: &Waker) -> Poll<()> {
        Pin::new(n).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn waiters_that_give_up_do_not_grow_the_list() {
        let signal = Signal::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = futures::task::waker(count.clone());
        let mut staying = signal.notified();
        assert!(poll(&mut staying, &waker).is_pending());
        // A long-poll that times out, ten thousand times, between notifies.
        for _ in 0..10_000 {
            let mut n = signal.notified();
            assert!(poll(&mut n, &waker).is_pending());
            assert!(poll(&mut n, &waker).is_pending(), "polled again");
        }
        assert_eq!(signal.slots(), 2, "one slot stays, one is reused");
        signal.notify_all();
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "only the live waiter");
        assert!(poll(&mut staying, &waker).is_ready());
        assert_eq!(signal.slots(), 0);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one_in_its_slot() {
        let signal = Signal::new();
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let mut n = signal.notified();
        assert!(poll(&mut n, &futures::task::waker(a.clone())).is_pending());
        assert!(poll(&mut n, &futures::task::waker(b.clone())).is_pending());
        assert_eq!(signal.slots(), 1);
        // A waiter of an older generation dropped late frees nothing new.
        let mut late = signal.notified();
        assert!(poll(&mut late, &futures::task::waker(a.clone())).is_pending());
        signal.notify_all();
        drop(late);
        assert_eq!(signal.slots(), 0);
        assert_eq!(
            (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)),
            (1, 1),
            "the replaced waker is not woken; the late waiter's is"
        );
        assert!(poll(&mut n, &futures::task::waker(b)).is_ready());
        // After a notify, a fresh waiter starts a new list.
        let mut next = signal.notified();
        assert!(poll(&mut next, &futures::task::waker(a)).is_pending());
        assert_eq!(signal.slots(), 1);
    }
}
