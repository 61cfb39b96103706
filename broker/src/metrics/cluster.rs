//! Gauges of the cluster as this broker sees it, computed at scrape time by
//! the [`ClusterGauges`] providers registered with [`register`].
//!
//! One provider reads the shared metadata ([`MetadataGauges`]):
//! partitions and leaders on this broker, those of them under-replicated
//! or under `min.insync.replicas`, and partitions with no leader.
//! The metadata quorum's own facts (active controller, quorum lag, fenced
//! brokers) belong in a provider of their own, registered here the same way
//! once the quorum has them; nothing here guesses them.
//!
//! Providers run on the scrape thread, never on a shard: they may clone a
//! snapshot or take a brief lock, and cost the shards nothing.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metadata::{ClusterState, MetadataStore};

/// One gauge of a scrape. Names must be unique over all providers.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: i64,
}

/// A source of cluster gauges, asked at every scrape.
pub trait ClusterGauges: Send + Sync {
    fn gauges(&self) -> Vec<Gauge>;
}

/// The registered providers.
#[derive(Default)]
pub struct Providers {
    list: Mutex<Vec<Arc<dyn ClusterGauges>>>,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cluster gauge providers")
    }
}

impl Providers {
    pub const fn new() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
        }
    }

    pub fn register(&self, p: Arc<dyn ClusterGauges>) {
        self.list.lock().expect("providers lock").push(p);
    }

    /// Every provider's gauges, in registration order.
    pub fn gauges(&self) -> Vec<Gauge> {
        let list = self.list.lock().expect("providers lock").clone();
        list.iter().flat_map(|p| p.gauges()).collect()
    }
}

/// The process's providers, which `/metrics` shows.
pub static PROVIDERS: Providers = Providers::new();

/// Show `p`'s gauges on `/metrics` from now on.
pub fn register(p: Arc<dyn ClusterGauges>) {
    PROVIDERS.register(p);
}

/// Partitions and leaders from the shared metadata, for broker `node_id`.
/// It holds the store weakly: the store stops its quorum thread when the
/// broker drops it at shutdown, and a provider must not keep it alive.
pub struct MetadataGauges {
    store: Weak<MetadataStore>,
    node_id: i32,
}

impl MetadataGauges {
    pub fn new(store: &Arc<MetadataStore>, node_id: i32) -> Self {
        Self {
            store: Arc::downgrade(store),
            node_id,
        }
    }
}

impl ClusterGauges for MetadataGauges {
    fn gauges(&self) -> Vec<Gauge> {
        match self.store.upgrade() {
            Some(store) => metadata_gauges(&store.snapshot(), self.node_id),
            None => Vec::new(), // shutting down
        }
    }
}

/// The metadata gauges of one snapshot.
pub fn metadata_gauges(state: &ClusterState, node_id: i32) -> Vec<Gauge> {
    let (mut replicas, mut leaders, mut under_replicated, mut offline) = (0, 0, 0, 0);
    let mut under_min_isr = 0;
    for t in state.topics.values() {
        // Kafka's effective minimum: min.insync.replicas, at most the
        // replica count (a topic with fewer replicas is not "under" it).
        let min_isr = t
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        for p in &t.partitions {
            if p.replicas.contains(&node_id) {
                replicas += 1;
            }
            if p.leader == node_id {
                leaders += 1;
                if p.isr.len() < p.replicas.len() {
                    under_replicated += 1;
                }
                if p.isr.len() < min_isr.min(p.replicas.len()) {
                    under_min_isr += 1;
                }
            }
            if p.leader == -1 {
                offline += 1;
            }
        }
    }
    vec![
        Gauge {
            name: "shardline_partitions",
            help: "Partition replicas on this broker (node_id among the partition's replicas)",
            value: replicas,
        },
        Gauge {
            name: "shardline_leader_partitions",
            help: "Partitions this broker leads",
            value: leaders,
        },
        Gauge {
            name: "shardline_under_replicated_partitions",
            help: "Partitions this broker leads whose in-sync replicas are fewer than their replicas",
            value: under_replicated,
        },
        Gauge {
            name: "shardline_under_min_isr_partitions",
            help: "Partitions this broker leads whose in-sync replicas are fewer than the topic's min.insync.replicas (at most its replica count): acks=all produce to them is refused",
            value: under_min_isr,
        },
        Gauge {
            name: "shardline_offline_partitions",
            help: "Partitions of the cluster with no leader (leader = -1), as this broker's metadata has them (every broker reports it, not only the active controller)",
            value: offline,
        },
    ]
}

/// The cluster gauges of a set of providers, asked at scrape time.
#[derive(Debug)]
pub struct ClusterCollector(pub &'static Providers);

impl Collector for ClusterCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        for g in self.0.gauges() {
            super::gauge(&mut e, g.name, g.help, g.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionMeta, TopicMeta};

    fn partition(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionMeta {
        PartitionMeta {
            leader_epoch: 0,
            partition_epoch: 0,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            shards: vec![0; replicas.len()],
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    #[test]
    fn partitions_and_leaders_are_counted_for_this_node() {
        let mut state = ClusterState::default();
        let topic = TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: vec![
                partition(1, &[1, 2], &[1, 2]),
                partition(1, &[1, 2], &[1]),
                partition(2, &[1, 2], &[2, 1]),
                partition(-1, &[2, 3], &[]),
                partition(3, &[3], &[3]),
            ],
            configs: [("min.insync.replicas".to_string(), "2".to_string())].into(),
        };
        state.topics.insert("t".into(), Arc::new(topic));
        let got: Vec<(&str, i64)> = metadata_gauges(&state, 1)
            .into_iter()
            .map(|g| (g.name, g.value))
            .collect();
        assert_eq!(
            got,
            [
                ("shardline_partitions", 3),
                ("shardline_leader_partitions", 2),
                ("shardline_under_replicated_partitions", 1),
                ("shardline_under_min_isr_partitions", 1),
                ("shardline_offline_partitions", 1),
            ]
        );
    }

    #[test]
    fn every_registered_provider_is_asked() {
        struct Fixed(i64);
        impl ClusterGauges for Fixed {
            fn gauges(&self) -> Vec<Gauge> {
                vec![Gauge {
                    name: "shardline_test_gauge",
                    help: "a test",
                    value: self.0,
                }]
            }
        }
        let providers = Providers::new();
        assert!(providers.gauges().is_empty());
        providers.register(Arc::new(Fixed(7)));
        assert_eq!(providers.gauges()[0].value, 7);
    }
}
