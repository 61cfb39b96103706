//! ApiVersions: the versions we serve, and KIP-511's answer to a version we
//! do not know (a v0-format response with UNSUPPORTED_VERSION and our list,
//! so the client can retry with a version we share).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;
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

pub fn handle(_req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_list())
        .with_throttle_time_ms(0)
        .with_finalized_features_epoch(-1)
}

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
