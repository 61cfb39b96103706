//! The HTTP admin listener on `admin_listen`: `GET /metrics` (Prometheus,
//! OpenMetrics text; see `crate::metrics`) and `GET /health` (see
//! [`health`]); any other path is a 404 naming those two.
//!
//! `metrics_listen` is the older name of the same listener. Given both, with
//! different addresses, both are served (the same endpoints on each): a
//! config that adds `admin_listen` keeps its old scrape target working
//! until it drops `metrics_listen`. One address given twice is served once.
//!
//! Crate: `tiny_http`, a small synchronous HTTP server, one thread per
//! address: a scrape every few seconds needs no async runtime beside the
//! shards', and a blocking thread keeps the shards free of it.

pub mod health;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::config::BrokerConfig;

/// Start serving the admin endpoints, if an address is configured: bind
/// now (a busy port stops start-up) and serve for the life of the process.
pub fn start(config: &BrokerConfig) -> anyhow::Result<()> {
    health::READINESS.expect_shards(config.shards);
    let registry = Arc::new(crate::metrics::registry());
    for (key, addr) in addresses(config) {
        serve(key, addr, registry.clone())?;
    }
    Ok(())
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

/// A response: status, content type, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The answer to `method url`.
fn route(registry: &Registry, method: &tiny_http::Method, url: &str) -> Answer {
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let text = |status, body: &str| Answer {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    };
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return text(
            405,
            "only GET is served here; try GET /metrics or GET /health\n",
        );
    }
    match path {
        "/metrics" => Answer {
            status: 200,
            content_type: OPENMETRICS,
            body: crate::metrics::render(registry),
        },
        "/health" => {
            let r = health::now();
            Answer {
                status: r.status,
                content_type: "application/json",
                body: r.body,
            }
        }
        _ => text(
            404,
            "not found; try /metrics (Prometheus metrics) or /health (200 when serving)\n",
        ),
    }
}

/// Bind `addr` and answer its requests from a thread of its own.
pub fn serve(key: &str, addr: SocketAddr, registry: Arc<Registry>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("{key} {addr}: {e}"))?;
    tracing::info!("admin endpoints on http://{addr}/metrics and http://{addr}/health ({key})");
    std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let a = route(&registry, request.method(), request.url());
                let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], a.content_type)
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(a.body)
                    .with_status_code(a.status)
                    .with_header(header);
                if let Err(e) = request.respond(response) {
                    tracing::debug!("admin listener: answering a request: {e}");
                }
            }
        })?;
    Ok(())
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
        serve("admin_listen", addr, Arc::new(crate::metrics::registry())).unwrap();
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
