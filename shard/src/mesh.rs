//! Cross-shard messaging: send a typed request to another shard and await
//! its typed reply, the way Seastar's `smp::submit_to` / Redpanda's
//! `invoke_on` do, but with values instead of closures, so a message could
//! as well cross the network.
//!
//! Each shard owns an inbox, a **bounded** queue drained by one task on its
//! executor that runs each request as its own task ([`Service::handle`]);
//! the reply goes back on a `oneshot`, which wakes the caller's shard
//! directly (glommio wakes a task from a foreign thread through its
//! notifier). Nothing is shared between shards but these queues.
//!
//! Back-pressure: a sender whose target inbox is full waits until the
//! target has taken a message; nothing is dropped. The inbox never waits
//! itself (it hands each request to a new task), so a full queue cannot
//! deadlock two shards that call each other.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::{Sink, StreamExt};

use crate::fifo::FifoLock;

/// Inbox depth when none is configured.
pub const DEFAULT_QUEUE_DEPTH: usize = 1024;

/// What a shard does with the requests it receives.
pub trait Service: 'static {
    type Request: Send + 'static;
    type Reply: Send + 'static;
    /// Answer one request on this shard (each runs as its own task, so a
    /// slow one, like a long-poll wait, does not hold up the next).
    fn handle(
        self: Rc<Self>,
        request: Self::Request,
    ) -> impl Future<Output = Self::Reply> + 'static;
}

/// The shard ended (shutdown) before answering.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shard {0} is not running")]
pub struct ShardGone(pub usize);

struct Envelope<S: Service> {
    request: S::Request,
    reply: oneshot::Sender<S::Reply>,
}

/// Handles to every shard's inbox: cheap to clone and `Send`; each shard
/// turns its copy into a [`LocalMesh`] to send with.
pub struct Mesh<S: Service> {
    inboxes: Vec<mpsc::Sender<Envelope<S>>>,
}

impl<S: Service> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            inboxes: self.inboxes.clone(),
        }
    }
}

/// The receiving end of one shard's inbox; give it to [`Inbox::serve`] on that shard.
pub struct Inbox<S: Service> {
    rx: mpsc::Receiver<Envelope<S>>,
}

impl<S: Service> Mesh<S> {
    /// Build a mesh of `shards` inboxes; the `i`-th inbox belongs to shard
    /// `i`. An inbox holds at most `depth` messages plus one per sending
    /// [`LocalMesh`] (the channel's guaranteed slot per sender).
    pub fn new(shards: usize, depth: usize) -> (Self, Vec<Inbox<S>>) {
        assert!(depth > 0, "a cross-shard queue holds at least one message");
        let (inboxes, receivers) = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(depth);
                (tx, Inbox { rx })
            })
            .unzip();
        (Self { inboxes }, receivers)
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// This shard's sending side.
    pub fn local(&self) -> LocalMesh<S> {
        LocalMesh {
            senders: self
                .inboxes
                .iter()
                .map(|tx| RefCell::new(tx.clone()))
                .collect(),
            turns: self.inboxes.iter().map(|_| FifoLock::new()).collect(),
        }
    }
}

/// One shard's senders to every inbox (not `Sync`: it stays on its shard).
pub struct LocalMesh<S: Service> {
    senders: Vec<RefCell<mpsc::Sender<Envelope<S>>>>,
    /// One sending task at a time per target, in arrival order: a channel
    /// sender remembers one waiting task only, so the others queue here.
    turns: Vec<FifoLock>,
}

impl<S: Service> LocalMesh<S> {
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Send `request` to `shard` (waiting while its inbox is full) and
    /// await the reply. A caller on `shard` itself should handle the
    /// request directly; this still works but costs a queue round trip.
    pub async fn call(&self, shard: usize, request: S::Request) -> Result<S::Reply, ShardGone> {
        let (tx, rx) = oneshot::channel();
        {
            let _turn = self.turns[shard].lock().await;
            // Each borrow lasts one poll, never across an await.
            let sender = &self.senders[shard];
            poll_fn(|cx| sender.borrow_mut().poll_ready(cx))
                .await
                .map_err(|_| ShardGone(shard))?;
            let envelope = Envelope { request, reply: tx };
            std::pin::Pin::new(&mut *sender.borrow_mut())
                .start_send(envelope)
                .map_err(|_| ShardGone(shard))?;
        }
        // The caller may give up on the reply (e.g. a dropped fetch wait);
        // the request still runs to its end on the target shard.
        rx.await.map_err(|_| ShardGone(shard))
    }
}

impl<S: Service> Inbox<S> {
    /// Drain the inbox forever, running each request as its own local task.
    pub async fn serve(mut self, service: Rc<S>) {
        while let Some(Envelope { request, reply }) = self.rx.next().await {
            let service = service.clone();
            crate::rt::spawn_detached(async move {
                let out = service.handle(request).await;
                // The caller may have given up (e.g. a dropped fetch wait).
                let _ = reply.send(out);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;

    struct Doubler {
        handled: Cell<u32>,
    }

    impl Service for Doubler {
        type Request = u32;
        type Reply = u32;
        fn handle(self: Rc<Self>, n: u32) -> impl Future<Output = u32> + 'static {
            self.handled.set(self.handled.get() + 1);
            async move { n * 2 }
        }
    }

    fn doubler() -> Rc<Doubler> {
        Rc::new(Doubler {
            handled: Cell::new(0),
        })
    }

    #[test]
    fn a_typed_request_gets_its_reply() {
        let out = crate::runtime::run_local(|| async {
            let (mesh, mut inboxes) = Mesh::<Doubler>::new(1, 4);
            crate::rt::spawn_local(inboxes.remove(0).serve(doubler())).detach();
            let local = mesh.local();
            let a = local.call(0, 21).await.unwrap();
            let b = local.call(0, 5).await.unwrap();
            (a, b)
        });
        assert_eq!(out, (42, 10));
    }

    #[test]
    fn a_full_inbox_makes_senders_wait_and_drops_nothing() {
        let (queued_while_full, answers) = crate::runtime::run_local(|| async {
            const DEPTH: usize = 2;
            let (mesh, mut inboxes) = Mesh::<Doubler>::new(1, DEPTH);
            let inbox = inboxes.remove(0);
            let local = Rc::new(mesh.local());
            let calls: Vec<_> = (0..20u32)
                .map(|n| {
                    let local = local.clone();
                    crate::rt::spawn_local(async move { local.call(0, n).await.unwrap() })
                })
                .collect();
            // Nobody serves the inbox yet: the senders fill it and wait.
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let mut rx = inbox.rx;
            let mut queued = Vec::new();
            while let Ok(envelope) = rx.try_recv() {
                queued.push(envelope);
            }
            let queued_while_full = queued.len();
            // Answer those, then serve the rest: every call completes.
            for Envelope { request, reply } in queued {
                let _ = reply.send(request * 2);
            }
            crate::rt::spawn_local(Inbox { rx }.serve(doubler())).detach();
            let mut answers = Vec::new();
            for call in calls {
                answers.push(call.await);
            }
            (queued_while_full, answers)
        });
        // `DEPTH` plus one slot per sender (the mesh's own and the local one).
        assert!(
            queued_while_full <= 2 + 2,
            "{queued_while_full} messages queued in an inbox of depth 2"
        );
        assert!(queued_while_full >= 2);
        assert_eq!(answers, (0..20).map(|n| n * 2).collect::<Vec<_>>());
    }
}
