//! `shardline consume`: assign-style Fetch (no group) from chosen start
//! offsets, printing each record through a format string.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub use crate::ops::messages::{decode_fetched, Rec};
use anyhow::{bail, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};

use super::client::{check, topic_name};
use super::ConsumeArgs;
use crate::ops::offsets::{leaders, list_offsets, topic_partitions, EARLIEST, LATEST};
use crate::ops::time::format_ms;

const MAX_WAIT_MS: u64 = 500;

/// The format used when `--format` is not given, as kafka-console-consumer
/// prints: [headers TAB] [key TAB] value.
pub fn default_format(print_keys: bool, print_headers: bool) -> String {
    let mut f = String::new();
    if print_headers {
        f.push_str("%h\t");
    }
    if print_keys {
        f.push_str("%k\t");
    }
    f.push_str("%v\n");
    f
}

fn bytes_or_null(b: &Option<Vec<u8>>) -> &[u8] {
    b.as_deref().unwrap_or(b"null")
}

/// Expand `fmt` for `rec` (see `--format`); a newline is appended unless
/// the format already ends with one.
pub fn render(fmt: &str, rec: &Rec) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(rec.topic.as_bytes()),
                Some('p') => out.extend_from_slice(rec.partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(rec.offset.to_string().as_bytes()),
                Some('k') => out.extend_from_slice(bytes_or_null(&rec.key)),
                Some('v') => out.extend_from_slice(bytes_or_null(&rec.value)),
                Some('T') => out.extend_from_slice(rec.timestamp.to_string().as_bytes()),
                Some('d') => out.extend_from_slice(format_ms(rec.timestamp).as_bytes()),
                Some('h') => {
                    if rec.headers.is_empty() {
                        out.extend_from_slice(b"NO_HEADERS");
                    }
                    for (i, (k, v)) in rec.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b':');
                        out.extend_from_slice(bytes_or_null(v));
                    }
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out
}

pub fn run(args: ConsumeArgs) -> Result<()> {
    let topic = args.topic.as_str();
    let mut client = super::client::connect(&args.conn.bootstrap)?;
    let parts = topic_partitions(&mut client, topic)?;
    let wanted: Vec<i32> = if args.partitions.is_empty() {
        parts.iter().map(|p| p.partition).collect()
    } else {
        args.partitions.clone()
    };
    let ldr = leaders(&parts, &wanted, topic)?;
    let mut positions: BTreeMap<i32, i64> = if let Some(o) = args.offset {
        wanted.iter().map(|p| (*p, o)).collect()
    } else if let Some(ts) = args.from_time {
        let latest = list_offsets(&mut client, topic, &ldr, LATEST)?;
        let mut at = list_offsets(&mut client, topic, &ldr, ts)?;
        for (p, o) in at.iter_mut() {
            if *o < 0 {
                *o = latest[p];
            }
        }
        at
    } else if args.from_beginning {
        list_offsets(&mut client, topic, &ldr, EARLIEST)?
    } else {
        list_offsets(&mut client, topic, &ldr, LATEST)?
    };
    let fmt = args
        .format
        .clone()
        .unwrap_or_else(|| default_format(args.print_keys, args.print_headers));
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (p, l) in &ldr {
        by_leader.entry(*l).or_default().push(*p);
    }
    let mut high_watermarks: BTreeMap<i32, i64> = BTreeMap::new();
    let mut printed = 0usize;
    let mut last_message = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        for (leader, ps) in &by_leader {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(MAX_WAIT_MS as i32)
                .with_min_bytes(1)
                .with_max_bytes(50 * 1024 * 1024)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        ps.iter()
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(positions[p])
                                    .with_last_fetched_epoch(-1)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(1024 * 1024)
                            })
                            .collect(),
                    )]);
            let (resp, _) = client.conn(*leader)?.send(&req)?;
            check(resp.error_code, format!("fetching {topic}"), None)?;
            for t in resp.responses {
                for pd in t.partitions {
                    let p = pd.partition_index;
                    check(
                        pd.error_code,
                        format!(
                            "fetching {topic}[{p}] at offset {}",
                            positions.get(&p).copied().unwrap_or(-1)
                        ),
                        None,
                    )?;
                    high_watermarks.insert(p, pd.high_watermark);
                    let Some(data) = pd.records else { continue };
                    let Some(pos) = positions.get(&p).copied() else {
                        continue;
                    };
                    let (recs, next) = decode_fetched(topic, p, &data, pos)?;
                    positions.insert(p, next);
                    for r in recs {
                        if args.count.is_some_and(|n| printed >= n) {
                            break;
                        }
                        if out.write_all(&render(&fmt, &r)).is_err() {
                            return Ok(()); // stdout closed (e.g. `| head`)
                        }
                        printed += 1;
                        last_message = Instant::now();
                    }
                }
            }
            if out.flush().is_err() {
                return Ok(());
            }
        }
        if args.exit_at_end
            && positions
                .iter()
                .all(|(p, pos)| high_watermarks.get(p).is_some_and(|hw| pos >= hw))
        {
            break;
        }
        if let Some(t) = args.timeout_ms {
            if last_message.elapsed() >= Duration::from_millis(t) {
                break;
            }
        }
    }
    out.flush().ok();
    drop(out);
    eprintln!("Processed a total of {printed} messages");
    if args.count.is_some_and(|n| printed < n) && args.timeout_ms.is_none() && !args.exit_at_end {
        bail!("stopped after {printed} messages");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shard::record::{BatchBuilder, Compression, RecordHeader};

    fn rec() -> Rec {
        Rec {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![("a".into(), Some(b"1".to_vec())), ("b".into(), None)],
        }
    }

    #[test]
    fn renders_formats() {
        let r = rec();
        assert_eq!(render("%t/%p@%o %k=%v", &r), b"t/2@7 k=v\n");
        assert_eq!(
            render("%h\\t%T %d%%\n", &r),
            b"a:1,b:null\t1000 1970-01-01T00:00:01.000Z%\n"
        );
        assert_eq!(
            render(&default_format(true, true), &r),
            b"a:1,b:null\tk\tv\n"
        );
        assert_eq!(render(&default_format(false, false), &r), b"v\n");
        let bare = Rec {
            key: None,
            headers: vec![],
            ..rec()
        };
        assert_eq!(
            render(&default_format(true, true), &bare),
            b"NO_HEADERS\tnull\tv\n"
        );
    }

    #[test]
    fn decodes_batches_skipping_before_position_and_partial_tail() {
        let mut data = Vec::new();
        for (base, n) in [(10i64, 3), (13, 2)] {
            let mut b = BatchBuilder::new(Compression::Gzip).base_offset(base);
            for i in 0..n {
                let hdr = vec![RecordHeader {
                    key: "h".into(),
                    value: Some(Bytes::from_static(b"x")),
                }];
                b.append(
                    500 + i,
                    None,
                    Some(Bytes::from(format!("m{}", base + i))),
                    hdr,
                )
                .unwrap();
            }
            data.extend(b.build().unwrap());
        }
        let full = data.len();
        let head = data[..30].to_vec();
        data.extend_from_slice(&head); // truncated batch
        let (recs, next) = decode_fetched("t", 0, &data, 11).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12, 13, 14]
        );
        assert_eq!(recs[0].value.as_deref(), Some(&b"m11"[..]));
        assert_eq!(recs[0].timestamp, 501);
        assert_eq!(next, 15);
        let (none, next) = decode_fetched("t", 0, &data[..full], 20).unwrap();
        assert!(none.is_empty());
        assert_eq!(next, 20);
    }
}
