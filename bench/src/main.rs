//! shardline-bench: a load generator speaking the Kafka protocol directly
//! (pre-encoded record batches, pipelined requests, pinned threads) for any
//! Kafka-compatible broker.

mod args;
mod churn;
mod cluster;
mod conn;
mod consume;
mod histogram;
mod limits;
mod modes;
mod payload;
mod proc_stats;
mod produce;
mod rate;
mod report;
mod run;
mod soak;
mod soak_report;
mod txn;

use clap::Parser;

use args::{Cli, Command};
use modes::Mode;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mode, a) = match cli.cmd {
        Command::Limits(l) => return limits::run(&l),
        Command::Soak(s) => return soak::run(&s),
        Command::Produce(a) => (Mode::Produce, a),
        Command::Consume(a) => (Mode::Consume, a),
        Command::E2e(a) => (Mode::E2e, a),
    };
    let report = modes::run(mode, &a)?;
    report.print(a.json);
    Ok(())
}
