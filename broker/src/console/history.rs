//! Metrics history for the console's charts, without a Prometheus: a
//! bounded store of the key series, one point per [`STEP`] (10 s) for
//! [`POINTS`] steps (24 h), each series a fixed-size ring allocated once.
//!
//! Sampled on a thread of its own from the same registry `/metrics`
//! renders (the text is rendered and read back, so the history shows
//! exactly what a scrape would, summed over shards as a scrape sums them):
//! no new counter on the hot path. Counters become per-second rates over
//! the step, the latency histogram a p99 per API over the step.
//!
//! Group lag: every [`LAG_EVERY`] steps the sampler describes up to
//! [`MAX_LAG_GROUPS`] groups over the Kafka protocol (as the broker's
//! inter-broker user, or anonymously in open mode) and records the total
//! lag per group and the lag per partition, at most [`MAX_SERIES`] series
//! in all. The API serves a group's lag only to a session that may
//! DESCRIBE the group.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use shardline_client::{Client, SaslAuth};

use super::session::Target;

pub const STEP: Duration = Duration::from_secs(10);
pub const POINTS: usize = 8640;
/// Series held at most (a series is 8 bytes a point: 69 KiB).
pub const MAX_SERIES: usize = 512;
pub const MAX_LAG_GROUPS: usize = 20;
/// Lag is sampled every this many steps (30 s).
pub const LAG_EVERY: u64 = 3;
const LAG_PREFIX: &str = "group_lag:";

/// One series: the value of each step, with the step it was taken at (a
/// slot holding an older step than asked for is a gap, not a value).
pub struct Ring {
    ticks: Box<[u32]>,
    values: Box<[f32]>,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            ticks: vec![0; POINTS].into_boxed_slice(),
            values: vec![0.0; POINTS].into_boxed_slice(),
        }
    }
}

impl Ring {
    pub fn record(&mut self, tick: u32, v: f64) {
        let i = tick as usize % POINTS;
        self.ticks[i] = tick;
        self.values[i] = v as f32;
    }

    /// Points (epoch ms, value) from tick `from` to `to`, oldest first,
    /// at most the last [`POINTS`] ticks.
    pub fn points(&self, from: u32, to: u32) -> Vec<(i64, f64)> {
        let from = from.max(to.saturating_sub(POINTS as u32 - 1));
        (from..=to)
            .filter_map(|t| {
                let i = t as usize % POINTS;
                (self.ticks[i] == t && t != 0)
                    .then(|| (t as i64 * STEP.as_millis() as i64, self.values[i] as f64))
            })
            .collect()
    }
}

/// The store: series by name.
#[derive(Default)]
pub struct History {
    series: Mutex<BTreeMap<String, Ring>>,
    full_warned: std::sync::atomic::AtomicBool,
}

