//! How much file space a partition reserves ahead of its writes
//! (`preallocate`), in proportion to how fast it writes.
//!
//! Reserving a fixed 32 MiB per partition made 2,000 lightly used
//! partitions tie up 62 GiB. Instead a partition starts with a small step
//! and doubles it each time it fills its last reservation within
//! [`FAST`], up to [`MAX_STEP`] (and never past the segment size); each
//! [`QUIET`] it takes to fill one halves it again. A reservation thus lasts
//! about one to ten seconds of the partition's writes: a hot partition still
//! extends its file a few times a second at most, a cold one holds
//! [`MIN_STEP`] beyond its data.

use std::time::{Duration, Instant};

/// First reservation of a partition, and the least any reservation is.
pub const MIN_STEP: u64 = 64 << 10;
/// The most reserved at once (what every partition reserved before).
pub const MAX_STEP: u64 = 32 << 20;
/// Filling a reservation faster than this doubles the next one.
pub const FAST: Duration = Duration::from_secs(1);
/// Each this long taken to fill a reservation halves the next one.
pub const QUIET: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preallocation {
    step: u64,
    last_grant: Option<Instant>,
}

impl Default for Preallocation {
    fn default() -> Self {
        Self {
            step: MIN_STEP,
            last_grant: None,
        }
    }
}

impl Preallocation {
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Where to reserve up to, now that a write will end at `end`, beyond
    /// what is reserved; adapts the step to how long the last one lasted.
    pub fn next_target(&mut self, end: u64, segment_bytes: u64, now: Instant) -> u64 {
        let max = MAX_STEP
            .min(segment_bytes.next_power_of_two())
            .max(MIN_STEP);
        if let Some(last) = self.last_grant {
            let took = now.saturating_duration_since(last);
            if took < FAST {
                self.step = (self.step * 2).min(max);
            } else {
                let halvings = (took.as_secs() / QUIET.as_secs()).min(32) as u32;
                self.step = (self.step >> halvings).max(MIN_STEP);
            }
        }
        self.last_grant = Some(now);
        assert!(self.step.is_power_of_two() && self.step >= MIN_STEP);
        let target = end.div_ceil(self.step) * self.step;
        // Never reserve past the segment size (a segment may still end a
        // little beyond it: the batch that crosses it is kept whole).
        target.min(segment_bytes).max(end)
    }

    /// A new segment of the same partition keeps the partition's pace.
    pub fn carry_over(&self) -> Self {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cold_partition_reserves_the_minimum() {
        let mut p = Preallocation::default();
        let t0 = Instant::now();
        assert_eq!(p.next_target(300, 1 << 30, t0), MIN_STEP);
        // Filled a minute later: stays at the minimum.
        assert_eq!(
            p.next_target(MIN_STEP + 10, 1 << 30, t0 + Duration::from_secs(60)),
            2 * MIN_STEP
        );
        assert_eq!(p.step(), MIN_STEP);
    }

    #[test]
    fn a_hot_partition_grows_to_the_cap_and_shrinks_when_quiet() {
        let mut p = Preallocation::default();
        let mut now = Instant::now();
        let mut end = 0;
        let mut grants = 0;
        while p.step() < MAX_STEP {
            end = p.next_target(end + 1, 1 << 30, now);
            now += Duration::from_millis(10);
            grants += 1;
            assert!(grants < 20, "never reached the cap");
        }
        // 64 KiB doubling to 32 MiB: 9 doublings.
        assert_eq!(grants, 10);
        let before = p.step();
        p.next_target(end + 1, 1 << 30, now + Duration::from_secs(5));
        assert_eq!(p.step(), before, "1 to 10 s per reservation keeps the step");
        p.next_target(end + 1, 1 << 30, now + Duration::from_secs(5 + 35));
        assert_eq!(p.step(), before >> 3, "35 s quiet: three halvings");
        p.next_target(end + 1, 1 << 30, now + Duration::from_secs(3600));
        assert_eq!(p.step(), MIN_STEP);
    }

    #[test]
    fn never_past_the_segment_size() {
        let mut p = Preallocation::default();
        let seg = 100_000;
        let now = Instant::now();
        assert_eq!(p.next_target(70_000, seg, now), seg);
        for i in 0..20 {
            assert!(p.next_target(90_000, seg, now + Duration::from_millis(i)) <= seg);
        }
        assert!(p.step() <= seg.next_power_of_two());
        // A batch that crosses the segment size is still covered.
        assert_eq!(p.next_target(120_000, seg, now), 120_000);
    }
}
