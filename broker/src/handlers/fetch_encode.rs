//! Encoding Fetch responses without copying record bytes.
//!
//! kafka-protocol would copy every record set into one response buffer.
//! Here the response is a list of parts: small encoded pieces (header,
//! per-partition fields) coalesced into buffers, and the record sets as the
//! very `Bytes` the log handed out (for tail reads, the tail cache's own
//! buffers), which the connection writes to the socket as they are. Small
//! record sets are coalesced too: one send beats a copy of a few KiB.
//! The byte layout is Fetch v0–v17's; `tests` checks it against
//! kafka-protocol's decoder for every version.

use bytes::{BufMut, Bytes, BytesMut};

/// Record sets at least this large go out as their own part.
const ZERO_COPY_MIN: usize = 16 << 10;

pub struct PartitionOut {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// v4+: (producer id, first offset) of the aborted transactions in
    /// the records, for read_committed; `None` (null) for read_uncommitted,
    /// as Kafka answers.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// KIP-392 (v11+): the replica to read from instead; -1 none.
    pub preferred_read_replica: i32,
    /// The record bytes, as chunks to be sent back to back.
    pub records: Vec<Bytes>,
}

pub struct TopicOut {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionOut>,
}

struct Parts {
    parts: Vec<Bytes>,
    buf: BytesMut,
}

