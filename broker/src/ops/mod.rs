//! Kafka-protocol admin operations shared by the `shardline` CLI (`cli/`)
//! and the console's JSON API (`console/`): each takes a blocking
//! [`shardline_client::Client`], sends the same requests whichever front
//! end asked, and returns data; neither prints nor formats. Because both
//! front ends go through the broker's Kafka listener as their principal,
//! ACLs apply to them identically.

pub mod acls;
pub mod groups;
pub mod messages;
pub mod offsets;
pub mod quotas;
pub mod tenants;
pub mod time;
pub mod topics;
pub mod users;
