//! `GET /cluster`: the overview. Brokers (up = in the metadata, rack,
//! controller), partition counts, leaders per broker, under-replicated and
//! offline partitions (over the topics the caller may DESCRIBE), and disk
//! used and free per broker (DescribeLogDirs, which needs DESCRIBE on the
//! cluster: `null` with the reason when refused).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::router::ApiResult;
use super::super::{ok, Call};
use crate::ops::topics;

pub fn overview(c: &mut Call) -> ApiResult {
    c.kafka(|client| {
        let md = client.metadata(None)?;
        let controller = md.controller_id.0;
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        let mut replicas: BTreeMap<i32, usize> = BTreeMap::new();
        let mut referenced: BTreeSet<i32> = BTreeSet::new();
        let (mut partitions, mut under_replicated, mut offline) = (0usize, 0usize, 0usize);
        let mut topic_count = 0usize;
        for t in &md.topics {
            if t.error_code != 0 {
                continue;
            }
            topic_count += 1;
            for p in &t.partitions {
                partitions += 1;
                if p.leader_id.0 < 0 {
                    offline += 1;
                } else {
                    *leaders.entry(p.leader_id.0).or_default() += 1;
                }
                if p.isr_nodes.len() < p.replica_nodes.len() {
                    under_replicated += 1;
                }
                for r in &p.replica_nodes {
                    *replicas.entry(r.0).or_default() += 1;
                    referenced.insert(r.0);
                }
            }
        }
        let live: BTreeSet<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
        let mut brokers: Vec<Value> = Vec::new();
        for b in &md.brokers {
            let id = b.node_id.0;
            let disk = match topics::log_dirs(client, id) {
                Ok(d) => json!({
                    "total_bytes": d.total_bytes,
                    "free_bytes": d.usable_bytes,
                    "used_bytes": d.total_bytes.zip(d.usable_bytes).map(|(t, u)| t - u),
                    "log_bytes": d.sizes.values().sum::<i64>(),
                }),
                Err(e) => json!({"error": ApiError::from_anyhow(&e).body()}),
            };
            brokers.push(json!({
                "id": id,
                "host": b.host.to_string(),
                "port": b.port,
                "rack": b.rack.as_ref().map(|r| r.to_string()),
                "status": "up",
                "controller": id == controller,
                "leaders": leaders.get(&id).copied().unwrap_or(0),
                "replicas": replicas.get(&id).copied().unwrap_or(0),
                "disk": disk,
            }));
        }
        // Replicas on a broker Metadata does not list: it is fenced or gone.
        for id in referenced.difference(&live) {
            brokers.push(json!({
                "id": id,
                "host": null,
                "port": null,
                "rack": null,
                "status": "unavailable",
                "controller": false,
                "leaders": 0,
                "replicas": replicas.get(id).copied().unwrap_or(0),
                "disk": null,
            }));
        }
        Ok(json!({
            "cluster_id": md.cluster_id.as_ref().map(|s| s.to_string()),
            "controller_id": controller,
            "brokers": brokers,
            "topics": topic_count,
            "partitions": partitions,
            "under_replicated_partitions": under_replicated,
            "offline_partitions": offline,
            "this_node": c.console.node_id,
        }))
    })
    .and_then(ok)
}
