//! Tests of legacy message sets and conversion to and from magic 2.

use super::*;
use crate::batch_header::NO_PRODUCER_ID;
use crate::records::RecordHeader;
use proptest::prelude::*;

const LEGACY_CODECS: [Compression; 4] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
];

fn message(
    offset: i64,
    timestamp: i64,
    key: Option<&'static [u8]>,
    value: Option<&'static [u8]>,
) -> LegacyMessage {
    LegacyMessage {
        offset,
        timestamp,
        timestamp_type: TimestampType::CreateTime,
        key: key.map(Bytes::from_static),
        value: value.map(Bytes::from_static),
    }
}

fn sample(first_offset: i64) -> Vec<LegacyMessage> {
    vec![
        message(first_offset, 1_000, Some(b"a"), Some(b"one")),
        message(first_offset + 1, 900, None, Some(b"two")),
        message(first_offset + 2, 1_100, Some(b"c"), None),
        message(first_offset + 3, 1_050, Some(b""), Some(b"")),
    ]
}

/// The (timestamp, key, value) of every record of every batch.
fn batch_contents(batches: &[Vec<u8>]) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
    let mut out = Vec::new();
    for bytes in batches {
        let view = BatchView::parse_verified(bytes).unwrap();
        for record in decode_records(&view).unwrap() {
            assert!(record.headers.is_empty());
            let ts = if view.is_log_append_time() {
                view.max_timestamp()
            } else {
                view.base_timestamp() + record.timestamp_delta
            };
            out.push((ts, record.key, record.value));
        }
    }
    out
}

#[test]
fn every_magic_and_codec_converts_up() {
    for magic in [0, 1] {
        for codec in LEGACY_CODECS {
            let set = build_legacy_message_set(magic, codec, &sample(10)).unwrap();
            let batches = message_set_to_batches(&set).unwrap();
            assert_eq!(batches.len(), 1, "magic {magic} {codec:?}");
            let view = BatchView::parse_verified(&batches[0]).unwrap();
            assert_eq!(view.compression(), codec);
            assert_eq!(view.base_offset(), 0);
            assert_eq!(view.partition_leader_epoch(), -1);
            assert_eq!(view.producer_id(), NO_PRODUCER_ID);
            assert_eq!((view.producer_epoch(), view.base_sequence()), (-1, -1));
            assert!(!view.is_log_append_time() && !view.is_transactional() && !view.is_control());
            let expected: Vec<_> = sample(10)
                .into_iter()
                .map(|m| {
                    (
                        if magic == 0 {
                            NO_TIMESTAMP
                        } else {
                            m.timestamp
                        },
                        m.key,
                        m.value,
                    )
                })
                .collect();
            assert_eq!(
                batch_contents(&batches),
                expected,
                "magic {magic} {codec:?}"
            );
        }
    }
}

#[test]
fn parse_gives_absolute_offsets_for_wrappers() {
    for magic in [0, 1] {
        for codec in LEGACY_CODECS {
            let set = build_legacy_message_set(magic, codec, &sample(500)).unwrap();
            let parsed = parse_message_set(&set).unwrap();
            let offsets: Vec<i64> = parsed.iter().map(|m| m.offset).collect();
            assert_eq!(offsets, [500, 501, 502, 503], "magic {magic} {codec:?}");
        }
    }
}

#[test]
fn mixed_sets_keep_order_and_split_at_wrappers() {
    let mut set = build_legacy_message_set(1, Compression::None, &sample(0)[..2]).unwrap();
    set.extend(build_legacy_message_set(0, Compression::None, &sample(2)[2..3]).unwrap());
    set.extend(build_legacy_message_set(1, Compression::Snappy, &sample(3)).unwrap());
    set.extend(build_legacy_message_set(1, Compression::None, &sample(7)[3..]).unwrap());
    let batches = message_set_to_batches(&set).unwrap();
    let codecs: Vec<_> = batches
        .iter()
        .map(|b| BatchView::parse(b).unwrap().compression())
        .collect();
    assert_eq!(
        codecs,
        [Compression::None, Compression::Snappy, Compression::None]
    );
    let contents = batch_contents(&batches);
    let keys: Vec<_> = contents.iter().map(|c| c.1.clone()).collect();
    let expected_keys: Vec<_> = [
        &sample(0)[..2],
        &sample(0)[2..3],
        &sample(0)[..],
        &sample(0)[3..],
    ]
    .concat()
    .into_iter()
    .map(|m| m.key)
    .collect();
    assert_eq!(keys, expected_keys);
    // The magic-0 message in the first run has no timestamp.
    assert_eq!(contents[2].0, NO_TIMESTAMP);
}

