//! The leader-epoch cache: Kafka's `LeaderEpochFileCache` cases.

use super::*;

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut c = LeaderEpochCache::default();
    for &(e, o) in entries {
        assert!(c.assign(e, o));
    }
    c
}

fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
    c.entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

#[test]
fn end_offset_for_answers_as_kafka() {
    // Epoch 1 from 0, 3 from 10, 6 from 25; the log ends at 40.
    let c = cache(&[(1, 0), (3, 10), (6, 25)]);
    let table = [
        // (requested, expected (epoch, end offset))
        (6, (6, 40)),                              // the latest: the log end
        (3, (3, 25)),                              // an older one: next start
        (1, (1, 10)),                              //
        (2, (1, 10)),                              // between: the floor epoch
        (4, (3, 25)),                              //
        (5, (3, 25)),                              //
        (0, (0, 0)),                               // below the first: itself, first start
        (7, (UNDEFINED_EPOCH, UNDEFINED_OFFSET)),  // above every epoch
        (-1, (UNDEFINED_EPOCH, UNDEFINED_OFFSET)), // undefined
    ];
    for (requested, expected) in table {
        assert_eq!(
            c.end_offset_for(requested, 40),
            expected,
            "epoch {requested}"
        );
    }
    let below = cache(&[(4, 100)]);
    assert_eq!(below.end_offset_for(2, 150), (2, 100));
    let empty = LeaderEpochCache::default();
    assert_eq!(
        empty.end_offset_for(0, 0),
        (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    );
}

#[test]
fn assign_keeps_entries_monotonic() {
    let mut c = cache(&[(1, 0), (3, 10)]);
    assert!(!c.assign(3, 12), "the same epoch later: nothing to do");
    assert!(c.assign(3, 8), "the same epoch earlier moves its start");
    assert_eq!(pairs(&c), [(1, 0), (3, 8)]);
    assert!(c.assign(2, 5), "an older epoch drops the later entries");
    assert_eq!(pairs(&c), [(1, 0), (2, 5)]);
    assert!(c.assign(5, 5), "a later epoch at the same start replaces");
    assert_eq!(pairs(&c), [(1, 0), (5, 5)]);
}

#[test]
fn truncation_from_either_end() {
    let mut c = cache(&[(1, 0), (3, 10), (6, 25)]);
    assert!(!c.truncate_from_end(30));
    assert!(c.truncate_from_end(25));
    assert_eq!(pairs(&c), [(1, 0), (3, 10)]);
    assert!(c.truncate_from_start(12));
    assert_eq!(pairs(&c), [(3, 12)]);
    assert!(!c.truncate_from_start(12));
    assert!(!c.truncate_from_start(5));
    let mut c = cache(&[(1, 0), (3, 10)]);
    assert!(c.truncate_from_start(10));
    assert_eq!(pairs(&c), [(3, 10)]);
    assert!(c.truncate_from_end(0));
    assert!(c.entries().is_empty());
}

#[test]
fn checkpoint_text_round_trips_in_kafkas_format() {
    let c = cache(&[(0, 0), (3, 1200)]);
    assert_eq!(c.encode(), "0\n2\n0 0\n3 1200\n");
    assert_eq!(
        pairs(&LeaderEpochCache::decode(&c.encode()).unwrap()),
        pairs(&c)
    );
    assert!(LeaderEpochCache::decode("0\n0\n")
        .unwrap()
        .entries()
        .is_empty());
    for bad in [
        "",
        "1\n0\n",
        "0\n",
        "0\n2\n0 0\n",
        "0\n1\n0 x\n",
        "0\n1\n0 0 0\n",
        "0\n2\n3 10\n2 20\n",
        "0\n1\n0 0\n1 5\n",
        "0\n1\n-1 0\n",
    ] {
        assert!(LeaderEpochCache::decode(bad).is_err(), "{bad:?} accepted");
    }
}
