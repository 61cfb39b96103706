//! The records of `__transaction_state`, byte for byte as Kafka writes them
//! (`TransactionLogKey` v0 and `TransactionLogValue` v0/v1), so Kafka's
//! `TransactionLogMessageFormatter` can read our log and we could read
//! Kafka's. Hand-written: kafka-protocol does not generate these internal
//! record schemas, and they are small.
//!
//! Key: `[version i16 = 0][transactional id: i16 length, UTF-8]`.
//! Value v1 (flexible, written here): `[version i16 = 1][producer id i64]
//! [epoch i16][timeout i32][state i8][partitions: compact nullable array of
//! (compact string topic, compact array of i32, tags)][last update i64]
//! [start i64][tags: 0 previous producer id, 1 next producer id, 2 client
//! transaction version, each only when not its default]`. A tombstone (no
//! value) removes the id.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{Transit, TxnState, NO_PRODUCER_ID};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 1;

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    out.put_i16(transactional_id.len() as i16);
    out.put_slice(transactional_id.as_bytes());
    out.freeze()
}

/// The transactional id of a key; `None` for a key of another version
/// (Kafka skips those).
pub fn decode_key(mut b: &[u8]) -> Result<Option<String>, String> {
    let version = get_i16(&mut b)?;
    if version != KEY_VERSION {
        return Ok(None);
    }
    let len = get_i16(&mut b)?;
    Ok(Some(get_str(&mut b, len.max(0) as usize)?))
}

pub fn encode_value(t: &Transit) -> Bytes {
    assert!(
        t.state != TxnState::Empty || t.partitions.is_empty(),
        "an Empty transaction with partitions: {t:?}"
    );
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(VALUE_VERSION);
    out.put_i64(t.producer_id);
    out.put_i16(t.producer_epoch);
    out.put_i32(t.timeout_ms);
    out.put_i8(t.state as i8);
    if t.state == TxnState::Empty {
        put_uvarint(&mut out, 0); // null
    } else {
        let topics = by_topic(&t.partitions);
        put_uvarint(&mut out, topics.len() as u64 + 1);
        for (topic, ids) in topics {
            put_uvarint(&mut out, topic.len() as u64 + 1);
            out.put_slice(topic.as_bytes());
            put_uvarint(&mut out, ids.len() as u64 + 1);
            for id in ids {
                out.put_i32(id);
            }
            put_uvarint(&mut out, 0); // no tagged fields
        }
    }
    out.put_i64(t.last_update_ms);
    out.put_i64(t.start_ms);
    let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
    if t.prev_producer_id != NO_PRODUCER_ID {
        tags.push((0, t.prev_producer_id.to_be_bytes().to_vec()));
    }
    if t.next_producer_id != NO_PRODUCER_ID {
        tags.push((1, t.next_producer_id.to_be_bytes().to_vec()));
    }
    if t.client_tv != 0 {
        tags.push((2, t.client_tv.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut out, tags.len() as u64);
    for (tag, data) in tags {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, data.len() as u64);
        out.put_slice(&data);
    }
    out.freeze()
}

/// A value of version 0 or 1.
pub fn decode_value(mut b: &[u8]) -> Result<Transit, String> {
    let version = get_i16(&mut b)?;
    if !(0..=1).contains(&version) {
        return Err(format!("unknown transaction log value version {version}"));
    }
    let flexible = version >= 1;
    let producer_id = get_i64(&mut b)?;
    let producer_epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    let state_id = get_i8(&mut b)?;
    let state = TxnState::from_id(state_id).ok_or(format!("unknown state {state_id}"))?;
    let mut partitions = BTreeSet::new();
    let topics = if flexible {
        get_uvarint(&mut b)? as i64 - 1
    } else {
        get_i32(&mut b)? as i64
    };
    for _ in 0..topics.max(0) {
        let topic = if flexible {
            let len = get_uvarint(&mut b)?.saturating_sub(1) as usize;
            get_str(&mut b, len)?
        } else {
            let len = get_i16(&mut b)?;
            get_str(&mut b, len.max(0) as usize)?
        };
        let n = if flexible {
            get_uvarint(&mut b)? as i64 - 1
        } else {
            get_i32(&mut b)? as i64
        };
        for _ in 0..n.max(0) {
            partitions.insert((topic.clone(), get_i32(&mut b)?));
        }
        if flexible {
            skip_tags(&mut b)?;
        }
    }
    let last_update_ms = get_i64(&mut b)?;
    let start_ms = get_i64(&mut b)?;
    let mut t = Transit {
        producer_id,
        prev_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        client_tv: 0,
    };
    if flexible {
        let count = get_uvarint(&mut b)?;
        for _ in 0..count {
            let tag = get_uvarint(&mut b)?;
            let size = get_uvarint(&mut b)? as usize;
            if b.len() < size {
                return Err("truncated tagged field".into());
            }
            let mut data = &b[..size];
            match tag {
                0 => t.prev_producer_id = get_i64(&mut data)?,
                1 => t.next_producer_id = get_i64(&mut data)?,
                2 => t.client_tv = get_i16(&mut data)?,
                _ => {}
            }
            b.advance(size);
        }
    }
    Ok(t)
}

fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, p) in partitions {
        match out.last_mut() {
            Some((t, ids)) if *t == topic.as_str() => ids.push(*p),
            _ => out.push((topic.as_str(), vec![*p])),
        }
    }
    out
}

