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
    waiters: Vec<Waker>,
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
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified {
        let generation = self.state.borrow().generation;
        Notified {
            state: self.state.clone(),
            generation,
            registered: None,
        }
    }
}

pub struct Notified {
    state: Rc<RefCell<State>>,
    generation: u64,
    /// The waker this future put in the list of its generation, if any.
    registered: Option<Waker>,
}

impl Future for Notified {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation {
            return Poll::Ready(());
        }
        // Registered once per waker: a scan of the list for it instead
        // would cost O(waiters) per poll, and a signal that a thousand
        // partitions wait on made that quadratic (issue 13's profile).
        if self
            .registered
            .as_ref()
            .is_none_or(|w| !w.will_wake(cx.waker()))
        {
            st.waiters.push(cx.waker().clone());
            drop(st);
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
