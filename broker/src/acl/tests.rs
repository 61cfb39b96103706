//! The matcher's rules and the store's persistence.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::model::*;
use super::store::{read_legacy_file, AclStore};
use super::Authorizer;

const HOST: &str = "10.0.0.7";

fn ip() -> IpAddr {
    HOST.parse().unwrap()
}

fn acl(
    kind: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    host: &str,
    op: Operation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: kind,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission: perm,
    }
}

fn topic_acl(name: &str, principal: &str, op: Operation, perm: Permission) -> AclBinding {
    acl(
        ResourceType::Topic,
        name,
        PatternType::Literal,
        principal,
        "*",
        op,
        perm,
    )
}

fn authz(acls: Vec<AclBinding>, allow_if_no_acl: bool) -> Authorizer {
    let store = AclStore::in_memory();
    store.create_blocking(acls).unwrap();
    Authorizer::new(true, &["User:admin".to_string()], allow_if_no_acl, store)
}

fn can(a: &Authorizer, who: &str, op: Operation, topic: &str) -> bool {
    a.authorize(who, ip(), op, ResourceType::Topic, topic)
}

#[test]
fn no_acl_denies_unless_allow_everyone() {
    let a = authz(vec![], false);
    assert!(!can(&a, "User:alice", Operation::Read, "t"));
    let a = authz(vec![], true);
    assert!(can(&a, "User:alice", Operation::Read, "t"));
}

#[test]
fn any_acl_on_the_resource_turns_off_allow_everyone() {
    // Bob's ACL on t means t has ACLs: alice is refused even with the flag.
    let a = authz(
        vec![topic_acl(
            "t",
            "User:bob",
            Operation::Read,
            Permission::Allow,
        )],
        true,
    );
    assert!(!can(&a, "User:alice", Operation::Read, "t"));
    assert!(can(&a, "User:bob", Operation::Read, "t"));
    // Another topic has none: the flag applies there.
    assert!(can(&a, "User:alice", Operation::Read, "other"));
}

#[test]
fn deny_wins_over_allow() {
    let a = authz(
        vec![
            topic_acl("t", "User:*", Operation::All, Permission::Allow),
            topic_acl("t", "User:alice", Operation::Write, Permission::Deny),
        ],
        false,
    );
    assert!(!can(&a, "User:alice", Operation::Write, "t"));
    assert!(can(&a, "User:alice", Operation::Read, "t"));
    assert!(can(&a, "User:bob", Operation::Write, "t"));
    // DENY ALL refuses every operation.
    let a = authz(
        vec![
            topic_acl("t", "User:alice", Operation::Read, Permission::Allow),
            topic_acl("*", "User:alice", Operation::All, Permission::Deny),
        ],
        false,
    );
    assert!(!can(&a, "User:alice", Operation::Read, "t"));
}

#[test]
fn wildcard_resource_and_principal() {
    let a = authz(
        vec![topic_acl("*", "User:*", Operation::Read, Permission::Allow)],
        false,
    );
    assert!(can(&a, "User:anyone", Operation::Read, "x"));
    assert!(!can(&a, "User:anyone", Operation::Write, "x"));
    // User:* is for User principals only.
    assert!(!can(&a, "Group:ops", Operation::Read, "x"));
}

#[test]
fn prefixed_patterns() {
    let a = authz(
        vec![acl(
            ResourceType::Topic,
            "tenantA.",
            PatternType::Prefixed,
            "User:alice",
            "*",
            Operation::Write,
            Permission::Allow,
        )],
        false,
    );
    assert!(can(&a, "User:alice", Operation::Write, "tenantA.orders"));
    assert!(can(&a, "User:alice", Operation::Write, "tenantA."));
    assert!(!can(&a, "User:alice", Operation::Write, "tenantB.orders"));
    assert!(!can(&a, "User:alice", Operation::Write, "tenantA"));
    // A LITERAL ACL named like the prefix is not a prefix.
    let a = authz(
        vec![topic_acl(
            "tenantA.",
            "User:alice",
            Operation::Write,
            Permission::Allow,
        )],
        false,
    );
    assert!(!can(&a, "User:alice", Operation::Write, "tenantA.orders"));
}

