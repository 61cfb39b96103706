//! The API's routes: one table ([`ROUTES`]) that dispatch, the 405 answers
//! and the OpenAPI check all read, so a route cannot exist undocumented.
//! Patterns are literal segments and `{name}` parameters; a module adds its
//! routes to the table (as `api::alerts` does; `/` and non-`/api` paths go
//! to the UI's static assets).

use serde_json::Value;

use super::api;
use super::error::ApiError;
use super::Call;

/// Whether a route needs a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Open to anyone: info, login.
    Public,
    /// A session (or, in open mode, an anonymous connection per call).
    Session,
}

/// What a handler answers: a status and a JSON body, plus headers (cookies).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }

    pub fn created(body: Value) -> Reply {
        Reply {
            status: 201,
            ..Reply::ok(body)
        }
    }
}

pub type ApiResult = Result<Reply, ApiError>;

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub auth: Auth,
    pub handler: fn(&mut Call) -> ApiResult,
}

macro_rules! routes {
    ($($method:literal $path:literal $auth:ident $handler:path;)*) => {
        &[$(Route { method: $method, path: $path, auth: Auth::$auth, handler: $handler },)*]
    };
}

pub static ROUTES: &[Route] = routes! {
    "GET" "/api/v1/info" Public api::session::info;
    "POST" "/api/v1/session" Public api::session::login;
    "GET" "/api/v1/session" Session api::session::whoami;
    "DELETE" "/api/v1/session" Public api::session::logout;
    "GET" "/api/v1/cluster" Session api::cluster::overview;
    "GET" "/api/v1/topics" Session api::topics::list;
    "POST" "/api/v1/topics" Session api::topics::create;
    "GET" "/api/v1/topics/{topic}" Session api::topics::describe;
    "DELETE" "/api/v1/topics/{topic}" Session api::topics::delete;
    "POST" "/api/v1/topics/{topic}/partitions" Session api::topics::add_partitions;
    "GET" "/api/v1/topics/{topic}/configs" Session api::topics::configs;
    "PATCH" "/api/v1/topics/{topic}/configs" Session api::topics::alter_configs;
    "GET" "/api/v1/topics/{topic}/partitions/{partition}/messages" Session api::messages::browse;
    "POST" "/api/v1/topics/{topic}/messages" Session api::messages::send;
    "GET" "/api/v1/groups" Session api::groups::list;
    "GET" "/api/v1/groups/{group}" Session api::groups::describe;
    "DELETE" "/api/v1/groups/{group}" Session api::groups::delete;
    "POST" "/api/v1/groups/{group}/reset-offsets" Session api::groups::reset_offsets;
    "GET" "/api/v1/groups/{group}/lag-history" Session api::groups::lag_history;
    "GET" "/api/v1/users" Session api::security::list_users;
    "POST" "/api/v1/users" Session api::security::create_user;
    "DELETE" "/api/v1/users/{user}" Session api::security::delete_user;
    "GET" "/api/v1/acls" Session api::security::list_acls;
    "POST" "/api/v1/acls" Session api::security::create_acl;
    "DELETE" "/api/v1/acls" Session api::security::delete_acls;
    "GET" "/api/v1/quotas" Session api::security::list_quotas;
    "PUT" "/api/v1/quotas" Session api::security::set_quotas;
    "DELETE" "/api/v1/quotas" Session api::security::delete_quotas;
    "GET" "/api/v1/tenants" Session api::security::list_tenants;
    "POST" "/api/v1/tenants" Session api::security::create_tenant;
    "DELETE" "/api/v1/tenants/{tenant}" Session api::security::delete_tenant;
    "GET" "/api/v1/metrics/series" Public api::metrics::series;
    "GET" "/api/v1/metrics/history" Public api::metrics::history;
    "GET" "/api/v1/metrics/cluster-history" Session api::metrics::cluster_history;
    "GET" "/api/v1/alerts" Session api::alerts::current;
    "GET" "/api/v1/alerts/kinds" Session api::alerts::kinds;
    "GET" "/api/v1/alerts/rules" Session api::alerts::list_rules;
    "POST" "/api/v1/alerts/rules" Session api::alerts::create_rule;
    "GET" "/api/v1/alerts/rules/{rule}" Session api::alerts::get_rule;
    "PUT" "/api/v1/alerts/rules/{rule}" Session api::alerts::replace_rule;
    "PATCH" "/api/v1/alerts/rules/{rule}" Session api::alerts::patch_rule;
    "DELETE" "/api/v1/alerts/rules/{rule}" Session api::alerts::delete_rule;
    "GET" "/api/v1/alerts/silences" Session api::alerts::list_silences;
    "POST" "/api/v1/alerts/silences" Session api::alerts::create_silence;
    "DELETE" "/api/v1/alerts/silences/{silence}" Session api::alerts::expire_silence;
    "GET" "/api/v1/alerts/history" Session api::alerts::history;
};

