//! The security part of a version 3 metadata image: ACLs with Kafka's
//! enum codes, SCRAM credentials with their raw keys, client quotas with
//! Kafka's key names. Decoding checks each one as applying its command
//! would, so a snapshot cannot bring in what the log could not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{
    AclImage, ArchivedSecurityImage, CredentialImage, QuotaImage, SecurityImage, UserImage,
};
use crate::acl::model::{AclBinding, Operation, PatternType, Permission, ResourceType};
use crate::metadata::security::SecurityState;
use crate::quotas::entity::{Entity, Name, QuotaKey};
use crate::quotas::store::{Snapshot as QuotaSnapshot, Values};
use crate::security::credentials::{Snapshot as ScramSnapshot, StoredCredential};
use crate::security::scram::{ScramCredential, ScramMechanism};

pub(super) fn image(s: &SecurityState) -> SecurityImage {
    SecurityImage {
        acls: s
            .acls
            .bindings
            .iter()
            .map(|b| AclImage {
                resource_type: b.resource_type.code(),
                resource_name: b.resource_name.clone(),
                pattern_type: b.pattern_type.code(),
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation.code(),
                permission: b.permission.code(),
            })
            .collect(),
        users: s
            .scram
            .users
            .iter()
            .map(|(name, creds)| UserImage {
                name: name.clone(),
                credentials: creds
                    .values()
                    .map(|c| CredentialImage {
                        mechanism: c.mechanism.kafka_type(),
                        salt: c.salt.clone(),
                        iterations: c.iterations,
                        stored_key: c.stored_key.clone(),
                        server_key: c.server_key.clone(),
                    })
                    .collect(),
            })
            .collect(),
        fake_salt_secret: s.scram.secret.to_vec(),
        quotas: s
            .quotas
            .entities
            .iter()
            .map(|(e, values)| QuotaImage {
                user: e.user.as_ref().map(|n| n.to_wire().map(str::to_string)),
                client_id: e
                    .client_id
                    .as_ref()
                    .map(|n| n.to_wire().map(str::to_string)),
                values: values
                    .iter()
                    .map(|(k, v)| (k.name().to_string(), *v))
                    .collect(),
            })
            .collect(),
    }
}

pub(super) fn state(image: &ArchivedSecurityImage) -> Result<SecurityState, String> {
    let mut acls = BTreeSet::new();
    for a in image.acls.iter() {
        let code = |what: &str, c: i8| format!("ACL with {what} code {c}");
        let b = AclBinding {
            resource_type: ResourceType::from_code(a.resource_type)
                .ok_or_else(|| code("resource type", a.resource_type))?,
            resource_name: a.resource_name.as_str().to_string(),
            pattern_type: PatternType::from_code(a.pattern_type)
                .ok_or_else(|| code("pattern type", a.pattern_type))?,
            principal: a.principal.as_str().to_string(),
            host: a.host.as_str().to_string(),
            operation: Operation::from_code(a.operation)
                .ok_or_else(|| code("operation", a.operation))?,
            permission: Permission::from_code(a.permission)
                .ok_or_else(|| code("permission", a.permission))?,
        };
        b.validate()
            .map_err(|e| format!("ACL {b:?} is invalid: {e}"))?;
        acls.insert(b);
    }
    let mut users = BTreeMap::new();
    for u in image.users.iter() {
        let mut creds = BTreeMap::new();
        for c in u.credentials.iter() {
            let m = ScramMechanism::from_kafka_type(c.mechanism)
                .ok_or_else(|| format!("SCRAM mechanism type {}", c.mechanism))?;
            let cred = ScramCredential {
                mechanism: m,
                salt: c.salt.to_vec(),
                iterations: c.iterations.to_native(),
                stored_key: c.stored_key.to_vec(),
                server_key: c.server_key.to_vec(),
            };
            // Checked as the log's commands are.
            StoredCredential::from(&cred)
                .to_credential()
                .map_err(|e| format!("user {:?}: {e}", u.name.as_str()))?;
            creds.insert(m, cred);
        }
        users.insert(u.name.as_str().to_string(), creds);
    }
    let mut entities = BTreeMap::new();
    for q in image.quotas.iter() {
        let part = |p: &rkyv::option::ArchivedOption<
            rkyv::option::ArchivedOption<rkyv::string::ArchivedString>,
        >| {
            p.as_ref()
                .map(|n| Name::from_wire(n.as_ref().map(|s| s.as_str())))
        };
        let entity = Entity {
            user: part(&q.user),
            client_id: part(&q.client_id),
        };
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("a quota entity with no part".into());
        }
        let mut values = Values::new();
        for kv in q.values.iter() {
            let key = QuotaKey::from_name(kv.0.as_str())
                .ok_or_else(|| format!("unknown quota key {:?}", kv.0.as_str()))?;
            let v = kv.1.to_native();
            key.validate(v).map_err(|e| format!("{entity}: {e}"))?;
            values.insert(key, v);
        }
        entities.insert(entity, values);
    }
    let quotas = QuotaSnapshot::default()
        .with_entities(entities)?
        .unwrap_or_default();
    let acls = crate::acl::store::AclSnapshot::default()
        .created(&acls.into_iter().collect::<Vec<_>>())?
        .unwrap_or_default();
    Ok(SecurityState {
        acls: Arc::new(acls),
        scram: Arc::new(ScramSnapshot {
            generation: 0,
            users,
            secret: Arc::new(image.fake_salt_secret.to_vec()),
        }),
        quotas: Arc::new(quotas),
    })
}
