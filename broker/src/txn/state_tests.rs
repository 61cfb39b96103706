use super::*;

fn tp(t: &str, p: i32) -> TxnPartition {
    (t.to_string(), p)
}

/// A producer initialised once (epoch 0, Empty).
fn initialised() -> TxnMetadata {
    let mut m = TxnMetadata::new("tx".into(), 100, 60_000, 1_000);
    let t = m
        .prepare_increment_producer_epoch(60_000, None, 1_000)
        .unwrap();
    assert_eq!(
        (t.producer_id, t.producer_epoch, t.state),
        (100, 0, TxnState::Empty)
    );
    m.complete(&t);
    m
}

fn begin(m: &mut TxnMetadata, now: i64, tv: i16) {
    let t = m.prepare_add_partitions([tp("a", 0), tp("b", 1)], now, tv);
    m.complete(&t);
}

#[test]
fn a_transaction_commits_through_prepare_and_complete() {
    let mut m = initialised();
    begin(&mut m, 2_000, 0);
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.start_ms, 2_000);
    // Adding more keeps the start of the transaction.
    let t = m.prepare_add_partitions([tp("c", 0)], 3_000, 0);
    m.complete(&t);
    assert_eq!((m.start_ms, m.partitions.len()), (2_000, 3));

    let t = m.prepare_abort_or_commit(TxnState::PrepareCommit, 0, NO_PRODUCER_ID, 4_000);
    assert_eq!(t.producer_epoch, 0, "version 0/1 keeps the epoch");
    m.complete(&t);
    assert_eq!(m.state, TxnState::PrepareCommit);
    let t = m.prepare_complete(5_000);
    assert_eq!(t.state, TxnState::CompleteCommit);
    assert!(t.partitions.is_empty());
    m.complete(&t);
    assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteCommit, 0));
    assert!(m.partitions.is_empty());
    // The next transaction starts afresh.
    begin(&mut m, 6_000, 0);
    assert_eq!(m.start_ms, 6_000);
}

#[test]
fn version_two_bumps_the_epoch_at_every_end() {
    let mut m = initialised();
    begin(&mut m, 2_000, 2);
    let t = m.prepare_abort_or_commit(TxnState::PrepareAbort, 2, NO_PRODUCER_ID, 3_000);
    assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
    m.complete(&t);
    assert_eq!(m.producer_epoch, 1);
    // A retried EndTxn carries the epoch before the bump.
    assert!(m.end_txn_epoch_bumped(0));
    assert!(!m.end_txn_epoch_bumped(1));
    let t = m.prepare_complete(4_000);
    m.complete(&t);
    assert_eq!(
        (m.state, m.producer_id, m.producer_epoch),
        (TxnState::CompleteAbort, 100, 1)
    );
}

#[test]
fn version_two_overflow_moves_to_the_next_producer_id() {
    let mut m = initialised();
    m.producer_epoch = i16::MAX - 1;
    begin(&mut m, 2_000, 2);
    let t = m.prepare_abort_or_commit(TxnState::PrepareCommit, 2, 777, 3_000);
    m.complete(&t);
    assert_eq!((m.producer_epoch, m.next_producer_id), (i16::MAX, 777));
    let t = m.prepare_complete(4_000);
    assert_eq!(
        (t.producer_id, t.producer_epoch, t.prev_producer_id),
        (777, 0, 100)
    );
    m.complete(&t);
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.prev_producer_id),
        (777, 0, 100)
    );
    assert_eq!(m.next_producer_id, NO_PRODUCER_ID);
}

