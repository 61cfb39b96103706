//! The config file's keys: an unknown key is refused with the nearest
//! valid one (by edit distance), so a typo says what was meant instead of
//! serde's list of every key.

use anyhow::{bail, Result};

/// Every key `BrokerConfig` reads from a file (the table it is made from).
fn keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| super::SETTINGS.iter().map(|s| s.key).collect())
}

/// Whether `name` is a section of the table (`[limits]`, ...).
fn is_section(name: &str) -> bool {
    super::SETTINGS.iter().any(|s| s.section == name)
}

/// The section a key belongs to.
fn section_of(key: &str) -> &'static str {
    super::SETTINGS
        .iter()
        .find(|s| s.key == key)
        .map(|s| s.section)
        .expect("a known key")
}

/// One key of a config file: its value, and the section it was written
/// in (`None` at the top level).
pub struct FileKey {
    pub key: String,
    pub section: Option<String>,
    pub value: toml::Value,
}

/// A config file's keys, whether written flat (`max_connections = 10`) or
/// in their section (`[limits]` then `max_connections = 10`). Refused:
/// an unknown key (with the nearest valid one), a key in another
/// section's table, and a key given twice.
pub fn flatten(table: toml::Table) -> Result<Vec<FileKey>> {
    let mut out: Vec<FileKey> = Vec::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(inner) if is_section(&name) => {
                for (key, value) in inner {
                    if !keys().contains(&key.as_str()) {
                        bail!(
                            "unknown key `{key}` in [{name}]{}",
                            hint(&dotted(&key, &value))
                        );
                    }
                    let home = section_of(&key);
                    if home != name {
                        bail!("`{key}` belongs in [{home}], not in [{name}]");
                    }
                    out.push(FileKey {
                        key,
                        section: Some(name.clone()),
                        value,
                    });
                }
            }
            value => {
                if !keys().contains(&name.as_str()) {
                    // `log.retention.ms = 1` is TOML for a table `log`: say what was written.
                    let key = dotted(&name, &value);
                    bail!("unknown key `{key}`{}", hint(&key));
                }
                out.push(FileKey {
                    key: name,
                    section: None,
                    value,
                });
            }
        }
    }
    for (i, k) in out.iter().enumerate() {
        if out[..i].iter().any(|earlier| earlier.key == k.key) {
            bail!(
                "`{}` is given twice: at the top level and in [{}]; keep one",
                k.key,
                section_of(&k.key)
            );
        }
    }
    Ok(out)
}

/// Refuse the first key of `table` that is not a config key (sections
/// included, see [`flatten`]).
#[cfg(test)]
pub fn check(table: &toml::Table) -> Result<()> {
    flatten(table.clone()).map(|_| ())
}

/// What to say after an unknown key.
fn hint(key: &str) -> String {
    let hint = kafka_spelling(key)
        .map(|k| format!("; Kafka's {key} is `{k}` here"))
        .unwrap_or_else(|| format!("; the nearest valid key is `{}`", nearest(key)));
    format!("{hint} (keys are listed in README, Configuration)")
}

/// " (line N)" for the line that sets `key` in `text` (after the
/// `[section]` header when it was written in one), to point at it in an
/// error: a value's own span is gone once the table is parsed.
pub fn line_of(text: &str, section: Option<&str>, key: &str) -> String {
    let sets = |line: &str| {
        let line = line.trim_start();
        let rest = line
            .strip_prefix(key)
            .or_else(|| line.strip_prefix(&format!("\"{key}\"")));
        rest.is_some_and(|r| r.trim_start().starts_with('='))
    };
    let from = section.map_or(Some(0), |name| {
        let header = format!("[{name}]");
        text.lines().position(|l| l.trim() == header).map(|i| i + 1)
    });
    from.and_then(|from| text.lines().skip(from).position(sets).map(|i| i + from + 1))
        .map_or_else(String::new, |n| format!(" (line {n})"))
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
    if let Some(s) = super::SETTINGS.iter().find(|s| s.kafka == Some(key)) {
        return Some(s.key);
    }
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
