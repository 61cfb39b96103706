//! Brokers in the metadata: registration, fencing, and the leader changes
//! fencing implies (Kafka's RegisterBrokerRecord, FenceBrokerRecord,
//! UnfenceBrokerRecord, UnregisterBrokerRecord and the PartitionChangeRecords
//! the controller writes with them).
//!
//! A registered broker starts fenced: it leads nothing until the active
//! controller hears a heartbeat from it and unfences it. A broker that stops
//! heartbeating is fenced again: every partition it leads moves to another
//! in-sync replica that is not fenced, or goes offline (leader -1) when
//! there is none — never to a replica outside the in-sync set, which could
//! be missing acknowledged messages (Kafka's unclean election, off here).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClusterState;

/// A listener a broker advertises to clients (Kafka's BrokerEndpoint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, ...): clients are sent
    /// to the endpoint of the listener they came in through.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerMeta {
    pub id: i32,
    /// Changes each time the broker process starts: a registration with a
    /// new incarnation replaces the old one (a restarted broker).
    pub incarnation: Uuid,
    /// Increases with every registration; heartbeats name it, so one from
    /// an old registration is recognised as stale.
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// How many shards the broker runs: replicas are placed on them.
    pub shards: u32,
    /// Fenced brokers lead nothing and get no new replicas.
    pub fenced: bool,
}

impl BrokerMeta {
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

/// The name of the endpoint a broker registers for its HTTP admin listener
/// (`admin_listen`), where the console of another broker fetches its
/// metrics history (`console::peers`). It rides in the registration's
/// listener list, so the controller, the metadata log and the snapshot
/// image carry it as they carry every endpoint, with no new record or image
/// field. Listener names are letters, digits and '_' (`parse_endpoint`
/// refuses others), and every Kafka response (Metadata, DescribeCluster,
/// FindCoordinator, follower fetching, inter-broker connections) looks an
/// endpoint up by the name of a listener: this one can match none, so no
/// Kafka client ever sees it. Its protocol id is 0 for HTTP, 1 for HTTPS.
pub const ADMIN_ENDPOINT: &str = "shardline-admin";

/// This broker's admin endpoint, when it serves an admin listener: its
/// address, with the host the client listeners advertise when it listens
/// on every interface.
pub fn admin_endpoint(config: &crate::config::BrokerConfig) -> Option<Endpoint> {
    let addr = config.admin_listen.or(config.metrics_listen)?;
    let host = if addr.ip().is_unspecified() {
        config
            .resolved_listeners
            .first()
            .map_or_else(|| "127.0.0.1".to_string(), |l| l.advertised_host.clone())
    } else {
        addr.ip().to_string()
    };
    // HTTPS exactly when `admin::tls_handle` serves it so.
    let https = config.ssl_certificate_location.is_some() && config.ssl_key_location.is_some();
    Some(Endpoint {
        name: ADMIN_ENDPOINT.to_string(),
        host,
        port: addr.port(),
        security_protocol: i16::from(https),
    })
}

impl ClusterState {
    /// Registered brokers that are not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, node: i32) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    pub(super) fn register_broker(&mut self, mut b: BrokerMeta) -> Result<i64, String> {
        if b.id < 0 {
            return Err(format!("broker id {} is negative", b.id));
        }
        if b.shards == 0 {
            return Err(format!("broker {} registers no shards", b.id));
        }
        if let Some(old) = self.brokers.get(&b.id) {
            if old.incarnation == b.incarnation {
                // The same process asking again (its answer was lost).
                return Ok(old.epoch);
            }
        }
        // A smaller shard count than the broker's replicas need would leave
        // them nowhere to live: refused, as a local start-up would be.
        if let Some(max) = self
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.shard_on(b.id))
            .max()
        {
            if max >= b.shards {
                return Err(format!(
                    "broker {} registers {} shard(s) but holds a replica on shard {max}",
                    b.id, b.shards
                ));
            }
        }
        let was_live = self.is_live(b.id);
        b.epoch = self.next_broker_epoch;
        b.fenced = true;
        self.next_broker_epoch += 1;
        let epoch = b.epoch;
        let id = b.id;
        self.brokers.insert(id, b);
        if was_live {
            // A restarted process is a new registration: it is fenced until
            // it heartbeats, so its leadership moves meanwhile.
            self.elect_without(id);
        }
        Ok(epoch)
    }

    pub(super) fn fence_broker(&mut self, id: i32, epoch: i64) -> Result<usize, String> {
        let b = self.current_broker(id, epoch)?;
        if b.fenced {
            return Ok(0);
        }
        self.brokers.get_mut(&id).expect("checked").fenced = true;
        Ok(self.elect_without(id))
    }

    pub(super) fn unfence_broker(&mut self, id: i32, epoch: i64) -> Result<usize, String> {
        let b = self.current_broker(id, epoch)?;
        if !b.fenced {
            return Ok(0);
        }
        self.brokers.get_mut(&id).expect("checked").fenced = false;
        Ok(self.elect_offline_on(id))
    }

    pub(super) fn unregister_broker(&mut self, id: i32) -> Result<usize, String> {
        if self.brokers.remove(&id).is_none() {
            return Err(format!("broker {id} is not registered"));
        }
        Ok(self.elect_without(id))
    }

    fn current_broker(&self, id: i32, epoch: i64) -> Result<&BrokerMeta, String> {
        match self.brokers.get(&id) {
            None => Err(format!("broker {id} is not registered")),
            Some(b) if b.epoch != epoch => Err(format!(
                "broker {id} has epoch {}, not {epoch} (it registered again)",
                b.epoch
            )),
            Some(b) => Ok(b),
        }
    }

    /// Move the leadership of every partition `gone` leads to another live
    /// in-sync replica, or take it offline; `gone` leaves the in-sync sets
    /// unless it is the last member (which then keeps the data that a
    /// clean election needs). Returns the partitions changed.
    fn elect_without(&mut self, gone: i32) -> usize {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        let mut changed = 0;
        for p in &mut self.coordinators {
            changed += usize::from(elect_partition_without(p, gone, &live));
        }
        for t in self.topics.values_mut() {
            let touches = t
                .partitions
                .iter()
                .any(|p| p.leader == gone || (p.isr.contains(&gone) && p.isr.len() > 1));
            if !touches {
                continue;
            }
            for p in &mut Arc::make_mut(t).partitions {
                changed += usize::from(elect_partition_without(p, gone, &live));
            }
        }
        changed
    }

    /// Give `back` the leadership of the offline partitions it is an
    /// in-sync replica of. Returns the partitions changed.
    fn elect_offline_on(&mut self, back: i32) -> usize {
        let mut changed = 0;
        for p in &mut self.coordinators {
            if p.leader < 0 && p.isr.contains(&back) {
                p.leader = back;
                p.leader_epoch += 1;
                p.partition_epoch += 1;
                changed += 1;
            }
        }
        for t in self.topics.values_mut() {
            if !t
                .partitions
                .iter()
                .any(|p| p.leader < 0 && p.isr.contains(&back))
            {
                continue;
            }
            for p in &mut Arc::make_mut(t).partitions {
                if p.leader < 0 && p.isr.contains(&back) {
                    p.leader = back;
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                    changed += 1;
                }
            }
        }
        changed
    }
}

