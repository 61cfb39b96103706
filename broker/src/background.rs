//! Per-shard background work, off the request path: retention (and, for
//! compacted topics, cleaning). One partition at a time, yielding between
//! them so a shard with many partitions never stalls its requests.

use std::rc::Rc;
use std::time::Duration;

use crate::shard_state::ShardState;

pub async fn run(state: Rc<ShardState>) {
    let interval = Duration::from_millis(state.config.log_retention_check_interval_ms.max(100));
    loop {
        glommio::timer::sleep(interval).await;
        for ((topic, partition), log) in state.local_logs() {
            if let Err(e) = log.enforce_retention().await {
                tracing::warn!("retention of {topic}-{partition}: {e}");
            }
            glommio::yield_if_needed().await;
        }
    }
}
