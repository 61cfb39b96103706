//! Sample requests of the transaction APIs, the error codes of their
//! responses, and the codes the samples must get: the test broker has no
//! `__transaction_state` (no FindCoordinator for a transactional id ran),
//! so coordinator requests answer NOT_COORDINATOR (TxnOffsetCommit, whose
//! partition cannot be verified, COORDINATOR_LOAD_IN_PROGRESS);
//! WriteTxnMarkers writes a marker on the test topic for real.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn topics() -> Vec<AddPartitionsToTxnTopic> {
    vec![AddPartitionsToTxnTopic::default()
        .with_name(TopicName(s("t")))
        .with_partitions(vec![0])]
}

pub fn sample_request(key: ApiKey, v: i16) -> Option<RequestKind> {
    Some(match key {
        ApiKey::AddPartitionsToTxn if v <= 3 => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx-sample")))
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(topics()),
        ),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(s("tx-sample")))
                    .with_producer_id(ProducerId(1))
                    .with_producer_epoch(0)
                    .with_verify_only(true)
                    .with_topics(topics()),
            ]),
        ),
        ApiKey::EndTxn => RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx-sample")))
                .with_producer_id(ProducerId(1))
                .with_committed(true),
        ),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx-sample")))
                .with_producer_id(ProducerId(1))
                .with_group_id(GroupId(s("g"))),
        ),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx-sample")))
                .with_group_id(GroupId(s("txn-group")))
                .with_producer_id(ProducerId(1))
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0)])]),
        ),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(777 + i64::from(v)))
                .with_producer_epoch(0)
                .with_transaction_result(false)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0])])]),
        ),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("tx-sample"))]),
        ),
        ApiKey::ListTransactions => RequestKind::ListTransactions(
            ListTransactionsRequest::default().with_duration_filter(-1),
        ),
        // The test topic's partition 0, one it does not have, and a name
        // no topic may have.
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0, 99]),
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s("no/such")))
                    .with_partition_indexes(vec![0]),
            ]))
        }
        _ => return None,
    })
}

pub fn errors_of(resp: &ResponseKind) -> Option<Vec<i16>> {
    Some(match resp {
        ResponseKind::AddPartitionsToTxn(r) => std::iter::once(r.error_code)
            .chain(
                r.results_by_topic_v3_and_below
                    .iter()
                    .chain(
                        r.results_by_transaction
                            .iter()
                            .flat_map(|t| t.topic_results.iter()),
                    )
                    .flat_map(|t| {
                        t.results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    }),
            )
            .collect(),
        ResponseKind::EndTxn(r) => vec![r.error_code],
        ResponseKind::AddOffsetsToTxn(r) => vec![r.error_code],
        ResponseKind::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::WriteTxnMarkers(r) => r
            .markers
            .iter()
            .flat_map(|m| {
                m.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            })
            .collect(),
        ResponseKind::DescribeTransactions(r) => {
            r.transaction_states.iter().map(|t| t.error_code).collect()
        }
        ResponseKind::ListTransactions(r) => vec![r.error_code],
        ResponseKind::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        _ => return None,
    })
}

/// The codes each sample must get (`None`: every code 0).
pub fn expected(key: ApiKey) -> Option<Vec<i16>> {
    let not_coordinator = ResponseError::NotCoordinator.code();
    Some(match key {
        ApiKey::AddPartitionsToTxn => vec![0, not_coordinator],
        ApiKey::EndTxn | ApiKey::AddOffsetsToTxn | ApiKey::DescribeTransactions => {
            vec![not_coordinator]
        }
        // The group's partition cannot be verified with no coordinator:
        // the retriable answer.
        ApiKey::TxnOffsetCommit => vec![ResponseError::CoordinatorLoadInProgress.code()],
        ApiKey::DescribeProducers => vec![
            0,
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::InvalidTopicException.code(),
        ],
        _ => return None,
    })
}

/// A frame of a version kafka-protocol lacks but whose request schema is
/// `codec`'s (Produce v12, EndTxn v5, TxnOffsetCommit v5): the same bytes
/// with the version sent.
pub fn frame_as_version(
    key: ApiKey,
    version: i16,
    codec: i16,
    frame: bytes::Bytes,
) -> bytes::Bytes {
    if codec == version || key == ApiKey::ConsumerGroupHeartbeat {
        return frame;
    }
    let mut out = bytes::BytesMut::from(&frame[..]);
    out[2..4].copy_from_slice(&version.to_be_bytes());
    out.freeze()
}

/// EndTxn v5's answer, which kafka-protocol cannot decode, checked byte by
/// byte: NOT_COORDINATOR and no producer (-1, -1). True when handled.
pub fn check_raw_reply(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    reply: &super::Reply,
) -> bool {
    use bytes::Buf;
    if key != ApiKey::EndTxn || version < 5 {
        return false;
    }
    let super::Reply::Frame(frame) = reply else {
        panic!("EndTxn v5: no frame");
    };
    let mut b = &frame[..];
    assert_eq!(b.get_i32() as usize, frame.len() - 4, "size prefix");
    assert_eq!(b.get_i32(), correlation_id);
    assert_eq!(b.get_u8(), 0, "header tagged fields");
    let _throttle = b.get_i32();
    assert_eq!(b.get_i16(), ResponseError::NotCoordinator.code());
    assert_eq!(b.get_i64(), -1, "producer id");
    assert_eq!(b.get_i16(), -1, "producer epoch");
    assert_eq!(b.get_u8(), 0, "tagged fields");
    assert!(b.is_empty());
    true
}
