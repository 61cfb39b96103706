//! The API's handlers, one module per area of the console. Each takes a
//! [`super::Call`], validates its input (400 naming what is wrong) and
//! calls `crate::ops` over the call's Kafka connection.

pub mod alerts;
pub mod cluster;
pub mod groups;
pub mod messages;
pub mod metrics;
pub mod security;
pub mod session;
pub mod topics;

use super::error::ApiError;

/// A resource name from a body or the path: non-empty, at most 249 bytes
/// (Kafka's topic limit; groups and users are held to the same here) and
/// no control characters.
pub fn name(what: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() {
        return Err(ApiError::bad(format!("{what} must not be empty")));
    }
    if v.len() > 249 {
        return Err(ApiError::bad(format!("{what} is longer than 249 bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::bad(format!("{what} has control characters")));
    }
    Ok(())
}
