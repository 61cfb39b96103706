//! Command line: subcommands, knobs, and parsers for durations, sizes and
//! counts with human suffixes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use shardline_record::Compression;

#[derive(Parser, Debug)]
#[command(
    name = "shardline-bench",
    version,
    about = "Load generator for Kafka-compatible brokers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Produce as fast as possible (or at --rate) and measure request latency
    Produce(RunArgs),
    /// Fetch a topic's partitions and measure throughput
    Consume(RunArgs),
    /// Produce and consume together; latency from send to arrival at the consumer
    E2e(RunArgs),
    /// Measure this host's loopback TCP and disk bandwidth and fsync latency
    Limits(LimitsArgs),
    /// Keep a broker busy for hours with idle long-lived connections and a
    /// trickle of traffic; check it keeps answering, loses nothing, and that
    /// its memory, CPU and descriptors stay flat
    Soak(SoakArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Broker to bootstrap from (host:port)
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic of the trickle (created with one partition if missing)
    #[arg(long, default_value = "shardline-soak")]
    pub topic: String,
    /// How long to run (e.g. 2h, 30m)
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub duration: Duration,
    /// Long-lived connections that only refresh metadata now and then
    #[arg(long, default_value_t = 100)]
    pub idle_connections: usize,
    /// How often each idle connection sends Metadata (Kafka clients: every
    /// 5 minutes, metadata.max.age.ms); keep it below the broker's
    /// connections_max_idle_ms or the broker rightly closes them
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub idle_refresh: Duration,
    /// Trickle: messages per second, produced with acks=all and consumed
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// Value size of each trickle message (at least 16)
    #[arg(long, default_value = "100", value_parser = parse_size)]
    pub message_size: usize,
    /// How often to sample the broker and probe it (ApiVersions and
    /// Metadata on a long-lived connection of its own)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// How often to also probe with a NEW connection (and once at the end).
    /// Keep it rare: every accepted connection resets the broker's accept
    /// path, which would hide a leak there (the executor's waker leak that
    /// stopped brokers after 27 minutes grew only while nobody connected)
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub connect_probe_every: Duration,
    /// A probe not answered within this long has failed
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Broker process to sample (RSS, CPU, descriptors, threads from /proc)
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the report (samples and verdict) as Markdown to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the report as one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    Earliest,
    Tail,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Broker to bootstrap from (host:port[,host:port...])
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "shardline-bench")]
    pub topic: String,
    /// Partitions to use (the first N); default: all the topic has
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Create the topic with --partitions partitions (default 1) if missing
    #[arg(long)]
    pub create_topic: bool,
    /// Value size of each message, e.g. 100, 1k, 1KiB
    #[arg(long, default_value = "100", value_parser = parse_size)]
    pub message_size: usize,
    /// Records per batch (one batch per partition per request); default: about 512 KiB of records
    #[arg(long)]
    pub batch_records: Option<usize>,
    /// Rate-limited mode only: a batch holds at most what arrives in this long
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Connections (one thread each); produce connections share partitions when more than partitions
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Produce requests in flight per connection
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// 0, 1 or all
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: i16,
    /// Codec of the produced batches
    #[arg(long, default_value = "none", value_parser = parse_codec)]
    pub compression: Compression,
    /// produce/e2e: a side connection creates and deletes a one-partition
    /// topic this many times a second (e.g. 5, 0.5) while producing; the
    /// report gives the cycles done and the produce p99.99 in that window
    #[arg(long, value_parser = parse_rate)]
    pub admin_churn: Option<f64>,
    /// segment.bytes of the topic --create-topic creates (and of the churned
    /// topics), e.g. 1MiB, to force frequent segment rolls
    #[arg(long, value_parser = parse_size)]
    pub segment_bytes: Option<usize>,
    /// produce: write in transactions as this transactional id (Kafka's
    /// transaction protocol version 1; one transactional producer per
    /// connection, `ID-0`, `ID-1`... when there are several); needs --acks
    /// all, and --txn-records and/or --txn-interval-ms. Produced counts
    /// committed records only; at most 5 requests in flight, as Kafka
    /// allows idempotent producers
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Records per transaction (over the connection's partitions), e.g. 1000, 10k
    #[arg(long, value_parser = parse_count)]
    pub txn_records: Option<u64>,
    /// Commit interval: a transaction commits once open this long (ms),
    /// or at --txn-records, whichever comes first
    #[arg(long)]
    pub txn_interval_ms: Option<u64>,
    /// transaction.timeout.ms given to InitProducerId
    #[arg(long, default_value_t = 60_000)]
    pub txn_timeout_ms: i32,
    /// Target messages per second (open loop, e.g. 100k); default: unthrottled
    #[arg(long, value_parser = parse_count)]
    pub rate: Option<u64>,
    /// Measured run time after warm-up (e.g. 10s, 500ms, 2m)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many messages in total (warm-up included) instead of --duration
    #[arg(long, value_parser = parse_count)]
    pub messages: Option<u64>,
    /// Excluded from throughput and latency figures
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// consume: where to start
    #[arg(long, value_enum, default_value_t = From::Earliest)]
    pub from: From,
    /// e2e: how long the consumer may take to catch up after producing stops
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Produce request timeout given to the broker
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: i32,
    /// Fetch max wait (ms): how long the broker may hold an empty fetch
    #[arg(long, default_value_t = 100)]
    pub fetch_wait_ms: i32,
    /// Pin worker threads to cores, from the last core down (failure is tolerated)
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub pin: bool,
    /// Print a progress line every second even when stderr is not a terminal
    #[arg(long)]
    pub progress: bool,
    /// Print one JSON object with every figure instead of the text report
    #[arg(long)]
    pub json: bool,
    /// Broker process to sample for CPU time and peak RSS (Linux /proc)
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Output of `limits --json`: also report throughput as % of the host limits
    #[arg(long)]
    pub limits_json: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct LimitsArgs {
    /// Directory for the disk test file (the broker's data disk)
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Length of each bandwidth test
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Most bytes the disk bandwidth test writes
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub disk_bytes: usize,
    #[arg(long, default_value_t = 200)]
    pub fsync_iterations: usize,
    #[arg(long)]
    pub json: bool,
}

/// `10s`, `500ms`, `2m`, `1h`, `1.5s`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("bad duration {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => bail!("bad duration unit {u:?} in {s:?}"),
    };
    if !secs.is_finite() || secs < 0.0 {
        bail!("bad duration {s:?}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Byte sizes: `100`, `1k`/`1kb`/`1KiB` (all 1024), `4m`, `1g`.
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| anyhow!("bad size {s:?}"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => bail!("bad size unit {u:?} in {s:?}"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("size {s:?} too large"))
}

/// Counts and rates: `20000`, `100k`, `2.5M`, `1G` (decimal).
pub fn parse_count(s: &str) -> Result<u64> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("bad count {s:?}"))?;
    if !n.is_finite() || n < 0.0 {
        bail!("bad count {s:?}");
    }
    Ok((n * mult).round() as u64)
}