/// The outcome of matching a request to the table.
pub enum Matched {
    Route(&'static Route, Vec<(&'static str, String)>),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// The route of `method path`, with its decoded path parameters.
pub fn find(method: &str, path: &str) -> Result<Matched, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for r in ROUTES {
        let Some(params) = match_path(r.path, &segs)? else {
            continue;
        };
        if r.method == method || (method == "HEAD" && r.method == "GET") {
            return Ok(Matched::Route(r, params));
        }
        allowed.push(r.method);
    }
    Ok(if allowed.is_empty() {
        Matched::NotFound
    } else {
        Matched::MethodNotAllowed(allowed)
    })
}

fn match_path(
    pattern: &'static str,
    segs: &[&str],
) -> Result<Option<Vec<(&'static str, String)>>, ApiError> {
    let pat: Vec<&'static str> = pattern.split('/').collect();
    if pat.len() != segs.len() {
        return Ok(None);
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segs) {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if s.is_empty() {
                return Ok(None);
            }
            params.push((name, percent_decode(s)?));
        } else if p != s {
            return Ok(None);
        }
    }
    Ok(Some(params))
}

/// `%xx` decoded (and `+` kept: it is a path or a query value already split).
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad(format!("{s:?} is not UTF-8")))
}

/// `a=1&b=x%20y` -> [("a","1"),("b","x y")] (`+` is a space, as forms send).
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Ok((
                percent_decode(&k.replace('+', " "))?,
                percent_decode(&v.replace('+', " "))?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(method: &str, path: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        match find(method, path).unwrap() {
            Matched::Route(r, p) => Some((r.path, p)),
            _ => None,
        }
    }

    #[test]
    fn routes_match_with_decoded_parameters() {
        let (p, params) = route_of("GET", "/api/v1/topics/a%2Fb/partitions/3/messages").unwrap();
        assert_eq!(p, "/api/v1/topics/{topic}/partitions/{partition}/messages");
        assert_eq!(
            params,
            vec![("topic", "a/b".to_string()), ("partition", "3".to_string())]
        );
        assert_eq!(
            route_of("GET", "/api/v1/topics/").unwrap().0,
            "/api/v1/topics"
        );
        assert_eq!(route_of("HEAD", "/api/v1/info").unwrap().0, "/api/v1/info");
        assert!(route_of("GET", "/api/v1/topics//configs").is_none());
        assert!(matches!(
            find("PUT", "/api/v1/topics/x").unwrap(),
            Matched::MethodNotAllowed(m) if m == vec!["GET", "DELETE"]
        ));
        assert!(matches!(
            find("GET", "/api/v1/nope").unwrap(),
            Matched::NotFound
        ));
        assert!(find("GET", "/api/v1/topics/%zz").is_err());
    }

    #[test]
    fn no_two_routes_overlap() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            parse_query("a=1&b=x%20y+z&c").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(parse_query("a=%G1").is_err());
    }

    /// Every route of the table is in `broker/console/openapi.yaml` and
    /// every operation there is a route: the file documents the API as it is.
    #[test]
    fn the_openapi_file_lists_exactly_the_routes() {
        let text = include_str!("../../console/openapi.yaml");
        let mut documented = std::collections::BTreeSet::new();
        let mut path: Option<&str> = None;
        for line in text.lines() {
            // `  /api/v1/...:` opens a path (two spaces under `paths:`);
            // `    get:` (four) an operation of it.
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                path = Some(p);
            } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')) {
                if let (Some(p), true) =
                    (path, ["get", "post", "put", "patch", "delete"].contains(&m))
                {
                    documented.insert((m.to_ascii_uppercase(), format!("/{p}")));
                }
            } else if !line.starts_with(' ') && !line.is_empty() {
                path = None;
            }
        }
        let routed: std::collections::BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes not in openapi.yaml: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "openapi.yaml operations with no route: {unrouted:?}"
        );
    }
}