#[test]
fn log_append_time_wrapper_sets_type_and_timestamps() {
    let mut messages = sample(0);
    messages[0].timestamp_type = TimestampType::LogAppendTime;
    let set = build_legacy_message_set(1, Compression::Gzip, &messages).unwrap();
    let parsed = parse_message_set(&set).unwrap();
    assert!(parsed
        .iter()
        .all(|m| m.timestamp == 1_100 && m.timestamp_type == TimestampType::LogAppendTime));
    let batches = message_set_to_batches(&set).unwrap();
    let view = BatchView::parse_verified(&batches[0]).unwrap();
    assert!(view.is_log_append_time());
    assert!(batch_contents(&batches).iter().all(|c| c.0 == 1_100));
}

#[test]
fn corrupt_and_malformed_sets_are_errors() {
    let set = build_legacy_message_set(1, Compression::None, &sample(0)).unwrap();
    let mut corrupt = set.clone();
    corrupt[30] ^= 0xff; // inside the first message's timestamp
    assert!(matches!(
        message_set_to_batches(&corrupt),
        Err(RecordError::MessageCrcMismatch { offset: 0, .. })
    ));
    // A trailing partial message, at any cut point.
    for cut in [set.len() - 1, set.len() - 20, 5] {
        assert!(matches!(
            message_set_to_batches(&set[..cut]),
            Err(RecordError::Truncated { .. })
        ));
    }
    assert_eq!(message_set_to_batches(&[]).unwrap(), Vec::<Vec<u8>>::new());
    assert!(matches!(
        build_legacy_message_set(1, Compression::Zstd, &sample(0)),
        Err(RecordError::UnsupportedCompression(Compression::Zstd))
    ));
}

#[test]
fn corrupt_inner_message_is_an_error() {
    let mut inner = build_legacy_message_set(1, Compression::None, &sample(0)).unwrap();
    inner[30] ^= 0xff;
    let mut set = Vec::new();
    let value = compress(Compression::Gzip, &inner).unwrap();
    write_message(
        &mut set,
        3,
        1,
        Compression::Gzip.id() as i8,
        0,
        None,
        Some(&value),
    )
    .unwrap();
    assert!(matches!(
        message_set_to_batches(&set),
        Err(RecordError::MessageCrcMismatch { .. })
    ));

    // A wrapper inside a wrapper, and a wrapper with nothing inside.
    let nested = build_legacy_message_set(1, Compression::Gzip, &sample(0)).unwrap();
    let mut set = Vec::new();
    let value = compress(Compression::Gzip, &nested).unwrap();
    write_message(
        &mut set,
        3,
        1,
        Compression::Gzip.id() as i8,
        0,
        None,
        Some(&value),
    )
    .unwrap();
    assert_eq!(
        message_set_to_batches(&set),
        Err(RecordError::NestedCompression(3))
    );
    let mut set = Vec::new();
    let value = compress(Compression::Gzip, &[]).unwrap();
    write_message(
        &mut set,
        3,
        1,
        Compression::Gzip.id() as i8,
        0,
        None,
        Some(&value),
    )
    .unwrap();
    assert_eq!(
        message_set_to_batches(&set),
        Err(RecordError::EmptyWrapper(3))
    );
}

/// A log segment's worth of batches: several codecs, offsets with gaps,
/// a header-carrying record, a LogAppendTime batch and a control batch.
fn log_data() -> (Vec<u8>, Vec<LegacyMessage>) {
    let mut log = Vec::new();
    let mut expected = Vec::new();
    let specs = [
        (100, Compression::None, TimestampType::CreateTime),
        (103, Compression::Zstd, TimestampType::CreateTime),
        (110, Compression::Lz4, TimestampType::LogAppendTime),
    ];
    for (base, codec, timestamp_type) in specs {
        let mut builder = BatchBuilder::new(codec)
            .base_offset(base)
            .timestamp_type(timestamp_type);
        for (i, m) in sample(base).into_iter().enumerate().take(3) {
            let headers = vec![RecordHeader {
                key: "dropped".into(),
                value: None,
            }];
            builder
                .append(
                    m.timestamp + i as i64,
                    m.key.clone(),
                    m.value.clone(),
                    headers,
                )
                .unwrap();
            let timestamp = match timestamp_type {
                TimestampType::LogAppendTime => 1_100 + 2,
                TimestampType::CreateTime => m.timestamp + i as i64,
            };
            expected.push(LegacyMessage {
                timestamp,
                timestamp_type,
                ..m
            });
        }
        log.extend(builder.build().unwrap());
        // A transaction marker after each batch: never shown to old clients.
        let mut marker = BatchBuilder::new(Compression::None)
            .base_offset(base + 3)
            .control(true)
            .transactional(true);
        marker
            .append(5, Some(Bytes::from_static(&[0, 0, 0, 1])), None, vec![])
            .unwrap();
        log.extend(marker.build().unwrap());
    }
    (log, expected)
}

