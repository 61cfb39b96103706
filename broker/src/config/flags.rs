//! One `--flag` per config key (dashes for underscores), generated from
//! [`SETTINGS`]: a flag's text becomes the TOML value of its key and is set
//! over the file's, through the same serde code, so a flag and a key can
//! never disagree on a type or a meaning.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use shard::log::FlushMode;

use super::table::SETTINGS;
use super::{BrokerConfig, ReplicaSelector, Secret};

/// How a flag's text is read as the TOML value of a key of this type.
pub trait FlagValue {
    fn parse_flag(s: &str) -> Result<toml::Value, String>;
}

fn string(s: &str) -> Result<toml::Value, String> {
    Ok(toml::Value::String(s.to_string()))
}

macro_rules! integer_flags {
    ($($t:ty),*) => {$(
        impl FlagValue for $t {
            fn parse_flag(s: &str) -> Result<toml::Value, String> {
                s.parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|e| format!("{s:?} is not an integer: {e}"))
            }
        }
    )*};
}
integer_flags!(i32, i64, u32, u64, usize);

macro_rules! string_flags {
    ($($t:ty),*) => {$(
        impl FlagValue for $t {
            fn parse_flag(s: &str) -> Result<toml::Value, String> {
                string(s)
            }
        }
    )*};
}
string_flags!(String, PathBuf, Secret, FlushMode, ReplicaSelector);

impl FlagValue for SocketAddr {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("{s:?} is not host:port: {e}"))?;
        string(s)
    }
}

impl FlagValue for bool {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        s.parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("{s:?} is not true or false"))
    }
}

impl FlagValue for f64 {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        s.parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|e| format!("{s:?} is not a number: {e}"))
    }
}

impl<T: FlagValue> FlagValue for Option<T> {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        T::parse_flag(s)
    }
}

/// A list flag: comma-separated (`--listeners A://h:1,B://h:2`).
impl FlagValue for Vec<String> {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        Ok(toml::Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| toml::Value::String(p.to_string()))
                .collect(),
        ))
    }
}

/// A map flag: `NAME=VALUE` pairs, comma-separated.
impl FlagValue for BTreeMap<String, String> {
    fn parse_flag(s: &str) -> Result<toml::Value, String> {
        let mut t = toml::Table::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not NAME=VALUE"))?;
            t.insert(
                k.trim().to_string(),
                toml::Value::String(v.trim().to_string()),
            );
        }
        Ok(toml::Value::Table(t))
    }
}

/// The flag of a key: `log_retention_ms` -> `log-retention-ms`.
pub fn flag_name(key: &str) -> String {
    key.replace('_', "-")
}

/// The config flags given on the command line, in command-line order
/// (key, text).
#[derive(Debug, Default, Clone)]
pub struct ConfigFlags(pub Vec<(&'static str, String)>);

impl ConfigFlags {
    pub fn given(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }

    /// Set every given flag over `cfg` (the file's values or defaults).
    pub fn apply(&self, cfg: &mut BrokerConfig) -> Result<()> {
        for (key, text) in &self.0 {
            let setting = SETTINGS
                .iter()
                .find(|s| s.key == *key)
                .expect("flags are made from SETTINGS");
            let flag = flag_name(key);
            let value = (setting.parse_flag)(text).map_err(|e| match setting.bound {
                Some(bound) => anyhow!("--{flag}: {e} (must be {})", bound()),
                None => anyhow!("--{flag}: {e}"),
            })?;
            let known = cfg
                .set_key(key, value)
                .map_err(|e| anyhow!("--{flag} {text}: {e}"))?;
            debug_assert!(known, "{key} is in SETTINGS but not in BrokerConfig");
        }
        Ok(())
    }
}

impl clap::FromArgMatches for ConfigFlags {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ConfigFlags::default();
        flags.update_from_arg_matches(m)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        for s in SETTINGS {
            if let Some(v) = m.get_one::<String>(s.key) {
                self.0.push((s.key, v.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for s in SETTINGS {
            // clap keeps &'static names; these are made once, at start.
            let long: &'static str = Box::leak(flag_name(s.key).into_boxed_str());
            let mut help = format!(
                "{} [default: {}]",
                super::readme::plain(s.doc),
                s.shown_default.replace('`', "")
            );
            if let Some(bound) = s.bound {
                help.push_str(&format!(" [{}]", bound()));
            }
            cmd = cmd.arg(
                clap::Arg::new(s.key)
                    .long(long)
                    .value_name("VALUE")
                    .help(help)
                    .help_heading(&*Box::leak(
                        format!("Config keys ({})", s.section).into_boxed_str(),
                    )),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
