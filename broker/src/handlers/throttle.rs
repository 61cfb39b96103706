//! Quota enforcement around the handlers (KIP-13, KIP-124, KIP-219).
//!
//! Every request goes through a [`Meter`]; it only counts when a quota is
//! configured (`Quotas::enabled`, one relaxed atomic load per request), and
//! is inert otherwise: no clock read, nothing recorded, no wrapper around
//! the handler's future. Produce records the request's bytes, Fetch the
//! response's, every request its handler time; the longest throttle time
//! goes into the response's `throttle_time_ms`, and the reply is wrapped in
//! [`Reply::Throttled`]: the connection sends it at once and then reads
//! nothing from the client for that long (KIP-219's channel muting), which
//! is what slows clients that ignore `throttle_time_ms`.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest, ResponseKind};

use super::{Reply, RequestContext};
use crate::quotas::entity::QuotaKey;
use crate::quotas::{quota_user, Quotas};

/// APIs outside request quotas, as in Kafka: a client must always be able
/// to learn versions and authenticate.
pub fn exempt(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    )
}

/// Await `fut`, adding the time spent inside its `poll` to `spent`: handler
/// time, not time waiting for disks, other shards or long polls (Kafka
/// counts request-handler thread time, not latency).
pub async fn time_polls<F: Future>(fut: F, spent: &mut Duration) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let start = Instant::now();
        let out = fut.as_mut().poll(cx);
        *spent += start.elapsed();
        out
    })
    .await
}

/// The quota accounting of one request. Created per request; with no quota
/// configured every method returns at once and the throttle stays zero.
pub struct Meter<'a> {
    quotas: &'a Quotas,
    ctx: &'a RequestContext,
    on: bool,
    /// Handler time so far.
    spent: Duration,
    /// The longest throttle time a quota asked for so far.
    throttle: Duration,
}

impl<'a> Meter<'a> {
    pub fn new(quotas: &'a Quotas, ctx: &'a RequestContext) -> Self {
        Meter {
            quotas,
            ctx,
            on: quotas.enabled(),
            spent: Duration::ZERO,
            throttle: Duration::ZERO,
        }
    }

    /// Await the handler's future, counting its handler time when on.
    pub async fn time<F: Future>(&mut self, fut: F) -> F::Output {
        if !self.on {
            return fut.await;
        }
        time_polls(fut, &mut self.spent).await
    }

    fn record(&mut self, key: QuotaKey, value: f64) {
        let user = quota_user(&self.ctx.principal);
        let wait = self.quotas.record(key, user, &self.ctx.client_id, value);
        self.throttle = self.throttle.max(wait);
    }

    /// Record the handler time for `request_percentage`: percent of one
    /// core per second, so 1 s of handler time counts 100.
    pub fn record_request_time(&mut self) {
        if self.on && !exempt(self.ctx.api_key) {
            self.record(
                QuotaKey::RequestPercentage,
                self.spent.as_secs_f64() * 100.0,
            );
        }
    }

    /// Record a Produce request's size against `producer_byte_rate`.
    pub fn record_produce(&mut self, bytes: usize) {
        if self.on {
            self.record(QuotaKey::ProducerByteRate, bytes as f64);
        }
    }

    /// Record a Fetch response's size against `consumer_byte_rate`.
    pub fn record_fetched(&mut self, parts: &[Bytes]) {
        if self.on {
            let size: usize = parts.iter().map(Bytes::len).sum();
            self.record(QuotaKey::ConsumerByteRate, size as f64);
        }
    }

    /// Cap a Fetch at what the consumer quota allows in one window, so a
    /// response can ever fit (Kafka caps `max_bytes` so).
    pub fn cap_fetch(&self, req: &mut FetchRequest) {
        if !self.on {
            return;
        }
        let user = quota_user(&self.ctx.principal);
        let Some(cap) = self.quotas.fetch_cap(user, &self.ctx.client_id) else {
            return;
        };
        let cap = cap.min(i32::MAX as usize) as i32;
        req.max_bytes = req.max_bytes.min(cap);
        for t in &mut req.topics {
            for p in &mut t.partitions {
                p.partition_max_bytes = p.partition_max_bytes.min(cap);
            }
        }
    }

    /// The longest throttle time recorded (zero when off).
    pub fn throttle(&self) -> Duration {
        self.throttle
    }

    /// Put the throttle time into a decoded response (when on).
    pub fn stamp(&self, response: &mut ResponseKind) {
        if self.on {
            set_throttle_time(response, millis(self.throttle));
        }
    }
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
    fn time_polls_counts_only_time_inside_poll() {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let waiter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            tx.send(7).unwrap();
        });
        let fut = async {
            std::thread::sleep(Duration::from_millis(20));
            // Waiting (pending, not polled) does not count.
            rx.await.unwrap()
        };
        let mut spent = Duration::ZERO;
        let v = futures::executor::block_on(time_polls(fut, &mut spent));
        waiter.join().unwrap();
        assert_eq!(v, 7);
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
        assert!(spent < Duration::from_millis(400), "{spent:?}");
    }

    fn context(api_key: ApiKey) -> RequestContext {
        let peer: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
        RequestContext {
            api_key,
            version: 9,
            client_id: "c".into(),
            peer,
            subscribed_topic_regex: None,
            wire_version: 0,
            listener: std::sync::Arc::new(crate::listeners::Listener {
                name: "PLAINTEXT".into(),
                protocol: crate::listeners::SecurityProtocol::Plaintext,
                bind: peer,
                advertised_host: "localhost".into(),
                advertised_port: 9,
            }),
            principal: std::sync::Arc::from(crate::handlers::ANONYMOUS),
        }
    }

    /// With no quota configured the meter must cost nothing: no handler
    /// time is read, nothing is recorded, capped or stamped.
    #[test]
    fn without_quotas_the_meter_does_nothing() {
        let quotas = Quotas::in_memory();
        assert!(!quotas.enabled());
        let ctx = context(ApiKey::Produce);
        let mut meter = Meter::new(&quotas, &ctx);
        let v = futures::executor::block_on(meter.time(async {
            std::thread::sleep(Duration::from_millis(20));
            7
        }));
        assert_eq!(v, 7);
        assert_eq!(meter.spent, Duration::ZERO, "no clock read when off");
        meter.record_request_time();
        meter.record_produce(10 << 20);
        meter.record_fetched(&[Bytes::from(vec![0u8; 1 << 20])]);
        assert_eq!(meter.throttle(), Duration::ZERO);
        let mut req = FetchRequest::default().with_max_bytes(7);
        meter.cap_fetch(&mut req);
        assert_eq!(req.max_bytes, 7);
        let mut r = ResponseKind::Produce(ProduceResponse::default().with_throttle_time_ms(77));
        meter.stamp(&mut r);
        let ResponseKind::Produce(p) = r else {
            unreachable!()
        };
        assert_eq!(p.throttle_time_ms, 77, "a handler's own value stays");
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