#[test]
fn implied_operations() {
    for op in [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::Alter,
    ] {
        let a = authz(vec![topic_acl("t", "User:u", op, Permission::Allow)], false);
        assert!(can(&a, "User:u", Operation::Describe, "t"), "{op:?}");
    }
    let a = authz(
        vec![topic_acl(
            "t",
            "User:u",
            Operation::Create,
            Permission::Allow,
        )],
        false,
    );
    assert!(!can(&a, "User:u", Operation::Describe, "t"));
    let a = authz(
        vec![topic_acl(
            "t",
            "User:u",
            Operation::AlterConfigs,
            Permission::Allow,
        )],
        false,
    );
    assert!(can(&a, "User:u", Operation::DescribeConfigs, "t"));
    assert!(!can(&a, "User:u", Operation::Describe, "t"));
    // READ does not imply WRITE, and DESCRIBE implies nothing.
    let a = authz(
        vec![topic_acl(
            "t",
            "User:u",
            Operation::Describe,
            Permission::Allow,
        )],
        false,
    );
    assert!(!can(&a, "User:u", Operation::Read, "t"));
    // A DENY of DESCRIBE does not deny READ (Kafka denies exact op or ALL).
    let a = authz(
        vec![
            topic_acl("t", "User:u", Operation::Read, Permission::Allow),
            topic_acl("t", "User:u", Operation::Describe, Permission::Deny),
        ],
        false,
    );
    assert!(can(&a, "User:u", Operation::Read, "t"));
    assert!(!can(&a, "User:u", Operation::Describe, "t"));
}

#[test]
fn super_users_bypass_deny() {
    let a = authz(
        vec![topic_acl("*", "User:*", Operation::All, Permission::Deny)],
        false,
    );
    assert!(can(&a, "User:admin", Operation::Delete, "t"));
    assert!(a.checker("User:admin", ip()).allows(
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME
    ));
    assert!(!can(&a, "User:alice", Operation::Read, "t"));
}

#[test]
fn host_matching() {
    let a = authz(
        vec![
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "User:u",
                HOST,
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "10.0.0.9",
                Operation::Write,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "User:u",
                "not-an-ip",
                Operation::Delete,
                Permission::Allow,
            ),
        ],
        false,
    );
    assert!(can(&a, "User:u", Operation::Read, "t"));
    assert!(!can(&a, "User:u", Operation::Write, "t"));
    assert!(!can(&a, "User:u", Operation::Delete, "t"));
    // An IPv4-mapped IPv6 peer is the same host.
    let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
    assert!(a.authorize("User:u", mapped, Operation::Read, ResourceType::Topic, "t"));
}

#[test]
fn disabled_authorizer_allows_everything() {
    let store = AclStore::in_memory();
    store
        .create_blocking(vec![topic_acl(
            "*",
            "User:*",
            Operation::All,
            Permission::Deny,
        )])
        .unwrap();
    let a = Authorizer::new(false, &[], false, store);
    assert!(can(&a, "User:alice", Operation::Write, "t"));
}

#[test]
fn resource_types_are_separate() {
    let a = authz(
        vec![acl(
            ResourceType::Group,
            "g",
            PatternType::Literal,
            "User:u",
            "*",
            Operation::Read,
            Permission::Allow,
        )],
        false,
    );
    assert!(a.authorize("User:u", ip(), Operation::Read, ResourceType::Group, "g"));
    assert!(!can(&a, "User:u", Operation::Read, "g"));
}

