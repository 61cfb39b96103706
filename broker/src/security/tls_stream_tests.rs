//! Unit tests of `tls_stream.rs` (a file of their own to keep the module short).

use super::*;
use crate::security::tls::tests::TestCa;
use crate::security::tls::{principal_from_cert, ClientAuth, TlsConfigHandle, TlsSettings};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use rcgen::DnType;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

/// One direction of an in-memory pipe.
#[derive(Default)]
struct Half {
    buf: VecDeque<u8>,
    closed: bool,
    waker: Option<Waker>,
}

/// One end of an in-memory duplex pipe; writes never block.
struct End {
    rx: Arc<Mutex<Half>>,
    tx: Arc<Mutex<Half>>,
}

fn duplex() -> (End, End) {
    let a = Arc::new(Mutex::new(Half::default()));
    let b = Arc::new(Mutex::new(Half::default()));
    (
        End {
            rx: a.clone(),
            tx: b.clone(),
        },
        End { rx: b, tx: a },
    )
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut h = self.rx.lock().unwrap();
        if h.buf.is_empty() {
            if h.closed {
                return Poll::Ready(Ok(0));
            }
            h.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(h.buf.len());
        for (d, s) in buf.iter_mut().zip(h.buf.drain(..n)) {
            *d = s;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut h = self.tx.lock().unwrap();
        if h.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        h.buf.extend(buf);
        if let Some(w) = h.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut h = self.tx.lock().unwrap();
        h.closed = true;
        if let Some(w) = h.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    settings: TlsSettings,
}

fn write_atomic(path: &Path, data: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn pki(client_auth: ClientAuth) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test-ca");
    let server = ca.leaf(&[(DnType::CommonName, "broker-1")], true, false);
    let p = |n: &str| dir.path().join(n);
    write_atomic(&p("server.pem"), &server.cert_pem);
    write_atomic(&p("server.key"), &server.key_pem);
    write_atomic(&p("ca.pem"), &ca.cert_pem);
    let mut settings = TlsSettings::new(p("server.pem"), p("server.key"));
    settings.client_auth = client_auth;
    settings.ca_bundle = Some(p("ca.pem"));
    Pki { dir, ca, settings }
}

fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let b = ClientConfig::builder_with_provider(crate::security::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

struct Outcome {
    server: io::Result<(Option<String>, Vec<u8>)>,
    client: io::Result<Vec<u8>>,
    server_cert_cn: Option<String>,
}

/// Handshake, client sends "ping", server answers "pong", both close.
fn exchange(server_cfg: Arc<rustls::ServerConfig>, client_cfg: Arc<ClientConfig>) -> Outcome {
    let (a, b) = duplex();
    let server_fut = async move {
        let mut s = TlsStream::server(a, ServerConnection::new(server_cfg).unwrap());
        let r = async {
            s.handshake().await?;
            let principal = s
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| principal_from_cert(c).unwrap());
            let mut got = vec![0u8; 4];
            s.read_exact(&mut got).await?;
            s.write_all(b"pong").await?;
            s.flush().await?;
            s.close().await?;
            Ok((principal, got))
        }
        .await;
        if r.is_err() {
            // Unblock the client the way a dropped socket would.
            let _ = s.get_ref().tx.lock().map(|mut h| {
                h.closed = true;
                if let Some(w) = h.waker.take() {
                    w.wake()
                }
            });
        }
        r
    };
    let client_fut = async move {
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = TlsStream::client(b, ClientConnection::new(client_cfg, name).unwrap());
        let r = async {
            c.handshake().await?;
            c.write_all(b"ping").await?;
            c.flush().await?;
            let mut got = Vec::new();
            c.read_to_end(&mut got).await?;
            Ok(got)
        }
        .await;
        let cn = c
            .peer_certificates()
            .and_then(|certs| principal_from_cert(&certs[0]).ok());
        if r.is_err() {
            let _ = c.get_ref().tx.lock().map(|mut h| {
                h.closed = true;
                if let Some(w) = h.waker.take() {
                    w.wake()
                }
            });
        }
        (r, cn)
    };
    let (server, (client, server_cert_cn)) =
        futures::executor::block_on(futures::future::join(server_fut, client_fut));
    Outcome {
        server,
        client,
        server_cert_cn,
    }
}

#[test]
fn handshake_and_data_both_ways_tls13_and_tls12() {
    for proto in ["TLSv1.3", "TLSv1.2"] {
        let mut p = pki(ClientAuth::None);
        p.settings.protocols = vec![proto.into()];
        let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
        let out = exchange(handle.current(), client_config(&p.ca.cert_pem, None));
        let (principal, got) = out.server.unwrap();
        assert_eq!(principal, None);
        assert_eq!(got, b"ping");
        assert_eq!(out.client.unwrap(), b"pong");
        assert_eq!(out.server_cert_cn.as_deref(), Some("User:CN=broker-1"));
    }
}

#[test]
fn large_transfer() {
    let p = pki(ClientAuth::None);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
    let (a, b) = duplex();
    let server_cfg = handle.current();
    let client_cfg = client_config(&p.ca.cert_pem, None);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let expected = data.clone();
    let server = async move {
        let mut s = TlsStream::server(a, ServerConnection::new(server_cfg).unwrap());
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    };
    let client = async move {
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = TlsStream::client(b, ClientConnection::new(client_cfg, name).unwrap());
        c.write_all(&data).await.unwrap();
        c.close().await.unwrap();
    };
    let (got, ()) = futures::executor::block_on(futures::future::join(server, client));
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
}

#[test]
fn mtls_principal_extracted() {
    for auth in [ClientAuth::Required, ClientAuth::Requested] {
        let p = pki(auth);
        let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
        let client = p.ca.leaf(
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::CommonName, "alice"),
            ],
            false,
            false,
        );
        let cfg = client_config(&p.ca.cert_pem, Some((&client.cert_pem, &client.key_pem)));
        let out = exchange(handle.current(), cfg);
        let (principal, _) = out.server.unwrap();
        assert_eq!(principal.as_deref(), Some("User:CN=alice,O=Acme"));
        assert_eq!(out.client.unwrap(), b"pong");
    }
}

