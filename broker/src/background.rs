//! Per-shard background work, off the request path: retention, cleaning
//! of compacted topics, and the expiry of idle producer ids. One partition at a time, yielding between them so a
//! shard with many partitions never stalls its requests.

use std::rc::Rc;
use std::time::Duration;

use crate::shard_state::ShardState;

use shard::record::now_ms;

pub async fn run(state: Rc<ShardState>) {
    let interval = Duration::from_millis(state.config.log_retention_check_interval_ms.max(100));
    loop {
        shard::rt::sleep(interval).await;
        for ((topic, partition), log) in state.partitions.local_logs() {
            let config = log.config();
            if config.cleanup_compact {
                // Compaction applies retention itself for compact,delete.
                match log.compact(now_ms()).await {
                    Ok(stats) if !stats.skipped => {
                        tracing::info!("compacted {topic}-{partition}: {stats:?}")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("compacting {topic}-{partition}: {e}"),
                }
            } else if let Err(e) = log.enforce_retention().await {
                tracing::warn!("retention of {topic}-{partition}: {e}");
            }
            shard::rt::yield_if_needed().await;
        }
        // The group log is compacted like any compacted topic.
        if let Some(log) = state.groups.log() {
            if let Err(e) = log.compact(now_ms()).await {
                tracing::warn!("compacting the group log: {e}");
            }
        }
    }
}

/// Every `producer_id_expiration_check_interval_ms`, each partition of this
/// shard forgets the producer ids idle for `producer_id_expiration_ms`
/// (Kafka's `producer.id.expiration.*`).
pub async fn expire_producers(state: Rc<ShardState>) {
    let interval =
        Duration::from_millis(state.config.producer_id_expiration_check_interval_ms.max(1) as u64);
    loop {
        shard::rt::sleep(interval).await;
        let after = state.config.producer_id_expiration_ms;
        let mut expired = 0;
        for ((topic, partition), log) in state.partitions.local_logs() {
            let n = log.expire_producers(now_ms(), after);
            if n > 0 {
                tracing::debug!("{topic}-{partition}: {n} idle producer ids expired");
            }
            expired += n;
            shard::rt::yield_if_needed().await;
        }
        if expired > 0 {
            tracing::info!("{expired} idle producer ids expired from this shard's partitions");
        }
    }
}
