//! The HTTP admin listener on `admin_listen`: `GET /metrics` (Prometheus,
//! OpenMetrics text; see `crate::metrics`), `GET /health` (see [`health`])
//! the console's JSON API under `/api/v1` (see `crate::console`) and its web
//! UI at `/` (see [`ui`]); any other path is a 404 naming them.
//!
//! `metrics_listen` is the older name of the same listener. Given both, with
//! different addresses, both are served (the same endpoints on each): a
//! config that adds `admin_listen` keeps its old scrape target working
//! until it drops `metrics_listen`. One address given twice is served once.
//!
//! HTTPS when the broker has a certificate (`ssl_certificate_location` and
//! `ssl_key_location`): the same one its TLS listeners present, reloaded
//! the same way. Served by [`http`], never on a shard: `/metrics` and
//! `/health` answer at once on their connection's thread; a console call
//! may take as long as its Kafka requests, on its own thread.

pub mod health;
pub mod http;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;

use crate::config::BrokerConfig;
use crate::console::{history, Console};
use crate::security::tls::{TlsConfigHandle, TlsSettings};
use http::{Request, Response};

/// Start serving the admin endpoints, if an address is configured: bind
/// now (a busy port stops start-up) and serve for the life of the process.
pub fn start(config: &BrokerConfig) -> anyhow::Result<()> {
    health::READINESS.expect_shards(config.shards);
    let addrs = addresses(config);
    if addrs.is_empty() {
        return Ok(());
    }
    let registry = Arc::new(crate::metrics::registry());
    let history = Arc::new(history::History::default());
    let console = Arc::new(Console::new(config, history.clone()));
    history::start(
        history,
        registry.clone(),
        lag_source(config, console.target.clone()),
    );
    let tls = tls_handle(config)?;
    for (key, addr) in addrs {
        serve(
            key,
            addr,
            registry.clone(),
            Some(console.clone()),
            tls.clone(),
        )?;
    }
    Ok(())
}

/// The admin listener's certificate: the broker's, when it has one.
fn tls_handle(config: &BrokerConfig) -> anyhow::Result<Option<Arc<TlsConfigHandle>>> {
    let (Some(cert), Some(key)) = (&config.ssl_certificate_location, &config.ssl_key_location)
    else {
        return Ok(None);
    };
    let mut s = TlsSettings::new(cert, key);
    s.protocols = config.ssl_enabled_protocols.clone();
    let check = Duration::from_millis(config.ssl_reload_check_ms.max(1));
    let handle =
        TlsConfigHandle::new(s, check).context("admin listener: loading TLS certificates")?;
    Ok(Some(handle))
}

/// How the history samples group lag (and the alerts read lag and disks):
/// as the inter-broker user over a SASL listener, anonymously over a
/// plaintext one; not at all without either.
pub fn lag_source(
    config: &BrokerConfig,
    target: Option<crate::console::session::Target>,
) -> Option<history::LagSource> {
    let target = target?;
    let auth = match &target.mechanism {
        None => None,
        Some(m) => {
            let (user, password) = match (
                &config.inter_broker_sasl_username,
                &config.inter_broker_sasl_password,
            ) {
                (Some(u), Some(p)) => (u.clone(), p.0.clone()),
                _ => match (&config.sasl_bootstrap_user, &config.sasl_bootstrap_password) {
                    (Some(u), Some(p)) => (u.clone(), p.0.clone()),
                    _ => {
                        tracing::info!(
                            "console: no group lag history (no inter-broker or bootstrap SASL user to read it as)"
                        );
                        return None;
                    }
                },
            };
            Some(shardline_client::SaslAuth {
                mechanism: m.clone(),
                user,
                password,
            })
        }
    };
    Some(history::LagSource { target, auth })
}

/// The addresses to serve, each once, with the key that named it.
fn addresses(config: &BrokerConfig) -> Vec<(&'static str, SocketAddr)> {
    let mut out: Vec<(&'static str, SocketAddr)> = Vec::new();
    let keys = [
        ("admin_listen", config.admin_listen),
        ("metrics_listen", config.metrics_listen),
    ];
    for (key, addr) in keys {
        if let Some(addr) = addr.filter(|a| out.iter().all(|(_, o)| o != a)) {
            out.push((key, addr));
        }
    }
    out
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The answer to one request.
fn route(registry: &Registry, console: Option<&Console>, req: &Request) -> Response {
    if req.path == "/api" || req.path.starts_with("/api/") {
        return match console {
            Some(c) => c.handle(req),
            None => Response::text(404, "no console here\n"),
        };
    }
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Response::text(
            405,
            "only GET is served here; try GET /metrics or GET /health\n",
        );
    }
    match req.path.as_str() {
        "/metrics" => Response::new(200, OPENMETRICS, crate::metrics::render(registry)),
        "/health" => {
            let r = health::now();
            Response::new(r.status, "application/json", r.body)
        }
        // The console's web UI: `/`, `/assets/*` and its routes (see `ui`);
        // only where a console is served.
        _ => console.and_then(|_| ui::serve(req)).unwrap_or_else(|| {
            Response::text(
                404,
                "not found; try /metrics (Prometheus metrics), /health (200 when serving), / \
                 (the console) or /api/v1/info (the console's JSON API)\n",
            )
        }),
    }
}

/// Bind `addr` and answer its requests from threads of their own.
pub fn serve(
    key: &str,
    addr: SocketAddr,
    registry: Arc<Registry>,
    console: Option<Arc<Console>>,
    tls: Option<Arc<TlsConfigHandle>>,
) -> anyhow::Result<SocketAddr> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let handler: http::Handler =
        Arc::new(move |req: &Request| route(&registry, console.as_deref(), req));
    let local = http::serve(addr, tls, handler).with_context(|| key.to_string())?;
    tracing::info!(
        "admin endpoints on {scheme}://{local}/metrics, {scheme}://{local}/health and the console API {scheme}://{local}/api/v1 ({key})"
    );
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn free_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn metrics_health_and_a_hint_are_served_over_http() {
        let addr = free_addr();
        serve(
            "admin_listen",
            addr,
            Arc::new(crate::metrics::registry()),
            None,
            None,
        )
        .unwrap();
        let metrics = get(addr, "/metrics");
        assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
        assert!(metrics.contains("application/openmetrics-text"));
        assert!(metrics.contains("shardline_storage_errors_total"));
        assert!(metrics.contains("shardline_bytes_in_total"));
        // No shard runs in this test: the process is not serving.
        let health = get(addr, "/health");
        assert!(health.starts_with("HTTP/1.0 503"), "{health}");
        assert!(health.contains("\"status\":\"unavailable\""), "{health}");
        assert!(health.contains("starting"), "{health}");
        let other = get(addr, "/nope");
        assert!(other.starts_with("HTTP/1.0 404"), "{other}");
        assert!(other.contains("try /metrics"), "{other}");
    }

    #[test]
    fn both_keys_are_served_and_one_address_once() {
        let (a, b) = (free_addr(), free_addr());
        let mut config = BrokerConfig {
            admin_listen: Some(a),
            metrics_listen: Some(b),
            ..BrokerConfig::default()
        };
        assert_eq!(
            addresses(&config),
            [("admin_listen", a), ("metrics_listen", b)]
        );
        config.metrics_listen = Some(a);
        assert_eq!(addresses(&config), [("admin_listen", a)]);
        config.admin_listen = None;
        assert_eq!(addresses(&config), [("metrics_listen", a)]);
        config.metrics_listen = None;
        assert!(addresses(&config).is_empty());
    }
}
