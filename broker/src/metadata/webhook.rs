//! Alert webhook URLs: what a rule may name, and where the notifier then
//! connects. Parsed by the `url` crate (WHATWG parsing, as browsers and
//! Alertmanager's Go `net/url` read them), so a URL that a person reads
//! as one host is never sent to another.
//!
//! Refused: schemes other than `http` and `https`, no host, credentials in
//! the URL (they would be shown to everyone who may read the rules), and
//! more than [`MAX_URL`] bytes. Which hosts a broker sends to is its own
//! setting (`alert_webhook_allowed_hosts`, see [`host_allowed`]), checked
//! when a rule is written through it and again before each POST.

use super::alerts::glob_match;

pub const MAX_URL: usize = 2048;

/// Where one webhook POST goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub https: bool,
    /// A domain (lowercase), an IPv4 address or an IPv6 one (no brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: host and port as the URL has them.
    pub authority: String,
    /// Path and query (`/` at least).
    pub path: String,
}

/// `url` as a webhook, or why not (a sentence starting with the Kafka
/// error name the API answers with).
pub fn parse(url: &str) -> Result<WebhookTarget, String> {
    let invalid = |why: &str| format!("INVALID_CONFIG: webhook {url:?} {why}");
    if url.len() > MAX_URL {
        return Err(invalid(&format!("is longer than {MAX_URL} bytes")));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("contains spaces or control characters"));
    }
    let u = url::Url::parse(url).map_err(|e| invalid(&format!("is not a valid URL ({e})")))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(invalid("must be an http:// or https:// URL")),
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            "has credentials in it; rules are readable by everyone with DESCRIBE on the cluster",
        ));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(invalid("has no host")),
    };
    let port = u
        .port_or_known_default()
        .ok_or_else(|| invalid("has no port"))?;
    let host_str = u.host_str().expect("a host was found above");
    let authority = match u.port() {
        Some(p) => format!("{host_str}:{p}"),
        None => host_str.to_string(),
    };
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(WebhookTarget {
        https,
        host,
        port,
        authority,
        path,
    })
}

/// Whether `host` (as [`parse`] gives it) matches one of `allowed`: exact
/// names or addresses, or globs (`*.example.com`), compared without case.
/// An empty list allows every host.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    allowed.is_empty()
        || allowed
            .iter()
            .any(|p| glob_match(&p.trim().to_ascii_lowercase(), &host))
}

/// [`parse`] and [`host_allowed`] together, for the API and the notifier.
pub fn check_allowed(url: &str, allowed: &[String]) -> Result<WebhookTarget, String> {
    let t = parse(url)?;
    if !host_allowed(&t.host, allowed) {
        return Err(format!(
            "INVALID_CONFIG: webhook {url:?}: host {} is not in this broker's \
             alert_webhook_allowed_hosts ({})",
            t.host,
            allowed.join(", ")
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_browsers_read_them() {
        let t = parse("https://Hooks.Example.com/services/T0?x=1#frag").unwrap();
        assert_eq!(
            t,
            WebhookTarget {
                https: true,
                host: "hooks.example.com".into(),
                port: 443,
                authority: "hooks.example.com".into(),
                path: "/services/T0?x=1".into(),
            }
        );
        let t = parse("http://127.0.0.1:9000").unwrap();
        assert_eq!((t.port, t.path.as_str()), (9000, "/"));
        assert_eq!(t.authority, "127.0.0.1:9000");
        let t = parse("http://[::1]:8080/h").unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:8080")
        );
        // One host to a reader, one host to the notifier.
        let t = parse("http://alerts.example.com\\@evil.example/").unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(t.host, "alerts.example.com");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("ftp://example.com/", "http:// or https://"),
            ("http://", "not a valid URL"),
            ("example.com/hook", "not a valid URL"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://example.com:99999/", "not a valid URL"),
            ("http://exa mple.com/", "spaces"),
            ("file:///etc/passwd", "http:// or https://"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(
                e.starts_with("INVALID_CONFIG") && e.contains(why),
                "{url}: {e}"
            );
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL));
        assert!(parse(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn the_allow_list_matches_hosts_and_globs() {
        let allowed = vec!["*.example.com".to_string(), "10.0.0.7".to_string()];
        assert!(host_allowed("hooks.example.com", &allowed));
        assert!(host_allowed("HOOKS.EXAMPLE.COM", &allowed));
        assert!(host_allowed("10.0.0.7", &allowed));
        assert!(!host_allowed("example.com.evil.net", &allowed));
        assert!(!host_allowed("169.254.169.254", &allowed));
        assert!(host_allowed("anything", &[]), "no list: every host");
        let e = check_allowed("http://169.254.169.254/latest/", &allowed).unwrap_err();
        assert!(e.contains("alert_webhook_allowed_hosts"), "{e}");
        assert!(check_allowed("https://a.example.com/x", &allowed).is_ok());
    }
}