#[test]
fn wire_validation() {
    let ok = AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 3).unwrap();
    assert_eq!(ok.operation, Operation::Read);
    for (rt, name, pt, principal, host, op, perm) in [
        (1, "t", 3, "User:a", "*", 3, 3), // ANY resource type
        (2, "t", 2, "User:a", "*", 3, 3), // MATCH pattern
        (2, "t", 3, "User:a", "*", 1, 3), // ANY operation
        (2, "t", 3, "User:a", "*", 3, 1), // ANY permission
        (2, "", 3, "User:a", "*", 3, 3),  // empty name
        (4, "c", 3, "User:a", "*", 3, 3), // cluster not named kafka-cluster
        (2, "t", 3, "alice", "*", 3, 3),  // principal without a type
        (2, "t", 3, "User:a", "", 3, 3),  // empty host
    ] {
        assert!(
            AclBinding::from_wire(rt, name, pt, principal, host, op, perm).is_err(),
            "{rt} {name} {pt} {principal} {host} {op} {perm}"
        );
    }
    assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err());
    assert!(AclFilter::from_wire(1, None, 0, None, None, 1, 1).is_err());
    assert_eq!(
        AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap(),
        AclFilter::any()
    );
}

#[test]
fn filters_match_like_kafka() {
    let lit = topic_acl("orders", "User:a", Operation::Read, Permission::Allow);
    let star = topic_acl("*", "User:a", Operation::Read, Permission::Allow);
    let pre = acl(
        ResourceType::Topic,
        "ord",
        PatternType::Prefixed,
        "User:a",
        "*",
        Operation::Read,
        Permission::Allow,
    );
    let f = |name: Option<&str>, pattern: i8| {
        AclFilter::from_wire(2, name, pattern, None, None, 1, 1).unwrap()
    };
    let m = f(Some("orders"), MATCH);
    assert!(m.matches(&lit) && m.matches(&star) && m.matches(&pre));
    let exact = f(Some("orders"), PatternType::Literal.code());
    assert!(exact.matches(&lit) && !exact.matches(&star) && !exact.matches(&pre));
    let any = f(Some("ord"), ANY);
    assert!(any.matches(&pre) && !any.matches(&lit));
    assert!(f(None, ANY).matches(&lit));
    let group = AclFilter::from_wire(3, None, 1, None, None, 1, 1).unwrap();
    assert!(!group.matches(&lit));
    let by_principal = AclFilter::from_wire(1, None, 1, Some("User:b"), None, 1, 1).unwrap();
    assert!(!by_principal.matches(&lit));
}

/// A store on a one-node metadata log in `dir` (and the log's owner).
fn on_disk(dir: &std::path::Path) -> (crate::metadata::MetadataStore, AclStore) {
    let meta = crate::metadata::MetadataStore::load_or_init(dir, 1, 0).unwrap();
    let store = AclStore::new(meta.source());
    (meta, store)
}

#[test]
fn store_persists_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, store) = on_disk(dir.path());
    assert!(store.snapshot().bindings.is_empty());
    let a = topic_acl("t", "User:a", Operation::Read, Permission::Allow);
    let b = acl(
        ResourceType::Group,
        "g",
        PatternType::Prefixed,
        "User:b",
        "1.2.3.4",
        Operation::Read,
        Permission::Deny,
    );
    store
        .create_blocking(vec![a.clone(), b.clone(), a.clone()])
        .unwrap();
    assert_eq!(store.snapshot().generation, 1);
    drop((store, meta));
    // A restart reads them back from the metadata log.
    let (meta, reloaded) = on_disk(dir.path());
    let expected: BTreeSet<_> = [a.clone(), b.clone()].into_iter().collect();
    assert_eq!(reloaded.snapshot().bindings, expected);
    // Delete by filter, then reload again.
    let f = AclFilter::from_wire(3, None, 1, None, None, 1, 1).unwrap();
    let removed = reloaded.delete_blocking(vec![f]).unwrap();
    assert_eq!(removed, vec![vec![b]]);
    drop((reloaded, meta));
    let (_meta, again) = on_disk(dir.path());
    assert_eq!(again.snapshot().bindings.len(), 1);
    assert!(again.snapshot().bindings.contains(&a));
}

