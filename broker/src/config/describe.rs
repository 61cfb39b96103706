//! The broker resource's DescribeConfigs list, made from `table.rs`: a key
//! marked `#[describe(TYPE, "doc")]` is shown under its Kafka name (or its
//! own with dots for underscores), and the table's `fixed` block adds the
//! Kafka settings Shardline does not make configurable (`broker.id`,
//! `min.insync.replicas`, ...), with the value a client sees.

use super::BrokerConfig;
use crate::metadata::topic_config::ConfigType;

/// One broker setting as DescribeConfigs shows it.
pub struct Described {
    pub name: String,
    pub value: String,
    pub kind: ConfigType,
    pub doc: &'static str,
}

/// A key's value as DescribeConfigs shows it, when the key's own value is
/// what a client sees (others give a function in `table.rs`).
pub trait DescribeValue {
    fn describe_value(&self) -> String;
}

macro_rules! shown_with_to_string {
    ($($t:ty),*) => {$(
        impl DescribeValue for $t {
            fn describe_value(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_with_to_string!(i32, i64, u32, u64, usize, bool, String);

/// Kafka's lists are comma-separated.
impl DescribeValue for Vec<String> {
    fn describe_value(&self) -> String {
        self.join(",")
    }
}

/// The name a key is described under: Kafka's, else its own with dots.
pub fn name(key: &str, kafka: Option<&str>) -> String {
    kafka.map_or_else(|| key.replace('_', "."), str::to_string)
}

/// One comma-separated entry per listener in effect.
fn per_listener(b: &BrokerConfig, entry: impl Fn(&crate::listeners::Listener) -> String) -> String {
    b.resolved_listeners
        .iter()
        .map(entry)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn listeners(b: &BrokerConfig) -> String {
    per_listener(b, |l| format!("{}://{}", l.name, l.bind))
}

pub fn advertised_listeners(b: &BrokerConfig) -> String {
    per_listener(b, |l| {
        format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port)
    })
}

pub fn protocol_map(b: &BrokerConfig) -> String {
    per_listener(b, |l| format!("{}:{}", l.name, l.protocol))
}

/// Kafka's `log.dirs` is absolute.
pub fn log_dirs(b: &BrokerConfig) -> String {
    std::path::absolute(&b.data_dir)
        .unwrap_or_else(|_| b.data_dir.clone())
        .display()
        .to_string()
}

pub fn shards(b: &BrokerConfig) -> String {
    b.shards.to_string()
}

pub fn log_flush(b: &BrokerConfig) -> String {
    match b.log_flush {
        shard::log::FlushMode::Batch => "batch",
        shard::log::FlushMode::Interval => "interval",
    }
    .into()
}

pub fn node_id(b: &BrokerConfig) -> String {
    b.node_id.to_string()
}
