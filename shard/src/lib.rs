//! The shard layer of Shardline: one glommio executor per core, the
//! partition log each shard owns, and cross-shard messaging.
//!
//! Nothing here knows the Kafka wire protocol beyond the record-batch
//! format the log stores; the broker crate builds on these pieces.

pub mod fifo;
pub mod foreign;
pub mod log;
pub mod mesh;
pub mod record;
pub mod runtime;
pub mod signal;
pub mod wake;
