//! DescribeClientQuotas filters (KIP-546): components per entity type with
//! match type EXACT (a name), DEFAULT (the default entity) or ANY (any
//! entity of that type, default included), and `strict`: without it an
//! entity may have parts no component mentions.

use super::entity::{Entity, Name, CLIENT_ID, USER};

pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_ANY: i8 = 2;

#[derive(Debug, Clone, PartialEq)]
enum Want {
    Exact(String),
    Default,
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    user: Option<Want>,
    client_id: Option<Want>,
    strict: bool,
}

impl Filter {
    /// Parse (entity type, match type, match) components; errors are the
    /// INVALID_REQUEST message.
    pub fn new<'a>(
        components: impl IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
        strict: bool,
    ) -> Result<Filter, String> {
        let mut f = Filter {
            user: None,
            client_id: None,
            strict,
        };
        for (kind, match_type, name) in components {
            let slot = match kind {
                USER => &mut f.user,
                CLIENT_ID => &mut f.client_id,
                other => return Err(format!("unknown quota entity type {other:?} in filter")),
            };
            if slot.is_some() {
                return Err(format!(
                    "duplicate filter component for entity type {kind:?}"
                ));
            }
            *slot = Some(match (match_type, name) {
                (MATCH_EXACT, Some(n)) => Want::Exact(n.to_string()),
                (MATCH_EXACT, None) => {
                    return Err(format!("{kind}: match type EXACT needs a name"))
                }
                (MATCH_DEFAULT, None) => Want::Default,
                (MATCH_ANY, None) => Want::Any,
                (MATCH_DEFAULT | MATCH_ANY, Some(_)) => {
                    return Err(format!(
                        "{kind}: match type {match_type} takes no name (match must be null)"
                    ))
                }
                (other, _) => return Err(format!("{kind}: unknown match type {other}")),
            });
        }
        Ok(f)
    }

    pub fn matches(&self, e: &Entity) -> bool {
        let strict = self.strict;
        let part = |want: &Option<Want>, have: &Option<Name>| match (want, have) {
            (None, None) => true,
            (None, Some(_)) => !strict,
            (Some(_), None) => false,
            (Some(Want::Any), Some(_)) => true,
            (Some(Want::Default), Some(n)) => *n == Name::Default,
            (Some(Want::Exact(w)), Some(n)) => matches!(n, Name::Named(s) if s == w),
        };
        part(&self.user, &e.user) && part(&self.client_id, &e.client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: Option<Option<&str>>, client: Option<Option<&str>>) -> Entity {
        Entity {
            user: user.map(Name::from_wire),
            client_id: client.map(Name::from_wire),
        }
    }

    fn all() -> Vec<Entity> {
        vec![
            e(Some(Some("alice")), None),
            e(Some(None), None),
            e(Some(Some("alice")), Some(Some("app"))),
            e(Some(Some("bob")), Some(None)),
            e(None, Some(Some("app"))),
            e(None, Some(None)),
        ]
    }

    fn pick(f: &Filter) -> Vec<String> {
        all()
            .iter()
            .filter(|x| f.matches(x))
            .map(|x| x.to_string())
            .collect()
    }

    #[test]
    fn exact_default_any_and_strict() {
        let f = Filter::new([(USER, MATCH_EXACT, Some("alice"))], false).unwrap();
        assert_eq!(pick(&f), ["user alice", "user alice client-id app"]);
        let f = Filter::new([(USER, MATCH_EXACT, Some("alice"))], true).unwrap();
        assert_eq!(pick(&f), ["user alice"]);
        let f = Filter::new([(USER, MATCH_DEFAULT, None)], true).unwrap();
        assert_eq!(pick(&f), ["user <default>"]);
        let f = Filter::new([(USER, MATCH_ANY, None)], true).unwrap();
        assert_eq!(pick(&f), ["user alice", "user <default>"]);
        let f = Filter::new([(CLIENT_ID, MATCH_ANY, None)], false).unwrap();
        assert_eq!(
            pick(&f),
            [
                "user alice client-id app",
                "user bob client-id <default>",
                "client-id app",
                "client-id <default>"
            ]
        );
        let f = Filter::new(
            [(USER, MATCH_ANY, None), (CLIENT_ID, MATCH_DEFAULT, None)],
            true,
        )
        .unwrap();
        assert_eq!(pick(&f), ["user bob client-id <default>"]);
        // No components: everything, or nothing when strict.
        assert_eq!(pick(&Filter::new([], false).unwrap()).len(), 6);
        assert!(pick(&Filter::new([], true).unwrap()).is_empty());
    }

    #[test]
    fn invalid_filters() {
        assert!(Filter::new([(USER, MATCH_EXACT, None)], false).is_err());
        assert!(Filter::new([(USER, MATCH_DEFAULT, Some("x"))], false).is_err());
        assert!(Filter::new([(USER, MATCH_ANY, Some("x"))], false).is_err());
        assert!(Filter::new([(USER, 7, None)], false).is_err());
        assert!(Filter::new([("ip", MATCH_ANY, None)], false).is_err());
        assert!(Filter::new(
            [(USER, MATCH_ANY, None), (USER, MATCH_DEFAULT, None)],
            false
        )
        .is_err());
    }
}
