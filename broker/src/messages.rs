//! Typed cross-shard messages: what one shard asks of another, as values.
//!
//! Each family of requests belongs to a service (connection counts,
//! partitions, groups, the controller) and is answered by a `match` on the
//! receiving shard ([`ShardState`]'s [`Service`] impl). Requests and
//! replies own their data, so a family could be serialized to cross the
//! network, with one exception said where it is: replies that carry DMA
//! read buffers (Fetch) are local-only — they hand the buffers over
//! without a copy, and serializing them would mean copying the bytes.

use std::future::Future;
use std::rc::Rc;

use shard::mesh::Service;

use crate::controller;
use crate::handlers::{
    cluster, configs, consumer_groups, delete_records, describe_producers, fetch, groups,
    list_offsets, offsets, produce, txn, txn_admin, txn_markers, txn_offsets,
};
use crate::partitions::PartitionAdmin;
use crate::routing::{run_batch, Batched, PartitionWork};
use crate::server::limits::ConnOp;
use crate::shard_state::ShardState;

pub enum ShardRequest {
    /// Per-address connection counts, kept by the address's owner shard.
    Conn(ConnOp),
    /// Per-partition work of a client request, one shard's share.
    Partitions(PartitionBatch),
    /// The controller's requests to a partition's owner shard.
    /// Boxed: rare, and larger than the hot messages.
    PartitionAdmin(Box<PartitionAdmin>),
    /// Fetch's long poll on an owner shard: wait until the high watermark
    /// of any of `parts` (topic, partition, fetch offset) passes its
    /// offset, or `timeout`.
    WaitForData {
        parts: Vec<(String, i32, i64)>,
        timeout: std::time::Duration,
        /// A follower's fetch: wait for the durable end, not the high
        /// watermark (followers copy what the high watermark waits for).
        replica: bool,
    },
    /// A request answered by one [`ShardWork`] type (see `shard_work!`).
    Work(WorkRequest),
}

#[derive(Debug)]
pub enum ShardReply {
    /// Done; the request has no answer.
    Done,
    /// `ConnOp::TryAdd`: whether the connection was admitted.
    Admitted(bool),
    /// The answers to [`ShardRequest::Partitions`].
    Partitions(PartitionOutputs),
    /// The answer to [`ShardRequest::Work`].
    Work(WorkReply),
    /// `PartitionAdmin::Open`: the log is open, or why not.
    Opened(Result<(), String>),
}

impl Service for ShardState {
    type Request = ShardRequest;
    type Reply = ShardReply;

    async fn handle(self: Rc<Self>, request: ShardRequest) -> ShardReply {
        match request {
            ShardRequest::Partitions(batch) => ShardReply::Partitions(batch.run(self).await),
            ShardRequest::Conn(op) => self.connections.handle(op),
            ShardRequest::Work(work) => ShardReply::Work(work.run(self).await),
            ShardRequest::PartitionAdmin(op) => self.partitions.handle(*op).await,
            ShardRequest::WaitForData {
                parts,
                timeout,
                replica,
            } => {
                crate::handlers::fetch::wait_local(&self, parts, timeout, replica).await;
                ShardReply::Done
            }
        }
    }
}

/// The kinds of per-partition work, each with the [`PartitionWork`] item
/// type its handler defines: builds [`PartitionBatch`] (one shard's items
/// of one kind), [`PartitionOutputs`] (their answers) and the glue.
macro_rules! partition_work {
    ($($kind:ident($work:ty)),* $(,)?) => {
        /// One shard's items of one kind of partition work.
        pub enum PartitionBatch {
            $($kind(Vec<(usize, $work)>),)*
        }

        /// The answers to a [`PartitionBatch`], with their items' indexes.
        pub enum PartitionOutputs {
            $($kind(Vec<(usize, <$work as PartitionWork>::Out)>),)*
        }

        impl PartitionBatch {
            async fn run(self, state: Rc<ShardState>) -> PartitionOutputs {
                match self {
                    $(Self::$kind(batch) => PartitionOutputs::$kind(run_batch(state, batch).await),)*
                }
            }
        }

        impl std::fmt::Debug for PartitionOutputs {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Self::$kind(outs) => write!(f, "{}({} answers)", stringify!($kind), outs.len()),)*
                }
            }
        }

        $(impl Batched for $work {
            fn batch(items: Vec<(usize, Self)>) -> PartitionBatch {
                PartitionBatch::$kind(items)
            }

            fn outputs(outputs: PartitionOutputs) -> Option<Vec<(usize, Self::Out)>> {
                match outputs {
                    PartitionOutputs::$kind(outs) => Some(outs),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        })*
    };
}

partition_work! {
    // Fetch's answers hold DMA read buffers of the owner shard, handed over
    // without a copy: local-only; serializing them would copy the bytes.
    Read(fetch::Read),
    Append(produce::Append),
    ListOffsets(list_offsets::Lookup),
    DeleteRecords(delete_records::DeleteBefore),
    LogDirs(cluster::LogDirSizes),
    LeaderEpoch(cluster::EpochEnd),
    Producers(describe_producers::ProducersOf),
}

/// A request to one shard that one type answers: its fields are the
/// request, `run` is what the receiving shard does, `Out` the reply.
pub trait ShardWork: Send + Sized + 'static {
    type Out: Send + 'static;
    /// Do it on the receiving shard.
    fn run(self, state: Rc<ShardState>) -> impl Future<Output = Self::Out> + 'static;
}

