//! Alert rules, silences and the alerts' firing state, kept in the cluster
//! metadata (issue 17, "Alerts") so every broker holds the same ones and a
//! new active controller takes over where the last one stopped.
//!
//! Rules and silences change through the console's API; the firing state
//! changes only through the active controller's evaluator
//! (`console::alerts`), one command per transition (firing, resolved).
//! Recording a transition before notifying is what makes "exactly one
//! broker sends each notification": `apply` refuses a second `Fire` of an
//! alert already firing and a `Resolve` of one that is not, so of two
//! controllers racing over a change of leadership only the one whose
//! command committed first notifies.
//!
//! `apply` is pure like the rest of [`super::command`]: times come in the
//! commands (the controller's clock), ids from the console.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Rules held at most.
pub const MAX_RULES: usize = 256;
/// Silences held at most (expired ones are dropped first, oldest first).
pub const MAX_SILENCES: usize = 256;
/// Firing and resolved events kept (the oldest go first).
pub const MAX_HISTORY: usize = 1000;
/// Webhooks per rule.
pub const MAX_WEBHOOKS: usize = 8;
/// The longest `for` (7 days).
pub const MAX_FOR_MS: u64 = 7 * 24 * 3600 * 1000;

/// What a rule watches. The names are the API's (`snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A group's lag in messages (summed over its partitions), per group.
    ConsumerLag,
    /// How long ago the oldest unconsumed message was written, per group
    /// (the largest over its partitions), in seconds.
    ConsumerLagSeconds,
    /// Partitions with fewer in-sync replicas than replicas, cluster-wide.
    UnderReplicatedPartitions,
    /// Partitions without a leader, cluster-wide.
    OfflinePartitions,
    /// A broker fenced (no heartbeats) or unregistered but holding replicas.
    BrokerDown,
    /// Free bytes of a broker's log dir, below the threshold.
    DiskFreeBytes,
    /// Free space of a broker's log dir in percent, below the threshold.
    DiskFreePercent,
    /// Produce requests answered with an error, per second.
    ProduceErrorRate,
    /// Fetch requests answered with an error, per second.
    FetchErrorRate,
    /// The 99th percentile of a request's latency in milliseconds, per API.
    RequestP99Ms,
}

