//! Notifications: a log line for every transition, and a webhook POST of
//! an Alertmanager-like JSON body to each of the rule's URLs, from one
//! thread of its own so a slow receiver never holds up evaluation.
//!
//! Bounded everywhere: [`QUEUE`] notifications wait at most (more are
//! dropped and logged), each POST has [`TIMEOUT`] to connect and answer,
//! and a failed one is tried [`ATTEMPTS`] times in all with a growing
//! pause. A 4xx answer is the receiver refusing the body: not retried.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use serde_json::{json, Value};

use super::machine::Transition;
pub use super::post::{post, Policy};
use crate::metadata::alerts::AlertRule;
use crate::ops::time::format_ms;

pub const QUEUE: usize = 256;
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const ATTEMPTS: u32 = 3;
/// The pause before the second attempt (doubled before each later one).
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// One POST to make.
#[derive(Debug, Clone)]
pub struct Notification {
    pub url: String,
    pub body: Value,
}

#[derive(Clone)]
pub struct Notifier {
    tx: SyncSender<Notification>,
}

impl Notifier {
    /// Start the sending thread, sending where `policy` allows.
    pub fn start(policy: Policy) -> std::io::Result<Notifier> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("alert-webhooks".into())
            .spawn(move || run(rx, policy))?;
        Ok(Notifier { tx })
    }

    /// Queue `n`; false (and a warning) when the queue is full.
    pub fn send(&self, n: Notification) -> bool {
        match self.tx.try_send(n) {
            Ok(()) => true,
            Err(TrySendError::Full(n)) => {
                tracing::warn!(
                    "alerts: {QUEUE} webhook notifications are waiting; dropped the one to {}",
                    n.url
                );
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

fn run(rx: Receiver<Notification>, policy: Policy) {
    while let Ok(n) = rx.recv() {
        let body = serde_json::to_vec(&n.body).unwrap_or_default();
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=ATTEMPTS {
            match post(&n.url, &body, TIMEOUT, &policy) {
                Ok(status) if (200..300).contains(&status) => break,
                // Not this broker's to send (the host is not allowed here,
                // no TLS): trying again changes nothing.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    tracing::warn!("alerts: webhook {} not sent: {e}", n.url);
                    break;
                }
                Ok(status) if (400..500).contains(&status) && status != 429 => {
                    tracing::warn!(
                        "alerts: webhook {} refused the notification: HTTP {status}",
                        n.url
                    );
                    break;
                }
                outcome => {
                    let why = match outcome {
                        Ok(status) => format!("HTTP {status}"),
                        Err(e) => e.to_string(),
                    };
                    if attempt == ATTEMPTS {
                        tracing::warn!(
                            "alerts: webhook {} failed {ATTEMPTS} times, giving up: {why}",
                            n.url
                        );
                    } else {
                        tracing::debug!("alerts: webhook {} attempt {attempt}: {why}", n.url);
                        std::thread::sleep(pause);
                        pause *= 2;
                    }
                }
            }
        }
    }
}

/// The JSON body of a transition: its fields at the top (`status`,
/// `rule`, `subject`, `value`, `threshold`, `startsAt`, `endsAt`), and the
/// same as an Alertmanager webhook's `alerts` list, so receivers written
/// for Alertmanager read it too.
pub fn body(t: &Transition, rule: &AlertRule, node_id: i32) -> Value {
    let (status, r, subject, value, threshold, starts_at, ends_at) = match t {
        Transition::Fire {
            rule,
            subject,
            value,
            threshold,
            starts_at,
            ..
        } => (
            "firing", rule, subject, *value, *threshold, *starts_at, None,
        ),
        Transition::Resolve {
            rule,
            subject,
            value,
            threshold,
            starts_at,
            ends_at,
            ..
        } => (
            "resolved",
            rule,
            subject,
            *value,
            *threshold,
            *starts_at,
            Some(*ends_at),
        ),
    };
    let value = value.is_finite().then_some(value);
    let summary = format!(
        "{} {subject}: {} is {} (threshold {threshold}{})",
        r,
        rule.kind.name(),
        value.map_or("unknown".to_string(), |v| v.to_string()),
        if rule.kind.fires_below() {
            ", fires below"
        } else {
            ""
        }
    );
    // Alertmanager's zero time for an alert that has not ended.
    let ends = ends_at.map_or("0001-01-01T00:00:00Z".to_string(), format_ms);
    let alert = json!({
        "status": status,
        "labels": {
            "alertname": r,
            "subject": subject,
            "kind": rule.kind.name(),
            "severity": rule.severity.name(),
        },
        "annotations": {"summary": summary, "description": rule.description},
        "startsAt": format_ms(starts_at),
        "endsAt": ends,
    });
    json!({
        "version": "4",
        "receiver": "shardline",
        "status": status,
        "rule": r,
        "subject": subject,
        "kind": rule.kind.name(),
        "severity": rule.severity.name(),
        "value": value,
        "threshold": threshold,
        "startsAt": format_ms(starts_at),
        "endsAt": ends_at.map(format_ms),
        "sender": node_id,
        "summary": summary,
        "groupLabels": {"alertname": r},
        "commonLabels": alert["labels"].clone(),
        "alerts": [alert],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metadata::alerts::tests::rule;
    use crate::metadata::alerts::AlertKind;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A receiver answering `status` to each request, handing bodies back.
    pub(crate) fn receiver(status: u16) -> (String, Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let (tx, rx) = sync_channel(16);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = 0;
                let text = loop {
                    got += s.read(&mut buf[got..]).unwrap();
                    let t = String::from_utf8_lossy(&buf[..got]).to_string();
                    if let Some((head, body)) = t.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        if body.len() >= len {
                            break t;
                        }
                    }
                };
                write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
                let _ = tx.send(text);
            }
        });
        (url, rx)
    }

    #[test]
    fn a_post_carries_the_json_and_reads_the_status() {
        let (url, rx) = receiver(204);
        let open = Policy::new(Vec::new(), None);
        assert_eq!(post(&url, b"{\"a\":1}", TIMEOUT, &open).unwrap(), 204);
        let req = rx.recv().unwrap();
        assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Content-Type: application/json"));
        assert!(req.ends_with("{\"a\":1}"));
        // Nothing listening: an error, not a hang.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(post(&format!("http://{closed}/"), b"{}", TIMEOUT, &open).is_err());
        // A host this broker does not send to: refused before connecting.
        let only = Policy::new(vec!["*.example.com".into()], None);
        let e = post(&url, b"{}", TIMEOUT, &only).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("alert_webhook_allowed_hosts"), "{e}");
        assert!(rx.try_recv().is_err(), "nothing was sent");
    }

    #[test]
    fn failures_are_retried_and_refusals_are_not() {
        let (url, rx) = receiver(503);
        let n = Notifier::start(Policy::new(Vec::new(), None)).unwrap();
        n.send(Notification {
            url: url.clone(),
            body: json!({"x": 1}),
        });
        for _ in 0..ATTEMPTS {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(2500)).is_err(),
            "no more"
        );
        let (url, rx) = receiver(400);
        n.send(Notification {
            url,
            body: json!({"x": 1}),
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(1500)).is_err(),
            "a 4xx is final"
        );
    }

    #[test]
    fn the_body_is_alertmanager_like() {
        let r = rule("lag", AlertKind::ConsumerLag, 100.0);
        let b = body(
            &Transition::Resolve {
                rule: "lag".into(),
                subject: "group=g".into(),
                value: 3.0,
                threshold: 100.0,
                starts_at: 0,
                ends_at: 60_000,
                silenced: false,
            },
            &r,
            1,
        );
        assert_eq!(b["status"], "resolved");
        assert_eq!(b["startsAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(b["endsAt"], "1970-01-01T00:01:00.000Z");
        assert_eq!(b["alerts"][0]["labels"]["alertname"], "lag");
        assert_eq!(b["alerts"][0]["labels"]["subject"], "group=g");
        assert_eq!(b["value"], 3.0);
        assert_eq!(b["sender"], 1);
    }
}
