//! `shardline metadata export DATA_DIR`: print the committed cluster
//! metadata (topics, partitions, configs, producer-id block) of a data
//! directory as JSON, read from its metadata log offline. Read-only: safe
//! beside a running broker (it shows what was committed when it read).
//! The JSON is the format of the metadata file older versions kept; put in
//! a data dir without a metadata log, a broker starts its log from it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::metadata::internal;

#[derive(Args, Debug)]
pub struct MetadataArgs {
    #[command(subcommand)]
    command: MetadataCommand,
}

#[derive(Subcommand, Debug)]
enum MetadataCommand {
    /// Print the committed metadata of a data directory as JSON.
    Export {
        /// The broker's data_dir.
        data_dir: PathBuf,
    },
}

pub fn run(args: MetadataArgs) -> anyhow::Result<()> {
    let MetadataCommand::Export { data_dir } = args.command;
    let dir = internal::metadata_log_dir(&data_dir);
    let state = crate::quorum::read_committed(&dir)
        .with_context(|| format!("reading the metadata log in {}", dir.display()))?
        .with_context(|| format!("{} holds no metadata log", data_dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}
