//! The decision: may this principal, from this host, do this operation on
//! this resource? Kafka's `AclAuthorizer`/`StandardAuthorizer` rules:
//!
//! 1. super users may do everything;
//! 2. the ACLs that apply to a resource are the LITERAL ones with its name,
//!    the LITERAL ones named `*`, and the PREFIXED ones whose name starts it;
//! 3. a matching DENY (principal or `User:*`, host or `*`, operation or
//!    ALL) refuses, whatever allows;
//! 4. a matching ALLOW of the operation, of ALL, or of an operation that
//!    implies it (READ/WRITE/DELETE/ALTER imply DESCRIBE, ALTER_CONFIGS
//!    implies DESCRIBE_CONFIGS) permits;
//! 5. otherwise: if no ACL at all applies to the resource (for anybody),
//!    `allow_everyone_if_no_acl_found` decides; if some ACL applies, refuse.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::model::WILDCARD_PRINCIPAL;
use super::model::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};
use super::store::{AclSnapshot, AclStore};

/// An ACL's host, parsed once so a check never formats the peer address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Ip(IpAddr),
    /// Not an IP address: Kafka compares strings, and a peer's address
    /// string is always an IP, so this never matches.
    Never,
}

/// One access control entry in the index.
#[derive(Debug, Clone)]
struct Entry {
    principal: Arc<str>,
    host: HostMatch,
    operation: Operation,
    permission: Permission,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: IpAddr) -> bool {
        let who = &*self.principal == principal
            || (&*self.principal == WILDCARD_PRINCIPAL && principal.starts_with("User:"));
        let from = match &self.host {
            HostMatch::Any => true,
            HostMatch::Ip(ip) => same_ip(*ip, host),
            HostMatch::Never => false,
        };
        who && from
    }
}

/// An IPv4 peer on a dual-stack socket shows up as `::ffff:a.b.c.d`.
fn same_ip(acl: IpAddr, peer: IpAddr) -> bool {
    acl == peer || acl.to_canonical() == peer.to_canonical()
}

type ByName = HashMap<String, Vec<Entry>>;

/// ACLs by resource type, pattern type and name.
#[derive(Debug, Default)]
pub struct AclIndex {
    literal: HashMap<ResourceType, ByName>,
    prefixed: HashMap<ResourceType, ByName>,
}

impl AclIndex {
    pub fn build(bindings: &BTreeSet<AclBinding>) -> Self {
        let mut idx = AclIndex::default();
        for b in bindings {
            let map = match b.pattern_type {
                PatternType::Literal => &mut idx.literal,
                PatternType::Prefixed => &mut idx.prefixed,
            };
            let host = if b.host == WILDCARD {
                HostMatch::Any
            } else {
                b.host.parse().map_or(HostMatch::Never, HostMatch::Ip)
            };
            map.entry(b.resource_type)
                .or_default()
                .entry(b.resource_name.clone())
                .or_default()
                .push(Entry {
                    principal: b.principal.as_str().into(),
                    host,
                    operation: b.operation,
                    permission: b.permission,
                });
        }
        idx
    }

    /// Every entry that applies to the resource (rule 2).
    fn applicable<'a>(
        &'a self,
        kind: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> {
        let literal = self.literal.get(&kind);
        let exact = literal.and_then(|m| m.get(name)).into_iter().flatten();
        let wildcard = literal
            .filter(|_| name != WILDCARD)
            .and_then(|m| m.get(WILDCARD))
            .into_iter()
            .flatten();
        // One lookup per prefix of the name (names are at most a few
        // hundred bytes), rather than a scan of every prefixed ACL.
        let prefixed = self.prefixed.get(&kind);
        let prefixes = prefixed
            .into_iter()
            .flat_map(move |m| {
                name.char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .filter_map(move |p| m.get(p))
            })
            .flatten();
        exact.chain(wildcard).chain(prefixes)
    }

