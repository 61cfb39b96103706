//! One webhook POST, over HTTP or HTTPS, within a timeout: the notifier's
//! transport. By hand on `std::net` and rustls rather than an HTTP client
//! crate: it is one request whose status line is all we read, on the
//! notifier's own thread, and the TLS stack is the one the broker's
//! listeners already use.
//!
//! [`Policy`] is this broker's say over where notifications go: the hosts
//! allowed (`alert_webhook_allowed_hosts`) and the CAs an `https://`
//! receiver's certificate must chain to (`alert_webhook_truststore_location`,
//! else the system's store). Redirects are not followed (a 3xx is a failed
//! attempt), so an allowed host cannot send the POST elsewhere.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

use crate::config::BrokerConfig;
use crate::console::peers;
use crate::metadata::webhook::{self, WebhookTarget};

pub struct Policy {
    pub allowed: Vec<String>,
    /// The TLS client for `https://` receivers, or why there is none.
    tls: Result<Arc<ClientConfig>, String>,
}

impl Policy {
    pub fn from_config(config: &BrokerConfig) -> Policy {
        let p = Policy::new(
            config.alert_webhook_allowed_hosts.clone(),
            config.alert_webhook_truststore_location.as_deref(),
        );
        if let Err(e) = &p.tls {
            tracing::warn!("alerts: https:// webhooks cannot be sent: {e}");
        }
        p
    }

    pub fn new(allowed: Vec<String>, truststore: Option<&Path>) -> Policy {
        Policy {
            allowed,
            tls: tls_config(truststore),
        }
    }
}

fn tls_config(truststore: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    if let Some(ca) = truststore {
        let files = shardline_client::tls::TlsFiles {
            ca: ca.to_path_buf(),
            client: None,
        };
        return shardline_client::tls::client_config(&files)
            .map_err(|e| format!("alert_webhook_truststore_location: {e:#}"));
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(format!(
            "no CA certificates in the system's store ({why}); set alert_webhook_truststore_location"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn refused(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// POST `body` as JSON to `url`: the answer's status code. A host outside
/// the policy's list is an error, as is a certificate that does not verify.
pub fn post(url: &str, body: &[u8], timeout: Duration, policy: &Policy) -> io::Result<u16> {
    let t = webhook::check_allowed(url, &policy.allowed).map_err(refused)?;
    let tcp = peers::connect(&t.host, t.port, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    if !t.https {
        return exchange(tcp, &t, body);
    }
    let config = policy.tls.as_ref().map_err(|e| refused(e.clone()))?;
    exchange(peers::tls_over(tcp, config, &t.host)?, &t, body)
}

/// Send the request and read the status line.
fn exchange(mut s: impl Read + Write, t: &WebhookTarget, body: &[u8]) -> io::Result<u16> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shardline-alerts\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.path,
        t.authority,
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    // The status line is all we need; read a little past it.
    let mut buf = [0u8; 256];
    let mut got = 0;
    while got < buf.len() {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "not an HTTP answer: {:?}",
                    line.lines().next().unwrap_or("")
                ),
            )
        })
}
