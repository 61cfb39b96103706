//! What a transactional producer does next, without any I/O: the requests a
//! transaction is made of ([`Plan`]) and the state of the open transaction
//! ([`Txn`]), which says begin, send, wait, commit or abort.
//!
//! One transaction: AddPartitionsToTxn (begin) → Produce requests, pipelined
//! up to the window, until the transaction's records are sent or its
//! interval is over → every response in → EndTxn(commit). A Produce error
//! stops the sending; once the rest is answered the transaction is aborted.

use std::time::Duration;

/// The requests of one transaction: `full_requests` requests of one batch
/// of `per_batch` records per partition, then, when the transaction's
/// records are not a multiple of that, one shorter request with the rest
/// spread over the partitions. Without a record count, full requests until
/// the commit interval is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub full: Vec<(i32, u32)>,
    pub full_requests: u64,
    pub tail: Option<Vec<(i32, u32)>>,
    pub interval_ns: Option<u64>,
}

/// A request of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqKind {
    Full,
    Tail,
}

impl Plan {
    /// `txn_records` records per transaction and/or a commit `interval`
    /// (whichever ends the transaction first); at least one must be given.
    pub fn new(
        parts: &[i32],
        per_batch: u32,
        txn_records: Option<u64>,
        interval: Option<Duration>,
    ) -> Plan {
        assert!(!parts.is_empty() && per_batch > 0);
        assert!(txn_records.is_some() || interval.is_some());
        let full: Vec<(i32, u32)> = parts.iter().map(|p| (*p, per_batch)).collect();
        let per_req = per_batch as u64 * parts.len() as u64;
        let (full_requests, tail) = match txn_records {
            None => (u64::MAX, None),
            Some(n) => {
                let rest = n % per_req;
                (n / per_req, (rest > 0).then(|| spread(parts, rest)))
            }
        };
        Plan {
            full,
            full_requests,
            tail,
            interval_ns: interval.map(|d| d.as_nanos() as u64),
        }
    }

    /// The `i`-th request (0-based) of a transaction, `None` past the last.
    pub fn request(&self, i: u64) -> Option<ReqKind> {
        if i < self.full_requests {
            Some(ReqKind::Full)
        } else if i == self.full_requests && self.tail.is_some() {
            Some(ReqKind::Tail)
        } else {
            None
        }
    }

    /// Every partition a transaction writes to (what AddPartitionsToTxn adds).
    pub fn partitions(&self) -> Vec<i32> {
        let mut ps: Vec<i32> = if self.full_requests > 0 {
            self.full.iter().map(|(p, _)| *p).collect()
        } else {
            Vec::new()
        };
        for (p, _) in self.tail.iter().flatten() {
            if !ps.contains(p) {
                ps.push(*p);
            }
        }
        ps
    }

    /// Records per transaction, when fixed.
    #[cfg(test)]
    pub fn records(&self) -> Option<u64> {
        (self.full_requests != u64::MAX).then(|| {
            let full: u64 = self.full.iter().map(|(_, n)| *n as u64).sum();
            let tail: u64 = self.tail.iter().flatten().map(|(_, n)| *n as u64).sum();
            full * self.full_requests + tail
        })
    }
}

/// `n` records over `parts` as evenly as possible, the first ones taking the
/// remainder; partitions that get none are left out.
pub fn spread(parts: &[i32], n: u64) -> Vec<(i32, u32)> {
    let k = parts.len() as u64;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, (n / k + u64::from((i as u64) < n % k)) as u32))
        .filter(|(_, c)| *c > 0)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No transaction open: the next step is AddPartitionsToTxn.
    Idle,
    Open,
}

/// What the producer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Begin,
    Send(ReqKind),
    /// Read a response: the window is full, or nothing more is to be sent
    /// and responses are outstanding.
    Wait,
    Commit,
    Abort,
}

/// The open transaction.
#[derive(Debug, Clone)]
pub struct Txn {
    pub phase: Phase,
    /// When it began (AddPartitionsToTxn sent).
    pub begun_ns: u64,
    /// Produce requests sent, and their records.
    pub sent: u64,
    pub sent_records: u64,
    /// Records acknowledged without error.
    pub acked_records: u64,
    /// A Produce request of this transaction failed: send no more, abort.
    pub failed: bool,
    /// Stop sending (an open-loop run ended, or --messages is spent):
    /// commit what was acknowledged.
    pub closing: bool,
}

