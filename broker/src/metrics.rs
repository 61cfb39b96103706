//! The Prometheus endpoint: `GET /metrics` on `metrics_listen`, served by
//! a thread of its own (never a shard), in the OpenMetrics text format.
//!
//! Crates: `prometheus-client`, the Prometheus project's own Rust client
//! (registry, metric types, OpenMetrics encoding; no global state), and
//! `tiny_http`, a small synchronous HTTP server: one scrape every few
//! seconds needs no async runtime beside the shards', and a blocking thread
//! keeps the shards free of it.
//!
//! Values the shards update live in atomics (`shard::log::health`) and are
//! read at scrape time by collectors, so the hot path pays one relaxed
//! atomic operation and takes no lock. Later metrics register on the
//! `Registry` returned by [`registry`] before [`serve`] starts.

use std::net::SocketAddr;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use shard::log::health::HEALTH;

/// The data directory's space and the storage faults.
#[derive(Debug)]
struct StorageCollector;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for StorageCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        if let Some(space) = HEALTH.space() {
            let space_gauges = [
                (
                    "shardline_log_dir_total_bytes",
                    "Size of the filesystem holding the data directory",
                    space.total_bytes,
                ),
                (
                    "shardline_log_dir_free_bytes",
                    "Bytes available to the broker on that filesystem (statvfs f_bavail)",
                    space.free_bytes,
                ),
                (
                    "shardline_log_dir_min_free_bytes",
                    "Free-space floor below which produce is refused",
                    space.min_free_bytes,
                ),
            ];
            for (name, help, v) in space_gauges {
                gauge(&mut e, name, help, v as i64)?;
            }
        }
        gauge(
            &mut e,
            "shardline_log_dir_writes_refused",
            "1 while free space is below the floor and produce is refused",
            HEALTH.refusing_writes() as i64,
        )?;
        counter(
            &mut e,
            "shardline_produce_refused_low_disk",
            "Partition writes refused because free space was below the floor",
            HEALTH.writes_refused(),
        )?;
        gauge(
            &mut e,
            "shardline_storage_offline_partitions",
            "Partitions whose last write failed and that refuse writes until they recover",
            HEALTH.offline_partitions(),
        )?;
        counter(
            &mut e,
            "shardline_storage_errors",
            "Failed log writes and syncs, failed recoveries and failed metadata writes",
            HEALTH.storage_errors(),
        )?;
        gauge(
            &mut e,
            "shardline_disk_reserve_present",
            "1 while the disk reserve (ballast file) is in place",
            shard::log::reserve::present() as i64,
        )
    }
}

/// The broker's registry with every metric registered.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StorageCollector));
    registry
}

/// The scrape body.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// Bind `addr` now (a busy port stops start-up) and serve scrapes from a
/// thread of its own for the life of the process.
pub fn serve(addr: SocketAddr, registry: Registry) -> anyhow::Result<()> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("metrics_listen {addr}: {e}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let content_type = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
            )
            .expect("a valid header");
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    tiny_http::Response::from_string(render(&registry))
                        .with_header(content_type.clone())
                } else {
                    tiny_http::Response::from_string("not found; try /metrics\n")
                        .with_status_code(404)
                };
                if let Err(e) = request.respond(response) {
                    tracing::debug!("metrics: answering a scrape: {e}");
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_metrics_are_rendered() {
        let text = render(&registry());
        for name in [
            "shardline_storage_offline_partitions",
            "shardline_storage_errors_total",
            "shardline_produce_refused_low_disk_total",
            "shardline_log_dir_writes_refused",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn scrapes_are_served_over_http() {
        use std::io::{Read, Write};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        serve(addr, registry()).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        assert!(body.contains("shardline_storage_errors_total"));
    }
}
