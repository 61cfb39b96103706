//! The one rule for combining glommio I/O with anything else in one task:
//! an I/O future is polled only when *it* asked to be.
//!
//! Why: glommio 0.9's I/O futures that wait through `Source::collect_rw`
//! (accept, connect, DMA reads and writes, ...) push a fresh clone of the
//! task's waker onto the source's waiter list on every poll, and the list
//! is only drained when the I/O completes. A task's waker reference count
//! is an `i16`, so a pending accept that a sibling timer re-polls every
//! 50 ms overflows it after ~27 minutes and the executor panics ("Waker
//! invariant broken"). Anything that re-polls a pending I/O future without
//! a wake from it — `select` with a ticking timer, `join` over futures that
//! complete one by one — leaks the same way.
//!
//! [`PollOnWake`] cuts that link: the inner future sees a waker of its own
//! (one `Arc`, cloned as often as glommio likes without touching the task's
//! count) and is polled again only after that waker fired. Polls caused by
//! anything else return `Pending` at once. [`timeout`] is the way our code
//! bounds I/O by time; long-lived loops (accept) run as their own tasks, so
//! only their source ever wakes them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::future::{select, Either};
use futures::task::AtomicWaker;

/// The waker handed to the inner future: records that the inner future was
/// woken and passes the wake on to the task that owns the wrapper.
#[derive(Default)]
struct WakeFlag {
    woken: AtomicBool,
    outer: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

/// A future that polls `inner` only on its first poll and after `inner`'s
/// own waker fired; see the module docs for why.
pub struct PollOnWake<F> {
    inner: Pin<Box<F>>,
    flag: Arc<WakeFlag>,
    waker: Waker,
    started: bool,
}

impl<F: Future> PollOnWake<F> {
    pub fn new(inner: F) -> Self {
        let flag = Arc::new(WakeFlag::default());
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(flag.clone()),
            flag,
            started: false,
        }
    }
}

impl<F: Future> Future for PollOnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Stores a clone only when the task's waker changed (will_wake).
        self.flag.outer.register(cx.waker());
        let woken = self.flag.woken.swap(false, Ordering::AcqRel);
        if self.started && !woken {
            return Poll::Pending;
        }
        self.started = true;
        let this = &mut *self;
        let mut inner_cx = Context::from_waker(&this.waker);
        this.inner.as_mut().poll(&mut inner_cx)
    }
}

/// `fut` finished in time (`Ok`) or `after` passed first (`Err(Elapsed)`).
/// `fut` is wrapped in [`PollOnWake`], so the timer never re-polls it.
pub async fn timeout<F: Future>(after: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let fut = PollOnWake::new(fut);
    let timer = glommio::timer::sleep(after);
    futures::pin_mut!(fut, timer);
    match select(fut, timer).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(_) => Err(Elapsed(after)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct Elapsed(pub Duration);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::run_local;
    use futures::future::select;
    use glommio::net::TcpListener;

    /// More re-polls than glommio's i16 waker count survives.
    const REPOLLS: usize = 40_000;

    /// `select(accept, ticker)` where the ticker fires REPOLLS times, each
    /// time re-polling the still-pending accept; returns how many ticks ran.
    async fn accept_beside_a_ticker(wrap: bool) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ticks = std::cell::Cell::new(0);
        let ticker = async {
            for _ in 0..REPOLLS {
                glommio::timer::sleep(Duration::from_micros(1)).await;
                ticks.set(ticks.get() + 1);
            }
        };
        futures::pin_mut!(ticker);
        let outcome = if wrap {
            let accept = PollOnWake::new(listener.accept());
            futures::pin_mut!(accept);
            matches!(select(accept, ticker).await, Either::Right(_))
        } else {
            let accept = listener.accept();
            futures::pin_mut!(accept);
            matches!(select(accept, ticker).await, Either::Right(_))
        };
        assert!(
            outcome,
            "nothing connected, so the ticker must finish first"
        );
        ticks.get()
    }

    #[test]
    fn a_pending_accept_survives_40k_repolls_when_wrapped() {
        let ticks = run_local(|| async {
            let ticks = accept_beside_a_ticker(true).await;
            // The executor still works afterwards: a real accept completes.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let accept = crate::rt::spawn_local(PollOnWake::new(async move {
                listener.accept().await.map(|_| ())
            }));
            let _client = glommio::net::TcpStream::connect(addr).await.unwrap();
            timeout(Duration::from_secs(5), accept)
                .await
                .expect("accepted in time")
                .unwrap();
            ticks
        });
        assert_eq!(ticks, REPOLLS);
    }

    /// The control: without the wrapper the same loop breaks glommio — it
    /// panics with "Waker invariant broken" and the executor thread then
    /// hangs, as the broker did after 27 minutes. So it runs in a child
    /// process (this test binary, running `control_child` below) that is
    /// killed after a while. If a glommio upgrade fixes the bug this test
    /// fails, and the wrapper may be retired.
    #[test]
    fn without_the_wrapper_glommio_breaks() {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "wake::tests::control_child",
                "--ignored",
                "--nocapture",
            ])
            .env("SHARDLINE_WAKE_CONTROL", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut text = String::new();
        // The panic is printed before the hang: stop as soon as it is.
        while !text.contains("Waker invariant broken") && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                text = std::fs::read_to_string(log.path()).unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            text = std::fs::read_to_string(log.path()).unwrap();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            text.contains("Waker invariant broken"),
            "glommio survived {REPOLLS} re-polls of a pending accept:\n{text}"
        );
    }

    /// Only run by `without_the_wrapper_glommio_breaks`, in a child process.
    #[test]
    #[ignore]
    fn control_child() {
        if std::env::var_os("SHARDLINE_WAKE_CONTROL").is_none() {
            return;
        }
        let (io_memory, _) = crate::runtime::fit_io_memory(1, 1 << 20);
        let _ = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(io_memory)
            .spawn(|| async { accept_beside_a_ticker(false).await })
            .expect("start executor")
            .join();
    }

    #[test]
    fn timeout_returns_the_output_or_elapsed() {
        run_local(|| async {
            let fast = timeout(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(fast, Ok(7));
            let slow = timeout(
                Duration::from_millis(5),
                glommio::timer::sleep(Duration::from_secs(5)),
            )
            .await;
            assert_eq!(slow, Err(Elapsed(Duration::from_millis(5))));
        });
    }
}
