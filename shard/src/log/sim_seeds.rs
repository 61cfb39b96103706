//! The tests of the log simulation that run seeds (`sim_tests.rs` holds the
//! workload, the checks and the harness): the CI seeds, seeds that once
//! failed, the exact-replay check, and the long runs started by hand.

use super::*;

/// Seeds that once failed, kept as regression tests. 1382: a truncation
/// that failed after cutting its segment but before unlinking the later
/// ones left a gap (544 → 555) at the next load. 9983: the harness read
/// the log to plan a truncation on a disk that had just crashed.
#[test]
fn sim_found_seeds() {
    sim_range(1382..1383);
    sim_range(9983..9984);
}

#[test]
fn sim_ci_a() {
    sim_range(0..CI_SEEDS / 4);
}

#[test]
fn sim_ci_b() {
    sim_range(CI_SEEDS / 4..CI_SEEDS / 2);
}

#[test]
fn sim_ci_c() {
    sim_range(CI_SEEDS / 2..3 * CI_SEEDS / 4);
}

#[test]
fn sim_ci_d() {
    let total = sim_range(3 * CI_SEEDS / 4..CI_SEEDS);
    // The workload does what it claims: acks, crashes, faults and losses.
    assert!(total.acked > 100 && total.crashes > 20, "{total:?}");
    assert!(total.faults > 0 && total.lost_writes > 0, "{total:?}");
}

/// Seeds whose second run differed from the first: (seed, first, second).
fn replay_mismatches(seeds: std::ops::Range<u64>) -> Vec<(u64, Report, Report)> {
    seeds
        .filter_map(|seed| {
            let a = sim_seed(seed).unwrap_or_else(|e| panic!("{e}"));
            let b = sim_seed(seed).unwrap_or_else(|e| panic!("{e}"));
            (a != b).then_some((seed, a, b))
        })
        .collect()
}

/// A seed replays exactly: the same device events in the same order (every
/// write, fault, sync, truncate, crash and power-loss decision) and the same
/// acknowledgements. Seeds with crashes, faults and lost writes among them.
#[test]
fn a_seed_replays_the_same_run() {
    let differ = replay_mismatches(0..12);
    assert!(differ.is_empty(), "runs differ: {differ:?}");
}

/// Many seeds, or one (`SIM_SEED`): see the module comment.
#[test]
#[ignore]
fn sim_many() {
    let env = super::sim_disk::env_u64;
    let started = std::time::Instant::now();
    let range = super::sim_disk::seeds_from_env();
    let n = range.end - range.start;
    if env("SIM_COUNT_FAILURES").is_some() {
        // Run every seed and count the failing ones (before/after a fix).
        let failed: Vec<u64> = range
            .filter(|&seed| !matches!(std::panic::catch_unwind(|| sim_seed(seed)), Ok(Ok(_))))
            .collect();
        println!(
            "{} of {n} seeds failed in {:?}; first: {:?}",
            failed.len(),
            started.elapsed(),
            &failed[..failed.len().min(10)]
        );
        return;
    }
    let total = sim_range(range);
    println!("{n} seeds passed in {:?}: {total:?}", started.elapsed());
}

/// Every seed twice, counting those whose runs differ:
/// `SIM_SEEDS=500 cargo test --release -p shardline-shard sim_replay_many -- --ignored --nocapture`.
#[test]
#[ignore]
fn sim_replay_many() {
    let env = super::sim_disk::env_u64;
    let first = env("SIM_FIRST").unwrap_or(0);
    let range = first..first + env("SIM_SEEDS").unwrap_or(200);
    let n = range.end - range.start;
    let differ = replay_mismatches(range);
    for (seed, a, b) in &differ {
        println!("seed {seed} differs:\n  {a:?}\n  {b:?}");
    }
    println!("{} of {n} seeds replayed differently", differ.len());
    assert!(differ.is_empty());
}
