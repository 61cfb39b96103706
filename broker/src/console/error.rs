//! The API's errors: a status and `{"error": "...", "code": "KAFKA_NAME" |
//! null}`. Client mistakes are 4xx; a Kafka error keeps its name in `code`
//! and gets the status that says what went wrong (authorization 403,
//! unknown 404, conflict 409, ...); only an unreachable broker is a 5xx.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error: String,
    pub code: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            code: None,
        }
    }

    pub fn bad(error: impl Into<String>) -> ApiError {
        ApiError::new(400, error)
    }

    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(404, error)
    }

    pub fn with_code(mut self, code: &str) -> ApiError {
        self.code = Some(code.to_string());
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": self.error, "code": self.code})
    }

    /// From an error of `ops` / `shardline-client`: those name a Kafka error
    /// first (`NAME: what (broker's message)`); anything else is either a
    /// connection failure (502) or a refused input (400).
    pub fn from_anyhow(e: &anyhow::Error) -> ApiError {
        let text = format!("{e:#}");
        if let Some(code) = kafka_code(&text) {
            return ApiError {
                status: status_of(code),
                error: text.clone(),
                code: Some(code.to_string()),
            };
        }
        if is_connection_failure(e, &text) {
            return ApiError::new(502, format!("the broker could not be reached: {text}"));
        }
        ApiError::bad(text)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::from_anyhow(&e)
    }
}

/// The Kafka error name an error message starts with, if any.
pub fn kafka_code(text: &str) -> Option<&str> {
    // `SASL SCRAM-SHA-512 as "u" to addr: SASL_AUTHENTICATION_FAILED: ...`
    // (context first): take the first NAME: segment anywhere.
    text.split(": ").find(|seg| {
        seg.len() >= 4
            && seg.contains('_')
            && seg
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// The HTTP status of a Kafka error.
pub fn status_of(code: &str) -> u16 {
    match code {
        c if c.ends_with("_AUTHORIZATION_FAILED") => 403,
        "SASL_AUTHENTICATION_FAILED" | "ILLEGAL_SASL_STATE" => 401,
        "UNKNOWN_TOPIC_OR_PARTITION"
        | "UNKNOWN_TOPIC_ID"
        | "GROUP_ID_NOT_FOUND"
        | "RESOURCE_NOT_FOUND"
        | "UNKNOWN_MEMBER_ID"
        | "TRANSACTIONAL_ID_NOT_FOUND" => 404,
        "TOPIC_ALREADY_EXISTS"
        | "NON_EMPTY_GROUP"
        | "REBALANCE_IN_PROGRESS"
        | "DUPLICATE_RESOURCE"
        | "CONCURRENT_TRANSACTIONS"
        | "FENCED_INSTANCE_ID"
        | "ILLEGAL_GENERATION"
        | "TOPIC_DELETION_DISABLED" => 409,
        "THROTTLING_QUOTA_EXCEEDED" => 429,
        "OFFSET_OUT_OF_RANGE" => 416,
        "LEADER_NOT_AVAILABLE"
        | "NOT_LEADER_OR_FOLLOWER"
        | "COORDINATOR_NOT_AVAILABLE"
        | "COORDINATOR_LOAD_IN_PROGRESS"
        | "NOT_COORDINATOR"
        | "NOT_CONTROLLER"
        | "REQUEST_TIMED_OUT"
        | "BROKER_NOT_AVAILABLE"
        | "NOT_ENOUGH_REPLICAS"
        | "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
        | "KAFKA_STORAGE_ERROR"
        | "UNKNOWN_SERVER_ERROR" => 503,
        _ => 400,
    }
}

fn is_connection_failure(e: &anyhow::Error, text: &str) -> bool {
    e.chain().any(|c| c.is::<std::io::Error>())
        || [
            "no response from",
            "closed the connection",
            "connecting to",
            "sending to",
            "reading response",
        ]
        .iter()
        .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_keep_their_name_and_get_a_status() {
        let e = ApiError::from_anyhow(&anyhow::anyhow!("TOPIC_AUTHORIZATION_FAILED: topic t"));
        assert_eq!(
            (e.status, e.code.as_deref()),
            (403, Some("TOPIC_AUTHORIZATION_FAILED"))
        );
        let e = ApiError::from_anyhow(&anyhow::anyhow!("UNKNOWN_TOPIC_OR_PARTITION: x"));
        assert_eq!(e.status, 404);
        let e = ApiError::from_anyhow(&anyhow::anyhow!("TOPIC_ALREADY_EXISTS: creating topic t"));
        assert_eq!(e.status, 409);
        let e = ApiError::from_anyhow(&anyhow::anyhow!("NON_EMPTY_GROUP: g"));
        assert_eq!(e.status, 409);
        let e = ApiError::from_anyhow(&anyhow::anyhow!("INVALID_CONFIG: bad"));
        assert_eq!(e.status, 400);
        let e = ApiError::from_anyhow(
            &anyhow::anyhow!("SASL_AUTHENTICATION_FAILED: SaslAuthenticate")
                .context("SASL SCRAM-SHA-512 as \"u\" to 127.0.0.1:1"),
        );
        assert_eq!(
            (e.status, e.code.as_deref()),
            (401, Some("SASL_AUTHENTICATION_FAILED"))
        );
    }

    #[test]
    fn other_errors_are_bad_input_unless_the_broker_is_unreachable() {
        let e = ApiError::from_anyhow(&anyhow::anyhow!("the password must not be empty"));
        assert_eq!((e.status, e.code), (400, None));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ApiError::from_anyhow(&anyhow::Error::new(io).context("connecting"));
        assert_eq!(e.status, 502);
        assert_eq!(
            e.body()["code"],
            Value::Null,
            "code is null when no Kafka error"
        );
    }
}