#[test]
fn corrupt_legacy_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acls.json");
    assert!(read_legacy_file(&path).unwrap().is_none());
    for bad in [
        "{not json",
        r#"{"version": 9, "acls": []}"#,
        r#"{"version": 1, "acls": [{"resource_type": "CLUSTER", "resource_name": "x", "pattern_type": "LITERAL", "principal": "User:a", "host": "*", "operation": "ALTER", "permission": "ALLOW"}]}"#,
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = read_legacy_file(&path).expect_err("must fail").to_string();
        assert!(
            err.contains("acls.json") && err.contains("corrupt"),
            "{err}"
        );
    }
}

#[test]
fn a_refused_change_changes_nothing() {
    let store = AclStore::in_memory();
    let a = topic_acl("t", "User:a", Operation::Read, Permission::Allow);
    // Not a principal: the log refuses the whole command, as a file write
    // that failed did.
    let bad = topic_acl("t", "nobody", Operation::Read, Permission::Allow);
    let err = store.create_blocking(vec![a, bad]).unwrap_err().to_string();
    assert!(err.contains("invalid"), "{err}");
    assert!(store.snapshot().bindings.is_empty());
    assert_eq!(store.snapshot().generation, 0);
}

#[test]
fn some_resource_of_a_type() {
    // InitProducerId's "WRITE on any topic" (Kafka's authorizeByResourceType).
    let any_write = |a: &Authorizer, who: &str| {
        a.checker(who, ip())
            .allows_any(Operation::Write, ResourceType::Topic)
    };
    let a = authz(
        vec![acl(
            ResourceType::Topic,
            "tenantA.",
            PatternType::Prefixed,
            "User:u",
            "*",
            Operation::Write,
            Permission::Allow,
        )],
        false,
    );
    assert!(any_write(&a, "User:u"));
    assert!(!any_write(&a, "User:other"));
    assert!(any_write(&a, "User:admin"));
    // READ somewhere is not WRITE somewhere.
    let a = authz(
        vec![topic_acl("t", "User:u", Operation::Read, Permission::Allow)],
        false,
    );
    assert!(!any_write(&a, "User:u"));
    // A wildcard DENY closes every topic, whatever is allowed.
    let a = authz(
        vec![
            topic_acl("t", "User:u", Operation::Write, Permission::Allow),
            topic_acl("*", "User:u", Operation::All, Permission::Deny),
        ],
        false,
    );
    assert!(!any_write(&a, "User:u"));
}

/// CreateAcls from two shards at once (pipelined on each): every ACL is
/// in the metadata log when its create returns and none is lost to a
/// concurrent writer.
#[test]
fn concurrent_creates_from_two_shards_all_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, store) = on_disk(dir.path());
    let store = std::sync::Arc::new(store);
    let shared = store.clone();
    shard::testing::on_test_shards(2, move |shard| {
        let store = shared.clone();
        async move {
            let creates: Vec<_> = (0..25)
                .map(|i| {
                    let store = store.clone();
                    let b = topic_acl(
                        &format!("t{shard}-{i}"),
                        "User:u",
                        Operation::Read,
                        Permission::Allow,
                    );
                    shard::rt::spawn_local(async move { store.create(vec![b]).await.unwrap() })
                })
                .collect();
            for c in creates {
                c.await;
            }
            // And a delete racing the other shard's creates.
            let f =
                AclFilter::from_wire(2, Some(&format!("t{shard}-0")), 3, None, None, 1, 1).unwrap();
            assert_eq!(store.delete(vec![f]).await.unwrap()[0].len(), 1);
        }
    });
    let before = store.snapshot();
    assert_eq!(before.bindings.len(), 48);
    assert_eq!(before.generation, 52);
    drop(store);
    drop(meta);
    let (_meta, reloaded) = on_disk(dir.path());
    assert_eq!(reloaded.snapshot().bindings, before.bindings);
}
