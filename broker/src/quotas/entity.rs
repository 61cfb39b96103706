//! Quota entities and keys as Kafka has them (KIP-55, KIP-546).
//!
//! An entity names a `user`, a `client-id`, or both; each part is either a
//! specific name or the default entity (`<default>`, null on the wire). The
//! quota that applies to a connection is found in Kafka's precedence order
//! (`ClientQuotaManager`), per quota key:
//!
//! ```text
//! 1. /config/users/<user>/clients/<client-id>
//! 2. /config/users/<user>/clients/<default>
//! 3. /config/users/<user>
//! 4. /config/users/<default>/clients/<client-id>
//! 5. /config/users/<default>/clients/<default>
//! 6. /config/users/<default>
//! 7. /config/clients/<client-id>
//! 8. /config/clients/<default>
//! ```

use std::fmt;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// One part of an entity: a specific name or the default entity.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Name {
    Default,
    Named(String),
}

impl Name {
    pub fn from_wire(name: Option<&str>) -> Self {
        name.map_or(Name::Default, |n| Name::Named(n.to_string()))
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            Name::Default => None,
            Name::Named(n) => Some(n),
        }
    }
}

/// A quota entity; at least one part is present.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Entity {
    pub user: Option<Name>,
    pub client_id: Option<Name>,
}

impl Entity {
    /// Build an entity from (type, name) pairs as they come on the wire.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Entity, String> {
        let mut e = Entity {
            user: None,
            client_id: None,
        };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                "ip" => return Err("ip quotas are not supported by this broker".into()),
                other => return Err(format!("unknown quota entity type {other:?}")),
            };
            if slot.is_some() {
                return Err(format!("entity type {kind:?} given twice"));
            }
            if name == Some("") {
                return Err(format!(
                    "empty {kind} name (use the default entity instead)"
                ));
            }
            *slot = Some(Name::from_wire(name));
        }
        if e.user.is_none() && e.client_id.is_none() {
            return Err("an entity needs a user and/or a client-id".into());
        }
        Ok(e)
    }

    /// The (type, name) pairs of this entity, user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((USER, u.to_wire()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.to_wire()));
        }
        out
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |n: &Name| match n {
            Name::Default => "<default>".to_string(),
            Name::Named(s) => s.clone(),
        };
        match (&self.user, &self.client_id) {
            (Some(u), Some(c)) => write!(f, "user {} client-id {}", show(u), show(c)),
            (Some(u), None) => write!(f, "user {}", show(u)),
            (None, Some(c)) => write!(f, "client-id {}", show(c)),
            (None, None) => write!(f, "(empty entity)"),
        }
    }
}

/// The quota keys we accept.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    /// Stored and described, not enforced: this broker has no controller
    /// mutation throttling (KIP-599).
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Check a value as Kafka's `ClientQuotaControlManager` does: byte rates
    /// are whole numbers, every quota is positive.
    pub fn validate(self, value: f64) -> Result<(), String> {
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("{} must be positive, not {value}", self.name()));
        }
        let integral = matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        );
        if integral && (value.fract() != 0.0 || value > i64::MAX as f64) {
            return Err(format!(
                "{} must be a whole number of bytes per second, not {value}",
                self.name()
            ));
        }
        Ok(())
    }
}

/// Where a resolved quota came from, as Kafka's metric tags: specific
/// names stay, the other part is empty. Connections with the same tags
/// share one rate (a `<default>` user quota is per user, not shared).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tags {
    pub user: String,
    pub client_id: String,
}

/// The candidate entities for (user, client-id) in precedence order, with
/// the tags a match at each level accounts under.
pub fn precedence(user: &str, client_id: &str) -> [(Entity, Tags); 8] {
    let named = |s: &str| Some(Name::Named(s.to_string()));
    let e = |user, client_id| Entity { user, client_id };
    let both = Tags {
        user: user.into(),
        client_id: client_id.into(),
    };
    let user_only = Tags {
        user: user.into(),
        client_id: String::new(),
    };
    let client_only = Tags {
        user: String::new(),
        client_id: client_id.into(),
    };
    [
        (e(named(user), named(client_id)), both.clone()),
        (e(named(user), Some(Name::Default)), both.clone()),
        (e(named(user), None), user_only.clone()),
        (e(Some(Name::Default), named(client_id)), both.clone()),
        (e(Some(Name::Default), Some(Name::Default)), both),
        (e(Some(Name::Default), None), user_only),
        (e(None, named(client_id)), client_only.clone()),
        (e(None, Some(Name::Default)), client_only),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_from_wire_parts() {
        let e = Entity::from_parts([(USER, Some("alice")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(e.user, Some(Name::Named("alice".into())));
        assert_eq!(e.client_id, Some(Name::Default));
        assert_eq!(e.to_string(), "user alice client-id <default>");
        assert_eq!(e.parts(), vec![(USER, Some("alice")), (CLIENT_ID, None)]);
        assert!(Entity::from_parts([]).is_err());
        assert!(Entity::from_parts([(USER, Some("a")), (USER, Some("b"))]).is_err());
        assert!(Entity::from_parts([("group", Some("a"))]).is_err());
        assert!(Entity::from_parts([("ip", Some("1.2.3.4"))])
            .unwrap_err()
            .contains("not supported"));
        assert!(Entity::from_parts([(USER, Some(""))]).is_err());
    }

    #[test]
    fn values_are_checked_per_key() {
        assert!(QuotaKey::ProducerByteRate.validate(1048576.0).is_ok());
        assert!(QuotaKey::ProducerByteRate.validate(1.5).is_err());
        assert!(QuotaKey::ConsumerByteRate.validate(-1.0).is_err());
        assert!(QuotaKey::ConsumerByteRate.validate(0.0).is_err());
        assert!(QuotaKey::RequestPercentage.validate(12.5).is_ok());
        assert!(QuotaKey::RequestPercentage.validate(f64::NAN).is_err());
        assert!(QuotaKey::ControllerMutationRate
            .validate(f64::INFINITY)
            .is_err());
        assert_eq!(
            QuotaKey::from_name("consumer_byte_rate"),
            Some(QuotaKey::ConsumerByteRate)
        );
        assert_eq!(QuotaKey::from_name("producer-byte-rate"), None);
    }

    #[test]
    fn precedence_order_is_kafkas() {
        let p = precedence("alice", "app");
        let shown: Vec<String> = p.iter().map(|(e, _)| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "user alice client-id app",
                "user alice client-id <default>",
                "user alice",
                "user <default> client-id app",
                "user <default> client-id <default>",
                "user <default>",
                "client-id app",
                "client-id <default>",
            ]
        );
        // A default user quota is accounted per user, a client-id quota per
        // client-id.
        assert_eq!(p[5].1.user, "alice");
        assert_eq!(p[5].1.client_id, "");
        assert_eq!(p[7].1.user, "");
        assert_eq!(p[7].1.client_id, "app");
    }
}
