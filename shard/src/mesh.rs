//! Cross-shard messaging: run a closure on another shard and await its result,
//! the way Seastar's `smp::submit_to` / Redpanda's `invoke_on` do.
//!
//! Each shard owns an inbox (a thread-safe unbounded queue) drained by one
//! task on its executor. A message is a boxed closure that builds a *local*
//! (non-Send) future on the target shard; only its inputs and its result
//! cross threads. glommio wakes a task from a foreign thread through its
//! notifier, so a reply on a `oneshot` wakes the caller's shard directly.
//! Nothing is shared between shards but these queues.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
/// A unit of work sent to a shard: given that shard's context, build a future.
pub type RemoteTask<C> = Box<dyn FnOnce(Rc<C>) -> LocalFuture + Send>;

/// The shard ended (shutdown) before answering.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shard {0} is not running")]
pub struct ShardGone(pub usize);

/// Handles to every shard's inbox; cheap to clone and `Send`.
pub struct Mesh<C> {
    inboxes: Vec<mpsc::UnboundedSender<RemoteTask<C>>>,
}

impl<C> Clone for Mesh<C> {
    fn clone(&self) -> Self {
        Self {
            inboxes: self.inboxes.clone(),
        }
    }
}

/// The receiving end of one shard's inbox; give it to [`Inbox::serve`] on that shard.
pub struct Inbox<C> {
    rx: mpsc::UnboundedReceiver<RemoteTask<C>>,
}

impl<C: 'static> Mesh<C> {
    /// Build a mesh of `shards` inboxes; the `i`-th inbox belongs to shard `i`.
    pub fn new(shards: usize) -> (Self, Vec<Inbox<C>>) {
        let (inboxes, receivers) = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded();
                (tx, Inbox { rx })
            })
            .unzip();
        (Self { inboxes }, receivers)
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Run `work` on `shard` with that shard's context and return its output.
    /// The caller must not use this to call its own shard (use the context
    /// directly); doing so still works but costs a queue round trip.
    pub async fn invoke_on<R, F, Fut>(&self, shard: usize, work: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task: RemoteTask<C> = Box::new(move |ctx| {
            Box::pin(async move {
                let out = work(ctx).await;
                // The caller may have given up (e.g. a dropped fetch wait).
                let _ = tx.send(out);
            })
        });
        self.inboxes[shard]
            .unbounded_send(task)
            .map_err(|_| ShardGone(shard))?;
        rx.await.map_err(|_| ShardGone(shard))
    }

    /// Close every inbox so that the serving loops end (shutdown).
    pub fn close(&self) {
        for inbox in &self.inboxes {
            inbox.close_channel();
        }
    }
}

impl<C: 'static> Inbox<C> {
    /// Drain the inbox forever, running each task as its own local task so a
    /// slow one (a long-poll wait) does not hold up the next.
    pub async fn serve(mut self, ctx: Rc<C>) {
        while let Some(task) = self.rx.next().await {
            glommio::spawn_local(task(ctx.clone())).detach();
        }
    }
}
