//! Kafka's zigzag variable-length integers (the `varint`/`varlong` of the
//! magic-2 record format: protobuf encoding of `(n << 1) ^ (n >> 63)`).
//!
//! Decoding is strict: more than the maximum number of bytes, or a last byte
//! whose bits would overflow the type, is an error rather than a silent wrap,
//! and running out of input is an error rather than a panic.

use bytes::BufMut;

use super::error::RecordError;

/// Longest encoding of a 32-bit varint.
pub const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of a 64-bit varlong.
pub const MAX_VARLONG_LEN: usize = 10;

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn put_unsigned(mut raw: u64, out: &mut impl BufMut) {
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

fn unsigned_len(raw: u64) -> usize {
    // One byte per started group of 7 significant bits, at least one byte.
    let bits = 64 - (raw | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Read an unsigned LEB128 value of at most `max_bytes` bytes whose value
/// fits in `max_bits` bits; returns the value and the bytes consumed.
#[inline]
fn get_unsigned(buf: &[u8], max_bytes: usize, max_bits: u32) -> Result<(u64, usize), RecordError> {
    // Fast path: one- and two-byte encodings (every length, delta and
    // small value of a typical record) cannot overflow either type.
    match *buf {
        [b0, ..] if b0 < 0x80 => return Ok((b0 as u64, 1)),
        [b0, b1, ..] if b1 < 0x80 => return Ok(((b0 & 0x7f) as u64 | (b1 as u64) << 7, 2)),
        _ => {}
    }
    get_unsigned_slow(buf, max_bytes, max_bits)
}

#[cold]
fn get_unsigned_slow(
    buf: &[u8],
    max_bytes: usize,
    max_bits: u32,
) -> Result<(u64, usize), RecordError> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().take(max_bytes).enumerate() {
        let shift = 7 * i as u32;
        let chunk = (byte & 0x7f) as u64;
        // Bits that would land above `max_bits` mean the encoding is out of
        // range for the type (Java would silently drop them).
        if shift + 7 > max_bits && chunk >> (max_bits - shift) != 0 {
            return Err(RecordError::VarintOverflow { max_bytes });
        }
        raw |= chunk << shift;
        if byte & 0x80 == 0 {
            return Ok((raw, i + 1));
        }
    }
    if buf.len() < max_bytes {
        Err(RecordError::Truncated { what: "varint" })
    } else {
        Err(RecordError::VarintOverflow { max_bytes })
    }
}

/// Append the zigzag varint encoding of `value`.
pub fn put_varint(value: i32, out: &mut impl BufMut) {
    put_unsigned(zigzag64(value as i64), out);
}

/// Append the zigzag varlong encoding of `value`.
pub fn put_varlong(value: i64, out: &mut impl BufMut) {
    put_unsigned(zigzag64(value), out);
}

/// Encoded size of `value` as a varint.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(zigzag64(value as i64))
}

/// Encoded size of `value` as a varlong.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag64(value))
}

/// Decode a zigzag varint at the start of `buf`: `(value, bytes consumed)`.
#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let (raw, used) = get_unsigned(buf, MAX_VARINT_LEN, 32)?;
    Ok((unzigzag64(raw) as i32, used))
}

/// Decode a zigzag varlong at the start of `buf`: `(value, bytes consumed)`.
#[inline]
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let (raw, used) = get_unsigned(buf, MAX_VARLONG_LEN, 64)?;
    Ok((unzigzag64(raw), used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from Kafka's ByteUtilsTest.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (-65, &[0x81, 0x01]),
            (i32::MAX as i64, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN as i64, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            put_varint(value as i32, &mut out);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(varint_len(value as i32), bytes.len());
            assert_eq!(get_varint(bytes).unwrap(), (value as i32, bytes.len()));
            assert_eq!(get_varlong(bytes).unwrap(), (value, bytes.len()));
        }
        let mut out = Vec::new();
        put_varlong(i64::MIN, &mut out);
        assert_eq!(
            out,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(get_varlong(&out).unwrap(), (i64::MIN, 10));
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert_eq!(
            get_varint(&[]),
            Err(RecordError::Truncated { what: "varint" })
        );
        assert_eq!(
            get_varint(&[0x80, 0x80]),
            Err(RecordError::Truncated { what: "varint" })
        );
        // Six bytes for a varint, or a fifth byte carrying bits above 32.
        assert!(matches!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(RecordError::VarintOverflow { .. })
        ));
        assert!(matches!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(RecordError::VarintOverflow { .. })
        ));
        assert!(matches!(
            get_varlong(&[0xff; 11]),
            Err(RecordError::VarintOverflow { .. })
        ));
        assert!(matches!(
            get_varlong(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03]),
            Err(RecordError::VarintOverflow { .. })
        ));
    }

    proptest! {
        #[test]
        fn varint_round_trip(value: i32, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            put_varint(value, &mut out);
            prop_assert_eq!(out.len(), varint_len(value));
            out.extend_from_slice(&tail);
            prop_assert_eq!(get_varint(&out).unwrap(), (value, varint_len(value)));
        }

        #[test]
        fn varlong_round_trip(value: i64) {
            let mut out = Vec::new();
            put_varlong(value, &mut out);
            prop_assert_eq!(out.len(), varlong_len(value));
            prop_assert_eq!(get_varlong(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = get_varint(&bytes);
            let _ = get_varlong(&bytes);
        }
    }
}