fn put_uvarint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn need(b: &[u8], n: usize) -> Result<(), String> {
    if b.len() < n {
        Err(format!("truncated: {n} bytes needed, {} left", b.len()))
    } else {
        Ok(())
    }
}

fn get_i8(b: &mut &[u8]) -> Result<i8, String> {
    need(b, 1)?;
    Ok(b.get_i8())
}

fn get_i16(b: &mut &[u8]) -> Result<i16, String> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut &[u8]) -> Result<i32, String> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Result<i64, String> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_str(b: &mut &[u8], len: usize) -> Result<String, String> {
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len])
        .map_err(|e| format!("not UTF-8: {e}"))?
        .to_string();
    b.advance(len);
    Ok(s)
}

fn get_uvarint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = get_i8(b)? as u8;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn skip_tags(b: &mut &[u8]) -> Result<(), String> {
    for _ in 0..get_uvarint(b)? {
        get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        need(b, size)?;
        b.advance(size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transit(state: TxnState) -> Transit {
        let partitions = if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            [
                ("a".to_string(), 2),
                ("a".to_string(), 0),
                ("bb".to_string(), 7),
            ]
            .into_iter()
            .collect()
        };
        Transit {
            producer_id: 4001,
            prev_producer_id: 4000,
            next_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state,
            partitions,
            start_ms: 1_700_000_000_000,
            last_update_ms: 1_700_000_000_500,
            client_tv: 2,
        }
    }

    #[test]
    fn values_round_trip_in_every_state() {
        for id in 0..=7 {
            let t = transit(TxnState::from_id(id).unwrap());
            assert_eq!(decode_value(&encode_value(&t)).unwrap(), t);
        }
        assert_eq!(
            decode_key(&encode_key("tx-1")).unwrap().as_deref(),
            Some("tx-1")
        );
    }

    #[test]
    fn layout_is_kafkas() {
        // Key v0: version, then an int16-length string.
        assert_eq!(&encode_key("ab")[..], &[0, 0, 0, 2, b'a', b'b']);
        let v = encode_value(&transit(TxnState::Ongoing));
        assert_eq!(&v[..2], &[0, 1], "version 1");
        assert_eq!(&v[2..10], &4001i64.to_be_bytes());
        assert_eq!(&v[10..12], &3i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 1, "Ongoing");
        // Two topics (compact: 2 + 1), "a" (1 + 1) with [0, 2] sorted.
        assert_eq!(&v[17..20], &[3, 2, b'a']);
        assert_eq!(v[20], 3);
        assert_eq!(&v[21..29], &[0, 0, 0, 0, 0, 0, 0, 2]);
        // Tags at the end: previous producer id (0) and client version (2).
        let tail = &v[v.len() - 15..];
        assert_eq!(tail[0], 2, "two tagged fields");
        assert_eq!(&tail[1..3], &[0, 8]);
        assert_eq!(&tail[3..11], &4000i64.to_be_bytes());
        assert_eq!(&tail[11..15], &[2, 2, 0, 2]);
    }

    #[test]
    fn version_zero_values_are_read() {
        let mut v = BytesMut::new();
        v.put_i16(0);
        v.put_i64(9);
        v.put_i16(1);
        v.put_i32(1000);
        v.put_i8(TxnState::PrepareCommit as i8);
        v.put_i32(1);
        v.put_i16(1);
        v.put_slice(b"t");
        v.put_i32(2);
        v.put_i32(0);
        v.put_i32(5);
        v.put_i64(20);
        v.put_i64(10);
        let t = decode_value(&v).unwrap();
        assert_eq!(t.producer_id, 9);
        assert_eq!(t.state, TxnState::PrepareCommit);
        assert_eq!(
            t.partitions.into_iter().collect::<Vec<_>>(),
            vec![("t".to_string(), 0), ("t".to_string(), 5)]
        );
        assert_eq!((t.last_update_ms, t.start_ms, t.client_tv), (20, 10, 0));
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let v = encode_value(&transit(TxnState::Ongoing));
        for cut in 0..v.len() {
            assert!(decode_value(&v[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_value(&[0, 9]).is_err());
        assert!(decode_key(&[0]).is_err());
        assert_eq!(decode_key(&[0, 5, 0, 0]).unwrap(), None);
    }
}
