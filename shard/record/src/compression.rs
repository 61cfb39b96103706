//! The four Kafka compression codecs, as Kafka's own clients frame them.
//!
//! * gzip: a gzip stream (several members accepted, like `GZIPInputStream`).
//! * snappy: the Java client writes xerial's framing (`\x82SNAPPY\0`, two
//!   version ints, then `[be-u32 length, raw snappy block]*`); librdkafka may
//!   send one plain raw block. We read both and write xerial, like Java.
//! * lz4: the LZ4 *frame* format with independent 64 KiB blocks and no
//!   checksums, the frame header Java's `KafkaLZ4BlockOutputStream` writes
//!   (its reader cannot handle linked blocks). Magic-0 producers
//!   computed the frame header checksum wrongly (KAFKA-3160), so on input we
//!   recompute that one byte instead of rejecting the frame.
//! * zstd: a zstd stream.
//!
//! Every decompression is capped so that a small "zip bomb" batch cannot make
//! the broker allocate without bound.

use std::borrow::Cow;
use std::io::{Read, Write};

use super::batch_header::Compression;
use super::error::RecordError;

/// Default cap on the decompressed size of one batch or wrapper message.
pub const MAX_DECOMPRESSED_SIZE: usize = 256 << 20;

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block (xerial's default block size).
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// zstd's default level, also the Java client's default.
const ZSTD_LEVEL: i32 = 3;

fn compress_err(codec: Compression, err: impl std::fmt::Display) -> RecordError {
    RecordError::Compress {
        codec,
        reason: err.to_string(),
    }
}

fn decompress_err(codec: Compression, err: impl std::fmt::Display) -> RecordError {
    RecordError::Decompress {
        codec,
        reason: err.to_string(),
    }
}

/// Compress `data` with `codec`, framed as Kafka's Java client frames it.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    compress_with_level(codec, data, None)
}

/// [`compress`] at a compression level (KIP-390: the topic's
/// `compression.gzip.level`, `compression.lz4.level` or
/// `compression.zstd.level`); `None` is the codec's default. Snappy has none.
pub fn compress_with_level(
    codec: Compression,
    data: &[u8],
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            // Kafka's -1 is Deflater.DEFAULT_COMPRESSION, zlib's 6.
            let level = match level {
                Some(l @ 1..=9) => flate2::Compression::new(l as u32),
                _ => flate2::Compression::default(),
            };
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
            enc.write_all(data).map_err(|e| compress_err(codec, e))?;
            enc.finish().map_err(|e| compress_err(codec, e))
        }
        Compression::Snappy => snappy_xerial_compress(data),
        Compression::Lz4 => {
            let mut builder = lz4::EncoderBuilder::new();
            if let Some(l) = level {
                builder.level(l.clamp(1, 17) as u32);
            }
            let mut enc = builder
                .block_mode(lz4::BlockMode::Independent)
                .block_size(lz4::BlockSize::Max64KB)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .build(Vec::new())
                .map_err(|e| compress_err(codec, e))?;
            enc.write_all(data).map_err(|e| compress_err(codec, e))?;
            let (out, result) = enc.finish();
            result.map_err(|e| compress_err(codec, e))?;
            Ok(out)
        }
        Compression::Zstd => zstd::bulk::compress(data, level.unwrap_or(ZSTD_LEVEL))
            .map_err(|e| compress_err(codec, e)),
    }
}

/// Decompress `data` with `codec`, refusing output above
/// [`MAX_DECOMPRESSED_SIZE`].
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    decompress_with_limit(codec, data, MAX_DECOMPRESSED_SIZE)
}