impl AlertKind {
    pub const ALL: [AlertKind; 10] = [
        AlertKind::ConsumerLag,
        AlertKind::ConsumerLagSeconds,
        AlertKind::UnderReplicatedPartitions,
        AlertKind::OfflinePartitions,
        AlertKind::BrokerDown,
        AlertKind::DiskFreeBytes,
        AlertKind::DiskFreePercent,
        AlertKind::ProduceErrorRate,
        AlertKind::FetchErrorRate,
        AlertKind::RequestP99Ms,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AlertKind::ConsumerLag => "consumer_lag",
            AlertKind::ConsumerLagSeconds => "consumer_lag_seconds",
            AlertKind::UnderReplicatedPartitions => "under_replicated_partitions",
            AlertKind::OfflinePartitions => "offline_partitions",
            AlertKind::BrokerDown => "broker_down",
            AlertKind::DiskFreeBytes => "disk_free_bytes",
            AlertKind::DiskFreePercent => "disk_free_percent",
            AlertKind::ProduceErrorRate => "produce_error_rate",
            AlertKind::FetchErrorRate => "fetch_error_rate",
            AlertKind::RequestP99Ms => "request_p99_ms",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Its code in the snapshot image (its place in [`Self::ALL`]).
    pub fn code(self) -> u8 {
        AlertKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is listed") as u8
    }

    pub fn from_code(c: u8) -> Option<AlertKind> {
        AlertKind::ALL.get(c as usize).copied()
    }

    /// Disk rules fire when the value falls below the threshold; the
    /// others when it rises above it.
    pub fn fires_below(self) -> bool {
        matches!(self, AlertKind::DiskFreeBytes | AlertKind::DiskFreePercent)
    }

    fn takes_group(self) -> bool {
        matches!(self, AlertKind::ConsumerLag | AlertKind::ConsumerLagSeconds)
    }

    fn takes_topic(self) -> bool {
        self.takes_group()
            || matches!(
                self,
                AlertKind::UnderReplicatedPartitions | AlertKind::OfflinePartitions
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<Severity> {
        Severity::ALL.get(c as usize).copied()
    }
}

/// One rule. `group`, `topic` and `api` filter the subjects (a `*` in them
/// matches any run of characters); each kind takes only the filters that
/// mean something for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub api: Option<String>,
    pub threshold: f64,
    /// How long the condition must hold before the alert fires (pending
    /// until then), as Prometheus's `for`.
    #[serde(default)]
    pub for_ms: u64,
    pub severity: Severity,
    /// `http://` or `https://` URLs to POST each notification to.
    #[serde(default)]
    pub webhooks: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
}

impl AlertRule {
    /// Whether `value` breaches the threshold.
    pub fn breached(&self, value: f64) -> bool {
        if self.kind.fires_below() {
            value < self.threshold
        } else {
            value > self.threshold
        }
    }

    /// The rule's shape: a clear message naming the field when it is not
    /// one a broker can evaluate.
    pub fn validate(&self) -> Result<(), String> {
        check_name("rule name", &self.name)?;
        let k = self.kind;
        let t = self.threshold;
        if !t.is_finite() {
            return Err(format!("INVALID_CONFIG: threshold {t} is not a number"));
        }
        let range = match k {
            AlertKind::DiskFreePercent => (0.0, 100.0),
            AlertKind::BrokerDown => (0.0, 0.0),
            AlertKind::RequestP99Ms => (f64::MIN_POSITIVE, f64::MAX),
            _ => (0.0, f64::MAX),
        };
        if t < range.0 || t > range.1 {
            let why = match k {
                AlertKind::DiskFreePercent => "a percentage from 0 to 100",
                AlertKind::BrokerDown => "0 (any broker down fires)",
                AlertKind::RequestP99Ms => "above 0 milliseconds",
                _ => "0 or more",
            };
            return Err(format!(
                "INVALID_CONFIG: threshold {t} of a {} rule must be {why}",
                k.name()
            ));
        }
        if self.for_ms > MAX_FOR_MS {
            return Err(format!(
                "INVALID_CONFIG: for_ms {} is more than 7 days",
                self.for_ms
            ));
        }
        for (field, value, allowed) in [
            ("group", &self.group, k.takes_group()),
            ("topic", &self.topic, k.takes_topic()),
            ("api", &self.api, k == AlertKind::RequestP99Ms),
        ] {
            match value {
                Some(_) if !allowed => {
                    return Err(format!(
                        "INVALID_CONFIG: a {} rule takes no {field} filter",
                        k.name()
                    ))
                }
                Some(v) if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) => {
                    return Err(format!(
                        "INVALID_CONFIG: {field} filter {v:?} must be 1 to 255 printable characters"
                    ))
                }
                _ => {}
            }
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(format!(
                "INVALID_CONFIG: at most {MAX_WEBHOOKS} webhooks per rule"
            ));
        }
        for w in &self.webhooks {
            check_webhook(w)?;
        }
        if self.description.len() > 1024 {
            return Err("INVALID_CONFIG: description is longer than 1024 bytes".into());
        }
        Ok(())
    }
}

/// A webhook URL the notifier can POST to (see `super::webhook`).
pub fn check_webhook(url: &str) -> Result<(), String> {
    super::webhook::parse(url).map(|_| ())
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "INVALID_REQUEST: {what} must be 1 to 128 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "INVALID_REQUEST: {what} {name:?} contains {c:?}; allowed are ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// `pattern` with `*` matching any run of characters (Alertmanager's
/// matchers are regexes; a glob covers the usual "group=orders-*").
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A silence: while it is in effect, alerts it matches are recorded but
/// not notified. `rule` and `subject` are globs; absent matches any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    #[serde(default)]
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    pub fn active_at(&self, at: i64) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    pub fn matches(&self, rule: &str, subject: &str, at: i64) -> bool {
        self.active_at(at)
            && self.rule.as_deref().is_none_or(|p| glob_match(p, rule))
            && self
                .subject
                .as_deref()
                .is_none_or(|p| glob_match(p, subject))
    }

    fn validate(&self) -> Result<(), String> {
        check_name("silence id", &self.id)?;
        if self.rule.is_none() && self.subject.is_none() {
            return Err(
                "INVALID_REQUEST: a silence needs a rule or a subject matcher (or both)".into(),
            );
        }
        for (field, v) in [("rule", &self.rule), ("subject", &self.subject)] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > 255 {
                    return Err(format!(
                        "INVALID_REQUEST: {field} matcher must be 1 to 255 characters"
                    ));
                }
            }
        }
        if self.ends_at <= self.starts_at {
            return Err("INVALID_REQUEST: a silence must end after it starts".into());
        }
        if self.comment.len() > 1024 || self.created_by.len() > 255 {
            return Err("INVALID_REQUEST: comment or creator too long".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// An alert firing now: rule and subject (`group=billing`, `broker=2`,
/// `cluster`, ...), the value that fired it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    pub starts_at: i64,
    /// A silence matched when it fired: it was not notified.
    pub silenced: bool,
}

/// One entry of the history: an alert fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub status: AlertStatus,
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    pub starts_at: i64,
    /// When it resolved (resolved events only).
    pub ends_at: Option<i64>,
    pub silenced: bool,
}

impl AlertEvent {
    /// `a`'s event: firing (`ends_at` None) or resolved at `ends_at`.
    pub fn of(a: ActiveAlert, status: AlertStatus, ends_at: Option<i64>) -> AlertEvent {
        AlertEvent {
            status,
            rule: a.rule,
            subject: a.subject,
            severity: a.severity,
            value: a.value,
            threshold: a.threshold,
            starts_at: a.starts_at,
            ends_at,
            silenced: a.silenced,
        }
    }
}

/// Everything alerting keeps in the metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsState {
    pub rules: BTreeMap<String, AlertRule>,
    pub silences: BTreeMap<String, Silence>,
    /// Firing alerts by (rule, subject).
    pub active: BTreeMap<(String, String), ActiveAlert>,
    /// Oldest first, at most [`MAX_HISTORY`].
    pub history: VecDeque<AlertEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlertCommand {
    /// Create a rule (`create`: refused if the name exists) or replace one
    /// (refused if it does not).
    PutRule { rule: AlertRule, create: bool },
    /// Delete a rule at `at` (epoch ms): its firing alerts resolve then,
    /// in the history; the active controller notifies them (see
    /// `console::alerts::evaluator`).
    DeleteRule {
        name: String,
        /// 0 in entries written before it was carried: the alerts' start.
        #[serde(default)]
        at: i64,
    },
    /// Create a silence (its id is new).
    PutSilence(Silence),
    /// End a silence at `at` (if it ends later); it stays listed, expired.
    ExpireSilence { id: String, at: i64 },
    /// The active controller saw the alert fire.
    Fire(ActiveAlert),
    /// The active controller saw it resolve, with the last value.
    Resolve {
        rule: String,
        subject: String,
        value: f64,
        ends_at: i64,
        silenced: bool,
    },
}

impl AlertsState {
    pub fn apply(&mut self, cmd: &AlertCommand) -> Result<(), String> {
        match cmd {
            AlertCommand::PutRule { rule, create } => {
                rule.validate()?;
                let exists = self.rules.contains_key(&rule.name);
                if *create && exists {
                    return Err(format!(
                        "DUPLICATE_RESOURCE: alert rule '{}' already exists",
                        rule.name
                    ));
                }
                if !*create && !exists {
                    return Err(format!("RESOURCE_NOT_FOUND: no alert rule '{}'", rule.name));
                }
                if !exists && self.rules.len() >= MAX_RULES {
                    return Err(format!(
                        "INVALID_REQUEST: {MAX_RULES} alert rules exist already"
                    ));
                }
                self.rules.insert(rule.name.clone(), rule.clone());
            }
            AlertCommand::DeleteRule { name, at } => {
                if self.rules.remove(name).is_none() {
                    return Err(format!("RESOURCE_NOT_FOUND: no alert rule '{name}'"));
                }
                let gone: Vec<ActiveAlert> = self
                    .active
                    .iter()
                    .filter(|((r, _), _)| r == name)
                    .map(|(_, a)| a.clone())
                    .collect();
                self.active.retain(|(r, _), _| r != name);
                for a in gone {
                    let ends_at = Some((*at).max(a.starts_at));
                    self.push_history(AlertEvent::of(a, AlertStatus::Resolved, ends_at));
                }
            }
            AlertCommand::PutSilence(s) => {
                s.validate()?;
                if self.silences.contains_key(&s.id) {
                    return Err(format!("DUPLICATE_RESOURCE: silence '{}' exists", s.id));
                }
                if self.silences.len() >= MAX_SILENCES {
                    // Make room by forgetting the expired silence that ended first.
                    let oldest = self
                        .silences
                        .values()
                        .filter(|o| o.ends_at <= s.starts_at)
                        .min_by_key(|o| o.ends_at)
                        .map(|o| o.id.clone());
                    match oldest {
                        Some(id) => {
                            self.silences.remove(&id);
                        }
                        None => {
                            return Err(format!(
                                "INVALID_REQUEST: {MAX_SILENCES} silences are in effect already"
                            ))
                        }
                    }
                }
                self.silences.insert(s.id.clone(), s.clone());
            }
            AlertCommand::ExpireSilence { id, at } => {
                let Some(s) = self.silences.get_mut(id) else {
                    return Err(format!("RESOURCE_NOT_FOUND: no silence '{id}'"));
                };
                if s.ends_at > *at {
                    s.ends_at = (*at).max(s.starts_at);
                }
            }
            AlertCommand::Fire(a) => {
                let Some(rule) = self.rules.get(&a.rule) else {
                    return Err(format!("RESOURCE_NOT_FOUND: no alert rule '{}'", a.rule));
                };
                if a.subject.is_empty() || !a.value.is_finite() {
                    return Err("INVALID_REQUEST: an alert needs a subject and a value".into());
                }
                let key = (a.rule.clone(), a.subject.clone());
                if self.active.contains_key(&key) {
                    // Another controller recorded it first: it notifies.
                    return Err(format!(
                        "DUPLICATE_RESOURCE: alert {} {} is firing already",
                        a.rule, a.subject
                    ));
                }
                let mut a = a.clone();
                a.severity = rule.severity;
                self.push_history(AlertEvent::of(a.clone(), AlertStatus::Firing, None));
                self.active.insert(key, a);
            }
            AlertCommand::Resolve {
                rule,
                subject,
                value,
                ends_at,
                silenced,
            } => {
                let key = (rule.clone(), subject.clone());
                let Some(a) = self.active.remove(&key) else {
                    return Err(format!(
                        "RESOURCE_NOT_FOUND: alert {rule} {subject} is not firing"
                    ));
                };
                self.push_history(AlertEvent {
                    status: AlertStatus::Resolved,
                    rule: a.rule,
                    subject: a.subject,
                    severity: a.severity,
                    value: if value.is_finite() { *value } else { a.value },
                    threshold: a.threshold,
                    starts_at: a.starts_at,
                    ends_at: Some((*ends_at).max(a.starts_at)),
                    silenced: *silenced,
                });
            }
        }
        Ok(())
    }

    fn push_history(&mut self, e: AlertEvent) {
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(e);
    }

    /// The silence in effect at `at` that matches, if any.
    pub fn silenced_by(&self, rule: &str, subject: &str, at: i64) -> Option<&Silence> {
        self.silences
            .values()
            .find(|s| s.matches(rule, subject, at))
    }
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
pub(crate) mod tests;