/// A [`ShardWork`] type's place in [`ShardRequest`] and [`ShardReply`]
/// (implemented by `shard_work!`).
pub trait Asked: ShardWork {
    fn request(self) -> ShardRequest;
    fn answer(reply: ShardReply) -> Option<Self::Out>;
}

/// The [`ShardWork`] types, each a variant of [`WorkRequest`] and of
/// [`WorkReply`]. The `boxed` ones are large (a JoinGroup's protocols, a
/// ConsumerGroupHeartbeat's subscription, a described consumer group): they cross the
/// mesh boxed, request and reply, so every other message on the mesh stays
/// small. A request answered on its own shard is never boxed (`ask` runs it
/// inline); across shards that is two allocations where the closure these
/// replace took three (the closure, its future, the reply's channel).
macro_rules! shard_work {
    (
        inline { $($kind:ident($work:ty)),* $(,)? }
        boxed { $($bkind:ident($bwork:ty)),* $(,)? }
    ) => {
        pub enum WorkRequest {
            $($kind($work),)*
            $($bkind(Box<$bwork>),)*
        }

        pub enum WorkReply {
            $($kind(<$work as ShardWork>::Out),)*
            $($bkind(Box<<$bwork as ShardWork>::Out>),)*
        }

        impl WorkRequest {
            async fn run(self, state: Rc<ShardState>) -> WorkReply {
                match self {
                    $(Self::$kind(work) => WorkReply::$kind(work.run(state).await),)*
                    $(Self::$bkind(work) => WorkReply::$bkind(Box::new(work.run(state).await)),)*
                }
            }
        }

        impl std::fmt::Debug for WorkReply {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Self::$kind(_) => f.write_str(stringify!($kind)),)*
                    $(Self::$bkind(_) => f.write_str(stringify!($bkind)),)*
                }
            }
        }

        $(impl Asked for $work {
            fn request(self) -> ShardRequest {
                ShardRequest::Work(WorkRequest::$kind(self))
            }

            fn answer(reply: ShardReply) -> Option<Self::Out> {
                match reply {
                    ShardReply::Work(WorkReply::$kind(out)) => Some(out),
                    _ => None,
                }
            }
        })*

        $(impl Asked for $bwork {
            fn request(self) -> ShardRequest {
                ShardRequest::Work(WorkRequest::$bkind(Box::new(self)))
            }

            fn answer(reply: ShardReply) -> Option<Self::Out> {
                match reply {
                    ShardReply::Work(WorkReply::$bkind(out)) => Some(*out),
                    _ => None,
                }
            }
        })*
    };
}

shard_work! {
    inline {
        // Controller commands, sent to the controller shard.
        DeleteTopic(controller::DeleteTopic),
        ChangeTopicConfigs(configs::ChangeTopicConfigs),
        AllocateProducerId(controller::AllocateProducerId),
        PlaceCoordinators(controller::PlaceCoordinators),
        UnregisterBroker(controller::UnregisterBroker),
        // Group coordinator requests, sent to the group's owner shard
        // (ListGroups to every shard).
        LeaveGroup(groups::LeaveGroup),
        ListGroups(groups::ListGroups),
        DeleteGroup(groups::DeleteGroup),
        OffsetDelete(offsets::OffsetDelete),
        // Transaction coordinator requests, sent to the shard owning the
        // id's __transaction_state partition; markers to a partition's.
        InitTxnProducer(txn::InitTxnProducer),
        AddTxnPartitions(txn::AddTxnPartitions),
        EndTxn(txn::EndTxn),
        TxnMarker(txn_markers::MarkerAppend),
        ListTxns(txn_admin::ListTxns),
        CompleteGroupTxn(txn_offsets::CompleteGroupTxn),
    }
    boxed {
        // Controller commands with replica assignments.
        CreateTopic(controller::CreateTopic),
        CreatePartitions(controller::CreatePartitions),
        ElectLeaders(controller::replicas::ElectLeaders),
        AlterReassignments(controller::replicas::AlterReassignments),
        AlterBrokerConfigs(controller::replicas::AlterBrokerConfigs),
        JoinGroup(groups::JoinGroup),
        SyncGroup(groups::SyncGroup),
        Heartbeat(groups::Heartbeat),
        DescribeGroup(groups::DescribeGroup),
        OffsetCommit(offsets::OffsetCommit),
        ConsumerGroupHeartbeat(consumer_groups::ConsumerGroupHeartbeat),
        ConsumerGroupDescribe(consumer_groups::ConsumerGroupDescribe),
        DescribeTxn(txn_admin::DescribeTxn),
        TxnCommit(txn_offsets::TxnCommit),
        OffsetFetch(offsets::OffsetFetch),
    }
}

#[cfg(test)]
mod tests {
    use super::{ShardReply, ShardRequest};

    /// Every mesh message is moved by value through a bounded inbox; the
    /// large kinds are boxed (`shard_work!`'s `boxed`) so Produce and Fetch
    /// messages do not pay for them. These are the sizes before the group
    /// requests were typed.
    #[test]
    fn mesh_messages_stay_small() {
        assert!(std::mem::size_of::<ShardRequest>() <= 72);
        assert!(std::mem::size_of::<ShardReply>() <= 40);
    }
}
