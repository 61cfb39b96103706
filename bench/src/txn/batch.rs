//! Idempotent and transactional batches without re-encoding: the bench's
//! pre-encoded Produce frames are patched in place before each send. The
//! producer id, epoch and transactional bit are written once per producer
//! epoch; the base sequence of every batch before each send; then each
//! batch's CRC32C is recomputed (all these fields lie inside the CRC, unlike
//! the base offset and leader epoch the broker patches).

use anyhow::{bail, Result};
use shardline_record::{update_crc, BATCH_HEADER_LEN};

/// Offsets in the magic-2 batch header.
const ATTRIBUTES_AT: usize = 21;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL: i16 = 0x10;

/// Who writes a batch: Kafka's idempotence fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
    pub transactional: bool,
}

/// Write the producer id, epoch and transactional bit of the batch at
/// `batch[0]` (the CRC is left stale: [`set_sequence`] fixes it).
pub fn set_producer(batch: &mut [u8], who: ProducerIdentity) {
    let attrs = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let attrs = if who.transactional {
        attrs | TRANSACTIONAL
    } else {
        attrs & !TRANSACTIONAL
    };
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&who.producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&who.epoch.to_be_bytes());
}

/// Write the base sequence of the batch at `batch[0]` and recompute its CRC.
/// `batch` must be exactly one batch (the CRC covers to its end).
pub fn set_sequence(batch: &mut [u8], base_sequence: i32) {
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    update_crc(batch);
}

/// Where one partition's batch lies inside an encoded Produce frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSlot {
    pub partition: i32,
    pub at: usize,
    pub len: usize,
    pub records: u32,
}

/// A Produce request frame re-sent with new sequences each time.
pub struct PatchedFrame {
    pub frame: bytes::BytesMut,
    pub slots: Vec<BatchSlot>,
}

impl PatchedFrame {
    /// Find each of `batches` (partition, records, bytes), in order, inside
    /// `frame`, which was encoded from them: kafka-protocol writes record
    /// bytes verbatim, each batch after the previous one.
    pub fn locate(frame: bytes::BytesMut, batches: &[(i32, u32, &[u8])]) -> Result<PatchedFrame> {
        let mut slots = Vec::with_capacity(batches.len());
        let mut from = 0;
        for (partition, records, bytes) in batches {
            if bytes.len() < BATCH_HEADER_LEN {
                bail!("batch of partition {partition} is shorter than a batch header");
            }
            let head = &bytes[..BATCH_HEADER_LEN];
            let Some(pos) = frame[from..]
                .windows(BATCH_HEADER_LEN)
                .position(|w| w == head)
                .map(|p| from + p)
                .filter(|&at| frame.get(at..at + bytes.len()) == Some(*bytes))
            else {
                bail!("batch of partition {partition} not found in its Produce frame");
            };
            slots.push(BatchSlot {
                partition: *partition,
                at: pos,
                len: bytes.len(),
                records: *records,
            });
            from = pos + bytes.len();
        }
        Ok(PatchedFrame { frame, slots })
    }

    /// Set every batch's producer fields (once per producer epoch).
    pub fn set_producer(&mut self, who: ProducerIdentity) {
        for s in &self.slots {
            set_producer(&mut self.frame[s.at..s.at + s.len], who);
        }
    }

    /// Take each batch's base sequence from `seq` and fix its CRC.
    pub fn set_sequences(&mut self, seq: &mut Sequences) {
        for s in &self.slots {
            let base = seq.take(s.partition, s.records);
            set_sequence(&mut self.frame[s.at..s.at + s.len], base);
        }
    }

    /// (partition, records) of the request, as `Pending::counts` wants.
    pub fn counts(&self) -> Vec<(i32, u32)> {
        self.slots
            .iter()
            .map(|s| (s.partition, s.records))
            .collect()
    }

    pub fn records(&self) -> u64 {
        self.slots.iter().map(|s| s.records as u64).sum()
    }
}

/// The next base sequence of each partition of one producer epoch: they
/// continue across transactions and restart at 0 with a new epoch.
#[derive(Debug, Clone, Default)]
pub struct Sequences {
    next: Vec<(i32, i32)>,
}

impl Sequences {
    /// The base sequence for a batch of `records` to `partition`, advancing
    /// past it; sequences wrap from i32::MAX to 0, as Kafka's do.
    pub fn take(&mut self, partition: i32, records: u32) -> i32 {
        let i = match self.next.iter().position(|(p, _)| *p == partition) {
            Some(i) => i,
            None => {
                self.next.push((partition, 0));
                self.next.len() - 1
            }
        };
        let base = self.next[i].1;
        self.next[i].1 = ((base as i64 + records as i64) % (i32::MAX as i64 + 1)) as i32;
        base
    }

