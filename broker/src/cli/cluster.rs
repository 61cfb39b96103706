//! `shardline cluster status | add-broker | decommission`: the control
//! plane as Kafka's APIs show it — DescribeQuorum (the metadata quorum's
//! voters, leader and lag), DescribeCluster (the live brokers and racks),
//! Metadata (which brokers hold replicas) — and, to decommission a broker,
//! AlterPartitionReassignments and UnregisterBroker (`decommission.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};

use super::client::{check, sb, Client};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub conn: super::Conn,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// The quorum (voters, leader, lag) and the brokers (state, rack, partitions).
    Status,
    /// Print how to start a broker that joins this cluster, and with --wait,
    /// wait until it has registered and been unfenced.
    AddBroker {
        /// The new broker's node id.
        #[arg(long)]
        id: i32,
        /// Its client listener, host:port.
        #[arg(long)]
        listen: String,
        /// Its controller listener, host:port (the quorum sends it the log).
        #[arg(long)]
        controller: String,
        /// Its data directory.
        #[arg(long)]
        data_dir: String,
        /// Wait this many seconds for the broker to join (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Move every replica off a broker (to live brokers holding none of
    /// the partition, its rack first), wait for the moves, and unregister
    /// the broker once it is stopped (run again after stopping it).
    Decommission {
        #[arg(long)]
        id: i32,
        /// Wait this many seconds for the moves.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
}

pub fn run(bootstrap: &str, cmd: ClusterCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        ClusterCommand::Status => status(&mut client),
        ClusterCommand::AddBroker {
            id,
            listen,
            controller,
            data_dir,
            wait,
        } => add_broker(&mut client, id, &listen, &controller, &data_dir, wait),
        ClusterCommand::Decommission { id, wait } => {
            super::decommission::run(&mut client, id, wait)
        }
    }
}

struct Quorum {
    leader: i32,
    epoch: i32,
    high_watermark: i64,
    /// (node, log end, last fetch ms, is voter)
    replicas: Vec<(i32, i64, i64, bool)>,
    /// node -> host:port of its controller listener
    endpoints: BTreeMap<i32, String>,
}

fn describe_quorum(client: &mut Client) -> Result<Quorum> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(sb("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = client.bootstrap().call(&req)?;
    check(
        resp.error_code,
        "DescribeQuorum",
        resp.error_message.as_ref(),
    )?;
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow::anyhow!("DescribeQuorum answered no partition"))?;
    check(p.error_code, "DescribeQuorum", p.error_message.as_ref())?;
    let mut replicas = Vec::new();
    for (list, voter) in [(&p.current_voters, true), (&p.observers, false)] {
        for r in list {
            replicas.push((
                r.replica_id.0,
                r.log_end_offset,
                r.last_fetch_timestamp,
                voter,
            ));
        }
    }
    let endpoints = resp
        .nodes
        .iter()
        .filter_map(|n| {
            let l = n.listeners.first()?;
            Some((n.node_id.0, format!("{}:{}", l.host, l.port)))
        })
        .collect();
    Ok(Quorum {
        leader: p.leader_id.0,
        epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        replicas,
        endpoints,
    })
}

fn status(client: &mut Client) -> Result<()> {
    let q = describe_quorum(client)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    println!(
        "Quorum: leader {} (the active controller), epoch {}, high watermark {}",
        q.leader, q.epoch, q.high_watermark
    );
    println!("NODE  ROLE      LOG-END  LAG  LAST-HEARD      CONTROLLER-LISTENER");
    for (node, end, fetched, voter) in &q.replicas {
        let heard = if *fetched < 0 {
            "-".to_string()
        } else {
            format!("{} ms ago", (now_ms - fetched).max(0))
        };
        println!(
            "{node:<5} {:<9} {end:>7}  {:>3}  {heard:<15} {}",
            if *voter { "voter" } else { "observer" },
            (q.high_watermark - end).max(0),
            q.endpoints.get(node).map_or("-", String::as_str)
        );
    }
    let resp = client
        .bootstrap()
        .call(&DescribeClusterRequest::default())?;
    check(
        resp.error_code,
        "DescribeCluster",
        resp.error_message.as_ref(),
    )?;
    let md = client.metadata(None)?;
    let mut replicas: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    let mut offline = 0;
    for t in &md.topics {
        for p in &t.partitions {
            if p.leader_id.0 < 0 {
                offline += 1;
            }
            for r in &p.replica_nodes {
                replicas.entry(r.0).or_default().0 += 1;
            }
            replicas.entry(p.leader_id.0).or_default().1 += 1;
        }
    }
    println!();
    println!(
        "Cluster {}: {} live broker(s)",
        resp.cluster_id,
        resp.brokers.len()
    );
    println!("BROKER  STATE    RACK     REPLICAS  LEADS  ADDRESS");
    let live: Vec<i32> = resp.brokers.iter().map(|b| b.broker_id.0).collect();
    for b in &resp.brokers {
        let (r, l) = replicas.get(&b.broker_id.0).copied().unwrap_or_default();
        println!(
            "{:<7} {:<8} {:<8} {r:>8}  {l:>5}  {}:{}",
            b.broker_id.0,
            "live",
            b.rack.as_ref().map_or("-", |r| r.as_str()),
            b.host,
            b.port
        );
    }
    // Brokers that hold replicas but are not live: fenced or gone.
    for (id, (r, _)) in replicas
        .iter()
        .filter(|(id, _)| **id >= 0 && !live.contains(id))
    {
        println!("{id:<7} {:<8} {:<8} {r:>8}  {:>5}  -", "fenced", "-", 0);
    }
    if offline > 0 {
        println!("{offline} partition(s) offline (no live in-sync replica)");
    }
    Ok(())
}

fn add_broker(
    client: &mut Client,
    id: i32,
    listen: &str,
    controller: &str,
    data_dir: &str,
    wait: u64,
) -> Result<()> {
    let q = describe_quorum(client)?;
    if q.endpoints.contains_key(&id) || q.replicas.iter().any(|r| r.0 == id) {
        bail!("node {id} is in the quorum already");
    }
    let voters: Vec<String> = q
        .endpoints
        .iter()
        .map(|(n, addr)| format!("{n}@{addr}"))
        .collect();
    println!("Start the new broker with:");
    println!(
        "  shardline serve --node-id {id} --process-roles broker --data-dir {data_dir} \\\n    \
         --listeners PLAINTEXT://{listen},CONTROLLER://{controller} \\\n    \
         --controller-quorum-voters {}",
        voters.join(",")
    );
    if wait == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let resp = client
            .bootstrap()
            .call(&DescribeClusterRequest::default())?;
        if resp.brokers.iter().any(|b| b.broker_id.0 == id) {
            println!("broker {id} has joined and is unfenced");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("broker {id} did not join within {wait} s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
