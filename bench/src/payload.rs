//! What the bench sends: batches of `count` records of `value_size` bytes
//! (no key, no headers), encoded once with the shared record code
//! (`shardline_record::BatchTemplate`) and re-sent; e2e runs restamp them.

use anyhow::Result;
use bytes::Bytes;
use shardline_record::{BatchBuilder, BatchTemplate, Compression};

/// Compression level of every codec that has one: the fastest, so the load
/// generator spends its CPU on sending, not compressing.
const LEVEL: i32 = 1;

/// Deterministic filler for values: letters from a 16-symbol alphabet, so
/// compressed runs see roughly 2:1 (realistic-ish text), not a degenerate
/// all-zero payload that compresses to nothing.
pub fn fill_value(buf: &mut [u8], seed: u64) {
    // splitmix64 of the seed, so neighbouring seeds give unrelated values.
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x = (x ^ (x >> 31)) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = b'a' + (x & 15) as u8;
    }
}

/// A batch of `count` distinct values (identical values would let the
/// codecs compress whole batches to almost nothing). No producer id: the
/// broker does no idempotence checks, which is what lets us re-send
/// identical bytes.
pub fn template(
    count: usize,
    value_size: usize,
    codec: Compression,
    seed: u64,
) -> Result<BatchTemplate> {
    assert!(count > 0, "a batch needs at least one record");
    let values = (0..count).map(|i| {
        let mut v = vec![0u8; value_size];
        fill_value(&mut v, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64);
        Bytes::from(v)
    });
    Ok(BatchTemplate::new(
        BatchBuilder::new(codec),
        Some(LEVEL),
        now_ms(),
        values,
    )?)
}

/// Write `ts_ns` (little endian) into the first 8 bytes of every value and
/// move the batch timestamp to now; values shorter than 8 bytes are left alone.
pub fn stamp(t: &mut BatchTemplate, ts_ns: u64) -> Result<()> {
    Ok(t.restamp(&ts_ns.to_le_bytes(), now_ms())?)
}

pub use shardline_record::now_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;
    use shardline_record::{for_each_batch, for_each_record, BatchView};

    #[test]
    fn encoded_batch_decodes_with_kafka_protocol_and_crc_checks() {
        let mut t = template(5, 100, Compression::None, 7).unwrap();
        stamp(&mut t, 0x0102_0304_0506_0708).unwrap();
        // kafka-protocol verifies the CRC while decoding.
        let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(t.bytes())).unwrap();
        assert_eq!(set.records.len(), 5);
        for (i, r) in set.records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert!(r.key.is_none());
            let v = r.value.as_ref().unwrap();
            assert_eq!(v.len(), 100);
            assert_eq!(&v[..8], &0x0102_0304_0506_0708u64.to_le_bytes());
            assert_eq!(r.producer_id, -1);
        }
        // A flipped byte must break the CRC.
        let mut bad = t.bytes().to_vec();
        let n = bad.len();
        bad[n - 5] ^= 0xff;
        assert!(RecordBatchDecoder::decode(&mut Bytes::from(bad)).is_err());
    }

    #[test]
    fn compressed_batches_read_back() {
        for codec in Compression::ALL {
            let mut t = template(50, 64, codec, 3).unwrap();
            stamp(&mut t, 42).unwrap();
            let mut seen = Vec::new();
            for_each_batch(t.bytes(), |b: BatchView| -> Result<()> {
                assert_eq!(b.record_count(), 50);
                assert_eq!(b.last_offset(), 49);
                for_each_record(&b, |r| {
                    let v = r.value.unwrap();
                    seen.push((r.offset_delta, v[..8].to_vec(), v[8..].to_vec()))
                })?;
                Ok(())
            })
            .unwrap();
            assert_eq!(seen.len(), 50, "{codec:?}");
            assert_eq!(seen[49].0, 49);
            assert_eq!(seen[49].1, 42u64.to_le_bytes());
            // Values differ beyond the timestamp, so codecs cannot cheat.
            assert_ne!(seen[0].2, seen[1].2);
        }
    }
}
