//! DescribeCluster, DescribeLogDirs and OffsetForLeaderEpoch: what a
//! single-node cluster with one log directory and one leader epoch says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::config::BrokerConfig;
use crate::routing::{scatter, PartitionWork};
use crate::shard_state::ShardState;

/// DescribeCluster endpoint types (v1).
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;
/// Kafka's MISMATCHED_ENDPOINT_TYPE and UNSUPPORTED_ENDPOINT_TYPE (newer
/// than kafka-protocol's error list).
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// Cluster operations a client may perform (no authorizer: all of them):
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE, as Kafka's AclOperation bit positions.
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn describe_cluster(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let snap = state.metadata.snapshot();
    let brokers = super::metadata::live_brokers(state, &snap, &ctx.listener);
    let controller = super::metadata::controller_id(state, &snap);
    let mut resp = build_describe_cluster(ctx.version, &req, brokers, controller, &snap.cluster_id);
    // Kafka answers DescribeCluster to anybody, but only reports the
    // operations the principal may perform (and none without DESCRIBE).
    if req.include_cluster_authorized_operations && state.security.authorizer.enabled() {
        resp.cluster_authorized_operations = authorized_cluster_operations(state, ctx);
    }
    resp
}

/// The bits of `CLUSTER_OPERATIONS` the principal holds.
fn authorized_cluster_operations(state: &ShardState, ctx: &RequestContext) -> i32 {
    use crate::acl::Operation::*;
    if !ctx.cluster_allowed(state, Describe) {
        return 0;
    }
    [
        Create,
        Alter,
        Describe,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
    ]
    .into_iter()
    .filter(|op| ctx.cluster_allowed(state, *op))
    .fold(0, |bits, op| bits | (1 << op.code()))
}

pub fn build_describe_cluster(
    version: i16,
    req: &DescribeClusterRequest,
    brokers: Vec<super::metadata::BrokerView>,
    controller: i32,
    cluster_id: &str,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(cluster_id.to_string()))
        .with_controller_id(BrokerId(controller))
        .with_brokers(
            brokers
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        });
    if version >= 1 {
        resp = resp.with_endpoint_type(ENDPOINT_BROKERS);
        let refused = match req.endpoint_type {
            ENDPOINT_BROKERS => None,
            ENDPOINT_CONTROLLERS => Some((
                MISMATCHED_ENDPOINT_TYPE,
                "this is a broker endpoint; Shardline has no separate controller endpoints",
            )),
            _ => Some((UNSUPPORTED_ENDPOINT_TYPE, "unknown endpoint type")),
        };
        if let Some((code, message)) = refused {
            resp = resp
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(message)))
                .with_brokers(vec![]);
        }
    }
    resp
}

/// One partition of the log directory: (topic, partition, size in bytes).
pub type DirPartition = (String, i32, i64);

/// The sizes of every partition of a shard (DescribeLogDirs), asked of each shard.
pub struct LogDirSizes;

impl PartitionWork for LogDirSizes {
    type Out = Vec<DirPartition>;

    async fn run(self, s: Rc<ShardState>) -> Vec<DirPartition> {
        s.partitions
            .local_logs()
            .into_iter()
            .map(|((t, p), log)| (t, p, log.offsets().size_bytes as i64))
            .collect()
    }
}

/// The absolute path of the data directory.
pub fn log_dir_path(config: &BrokerConfig) -> PathBuf {
    std::fs::canonicalize(&config.data_dir)
        .or_else(|_| std::path::absolute(&config.data_dir))
        .unwrap_or_else(|_| config.data_dir.clone())
}

/// Total and usable bytes of the file system holding `dir`.
pub fn volume_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as i64;
    Some((st.f_blocks as i64 * frag, st.f_bavail as i64 * frag))
}