    /// A new producer epoch: every partition starts again at 0.
    pub fn reset(&mut self) {
        self.next.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::RecordBatchDecoder;
    use shardline_record::{decode_records, BatchView, Compression};

    fn who(pid: i64, epoch: i16) -> ProducerIdentity {
        ProducerIdentity {
            producer_id: pid,
            epoch,
            transactional: true,
        }
    }

    #[test]
    fn patched_batch_decodes_with_producer_sequence_and_transactional_bit() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let t = payload::template(7, 100, codec, 11).unwrap();
            let mut b = t.bytes().to_vec();
            set_producer(&mut b, who(4242, 3));
            set_sequence(&mut b, 1000);
            // Our own record crate: CRC, header fields, records intact.
            let view = BatchView::parse_verified(&b).expect("CRC recomputed");
            assert!(view.is_transactional(), "{codec:?}");
            assert!(!view.is_control());
            assert_eq!(view.compression(), codec);
            assert_eq!(view.producer_id(), 4242);
            assert_eq!(view.producer_epoch(), 3);
            assert_eq!(view.base_sequence(), 1000);
            assert_eq!(view.last_sequence(), 1006);
            assert_eq!(view.record_count(), 7);
            let recs = decode_records(&view).unwrap();
            let orig = decode_records(&BatchView::parse(t.bytes()).unwrap()).unwrap();
            assert_eq!(recs, orig, "records unchanged by the patch");
            // kafka-protocol (a second reader, checking the CRC too; built
            // here without its codecs, so uncompressed batches only).
            if codec == Compression::None {
                let set = RecordBatchDecoder::decode(&mut Bytes::from(b.clone())).unwrap();
                assert_eq!(set.records.len(), 7);
                for (i, r) in set.records.iter().enumerate() {
                    assert!(r.transactional && !r.control);
                    assert_eq!((r.producer_id, r.producer_epoch), (4242, 3));
                    assert_eq!(r.sequence, 1000 + i as i32);
                }
            }
            // A stale CRC is caught: patch without recomputing.
            b[BASE_SEQUENCE_AT + 3] ^= 1;
            assert!(BatchView::parse_verified(&b).is_err());
        }
    }

    #[test]
    fn producer_fields_can_be_cleared_back_to_idempotent() {
        let t = payload::template(2, 10, Compression::None, 1).unwrap();
        let mut b = t.bytes().to_vec();
        set_producer(&mut b, who(1, 0));
        set_producer(
            &mut b,
            ProducerIdentity {
                transactional: false,
                ..who(9, 1)
            },
        );
        set_sequence(&mut b, 0);
        let v = BatchView::parse_verified(&b).unwrap();
        assert!(!v.is_transactional());
        assert_eq!((v.producer_id(), v.producer_epoch()), (9, 1));
    }

    #[test]
    fn sequences_continue_per_partition_wrap_and_reset() {
        let mut s = Sequences::default();
        assert_eq!(s.take(0, 10), 0);
        assert_eq!(s.take(1, 5), 0);
        assert_eq!(s.take(0, 10), 10);
        assert_eq!(s.take(1, 5), 5);
        assert_eq!(s.take(0, 1), 20);
        s.next[0].1 = i32::MAX - 1;
        assert_eq!(s.take(0, 3), i32::MAX - 1);
        assert_eq!(s.take(0, 1), 1, "wraps past i32::MAX to 0");
        s.reset();
        assert_eq!(s.take(0, 4), 0);
        assert_eq!(s.take(1, 4), 0);
    }

    #[test]
    fn frame_batches_are_located_and_patched_in_place() {
        use crate::produce::{build_frame, ProduceCfg};
        let cfg = ProduceCfg {
            topic: "t".into(),
            acks: -1,
            timeout_ms: 1000,
            in_flight: 1,
            batch_records: 3,
            message_size: 20,
            codec: Compression::None,
            rate_per_conn: None,
            stamp: false,
            transactional_id: Some("tx".into()),
        };
        let ts: Vec<_> = (0..3)
            .map(|i| payload::template(3 + i, 20, Compression::None, i as u64).unwrap())
            .collect();
        let batches: Vec<(i32, Bytes)> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| (i as i32 * 2, Bytes::copy_from_slice(t.bytes())))
            .collect();
        let mut frame = BytesMut::new();
        build_frame(&cfg, 9, batches.clone(), &mut frame).unwrap();
        let refs: Vec<(i32, u32, &[u8])> = batches
            .iter()
            .zip(&ts)
            .map(|((p, b), t)| (*p, t.record_count() as u32, &b[..]))
            .collect();
        let mut pf = PatchedFrame::locate(frame, &refs).unwrap();
        assert_eq!(pf.counts(), vec![(0, 3), (2, 4), (4, 5)]);
        assert_eq!(pf.records(), 12);
        pf.set_producer(who(77, 2));
        let mut seq = Sequences::default();
        pf.set_sequences(&mut seq);
        pf.set_sequences(&mut seq);
        for (s, base) in pf.slots.iter().zip([3, 4, 5]) {
            let v = BatchView::parse_verified(&pf.frame[s.at..s.at + s.len]).unwrap();
            assert_eq!(v.producer_id(), 77);
            assert_eq!(
                v.base_sequence(),
                base,
                "second send continues the sequence"
            );
            assert!(v.is_transactional());
        }
        // The patched frame still decodes as a Produce request carrying them.
        let mut body = pf.frame.clone().freeze().split_off(4);
        use kafka_protocol::messages::{ProduceRequest, RequestHeader};
        use kafka_protocol::protocol::{Decodable, HeaderVersion};
        RequestHeader::decode(&mut body, ProduceRequest::header_version(9)).unwrap();
        let req = ProduceRequest::decode(&mut body, 9).unwrap();
        assert_eq!(req.transactional_id.as_ref().unwrap().as_str(), "tx");
        let parts = &req.topic_data[0].partition_data;
        assert_eq!(parts.len(), 3);
        let mut recs = parts[1].records.clone().unwrap();
        let set = RecordBatchDecoder::decode(&mut recs).unwrap();
        assert_eq!(set.records[0].sequence, 4);
        assert_eq!(set.records[0].producer_id, 77);
    }

    #[test]
    fn a_batch_missing_from_the_frame_is_an_error() {
        let t = payload::template(2, 10, Compression::None, 1).unwrap();
        let frame = BytesMut::from(&[0u8; 200][..]);
        assert!(PatchedFrame::locate(frame, &[(0, 2, t.bytes())]).is_err());
    }
}
