//! The clock seam: wall-clock milliseconds (record timestamps, retention,
//! segment age) and a monotonic instant (backoffs, sync intervals,
//! preallocation rates), read through one type so tests and the log
//! simulation can move time by hand instead of sleeping.
//!
//! [`Clock`] is a trait so other services (the group coordinator) can take
//! `Rc<dyn Clock>`. The log itself holds a [`LogClock`], an enum, so the
//! append path reads the system clock with a branch, never a virtual call.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

pub trait Clock {
    /// Milliseconds since the Unix epoch (Kafka timestamps).
    fn now_ms(&self) -> i64;
    /// A monotonic instant for measuring intervals.
    fn monotonic(&self) -> Instant;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::record::now_ms()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to. Both readings advance together
/// with [`ManualClock::advance`]; the wall clock can also be set (a clock
/// stepped back by NTP), which never moves the monotonic one.
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: Cell<i64>,
    origin: Instant,
    elapsed: Cell<Duration>,
    /// Tasks in [`ManualClock::sleep_until`]: woken at every advance.
    sleepers: RefCell<Vec<Waker>>,
}

impl ManualClock {
    pub fn new(wall_ms: i64) -> Self {
        Self {
            wall_ms: Cell::new(wall_ms),
            origin: Instant::now(),
            elapsed: Cell::new(Duration::ZERO),
            sleepers: RefCell::new(Vec::new()),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.elapsed.set(self.elapsed.get() + by);
        self.wall_ms
            .set(self.wall_ms.get().saturating_add(by.as_millis() as i64));
        let sleepers = std::mem::take(&mut *self.sleepers.borrow_mut());
        for w in sleepers {
            w.wake();
        }
    }

    /// Until the monotonic reading reaches `deadline`: a timer of simulated
    /// time, which fires when the clock is moved past it, never by itself.
    pub fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.monotonic() >= deadline {
                return Poll::Ready(());
            }
            self.sleepers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
    }

    pub fn set_wall_ms(&self, wall_ms: i64) {
        self.wall_ms.set(wall_ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.wall_ms.get()
    }

    fn monotonic(&self) -> Instant {
        self.origin + self.elapsed.get()
    }
}

/// The clock a partition log reads: the system's, or a shared manual one.
#[derive(Debug, Clone, Default)]
pub enum LogClock {
    #[default]
    System,
    Manual(Rc<ManualClock>),
}

impl LogClock {
    /// Wait for `event`, but no longer than `due` on this clock: a real
    /// timer, or one of simulated time that fires only when the manual
    /// clock is moved (so a simulation does not depend on real time).
    pub async fn wait_at_most(&self, due: Duration, event: impl Future<Output = ()>) {
        match self {
            LogClock::System => {
                // Never a zero timer: the caller loops on this.
                let due = due.max(Duration::from_millis(1));
                let _ = glommio::timer::timeout(due, async {
                    event.await;
                    Ok(())
                })
                .await;
            }
            LogClock::Manual(c) => {
                let deadline = c.monotonic() + due;
                futures_lite::future::or(event, c.sleep_until(deadline)).await
            }
        }
    }
}

impl Clock for LogClock {
    #[inline]
    fn now_ms(&self) -> i64 {
        match self {
            LogClock::System => SystemClock.now_ms(),
            LogClock::Manual(c) => c.now_ms(),
        }
    }

    #[inline]
    fn monotonic(&self) -> Instant {
        match self {
            LogClock::System => Instant::now(),
            LogClock::Manual(c) => c.monotonic(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        let t0 = clock.monotonic();
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now_ms(), 1_250);
        assert_eq!(clock.monotonic() - t0, Duration::from_millis(250));
        // A wall clock stepped back leaves the monotonic one alone.
        clock.set_wall_ms(500);
        assert_eq!(clock.now_ms(), 500);
        assert_eq!(clock.monotonic() - t0, Duration::from_millis(250));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
        let log = LogClock::default();
        let a = log.monotonic();
        assert!(log.monotonic() >= a);
    }
}
