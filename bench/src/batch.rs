//! Record batch (magic v2) encoder and a minimal reader.
//!
//! Produce speed depends on not doing per-message work: a [`BatchTemplate`]
//! is encoded once and its bytes re-sent for every request. Only e2e mode,
//! which needs a fresh send timestamp in each value, patches the values in
//! place and recomputes the CRC (and recompresses) per request.

use anyhow::{bail, Result};

use crate::compress::Codec;

/// Bytes of a v2 batch before its first record.
pub const HEADER_LEN: usize = 61;
/// The CRC covers everything from the attributes field to the end.
const CRC_START: usize = 21;
/// Attribute bit of control (transaction marker) batches.
const CONTROL_BIT: i16 = 0x20;

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Zigzag varint at `buf[*pos..]`, advancing `pos`.
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            bail!("truncated varint");
        };
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    bail!("varint too long")
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

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

/// One encoded batch of `count` records of `value_size` bytes (no key, no
/// headers), plus what is needed to re-stamp it.
pub struct BatchTemplate {
    records: Vec<u8>,
    value_offsets: Vec<usize>,
    codec: Codec,
    base_ts_ms: i64,
    /// The complete batch as sent on the wire.
    pub bytes: Vec<u8>,
}

impl BatchTemplate {
    pub fn new(count: usize, value_size: usize, codec: Codec, seed: u64) -> Result<Self> {
        assert!(count > 0, "a batch needs at least one record");
        let mut records = Vec::with_capacity(count * (value_size + 12));
        let mut value_offsets = Vec::with_capacity(count);
        for i in 0..count {
            // attributes, timestamp delta, offset delta, key length (null),
            // value length, value, header count.
            let body_len =
                1 + 1 + varint_len(i as i64) + 1 + varint_len(value_size as i64) + value_size + 1;
            put_varint(&mut records, body_len as i64);
            records.push(0);
            put_varint(&mut records, 0);
            put_varint(&mut records, i as i64);
            put_varint(&mut records, -1);
            put_varint(&mut records, value_size as i64);
            let at = records.len();
            value_offsets.push(at);
            // Distinct content per record: identical values would let the
            // codecs compress whole batches to almost nothing.
            records.resize(at + value_size, 0);
            fill_value(
                &mut records[at..],
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64,
            );
            put_varint(&mut records, 0);
        }
        let mut t = BatchTemplate {
            records,
            value_offsets,
            codec,
            base_ts_ms: now_ms(),
            bytes: Vec::new(),
        };
        t.encode()?;
        Ok(t)
    }

    /// Write `ts_ns` (little endian) into the first 8 bytes of every value
    /// and re-encode; values shorter than 8 bytes are left alone.
    pub fn stamp(&mut self, ts_ns: u64) -> Result<()> {
        self.stamp_prefix(&ts_ns.to_le_bytes())
    }

