//! `GET /metrics/series` and `GET /metrics/history`: this broker's metrics
//! history (see `console::history`). Open like `/metrics` on the same
//! listener, which shows the same figures; group lag is served per group
//! to those who may describe it (`/groups/{group}/lag-history`).

use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::history::{POINTS, STEP};
use super::super::router::ApiResult;
use super::super::{ok, Call};

pub fn series(c: &mut Call) -> ApiResult {
    ok(json!({
        "resolution_s": STEP.as_secs(),
        "capacity_points": POINTS,
        "series": c.console.history.names(),
    }))
}

pub fn history(c: &mut Call) -> ApiResult {
    let since = c.query_as::<i64>("since")?.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad("since is epoch milliseconds, 0 or more"));
    }
    let h = &c.console.history;
    let names: Vec<String> = match c.query("series") {
        None | Some("") => h.names(),
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
    };
    let mut out = serde_json::Map::new();
    for n in names {
        let pts = h
            .get(&n, since)
            .filter(|_| !n.starts_with("group_lag:"))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no series {n:?}; GET /api/v1/metrics/series lists them"
                ))
            })?;
        out.insert(
            n,
            Value::Array(pts.iter().map(|(t, v)| json!([t, v])).collect()),
        );
    }
    ok(json!({
        "resolution_s": STEP.as_secs(),
        "series": out,
    }))
}
