//! The watchdog of one connection: closes it when it has been idle for
//! `connections_max_idle_ms` (Kafka's `connections.max.idle.ms`), or when
//! the client sent part of a request and then stalled for
//! `request_read_timeout_ms`.
//!
//! It runs beside the connection as its own task and only looks at
//! counters the read and write paths bump (no clock read per request). To
//! close, it shuts the socket down (`shutdown(2)`, which does not block):
//! the pending read returns end-of-stream and the connection ends through
//! its normal path, so nothing has to re-poll the read future (see
//! `shard::wake`). A check runs every quarter of the shorter bound, so a
//! connection is closed between 1 and 1.25 times its bound.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use super::frame::ReadProgress;

/// What the write side reports (and the read side while it handles a
/// request itself).
#[derive(Debug, Default)]
pub struct WriteProgress {
    /// Replies written so far.
    pub replies: Cell<u64>,
    /// Places handling a request or writing its reply right now (the
    /// reader and the writer each add one around their own work): while
    /// it is above zero the connection is not idle, e.g. in a long poll.
    pub busy: Cell<u32>,
}

impl WriteProgress {
    /// Mark busy until the guard is dropped.
    pub fn busy(&self) -> BusyGuard<'_> {
        self.busy.set(self.busy.get() + 1);
        BusyGuard(self)
    }
}

pub struct BusyGuard<'a>(&'a WriteProgress);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let n = self.0.busy.get();
        assert!(n > 0, "busy count went below zero");
        self.0.busy.set(n - 1);
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// None: never close for idleness.
    pub idle: Option<Duration>,
    pub stall: Duration,
}

impl Bounds {
    pub fn from_config(config: &crate::config::BrokerConfig) -> Self {
        Self {
            idle: u64::try_from(config.connections_max_idle_ms)
                .ok()
                .map(Duration::from_millis),
            stall: Duration::from_millis(config.request_read_timeout_ms),
        }
    }

    fn period(&self) -> Duration {
        let shortest = self.idle.map_or(self.stall, |i| i.min(self.stall));
        (shortest / 4).max(Duration::from_millis(25))
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Idle(Duration),
    Stalled(Duration),
}

/// The decision, apart from timers and sockets so it can be tested alone.
#[derive(Debug)]
struct Judge {
    bounds: Bounds,
    last: (u64, u64),
    quiet: Duration,
}

impl Judge {
    fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            last: (0, 0),
            quiet: Duration::ZERO,
        }
    }

    /// One check, `elapsed` after the previous one.
    fn check(
        &mut self,
        read: &ReadProgress,
        write: &WriteProgress,
        elapsed: Duration,
    ) -> Option<Verdict> {
        let now = (read.bytes.get(), write.replies.get());
        if now != self.last || write.busy.get() > 0 {
            self.last = now;
            self.quiet = Duration::ZERO;
            return None;
        }
        self.quiet += elapsed;
        if read.in_frame.get() {
            return (self.quiet >= self.bounds.stall).then_some(Verdict::Stalled(self.quiet));
        }
        match self.bounds.idle {
            Some(idle) if self.quiet >= idle => Some(Verdict::Idle(self.quiet)),
            _ => None,
        }
    }
}

/// Watch one connection until it is closed for a reason above. Cancel the
/// task (drop its handle) before the socket is closed, so `fd` is never a
/// number reused by another file.
pub async fn watch(
    fd: RawFd,
    peer: SocketAddr,
    bounds: Bounds,
    read: Rc<ReadProgress>,
    write: Rc<WriteProgress>,
) {
    let period = bounds.period();
    let mut judge = Judge::new(bounds);
    loop {
        shard::rt::sleep(period).await;
        let Some(verdict) = judge.check(&read, &write, period) else {
            continue;
        };
        match verdict {
            Verdict::Idle(d) => tracing::debug!(
                "closing connection from {peer}: idle for {} ms (connections_max_idle_ms)",
                d.as_millis()
            ),
            Verdict::Stalled(d) => tracing::warn!(
                "closing connection from {peer}: sent part of a request, then nothing for {} ms \
                 (request_read_timeout_ms)",
                d.as_millis()
            ),
        }
        // SAFETY: `fd` is this connection's socket and still open (the
        // task is cancelled before the socket is closed); shutdown(2) only
        // fails if it is already shut down, which is fine.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(250);

    fn bounds() -> Bounds {
        Bounds {
            idle: Some(Duration::from_secs(1)),
            stall: Duration::from_millis(500),
        }
    }

    #[test]
    fn an_idle_connection_is_closed_after_the_idle_bound() {
        let (r, w) = (ReadProgress::default(), WriteProgress::default());
        let mut j = Judge::new(bounds());
        for _ in 0..3 {
            assert_eq!(j.check(&r, &w, TICK), None);
        }
        assert_eq!(
            j.check(&r, &w, TICK),
            Some(Verdict::Idle(Duration::from_secs(1)))
        );
    }

    #[test]
    fn traffic_and_work_in_flight_keep_it_open() {
        let (r, w) = (ReadProgress::default(), WriteProgress::default());
        let mut j = Judge::new(bounds());
        for i in 0..20 {
            if i % 3 == 0 {
                r.bytes.set(r.bytes.get() + 10);
            } else if i % 3 == 1 {
                w.replies.set(w.replies.get() + 1);
            }
            assert_eq!(j.check(&r, &w, TICK), None);
        }
        let _busy = w.busy(); // a long-poll fetch: nothing moves, yet not idle
        for _ in 0..20 {
            assert_eq!(j.check(&r, &w, TICK), None);
        }
    }

    #[test]
    fn a_stalled_partial_frame_is_closed_after_the_stall_bound() {
        let (r, w) = (ReadProgress::default(), WriteProgress::default());
        let mut j = Judge::new(bounds());
        r.bytes.set(2);
        r.in_frame.set(true);
        assert_eq!(j.check(&r, &w, TICK), None, "bytes just arrived");
        assert_eq!(j.check(&r, &w, TICK), None);
        assert_eq!(
            j.check(&r, &w, TICK),
            Some(Verdict::Stalled(Duration::from_millis(500)))
        );
    }

    #[test]
    fn never_idle_when_disabled_but_stalls_still_count() {
        let b = Bounds {
            idle: None,
            stall: Duration::from_millis(500),
        };
        assert_eq!(b.period(), Duration::from_millis(125));
        let (r, w) = (ReadProgress::default(), WriteProgress::default());
        let mut j = Judge::new(b);
        for _ in 0..100 {
            assert_eq!(j.check(&r, &w, TICK), None);
        }
        r.bytes.set(1);
        r.in_frame.set(true);
        assert_eq!(j.check(&r, &w, TICK), None);
        assert_eq!(j.check(&r, &w, TICK), None);
        assert!(matches!(j.check(&r, &w, TICK), Some(Verdict::Stalled(_))));
    }
}
