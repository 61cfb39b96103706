//! `shardline tune`, `shardline iotune`, and the broker's use of an iotune
//! file at start. The work is in the `tuning` crate; this is the glue that
//! turns broker config into the plain values it takes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use tuning::iotune::{self, IotuneOptions};

use crate::config::BrokerConfig;

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Broker config file (for data_dir, shards, io_memory_bytes).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory whose disk is checked [default: from config].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards the broker will run [default: from config, else one per core].
    #[arg(long)]
    shards: Option<usize>,
    /// Change what can be changed (sysctl/sysfs writes; needs root).
    #[arg(long)]
    apply: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Read /proc and /sys under this directory instead of / (testing).
    #[arg(long, hide = true, default_value = "/")]
    root: PathBuf,
}

#[derive(clap::Args)]
pub struct IotuneArgs {
    /// Data directory to measure (a scratch file is written there and removed).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where to write the results [default: DATA_DIR/iotune.toml].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds per test; 22 tests run [default: 1].
    #[arg(long, default_value_t = 1.0)]
    duration_per_test: f64,
    /// Very short tests on a small scratch file (seconds in total; rough numbers).
    #[arg(long)]
    quick: bool,
}

/// Exits with 1 when a check fails (warnings do not).
pub fn tune(args: TuneArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(path) => BrokerConfig::from_toml_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = args.shards {
        cfg.shards_setting = Some(s);
    }
    let cfg = cfg.finish()?;
    let mut host = tuning::Host::live();
    host.root = args.root;
    let needs = tuning::Needs::new(
        cfg.shards,
        cfg.io_memory_bytes as u64,
        &cfg.data_dir,
        shard::runtime::available_cores(),
    );
    let report = tuning::tune(&host, &needs, args.apply);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if !report.fit {
        std::process::exit(1);
    }
    Ok(())
}

pub fn iotune(args: IotuneArgs) -> Result<()> {
    if !(args.duration_per_test > 0.0 && args.duration_per_test <= 600.0) {
        bail!("--duration-per-test must be between 0 and 600 seconds");
    }
    let opts = IotuneOptions {
        out: args.out,
        duration_per_test: Duration::from_secs_f64(args.duration_per_test),
        quick: args.quick,
        io_memory_bytes: BrokerConfig::default().io_memory_bytes,
        ..IotuneOptions::new(&args.data_dir)
    };
    eprintln!(
        "iotune: measuring {} ({} tests of {:.2} s)...",
        args.data_dir.display(),
        iotune::SIZES.len() * iotune::QUEUE_DEPTHS.len() + 2,
        if opts.quick {
            0.05
        } else {
            args.duration_per_test
        }
    );
    let result = iotune::run(&opts)?;
    print!("{}", result.table());
    println!("wrote {}", opts.out_path().display());
    Ok(())
}

/// Fill the flusher settings the config leaves unset from the iotune file
/// (`iotune_file`, else `DATA_DIR/iotune.toml` if it exists) and log where
/// each came from. A malformed file, or a configured one that is missing,
/// stops the broker.
pub fn apply_iotune(cfg: &mut BrokerConfig) -> Result<()> {
    let (path, explicit) = match &cfg.iotune_file {
        Some(p) => (p.clone(), true),
        None => (cfg.data_dir.join("iotune.toml"), false),
    };
    let from_file = if explicit || path.exists() {
        Some(iotune::read_settings(&path)?)
    } else {
        None
    };
    let overridden = [
        ("log_write_queue_depth", cfg.log_write_queue_depth.is_some()),
        ("log_write_chunk_bytes", cfg.log_write_chunk_bytes.is_some()),
        (
            "log_group_commit_window_us",
            cfg.log_group_commit_window_us.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect::<Vec<_>>();
    if let Some((s, _)) = &from_file {
        cfg.log_write_queue_depth.get_or_insert(s.write_queue_depth);
        cfg.log_write_chunk_bytes.get_or_insert(s.write_chunk_bytes);
        cfg.log_group_commit_window_us
            .get_or_insert(s.group_commit_window_us);
    }
    let s = cfg.io_settings();
    let values = format!(
        "write_queue_depth={}, write_chunk_bytes={}, group_commit_window_us={}",
        s.write_queue_depth, s.write_chunk_bytes, s.group_commit_window_us
    );
    let note = if overridden.is_empty() {
        String::new()
    } else {
        format!("; set in config: {}", overridden.join(", "))
    };
    match from_file {
        Some((_, device)) => tracing::info!(
            "iotune: {values} (from {}{}{note})",
            path.display(),
            device.map(|d| format!(", device {d}")).unwrap_or_default()
        ),
        None => tracing::info!(
            "iotune: no {}; using {values} (defaults{note}); run `shardline iotune --data-dir {}` to measure this device",
            path.display(),
            cfg.data_dir.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write_file(dir: &Path, queue_depth: &str) -> PathBuf {
        let path = dir.join("iotune.toml");
        std::fs::write(
            &path,
            format!("[settings]\nwrite_queue_depth = {queue_depth}\nwrite_chunk_bytes = 131072\ngroup_commit_window_us = 120\n[device]\nname = \"vda\"\n"),
        )
        .unwrap();
        path
    }

    #[test]
    fn the_file_fills_unset_keys_and_config_keys_win() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "8");
        let mut cfg = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            log_group_commit_window_us: Some(0),
            ..Default::default()
        };
        apply_iotune(&mut cfg).unwrap();
        let s = cfg.io_settings();
        assert_eq!((s.write_queue_depth, s.write_chunk_bytes), (8, 131072));
        assert_eq!(s.group_commit_window_us, 0, "the config key wins");
        let lc = crate::metadata::topic_config::log_config(&Default::default(), &cfg);
        assert_eq!((lc.write_queue_depth, lc.write_chunk_bytes), (8, 131072));
    }

    #[test]
    fn without_a_file_the_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = BrokerConfig {
            data_dir: dir.path().join("fresh"),
            ..Default::default()
        };
        apply_iotune(&mut cfg).unwrap();
        let s = cfg.io_settings();
        assert_eq!(
            (
                s.write_queue_depth,
                s.write_chunk_bytes,
                s.group_commit_window_us
            ),
            (4, 1 << 20, 0)
        );
        // A configured file that does not exist is an error, not a silent default.
        cfg.iotune_file = Some(dir.path().join("missing.toml"));
        assert!(apply_iotune(&mut cfg).is_err());
    }

    #[test]
    fn a_malformed_file_refuses_start_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "0");
        let mut cfg = BrokerConfig {
            iotune_file: Some(path.clone()),
            ..Default::default()
        };
        let err = format!("{:#}", apply_iotune(&mut cfg).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("write_queue_depth"), "{err}");
    }

    #[test]
    fn config_keys_are_validated() {
        let cfg: BrokerConfig = toml::from_str("log_write_chunk_bytes = 1000").unwrap();
        let err = cfg.finish().unwrap_err().to_string();
        assert!(err.contains("log_write_chunk_bytes"), "{err}");
        let cfg: BrokerConfig =
            toml::from_str("log_write_queue_depth = 16\niotune_file = \"/x/iotune.toml\"").unwrap();
        assert_eq!(cfg.finish().unwrap().io_settings().write_queue_depth, 16);
    }
}