/// Decompress `data` with `codec`, failing with
/// [`RecordError::DecompressedTooLarge`] if the output would exceed
/// `max_output` bytes.
pub fn decompress_with_limit(
    codec: Compression,
    data: &[u8],
    max_output: usize,
) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            if data.len() > max_output {
                return Err(RecordError::DecompressedTooLarge { limit: max_output });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => {
            read_limited(codec, flate2::read::MultiGzDecoder::new(data), max_output)
        }
        Compression::Snappy => {
            if data.starts_with(XERIAL_MAGIC) {
                snappy_xerial_decompress(data, max_output)
            } else {
                let mut out = Vec::new();
                snappy_raw_decompress_into(data, &mut out, max_output)?;
                Ok(out)
            }
        }
        Compression::Lz4 => {
            let frame = lz4_fix_header_checksum(data);
            let mut dec = lz4::Decoder::new(&frame[..]).map_err(|e| decompress_err(codec, e))?;
            let out = read_limited(codec, &mut dec, max_output)?;
            // The decoder reports a frame cut short as a clean end of stream;
            // only `finish` tells whether the end mark was actually seen.
            dec.finish()
                .1
                .map_err(|_| RecordError::Truncated { what: "lz4 frame" })?;
            Ok(out)
        }
        Compression::Zstd => {
            let dec =
                zstd::stream::read::Decoder::new(data).map_err(|e| decompress_err(codec, e))?;
            read_limited(codec, dec, max_output)
        }
    }
}

/// Read a decoder to its end, but never more than `max_output + 1` bytes:
/// the extra byte is how we tell "exactly at the limit" from "over it".
fn read_limited(
    codec: Compression,
    reader: impl Read,
    max_output: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    reader
        .take(max_output as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| decompress_err(codec, e))?;
    if out.len() > max_output {
        return Err(RecordError::DecompressedTooLarge { limit: max_output });
    }
    Ok(out)
}

fn snappy_xerial_compress(data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + snap::raw::max_compress_len(data.len()));
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // format version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK_SIZE) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| compress_err(Compression::Snappy, e))?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

fn snappy_xerial_decompress(data: &[u8], max_output: usize) -> Result<Vec<u8>, RecordError> {
    if data.len() < XERIAL_HEADER_LEN {
        return Err(RecordError::Truncated {
            what: "xerial snappy header",
        });
    }
    let mut rest = &data[XERIAL_HEADER_LEN..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            return Err(RecordError::Truncated {
                what: "xerial snappy block length",
            });
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > body.len() {
            return Err(RecordError::Truncated {
                what: "xerial snappy block",
            });
        }
        snappy_raw_decompress_into(&body[..len], &mut out, max_output)?;
        rest = &body[len..];
    }
    Ok(out)
}

