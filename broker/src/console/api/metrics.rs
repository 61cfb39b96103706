//! `GET /metrics/series` and `GET /metrics/history`: this broker's metrics
//! history (see `console::history`). Open like `/metrics` on the same
//! listener, which shows the same figures; group lag is served per group
//! to those who may describe it (`/groups/{group}/lag-history`).
//!
//! `GET /metrics/cluster-history`: the same of every registered broker (or
//! one), this broker's from memory and the others' from their admin
//! listeners (`console::peers`); a broker that does not answer is listed
//! as missing with the reason. It needs a session (not open like the
//! others): one call makes a request to every broker, which an anonymous
//! caller should not be able to multiply.

use serde_json::{json, Map, Value};

use super::super::error::ApiError;
use super::super::history::{History, POINTS, STEP};
use super::super::peers::{self, Peer};
use super::super::router::ApiResult;
use super::super::{ok, Call};

pub fn series(c: &mut Call) -> ApiResult {
    ok(json!({
        "resolution_s": STEP.as_secs(),
        "capacity_points": POINTS,
        "series": c.console.history.names(),
    }))
}

fn since_of(c: &Call) -> Result<i64, ApiError> {
    let since = c.query_as::<i64>("since")?.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad("since is epoch milliseconds, 0 or more"));
    }
    Ok(since)
}

/// The series names asked for (`None`: all); group lag is not among them.
fn names_of(c: &Call) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = c.query("series").filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(n) = names
        .iter()
        .find(|n| n.is_empty() || n.starts_with("group_lag:"))
    {
        return Err(ApiError::not_found(format!(
            "no series {n:?}; GET /api/v1/metrics/series lists them"
        )));
    }
    Ok(Some(names))
}

/// `{name: [[ms, v], ...]}` of this broker; an unknown name is a 404 when
/// `strict`, left out otherwise.
fn local(
    h: &History,
    names: Option<Vec<String>>,
    since: i64,
    strict: bool,
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for n in names.unwrap_or_else(|| h.names()) {
        match h.get(&n, since) {
            Some(pts) => {
                out.insert(
                    n,
                    Value::Array(pts.iter().map(|(t, v)| json!([t, v])).collect()),
                );
            }
            None if strict => {
                return Err(ApiError::not_found(format!(
                    "no series {n:?}; GET /api/v1/metrics/series lists them"
                )))
            }
            None => {}
        }
    }
    Ok(out)
}

pub fn history(c: &mut Call) -> ApiResult {
    let since = since_of(c)?;
    let series = local(&c.console.history, names_of(c)?, since, true)?;
    ok(json!({
        "resolution_s": STEP.as_secs(),
        "series": series,
    }))
}

pub fn cluster_history(c: &mut Call) -> ApiResult {
    let since = since_of(c)?;
    let names = names_of(c)?;
    let me = c.console.node_id;
    let mut brokers = peers::registered();
    // A broker outside a cluster (or not registered yet) is still itself.
    if !brokers.iter().any(|p| p.id == me) {
        brokers.push(Peer {
            id: me,
            admin: None,
        });
        brokers.sort_by_key(|p| p.id);
    }
    match c.query("broker").unwrap_or("all") {
        "all" => {}
        id => {
            let id: i32 = id
                .parse()
                .map_err(|_| ApiError::bad(format!("broker {id:?}: a broker id or all")))?;
            brokers.retain(|p| p.id == id);
            if brokers.is_empty() {
                return Err(ApiError::not_found(format!("no broker {id} is registered")));
            }
        }
    }
    // Peers are asked for everything since `since` and the names picked
    // here: a series one broker has not got yet (an API it never served)
    // is left out for it rather than failing its whole answer.
    let query = format!("/api/v1/metrics/history?since={since}");
    let tls = c.console.peer_tls.as_ref();
    let history = &*c.console.history;
    let answers = peers::for_each(&brokers, |p| -> Result<Map<String, Value>, String> {
        if p.id == me {
            return local(history, names.clone(), since, false).map_err(|e| e.error);
        }
        let addr = p.admin.as_ref().ok_or_else(|| {
            "registered no admin listener address (no admin_listen, or a version that does not register it)"
                .to_string()
        })?;
        let body = peers::get_json(addr, &query, tls)?;
        let Some(Value::Object(mut all)) = body.get("series").cloned() else {
            return Err("its answer has no series".to_string());
        };
        if let Some(names) = &names {
            all.retain(|k, _| names.contains(k));
        }
        Ok(all)
    });
    let rows: Vec<Value> = brokers
        .iter()
        .zip(answers)
        .map(|(p, a)| {
            let (status, error, series) = match a {
                Ok(s) => ("ok", None, s),
                Err(e) => ("missing", Some(e), Map::new()),
            };
            json!({"id": p.id, "self": p.id == me, "status": status, "error": error, "series": series})
        })
        .collect();
    ok(json!({
        "resolution_s": STEP.as_secs(),
        "brokers": rows,
    }))
}