pub fn parse_acks(s: &str) -> Result<i16> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => bail!("acks must be 0, 1 or all"),
    }
}

/// A positive rate per second, fractions allowed (`5`, `0.5`).
pub fn parse_rate(s: &str) -> Result<f64> {
    let r: f64 = s.trim().parse().map_err(|_| anyhow!("bad rate {s:?}"))?;
    if !r.is_finite() || r <= 0.0 {
        bail!("rate must be above 0, got {s:?}");
    }
    Ok(r)
}

/// A codec by its Kafka name.
pub fn parse_codec(s: &str) -> Result<Compression> {
    Compression::from_name(s)
        .ok_or_else(|| anyhow::anyhow!("compression must be none, gzip, snappy, lz4 or zstd"))
}

impl RunArgs {
    /// Records per batch: the flag, or about 512 KiB of records (well under
    /// the usual 1 MiB message.max.bytes), at most 10k records.
    pub fn batch_records(&self) -> usize {
        self.batch_records
            .unwrap_or((512 * 1024) / (self.message_size + 12))
            .clamp(
                1,
                if self.batch_records.is_some() {
                    usize::MAX
                } else {
                    10_000
                },
            )
    }

    /// The transactional settings, when --transactional-id is given.
    pub fn txn(&self) -> Result<Option<crate::txn::TxnCfg>> {
        let Some(id) = &self.transactional_id else {
            if self.txn_records.is_some() || self.txn_interval_ms.is_some() {
                bail!("--txn-records and --txn-interval-ms need --transactional-id");
            }
            return Ok(None);
        };
        if id.is_empty() {
            bail!("--transactional-id must not be empty");
        }
        if self.acks != -1 {
            bail!(
                "transactional producers are idempotent, which Kafka allows only with --acks all"
            );
        }
        if self.txn_records.is_none() && self.txn_interval_ms.is_none() {
            bail!("--transactional-id needs --txn-records N and/or --txn-interval-ms MS");
        }
        if self.txn_records == Some(0) || self.txn_interval_ms == Some(0) {
            bail!("--txn-records and --txn-interval-ms must be above 0");
        }
        Ok(Some(crate::txn::TxnCfg {
            transactional_id: id.clone(),
            txn_records: self.txn_records,
            interval: self.txn_interval_ms.map(Duration::from_millis),
            timeout_ms: self.txn_timeout_ms,
        }))
    }