/// Append one raw snappy block to `out`. The block states its decompressed
/// length up front, so the limit is checked before anything is allocated.
fn snappy_raw_decompress_into(
    block: &[u8],
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<(), RecordError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| decompress_err(codec, e))?;
    if len > max_output - out.len() {
        return Err(RecordError::DecompressedTooLarge { limit: max_output });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| decompress_err(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

/// Return the frame with a correct header checksum byte, copying only when
/// the stored one is wrong (KAFKA-3160: old clients hashed the magic too).
/// Anything that does not look like an LZ4 frame header is left for the
/// decoder to reject.
fn lz4_fix_header_checksum(frame: &[u8]) -> Cow<'_, [u8]> {
    if frame.len() < 7 || frame[..4] != LZ4_FRAME_MAGIC {
        return Cow::Borrowed(frame);
    }
    let flags = frame[4];
    // FLG, BD, then the optional 8-byte content size and 4-byte dictionary id.
    let descriptor_len =
        2 + if flags & 0x08 != 0 { 8 } else { 0 } + if flags & 0x01 != 0 { 4 } else { 0 };
    let checksum_at = 4 + descriptor_len;
    if frame.len() <= checksum_at {
        return Cow::Borrowed(frame);
    }
    let expected = (xxh32(&frame[4..checksum_at], 0) >> 8) as u8;
    if frame[checksum_at] == expected {
        return Cow::Borrowed(frame);
    }
    let mut fixed = frame.to_vec();
    fixed[checksum_at] = expected;
    Cow::Owned(fixed)
}

/// XXH32 for inputs shorter than 16 bytes, which is all a frame descriptor
/// (at most 14 bytes) needs; the long-input stripe loop is deliberately absent.
fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    debug_assert!(input.len() < 16);
    let mut h = seed.wrapping_add(P5).wrapping_add(input.len() as u32);
    let mut words = input.chunks_exact(4);
    for word in &mut words {
        let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        h = h
            .wrapping_add(w.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &byte in words.remainder() {
        h = h
            .wrapping_add((byte as u32).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = Compression::ALL;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial, and longer than one xerial/lz4 block.
        (0..len)
            .map(|i| ((i * 7) % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in CODECS {
            for len in [0, 1, 100, 200_000] {
                let data = sample(len);
                let packed = compress(codec, &data).unwrap();
                assert_eq!(
                    decompress(codec, &packed).unwrap(),
                    data,
                    "{codec:?} len {len}"
                );
            }
        }
    }

    #[test]
    fn snappy_writes_xerial_and_reads_both_framings() {
        let data = sample(100_000);
        let xerial = compress(Compression::Snappy, &data).unwrap();
        assert!(xerial.starts_with(XERIAL_MAGIC));
        assert_eq!(&xerial[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw).unwrap(), data);
        assert_eq!(decompress(Compression::Snappy, &xerial).unwrap(), data);
        // A cut-off xerial block is an error, not a short result.
        let cut = &xerial[..xerial.len() - 3];
        assert!(decompress(Compression::Snappy, cut).is_err());
    }

    #[test]
    fn lz4_writes_independent_blocks_with_correct_header_checksum() {
        let packed = compress(Compression::Lz4, &sample(10)).unwrap();
        assert_eq!(packed[..4], LZ4_FRAME_MAGIC);
        // Exactly the FLG and BD bytes of Java's KafkaLZ4BlockOutputStream:
        // version 1, independent blocks, no checksums or content size; 64 KiB.
        assert_eq!(packed[4..6], [0x60, 0x40]);
        // liblz4 wrote the frame; our XXH32 must agree with its checksum byte.
        assert!(matches!(lz4_fix_header_checksum(&packed), Cow::Borrowed(_)));
    }

    #[test]
    fn xxh32_matches_reference_vectors() {
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
    }

    #[test]
    fn lz4_accepts_kafka_3160_header_checksum() {
        let data = sample(5_000);
        let mut packed = compress(Compression::Lz4, &data).unwrap();
        let descriptor_end = 4 + 2 + if packed[4] & 0x08 != 0 { 8 } else { 0 };
        // Old Kafka hashed the magic number together with the descriptor.
        packed[descriptor_end] = (xxh32(&packed[..descriptor_end], 0) >> 8) as u8;
        assert_eq!(decompress(Compression::Lz4, &packed).unwrap(), data);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let data = sample(50_000);
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let packed = compress(codec, &data).unwrap();
            let cut = &packed[..packed.len() / 2];
            assert!(decompress(codec, cut).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn output_is_capped() {
        let zeros = vec![0u8; 1 << 20];
        for codec in CODECS {
            let packed = compress(codec, &zeros).unwrap();
            assert_eq!(
                decompress_with_limit(codec, &packed, 1000),
                Err(RecordError::DecompressedTooLarge { limit: 1000 }),
                "{codec:?}"
            );
            assert_eq!(
                decompress_with_limit(codec, &packed, zeros.len()).unwrap(),
                zeros
            );
        }
        // A raw snappy block that merely *claims* a huge length is refused
        // before allocating: varint 0xffffffff.
        let liar = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(decompress(Compression::Snappy, &liar).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..3000), which in 0usize..5) {
            let codec = CODECS[which];
            let packed = compress(codec, &data).unwrap();
            prop_assert_eq!(decompress(codec, &packed).unwrap(), data);
        }

        #[test]
        fn random_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), which in 1usize..5) {
            let _ = decompress_with_limit(CODECS[which], &data, 1 << 16);
            // Also behind a valid-looking header, to get past the first checks.
            let mut framed = match CODECS[which] {
                Compression::Snappy => XERIAL_MAGIC.to_vec(),
                Compression::Lz4 => LZ4_FRAME_MAGIC.to_vec(),
                _ => Vec::new(),
            };
            framed.extend_from_slice(&data);
            let _ = decompress_with_limit(CODECS[which], &framed, 1 << 16);
        }
    }
}
