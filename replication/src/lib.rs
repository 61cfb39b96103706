//! Shardline's replication pipeline (`DESIGN.md` beside this crate): Kafka's
//! replication protocol on the cluster's control plane.
//!
//! * [`progress`]: a leader's view of its followers: their log ends, when
//!   each was last caught up, the high watermark and the ISR changes to
//!   propose. Pure (time comes in), so it is tested without a network.
//! * [`leader`]: the partitions a shard leads, each log's replicated bound
//!   kept at its progress' high watermark.
//! * [`fetcher`]: the follower side, one fetcher per (leader, shard):
//!   truncation with OffsetForLeaderEpoch, then Fetch and follower appends.
//! * [`conn`]: the follower's connection to its leader, on the shard.
//! * [`throttle`]: replication quotas for catching-up replicas (KIP-73).
//! * [`selector`]: KIP-392, the replica a consumer should read from.
//! * [`stats`]: the followers' lag, for the broker's metrics.

pub mod conn;
pub mod fetcher;
pub mod leader;
pub mod progress;
pub mod selector;
pub mod stats;
pub mod throttle;

pub use fetcher::{Fetchers, TopicPartition};
pub use leader::{Leaders, Leadership};
pub use progress::{FetchOutcome, IsrChange, LeaderProgress};
