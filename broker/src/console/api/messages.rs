//! Messages: browse a partition from an offset or a time, optionally only
//! the records with a given key, read_committed (default) or not; and send
//! one message with key, headers and partition.

use serde::Deserialize;
use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::router::{ApiResult, Reply};
use super::super::{ok, Call};
use super::topics::topic_name;
use crate::ops::messages::{fetch_once, key_partition, produce_one, Rec};
use crate::ops::offsets::{leaders, list_offsets, topic_partitions, EARLIEST, LATEST};
use crate::ops::time::{format_ms, now_ms, parse_time};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// Fetches per browse call, at most: a key search over a long log stops
/// here and says where (`next_offset`), and the caller continues from it.
const MAX_FETCHES: usize = 32;
const FETCH_BYTES: i32 = 1 << 20;
/// Bytes of one key or value shown as text, JSON and hex.
const SHOW_BYTES: usize = 64 * 1024;

/// A key, value or header value as the UI shows it: text when UTF-8, JSON
/// pretty-printed when it parses, hex always (the first [`SHOW_BYTES`]).
pub fn render(b: Option<&[u8]>) -> Value {
    let Some(b) = b else { return Value::Null };
    let shown = &b[..b.len().min(SHOW_BYTES)];
    let text = std::str::from_utf8(shown).ok();
    let pretty = text
        .filter(|_| shown.len() == b.len())
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v.is_object() || v.is_array())
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(shown.len() * 2);
    for x in shown {
        hex.push(DIGITS[(x >> 4) as usize] as char);
        hex.push(DIGITS[(x & 15) as usize] as char);
    }
    json!({
        "size": b.len(),
        "truncated": shown.len() < b.len(),
        "text": text,
        "json": pretty,
        "hex": hex,
    })
}

fn message(r: &Rec) -> Value {
    json!({
        "offset": r.offset,
        "timestamp": r.timestamp,
        "time": format_ms(r.timestamp),
        "key": render(r.key.as_deref()),
        "value": render(r.value.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| json!({"key": k, "value": render(v.as_deref())})).collect::<Vec<_>>(),
    })
}

fn partition_of(c: &Call) -> Result<i32, ApiError> {
    let p = c.param("partition");
    p.parse::<i32>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ApiError::bad(format!("partition {p:?} is not a partition number")))
}

pub fn browse(c: &mut Call) -> ApiResult {
    let topic = c.param("topic").to_string();
    topic_name(&topic)?;
    let partition = partition_of(c)?;
    let offset = c.query_as::<i64>("offset")?;
    let time = match c.query("time") {
        None => None,
        Some(t) => Some(parse_time(t).map_err(|e| ApiError::bad(format!("time: {e}")))?),
    };
    if offset.is_some() && time.is_some() {
        return Err(ApiError::bad("give offset or time, not both"));
    }
    if offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad("offset must be 0 or more"));
    }
    let limit = c.query_as::<usize>("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let read_committed = match c.query("isolation").unwrap_or("read_committed") {
        "read_committed" => true,
        "read_uncommitted" => false,
        other => {
            return Err(ApiError::bad(format!(
                "isolation {other:?}: read_committed or read_uncommitted"
            )))
        }
    };
    let key = c.query("key").map(|k| k.as_bytes().to_vec());
    c.kafka(|client| {
        let parts = topic_partitions(client, &topic)?;
        let ldr = leaders(&parts, &[partition], &topic)?;
        let leader = ldr[&partition];
        let earliest = list_offsets(client, &topic, &ldr, EARLIEST)?[&partition];
        let start = match (offset, time) {
            (Some(o), _) => o.max(earliest),
            (None, Some(ts)) => match list_offsets(client, &topic, &ldr, ts)?[&partition] {
                -1 => list_offsets(client, &topic, &ldr, LATEST)?[&partition],
                o => o,
            },
            (None, None) => earliest,
        };
        let mut pos = start;
        let mut out = Vec::new();
        let mut last = None;
        let mut end_reached = false;
        for _ in 0..MAX_FETCHES {
            let f = fetch_once(
                client,
                leader,
                &topic,
                partition,
                pos,
                read_committed,
                FETCH_BYTES,
                50,
            )?;
            let end = if read_committed {
                f.last_stable_offset.max(0)
            } else {
                f.high_watermark
            };
            for r in &f.records {
                if out.len() >= limit {
                    break;
                }
                if key
                    .as_ref()
                    .is_none_or(|k| r.key.as_deref() == Some(&k[..]))
                {
                    out.push(message(r));
                }
                // Resume after the last record looked at.
                pos = pos.max(r.offset + 1);
            }
            let progressed = f.next > pos && out.len() < limit;
            if progressed {
                pos = f.next;
            }
            last = Some(f);
            if out.len() >= limit {
                break;
            }
            if pos >= end {
                end_reached = true;
                break;
            }
            if !progressed && last.as_ref().is_some_and(|f| f.records.is_empty()) {
                break;
            }
        }
        let f = last.unwrap_or_default();
        Ok(json!({
            "topic": topic,
            "partition": partition,
            "isolation": if read_committed { "read_committed" } else { "read_uncommitted" },
            "start_offset": start,
            "next_offset": pos,
            "end_reached": end_reached,
            "log_start_offset": f.log_start_offset,
            "high_watermark": f.high_watermark,
            "last_stable_offset": f.last_stable_offset,
            "messages": out,
        }))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Headers {
    List(Vec<Header>),
    Map(std::collections::BTreeMap<String, Option<String>>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    partition: Option<i32>,
    key: Option<String>,
    value: Option<String>,
    headers: Option<Headers>,
    timestamp: Option<i64>,
}

pub fn send(c: &mut Call) -> ApiResult {
    let topic = c.param("topic").to_string();
    topic_name(&topic)?;
    let m: Send = c.body()?;
    if m.partition.is_some_and(|p| p < 0) {
        return Err(ApiError::bad("partition must be 0 or more"));
    }
    if m.timestamp.is_some_and(|t| t < 0) {
        return Err(ApiError::bad(
            "timestamp must be epoch milliseconds, 0 or more",
        ));
    }
    let headers: Vec<shard::record::RecordHeader> = match m.headers {
        None => Vec::new(),
        Some(Headers::List(l)) => l.into_iter().map(|h| (h.key, h.value)).collect::<Vec<_>>(),
        Some(Headers::Map(m)) => m.into_iter().collect(),
    }
    .into_iter()
    .map(|(key, value)| shard::record::RecordHeader {
        key,
        value: value.map(bytes::Bytes::from),
    })
    .collect();
    let (partition, offset) = c.kafka(|client| {
        let parts = topic_partitions(client, &topic)?;
        let n = parts.len() as i32;
        if n == 0 {
            return Err(
                ApiError::new(503, format!("topic {topic} has no partitions yet"))
                    .with_code("LEADER_NOT_AVAILABLE"),
            );
        }
        let partition = match (m.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(k)) => key_partition(k.as_bytes(), n),
            (None, None) => (now_ms() % n as i64) as i32,
        };
        let ldr = leaders(&parts, &[partition], &topic)?;
        let offset = produce_one(
            client,
            ldr[&partition],
            &topic,
            partition,
            m.timestamp.unwrap_or_else(now_ms),
            m.key.clone().map(bytes::Bytes::from),
            m.value.clone().map(bytes::Bytes::from),
            headers,
        )?;
        Ok((partition, offset))
    })?;
    Ok(Reply::created(
        json!({"topic": topic, "partition": partition, "offset": offset}),
    ))
}
