//! The transaction coordinator as a transactional producer sees it, in
//! Kafka's transaction protocol version 1 (what every broker that has
//! transactions serves, whatever its `transaction.version` feature):
//! FindCoordinator (key type 1), InitProducerId, AddPartitionsToTxn (v3 and
//! below), EndTxn (v4 and below). Blocking calls on a connection of its own;
//! retriable errors are retried here, fatal ones end the producer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
    TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use shardline_client::{kafka_error, pick_version};

use crate::conn::{self, connect, connect_bootstrap, decode_body, encode_frame, sb, Conn};

/// The versions this bench speaks to a coordinator. AddPartitionsToTxn v4+
/// is for brokers (KIP-890), EndTxn v5 is transaction version 2 (a new
/// epoch per transaction): a version-1 producer stays below both.
const INIT_PRODUCER_ID: (i16, i16) = (0, 4);
const ADD_PARTITIONS: (i16, i16) = (0, 3);
const END_TXN: (i16, i16) = (0, 4);
/// How long a coordinator may stay unavailable or busy before the producer
/// gives up (a fresh Apache Kafka creates `__transaction_state` on the first
/// FindCoordinator and needs a few seconds).
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Backoff of CONCURRENT_TRANSACTIONS retries: from 1 ms doubling to 20 ms
/// (Kafka's Java producer waits 20 ms; starting lower shows how soon the
/// broker finishes a commit's markers).
const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(20);

/// What to do about an error code from the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The same request again after a backoff (the coordinator is busy
    /// finishing the previous transaction, or loading).
    Retry,
    /// The coordinator moved or is not there: find it again, then retry.
    Refind,
    /// The producer cannot go on (fenced by another producer with the same
    /// transactional id, refused, unsupported).
    Fatal,
}

/// Kafka's Java producer's reading of each error (TransactionManager).
pub fn verdict(code: i16) -> Verdict {
    use ResponseError as E;
    if code == 0 {
        return Verdict::Ok;
    }
    match ResponseError::try_from_code(code) {
        Some(E::ConcurrentTransactions | E::CoordinatorLoadInProgress | E::RequestTimedOut) => {
            Verdict::Retry
        }
        Some(E::NotCoordinator | E::CoordinatorNotAvailable) => Verdict::Refind,
        Some(E::UnknownTopicOrPartition) => Verdict::Retry,
        _ => Verdict::Fatal,
    }
}

/// Whether a Produce error in a transaction can be survived by aborting the
/// transaction (and starting a new producer epoch); otherwise it is fatal.
pub fn produce_error_is_abortable(code: i16) -> bool {
    use ResponseError as E;
    !matches!(
        ResponseError::try_from_code(code),
        Some(
            E::ProducerFenced
                | E::InvalidProducerEpoch
                | E::TransactionalIdAuthorizationFailed
                | E::TopicAuthorizationFailed
                | E::ClusterAuthorizationFailed
                | E::InvalidTxnState
                | E::UnsupportedVersion
                | E::UnsupportedForMessageFormat
        )
    )
}

/// A coordinator error with its code and the broker's message.
#[derive(Debug)]
struct CoordError {
    code: i16,
    message: Option<StrBytes>,
}

type Answer<T> = std::result::Result<T, CoordError>;

fn ok_or(code: i16, message: Option<StrBytes>) -> Answer<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(CoordError { code, message })
    }
}

/// Counters a producer's coordinator keeps for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoordStats {
    /// Requests answered CONCURRENT_TRANSACTIONS (or another retriable
    /// error) and sent again.
    pub retries: u64,
    /// FindCoordinator lookups after the first.
    pub refinds: u64,
}

pub struct Coordinator {
    bootstrap: String,
    pub transactional_id: String,
    timeout_ms: i32,
    conn: Conn,
    versions: HashMap<i16, (i16, i16)>,
    pub producer_id: i64,
    pub epoch: i16,
    pub stats: CoordStats,
}

impl Coordinator {
    /// Find the coordinator of `transactional_id` and take a producer id
    /// and epoch from it (InitProducerId, which fences any earlier producer
    /// with this id and aborts what it left open).
    pub fn connect(bootstrap: &str, transactional_id: &str, timeout_ms: i32) -> Result<Self> {
        let mut conn = find(bootstrap, transactional_id)?;
        let versions = api_versions(&mut conn)?;
        let mut c = Coordinator {
            bootstrap: bootstrap.to_string(),
            transactional_id: transactional_id.to_string(),
            timeout_ms,
            conn,
            versions,
            producer_id: -1,
            epoch: -1,
            stats: CoordStats::default(),
        };
        c.init_producer_id()?;
        Ok(c)
    }

