//! Kafka's ACL vocabulary with its wire codes (`org.apache.kafka.common.acl`
//! and `.resource`): resource types, pattern types, operations, permissions,
//! the bindings we store and the filters Describe/DeleteAcls match with.
//!
//! Codes that only make sense in a filter (ANY, MATCH) are not variants of
//! the stored types: a filter holds `None` for ANY, so a binding can never
//! be stored half-specified.

use serde::{Deserialize, Serialize};

/// The only valid name of the CLUSTER resource (Kafka's `CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL resource named `*` matches every resource of its type.
pub const WILDCARD: &str = "*";
/// `User:*` matches every `User:` principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        // Generated for every enum; not every one is parsed from text.
        #[allow(dead_code)]
        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// Kafka's upper-case name (`TRANSACTIONAL_ID`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// Parse a name case-insensitively, `-` or `_` between words.
            pub fn parse(s: &str) -> Option<Self> {
                let norm = s.trim().to_ascii_uppercase().replace('-', "_");
                Self::ALL_VALUES.iter().copied().find(|v| v.name() == norm)
            }
        }
    };
}

coded_enum!(
    /// Kafka's `ResourceType` (UNKNOWN=0 and ANY=1 are filter-only).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded_enum!(
    /// Kafka's `PatternType` (UNKNOWN=0, ANY=1, MATCH=2 are filter-only).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// Kafka's `AclOperation` (UNKNOWN=0 and ANY=1 are filter-only).
    Operation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded_enum!(
    /// Kafka's `AclPermissionType` (UNKNOWN=0 and ANY=1 are filter-only).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The ANY code shared by every filter field.
pub const ANY: i8 = 1;
/// PatternType MATCH: the patterns that would apply to a named resource.
pub const MATCH: i8 = 2;

impl Operation {
    /// Operations whose ALLOW also grants `self` (Kafka: READ, WRITE, DELETE
    /// and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
    pub fn implied_by(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs],
            Read => &[Read],
            Write => &[Write],
            Create => &[Create],
            Delete => &[Delete],
            Alter => &[Alter],
            ClusterAction => &[ClusterAction],
            AlterConfigs => &[AlterConfigs],
            IdempotentWrite => &[IdempotentWrite],
            CreateTokens => &[CreateTokens],
            DescribeTokens => &[DescribeTokens],
            All => &[All],
        }
    }
}

/// One stored ACL: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Longest resource name, principal or host we accept in an ACL.
pub const MAX_FIELD_LEN: usize = 1024;

impl AclBinding {
    /// Build from CreateAcls codes, refusing what Kafka refuses
    /// (`AclControlManager.validateNewAcl`); the error is the message sent
    /// back with INVALID_REQUEST.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        let resource_type = ResourceType::from_code(resource_type)
            .ok_or_else(|| format!("Invalid resource type {resource_type}"))?;
        let pattern_type = PatternType::from_code(pattern_type)
            .ok_or_else(|| format!("Invalid pattern type {pattern_type}"))?;
        let operation = Operation::from_code(operation)
            .ok_or_else(|| format!("Invalid operation {operation}"))?;
        let permission = Permission::from_code(permission)
            .ok_or_else(|| format!("Invalid permission type {permission}"))?;
        let b = AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        };
        b.validate()?;
        Ok(b)
    }

    /// The checks that do not depend on the wire codes (also run on load).
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "Could not parse principal {:?}: expected TYPE:NAME such as User:alice",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Err("Host should not be empty (use * for any host)".into());
        }
        for (what, v) in [
            ("resource name", &self.resource_name),
            ("principal", &self.principal),
            ("host", &self.host),
        ] {
            if v.len() > MAX_FIELD_LEN {
                return Err(format!("{what} is longer than {MAX_FIELD_LEN} bytes"));
            }
        }
        Ok(())
    }
}

/// Which pattern types a filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    Any,
    /// The patterns that apply to the filter's resource name.
    Match,
    Exactly(PatternType),
}

/// DescribeAcls / DeleteAcls filter: `None` is ANY (or a null string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// The filter that matches every ACL.
    #[cfg(test)]
    pub fn any() -> Self {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Build from the wire; UNKNOWN (0) or unassigned codes are refused, as
    /// Kafka answers INVALID_REQUEST for a filter with an unknown field.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        fn field<T>(code: i8, what: &str, parse: fn(i8) -> Option<T>) -> Result<Option<T>, String> {
            if code == ANY {
                return Ok(None);
            }
            parse(code)
                .map(Some)
                .ok_or_else(|| format!("Invalid {what} {code} in filter"))
        }
        let pattern = match pattern_type {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            c => PatternFilter::Exactly(
                PatternType::from_code(c)
                    .ok_or_else(|| format!("Invalid pattern type {c} in filter"))?,
            ),
        };
        Ok(AclFilter {
            resource_type: field(resource_type, "resource type", ResourceType::from_code)?,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: field(operation, "operation", Operation::from_code)?,
            permission: field(permission, "permission type", Permission::from_code)?,
        })
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.resource_matches(b)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn resource_matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        if let PatternFilter::Exactly(p) = self.pattern {
            if p != b.pattern_type {
                return false;
            }
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern != PatternFilter::Match {
            return *name == b.resource_name;
        }
        match b.pattern_type {
            PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.resource_name),
        }
    }
}
