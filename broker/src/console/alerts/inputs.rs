//! What the rules are evaluated on, gathered once per round by the active
//! controller, and each rule's observed values per subject.
//!
//! Where each figure comes from (the controller sees only what it can
//! reach over the Kafka protocol, its metadata and its own metrics):
//! - partitions and brokers: the committed metadata (every node's copy is
//!   the same);
//! - group lag: the Kafka protocol, as the console's lag pages read it
//!   (`ops::groups::describe`: committed offsets against log end offsets);
//!   lag in seconds: the timestamp of the first unconsumed record (one
//!   Fetch at the committed offset), as Burrow and Kafka Lag Exporter do;
//! - disk free: DescribeLogDirs to each unfenced broker;
//! - error rates and p99 latency, per broker: the controller's own from its
//!   metrics registry over the last round, as `/metrics` renders it; every
//!   other unfenced broker's from its admin listener (`console::peers`, the
//!   open `GET /api/v1/metrics/history`), the newest point of each series
//!   within [`PEER_WINDOW_MS`]. A broker that does not answer is `None` (its
//!   alerts keep their state); a fenced one is left out (its alerts
//!   resolve: a broker that is down is the broker-down rule's).

use std::collections::BTreeMap;

use shardline_client::Client;

use super::machine::Observed;
use crate::console::history::{self, Samples};
use crate::metadata::alerts::{glob_match, AlertKind, AlertRule};
use crate::metadata::ClusterState;
use crate::ops::{groups, messages, offsets, topics};

/// Groups described per round at most.
pub const MAX_GROUPS: usize = 100;
/// Partitions fetched per group per round for lag in seconds.
pub const MAX_AGE_FETCHES: usize = 64;
/// How far back a peer's newest point may be (older: the series had no
/// requests since). A point is stamped with the start of its 10 s step and
/// written up to a step later, and the sampler's sleep drifts, so a busy
/// series' newest point can be nearly three steps old.
pub const PEER_WINDOW_MS: i64 = history::STEP.as_millis() as i64 * 3 + 5_000;

/// One partition of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct PartLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
    /// Seconds since the first unconsumed record was written (0 when none
    /// is behind; `None` when it could not be read or was not asked for).
    pub age_s: Option<f64>,
}

/// One round's inputs. `None` anywhere: could not be read this round.
#[derive(Debug, Default)]
pub struct Inputs {
    pub groups: Option<BTreeMap<String, Option<Vec<PartLag>>>>,
    pub disks: BTreeMap<i32, Option<(i64, i64)>>,
    /// Each broker's derived metric series (`history::derive`), by node id;
    /// `None` for a broker that could not be read this round. The whole map
    /// is `None` before the first round that read them.
    pub metrics: Option<BTreeMap<i32, Option<BTreeMap<String, f64>>>>,
}

/// What the enabled rules need read this round.
pub struct Needs {
    pub groups: bool,
    pub ages: bool,
    pub disks: bool,
    /// Other brokers' error rates and latencies.
    pub peer_metrics: bool,
}

impl Needs {
    pub fn of<'a>(rules: impl Iterator<Item = &'a AlertRule>) -> Needs {
        let mut n = Needs {
            groups: false,
            ages: false,
            disks: false,
            peer_metrics: false,
        };
        for r in rules.filter(|r| r.enabled) {
            match r.kind {
                AlertKind::ConsumerLag => n.groups = true,
                AlertKind::ConsumerLagSeconds => {
                    n.groups = true;
                    n.ages = true;
                }
                AlertKind::DiskFreeBytes | AlertKind::DiskFreePercent => n.disks = true,
                AlertKind::ProduceErrorRate
                | AlertKind::FetchErrorRate
                | AlertKind::RequestP99Ms => n.peer_metrics = true,
                _ => {}
            }
        }
        n
    }
}

/// The lag of every group (at most [`MAX_GROUPS`]) over `client`.
pub fn read_groups(
    client: &mut Client,
    ages: bool,
    now_ms: i64,
) -> anyhow::Result<BTreeMap<String, Option<Vec<PartLag>>>> {
    let mut out = BTreeMap::new();
    for g in groups::list_groups(client)?.into_iter().take(MAX_GROUPS) {
        let parts = groups::describe(client, &g.group).ok().map(|d| {
            let mut parts: Vec<PartLag> = d
                .rows
                .iter()
                .filter_map(|r| {
                    Some(PartLag {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        lag: r.lag?,
                        age_s: None,
                    })
                })
                .collect();
            if ages {
                let committed: BTreeMap<(String, i32), i64> = d
                    .rows
                    .iter()
                    .filter_map(|r| Some(((r.topic.clone(), r.partition), r.committed?)))
                    .collect();
                add_ages(client, &mut parts, &committed, now_ms);
            }
            parts
        });
        out.insert(g.group, parts);
    }
    Ok(out)
}

