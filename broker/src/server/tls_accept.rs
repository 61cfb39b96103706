//! The TLS side of accepting a connection on an SSL / SASL_SSL listener:
//! the handshake (bounded by `ssl_handshake_timeout_ms`, so a silent client
//! cannot hold a connection slot), then the principal from the client
//! certificate when mTLS gave one.
//!
//! Every failure is logged with the client address and closes only that
//! connection: a plaintext client on the TLS port, an untrusted or expired
//! client certificate, a client that does not trust us.

use std::net::SocketAddr;
use std::time::Duration;

use futures::io::{AsyncRead, AsyncWrite};
use rustls::ServerConnection;

use crate::listeners::Listener;
use crate::security::tls::{principal_from_cert, TlsConfigHandle};
use crate::security::tls_stream::TlsStream;

/// A finished handshake: the stream, and `User:<subject DN>` when the
/// client presented a certificate.
pub struct Accepted<S> {
    pub stream: TlsStream<S>,
    pub cert_principal: Option<String>,
}

pub async fn accept<S>(
    io: S,
    peer: SocketAddr,
    listener: &Listener,
    tls: &TlsConfigHandle,
    timeout: Duration,
) -> Option<Accepted<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The current config: certificates replaced on disk apply from the
    // next handshake, open connections keep the ones they started with.
    let server = match ServerConnection::new(tls.current()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("listener {}: starting TLS for {peer}: {e}", listener.name);
            return None;
        }
    };
    let mut stream = TlsStream::server(io, server);
    let outcome = shard::wake::timeout(timeout, stream.handshake()).await.ok();
    match outcome {
        None => {
            tracing::warn!(
                "TLS handshake from {peer} on listener {} timed out after {} ms",
                listener.name,
                timeout.as_millis()
            );
            return None;
        }
        Some(Err(e)) => {
            tracing::warn!(
                "TLS handshake from {peer} on listener {} failed: {e}{}",
                listener.name,
                hint(&e)
            );
            return None;
        }
        Some(Ok(())) => {}
    }
    let cert_principal = match stream.peer_certificates().and_then(|c| c.first()) {
        None => None,
        Some(cert) => match principal_from_cert(cert) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(
                    "client certificate from {peer} on listener {}: {e}",
                    listener.name
                );
                return None;
            }
        },
    };
    if let Some(p) = &cert_principal {
        tracing::info!(
            "{peer} presented a client certificate on listener {}: principal {p}",
            listener.name
        );
    }
    Some(Accepted {
        stream,
        cert_principal,
    })
}

/// What an operator most likely needs to know about a failed handshake.
fn hint(e: &std::io::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        " (is the client speaking plaintext to a TLS listener?)"
    } else if text.contains("certificate") || text.contains("Certificate") {
        " (client certificate refused)"
    } else {
        ""
    }
}
