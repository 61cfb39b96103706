//! The partition log: segmented, append-only, direct I/O, CRC-checked.

pub mod compaction;
pub mod config;
pub mod direct_io;
mod disk;
pub mod epoch_cache;
pub mod error;
mod flusher;
mod follower;
pub mod health;
pub mod index;
mod load;
mod offsets;
pub mod open_files;
pub mod partition;
mod pending;
pub mod preallocate;
pub mod producer_state;
pub mod read_ahead;
mod reader;
mod recovery;
mod replica;
pub mod reserve;
mod retention;
pub mod segment;
pub mod tail_cache;
mod truncate;
mod txn;
pub mod txn_index;
pub mod txn_state;
pub mod verify;
pub mod wal;
pub mod walk;

pub use compaction::CompactionStats;
pub use config::{FlushMode, LogConfig};
pub use error::LogError;
pub use offsets::UNBOUNDED;
pub use partition::{AckLevel, AppendInfo, LogOffsets, PartitionLog};
pub use reader::ReadOutcome;
pub use replica::HighWatermarkWait;
pub use txn::{ActiveProducer, TxnMarker};
pub use txn_index::AbortedTxn;

#[cfg(test)]
mod flusher_tests;
#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod hwm_tests;
#[cfg(test)]
mod off_shard_tests;
#[cfg(test)]
mod read_ahead_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod segment_tests;
#[cfg(any(test, feature = "sim"))]
pub mod sim_disk;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timestamp_tests;
#[cfg(test)]
mod txn_tests;