#[test]
fn init_producer_id_retries_and_fencing_follow_kip_360() {
    let mut m = initialised();
    // A producer that knows epoch 0 asks again: bumped to 1, 0 remembered.
    let t = m
        .prepare_increment_producer_epoch(60_000, Some(0), 2_000)
        .unwrap();
    assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
    m.complete(&t);
    // Its retry (it never saw the answer) gets epoch 1 again, no bump.
    let t = m
        .prepare_increment_producer_epoch(60_000, Some(0), 3_000)
        .unwrap();
    assert_eq!(t.producer_epoch, 1);
    m.complete(&t);
    // An epoch that is neither current nor last is fenced.
    assert_eq!(
        m.prepare_increment_producer_epoch(60_000, Some(7), 4_000),
        Err(ResponseError::ProducerFenced)
    );
    assert!(!m.pending(), "a refused request leaves nothing pending");
    // A new producer (no expected epoch) bumps and forgets the last epoch.
    let t = m
        .prepare_increment_producer_epoch(30_000, None, 5_000)
        .unwrap();
    assert_eq!(
        (t.producer_epoch, t.last_producer_epoch, t.timeout_ms),
        (2, -1, 30_000)
    );
    m.complete(&t);
    assert_eq!(m.timeout_ms, 30_000);
}

#[test]
fn an_open_transaction_is_fenced_then_aborted() {
    let mut m = initialised();
    begin(&mut m, 2_000, 0);
    let fence = m.prepare_fence_producer_epoch();
    assert_eq!(
        (fence.state, fence.producer_epoch),
        (TxnState::PrepareEpochFence, 1)
    );
    m.take_fence(&fence);
    let t = m.prepare_abort_or_commit(TxnState::PrepareAbort, 0, NO_PRODUCER_ID, 3_000);
    assert_eq!(t.producer_epoch, 1);
    assert_eq!(t.partitions.len(), 2);
    m.complete(&t);
    let t = m.prepare_complete(4_000);
    m.complete(&t);
    assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, 1));
}

#[test]
fn a_failed_fence_is_not_bumped_twice() {
    let mut m = initialised();
    begin(&mut m, 2_000, 0);
    let fence = m.prepare_fence_producer_epoch();
    m.take_fence(&fence);
    let _abort = m.prepare_abort_or_commit(TxnState::PrepareAbort, 0, NO_PRODUCER_ID, 3_000);
    // The write failed: the coordinator marks it and drops the transit.
    m.abandon();
    m.failed_epoch_fence = true;
    let again = m.prepare_fence_producer_epoch();
    assert_eq!(
        again.producer_epoch, 1,
        "the epoch of the failed fence is reused"
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut m = initialised();
    m.producer_epoch = i16::MAX - 1;
    assert!(m.epoch_exhausted());
    let t = m.prepare_producer_id_rotation(555, 60_000, 2_000, true);
    assert_eq!(
        (t.producer_id, t.producer_epoch, t.last_producer_epoch),
        (555, 0, i16::MAX - 1)
    );
    m.complete(&t);
    assert_eq!((m.producer_id, m.prev_producer_id), (555, 100));
}

#[test]
fn abandoning_a_write_changes_nothing() {
    let mut m = initialised();
    let before = m.clone();
    let _t = m.prepare_add_partitions([tp("a", 0)], 2_000, 0);
    assert!(m.pending());
    m.abandon();
    assert_eq!(m, before);
}

#[test]
#[should_panic(expected = "is pending")]
fn two_transitions_at_once_are_a_bug() {
    let mut m = initialised();
    let _t = m.prepare_add_partitions([tp("a", 0)], 2_000, 0);
    let _u = m.prepare_add_partitions([tp("b", 0)], 2_000, 0);
}

#[test]
#[should_panic(expected = "cannot follow")]
fn commit_without_a_transaction_is_a_bug() {
    let mut m = initialised();
    let _t = m.prepare_abort_or_commit(TxnState::PrepareCommit, 0, NO_PRODUCER_ID, 2_000);
}

#[test]
fn state_names_and_ids_round_trip() {
    for id in 0..=7 {
        let s = TxnState::from_id(id).unwrap();
        assert_eq!(s as i8, id);
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::from_name("Bogus"), None);
}
