//! Kafka error codes as the names Kafka's tools print.

use anyhow::anyhow;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let mut out = String::new();
            for (i, ch) in format!("{e:?}").chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// `Err` naming the Kafka error when `code` is non-zero.
pub fn check(
    code: i16,
    what: impl std::fmt::Display,
    message: Option<&StrBytes>,
) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(kafka_error(code, what, message))
}

/// `NAME: what (broker's message)`.
pub fn kafka_error(
    code: i16,
    what: impl std::fmt::Display,
    message: Option<&StrBytes>,
) -> anyhow::Error {
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => anyhow!("{}: {what} ({m})", error_name(code)),
        None => anyhow!("{}: {what}", error_name(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn check_names_the_error_and_keeps_the_message() {
        assert!(check(0, "x", None).is_ok());
        let e = check(36, "creating t", Some(&StrBytes::from_static_str("exists"))).unwrap_err();
        assert_eq!(e.to_string(), "TOPIC_ALREADY_EXISTS: creating t (exists)");
    }
}
