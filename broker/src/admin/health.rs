//! `GET /health`: is this broker serving? 200 and `{"status":"ok",...}`
//! when every shard has recovered its partitions and accepts connections
//! and storage takes writes; 503 and `{"status":"unavailable","reasons":
//! [...],...}` otherwise, each reason one sentence.
//!
//! What it weighs: the shards' readiness ([`READINESS`], which the shards
//! update at start and at shutdown), the storage health the disk monitor
//! and the logs publish (`shard::log::health::HEALTH`: writes refused for
//! low disk, partitions offline after a storage error), and any
//! [`HealthSource`] registered with [`register`] — the hook for the
//! cluster code (quorum leader known, broker fenced), which adds facts to
//! the body and may name a problem that turns the answer into a 503.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use shard::log::health::HEALTH;

/// Extra facts for `/health`, asked at every request of it (on the admin
/// thread, never a shard).
pub trait HealthSource: Send + Sync {
    /// Facts shown in the body under `"facts"`, e.g. `("quorum_leader", "2")`.
    fn facts(&self) -> Vec<(String, String)>;
    /// Why this broker should not be given clients now, if so (e.g. "fenced
    /// by the controller"): `/health` then answers 503 with it.
    fn problem(&self) -> Option<String> {
        None
    }
}

/// How many shards serve, of how many.
pub struct Readiness {
    expected: AtomicUsize,
    serving: AtomicUsize,
    stopping: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    pub const fn new() -> Self {
        Self {
            expected: AtomicUsize::new(0),
            serving: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    /// The broker runs `n` shards.
    pub fn expect_shards(&self, n: usize) {
        self.expected.store(n, Relaxed);
    }

    /// A shard has recovered and accepts connections.
    pub fn shard_serving(&self) {
        self.serving.fetch_add(1, Relaxed);
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.stopping.store(true, Relaxed);
    }

    fn problem(&self) -> Option<String> {
        let (serving, expected) = (self.serving.load(Relaxed), self.expected.load(Relaxed));
        if self.stopping.load(Relaxed) {
            Some("shutting down".into())
        } else if expected == 0 || serving < expected {
            Some(format!(
                "starting: {serving} of {expected} shard(s) serving (recovering partitions)"
            ))
        } else {
            None
        }
    }
}

/// The process's readiness, which the shards update.
pub static READINESS: Readiness = Readiness::new();

/// The registered health sources.
#[derive(Default)]
pub struct Sources {
    list: Mutex<Vec<Arc<dyn HealthSource>>>,
}

impl Sources {
    pub const fn new() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
        }
    }

    pub fn register(&self, s: Arc<dyn HealthSource>) {
        self.list.lock().expect("health sources lock").push(s);
    }

    fn all(&self) -> Vec<Arc<dyn HealthSource>> {
        self.list.lock().expect("health sources lock").clone()
    }
}

/// The process's health sources.
pub static SOURCES: Sources = Sources::new();

/// Weigh `s` in `/health` from now on.
// The hook for the cluster code; nothing registers one yet.
#[allow(dead_code)]
pub fn register(s: Arc<dyn HealthSource>) {
    SOURCES.register(s);
}

/// The storage facts `/health` weighs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage {
    pub writes_refused: bool,
    pub offline_partitions: i64,
}

impl Storage {
    pub fn now() -> Self {
        Self {
            writes_refused: HEALTH.refusing_writes(),
            offline_partitions: HEALTH.offline_partitions(),
        }
    }
}