impl Parts {
    fn push_bytes(&mut self, b: Bytes) {
        if b.len() < ZERO_COPY_MIN {
            self.buf.extend_from_slice(&b);
        } else {
            if !self.buf.is_empty() {
                self.parts.push(self.buf.split().freeze());
            }
            self.parts.push(b);
        }
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, flexible: bool, n: usize) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

fn put_string(buf: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.extend_from_slice(s.as_bytes());
}

/// Encode a whole Fetch response frame (size prefix, header, body) as parts.
pub fn encode(version: i16, correlation_id: i32, topics: Vec<TopicOut>) -> Vec<Bytes> {
    let flexible = version >= 12;
    let mut out = Parts {
        parts: Vec::new(),
        buf: BytesMut::with_capacity(256),
    };
    let b = &mut out.buf;
    b.put_i32(0); // frame size, patched at the end
    b.put_i32(correlation_id);
    if flexible {
        b.put_u8(0); // header tagged fields
    }
    if version >= 1 {
        b.put_i32(0); // throttle_time_ms
    }
    if version >= 7 {
        b.put_i16(0); // error_code
        b.put_i32(0); // session_id: sessionless
    }
    put_array_len(b, flexible, topics.len());
    for t in topics {
        let b = &mut out.buf;
        if version >= 13 {
            b.extend_from_slice(t.topic_id.as_bytes());
        } else {
            put_string(b, flexible, &t.name);
        }
        put_array_len(b, flexible, t.partitions.len());
        for p in t.partitions {
            let b = &mut out.buf;
            b.put_i32(p.partition);
            b.put_i16(p.error_code);
            b.put_i64(p.high_watermark);
            if version >= 4 {
                b.put_i64(p.last_stable_offset);
            }
            if version >= 5 {
                b.put_i64(p.log_start_offset);
            }
            if version >= 4 {
                match &p.aborted_transactions {
                    None if flexible => put_uvarint(b, 0),
                    None => b.put_i32(-1),
                    Some(aborted) => {
                        put_array_len(b, flexible, aborted.len());
                        for &(producer_id, first_offset) in aborted {
                            b.put_i64(producer_id);
                            b.put_i64(first_offset);
                            if flexible {
                                b.put_u8(0); // aborted transaction tagged fields
                            }
                        }
                    }
                }
            }
            if version >= 11 {
                b.put_i32(p.preferred_read_replica);
            }
            let len: usize = p.records.iter().map(Bytes::len).sum();
            if flexible {
                put_uvarint(b, len as u64 + 1);
            } else {
                b.put_i32(len as i32);
            }
            for chunk in p.records {
                out.push_bytes(chunk);
            }
            if flexible {
                out.buf.put_u8(0); // partition tagged fields
            }
        }
        if flexible {
            out.buf.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        out.buf.put_u8(0); // body tagged fields (no node endpoints)
    }
    if !out.buf.is_empty() {
        out.parts.push(out.buf.split().freeze());
    }
    // Patch the frame size into the first part.
    let total: usize = out.parts.iter().map(Bytes::len).sum();
    let mut first = BytesMut::from(&out.parts[0][..]);
    first[..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
    out.parts[0] = first.freeze();
    out.parts
}

/// Set `throttle_time_ms` (Fetch v1+) in a response from [`encode`]: it
/// sits right after the header, always in the first part.
pub fn set_throttle_time(parts: &mut [Bytes], version: i16, ms: i32) {
    if version < 1 || parts.is_empty() {
        return;
    }
    // size prefix + correlation id (+ the flexible header's tagged fields)
    let at = if version >= 12 { 9 } else { 8 };
    let mut first = BytesMut::from(&parts[0][..]);
    first[at..at + 4].copy_from_slice(&ms.to_be_bytes());
    parts[0] = first.freeze();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    fn sample(big: bool) -> Vec<TopicOut> {
        let payload = Bytes::from(vec![7u8; if big { 40_000 } else { 300 }]);
        vec![
            TopicOut {
                name: "orders".into(),
                topic_id: uuid::Uuid::from_u128(0x1234),
                partitions: vec![
                    PartitionOut {
                        partition: 0,
                        error_code: 0,
                        high_watermark: 42,
                        last_stable_offset: 40,
                        log_start_offset: 3,
                        aborted_transactions: Some(vec![(9001, 5), (9002, 11)]),
                        preferred_read_replica: -1,
                        records: vec![payload.clone(), payload.clone()],
                    },
                    PartitionOut {
                        partition: 1,
                        error_code: 1,
                        high_watermark: 7,
                        last_stable_offset: 7,
                        log_start_offset: 0,
                        aborted_transactions: None,
                        preferred_read_replica: 2,
                        records: vec![],
                    },
                ],
            },
            TopicOut {
                name: "x".into(),
                topic_id: uuid::Uuid::from_u128(9),
                partitions: vec![],
            },
        ]
    }

    #[test]
    fn every_version_decodes_with_kafka_protocol() {
        for big in [false, true] {
            for version in 0..=17i16 {
                let mut parts = encode(version, 77, sample(big));
                set_throttle_time(&mut parts, version, 4321);
                if big {
                    assert!(
                        parts.len() >= 3,
                        "large record sets travel as their own parts"
                    );
                }
                let frame: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
                assert_eq!(size, frame.len() - 4, "v{version}");
                let mut body = Bytes::from(frame[4..].to_vec());
                let header_version = if version >= 12 { 1 } else { 0 };
                let header = ResponseHeader::decode(&mut body, header_version).unwrap();
                assert_eq!(header.correlation_id, 77);
                let resp = FetchResponse::decode(&mut body, version).unwrap();
                let want_throttle = if version >= 1 { 4321 } else { 0 };
                assert_eq!(resp.throttle_time_ms, want_throttle, "v{version}");
                assert!(
                    body.is_empty(),
                    "v{version}: {} bytes left over",
                    body.len()
                );
                assert_eq!(resp.responses.len(), 2);
                let t = &resp.responses[0];
                if version >= 13 {
                    assert_eq!(t.topic_id, uuid::Uuid::from_u128(0x1234));
                } else {
                    assert_eq!(t.topic.0.as_str(), "orders");
                }
                let p0 = &t.partitions[0];
                assert_eq!(p0.high_watermark, 42);
                assert_eq!(
                    p0.records.as_ref().unwrap().len(),
                    if big { 80_000 } else { 600 }
                );
                if version >= 5 {
                    assert_eq!(p0.log_start_offset, 3);
                }
                if version >= 4 {
                    assert_eq!(p0.last_stable_offset, 40, "v{version}");
                    let aborted: Vec<(i64, i64)> = p0
                        .aborted_transactions
                        .as_ref()
                        .expect("read_committed: a list")
                        .iter()
                        .map(|t| (t.producer_id.0, t.first_offset))
                        .collect();
                    assert_eq!(aborted, vec![(9001, 5), (9002, 11)], "v{version}");
                    // read_uncommitted: null, as Kafka answers.
                    assert!(t.partitions[1].aborted_transactions.is_none(), "v{version}");
                }
                assert_eq!(t.partitions[1].error_code, 1);
                if version >= 11 {
                    assert_eq!(p0.preferred_read_replica.0, -1);
                    assert_eq!(t.partitions[1].preferred_read_replica.0, 2);
                }
                assert_eq!(t.partitions[1].records.as_ref().unwrap().len(), 0);
            }
        }
    }
}