#[test]
fn down_conversion_gives_absolute_offsets_and_same_content() {
    let (log, expected) = log_data();
    for magic in [0, 1] {
        let set = batches_to_message_set(&log, magic).unwrap();
        let mut rest = &set[..];
        while !rest.is_empty() {
            assert_eq!(rest[16] as i8, magic);
            let size = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            rest = &rest[size..];
        }
        let parsed = parse_message_set(&set).unwrap();
        let want: Vec<_> = expected
            .iter()
            .cloned()
            .map(|m| match magic {
                0 => LegacyMessage {
                    timestamp: NO_TIMESTAMP,
                    timestamp_type: TimestampType::CreateTime,
                    ..m
                },
                _ => m,
            })
            .collect();
        assert_eq!(parsed, want, "magic {magic}");
    }
}

#[test]
fn down_conversion_skips_a_truncated_last_batch() {
    let (log, _) = log_data();
    let complete = batches_to_message_set(&log, 1).unwrap();
    let mut first = BatchBuilder::new(Compression::Snappy).base_offset(200);
    first
        .append(1, None, Some(Bytes::from_static(b"tail")), vec![])
        .unwrap();
    let tail = first.build().unwrap();
    for keep in [1, 11, 12, 17, 60, tail.len() - 1] {
        let mut cut = log.clone();
        cut.extend_from_slice(&tail[..keep]);
        assert_eq!(
            batches_to_message_set(&cut, 1).unwrap(),
            complete,
            "keep {keep}"
        );
    }
    assert!(batches_to_message_set(&log, 2).is_err());
}

#[test]
fn legacy_data_in_the_log_passes_through() {
    let (log, _) = log_data();
    let legacy = build_legacy_message_set(0, Compression::Gzip, &sample(300)).unwrap();
    let mut mixed = log.clone();
    mixed.extend_from_slice(&legacy);
    let out = batches_to_message_set(&mixed, 1).unwrap();
    assert!(out.ends_with(&legacy));
    assert_eq!(
        out.len(),
        batches_to_message_set(&log, 1).unwrap().len() + legacy.len()
    );
}

fn arb_message() -> impl Strategy<Value = (i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30));
    (0i64..1 << 45, bytes(), bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_legacy_sets_round_trip(
        raw in proptest::collection::vec(arb_message(), 1..10),
        magic in 0i8..=1,
        which in 0usize..4,
    ) {
        let messages: Vec<LegacyMessage> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (timestamp, key, value))| LegacyMessage {
                offset: 40 + i as i64,
                timestamp: if magic == 0 { NO_TIMESTAMP } else { timestamp },
                timestamp_type: TimestampType::CreateTime,
                key: key.map(Bytes::from),
                value: value.map(Bytes::from),
            })
            .collect();
        let set = build_legacy_message_set(magic, LEGACY_CODECS[which], &messages).unwrap();
        prop_assert_eq!(&parse_message_set(&set).unwrap(), &messages);
        let batches = message_set_to_batches(&set).unwrap();
        let contents: Vec<_> = messages.iter().map(|m| (m.timestamp, m.key.clone(), m.value.clone())).collect();
        prop_assert_eq!(batch_contents(&batches), contents);

        // And back down: relabel the batch at the original offsets.
        let mut log = batches[0].clone();
        crate::batch_header::set_base_offset(&mut log, 40);
        let down = batches_to_message_set(&log, magic).unwrap();
        prop_assert_eq!(parse_message_set(&down).unwrap(), messages);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = message_set_to_batches(&bytes);
        let _ = parse_message_set(&bytes);
        let _ = batches_to_message_set(&bytes, 1);
    }

    /// Flip one byte of a valid compressed set with its CRC fixed up, so
    /// the damage reaches the decompressor and the inner parser.
    #[test]
    fn mutated_wrappers_never_panic(at in 0usize..10_000, xor in 1u8..=255, which in 1usize..4, magic in 0i8..=1) {
        let mut set = build_legacy_message_set(magic, LEGACY_CODECS[which], &sample(0)).unwrap();
        let at = 16 + at % (set.len() - 16);
        set[at] ^= xor;
        let crc = crc32fast::hash(&set[16..]);
        set[12..16].copy_from_slice(&crc.to_be_bytes());
        let _ = message_set_to_batches(&set);
    }
}
