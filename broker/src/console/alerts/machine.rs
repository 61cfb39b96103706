//! The state of each alert, per (rule, subject), as Prometheus keeps it:
//! inactive → pending (the condition holds, `for` has not elapsed yet) →
//! firing → resolved (back to inactive). Pure: the caller passes the time
//! and the observed values, so the tests drive it deterministically.
//!
//! Only the firing state is shared (in the metadata, see
//! `metadata::alerts`); pending is this controller's own and starts over
//! at a failover, as a restarted Prometheus starts its `for` over.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::alerts::{ActiveAlert, AlertRule, AlertsState};

/// What one round observed for a rule: each subject's value, `None` for a
/// subject that could not be read this round (its state is kept). A
/// subject absent from the map has no breach (a group deleted, a broker
/// back): a firing alert on it resolves.
pub type Observed = BTreeMap<String, Option<f64>>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Pending { since: i64 },
    Firing { since: i64 },
}

/// A change to record (and notify, unless silenced).
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fire {
        rule: String,
        subject: String,
        value: f64,
        threshold: f64,
        starts_at: i64,
        silenced: bool,
    },
    Resolve {
        rule: String,
        subject: String,
        value: f64,
        threshold: f64,
        starts_at: i64,
        ends_at: i64,
        silenced: bool,
    },
}

impl Transition {
    pub fn key(&self) -> (&str, &str) {
        match self {
            Transition::Fire { rule, subject, .. } | Transition::Resolve { rule, subject, .. } => {
                (rule, subject)
            }
        }
    }

    /// `firing` or `resolved`, as notifications and logs say it.
    pub fn status(&self) -> &'static str {
        match self {
            Transition::Fire { .. } => "firing",
            Transition::Resolve { .. } => "resolved",
        }
    }

    pub fn silenced(&self) -> bool {
        match self {
            Transition::Fire { silenced, .. } | Transition::Resolve { silenced, .. } => *silenced,
        }
    }
}

#[derive(Debug, Default)]
pub struct Machine {
    phases: BTreeMap<(String, String), Phase>,
    /// The last value seen per alert (the resolved notification carries it).
    last: BTreeMap<(String, String), f64>,
}

impl Machine {
    /// Take the committed firing alerts as the truth: an alert this
    /// machine fired whose record did not commit goes back to pending (it
    /// is fired again next round, if the condition still holds), and one
    /// another controller recorded is firing here too, so it is not
    /// notified twice. Pending alerts of rules that are gone are dropped.
    pub fn sync(&mut self, committed: &AlertsState) {
        let active: &BTreeMap<(String, String), ActiveAlert> = &committed.active;
        for (key, phase) in self.phases.iter_mut() {
            if let Phase::Firing { since } = *phase {
                if !active.contains_key(key) {
                    *phase = Phase::Pending { since };
                }
            }
        }
        for (key, a) in active {
            self.phases
                .insert(key.clone(), Phase::Firing { since: a.starts_at });
            self.last.entry(key.clone()).or_insert(a.value);
        }
        self.phases
            .retain(|(rule, _), _| committed.rules.contains_key(rule));
        let phases = &self.phases;
        self.last.retain(|k, _| phases.contains_key(k));
    }

    #[cfg(test)]
    pub fn phase(&self, rule: &str, subject: &str) -> Option<Phase> {
        self.phases
            .get(&(rule.to_string(), subject.to_string()))
            .copied()
    }

    /// Pending alerts, for the API's "current alerts".
    pub fn pending(&self) -> Vec<(String, String, i64, f64)> {
        self.phases
            .iter()
            .filter_map(|(k, p)| match p {
                Phase::Pending { since } => Some((
                    k.0.clone(),
                    k.1.clone(),
                    *since,
                    self.last.get(k).copied().unwrap_or(f64::NAN),
                )),
                Phase::Firing { .. } => None,
            })
            .collect()
    }

    /// One evaluation of `rule` at `now`. `observed` is `None` when the
    /// rule's inputs could not be read at all (nothing changes); a
    /// disabled rule observes nothing, so what it fired resolves.
    /// `silenced` says whether a silence covers (rule, subject) now.
    pub fn step(
        &mut self,
        rule: &AlertRule,
        observed: Option<&Observed>,
        now: i64,
        silenced: &dyn Fn(&str) -> bool,
    ) -> Vec<Transition> {
        let Some(observed) = observed else {
            return Vec::new();
        };
        let empty = Observed::new();
        let observed = if rule.enabled { observed } else { &empty };
        let mut out = Vec::new();
        let known: BTreeSet<String> = self
            .phases
            .keys()
            .filter(|(r, _)| *r == rule.name)
            .map(|(_, s)| s.clone())
            .collect();
        let subjects: BTreeSet<&String> = observed.keys().chain(known.iter()).collect();
        for subject in subjects {
            let key = (rule.name.clone(), subject.clone());
            let value = match observed.get(subject) {
                Some(None) => continue, // not readable this round: keep
                Some(Some(v)) => Some(*v),
                None => None,
            };
            if let Some(v) = value {
                self.last.insert(key.clone(), v);
            }
            let breached = value.is_some_and(|v| rule.breached(v));
            let phase = self.phases.get(&key).copied();
            match (phase, breached) {
                (None, true) => {
                    if rule.for_ms == 0 {
                        out.push(self.fire(rule, subject, now, silenced));
                    } else {
                        self.phases.insert(key, Phase::Pending { since: now });
                    }
                }
                (Some(Phase::Pending { since }), true) => {
                    if now - since >= rule.for_ms as i64 {
                        out.push(self.fire(rule, subject, now, silenced));
                    }
                }
                (Some(Phase::Firing { .. }), true) | (None, false) => {}
                (Some(Phase::Pending { .. }), false) => {
                    // It flapped back before `for` elapsed: never fired.
                    self.phases.remove(&key);
                }
                (Some(Phase::Firing { since }), false) => {
                    self.phases.remove(&key);
                    let value = self.last.remove(&key).unwrap_or(f64::NAN);
                    out.push(Transition::Resolve {
                        rule: rule.name.clone(),
                        subject: subject.clone(),
                        value,
                        threshold: rule.threshold,
                        starts_at: since,
                        ends_at: now,
                        silenced: silenced(subject),
                    });
                }
            }
        }
        out
    }

    fn fire(
        &mut self,
        rule: &AlertRule,
        subject: &str,
        now: i64,
        silenced: &dyn Fn(&str) -> bool,
    ) -> Transition {
        let key = (rule.name.clone(), subject.to_string());
        self.phases
            .insert(key.clone(), Phase::Firing { since: now });
        Transition::Fire {
            rule: rule.name.clone(),
            subject: subject.to_string(),
            value: self.last.get(&key).copied().unwrap_or(f64::NAN),
            threshold: rule.threshold,
            starts_at: now,
            silenced: silenced(subject),
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
