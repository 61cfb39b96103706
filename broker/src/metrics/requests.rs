//! Per-API request metrics — count, latency histogram and errors per Kafka
//! API — and the request and response bytes on the wire: kept per shard,
//! summed at scrape time.
//!
//! Why a slot per shard: the issue asks that each shard keep its own
//! counters and a scrape sum them, with no shared atomics on the hot path.
//! Each thread that handles requests (each shard) gets a [`Slot`] of its
//! own the first time it records one (a thread-local, registered once in
//! [`SLOTS`] under a lock), and only that thread ever writes it. With one
//! writer an update is a relaxed load and a relaxed store of the same word
//! (plain `mov`s on x86: no `lock` prefix, no read-modify-write), and slots
//! are 128-byte aligned so no two shards write one cache line. The scrape
//! thread reads every slot with relaxed loads and adds them up.
//!
//! Why atomics rather than plain cells copied to a published slot once a
//! second: for the single writer they cost the same, a scrape sees current
//! values, and no shard needs a timer for it. A scrape may see a request's
//! bucket before its latency sum; the count is derived from the buckets, so
//! every histogram it shows is consistent in itself.
//!
//! The hot path, per request: two clock reads, the API's dense index from
//! a constant table (no map), a binary search over 16 bucket bounds and
//! five load/store pairs (six for an error); no allocation, no lock.
//!
//! Requests are also counted per API version, as Kafka's `RequestsPerSec`
//! is (tags `request` and `version`, KIP-272): which version a client
//! chose is what tells, say, a transaction-version-2 producer (Produce v12,
//! EndTxn v5) from an older one, and when a version can be retired.
//! Measured by `cost_per_request` below: about 2.5 ns for the counters,
//! about 65 ns with the clock reads (the TSC through the vDSO).
//!
//! Slots are never freed: counters are cumulative, and a thread that ends
//! (only tests' threads do) must not take its counts away with it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use crate::handlers::{Reply, SUPPORTED_APIS};

/// Upper bounds (`le`) of the latency buckets in nanoseconds, what the hot
/// path compares: 100 µs to 10 s, 1-2.5-5 per decade, so both a produce on
/// a fast disk and a Fetch long-poll (`fetch.max.wait.ms`, 500 ms by
/// default) land in a bucket of their own. Shown in seconds
/// (`ns as f64 / 1e9`, which is exactly the decimal bound's nearest f64).
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The buckets, +Inf last.
const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// The APIs counted one by one: those we serve, then `other` for any other
/// key (such a request is always answered by closing the connection).
const APIS: usize = SUPPORTED_APIS.len() + 1;
const OTHER: usize = SUPPORTED_APIS.len();
const _: () = assert!(APIS <= u8::MAX as usize);

/// Raw API keys the lookup table covers (Kafka 4.x's are below 100).
const KEY_TABLE: usize = 128;

/// Versions counted one by one per API (Kafka 4.x's highest is 18); any
/// other version (which is refused) is counted in the last, `other`.
/// (32: the most an array can have and still derive `Default`.)
const VERSIONS: usize = 32;
const OTHER_VERSION: usize = VERSIONS - 1;

/// The version slot of a raw request version.
#[inline]
fn version_index(raw: i16) -> usize {
    if (0..OTHER_VERSION as i16).contains(&raw) {
        raw as usize
    } else {
        OTHER_VERSION
    }
}

/// Dense index of each raw API key: `SUPPORTED_APIS`' order, else `OTHER`.
static API_INDEX: [u8; KEY_TABLE] = {
    let mut t = [OTHER as u8; KEY_TABLE];
    let mut i = 0;
    while i < SUPPORTED_APIS.len() {
        t[SUPPORTED_APIS[i].0 as usize] = i as u8;
        i += 1;
    }
    t
};

/// The dense index of a raw API key.
#[inline]
fn api_index(raw: i16) -> usize {
    API_INDEX
        .get(raw as u16 as usize)
        .map_or(OTHER, |&i| i as usize)
}

/// The `api` label of a dense index: Kafka's name of the API.
fn api_name(i: usize) -> String {
    SUPPORTED_APIS
        .get(i)
        .map_or_else(|| "other".to_string(), |(k, _, _)| format!("{k:?}"))
}

/// The bucket of a latency: the first whose bound is at or above it, as
/// Prometheus' `le` means, or +Inf.
#[inline]
pub fn bucket(ns: u64) -> usize {
    BOUNDS_NS.partition_point(|&b| b < ns)
}