    fn version(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        pick_version(ours, self.versions.get(&(key as i16)).copied()).ok_or_else(|| {
            anyhow!(
                "UNSUPPORTED_VERSION: coordinator {} does not serve {key:?} v{}-v{}",
                self.conn.addr,
                ours.0,
                ours.1
            )
        })
    }

    /// A new producer epoch (sequences restart at 0): at start, and after a
    /// transaction had to be aborted because of a Produce error.
    pub fn init_producer_id(&mut self) -> Result<()> {
        let v = self.version(ApiKey::InitProducerId, INIT_PRODUCER_ID)?;
        let what = format!(
            "InitProducerId for transactional id {}",
            self.transactional_id
        );
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(&self.transactional_id))))
            .with_transaction_timeout_ms(self.timeout_ms)
            // v3+ (KIP-360): the current id and epoch, or -1 for none.
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let (pid, epoch) = self.retrying(&what, |c| {
            let r: InitProducerIdResponse = call(&mut c.conn, &req, v)?;
            Ok(ok_or(r.error_code, None).map(|_| (r.producer_id.0, r.producer_epoch)))
        })?;
        self.producer_id = pid;
        self.epoch = epoch;
        Ok(())
    }

    /// Add `partitions` of `topic` to the transaction (its first request);
    /// CONCURRENT_TRANSACTIONS (the previous commit's markers still being
    /// written) is retried with a short backoff.
    pub fn add_partitions(&mut self, topic: &str, partitions: &[i32]) -> Result<()> {
        let v = self.version(ApiKey::AddPartitionsToTxn, ADD_PARTITIONS)?;
        let what = format!("AddPartitionsToTxn for {}", self.transactional_id);
        let topics = vec![AddPartitionsToTxnTopic::default()
            .with_name(shardline_client::topic_name(topic))
            .with_partitions(partitions.to_vec())];
        self.retrying(&what, |c| {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(sb(&c.transactional_id)))
                .with_v3_and_below_producer_id(ProducerId(c.producer_id))
                .with_v3_and_below_producer_epoch(c.epoch)
                .with_v3_and_below_topics(topics.clone());
            let r: AddPartitionsToTxnResponse = call(&mut c.conn, &req, v)?;
            Ok(add_partitions_result(&r))
        })
    }

    /// EndTxn: commit (or abort) the open transaction. Answered once the
    /// coordinator has decided (PrepareCommit written); the markers follow.
    pub fn end(&mut self, commit: bool) -> Result<()> {
        let v = self.version(ApiKey::EndTxn, END_TXN)?;
        let what = format!(
            "EndTxn({}) for {}",
            if commit { "commit" } else { "abort" },
            self.transactional_id
        );
        self.retrying(&what, |c| {
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb(&c.transactional_id)))
                .with_producer_id(ProducerId(c.producer_id))
                .with_producer_epoch(c.epoch)
                .with_committed(commit);
            let r: EndTxnResponse = call(&mut c.conn, &req, v)?;
            Ok(ok_or(r.error_code, None))
        })
    }

    /// Run `f` until it succeeds, retrying and re-finding the coordinator as
    /// [`verdict`] says, for at most [`GIVE_UP_AFTER`].
    fn retrying<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Result<Answer<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + GIVE_UP_AFTER;
        let mut backoff = BACKOFF_MIN;
        loop {
            let e = match f(self)? {
                Ok(t) => return Ok(t),
                Err(e) => e,
            };
            let v = verdict(e.code);
            if v == Verdict::Fatal || Instant::now() >= deadline {
                return Err(kafka_error(e.code, what, e.message.as_ref()));
            }
            self.stats.retries += 1;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if v == Verdict::Refind {
                self.stats.refinds += 1;
                self.conn = find(&self.bootstrap, &self.transactional_id)?;
                self.versions = api_versions(&mut self.conn)?;
            }
        }
    }
}

/// The per-partition answers of AddPartitionsToTxn v0–v3 as one: success,
/// or the first real error (OPERATION_NOT_ATTEMPTED only says another
/// partition failed).
fn add_partitions_result(r: &AddPartitionsToTxnResponse) -> Answer<()> {
    let not_attempted = ResponseError::OperationNotAttempted.code();
    let mut first = None;
    for t in &r.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            let code = p.partition_error_code;
            if code != 0 && (first.is_none() || first == Some(not_attempted)) {
                first = Some(code);
            }
        }
    }
    if r.error_code != 0 {
        first = Some(r.error_code);
    }
    ok_or(first.unwrap_or(0), None)
}

