//! The broker's Prometheus metrics, in the OpenMetrics text format, served
//! as `GET /metrics` by the admin listener (`crate::admin`), a thread of its
//! own and never a shard.
//!
//! Crate: `prometheus-client`, the Prometheus project's own Rust client
//! (registry, metric types, OpenMetrics encoding; no global state). Every
//! metric here is a collector that reads its values at scrape time, so the
//! shards only ever touch their own counters or a few atomics:
//! - [`storage`]: disk space and storage faults (`shard::log::health`);
//! - [`requests`]: per-API request counts, latencies and errors and the
//!   bytes on the wire, one slot per shard, summed by the scrape;
//! - [`cluster`]: gauges of the cluster from registered providers (the
//!   shared metadata, the metadata quorum);
//! - [`replication`]: what this broker's replicas count themselves (fetches
//!   served as a follower, KIP-392 redirects, ISR changes, elections, the
//!   followers' lag), per shard like the request metrics.

pub mod cluster;
pub mod replication;
pub mod requests;
pub mod storage;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter; the encoder appends `_total` to `name`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// The broker's registry with every metric registered.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(storage::StorageCollector));
    registry.register_collector(Box::new(requests::RequestCollector(&requests::SLOTS)));
    registry.register_collector(Box::new(cluster::ClusterCollector(&cluster::PROVIDERS)));
    registry.register_collector(Box::new(replication::ReplicationCollector));
    registry
}

/// The scrape body.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
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
    fn the_request_and_cluster_metrics_are_rendered() {
        use crate::handlers::Reply;
        use std::sync::Arc;
        // A Produce (v9) on this thread, and a cluster gauge provider.
        let t = requests::RequestTimer::start(&[0, 0, 0, 9, 0, 0, 0, 1]);
        t.finish(&Reply::Frame(bytes::Bytes::from_static(&[0; 16])));
        struct One;
        impl cluster::ClusterGauges for One {
            fn gauges(&self) -> Vec<cluster::Gauge> {
                vec![cluster::Gauge {
                    name: "shardline_render_test_gauge",
                    help: "rendered by a test",
                    value: 3,
                }]
            }
        }
        cluster::register(Arc::new(One));
        let text = render(&registry());
        for line in [
            "# TYPE shardline_requests counter",
            "shardline_requests_total{api=\"Produce\"} ",
            "# TYPE shardline_requests_by_version counter",
            "shardline_requests_by_version_total{api=\"Produce\",version=\"9\"} ",
            "shardline_request_errors_total{api=\"Produce\"} ",
            "# TYPE shardline_request_duration_seconds histogram",
            "shardline_request_duration_seconds_bucket{le=\"0.00025\",api=\"Produce\"} ",
            "shardline_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"} ",
            "shardline_request_duration_seconds_count{api=\"Produce\"} ",
            "shardline_request_duration_seconds_sum{api=\"Produce\"} ",
            "\nshardline_bytes_in_total ",
            "\nshardline_bytes_out_total ",
            "\nshardline_render_test_gauge 3\n",
            "# TYPE shardline_isr_shrinks counter",
            "\nshardline_isr_shrinks_total ",
            "\nshardline_follower_fetch_requests_total ",
            "\nshardline_preferred_read_replica_redirects_total ",
            "\nshardline_leader_elections_total ",
            "\nshardline_replica_fetch_lag_messages ",
            "\nshardline_replica_fetch_lag_seconds ",
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
