//! ApiVersions: the versions we serve, and KIP-511's answer to a version we
//! do not know (a v0-format response with UNSUPPORTED_VERSION and our list,
//! so the client can retry with a version we share).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::SUPPORTED_APIS;

pub fn api_list() -> Vec<ApiVersion> {
    versions_of(SUPPORTED_APIS)
}

/// ApiVersions' list for a table of (key, min, max) (the client listeners'
/// or the controller listener's).
pub fn versions_of(apis: &[(ApiKey, i16, i16)]) -> Vec<ApiVersion> {
    apis.iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// The features this broker supports and has finalized (KIP-584), in
/// ApiVersions v3+: only `transaction.version` (KIP-890), which tells Java
/// 4.x producers to use transaction version 2 (Produce v12, EndTxn v5).
/// `transaction_version` = 0 finalizes none (the field stays out, its
/// epoch -1, as Kafka leaves defaults out).
pub fn handle(req: ApiVersionsRequest, transaction_version: i16) -> ApiVersionsResponse {
    let resp = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_list())
        .with_throttle_time_ms(0)
        .with_finalized_features_epoch(-1);
    if mis_skips_tagged_fields(&req) {
        return resp;
    }
    let resp = resp
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
            .with_min_version(0)
            .with_max_version(MAX_TRANSACTION_VERSION)])
        .with_finalized_features_epoch(-1);
    if transaction_version <= 0 {
        return resp;
    }
    resp.with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
            .with_min_version_level(transaction_version)
            .with_max_version_level(transaction_version)])
}

pub const TRANSACTION_VERSION: &str = "transaction.version";
pub const MAX_TRANSACTION_VERSION: i16 = 2;

/// librdkafka before 2.1.2 (Debian's kcat has 2.0.2) mis-reads the tagged
/// fields of an ApiVersions answer and drops the connection: it gets none
/// (it does not use transaction version 2 anyway). It names itself in
/// ApiVersions v3+ (`ClientSoftwareName` / `ClientSoftwareVersion`).
fn mis_skips_tagged_fields(req: &ApiVersionsRequest) -> bool {
    if req.client_software_name.as_str() != "librdkafka" {
        return false;
    }
    let version: Vec<u32> = req
        .client_software_version
        .as_str()
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    version.as_slice() < [2, 1, 2].as_slice()
}

/// The epoch of the finalized features: they are fixed by the
/// configuration, so one epoch for the life of the cluster's settings.
const FEATURES_EPOCH: i64 = 1;

/// The whole response frame body for an ApiVersions request of a version we
/// do not serve: header v0 (correlation id only) and a v0 body.
pub fn unsupported_version_reply(correlation_id: i32) -> Bytes {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_list())
        .with_finalized_features_epoch(-1);
    let mut out = BytesMut::new();
    out.put_i32(0); // size prefix, filled in by finish_frame
    out.put_i32(correlation_id);
    body.encode(&mut out, 0).expect("v0 ApiVersions encodes");
    super::finish_frame(out)
}

pub fn is_api_versions(key: ApiKey) -> bool {
    key == ApiKey::ApiVersions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &'static str, version: &'static str) -> ApiVersionsRequest {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(name))
            .with_client_software_version(StrBytes::from_static_str(version))
    }

    #[test]
    fn transaction_version_is_finalized_for_clients_that_read_it() {
        let r = handle(req("apache-kafka-java", "4.1.0"), 2);
        assert_eq!(r.finalized_features_epoch, FEATURES_EPOCH);
        assert_eq!(r.finalized_features.len(), 1);
        assert_eq!(r.finalized_features[0].name.as_str(), TRANSACTION_VERSION);
        assert_eq!(r.finalized_features[0].max_version_level, 2);
        assert_eq!(r.supported_features[0].max_version, MAX_TRANSACTION_VERSION);
        // Configured off: supported, not finalized, epoch left at -1.
        let r = handle(req("apache-kafka-java", "4.1.0"), 0);
        assert_eq!(
            (r.finalized_features_epoch, r.finalized_features.len()),
            (-1, 0)
        );
        assert_eq!(r.supported_features.len(), 1);
    }

    #[test]
    fn old_librdkafka_gets_no_tagged_fields() {
        for (v, none) in [
            ("2.0.2", true),
            ("1.9.0", true),
            ("2.1.1", true),
            ("2.1.2", false),
            ("2.6.1", false),
            ("2.10.0-RC1", false),
        ] {
            let r = handle(req("librdkafka", v), 2);
            assert_eq!(r.supported_features.is_empty(), none, "{v}");
            assert_eq!(r.finalized_features_epoch == -1, none, "{v}");
        }
    }
}
