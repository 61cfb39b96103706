//! Kafka ACL authorization: the model ([`model`]), the decision
//! ([`authorizer`]) and the persisted bindings ([`store`]).
//!
//! The authorizer is shared by every shard (inside `security::sasl::Security`);
//! handlers ask it through `RequestContext::allowed` / `checker`, which cost
//! one branch when `authorizer_enabled` is false.

pub mod authorizer;
pub mod model;
pub mod store;
#[cfg(test)]
mod tests;

pub use authorizer::{Authorizer, Checker};
pub use model::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