pub async fn describe_log_dirs(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !ctx.cluster_allowed(state, crate::acl::Operation::Describe) {
        // Kafka: the top-level error (v3+), and no directories.
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let filter: Option<BTreeSet<(String, i32)>> = req.topics.map(|ts| {
        ts.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let items = (0..state.shards())
        .map(|shard| (shard, LogDirSizes))
        .collect();
    let per_shard: Vec<Vec<DirPartition>> = scatter(state, items).await;
    let partitions = per_shard
        .into_iter()
        .flatten()
        .filter(|(t, p, _)| filter.as_ref().is_none_or(|f| f.contains(&(t.clone(), *p))))
        .collect();
    let dir = log_dir_path(&state.config);
    let space = if ctx.version >= 4 {
        volume_space(&dir)
    } else {
        None
    };
    build_log_dirs_response(ctx.version, &dir.display().to_string(), partitions, space)
}

pub fn build_log_dirs_response(
    version: i16,
    dir: &str,
    partitions: Vec<DirPartition>,
    space: Option<(i64, i64)>,
) -> DescribeLogDirsResponse {
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for (t, p, size) in partitions {
        by_topic.entry(t).or_default().push((p, size));
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut parts)| {
            parts.sort_unstable();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, size)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p)
                                .with_partition_size(size)
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.to_string()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = space.unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// What the owner shard knows of a partition for OffsetForLeaderEpoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochLookup {
    pub error: i16,
    /// The partition's leader epoch now (for the fencing checks).
    pub current_epoch: i32,
    /// The log's epoch cache answer for the requested epoch (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`): (epoch, end offset), or
    /// (-1, -1) for UNDEFINED.
    pub end: (i32, i64),
}

impl Default for EpochLookup {
    fn default() -> Self {
        Self {
            error: ResponseError::NotLeaderOrFollower.code(),
            current_epoch: -1,
            end: (-1, -1),
        }
    }
}

/// Kafka's answer for one partition (`Partition.lastOffsetForLeaderEpoch`):
/// the current leader epoch the client sends is checked first (v2+), then
/// the epoch cache answers. Kafka 4.4.0 (v3 requests, single node) for a
/// partition with 7 records in epoch 0, then restarted (epoch 2):
/// requested 0 → (0, 7), 1 → (0, 7), 2 → (2, 7) (the log end), 3 → (-1, -1),
/// -1 → (-1, -1); current_leader_epoch 0 or 1 → FENCED_LEADER_EPOCH, 3 →
/// UNKNOWN_LEADER_EPOCH. After 3 more records in epoch 2: 2 → (2, 10). After
/// DeleteRecords to 10 (the cache is then [(2, 10)]): 0 → (0, 10), 1 → (1, 10)
/// (below the first entry: itself and the first start), 2 → (2, 10). An
/// empty partition in epoch 0: 0 → (0, 0). An unknown partition:
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn epoch_end_offset(
    version: i16,
    partition: i32,
    current_leader_epoch: i32,
    found: EpochLookup,
) -> EpochEndOffset {
    let mut out = EpochEndOffset::default()
        .with_partition(partition)
        .with_end_offset(-1);
    let error = if found.error != 0 {
        found.error
    } else if version >= 2
        && current_leader_epoch >= 0
        && current_leader_epoch > found.current_epoch
    {
        ResponseError::UnknownLeaderEpoch.code()
    } else if version >= 2
        && current_leader_epoch >= 0
        && current_leader_epoch < found.current_epoch
    {
        ResponseError::FencedLeaderEpoch.code()
    } else {
        0
    };
    out = out.with_error_code(error);
    if error == 0 {
        out = out.with_end_offset(found.end.1);
        if version >= 1 {
            out = out.with_leader_epoch(found.end.0);
        }
    }
    out
}

/// One partition's end offset for OffsetForLeaderEpoch (topic, partition,
/// current leader epoch, requested epoch), on its owner shard.
pub struct EpochEnd(String, i32, i32, i32);

impl PartitionWork for EpochEnd {
    type Out = EpochLookup;

    async fn run(self, s: Rc<ShardState>) -> EpochLookup {
        let EpochEnd(topic, partition, epoch, requested) = self;
        // The metadata names this broker leader in `epoch`, but the shard
        // may not have taken the role yet (it applies the same change a
        // moment later): until it has, its epoch cache lacks `epoch`, and
        // for a follower whose last epoch is newer than the cache's it
        // would answer UNDEFINED. As Kafka's `leaderLogIfLocal`, only a
        // replica that leads in that epoch answers.
        let tp = (topic, partition);
        if s.partitions.leaders().leader_epoch(&tp) != Some(epoch) {
            return EpochLookup::default();
        }
        match s.partitions.log(&tp.0, tp.1) {
            Some(log) => EpochLookup {
                error: 0,
                current_epoch: epoch,
                end: log.end_offset_for_epoch(requested),
            },
            None => EpochLookup::default(),
        }
    }
}

pub async fn offset_for_leader_epoch(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let snap = state.metadata.snapshot();
    let mut early = Vec::new();
    let mut items = Vec::new();
    let acl = ctx.checker(state);
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        let meta = snap.topic(&topic);
        let authorized = acl.allows(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Topic,
            &topic,
        );
        for p in &t.partitions {
            if !authorized {
                early.push(Some(EpochLookup {
                    error: ResponseError::TopicAuthorizationFailed.code(),
                    ..Default::default()
                }));
                continue;
            }
            let pm = meta.and_then(|m| {
                usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| m.partitions.get(i))
            });
            let here = pm.and_then(|pm| {
                (pm.leader == state.config.node_id)
                    .then(|| pm.shard_on(pm.leader))
                    .flatten()
                    .map(|s| (pm, s))
            });
            if pm.is_some() && here.is_none() {
                early.push(Some(EpochLookup {
                    error: ResponseError::NotLeaderOrFollower.code(),
                    ..Default::default()
                }));
                continue;
            }
            match here {
                Some((pm, shard)) => {
                    items.push((
                        shard as usize,
                        EpochEnd(topic.clone(), p.partition, pm.leader_epoch, p.leader_epoch),
                    ));
                    early.push(None);
                }
                None => early.push(Some(EpochLookup {
                    error: ResponseError::UnknownTopicOrPartition.code(),
                    ..Default::default()
                })),
            }
        }
    }
    let found = scatter(state, items).await;
    drop(acl);
    let mut found = found.into_iter();
    let mut lookups = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| found.next().expect("one per item")));
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let f = lookups.next().expect("one per partition");
                            epoch_end_offset(ctx.version, p.partition, p.current_leader_epoch, f)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: EpochLookup = EpochLookup {
        error: 0,
        current_epoch: 0,
        end: (0, 42),
    };

    #[test]
    fn leader_epochs_answer_like_kafka() {
        let r = epoch_end_offset(4, 0, -1, HERE);
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, 0, 42));
        // v0 has no leader epoch in the answer.
        let r = epoch_end_offset(0, 0, -1, HERE);
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, -1, 42));
        let undefined = EpochLookup {
            end: (-1, -1),
            ..HERE
        };
        let r = epoch_end_offset(4, 0, -1, undefined);
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, -1, -1));
        let r = epoch_end_offset(4, 0, 3, HERE);
        assert_eq!(r.error_code, ResponseError::UnknownLeaderEpoch.code());
        let fenced = EpochLookup {
            current_epoch: 5,
            ..HERE
        };
        let r = epoch_end_offset(3, 0, 2, fenced);
        assert_eq!(r.error_code, ResponseError::FencedLeaderEpoch.code());
        assert_eq!(r.end_offset, -1);
        // An older epoch answered from the cache (Kafka: requested 1 → (0, 7)).
        let older = EpochLookup {
            current_epoch: 2,
            end: (0, 7),
            ..HERE
        };
        let r = epoch_end_offset(3, 0, -1, older);
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, 0, 7));
        // v0/v1 have no current_leader_epoch: no fencing.
        let r = epoch_end_offset(1, 0, 3, HERE);
        assert_eq!(r.error_code, 0);
    }

    #[test]
    fn volume_space_of_a_real_dir() {
        let (total, usable) = volume_space(Path::new(".")).unwrap();
        assert!(total > 0 && usable >= 0 && usable <= total);
    }
}