/// An answer to `/health`.
#[derive(Debug)]
pub struct Report {
    /// 200 or 503.
    pub status: u16,
    /// JSON.
    pub body: String,
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The answer from these inputs.
pub fn report(readiness: &Readiness, storage: Storage, sources: &Sources) -> Report {
    let sources = sources.all();
    let mut reasons: Vec<String> = readiness.problem().into_iter().collect();
    if storage.writes_refused {
        reasons.push(
            "disk free space is below the floor (disk_free_min_bytes / disk_free_min_percent): \
             produce is refused"
                .into(),
        );
    }
    if storage.offline_partitions > 0 {
        reasons.push(format!(
            "{} partition(s) offline after a storage error",
            storage.offline_partitions
        ));
    }
    reasons.extend(sources.iter().filter_map(|s| s.problem()));
    let facts: Vec<String> = sources
        .iter()
        .flat_map(|s| s.facts())
        .map(|(k, v)| format!("{}:{}", json(&k), json(&v)))
        .collect();
    let ok = reasons.is_empty();
    let mut body = format!("{{\"status\":\"{}\"", if ok { "ok" } else { "unavailable" });
    if !ok {
        let reasons: Vec<String> = reasons.iter().map(|r| json(r)).collect();
        body.push_str(&format!(",\"reasons\":[{}]", reasons.join(",")));
    }
    body.push_str(&format!(
        ",\"shards\":{},\"shards_serving\":{},\"disk_writes_refused\":{},\
         \"storage_offline_partitions\":{},\"facts\":{{{}}}}}\n",
        readiness.expected.load(Relaxed),
        readiness.serving.load(Relaxed),
        storage.writes_refused,
        storage.offline_partitions,
        facts.join(",")
    ));
    Report {
        status: if ok { 200 } else { 503 },
        body,
    }
}

/// The process's answer now.
pub fn now() -> Report {
    report(&READINESS, Storage::now(), &SOURCES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(r: &Report) -> serde_json::Value {
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
    }

    fn serving(n: usize) -> Readiness {
        let r = Readiness::new();
        r.expect_shards(n);
        for _ in 0..n {
            r.shard_serving();
        }
        r
    }

    #[test]
    fn ok_once_every_shard_serves() {
        let r = Readiness::new();
        r.expect_shards(2);
        r.shard_serving();
        let rep = report(&r, Storage::default(), &Sources::new());
        assert_eq!(rep.status, 503);
        let v = parse(&rep);
        assert_eq!(v["status"], "unavailable");
        assert_eq!(
            v["reasons"][0],
            "starting: 1 of 2 shard(s) serving (recovering partitions)"
        );
        r.shard_serving();
        let rep = report(&r, Storage::default(), &Sources::new());
        assert_eq!(rep.status, 200, "{}", rep.body);
        let v = parse(&rep);
        assert_eq!(
            (v["status"].as_str(), v["shards_serving"].as_u64()),
            (Some("ok"), Some(2))
        );
        assert!(v.get("reasons").is_none());
        r.stopping();
        let rep = report(&r, Storage::default(), &Sources::new());
        assert_eq!(
            (rep.status, parse(&rep)["reasons"][0].as_str()),
            (503, Some("shutting down"))
        );
    }

    #[test]
    fn storage_trouble_is_a_503_with_the_reason() {
        let full = Storage {
            writes_refused: true,
            offline_partitions: 0,
        };
        let rep = report(&serving(1), full, &Sources::new());
        assert_eq!(rep.status, 503);
        assert!(parse(&rep)["reasons"][0]
            .as_str()
            .unwrap()
            .contains("produce is refused"));
        let faulted = Storage {
            writes_refused: false,
            offline_partitions: 3,
        };
        let rep = report(&serving(1), faulted, &Sources::new());
        assert_eq!(
            parse(&rep)["reasons"][0],
            "3 partition(s) offline after a storage error"
        );
    }

    #[test]
    fn sources_add_facts_and_problems() {
        struct Quorum(Option<&'static str>);
        impl HealthSource for Quorum {
            fn facts(&self) -> Vec<(String, String)> {
                vec![("quorum_leader".into(), "2 \"x\"".into())]
            }
            fn problem(&self) -> Option<String> {
                self.0.map(String::from)
            }
        }
        let sources = Sources::new();
        sources.register(Arc::new(Quorum(None)));
        let rep = report(&serving(1), Storage::default(), &sources);
        assert_eq!(rep.status, 200);
        assert_eq!(parse(&rep)["facts"]["quorum_leader"], "2 \"x\"");
        sources.register(Arc::new(Quorum(Some("fenced by the controller"))));
        let rep = report(&serving(1), Storage::default(), &sources);
        assert_eq!(rep.status, 503);
        assert_eq!(parse(&rep)["reasons"][0], "fenced by the controller");
    }
}
