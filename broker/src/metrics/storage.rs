//! The data directory's space and the storage faults, read at scrape time
//! from the atomics the disk monitor and the logs update
//! (`shard::log::health`): the shards pay one relaxed atomic operation per
//! fault and take no lock.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use shard::log::health::HEALTH;

/// The data directory's space and the storage faults.
#[derive(Debug)]
pub struct StorageCollector;

impl Collector for StorageCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        if let Some(space) = HEALTH.space() {
            let space_gauges = [
                (
                    "shardline_log_dir_total_bytes",
                    "Size of the filesystem holding the data directory",
                    space.total_bytes,
                ),
                (
                    "shardline_log_dir_free_bytes",
                    "Bytes available to the broker on that filesystem (statvfs f_bavail)",
                    space.free_bytes,
                ),
                (
                    "shardline_log_dir_min_free_bytes",
                    "Free-space floor below which produce is refused",
                    space.min_free_bytes,
                ),
            ];
            for (name, help, v) in space_gauges {
                super::gauge(&mut e, name, help, v as i64)?;
            }
        }
        super::gauge(
            &mut e,
            "shardline_log_dir_writes_refused",
            "1 while free space is below the floor and produce is refused",
            HEALTH.refusing_writes() as i64,
        )?;
        super::counter(
            &mut e,
            "shardline_produce_refused_low_disk",
            "Partition writes refused because free space was below the floor",
            HEALTH.writes_refused(),
        )?;
        super::gauge(
            &mut e,
            "shardline_storage_offline_partitions",
            "Partitions whose last write failed and that refuse writes until they recover",
            HEALTH.offline_partitions(),
        )?;
        super::counter(
            &mut e,
            "shardline_storage_errors",
            "Failed log writes and syncs, failed recoveries and failed metadata writes",
            HEALTH.storage_errors(),
        )?;
        super::gauge(
            &mut e,
            "shardline_disk_reserve_present",
            "1 while the disk reserve (ballast file) is in place",
            shard::log::reserve::present() as i64,
        )
    }
}