/// [`ClusterState::elect_without`] for one partition; true if its leader
/// changed.
fn elect_partition_without(p: &mut super::PartitionMeta, gone: i32, live: &[i32]) -> bool {
    let isr_before = p.isr.len();
    if p.isr.len() > 1 && p.isr.contains(&gone) {
        p.isr.retain(|r| *r != gone);
    }
    let leader_changed = p.leader == gone;
    if leader_changed {
        // In the order of the replicas, as Kafka: the preferred one first.
        p.leader = p
            .replicas
            .iter()
            .copied()
            .find(|r| *r != gone && p.isr.contains(r) && live.contains(r))
            .unwrap_or(-1);
        p.leader_epoch += 1;
    }
    if leader_changed || p.isr.len() != isr_before {
        p.partition_epoch += 1;
    }
    leader_changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    /// The admin endpoint can never be found by a listener's name, which is
    /// how every Kafka response picks the endpoints it shows.
    #[test]
    fn no_listener_can_be_named_like_the_admin_endpoint() {
        for name in [ADMIN_ENDPOINT, &ADMIN_ENDPOINT.to_ascii_uppercase()] {
            assert!(crate::listeners::parse_endpoint(&format!("{name}://127.0.0.1:9092")).is_err());
        }
    }

    #[test]
    fn the_admin_endpoint_says_where_and_whether_https() {
        let mut config = BrokerConfig::default();
        assert_eq!(admin_endpoint(&config), None, "no admin listener");
        config.admin_listen = Some("127.0.0.2:9644".parse().unwrap());
        let e = admin_endpoint(&config).unwrap();
        assert_eq!(
            (
                e.name.as_str(),
                e.host.as_str(),
                e.port,
                e.security_protocol
            ),
            (ADMIN_ENDPOINT, "127.0.0.2", 9644, 0)
        );
        config.admin_listen = None;
        config.metrics_listen = Some("127.0.0.3:9645".parse().unwrap());
        config.ssl_certificate_location = Some("c.pem".into());
        config.ssl_key_location = Some("k.pem".into());
        let e = admin_endpoint(&config).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.security_protocol),
            ("127.0.0.3", 9645, 1)
        );
    }
}