pub fn tick_of(ms: i64) -> u32 {
    (ms.max(0) / STEP.as_millis() as i64) as u32
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn lag_series_prefix(group: &str) -> String {
    format!("{LAG_PREFIX}{group}")
}

impl History {
    /// Record `v` for `name` at epoch ms `at`; a new series beyond
    /// [`MAX_SERIES`] is dropped (logged once).
    pub fn record(&self, name: &str, at: i64, v: f64) {
        let mut s = self.series.lock().expect("history lock");
        if !s.contains_key(name) && s.len() >= MAX_SERIES {
            if !self
                .full_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!("console history: {MAX_SERIES} series held; {name} and later new ones are not kept");
            }
            return;
        }
        s.entry(name.to_string())
            .or_default()
            .record(tick_of(at), v);
    }

    /// Names of the broker series (group lag is served per group).
    pub fn names(&self) -> Vec<String> {
        self.series
            .lock()
            .expect("history lock")
            .keys()
            .filter(|k| !k.starts_with(LAG_PREFIX))
            .cloned()
            .collect()
    }

    /// The points of `name` since epoch ms `since`; `None`: no such series.
    pub fn get(&self, name: &str, since: i64) -> Option<Vec<(i64, f64)>> {
        let s = self.series.lock().expect("history lock");
        let r = s.get(name)?;
        Some(r.points(tick_of(since).max(1), tick_of(now_ms())))
    }

    /// Every series `prefix` or `prefix:...`, as JSON `{name: [[ms, v]...]}`.
    pub fn matching(&self, prefix: &str, since: i64) -> Value {
        let s = self.series.lock().expect("history lock");
        let (from, to) = (tick_of(since).max(1), tick_of(now_ms()));
        let mut out = serde_json::Map::new();
        for (k, r) in s.range(prefix.to_string()..) {
            if k != prefix && !k.starts_with(&format!("{prefix}:")) {
                if !k.starts_with(prefix) {
                    break;
                }
                continue;
            }
            let pts: Vec<Value> = r
                .points(from, to)
                .iter()
                .map(|(t, v)| json!([t, v]))
                .collect();
            out.insert(k.clone(), Value::Array(pts));
        }
        Value::Object(out)
    }
}

/// One scrape read back: (name, labels) -> value.
pub type Samples = HashMap<(String, String), f64>;

/// Parse OpenMetrics text (`name{labels} value`; comments skipped).
pub fn parse(text: &str) -> Samples {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        out.insert((name.to_string(), labels.to_string()), v);
    }
    out
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

/// The values of one step from two scrapes `dt` seconds apart: rates,
/// p99 latencies and gauges, by series name.
pub fn derive(prev: &Samples, cur: &Samples, dt: f64) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let total = |s: &Samples, name: &str| s.get(&(name.to_string(), String::new())).copied();
    let rate = |name: &str| -> Option<f64> {
        let (a, b) = (total(prev, name)?, total(cur, name)?);
        Some(((b - a) / dt).max(0.0))
    };
    for (series, metric) in [
        ("bytes_in_per_s", "shardline_bytes_in_total"),
        ("bytes_out_per_s", "shardline_bytes_out_total"),
    ] {
        if let Some(r) = rate(metric) {
            out.push((series.to_string(), r));
        }
    }
    // Per API: requests and errors per second, p99 latency in ms.
    let per_api = |s: &Samples, metric: &str| -> BTreeMap<String, f64> {
        s.iter()
            .filter(|((n, _), _)| n == metric)
            .filter_map(|((_, l), v)| Some((label(l, "api")?.to_string(), *v)))
            .collect()
    };
    let (req0, req1) = (
        per_api(prev, "shardline_requests_total"),
        per_api(cur, "shardline_requests_total"),
    );
    let (err0, err1) = (
        per_api(prev, "shardline_request_errors_total"),
        per_api(cur, "shardline_request_errors_total"),
    );
    let mut all = 0.0;
    for (api, n) in &req1 {
        let d = (n - req0.get(api).copied().unwrap_or(0.0)).max(0.0);
        all += d;
        if matches!(api.as_str(), "Produce" | "Fetch") {
            let lower = api.to_ascii_lowercase();
            out.push((format!("{lower}_requests_per_s"), d / dt));
            let e = err1.get(api).copied().unwrap_or(0.0) - err0.get(api).copied().unwrap_or(0.0);
            out.push((format!("{lower}_errors_per_s"), e.max(0.0) / dt));
        }
        if d > 0.0 {
            if let Some(p) = p99(prev, cur, api) {
                out.push((format!("request_p99_ms:{api}"), p * 1000.0));
            }
        }
    }
    out.push(("requests_per_s".to_string(), all / dt));
    for (series, metric) in [
        ("partitions", "shardline_partitions"),
        ("leader_partitions", "shardline_leader_partitions"),
        (
            "under_replicated_partitions",
            "shardline_under_replicated_partitions",
        ),
        ("offline_partitions", "shardline_offline_partitions"),
        ("disk_free_bytes", "shardline_log_dir_free_bytes"),
    ] {
        if let Some(v) = total(cur, metric) {
            out.push((series.to_string(), v));
        }
    }
    if let (Some(t), Some(f)) = (
        total(cur, "shardline_log_dir_total_bytes"),
        total(cur, "shardline_log_dir_free_bytes"),
    ) {
        out.push(("disk_used_bytes".to_string(), (t - f).max(0.0)));
    }
    out
}