impl Default for Txn {
    fn default() -> Self {
        Txn {
            phase: Phase::Idle,
            begun_ns: 0,
            sent: 0,
            sent_records: 0,
            acked_records: 0,
            failed: false,
            closing: false,
        }
    }
}

impl Txn {
    /// The next step with `in_flight` Produce requests outstanding, at most
    /// `window` allowed.
    pub fn next(&self, plan: &Plan, now_ns: u64, in_flight: usize, window: usize) -> Step {
        if self.phase == Phase::Idle {
            return Step::Begin;
        }
        let interval_over = plan
            .interval_ns
            .is_some_and(|i| self.sent > 0 && now_ns.saturating_sub(self.begun_ns) >= i);
        let more = !self.failed && !self.closing && !interval_over;
        match plan.request(self.sent).filter(|_| more) {
            Some(kind) if in_flight < window => Step::Send(kind),
            Some(_) => Step::Wait,
            None if in_flight > 0 => Step::Wait,
            // Nothing acknowledged (or a failure): nothing worth committing.
            None if self.failed || self.acked_records == 0 => Step::Abort,
            None => Step::Commit,
        }
    }

    pub fn begin(&mut self, now_ns: u64) {
        debug_assert_eq!(self.phase, Phase::Idle);
        *self = Txn {
            phase: Phase::Open,
            begun_ns: now_ns,
            ..Txn::default()
        };
    }

    pub fn on_sent(&mut self, records: u64) {
        self.sent += 1;
        self.sent_records += records;
    }

    /// A Produce response: `ok` records acknowledged, `failed` refused.
    pub fn on_response(&mut self, ok: u64, failed: u64) {
        self.acked_records += ok;
        if failed > 0 {
            self.failed = true;
        }
    }

