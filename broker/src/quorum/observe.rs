//! What `/metrics` and `/health` show of the metadata quorum and this
//! broker's registration: the active controller, the quorum's lag, fenced
//! brokers. Read on the scrape thread from the published view and state
//! (a clone of an `Arc` and a brief read lock), never on a shard.

use std::sync::{Arc, Weak};

use crate::admin::health::HealthSource;
use crate::metadata::MetadataStore;
use crate::metrics::cluster::{ClusterGauges, Gauge};

/// Holds the store weakly: it stops the quorum thread when dropped at
/// shutdown, which a provider must not prevent.
pub struct QuorumObserver {
    store: Weak<MetadataStore>,
}

impl QuorumObserver {
    pub fn new(store: &Arc<MetadataStore>) -> Arc<Self> {
        Arc::new(Self {
            store: Arc::downgrade(store),
        })
    }
}

impl ClusterGauges for QuorumObserver {
    fn gauges(&self) -> Vec<Gauge> {
        let Some(store) = self.store.upgrade() else {
            return Vec::new();
        };
        let view = store.quorum().view();
        let state = store.snapshot();
        let fenced = state.brokers.values().filter(|b| b.fenced).count() as i64;
        let (_, self_fenced) = store.registration().unwrap_or((-1, true));
        vec![
            Gauge {
                name: "shardline_active_controller",
                help: "Node id of the active controller (the metadata quorum's leader) as this node knows it; -1 none",
                value: view.leader.map_or(-1, i64::from),
            },
            Gauge {
                name: "shardline_is_active_controller",
                help: "1 when this node is the active controller",
                value: i64::from(view.is_leader),
            },
            Gauge {
                name: "shardline_quorum_term",
                help: "The metadata quorum's current term (Kafka's leader epoch of __cluster_metadata)",
                value: view.term as i64,
            },
            Gauge {
                name: "shardline_metadata_commit_offset",
                help: "Index of the last committed entry of the metadata log this node knows",
                value: view.commit as i64,
            },
            Gauge {
                name: "shardline_metadata_apply_lag",
                help: "Committed metadata entries this node has not applied yet",
                value: view.commit.saturating_sub(view.applied) as i64,
            },
            Gauge {
                name: "shardline_quorum_max_follower_lag",
                help: "On the active controller: entries the furthest-behind voter or learner lacks (0 elsewhere)",
                value: view.max_follower_lag as i64,
            },
            Gauge {
                name: "shardline_quorum_proposals_resent",
                help: "This node's metadata changes sent again to a new active controller (the one they went to lost the leadership first), since start",
                value: view.proposals_resent as i64,
            },
            Gauge {
                name: "shardline_quorum_proposal_copies_skipped",
                help: "Committed copies of a metadata change applied already, skipped, since start",
                value: view.proposal_copies_skipped as i64,
            },
            Gauge {
                name: "shardline_registered_brokers",
                help: "Brokers registered with the cluster",
                value: state.brokers.len() as i64,
            },
            Gauge {
                name: "shardline_fenced_brokers",
                help: "Registered brokers the active controller has fenced (silent, or not caught up)",
                value: fenced,
            },
            Gauge {
                name: "shardline_broker_fenced",
                help: "1 while this broker is fenced (or not registered yet)",
                value: i64::from(self_fenced),
            },
        ]
    }
}

impl HealthSource for QuorumObserver {
    fn facts(&self) -> Vec<(String, String)> {
        let Some(store) = self.store.upgrade() else {
            return Vec::new();
        };
        let view = store.quorum().view();
        let mut facts = vec![
            (
                "active_controller".to_string(),
                view.leader.map_or("none".to_string(), |l| l.to_string()),
            ),
            ("metadata_applied".to_string(), view.applied.to_string()),
        ];
        if let Some((epoch, fenced)) = store.registration() {
            facts.push(("broker_epoch".to_string(), epoch.to_string()));
            facts.push(("fenced".to_string(), fenced.to_string()));
        }
        facts
    }

    fn problem(&self) -> Option<String> {
        let store = self.store.upgrade()?;
        match store.registration() {
            Some((_, true)) => Some("this broker is fenced by the active controller".into()),
            None => Some("this broker has not registered with the active controller".into()),
            Some((_, false)) => None,
        }
    }
}
