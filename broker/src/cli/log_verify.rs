//! `shardline log verify DATA_DIR [--topic T] [--partition P]`: check the
//! partition logs in a data directory offline (see `shard::log::verify`) and
//! list every damaged range. Exit status: 0 no damage, 1 damage found, 2 the
//! check could not run (no such directory, nothing matched the filter).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use shard::log::verify::{verify_partition, SegmentReport};

#[derive(Args, Debug)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Scan every segment's batch lengths, CRC32C and offsets, and the
    /// offset indexes; report damaged ranges per file. Read-only: safe
    /// beside a running broker.
    Verify {
        /// The broker's data_dir.
        data_dir: PathBuf,
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition (with --topic).
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
    },
}

/// Exit status of `shardline log ...` (it does not fail through `Result`:
/// "damage found" and "could not check" need different codes).
pub fn run(args: LogArgs) -> i32 {
    let LogCommand::Verify {
        data_dir,
        topic,
        partition,
    } = args.command;
    match verify(&data_dir, topic.as_deref(), partition) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(e) => {
            eprintln!("shardline log verify: {e:#}");
            2
        }
    }
}

/// The partition directories (`<topic>-<partition>`) under `data_dir`, and
/// the group logs (`__consumer_offsets-<shard>`) under its internal
/// directory, which are partition logs too.
fn partition_dirs(
    data_dir: &Path,
    topic: Option<&str>,
    partition: Option<i32>,
) -> anyhow::Result<Vec<(String, i32, PathBuf)>> {
    let entries = std::fs::read_dir(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data_dir.display()))?;
    let internal = data_dir.join(crate::metadata::internal::INTERNAL_DIR);
    let internal_entries = std::fs::read_dir(&internal).into_iter().flatten();
    let mut found = Vec::new();
    for e in entries.chain(internal_entries) {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((t, p)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(p) = p.parse::<i32>() else { continue };
        if topic.is_some_and(|want| want != t) || partition.is_some_and(|want| want != p) {
            continue;
        }
        found.push((t.to_string(), p, e.path()));
    }
    found.sort();
    if found.is_empty() {
        anyhow::bail!(
            "no partition logs{} under {}",
            match (topic, partition) {
                (Some(t), Some(p)) => format!(" of {t}-{p}"),
                (Some(t), None) => format!(" of topic {t}"),
                _ => String::new(),
            },
            data_dir.display()
        );
    }
    Ok(found)
}

/// Check and print; `Ok(true)` when damage was found.
fn verify(data_dir: &Path, topic: Option<&str>, partition: Option<i32>) -> anyhow::Result<bool> {
    let dirs = partition_dirs(data_dir, topic, partition)?;
    let (mut segments, mut bytes, mut batches, mut damaged) = (0u64, 0u64, 0u64, 0u64);
    for (t, p, dir) in &dirs {
        let reports = verify_partition(dir)
            .map_err(|e| anyhow::anyhow!("checking {}: {e}", dir.display()))?;
        for r in &reports {
            segments += 1;
            bytes += r.size;
            batches += r.batches;
            print_report(&format!("{t}-{p}"), r);
            damaged += r.is_damaged() as u64;
        }
    }
    println!(
        "checked {segments} segment(s) of {} partition(s): {bytes} bytes, {batches} batches; {}",
        dirs.len(),
        if damaged == 0 {
            "no damage".to_string()
        } else {
            format!("{damaged} damaged segment(s)")
        }
    );
    Ok(damaged > 0)
}

fn print_report(partition: &str, r: &SegmentReport) {
    let path = r.path.display();
    if r.vanished {
        println!("skipped {path}: removed while checking (retention or compaction)");
        return;
    }
    let segment_end = r.next_segment.unwrap_or(r.next_offset);
    for d in &r.damage {
        let (resume_pos, resume_offset) = d.resume.expect("damage with a resume point");
        println!(
            "DAMAGED {partition} {path}: byte {} to {resume_pos}: {}; after offset {}, \
             resumes at offset {resume_offset} (byte {resume_pos})",
            d.pos,
            d.reason,
            d.first_offset - 1,
        );
    }
    if let Some((pos, why)) = &r.tail {
        if r.tail_is_unfinished_write {
            println!(
                "note {partition} {path}: {} bytes after offset {} at byte {pos} are not a \
                 whole batch ({why}): a write in progress, or a torn write the broker cuts \
                 at start",
                r.size - pos,
                r.next_offset - 1
            );
        } else {
            println!(
                "DAMAGED {partition} {path}: byte {pos} to {}: {why}; after offset {}, nothing \
                 valid follows in this segment (offsets {} to {} unreadable)",
                r.size,
                r.next_offset - 1,
                r.next_offset,
                segment_end - 1
            );
        }
    }
    for problem in &r.index_problems {
        println!(
            "DAMAGED {partition} {}: {problem}",
            r.path.with_extension("index").display()
        );
    }
}
