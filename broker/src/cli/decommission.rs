//! `shardline cluster decommission --id N`: move every replica off broker N
//! (AlterPartitionReassignments, as `kafka-reassign-partitions` would), wait
//! until the moves are done, and unregister N once it is stopped (Kafka's
//! UnregisterBroker refuses a running broker, which would register again).
//! Run it while N is still up, so the moves need not wait for N's
//! replicas to be missed; run it again after stopping N to unregister it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest, TopicName,
    UnregisterBrokerRequest,
};

use super::client::{check, sb, Client};

/// A partition and its replicas, in order.
pub type Placement = (String, i32, Vec<i32>);

/// New replicas for every partition `leaving` holds: `leaving` replaced in
/// place by a live broker that holds no replica of the partition, one in
/// the same rack if there is one (rack-aware placement stays so), else the
/// one holding the fewest replicas (counting the moves planned so far).
pub fn plan(
    partitions: &[Placement],
    leaving: i32,
    live: &[(i32, Option<String>)],
) -> Result<Vec<Placement>> {
    let rack_of = |b: i32| {
        live.iter()
            .find(|(id, _)| *id == b)
            .and_then(|(_, r)| r.clone())
    };
    let leaving_rack = rack_of(leaving);
    let mut load: BTreeMap<i32, usize> = live
        .iter()
        .filter(|(id, _)| *id != leaving)
        .map(|(id, _)| (*id, 0))
        .collect();
    for (_, _, replicas) in partitions {
        for r in replicas {
            if let Some(l) = load.get_mut(r) {
                *l += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (topic, p, replicas) in partitions {
        let Some(at) = replicas.iter().position(|r| *r == leaving) else {
            continue;
        };
        let choice = load
            .iter()
            .filter(|(b, _)| !replicas.contains(b))
            .min_by_key(|(b, l)| {
                let other_rack = leaving_rack.is_some() && rack_of(**b) != leaving_rack;
                (other_rack, **l, **b)
            })
            .map(|(b, _)| *b);
        let Some(to) = choice else {
            bail!(
                "{topic}-{p} has replicas {replicas:?}: no other live broker can take broker \
                 {leaving}'s replica (add a broker first)"
            );
        };
        *load.get_mut(&to).expect("a candidate has a load") += 1;
        let mut target = replicas.clone();
        target[at] = to;
        out.push((topic.clone(), *p, target));
    }
    Ok(out)
}

/// Move broker `id`'s replicas away, then unregister it if it is stopped.
pub fn run(client: &mut Client, id: i32, wait: u64) -> Result<()> {
    let cluster = client
        .bootstrap()
        .call(&DescribeClusterRequest::default())?;
    check(
        cluster.error_code,
        "DescribeCluster",
        cluster.error_message.as_ref(),
    )?;
    let live: Vec<(i32, Option<String>)> = cluster
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    let moves = plan(&placements(client)?, id, &live)?;
    if !moves.is_empty() {
        let mut by_topic: BTreeMap<String, Vec<ReassignablePartition>> = BTreeMap::new();
        for (t, p, target) in &moves {
            by_topic.entry(t.clone()).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(Some(target.iter().map(|b| BrokerId(*b)).collect())),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, parts)| {
                        ReassignableTopic::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let resp = client.bootstrap().call(&req)?;
        check(
            resp.error_code,
            "AlterPartitionReassignments",
            resp.error_message.as_ref(),
        )?;
        for t in &resp.responses {
            for p in &t.partitions {
                check(
                    p.error_code,
                    format!("moving {}-{}", t.name.0, p.partition_index),
                    p.error_message.as_ref(),
                )?;
            }
        }
        println!(
            "Moving {} replica(s) off broker {id}: {}",
            moves.len(),
            moves
                .iter()
                .map(|(t, p, r)| format!("{t}-{p} → {r:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let left = placements(client)?
                .iter()
                .filter(|(_, _, r)| r.contains(&id))
                .count();
            if left == 0 {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "broker {id} still holds {left} replica(s) after {wait} s; the moves go on \
                     (`kafka-reassign-partitions --list` shows them): run this again later"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        println!("Broker {id} holds no replicas now.");
    }
    if live.iter().any(|(b, _)| *b == id) {
        println!("Stop broker {id}, then run this again to unregister it.");
        return Ok(());
    }
    let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
    let resp = client.bootstrap().call(&req)?;
    check(
        resp.error_code,
        format!("UnregisterBroker {id}"),
        resp.error_message.as_ref(),
    )?;
    println!("Broker {id} is unregistered.");
    Ok(())
}

fn placements(client: &mut Client) -> Result<Vec<Placement>> {
    let md = client.metadata(None)?;
    let mut out = Vec::new();
    for t in &md.topics {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            out.push((
                name.0.to_string(),
                p.partition_index,
                p.replica_nodes.iter().map(|b| b.0).collect(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(racks: &[(i32, Option<&str>)]) -> Vec<(i32, Option<String>)> {
        racks
            .iter()
            .map(|(id, r)| (*id, r.map(str::to_string)))
            .collect()
    }

    #[test]
    fn replicas_move_in_place_to_the_least_loaded_broker() {
        let parts = vec![
            ("a".to_string(), 0, vec![1, 2, 3]),
            ("a".to_string(), 1, vec![3, 1, 2]),
            ("b".to_string(), 0, vec![2, 3]),
        ];
        let brokers = live(&[(1, None), (2, None), (3, None), (4, None), (5, None)]);
        let moves = plan(&parts, 3, &brokers).unwrap();
        assert_eq!(
            moves,
            vec![
                ("a".to_string(), 0, vec![1, 2, 4]),
                ("a".to_string(), 1, vec![5, 1, 2]),
                ("b".to_string(), 0, vec![2, 4]),
            ]
        );
    }

    #[test]
    fn the_same_rack_is_preferred_and_a_full_cluster_is_refused() {
        let parts = vec![("a".to_string(), 0, vec![1, 2])];
        let brokers = live(&[
            (1, Some("x")),
            (2, Some("y")),
            (3, Some("y")),
            (4, Some("x")),
        ]);
        assert_eq!(
            plan(&parts, 1, &brokers).unwrap(),
            vec![("a".to_string(), 0, vec![4, 2])]
        );
        let small = live(&[(1, None), (2, None)]);
        assert!(plan(&parts, 1, &small).is_err());
        assert!(plan(&parts, 7, &small).unwrap().is_empty(), "nothing on 7");
    }
}
