//! raft-rs logs through `slog`; this drain hands its records to `tracing`,
//! which the rest of the broker logs with, so one `RUST_LOG` filters both
//! (target `raft`).

use std::fmt::Write as _;

use slog::{Drain, Level, OwnedKVList, Record, KV};

struct ToTracing;

/// Appends `key=value` pairs to a line.
struct Line(String);

impl slog::Serializer for Line {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for ToTracing {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line = Line(format!("{}", record.msg()));
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        let line = line.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{line}"),
            Level::Warning => tracing::warn!(target: "raft", "{line}"),
            Level::Info => tracing::info!(target: "raft", "{line}"),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{line}"),
        }
        Ok(())
    }
}

/// The logger raft-rs gets for node `id`.
pub fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(ToTracing.fuse(), slog::o!("node" => id))
}