    /// EndTxn answered: back to idle, ready for the next transaction.
    pub fn on_end(&mut self) {
        *self = Txn::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_a_transaction_into_full_requests_and_a_tail() {
        // 3 partitions x 100 records per request; 1000 records: 3 full + 100.
        let p = Plan::new(&[0, 1, 2], 100, Some(1000), None);
        assert_eq!(p.full_requests, 3);
        assert_eq!(p.tail, Some(vec![(0, 34), (1, 33), (2, 33)]));
        assert_eq!(p.records(), Some(1000));
        assert_eq!(p.partitions(), vec![0, 1, 2]);
        assert_eq!(
            (0..5).map(|i| p.request(i)).collect::<Vec<_>>(),
            vec![
                Some(ReqKind::Full),
                Some(ReqKind::Full),
                Some(ReqKind::Full),
                Some(ReqKind::Tail),
                None
            ]
        );
        // An exact multiple has no tail.
        let p = Plan::new(&[0, 1], 50, Some(200), None);
        assert_eq!((p.full_requests, p.tail.clone()), (2, None));
        assert_eq!(p.request(2), None);
        // Smaller than one request: only the tail, on the partitions it uses.
        let p = Plan::new(&[4, 5, 6], 100, Some(2), None);
        assert_eq!(p.full_requests, 0);
        assert_eq!(p.tail, Some(vec![(4, 1), (5, 1)]));
        assert_eq!(p.partitions(), vec![4, 5]);
        assert_eq!(p.request(0), Some(ReqKind::Tail));
        assert_eq!(p.records(), Some(2));
        // Interval only: full requests without end.
        let p = Plan::new(&[0], 10, None, Some(Duration::from_millis(100)));
        assert_eq!(p.request(1_000_000), Some(ReqKind::Full));
        assert_eq!(p.records(), None);
    }

    fn open(plan: &Plan) -> Txn {
        let mut t = Txn::default();
        assert_eq!(t.next(plan, 0, 0, 5), Step::Begin);
        t.begin(1_000);
        t
    }

    #[test]
    fn a_transaction_sends_its_requests_in_a_window_then_commits_once_all_are_answered() {
        let plan = Plan::new(&[0, 1], 10, Some(50), None); // 2 full + tail of 10
        let mut t = open(&plan);
        let mut in_flight = 0;
        let mut kinds = vec![];
        // Window of 2: two sends, then wait.
        for _ in 0..2 {
            let Step::Send(k) = t.next(&plan, 2_000, in_flight, 2) else {
                panic!("send expected")
            };
            kinds.push(k);
            t.on_sent(20);
            in_flight += 1;
        }
        assert_eq!(t.next(&plan, 2_000, in_flight, 2), Step::Wait);
        t.on_response(20, 0);
        in_flight -= 1;
        assert_eq!(
            t.next(&plan, 2_000, in_flight, 2),
            Step::Send(ReqKind::Tail)
        );
        t.on_sent(10);
        in_flight += 1;
        // All sent: wait for the rest, never commit with answers outstanding.
        assert_eq!(t.next(&plan, 2_000, in_flight, 2), Step::Wait);
        t.on_response(20, 0);
        in_flight -= 1;
        assert_eq!(t.next(&plan, 2_000, in_flight, 2), Step::Wait);
        t.on_response(10, 0);
        in_flight -= 1;
        assert_eq!(t.next(&plan, 2_000, in_flight, 2), Step::Commit);
        assert_eq!((t.sent, t.sent_records, t.acked_records), (3, 50, 50));
        assert_eq!(kinds, vec![ReqKind::Full, ReqKind::Full]);
        t.on_end();
        assert_eq!(t.phase, Phase::Idle);
        assert_eq!(t.next(&plan, 3_000, 0, 2), Step::Begin);
        t.begin(3_000);
        assert_eq!(
            (t.sent, t.acked_records),
            (0, 0),
            "a new transaction starts empty"
        );
    }

    #[test]
    fn a_failed_request_stops_sending_and_aborts_after_the_rest_is_answered() {
        let plan = Plan::new(&[0], 10, Some(100), None);
        let mut t = open(&plan);
        for _ in 0..3 {
            assert_eq!(t.next(&plan, 0, 0, 5), Step::Send(ReqKind::Full));
            t.on_sent(10);
        }
        t.on_response(0, 10);
        assert_eq!(
            t.next(&plan, 0, 2, 5),
            Step::Wait,
            "no more sends after a failure"
        );
        t.on_response(10, 0);
        t.on_response(10, 0);
        assert_eq!(t.next(&plan, 0, 0, 5), Step::Abort);
    }

    #[test]
    fn the_commit_interval_ends_a_transaction() {
        let plan = Plan::new(&[0], 10, None, Some(Duration::from_millis(5)));
        let mut t = open(&plan);
        // Begun at 1 µs; before 5 ms have passed it keeps sending.
        assert_eq!(t.next(&plan, 1_000, 0, 5), Step::Send(ReqKind::Full));
        t.on_sent(10);
        assert_eq!(t.next(&plan, 4_000_000, 1, 5), Step::Send(ReqKind::Full));
        t.on_sent(10);
        assert_eq!(t.next(&plan, 6_001_000, 2, 5), Step::Wait);
        t.on_response(10, 0);
        t.on_response(10, 0);
        assert_eq!(t.next(&plan, 6_001_000, 0, 5), Step::Commit);
        // Records and interval together: whichever comes first.
        let both = Plan::new(&[0], 10, Some(20), Some(Duration::from_secs(60)));
        let mut t = open(&both);
        t.on_sent(10);
        t.on_sent(10);
        t.on_response(20, 0);
        assert_eq!(t.next(&both, 2_000, 0, 5), Step::Commit);
    }

    #[test]
    fn closing_commits_what_was_acknowledged_and_aborts_an_empty_transaction() {
        let plan = Plan::new(&[0], 10, Some(1000), None);
        let mut t = open(&plan);
        t.on_sent(10);
        t.closing = true;
        assert_eq!(t.next(&plan, 0, 1, 5), Step::Wait);
        t.on_response(10, 0);
        assert_eq!(t.next(&plan, 0, 0, 5), Step::Commit);
        let mut empty = open(&plan);
        empty.closing = true;
        assert_eq!(empty.next(&plan, 0, 0, 5), Step::Abort);
    }
}