/// A connection to the coordinator of `transactional_id`, found with
/// FindCoordinator (key type 1) through the bootstrap brokers; retriable
/// answers are retried for up to [`GIVE_UP_AFTER`], then reported with the
/// broker's message.
fn find(bootstrap: &str, transactional_id: &str) -> Result<Conn> {
    let mut boot = connect_bootstrap(bootstrap)?;
    let v = boot.version(ApiKey::FindCoordinator)?;
    let req = FindCoordinatorRequest::default().with_key_type(1);
    let req = if v >= 4 {
        req.with_coordinator_keys(vec![sb(transactional_id)])
    } else {
        req.with_key(sb(transactional_id))
    };
    let what = format!("finding the transaction coordinator of {transactional_id}");
    let deadline = Instant::now() + GIVE_UP_AFTER;
    loop {
        let r: FindCoordinatorResponse = boot.call(&req)?;
        let (code, message, host, port) = if v >= 4 {
            let c = r
                .coordinators
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("FindCoordinator answered no coordinator"))?;
            (c.error_code, c.error_message, c.host, c.port)
        } else {
            (r.error_code, r.error_message, r.host, r.port)
        };
        if code == 0 {
            let addr = format!("{}:{port}", host.as_str());
            return connect(&addr).with_context(|| format!("transaction coordinator {addr}"));
        }
        if verdict(code) == Verdict::Fatal || Instant::now() >= deadline {
            return Err(kafka_error(code, what, message.as_ref()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The API version ranges `conn`'s broker serves (ApiVersions v0, which
/// every broker answers). The shared client negotiates only the APIs it
/// implements, and the transaction APIs are not among them.
fn api_versions(conn: &mut Conn) -> Result<HashMap<i16, (i16, i16)>> {
    let r: ApiVersionsResponse = call(conn, &ApiVersionsRequest::default(), 0)?;
    shardline_client::check(r.error_code, format!("ApiVersions to {}", conn.addr), None)?;
    Ok(r.api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect())
}

/// One request at `version`, its response decoded (nothing else may be in
/// flight on `conn`).
fn call<R: Request>(conn: &mut Conn, req: &R, version: i16) -> Result<R::Response> {
    if conn.in_flight() != 0 {
        bail!("coordinator call while requests are in flight");
    }
    let mut frame = BytesMut::new();
    encode_frame(req, version, &mut frame)?;
    conn.send_frame(&mut frame, true, conn::Pending::default())?;
    let (_, body) = conn
        .recv(None)?
        .ok_or_else(|| anyhow!("no response from {}", conn.addr))?;
    decode_body::<R::Response>(body, version)
        .with_context(|| format!("decoding api {} v{version} response", R::KEY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };

    #[test]
    fn errors_are_read_as_kafkas_producer_reads_them() {
        use ResponseError as E;
        assert_eq!(verdict(0), Verdict::Ok);
        assert_eq!(verdict(E::ConcurrentTransactions.code()), Verdict::Retry);
        assert_eq!(verdict(E::CoordinatorLoadInProgress.code()), Verdict::Retry);
        assert_eq!(verdict(E::NotCoordinator.code()), Verdict::Refind);
        assert_eq!(verdict(E::CoordinatorNotAvailable.code()), Verdict::Refind);
        for fatal in [
            E::ProducerFenced,
            E::InvalidProducerEpoch,
            E::InvalidTxnState,
            E::InvalidProducerIdMapping,
            E::TransactionalIdAuthorizationFailed,
            E::InvalidRequest,
            E::UnsupportedVersion,
        ] {
            assert_eq!(verdict(fatal.code()), Verdict::Fatal, "{fatal:?}");
        }
        assert!(produce_error_is_abortable(E::NotLeaderOrFollower.code()));
        assert!(produce_error_is_abortable(
            E::OutOfOrderSequenceNumber.code()
        ));
        assert!(!produce_error_is_abortable(E::ProducerFenced.code()));
        assert!(!produce_error_is_abortable(E::InvalidProducerEpoch.code()));
    }

    fn add_resp(codes: &[i16]) -> AddPartitionsToTxnResponse {
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            AddPartitionsToTxnTopicResult::default().with_results_by_partition(
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(i as i32)
                            .with_partition_error_code(*c)
                    })
                    .collect(),
            ),
        ])
    }

    #[test]
    fn add_partitions_reports_the_real_error_not_operation_not_attempted() {
        assert!(add_partitions_result(&add_resp(&[0, 0])).is_ok());
        let na = ResponseError::OperationNotAttempted.code();
        let ct = ResponseError::ConcurrentTransactions.code();
        assert_eq!(
            add_partitions_result(&add_resp(&[na, ct, na]))
                .unwrap_err()
                .code,
            ct
        );
        assert_eq!(
            add_partitions_result(&add_resp(&[ct, na]))
                .unwrap_err()
                .code,
            ct
        );
    }
}
