//! Record-batch compression codecs, framed the way Kafka's Java client frames
//! them (xerial-framed snappy, LZ4 frame format, gzip, zstd frame), so any
//! broker accepts what we produce and we can read what any producer wrote.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_BLOCK: usize = 32 * 1024;

impl Codec {
    /// The low three bits of a v2 batch's attributes.
    pub fn attr(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    pub fn from_attr(attributes: i16) -> Result<Codec> {
        Ok(match attributes & 7 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            c => bail!("unknown compression codec {c} in batch attributes"),
        })
    }

    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(match self {
            Codec::None => data.to_vec(),
            Codec::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(data)?;
                enc.finish()?
            }
            Codec::Snappy => {
                let mut out = Vec::with_capacity(16 + snap::raw::max_compress_len(data.len()));
                out.extend_from_slice(XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                let mut enc = snap::raw::Encoder::new();
                for chunk in data.chunks(XERIAL_BLOCK) {
                    let block = enc.compress_vec(chunk)?;
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out
            }
            Codec::Lz4 => {
                // Independent 64 KiB blocks, no checksums: what the Java client
                // writes and every broker reads.
                let mut enc = lz4::EncoderBuilder::new()
                    .block_mode(lz4::BlockMode::Independent)
                    .block_size(lz4::BlockSize::Max64KB)
                    .checksum(lz4::ContentChecksum::NoChecksum)
                    .level(1)
                    .build(Vec::new())?;
                enc.write_all(data)?;
                let (out, res) = enc.finish();
                res?;
                out
            }
            Codec::Zstd => zstd::bulk::compress(data, 1)?,
        })
    }

    pub fn decompress(self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Codec::None => out.extend_from_slice(data),
            Codec::Gzip => {
                flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
            }
            Codec::Snappy if data.starts_with(XERIAL_MAGIC) => {
                let mut rest = &data[16.min(data.len())..];
                while !rest.is_empty() {
                    let Some((len, body)) = rest.split_first_chunk::<4>() else {
                        bail!("truncated xerial snappy block length");
                    };
                    let len = u32::from_be_bytes(*len) as usize;
                    if len > body.len() {
                        bail!("truncated xerial snappy block");
                    }
                    out.extend_from_slice(&snap::raw::Decoder::new().decompress_vec(&body[..len])?);
                    rest = &body[len..];
                }
            }
            Codec::Snappy => out = snap::raw::Decoder::new().decompress_vec(data)?,
            Codec::Lz4 => {
                let mut dec = lz4::Decoder::new(data).context("lz4 frame header")?;
                dec.read_to_end(&mut out)?;
            }
            Codec::Zstd => {
                zstd::stream::read::Decoder::new(data)?.read_to_end(&mut out)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z).unwrap(), data, "{c:?}");
            assert_eq!(Codec::from_attr(c.attr()).unwrap(), c);
        }
    }
}
