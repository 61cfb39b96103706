//! TLS for the CLI's connections to SSL / SASL_SSL listeners (rustls over a
//! blocking `TcpStream`). The broker is verified against the CA bundle given
//! with `--tls-ca`, and the host name (or IP address) of the bootstrap
//! address must be in its certificate, as librdkafka checks by default.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::security::tls::{load_certs, load_private_key, provider};

/// What `--tls-ca`, `--tls-cert` and `--tls-key` named.
pub struct TlsFiles {
    pub ca: PathBuf,
    /// Certificate chain and key for mTLS listeners.
    pub client: Option<(PathBuf, PathBuf)>,
}

static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// Use TLS, with these files, for every connection of this process.
pub fn set_tls(files: &TlsFiles) -> Result<()> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(&files.ca)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", files.ca.display()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_private_key(key)?)
            .with_context(|| format!("{} and {} do not match", cert.display(), key.display()))?,
    };
    let _ = CONFIG.set(Arc::new(config));
    Ok(())
}

/// Anything a connection can read from and write to.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Wrap `tcp` in TLS if `--tls-ca` was given; `host` is checked against the
/// broker's certificate.
pub fn wrap(tcp: TcpStream, host: &str) -> Result<Box<dyn Stream>> {
    let Some(config) = CONFIG.get() else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| anyhow!("{host:?} is not a valid TLS server name: {e}"))?;
    let mut conn = ClientConnection::new(config.clone(), name)?;
    let mut tcp = tcp;
    // Finish the handshake here so a refused certificate is reported as such
    // rather than as a failed first request.
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .with_context(|| format!("TLS handshake with {host}"))?;
    }
    Ok(Box::new(StreamOwned::new(conn, tcp)))
}
