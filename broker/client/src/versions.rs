//! The request versions this client encodes and decodes, and the choice of
//! version per broker (highest common one, as Kafka's clients choose).

use kafka_protocol::messages::ApiKey;

/// Versions this client encodes and decodes correctly, per API: the union
/// of what the CLI and the bench need.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    // The console: topic config edits and sizes per partition.
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // v1+: v0 has no pattern type, so no PREFIXED ACLs.
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Between brokers and the metadata quorum (v2+ carries log dirs,
    // Shardline's shards), and `shardline cluster status`.
    (ApiKey::BrokerRegistration, 2, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    // Transactions, version 1 flow (the bench's transactional producer):
    // above these are transaction version 2 or broker-to-broker only.
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
];

/// Our version range for `key`, if this client speaks it at all.
pub fn ours(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, a, b)| (*a, *b))
}

/// Highest version both we (`ours`) and the broker (`theirs`) support.
pub fn pick_version(ours: (i16, i16), theirs: Option<(i16, i16)>) -> Option<i16> {
    let (bmin, bmax) = theirs?;
    let max = ours.1.min(bmax);
    (max >= ours.0.max(bmin)).then_some(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(pick_version((3, 11), Some((0, 9))), Some(9));
        assert_eq!(pick_version((3, 11), Some((0, 17))), Some(11));
        assert_eq!(pick_version((3, 11), Some((0, 2))), None);
        assert_eq!(pick_version((3, 11), Some((12, 13))), None);
        assert_eq!(pick_version((3, 11), None), None);
        assert_eq!(pick_version((4, 12), Some((0, 3))), None);
    }

    #[test]
    fn every_api_is_listed_once() {
        for (i, (k, a, b)) in SUPPORTED.iter().enumerate() {
            assert!(a <= b, "{k:?}");
            assert!(SUPPORTED[i + 1..].iter().all(|(o, _, _)| o != k), "{k:?}");
        }
        assert_eq!(ours(ApiKey::Produce), Some((3, 11)));
        assert_eq!(ours(ApiKey::JoinGroup), None);
    }
}
