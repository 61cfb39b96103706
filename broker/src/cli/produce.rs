//! `shardline produce`: one record batch per partition per request, sent to
//! the partition leaders; values from `-v` or stdin, one per line.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use shard::record::{BatchBuilder, Compression, RecordHeader};

use super::client::{check, topic_name, Client};
use super::ProduceArgs;
use crate::ops::messages::key_partition;
use crate::ops::offsets::{leaders, topic_partitions};
use crate::ops::time::now_ms;

const MAX_CHUNK_MESSAGES: usize = 1000;
const MAX_CHUNK_BYTES: usize = 512 * 1024;
const LINGER: Duration = Duration::from_millis(5);

fn codec(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Split a stdin line into (key, value).
pub fn split_line(
    line: &str,
    sep: Option<&str>,
    key: Option<&str>,
) -> Result<(Option<String>, String)> {
    match sep {
        Some(sep) => match line.split_once(sep) {
            Some((k, v)) => Ok((Some(k.to_string()), v.to_string())),
            None => bail!("no key separator '{sep}' in line '{line}'"),
        },
        None => Ok((key.map(str::to_string), line.to_string())),
    }
}

struct Msg {
    key: Option<String>,
    value: String,
}

pub fn run(args: ProduceArgs) -> Result<()> {
    let mut client = super::client::connect(&args.conn.bootstrap)?;
    let parts = topic_partitions(&mut client, &args.topic)?;
    if parts.is_empty() {
        bail!("topic {} has no partitions", args.topic);
    }
    let all: Vec<i32> = parts.iter().map(|p| p.partition).collect();
    if let Some(p) = args.partition {
        if !all.contains(&p) {
            bail!(
                "UNKNOWN_TOPIC_OR_PARTITION: {} has no partition {p}",
                args.topic
            );
        }
    }
    let ldr = leaders(&parts, &all, &args.topic)?;
    let mut producer = Producer {
        client,
        args: &args,
        leaders: ldr,
        partitions: all,
        next_rr: 0,
    };
    if let Some(v) = &args.value {
        return producer.send(vec![Msg {
            key: args.key.clone(),
            value: v.clone(),
        }]);
    }
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<String>>(MAX_CHUNK_MESSAGES);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Ok(first) = rx.recv() {
        let mut lines = vec![first?];
        let mut bytes = lines[0].len();
        while lines.len() < MAX_CHUNK_MESSAGES && bytes < MAX_CHUNK_BYTES {
            match rx.recv_timeout(LINGER) {
                Ok(line) => {
                    let line = line?;
                    bytes += line.len();
                    lines.push(line);
                }
                Err(_) => break,
            }
        }
        let mut msgs = Vec::with_capacity(lines.len());
        for line in lines {
            let line = line.strip_suffix('\r').unwrap_or(&line);
            let (key, value) =
                split_line(line, args.key_separator.as_deref(), args.key.as_deref())?;
            msgs.push(Msg { key, value });
        }
        producer.send(msgs)?;
    }
    Ok(())
}

struct Producer<'a> {
    client: Client,
    args: &'a ProduceArgs,
    leaders: BTreeMap<i32, i32>,
    partitions: Vec<i32>,
    next_rr: usize,
}

impl Producer<'_> {
    fn pick(&mut self, key: Option<&str>) -> i32 {
        if let Some(p) = self.args.partition {
            return p;
        }
        let n = self.partitions.len();
        match key {
            Some(k) => self.partitions[key_partition(k.as_bytes(), n as i32) as usize],
            None => {
                self.next_rr += 1;
                self.partitions[(self.next_rr - 1) % n]
            }
        }
    }

    fn send(&mut self, msgs: Vec<Msg>) -> Result<()> {
        let headers: Vec<RecordHeader> = self
            .args
            .headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: k.clone(),
                value: Some(Bytes::from(v.clone())),
            })
            .collect();
        // partition -> (builder, indexes of msgs in it)
        let mut batches: BTreeMap<i32, (BatchBuilder, usize)> = BTreeMap::new();
        let mut placed = Vec::with_capacity(msgs.len());
        let now = now_ms();
        for m in &msgs {
            let p = self.pick(m.key.as_deref());
            let entry = batches
                .entry(p)
                .or_insert_with(|| (BatchBuilder::new(codec(&self.args.compression)), 0));
            entry.0.append(
                now,
                m.key.clone().map(Bytes::from),
                Some(Bytes::from(m.value.clone())),
                headers.clone(),
            )?;
            placed.push((p, entry.1));
            entry.1 += 1;
        }
        let mut by_leader: BTreeMap<i32, Vec<PartitionProduceData>> = BTreeMap::new();
        for (p, (builder, _)) in &batches {
            let leader = self.leaders[p];
            by_leader.entry(leader).or_default().push(
                PartitionProduceData::default()
                    .with_index(*p)
                    .with_records(Some(Bytes::from(builder.build()?))),
            );
        }
        let mut base: BTreeMap<i32, i64> = BTreeMap::new();
        for (leader, data) in by_leader {
            let req = ProduceRequest::default()
                .with_acks(self.args.acks)
                .with_timeout_ms(self.args.timeout_ms)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(&self.args.topic))
                    .with_partition_data(data)]);
            let conn = self.client.conn(leader)?;
            if self.args.acks == 0 {
                conn.send_no_response(&req)?;
                continue;
            }
            let (resp, _) = conn.send(&req)?;
            for t in resp.responses {
                for p in t.partition_responses {
                    check(
                        p.error_code,
                        format!("producing to {}[{}]", self.args.topic, p.index),
                        p.error_message.as_ref(),
                    )?;
                    base.insert(p.index, p.base_offset);
                }
            }
        }
        for (p, i) in placed {
            if self.args.acks == 0 {
                println!("Sent to partition {p} (acks=0: offset unknown)");
            } else {
                let b = base
                    .get(&p)
                    .ok_or_else(|| anyhow!("no produce response for partition {p}"))?;
                println!("Produced to partition {p} at offset {}", b + i as i64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines() {
        assert_eq!(
            split_line("k:v:w", Some(":"), None).unwrap(),
            (Some("k".into()), "v:w".into())
        );
        assert_eq!(
            split_line("v", None, Some("k")).unwrap(),
            (Some("k".into()), "v".into())
        );
        assert_eq!(split_line("v", None, None).unwrap(), (None, "v".into()));
        assert!(split_line("v", Some(":"), None).is_err());
    }
}
