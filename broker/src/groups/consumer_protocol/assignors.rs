//! Server-side assignors of consumer-protocol groups: `uniform` (sticky,
//! balanced over all subscribed partitions) and `range` (per topic,
//! contiguous ranges, as the classic client-side range assignor).

use std::collections::{BTreeMap, BTreeSet};

/// topic -> partitions.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// Compute the target assignment: `subs` is member -> subscribed topics,
/// `sizes` topic -> partition count, `previous` the last target (uniform
/// keeps partitions where they are when balance allows).
pub fn assign(
    assignor: &str,
    subs: &BTreeMap<String, Vec<String>>,
    sizes: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(subs, sizes),
        _ => uniform(subs, sizes, previous),
    }
}

fn range(
    subs: &BTreeMap<String, Vec<String>>,
    sizes: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subs
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, &n) in sizes {
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let per = n as usize / members.len();
        let extra = n as usize % members.len();
        let mut next = 0i32;
        for (i, m) in members.iter().enumerate() {
            let count = per + usize::from(i < extra);
            let parts: BTreeSet<i32> = (next..next + count as i32).collect();
            next += count as i32;
            if !parts.is_empty() {
                out.get_mut(*m)
                    .expect("member listed")
                    .insert(topic.clone(), parts);
            }
        }
    }
    out
}

fn uniform(
    subs: &BTreeMap<String, Vec<String>>,
    sizes: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut count: BTreeMap<&String, usize> = subs.keys().map(|m| (m, 0)).collect();
    let all: Vec<(String, i32)> = sizes
        .iter()
        .filter(|(t, _)| subs.values().any(|ts| ts.contains(t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let quota = if subs.is_empty() {
        0
    } else {
        all.len().div_ceil(subs.len())
    };
    let eligible = |m: &String, t: &String| subs.get(m).is_some_and(|ts| ts.contains(t));
    // Stickiness: keep previous owners up to the quota.
    for (m, a) in previous {
        for (t, ps) in a {
            for p in ps {
                let key = (t.clone(), *p);
                if sizes.get(t).is_none_or(|&n| *p >= n) || !eligible(m, t) {
                    continue;
                }
                let Some(c) = count.get_mut(m) else { continue };
                if *c < quota && !owner.contains_key(&key) {
                    *c += 1;
                    owner.insert(key, m.clone());
                }
            }
        }
    }
    // The rest to the least-loaded eligible member.
    for key in &all {
        if owner.contains_key(key) {
            continue;
        }
        let best = count
            .iter()
            .filter(|(m, _)| eligible(m, &key.0))
            .min_by_key(|(m, c)| (**c, **m))
            .map(|(m, _)| (*m).clone());
        if let Some(m) = best {
            *count.get_mut(&m).expect("counted") += 1;
            owner.insert(key.clone(), m);
        }
    }
    // Even out: move from the most to the least loaded while it helps.
    loop {
        let mut moved = false;
        for key in &all {
            let Some(from) = owner.get(key).cloned() else {
                continue;
            };
            let cf = count[&from];
            let to = count
                .iter()
                .filter(|(m, _)| eligible(m, &key.0))
                .min_by_key(|(m, c)| (**c, **m))
                .map(|(m, c)| ((*m).clone(), *c));
            if let Some((to, ct)) = to {
                if ct + 1 < cf {
                    *count.get_mut(&from).expect("counted") -= 1;
                    *count.get_mut(&to).expect("counted") += 1;
                    owner.insert(key.clone(), to);
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = subs
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((t, p), m) in owner {
        out.get_mut(&m)
            .expect("member listed")
            .entry(t)
            .or_default()
            .insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn total(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    #[test]
    fn uniform_balances_all_subscribed_partitions() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["t", "u"])]);
        let sizes = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 3)]);
        let out = assign("uniform", &s, &sizes, &BTreeMap::new());
        let counts: Vec<usize> = out.values().map(total).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|&c| c == 2 || c == 3), "{counts:?}");
        // Every partition exactly once.
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)));
                }
            }
        }
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let sizes = BTreeMap::from([("t".to_string(), 4)]);
        let one = assign("uniform", &subs(&[("a", &["t"])]), &sizes, &BTreeMap::new());
        assert_eq!(total(&one["a"]), 4);
        let two = assign(
            "uniform",
            &subs(&[("a", &["t"]), ("b", &["t"])]),
            &sizes,
            &one,
        );
        assert_eq!(total(&two["a"]), 2);
        assert_eq!(total(&two["b"]), 2);
        assert!(two["a"]["t"].is_subset(&one["a"]["t"]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let s = subs(&[("a", &["t"]), ("b", &["u"])]);
        let sizes = BTreeMap::from([("t".to_string(), 2), ("u".to_string(), 2)]);
        let out = assign("uniform", &s, &sizes, &BTreeMap::new());
        assert_eq!(out["a"].keys().collect::<Vec<_>>(), vec!["t"]);
        assert_eq!(out["b"].keys().collect::<Vec<_>>(), vec!["u"]);
    }

    #[test]
    fn range_splits_each_topic() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t", "u"])]);
        let sizes = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]);
        let out = assign("range", &s, &sizes, &BTreeMap::new());
        assert_eq!(out["a"]["t"], BTreeSet::from([0, 1]));
        assert_eq!(out["b"]["t"], BTreeSet::from([2]));
        assert_eq!(out["a"]["u"], BTreeSet::from([0]));
        assert_eq!(out["b"]["u"], BTreeSet::from([1]));
    }
}