/// The 99th percentile (seconds) of `api`'s requests between two scrapes,
/// from the histogram's cumulative buckets: the bound of the first bucket
/// holding 99% of the step's requests (+Inf: the largest finite bound).
fn p99(prev: &Samples, cur: &Samples, api: &str) -> Option<f64> {
    let buckets = |s: &Samples| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = s
            .iter()
            .filter(|((n, l), _)| {
                n == "shardline_request_duration_seconds_bucket" && label(l, "api") == Some(api)
            })
            .filter_map(|((_, l), c)| {
                let le = label(l, "le")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *c))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let (b0, b1) = (buckets(prev), buckets(cur));
    let delta: Vec<(f64, f64)> = b1
        .iter()
        .map(|(le, c)| {
            let before = b0.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, c - before)
        })
        .collect();
    let n = delta.last()?.1;
    if n <= 0.0 {
        return None;
    }
    let want = n * 0.99;
    let largest_finite = delta.iter().rev().find(|(l, _)| l.is_finite())?.0;
    delta
        .iter()
        .find(|(_, c)| *c >= want)
        .map(|(le, _)| if le.is_finite() { *le } else { largest_finite })
}

/// How the sampler reads group lag.
pub struct LagSource {
    pub target: Target,
    pub auth: Option<SaslAuth>,
}