    /// Rules 2–5 (no super users here).
    pub fn decide(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        kind: ResourceType,
        name: &str,
        allow_if_no_acl: bool,
    ) -> bool {
        let mut any = false;
        let mut allowed = false;
        let implied = op.implied_by();
        for e in self.applicable(kind, name) {
            any = true;
            if !e.applies_to(principal, host) {
                continue;
            }
            match e.permission {
                Permission::Deny => {
                    if e.operation == op || e.operation == Operation::All {
                        return false;
                    }
                }
                Permission::Allow => {
                    allowed |= e.operation == Operation::All || implied.contains(&e.operation);
                }
            }
        }
        allowed || (!any && allow_if_no_acl)
    }
}

impl AclIndex {
    /// Kafka's `authorizeByResourceType`: could the principal do `op` on
    /// at least one resource of this type? Refused if a wildcard DENY
    /// covers every resource; allowed by any ALLOW (any name, any pattern).
    pub fn decide_any(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        kind: ResourceType,
        allow_if_no_acl: bool,
    ) -> bool {
        let implied = op.implied_by();
        let applies = |e: &&Entry| e.applies_to(principal, host);
        let literal = self.literal.get(&kind);
        let denied_everywhere = literal
            .and_then(|m| m.get(WILDCARD))
            .into_iter()
            .flatten()
            .filter(applies)
            .any(|e| {
                e.permission == Permission::Deny
                    && (e.operation == op || e.operation == Operation::All)
            });
        if denied_everywhere {
            return false;
        }
        let all = literal
            .into_iter()
            .chain(self.prefixed.get(&kind))
            .flat_map(|m| m.values())
            .flatten();
        let mut any = false;
        for e in all {
            any = true;
            if applies(&e)
                && e.permission == Permission::Allow
                && (e.operation == Operation::All || implied.contains(&e.operation))
            {
                return true;
            }
        }
        !any && allow_if_no_acl
    }
}

/// The broker's authorizer: off (every check passes, at no cost) or
/// enforcing the ACLs of its store.
pub struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
    pub store: AclStore,
}

impl Authorizer {
    pub fn new(
        enabled: bool,
        super_users: &[String],
        allow_if_no_acl: bool,
        store: AclStore,
    ) -> Self {
        Authorizer {
            enabled,
            super_users: super_users.iter().cloned().collect(),
            allow_if_no_acl,
            store,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// The check every handler makes (rules 1–5); always true when off.
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.is_super_user(principal) {
            return true;
        }
        self.store
            .snapshot()
            .index
            .decide(principal, host, op, kind, name, self.allow_if_no_acl)
    }

    /// For a handler checking many resources: one snapshot for all.
    pub fn checker<'a>(&'a self, principal: &'a str, host: IpAddr) -> Checker<'a> {
        let snap = (self.enabled && !self.is_super_user(principal)).then(|| self.store.snapshot());
        Checker {
            snap,
            principal,
            host,
            allow_if_no_acl: self.allow_if_no_acl,
        }
    }
}

/// Checks of one principal against one snapshot.
pub struct Checker<'a> {
    /// `None`: everything is allowed (authorizer off, or a super user).
    snap: Option<Arc<AclSnapshot>>,
    principal: &'a str,
    host: IpAddr,
    allow_if_no_acl: bool,
}

impl Checker<'_> {
    /// May the principal do `op` on at least one resource of `kind`?
    pub fn allows_any(&self, op: Operation, kind: ResourceType) -> bool {
        match &self.snap {
            None => true,
            Some(s) => {
                s.index
                    .decide_any(self.principal, self.host, op, kind, self.allow_if_no_acl)
            }
        }
    }

    pub fn allows(&self, op: Operation, kind: ResourceType, name: &str) -> bool {
        match &self.snap {
            None => true,
            Some(s) => s.index.decide(
                self.principal,
                self.host,
                op,
                kind,
                name,
                self.allow_if_no_acl,
            ),
        }
    }
}