#[derive(Default)]
struct ApiCounters {
    /// Requests per latency bucket (not cumulative); their sum is the count.
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    /// Requests answered by closing the connection.
    errors: AtomicU64,
    /// Requests per API version (`version_index`).
    versions: [AtomicU64; VERSIONS],
}

/// One shard's counters, written by that shard's thread only.
#[repr(align(128))]
pub struct Slot {
    apis: [ApiCounters; APIS],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Add to a counter that only the calling thread writes: no atomic
/// read-modify-write is needed when there is a single writer.
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

impl Slot {
    fn new() -> Self {
        Self {
            apis: std::array::from_fn(|_| ApiCounters::default()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// Count one request; only the slot's own thread may call this.
    #[inline]
    fn record(
        &self,
        api: usize,
        version: usize,
        ns: u64,
        bytes_in: u64,
        bytes_out: u64,
        error: bool,
    ) {
        let a = &self.apis[api];
        bump(&a.buckets[bucket(ns)], 1);
        bump(&a.versions[version], 1);
        bump(&a.sum_ns, ns);
        if error {
            bump(&a.errors, 1);
        }
        bump(&self.bytes_in, bytes_in);
        bump(&self.bytes_out, bytes_out);
    }
}

/// One API's counts summed over the slots.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApiTotals {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
    pub errors: u64,
    pub versions: [u64; VERSIONS],
}

impl ApiTotals {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Every slot summed: what a scrape shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// By dense API index.
    pub apis: Vec<ApiTotals>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[cfg(test)]
impl Totals {
    /// The totals of one API.
    pub fn api(&self, key: kafka_protocol::messages::ApiKey) -> &ApiTotals {
        &self.apis[api_index(key as i16)]
    }
}

/// The slots of every thread that has handled a request.
pub struct Slots {
    slots: Mutex<Vec<&'static Slot>>,
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

impl Slots {
    pub const fn new() -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
        }
    }

    /// A new slot, for one thread to write.
    pub fn register(&self) -> &'static Slot {
        let slot: &'static Slot = Box::leak(Box::new(Slot::new()));
        self.slots.lock().expect("slots lock").push(slot);
        slot
    }

    /// The sum of every slot, read now.
    pub fn totals(&self) -> Totals {
        let slots = self.slots.lock().expect("slots lock").clone();
        let mut t = Totals {
            apis: vec![ApiTotals::default(); APIS],
            bytes_in: 0,
            bytes_out: 0,
        };
        for s in slots {
            for (sum, a) in t.apis.iter_mut().zip(&s.apis) {
                for (b, c) in sum.buckets.iter_mut().zip(&a.buckets) {
                    *b += c.load(Relaxed);
                }
                sum.sum_ns += a.sum_ns.load(Relaxed);
                sum.errors += a.errors.load(Relaxed);
                for (v, c) in sum.versions.iter_mut().zip(&a.versions) {
                    *v += c.load(Relaxed);
                }
            }
            t.bytes_in += s.bytes_in.load(Relaxed);
            t.bytes_out += s.bytes_out.load(Relaxed);
        }
        t
    }
}

/// The process's slots, which `/metrics` shows.
pub static SLOTS: Slots = Slots::new();

thread_local! {
    /// This thread's slot, registered on its first request.
    static SLOT: &'static Slot = SLOTS.register();
}

/// One request being measured: from its frame being taken up for decoding
/// to its response being encoded and queued for the connection's writer
/// (time spent behind earlier responses of the connection is not counted).
pub struct RequestTimer {
    start: Instant,
    api: usize,
    version: usize,
    bytes_in: u64,
}

impl RequestTimer {
    /// `frame`: the request frame without its 4-byte size prefix.
    #[inline]
    pub fn start(frame: &[u8]) -> Self {
        let (raw, version) = match frame {
            [a, b, c, d, ..] => (i16::from_be_bytes([*a, *b]), i16::from_be_bytes([*c, *d])),
            [a, b, ..] => (i16::from_be_bytes([*a, *b]), -1),
            _ => (-1, -1),
        };
        Self {
            start: Instant::now(),
            api: api_index(raw),
            version: version_index(version),
            bytes_in: frame.len() as u64 + 4,
        }
    }