/// Each lagging partition's age: `now` minus the timestamp of the record
/// at the committed offset (the oldest one not consumed yet).
fn add_ages(
    client: &mut Client,
    parts: &mut [PartLag],
    committed: &BTreeMap<(String, i32), i64>,
    now_ms: i64,
) {
    let mut leaders: BTreeMap<String, Vec<offsets::PartitionInfo>> = BTreeMap::new();
    for p in parts.iter_mut() {
        if p.lag <= 0 {
            p.age_s = Some(0.0);
        }
    }
    for p in parts.iter_mut().filter(|p| p.lag > 0).take(MAX_AGE_FETCHES) {
        let Some(&offset) = committed.get(&(p.topic.clone(), p.partition)) else {
            continue;
        };
        if !leaders.contains_key(&p.topic) {
            if let Ok(info) = offsets::topic_partitions(client, &p.topic) {
                leaders.insert(p.topic.clone(), info);
            }
        }
        let Some(leader) = leaders
            .get(&p.topic)
            .and_then(|ps| ps.iter().find(|i| i.partition == p.partition))
            .map(|i| i.leader)
            .filter(|l| *l >= 0)
        else {
            continue;
        };
        if let Ok(f) = messages::fetch_once(
            client,
            leader,
            &p.topic,
            p.partition,
            offset,
            false,
            65536,
            0,
        ) {
            if let Some(r) = f.records.iter().find(|r| r.offset >= offset) {
                p.age_s = Some(((now_ms - r.timestamp) as f64 / 1000.0).max(0.0));
            }
        }
    }
}

/// Free and total bytes of each unfenced broker's log dir.
pub fn read_disks(client: &mut Client, state: &ClusterState) -> BTreeMap<i32, Option<(i64, i64)>> {
    state
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            let d = topics::log_dirs(client, b.id)
                .ok()
                .and_then(|d| Some((d.usable_bytes?, d.total_bytes?)));
            (b.id, d)
        })
        .collect()
}

/// This broker's metric series over the time since `prev`.
pub fn read_metrics(
    prev: &mut Option<(std::time::Instant, Samples)>,
    registry: &prometheus_client::registry::Registry,
) -> Option<BTreeMap<String, f64>> {
    let cur = history::parse(&crate::metrics::render(registry));
    let now = std::time::Instant::now();
    let out = prev.as_ref().map(|(t, p)| {
        let dt = now.duration_since(*t).as_secs_f64().max(0.001);
        history::derive(p, &cur, dt).into_iter().collect()
    });
    *prev = Some((now, cur));
    out
}

/// The series the metric rules read, of a peer's history answer.
fn rule_series(name: &str) -> bool {
    matches!(name, "produce_errors_per_s" | "fetch_errors_per_s")
        || name.starts_with("request_p99_ms:")
}

/// The newest point at or after `since_ms` of each series the metric rules
/// read, from a `GET /api/v1/metrics/history` answer (`{"series": {name:
/// [[ms, v], ...]}}`, oldest first). An answer of another shape is an
/// error; a series with no point in the window is left out.
pub fn latest_points(
    body: &serde_json::Value,
    since_ms: i64,
) -> Result<BTreeMap<String, f64>, String> {
    let series = body
        .get("series")
        .and_then(|s| s.as_object())
        .ok_or("its history answer has no series")?;
    let mut out = BTreeMap::new();
    for (name, points) in series.iter().filter(|(n, _)| rule_series(n)) {
        let newest = points
            .as_array()
            .and_then(|ps| ps.last())
            .and_then(|p| Some((p.get(0)?.as_i64()?, p.get(1)?.as_f64()?)));
        match (newest, points.as_array().map(Vec::is_empty)) {
            (Some((at, v)), _) if at >= since_ms => {
                out.insert(name.clone(), v);
            }
            (Some(_), _) | (None, Some(true)) => {}
            (None, _) => return Err(format!("series {name} is not a list of [ms, value]")),
        }
    }
    Ok(out)
}

/// Every other unfenced broker's metric series, read from its admin
/// listener (all at once, `peers::CALL_TIMEOUT` each). `problems` gets a
/// line for each broker that could not be read.
pub fn read_peer_metrics(
    state: &ClusterState,
    me: i32,
    now_ms: i64,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    problems: &mut Vec<String>,
) -> BTreeMap<i32, Option<BTreeMap<String, f64>>> {
    use crate::console::peers;
    let since = now_ms - PEER_WINDOW_MS;
    let query = format!("/api/v1/metrics/history?since={since}");
    let live: Vec<peers::Peer> = peers::peers_of(state)
        .into_iter()
        .filter(|p| p.id != me && state.brokers.get(&p.id).is_some_and(|b| !b.fenced))
        .collect();
    let answers = peers::for_each(&live, |p| {
        let addr = p
            .admin
            .as_ref()
            .ok_or("registered no admin listener address (no admin_listen)")?;
        let body = peers::get_json(addr, &query, tls)?;
        latest_points(&body, since)
    });
    live.iter()
        .zip(answers)
        .map(|(p, a)| {
            if let Err(e) = &a {
                problems.push(format!("metrics of broker {}: {e}", p.id));
            }
            (p.id, a.ok())
        })
        .collect()
}