#[test]
fn client_cert_requirements() {
    // Required without a certificate: refused. Requested: accepted.
    let p = pki(ClientAuth::Required);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
    let out = exchange(handle.current(), client_config(&p.ca.cert_pem, None));
    assert!(out.server.is_err());
    assert!(out.client.is_err());

    let p = pki(ClientAuth::Requested);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
    let out = exchange(handle.current(), client_config(&p.ca.cert_pem, None));
    assert_eq!(out.server.unwrap().0, None);

    // Untrusted (other CA) and expired certificates are refused.
    let p = pki(ClientAuth::Required);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
    let rogue = TestCa::new("rogue").leaf(&[(DnType::CommonName, "alice")], false, false);
    let cfg = client_config(&p.ca.cert_pem, Some((&rogue.cert_pem, &rogue.key_pem)));
    let out = exchange(handle.current(), cfg);
    let err = out.server.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(out.client.is_err());

    let expired = p.ca.leaf(&[(DnType::CommonName, "alice")], false, true);
    let cfg = client_config(&p.ca.cert_pem, Some((&expired.cert_pem, &expired.key_pem)));
    let out = exchange(handle.current(), cfg);
    let err = out.server.unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn plaintext_to_tls_server_is_an_error() {
    let p = pki(ClientAuth::None);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::from_secs(60)).unwrap();
    // A Kafka ApiVersions request in the clear, then garbage, then EOF.
    for input in [
        &b"\x00\x00\x00\x0a\x00\x12\x00\x03\x00\x00\x00\x01\x00\x00"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\xff\xff",
        b"",
    ] {
        let (a, mut b) = duplex();
        let cfg = handle.current();
        let r = futures::executor::block_on(async move {
            b.write_all(input).await.unwrap();
            b.close().await.unwrap();
            let mut s = TlsStream::server(a, ServerConnection::new(cfg).unwrap());
            let mut buf = [0u8; 16];
            s.read(&mut buf).await
        });
        assert!(r.is_err(), "{input:?}");
    }
}

#[test]
fn reload_picks_up_new_certificate_and_survives_bad_files() {
    let p = pki(ClientAuth::None);
    let handle = TlsConfigHandle::new(p.settings.clone(), Duration::ZERO).unwrap();
    let first = handle.current();
    assert!(
        Arc::ptr_eq(&first, &handle.current()),
        "no change, no reload"
    );

    let renewed =
        p.ca.leaf(&[(DnType::CommonName, "broker-1-renewed")], true, false);
    write_atomic(&p.dir.path().join("server.key"), &renewed.key_pem);
    write_atomic(&p.dir.path().join("server.pem"), &renewed.cert_pem);
    let second = handle.current();
    assert!(!Arc::ptr_eq(&first, &second));
    let out = exchange(second.clone(), client_config(&p.ca.cert_pem, None));
    assert_eq!(
        out.server_cert_cn.as_deref(),
        Some("User:CN=broker-1-renewed")
    );

    // A broken key file keeps the previous config.
    write_atomic(&p.dir.path().join("server.key"), "garbage");
    assert!(!handle.check_now());
    assert!(Arc::ptr_eq(&second, &handle.current()));
    // Connections made with the old config still work.
    let out = exchange(first, client_config(&p.ca.cert_pem, None));
    assert_eq!(out.server_cert_cn.as_deref(), Some("User:CN=broker-1"));
}