    /// Write `prefix` over the start of every value and re-encode; values
    /// shorter than it are left alone.
    pub fn stamp_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        for &off in &self.value_offsets {
            if let Some(dst) = self.records.get_mut(off..off + prefix.len()) {
                dst.copy_from_slice(prefix);
            }
        }
        self.base_ts_ms = now_ms();
        if self.codec == Codec::None {
            // Patch in place: the layout does not change, only the values,
            // the timestamps and hence the CRC.
            let start = self.bytes.len() - self.records.len();
            self.bytes[start..].copy_from_slice(&self.records);
            self.bytes[27..35].copy_from_slice(&self.base_ts_ms.to_be_bytes());
            self.bytes[35..43].copy_from_slice(&self.base_ts_ms.to_be_bytes());
            let crc = crc32c::crc32c(&self.bytes[CRC_START..]);
            self.bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            return Ok(());
        }
        self.encode()
    }

    fn encode(&mut self) -> Result<()> {
        let payload;
        let records: &[u8] = if self.codec == Codec::None {
            &self.records
        } else {
            payload = self.codec.compress(&self.records)?;
            &payload
        };
        let out = &mut self.bytes;
        out.clear();
        out.reserve(HEADER_LEN + records.len());
        let count = self.value_offsets.len() as i32;
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset: broker assigns
        let batch_len = (HEADER_LEN - 12 + records.len()) as i32;
        out.extend_from_slice(&batch_len.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(2); // magic
        out.extend_from_slice(&[0; 4]); // crc, filled below
        out.extend_from_slice(&self.codec.attr().to_be_bytes());
        out.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
        out.extend_from_slice(&self.base_ts_ms.to_be_bytes());
        out.extend_from_slice(&self.base_ts_ms.to_be_bytes()); // max timestamp
                                                               // No producer id: the broker does no idempotence checks, which is what
                                                               // lets us re-send identical bytes.
        out.extend_from_slice(&(-1i64).to_be_bytes());
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(records);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The fields of a batch header the consumer needs.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub last_offset: i64,
    pub attributes: i16,
    pub count: i32,
}

impl BatchHeader {
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Split a partition's fetched `records` into complete v2 batches; a
/// trailing partial batch (cut by the fetch size limit) is ignored, as
/// clients do.
pub fn for_each_batch(
    mut data: &[u8],
    mut f: impl FnMut(BatchHeader, &[u8]) -> Result<()>,
) -> Result<()> {
    while data.len() >= HEADER_LEN {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().unwrap());
        let len = i32::from_be_bytes(data[8..12].try_into().unwrap());
        if len < (HEADER_LEN - 12) as i32 {
            bail!("bad batch length {len} at offset {base_offset}");
        }
        let total = 12 + len as usize;
        if data.len() < total {
            break;
        }
        if data[16] != 2 {
            bail!(
                "unsupported record batch magic {} at offset {base_offset}",
                data[16]
            );
        }
        let hdr = BatchHeader {
            base_offset,
            attributes: i16::from_be_bytes(data[21..23].try_into().unwrap()),
            last_offset: base_offset + i32::from_be_bytes(data[23..27].try_into().unwrap()) as i64,
            count: i32::from_be_bytes(data[57..61].try_into().unwrap()),
        };
        f(hdr, &data[..total])?;
        data = &data[total..];
    }
    Ok(())
}

/// Call `f(offset, value)` for every record of `batch` (decompressing when
/// needed); null values are passed as empty.
pub fn for_each_value(
    batch: &[u8],
    hdr: &BatchHeader,
    mut f: impl FnMut(i64, &[u8]),
) -> Result<()> {
    let codec = Codec::from_attr(hdr.attributes)?;
    let owned;
    let recs: &[u8] = if codec == Codec::None {
        &batch[HEADER_LEN..]
    } else {
        owned = codec.decompress(&batch[HEADER_LEN..])?;
        &owned
    };
    let mut pos = 0;
    for _ in 0..hdr.count {
        let len = get_varint(recs, &mut pos)? as usize;
        let end = pos + len;
        if end > recs.len() {
            bail!("record overruns its batch");
        }
        pos += 1; // attributes
        get_varint(recs, &mut pos)?; // timestamp delta
        let offset_delta = get_varint(recs, &mut pos)?;
        let klen = get_varint(recs, &mut pos)?;
        if klen > 0 {
            pos += klen as usize;
        }
        let vlen = get_varint(recs, &mut pos)?;
        let value = if vlen > 0 {
            recs.get(pos..pos + vlen as usize)
                .ok_or_else(|| anyhow::anyhow!("value overruns its record"))?
        } else {
            &[][..]
        };
        f(hdr.base_offset + offset_delta, value);
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos).unwrap(), v);
            assert_eq!(pos, b.len());
        }
    }

    #[test]
    fn encoded_batch_decodes_with_kafka_protocol_and_crc_checks() {
        let mut t = BatchTemplate::new(5, 100, Codec::None, 7).unwrap();
        t.stamp(0x0102_0304_0506_0708).unwrap();
        // kafka-protocol verifies the CRC while decoding.
        let mut buf = Bytes::from(t.bytes.clone());
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
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
        let mut bad = t.bytes.clone();
        let n = bad.len();
        bad[n - 5] ^= 0xff;
        assert!(RecordBatchDecoder::decode(&mut Bytes::from(bad)).is_err());
    }

    #[test]
    fn compressed_batches_read_back_with_own_reader() {
        for codec in [
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
            Codec::None,
        ] {
            let mut t = BatchTemplate::new(50, 64, codec, 3).unwrap();
            t.stamp(42).unwrap();
            let crc = u32::from_be_bytes(t.bytes[17..21].try_into().unwrap());
            assert_eq!(crc, crc32c::crc32c(&t.bytes[CRC_START..]));
            let mut seen = Vec::new();
            for_each_batch(&t.bytes, |h, b| {
                assert_eq!(h.count, 50);
                assert_eq!(h.last_offset, 49);
                for_each_value(b, &h, |off, v| seen.push((off, v[..8].to_vec(), v.len())))
            })
            .unwrap();
            assert_eq!(seen.len(), 50, "{codec:?}");
            assert_eq!(seen[49], (49, 42u64.to_le_bytes().to_vec(), 64));
            // Values differ beyond the timestamp, so codecs cannot cheat.
            assert_ne!(
                t.records[8..64],
                t.records[t.value_offsets[1] + 8..t.value_offsets[1] + 64]
            );
        }
    }

    #[test]
    fn truncated_tail_batch_is_skipped() {
        let t = BatchTemplate::new(3, 10, Codec::None, 1).unwrap();
        let mut two = t.bytes.clone();
        two.extend_from_slice(&t.bytes[..t.bytes.len() - 1]);
        let mut n = 0;
        for_each_batch(&two, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }
}