fn matches(filter: &Option<String>, name: &str) -> bool {
    filter.as_deref().is_none_or(|p| glob_match(p, name))
}

/// The values of `rule`'s subjects this round; `None`: nothing to go on.
pub fn observe(rule: &AlertRule, state: &ClusterState, inputs: &Inputs) -> Option<Observed> {
    let mut out = Observed::new();
    match rule.kind {
        AlertKind::ConsumerLag | AlertKind::ConsumerLagSeconds => {
            for (group, parts) in inputs.groups.as_ref()? {
                if !matches(&rule.group, group) {
                    continue;
                }
                let parts = parts.as_ref().map(|ps| {
                    ps.iter()
                        .filter(|p| matches(&rule.topic, &p.topic))
                        .collect::<Vec<_>>()
                });
                let value = match (rule.kind, parts) {
                    (_, None) => None,
                    (AlertKind::ConsumerLag, Some(ps)) => {
                        Some(ps.iter().map(|p| p.lag).sum::<i64>() as f64)
                    }
                    (_, Some(ps)) => ps
                        .iter()
                        .map(|p| p.age_s)
                        .try_fold(0.0f64, |m, a| a.map(|a| m.max(a))),
                };
                out.insert(format!("group={group}"), value);
            }
        }
        AlertKind::UnderReplicatedPartitions | AlertKind::OfflinePartitions => {
            let offline = rule.kind == AlertKind::OfflinePartitions;
            let count = state
                .topics
                .values()
                .filter(|t| matches(&rule.topic, &t.name))
                .flat_map(|t| &t.partitions)
                .filter(|p| {
                    if offline {
                        p.leader < 0
                    } else {
                        p.isr.len() < p.replicas.len()
                    }
                })
                .count();
            out.insert("cluster".into(), Some(count as f64));
        }
        AlertKind::BrokerDown => {
            for b in state.brokers.values() {
                out.insert(format!("broker={}", b.id), Some(b.fenced as u8 as f64));
            }
            // Replicas on a node that is not registered (removed, or never
            // came back after its registration was dropped).
            for t in state.topics.values() {
                for r in t.partitions.iter().flat_map(|p| &p.replicas) {
                    if !state.brokers.contains_key(r) && !state.brokers.is_empty() {
                        out.insert(format!("broker={r}"), Some(1.0));
                    }
                }
            }
        }
        AlertKind::DiskFreeBytes | AlertKind::DiskFreePercent => {
            for (id, d) in &inputs.disks {
                let v = d.map(|(free, total)| {
                    if rule.kind == AlertKind::DiskFreeBytes {
                        free as f64
                    } else if total > 0 {
                        free as f64 * 100.0 / total as f64
                    } else {
                        100.0
                    }
                });
                out.insert(format!("broker={id}"), v);
            }
        }
        AlertKind::ProduceErrorRate | AlertKind::FetchErrorRate => {
            let series = if rule.kind == AlertKind::ProduceErrorRate {
                "produce_errors_per_s"
            } else {
                "fetch_errors_per_s"
            };
            for (id, m) in inputs.metrics.as_ref()? {
                // A broker with no Produce (Fetch) requests has no errors.
                let v = m.as_ref().map(|m| m.get(series).copied().unwrap_or(0.0));
                out.insert(format!("broker={id}"), v);
            }
        }
        AlertKind::RequestP99Ms => {
            for (id, m) in inputs.metrics.as_ref()? {
                let broker = format!("broker={id},api=");
                match m {
                    Some(m) => {
                        for (name, v) in m {
                            if let Some(api) = name.strip_prefix("request_p99_ms:") {
                                if matches(&rule.api, api) {
                                    out.insert(format!("{broker}{api}"), Some(*v));
                                }
                            }
                        }
                    }
                    // Not read: the broker's alerts keep their state (an
                    // API with no requests has no series, so which APIs it
                    // had is the firing alerts').
                    None => {
                        for (r, subject) in state.alerts.active.keys() {
                            if *r == rule.name && subject.starts_with(&broker) {
                                out.insert(subject.clone(), None);
                            }
                        }
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "inputs_tests.rs"]
mod tests;
