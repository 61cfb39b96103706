//! Shardline's replication pipeline (`DESIGN.md` beside this crate): Kafka's
//! replication protocol on the cluster's control plane.
//!
//! * [`progress`]: a leader's view of its followers: their log ends, when
//!   each was last caught up, the high watermark and the ISR changes to
//!   propose. Pure (time comes in), so it is tested without a network.

pub mod progress;

pub use progress::{FetchOutcome, IsrChange, LeaderProgress};
