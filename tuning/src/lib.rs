//! Host tuning for Shardline.
//!
//! * `shardline tune` ([`tune`]): checks the host the broker runs on —
//!   io_uring, locked-memory and open-file limits, CPU governor, THP,
//!   swappiness, the data disk's scheduler and merging, IRQ placement,
//!   fs.aio-max-nr — explains each finding and, with `--apply`, fixes what
//!   a file write can fix.
//! * `shardline iotune` ([`iotune::run`]): measures the data directory's
//!   device through the broker's own direct-I/O path and writes
//!   `iotune.toml`, whose settings the broker's flusher uses.
//!
//! The broker passes its configuration in as plain values ([`Needs`]), so
//! this crate does not depend on the broker.

pub mod checks;
pub mod host;
pub mod iotune;
pub mod irq;
pub mod report;

#[cfg(test)]
mod checks_tests;

pub use checks::{Finding, Status, CHECK_NAMES};
pub use host::{Host, Limit, Needs};
pub use report::{tune, Change, TuneReport};