    /// Count the request with its reply, in this thread's slot.
    #[inline]
    pub fn finish(self, reply: &Reply) {
        let ns = self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        let (bytes_out, error) = on_the_wire(reply);
        SLOT.with(|s| s.record(self.api, self.version, ns, self.bytes_in, bytes_out, error));
    }
}

/// A reply's bytes (size prefixes included) and whether it is an error:
/// a Close, which ends the connection instead of answering.
fn on_the_wire(reply: &Reply) -> (u64, bool) {
    match reply {
        Reply::Frame(f) => (f.len() as u64, false),
        Reply::Parts(parts) => (parts.iter().map(|p| p.len() as u64).sum(), false),
        Reply::None => (0, false),
        Reply::Close(_) => (0, true),
        Reply::Throttled(r, _) => on_the_wire(r),
    }
}

/// The request metrics of a set of slots, summed at scrape time. An API
/// has series once it has seen a request.
#[derive(Debug)]
pub struct RequestCollector(pub &'static Slots);

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slots")
    }
}

fn counter_family<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (api, v) in values {
        ConstCounter::new(v).encode(m.encode_family(&[("api", api)])?)?;
    }
    Ok(())
}

impl Collector for RequestCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let t = self.0.totals();
        let seen: Vec<(String, &ApiTotals)> = t
            .apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.count() > 0)
            .map(|(i, a)| (api_name(i), a))
            .collect();
        counter_family(
            &mut e,
            "shardline_requests",
            "Kafka requests handled, by API",
            seen.iter().map(|(n, a)| (n.as_str(), a.count())),
        )?;
        {
            let mut m = e.encode_descriptor(
                "shardline_requests_by_version",
                "Kafka requests handled, by API and API version (`other`: a version out of range)",
                None,
                MetricType::Counter,
            )?;
            for (api, a) in &seen {
                for (v, &n) in a.versions.iter().enumerate().filter(|(_, &n)| n > 0) {
                    let version = if v == OTHER_VERSION {
                        "other".to_string()
                    } else {
                        v.to_string()
                    };
                    ConstCounter::new(n).encode(m.encode_family(&[
                        ("api", api.as_str()),
                        ("version", version.as_str()),
                    ])?)?;
                }
            }
        }
        counter_family(
            &mut e,
            "shardline_request_errors",
            "Kafka requests answered by closing the connection (malformed, unsupported \
             version, handler failure), by API; error codes inside responses are not counted",
            seen.iter().map(|(n, a)| (n.as_str(), a.errors)),
        )?;
        {
            let mut m = e.encode_descriptor(
                "shardline_request_duration_seconds",
                "Time from a request's decoding to its response queued for the connection, by API",
                None,
                MetricType::Histogram,
            )?;
            for (api, a) in &seen {
                let buckets: Vec<(f64, u64)> = BOUNDS_NS
                    .iter()
                    .map(|&ns| ns as f64 / 1e9)
                    .chain([f64::INFINITY])
                    .zip(a.buckets)
                    .collect();
                m.encode_family(&[("api", api.as_str())])?
                    .encode_histogram::<NoLabelSet>(
                        a.sum_ns as f64 / 1e9,
                        a.count(),
                        &buckets,
                        None,
                    )?;
            }
        }
        super::counter(
            &mut e,
            "shardline_bytes_in",
            "Kafka request bytes received: request frames with their size prefix, before TLS",
            t.bytes_in,
        )?;
        super::counter(
            &mut e,
            "shardline_bytes_out",
            "Kafka response bytes queued for clients: response frames with their size prefix, \
             before TLS",
            t.bytes_out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn latencies_land_in_the_bucket_whose_bound_is_at_or_above_them() {
        assert_eq!(BOUNDS_NS[0], 100_000);
        assert_eq!(BOUNDS_NS[15], 10_000_000_000);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(100_000), 0, "le is inclusive");
        assert_eq!(bucket(100_001), 1);
        assert_eq!(bucket(250_000), 1);
        assert_eq!(bucket(700_000), 3); // ≤ 1 ms
        assert_eq!(bucket(499_000_000), 11); // ≤ 0.5 s
        assert_eq!(bucket(10_000_000_000), 15);
        assert_eq!(bucket(10_000_000_001), 16, "+Inf");
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for (i, b) in BOUNDS_NS.iter().enumerate() {
            assert_eq!(bucket(*b), i);
            assert_eq!(bucket(*b + 1), i + 1);
        }
    }

    #[test]
    fn api_keys_map_to_their_own_index_and_others_to_other() {
        for (i, (k, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            assert_eq!(api_index(*k as i16), i);
            assert_eq!(api_name(i), format!("{k:?}"));
        }
        assert_eq!(api_index(-1), OTHER);
        assert_eq!(api_index(i16::MAX), OTHER);
        // Raft's Vote: a controller's API that a broker listener never serves.
        assert_eq!(api_index(ApiKey::Vote as i16), OTHER);
        assert_eq!(api_name(OTHER), "other");
    }

    #[test]
    fn versions_out_of_range_are_counted_as_other() {
        assert_eq!(version_index(0), 0);
        assert_eq!(version_index(12), 12);
        assert_eq!(version_index(30), 30);
        assert_eq!(version_index(31), OTHER_VERSION);
        assert_eq!(version_index(-1), OTHER_VERSION);
        assert_eq!(version_index(i16::MAX), OTHER_VERSION);
    }

    #[test]
    fn each_threads_slot_is_summed_by_a_scrape() {
        let slots: &'static Slots = Box::leak(Box::new(Slots::new()));
        let produce = api_index(ApiKey::Produce as i16);
        let fetch = api_index(ApiKey::Fetch as i16);
        std::thread::scope(|s| {
            for shard in 0..3u64 {
                s.spawn(move || {
                    let slot = slots.register();
                    for _ in 0..10 {
                        slot.record(produce, 9, 1_000_000, 100, 10, false);
                    }
                    slot.record(
                        fetch,
                        shard as usize,
                        300_000_000 + shard,
                        50,
                        5000,
                        shard == 0,
                    );
                });
            }
        });
        let t = slots.totals();
        let p = t.api(ApiKey::Produce);
        assert_eq!(p.count(), 30);
        assert_eq!(p.buckets[3], 30);
        assert_eq!(p.sum_ns, 30_000_000);
        assert_eq!(p.errors, 0);
        let f = t.api(ApiKey::Fetch);
        assert_eq!((f.count(), f.buckets[11], f.errors), (3, 3, 1));
        assert_eq!(f.sum_ns, 900_000_003);
        assert_eq!(p.versions[9], 30);
        assert_eq!(&f.versions[..4], &[1, 1, 1, 0]);
        assert_eq!(t.bytes_in, 30 * 100 + 3 * 50);
        assert_eq!(t.bytes_out, 30 * 10 + 3 * 5000);
    }

    #[test]
    fn a_timed_request_is_counted_in_this_threads_slot() {
        let frame = [0u8, 0, 0, 9, 0, 0, 0, 1]; // Produce v9, correlation id 1
        let before = SLOTS.totals();
        let t = RequestTimer::start(&frame);
        t.finish(&Reply::Frame(bytes::Bytes::from_static(&[0; 20])));
        RequestTimer::start(&[0xff, 0x7f]).finish(&Reply::Close("bad".into()));
        let after = SLOTS.totals();
        // Other tests' threads count into their own slots at the same time.
        assert!(after.api(ApiKey::Produce).count() > before.api(ApiKey::Produce).count());
        assert!(after.apis[OTHER].errors > before.apis[OTHER].errors);
        assert!(after.bytes_in >= before.bytes_in + 12 + 6);
        assert!(after.bytes_out >= before.bytes_out + 20);
    }

    /// The hot path's cost, by hand (`cargo test --release -- --ignored
    /// cost_per_request --nocapture`): the counters alone, and with the
    /// two clock reads of a timed request.
    #[test]
    #[ignore]
    fn cost_per_request() {
        const N: u64 = 10_000_000;
        let slot = Slots::new().register();
        let produce = api_index(ApiKey::Produce as i16);
        let t = Instant::now();
        for i in 0..N {
            slot.record(
                produce,
                9,
                std::hint::black_box(i & 0xf_ffff),
                100,
                50,
                false,
            );
        }
        let record = t.elapsed().as_nanos() as f64 / N as f64;
        let frame = [0u8, 0, 0, 9, 0, 0, 0, 1];
        let reply = Reply::Frame(bytes::Bytes::from_static(&[0; 20]));
        let t = Instant::now();
        for _ in 0..N {
            RequestTimer::start(std::hint::black_box(&frame)).finish(&reply);
        }
        let timed = t.elapsed().as_nanos() as f64 / N as f64;
        println!("record: {record:.1} ns; start + finish (two clock reads): {timed:.1} ns");
    }
}
