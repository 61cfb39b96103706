//! Quota enforcement around the handlers (KIP-13, KIP-124, KIP-219).
//!
//! Only used when a quota is configured (`Quotas::enabled`). Produce
//! records the request's bytes, Fetch the response's, every request its
//! handler time; the longest throttle time goes into the response's
//! `throttle_time_ms`, and the reply is wrapped in [`Reply::Throttled`]:
//! the connection sends it at once and then reads nothing from the client
//! for that long (KIP-219's channel muting), which is what slows clients
//! that ignore `throttle_time_ms`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest, ResponseKind};

use super::{fetch, fetch_encode, Reply, RequestContext};
use crate::quotas::entity::QuotaKey;
use crate::quotas::quota_user;
use crate::shard_state::ShardState;

/// APIs outside request quotas, as in Kafka: a client must always be able
/// to learn versions and authenticate.
pub fn exempt(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    )
}

/// A future that adds up the time spent inside its `poll`: handler time,
/// not time waiting for disks, other shards or long polls (Kafka counts
/// request-handler thread time, not latency).
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> Timed<F> {
    pub fn new(inner: F) -> Self {
        Timed {
            inner: Box::pin(inner),
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let start = Instant::now();
        let out = self.inner.as_mut().poll(cx);
        self.spent += start.elapsed();
        out.map(|v| (v, self.spent))
    }
}

/// Record handler time for `request_percentage`: percent of one core per
/// second, so 1 s of handler time counts 100.
pub fn record_request_time(state: &ShardState, ctx: &RequestContext, spent: Duration) -> Duration {
    if exempt(ctx.api_key) {
        return Duration::ZERO;
    }
    let percent = spent.as_secs_f64() * 100.0;
    state.quotas.record(
        QuotaKey::RequestPercentage,
        quota_user(&ctx.principal),
        &ctx.client_id,
        percent,
    )
}

/// Record a Produce request's size against `producer_byte_rate`.
pub fn record_produce(state: &ShardState, ctx: &RequestContext, bytes: usize) -> Duration {
    state.quotas.record(
        QuotaKey::ProducerByteRate,
        quota_user(&ctx.principal),
        &ctx.client_id,
        bytes as f64,
    )
}

/// Wrap `reply` so the connection mutes itself for `throttle`.
pub fn throttled(reply: Reply, throttle: Duration) -> Reply {
    if throttle.is_zero() {
        reply
    } else {
        Reply::Throttled(Box::new(reply), throttle)
    }
}

pub fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Fetch under quotas: cap the response at what the consumer quota allows
/// in one window (so a response can ever fit, as Kafka does), count the
/// response bytes, and patch the throttle time into the encoded header.
pub async fn fetch(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    mut req: FetchRequest,
    correlation_id: i32,
) -> Reply {
    let user = quota_user(&ctx.principal);
    if let Some(cap) = state.quotas.fetch_cap(user, &ctx.client_id) {
        let cap = cap.min(i32::MAX as usize) as i32;
        req.max_bytes = req.max_bytes.min(cap);
        for t in &mut req.topics {
            for p in &mut t.partitions {
                p.partition_max_bytes = p.partition_max_bytes.min(cap);
            }
        }
    }
    let (mut parts, spent) = Timed::new(fetch::handle(state, ctx, req, correlation_id)).await;
    let size: usize = parts.iter().map(Bytes::len).sum();
    let by_bytes = state.quotas.record(
        QuotaKey::ConsumerByteRate,
        user,
        &ctx.client_id,
        size as f64,
    );
    let throttle = by_bytes.max(record_request_time(state, ctx, spent));
    if !throttle.is_zero() {
        fetch_encode::set_throttle_time(&mut parts, ctx.version, millis(throttle));
    }
    throttled(Reply::Parts(parts), throttle)
}

/// Set `throttle_time_ms` in a response that has it (the codec leaves it
/// out of versions without the field).
pub fn set_throttle_time(resp: &mut ResponseKind, ms: i32) {
    macro_rules! set {
        ($($v:ident),* $(,)?) => {
            match resp {
                $(ResponseKind::$v(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    set!(
        Produce,
        ListOffsets,
        Metadata,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        InitProducerId,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        DeleteRecords,
        DescribeCluster,
        DescribeLogDirs,
        OffsetForLeaderEpoch,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        OffsetDelete,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        DescribeClientQuotas,
        AlterClientQuotas,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn timed_counts_only_time_inside_poll() {
        let fut = async {
            std::thread::sleep(Duration::from_millis(20));
            7
        };
        let (v, spent) = futures::executor::block_on(Timed::new(fut));
        assert_eq!(v, 7);
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
    }

    #[test]
    fn throttle_time_lands_in_the_response() {
        let mut r = ResponseKind::Produce(ProduceResponse::default());
        set_throttle_time(&mut r, 1234);
        let ResponseKind::Produce(p) = r else {
            unreachable!()
        };
        assert_eq!(p.throttle_time_ms, 1234);
        assert!(exempt(ApiKey::ApiVersions));
        assert!(!exempt(ApiKey::Produce));
        assert!(matches!(
            throttled(Reply::None, Duration::ZERO),
            Reply::None
        ));
        assert!(matches!(
            throttled(Reply::None, Duration::from_millis(5)),
            Reply::Throttled(_, _)
        ));
    }
}
