//! The alerting part of a version 6 metadata image: rules, silences,
//! firing alerts and their history, with the enums as small codes.
//! Decoding checks each rule and silence as applying its command would,
//! so a snapshot cannot bring in what the log could not.

use crate::metadata::alerts::{
    ActiveAlert, AlertEvent, AlertKind, AlertRule, AlertStatus, AlertsState, Severity, Silence,
};

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct AlertsImage {
    rules: Vec<RuleImage>,
    silences: Vec<SilenceImage>,
    active: Vec<AlertImage>,
    history: Vec<EventImage>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RuleImage {
    name: String,
    /// [`AlertKind::code`].
    kind: u8,
    group: Option<String>,
    topic: Option<String>,
    api: Option<String>,
    threshold: f64,
    for_ms: u64,
    /// [`Severity::code`].
    severity: u8,
    webhooks: Vec<String>,
    enabled: bool,
    description: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SilenceImage {
    id: String,
    rule: Option<String>,
    subject: Option<String>,
    starts_at: i64,
    ends_at: i64,
    comment: String,
    created_by: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AlertImage {
    rule: String,
    subject: String,
    severity: u8,
    value: f64,
    threshold: f64,
    starts_at: i64,
    silenced: bool,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct EventImage {
    /// 0: firing, 1: resolved.
    status: u8,
    alert: AlertImage,
    ends_at: Option<i64>,
}

fn alert_image(a: &ActiveAlert) -> AlertImage {
    AlertImage {
        rule: a.rule.clone(),
        subject: a.subject.clone(),
        severity: a.severity.code(),
        value: a.value,
        threshold: a.threshold,
        starts_at: a.starts_at,
        silenced: a.silenced,
    }
}

pub(super) fn image(s: &AlertsState) -> AlertsImage {
    AlertsImage {
        rules: s
            .rules
            .values()
            .map(|r| RuleImage {
                name: r.name.clone(),
                kind: r.kind.code(),
                group: r.group.clone(),
                topic: r.topic.clone(),
                api: r.api.clone(),
                threshold: r.threshold,
                for_ms: r.for_ms,
                severity: r.severity.code(),
                webhooks: r.webhooks.clone(),
                enabled: r.enabled,
                description: r.description.clone(),
            })
            .collect(),
        silences: s
            .silences
            .values()
            .map(|x| SilenceImage {
                id: x.id.clone(),
                rule: x.rule.clone(),
                subject: x.subject.clone(),
                starts_at: x.starts_at,
                ends_at: x.ends_at,
                comment: x.comment.clone(),
                created_by: x.created_by.clone(),
            })
            .collect(),
        active: s.active.values().map(alert_image).collect(),
        history: s
            .history
            .iter()
            .map(|e| EventImage {
                status: (e.status == AlertStatus::Resolved) as u8,
                alert: alert_image(&ActiveAlert {
                    rule: e.rule.clone(),
                    subject: e.subject.clone(),
                    severity: e.severity,
                    value: e.value,
                    threshold: e.threshold,
                    starts_at: e.starts_at,
                    silenced: e.silenced,
                }),
                ends_at: e.ends_at,
            })
            .collect(),
    }
}

fn opt(s: &rkyv::option::ArchivedOption<rkyv::string::ArchivedString>) -> Option<String> {
    s.as_ref().map(|v| v.as_str().to_string())
}

fn severity(c: u8) -> Result<Severity, String> {
    Severity::from_code(c).ok_or_else(|| format!("metadata image has alert severity code {c}"))
}

fn active(a: &ArchivedAlertImage) -> Result<ActiveAlert, String> {
    Ok(ActiveAlert {
        rule: a.rule.as_str().to_string(),
        subject: a.subject.as_str().to_string(),
        severity: severity(a.severity)?,
        value: a.value.to_native(),
        threshold: a.threshold.to_native(),
        starts_at: a.starts_at.to_native(),
        silenced: a.silenced,
    })
}

pub(super) fn state(image: &ArchivedAlertsImage) -> Result<AlertsState, String> {
    let mut s = AlertsState::default();
    for r in image.rules.iter() {
        let rule = AlertRule {
            name: r.name.as_str().to_string(),
            kind: AlertKind::from_code(r.kind)
                .ok_or_else(|| format!("metadata image has alert kind code {}", r.kind))?,
            group: opt(&r.group),
            topic: opt(&r.topic),
            api: opt(&r.api),
            threshold: r.threshold.to_native(),
            for_ms: r.for_ms.to_native(),
            severity: severity(r.severity)?,
            webhooks: r.webhooks.iter().map(|w| w.as_str().to_string()).collect(),
            enabled: r.enabled,
            description: r.description.as_str().to_string(),
        };
        rule.validate()
            .map_err(|e| format!("metadata image has a bad alert rule: {e}"))?;
        s.rules.insert(rule.name.clone(), rule);
    }
    for x in image.silences.iter() {
        let silence = Silence {
            id: x.id.as_str().to_string(),
            rule: opt(&x.rule),
            subject: opt(&x.subject),
            starts_at: x.starts_at.to_native(),
            ends_at: x.ends_at.to_native(),
            comment: x.comment.as_str().to_string(),
            created_by: x.created_by.as_str().to_string(),
        };
        s.silences.insert(silence.id.clone(), silence);
    }
    for a in image.active.iter() {
        let a = active(a)?;
        s.active.insert((a.rule.clone(), a.subject.clone()), a);
    }
    for e in image.history.iter() {
        let a = active(&e.alert)?;
        let status = if e.status == 0 {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        let ends_at = e.ends_at.as_ref().map(|t| t.to_native());
        s.history.push_back(AlertEvent::of(a, status, ends_at));
    }
    Ok(s)
}
