//! The shard layer of Shardline: one glommio executor per core, the
//! partition log each shard owns, and cross-shard messaging.
//!
//! Nothing here knows the Kafka wire protocol beyond the record-batch
//! format the log stores; the broker crate builds on these pieces.
//! The broker and tuning crates reach the executor only through [`rt`]
//! (they do not depend on glommio).

pub mod blocking;
pub mod fifo;
pub mod foreign;
pub mod io_probe;
pub mod log;
pub mod mesh;
/// The record formats live in their own crate (`shard/record`) so the CLI
/// and the bench can share them without pulling in glommio; the re-export
/// keeps `shard::record::…` paths working.
pub use shardline_record as record;
pub mod rt;
pub mod runtime;
pub mod signal;
pub mod task;
pub mod testing;
pub mod time;
pub mod wake;
