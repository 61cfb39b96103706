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
        }
    }
}

pub struct Notified {
    state: Rc<RefCell<State>>,
    generation: u64,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