    pub fn acks_name(&self) -> &'static str {
        match self.acks {
            0 => "0",
            1 => "1",
            _ => "all",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("4MB").unwrap(), 4 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("1.5k").is_err());
        assert_eq!(parse_count("20000").unwrap(), 20_000);
        assert_eq!(parse_count("100k").unwrap(), 100_000);
        assert_eq!(parse_count("2.5M").unwrap(), 2_500_000);
        assert!(parse_count("lots").is_err());
        assert_eq!(parse_acks("all").unwrap(), -1);
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn cli_parses_a_full_produce_line() {
        let cli = Cli::try_parse_from([
            "shardline-bench",
            "produce",
            "--bootstrap",
            "127.0.0.1:19092",
            "--message-size",
            "1k",
            "--acks",
            "all",
            "--compression",
            "lz4",
            "--rate",
            "50k",
            "--duration",
            "3s",
            "--pin",
            "false",
            "--json",
        ])
        .unwrap();
        let Command::Produce(a) = cli.cmd else {
            panic!("not produce")
        };
        assert_eq!(a.message_size, 1024);
        assert_eq!(a.acks, -1);
        assert_eq!(a.compression, Compression::Lz4);
        assert_eq!(a.rate, Some(50_000));
        assert_eq!(a.duration, Duration::from_secs(3));
        assert!(!a.pin && a.json);
        assert_eq!(a.warmup, Duration::from_secs(2));
        assert_eq!(a.batch_records(), 512 * 1024 / (1024 + 12));
        assert!(a.txn().unwrap().is_none());
    }

    fn produce_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["shardline-bench", "produce"];
        argv.extend_from_slice(extra);
        let Command::Produce(a) = Cli::try_parse_from(argv).unwrap().cmd else {
            panic!("not produce")
        };
        a
    }

    #[test]
    fn transactional_flags_are_checked_together() {
        let a = produce_args(&[
            "--transactional-id",
            "tx",
            "--txn-records",
            "10k",
            "--txn-interval-ms",
            "100",
            "--acks",
            "all",
        ]);
        let t = a.txn().unwrap().unwrap();
        assert_eq!(t.transactional_id, "tx");
        assert_eq!(t.txn_records, Some(10_000));
        assert_eq!(t.interval, Some(Duration::from_millis(100)));
        assert_eq!(t.timeout_ms, 60_000);
        assert_eq!(t.id_of(0, 1), "tx");
        assert_eq!(t.id_of(2, 3), "tx-2");
        // acks=all is required, and a way to end a transaction.
        assert!(
            produce_args(&["--transactional-id", "tx", "--txn-records", "10"])
                .txn()
                .is_err()
        );
        assert!(produce_args(&["--transactional-id", "tx", "--acks", "all"])
            .txn()
            .is_err());
        assert!(produce_args(&["--txn-records", "10"]).txn().is_err());
        assert!(produce_args(&[
            "--transactional-id",
            "tx",
            "--acks",
            "all",
            "--txn-records",
            "0"
        ])
        .txn()
        .is_err());
    }
}