/// Start the sampler thread.
pub fn start(history: Arc<History>, registry: Arc<Registry>, lag: Option<LagSource>) {
    let spawned = std::thread::Builder::new()
        .name("console-history".into())
        .spawn(move || {
            let mut prev: Option<(std::time::Instant, Samples)> = None;
            let mut client: Option<Client> = None;
            let mut step: u64 = 0;
            loop {
                let cur = parse(&crate::metrics::render(&registry));
                let now = std::time::Instant::now();
                let at = now_ms();
                if let Some((t, p)) = &prev {
                    let dt = now.duration_since(*t).as_secs_f64().max(0.001);
                    for (name, v) in derive(p, &cur, dt) {
                        history.record(&name, at, v);
                    }
                }
                prev = Some((now, cur));
                if let Some(src) = &lag {
                    if step.is_multiple_of(LAG_EVERY) {
                        if let Err(e) = sample_lag(&history, src, &mut client, at) {
                            tracing::debug!("console history: group lag: {e:#}");
                            client = None;
                        }
                    }
                }
                step += 1;
                std::thread::sleep(STEP);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("console history: no sampler thread: {e}");
    }
}

fn sample_lag(
    history: &History,
    src: &LagSource,
    client: &mut Option<Client>,
    at: i64,
) -> anyhow::Result<()> {
    if client.is_none() {
        *client = Some(src.target.connect(src.auth.as_ref())?);
    }
    let c = client.as_mut().expect("set above");
    let groups = crate::ops::groups::list_groups(c)?;
    for g in groups.iter().take(MAX_LAG_GROUPS) {
        let Ok(d) = crate::ops::groups::describe(c, &g.group) else {
            continue;
        };
        let prefix = lag_series_prefix(&g.group);
        let total: i64 = d.rows.iter().filter_map(|r| r.lag).sum();
        history.record(&prefix, at, total as f64);
        for r in &d.rows {
            if let Some(lag) = r.lag {
                history.record(
                    &format!("{prefix}:{}:{}", r.topic, r.partition),
                    at,
                    lag as f64,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_24h_and_shows_gaps() {
        let mut r = Ring::default();
        let t0 = 1_000_000u32;
        for t in t0..t0 + 10 {
            if t != t0 + 5 {
                r.record(t, (t - t0) as f64);
            }
        }
        let pts = r.points(t0, t0 + 9);
        assert_eq!(pts.len(), 9, "one gap");
        assert_eq!(pts[0], (t0 as i64 * 10_000, 0.0));
        assert!(!pts.iter().any(|(t, _)| *t == (t0 as i64 + 5) * 10_000));
        // A full day later every slot has been overwritten once.
        let later = t0 + POINTS as u32;
        r.record(later, 42.0);
        let pts = r.points(t0, later);
        assert_eq!(pts.last(), Some(&(later as i64 * 10_000, 42.0)));
        assert!(
            pts.iter().all(|(t, _)| *t > t0 as i64 * 10_000),
            "t0 fell out"
        );
        assert_eq!(pts.len(), 9, "t0's slot holds the new point; t0+1.. stay");
        // Asking for more than 24 h gives at most POINTS ticks.
        assert!(r.points(0, later).len() <= POINTS);
    }

    #[test]
    fn the_store_is_bounded_and_hides_lag_from_the_names() {
        let h = History::default();
        let now = now_ms();
        for i in 0..MAX_SERIES + 5 {
            h.record(&format!("s{i}"), now, 1.0);
        }
        assert_eq!(h.series.lock().unwrap().len(), MAX_SERIES);
        let h = History::default();
        h.record("bytes_in_per_s", now, 5.0);
        h.record("group_lag:g", now, 3.0);
        h.record("group_lag:g:t:0", now, 3.0);
        h.record("group_lag:gg", now, 9.0);
        assert_eq!(h.names(), ["bytes_in_per_s"]);
        let m = h.matching(&lag_series_prefix("g"), 0);
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["group_lag:g", "group_lag:g:t:0"]);
        assert_eq!(h.get("bytes_in_per_s", 0).unwrap().len(), 1);
        assert!(h.get("nope", 0).is_none());
    }

    #[test]
    fn rates_and_p99_come_from_two_scrapes() {
        let a = parse(
            "# TYPE x counter\nshardline_bytes_in_total 100\n\
             shardline_requests_total{api=\"Produce\"} 10\n\
             shardline_request_errors_total{api=\"Produce\"} 0\n\
             shardline_request_duration_seconds_bucket{le=\"0.001\",api=\"Produce\"} 10\n\
             shardline_request_duration_seconds_bucket{le=\"0.01\",api=\"Produce\"} 10\n\
             shardline_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"} 10\n",
        );
        let b = parse(
            "shardline_bytes_in_total 1100\nshardline_requests_total{api=\"Produce\"} 110\n\
             shardline_request_errors_total{api=\"Produce\"} 10\n\
             shardline_request_duration_seconds_bucket{le=\"0.001\",api=\"Produce\"} 15\n\
             shardline_request_duration_seconds_bucket{le=\"0.01\",api=\"Produce\"} 110\n\
             shardline_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"} 110\n\
             shardline_partitions 4\nshardline_log_dir_total_bytes 100\n\
             shardline_log_dir_free_bytes 30\n# EOF\n",
        );
        let d: BTreeMap<String, f64> = derive(&a, &b, 10.0).into_iter().collect();
        assert_eq!(d["bytes_in_per_s"], 100.0);
        assert_eq!(d["produce_requests_per_s"], 10.0);
        assert_eq!(d["produce_errors_per_s"], 1.0);
        assert_eq!(d["requests_per_s"], 10.0);
        assert_eq!(d["request_p99_ms:Produce"], 10.0);
        assert_eq!(d["partitions"], 4.0);
        assert_eq!(d["disk_used_bytes"], 70.0);
        assert_eq!(d["disk_free_bytes"], 30.0);
    }
}
