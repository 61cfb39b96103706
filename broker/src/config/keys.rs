//! The config file's keys: an unknown key is refused with the nearest
//! valid one (by edit distance), so a typo says what was meant instead of
//! serde's list of every key.

use anyhow::{bail, Result};

/// Every key `BrokerConfig` reads from a file, taken from the struct
/// itself (its serde field names), so the list cannot drift from it.
fn keys() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<super::BrokerConfig>()
}

/// Refuse the first key of `table` that is not a config key.
pub fn check(table: &toml::Table) -> Result<()> {
    for (key, value) in table {
        if !keys().contains(&key.as_str()) {
            // `log.retention.ms = 1` is TOML for a table `log`: say what was written.
            let key = &dotted(key, value);
            let hint = kafka_spelling(key)
                .map(|k| format!("; Kafka's {key} is `{k}` here"))
                .unwrap_or_else(|| format!("; the nearest valid key is `{}`", nearest(key)));
            bail!("unknown key `{key}`{hint} (keys are listed in README, Configuration)");
        }
    }
    Ok(())
}

/// `a.b.c` for a key `a` whose value is the table `{ b = { c = ... } }`.
fn dotted(key: &str, value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) if t.len() == 1 => {
            let (k, v) = t.iter().next().expect("one entry");
            format!("{key}.{}", dotted(k, v))
        }
        _ => key.to_string(),
    }
}

/// A Kafka property name (`log.retention.ms`) written where our key
/// (`log_retention_ms`) is meant.
fn kafka_spelling(key: &str) -> Option<&'static str> {
    let ours = key.replace(['.', '-'], "_");
    keys().iter().copied().find(|k| *k == ours)
}

/// The valid key closest to `key` (Levenshtein distance; ties: the first).
pub fn nearest(key: &str) -> &'static str {
    keys()
        .iter()
        .copied()
        .min_by_key(|k| edit_distance(key, k))
        .expect("keys exist")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn typos_get_the_nearest_key() {
        assert_eq!(nearest("lisen"), "listen");
        assert_eq!(nearest("log_retension_ms"), "log_retention_ms");
        assert_eq!(nearest("shard"), "shards");
        let table: toml::Table = "log_retension_ms = 5".parse().unwrap();
        let err = check(&table).unwrap_err().to_string();
        assert!(err.contains("unknown key `log_retension_ms`"), "{err}");
        assert!(err.contains("`log_retention_ms`"), "{err}");
        let table: toml::Table = "\"log.retention.ms\" = 5".parse().unwrap();
        let err = check(&table).unwrap_err().to_string();
        assert!(
            err.contains("Kafka's log.retention.ms is `log_retention_ms`"),
            "{err}"
        );
        let table: toml::Table = "log.segment.bytes = 5".parse().unwrap();
        let err = check(&table).unwrap_err().to_string();
        assert!(
            err.contains("Kafka's log.segment.bytes is `log_segment_bytes`"),
            "{err}"
        );
    }

    /// keys() is exactly what serde accepts: an unknown field's error lists
    /// serde's expected keys.
    #[test]
    fn keys_match_the_config_struct() {
        let err = toml::from_str::<super::super::BrokerConfig>("zzz_not_a_key = 1")
            .unwrap_err()
            .to_string();
        let listed = err
            .split("expected one of")
            .nth(1)
            .unwrap_or_else(|| panic!("serde's message changed: {err}"));
        let mut serde_keys: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
        let mut ours = keys().to_vec();
        serde_keys.sort_unstable();
        ours.sort_unstable();
        assert_eq!(serde_keys, ours);
    }
}
