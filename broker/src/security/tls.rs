//! TLS server configuration for SSL / SASL_SSL listeners (rustls, `ring`
//! provider: aws-lc-rs would need cmake and nasm to build).
//!
//! Kafka-style settings: a PEM certificate chain and private key, TLS 1.2 and
//! 1.3, and `ssl.client.auth = none | requested | required` with a CA bundle
//! to verify client certificates. The client certificate's subject becomes
//! the principal `User:CN=...,OU=...,O=...` exactly like Kafka's default
//! principal builder (RFC 2253 order, i.e. the last RDN first).
//!
//! Certificates rotate without a restart: [`TlsConfigHandle::current`] is
//! asked for each new connection and rebuilds the config when a file's
//! mtime/size/inode changed. Established connections keep the config they
//! started with; a failed reload keeps the old config and logs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("ssl.client.auth={0} needs a CA bundle (ssl.truststore)")]
    MissingCaBundle(ClientAuth),
    #[error("unknown TLS protocol {0:?} (expected TLSv1.2 or TLSv1.3)")]
    Protocol(String),
    #[error("invalid ssl.client.auth {0:?} (expected none, requested or required)")]
    ClientAuthValue(String),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate: {0}")]
    Certificate(String),
}

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    /// Ask for a certificate, accept connections without one (then the
    /// principal comes from SASL or is ANONYMOUS).
    Requested,
    Required,
}

impl FromStr for ClientAuth {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self, TlsError> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err(TlsError::ClientAuthValue(s.into())),
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server certificate first, then intermediates.
    pub cert_chain: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub private_key: PathBuf,
    pub client_auth: ClientAuth,
    /// PEM bundle of CAs trusted to sign client certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Kafka's `ssl.enabled.protocols` names; empty means both.
    pub protocols: Vec<String>,
}

impl TlsSettings {
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        TlsSettings {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_auth: ClientAuth::None,
            ca_bundle: None,
            protocols: Vec::new(),
        }
    }

    fn watched_files(&self) -> Vec<&Path> {
        let mut v = vec![self.cert_chain.as_path(), self.private_key.as_path()];
        v.extend(self.ca_bundle.as_deref());
        v
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &Path, detail: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificates found"));
    }
    Ok(certs)
}

pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

/// Build a rustls server config from the files named in `settings`.
pub fn build_server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut versions = Vec::new();
    for p in &settings.protocols {
        match p.as_str() {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            other => return Err(TlsError::Protocol(other.into())),
        }
    }
    if versions.is_empty() {
        versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let certs = load_certs(&settings.cert_chain)?;
    let key = load_private_key(&settings.private_key)?;

    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let ca = settings
                .ca_bundle
                .as_deref()
                .ok_or(TlsError::MissingCaBundle(auth))?;
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| file_err(ca, e))?;
            }
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth == ClientAuth::Requested {
                vb = vb.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(
                vb.build().map_err(|e| TlsError::Verifier(e.to_string()))?,
            )
        }
    };
    // `with_single_cert` also checks that the key matches the certificate.
    Ok(builder.with_single_cert(certs, key)?)
}

/// What identifies a version of a file: rotation tools either rewrite in
/// place (mtime/len change) or rename a new file over it (inode changes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    FileStamp(
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
    )
}

struct HandleState {
    config: Arc<ServerConfig>,
    stamps: Vec<FileStamp>,
    last_check: Instant,
}

/// A shareable, self-reloading server config (one per TLS listener, shared by
/// all shards).
pub struct TlsConfigHandle {
    settings: TlsSettings,
    check_interval: Duration,
    state: Mutex<HandleState>,
}

impl TlsConfigHandle {
    /// Build the initial config; an error here should fail broker start-up.
    pub fn new(settings: TlsSettings, check_interval: Duration) -> Result<Arc<Self>, TlsError> {
        let stamps = settings.watched_files().into_iter().map(stamp).collect();
        let config = Arc::new(build_server_config(&settings)?);
        Ok(Arc::new(TlsConfigHandle {
            settings,
            check_interval,
            state: Mutex::new(HandleState {
                config,
                stamps,
                last_check: Instant::now(),
            }),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The config for a new connection. At most every `check_interval` it
    /// stats the files and rebuilds if any changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.last_check.elapsed() >= self.check_interval {
            st.last_check = Instant::now();
            self.reload_if_changed(&mut st);
        }
        st.config.clone()
    }

    /// Check now regardless of the interval; true if a new config was loaded.
    #[cfg(test)]
    pub fn check_now(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.last_check = Instant::now();
        self.reload_if_changed(&mut st)
    }

    fn reload_if_changed(&self, st: &mut HandleState) -> bool {
        let stamps: Vec<FileStamp> = self
            .settings
            .watched_files()
            .into_iter()
            .map(stamp)
            .collect();
        if stamps == st.stamps {
            return false;
        }
        match build_server_config(&self.settings) {
            Ok(cfg) => {
                tracing::info!(cert = %self.settings.cert_chain.display(), "reloaded TLS certificates");
                st.config = Arc::new(cfg);
                st.stamps = stamps;
                true
            }
            Err(e) => {
                // Often a half-finished rotation (cert written, key not yet):
                // keep serving the old one and retry at the next check.
                tracing::warn!(error = %e, "TLS certificate reload failed; keeping the previous certificates");
                false
            }
        }
    }
}

/// Kafka's default SSL principal: `User:` + the subject DN in RFC 2253 form.
pub fn principal_from_cert(der: &[u8]) -> Result<String, TlsError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| TlsError::Certificate(e.to_string()))?;
    Ok(format!("User:{}", rfc2253_name(cert.subject())))
}

/// Format a distinguished name as Java's `X500Principal.getName()` does:
/// RDNs last-to-first, `+` between multi-valued attributes, known keywords
/// by name, others as dotted OID with a `#`-hex DER value.
pub fn rfc2253_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.9" => Some("STREET"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            match (keyword, atv.as_str()) {
                (Some(k), Ok(v)) => {
                    out.push_str(k);
                    out.push('=');
                    escape_value(v, &mut out);
                }
                (k, _) => {
                    out.push_str(k.unwrap_or(&oid));
                    out.push_str("=#");
                    let any = atv.attr_value();
                    for b in der_of(any) {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

fn escape_value(v: &str, out: &mut String) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        // Java's escapees (`,=+<>#;"\`), plus a leading/trailing space.
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#')
            || (i == 0 && c == ' ')
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Re-encode an `ANY` as DER (tag, length, contents) for the `#hex` form.
fn der_of(any: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Vec<u8> {
    let h = &any.header;
    let class = (h.class() as u8) << 6;
    let constructed = if h.is_constructed() { 0x20 } else { 0 };
    let tag = h.tag().0;
    let mut out = Vec::new();
    if tag < 31 {
        out.push(class | constructed | tag as u8);
    } else {
        out.push(class | constructed | 0x1f);
        let mut parts = Vec::new();
        let mut t = tag;
        loop {
            parts.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, p) in parts.iter().rev().enumerate() {
            out.push(if i + 1 < parts.len() { p | 0x80 } else { *p });
        }
    }
    let len = any.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(any.data);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    /// A throwaway PKI for tests: one CA, certificates signed by it.
    pub(crate) struct TestCa {
        pub cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    pub(crate) struct Leaf {
        pub cert_pem: String,
        pub key_pem: String,
        pub der: Vec<u8>,
    }

    impl TestCa {
        pub fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            TestCa {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// `server` picks the EKU; `expired` backdates the validity.
        pub fn leaf(&self, dn: &[(DnType, &str)], server: bool, expired: bool) -> Leaf {
            let sans = if server {
                vec!["localhost".to_string()]
            } else {
                vec![]
            };
            let mut params = CertificateParams::new(sans).unwrap();
            // The default DN holds a CN that `push` would replace in place,
            // which would put CN first in the encoding; start empty.
            params.distinguished_name = DistinguishedName::new();
            for (t, v) in dn {
                params.distinguished_name.push(t.clone(), *v);
            }
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            if expired {
                params.not_before = rcgen::date_time_ymd(2001, 1, 1);
                params.not_after = rcgen::date_time_ymd(2002, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        }
    }

    #[test]
    fn principal_is_kafka_style() {
        let ca = TestCa::new("test-ca");
        let leaf = ca.leaf(
            &[
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme, Inc."),
                (DnType::OrganizationalUnitName, "eng"),
                (DnType::CommonName, "alice"),
            ],
            false,
            false,
        );
        assert_eq!(
            principal_from_cert(&leaf.der).unwrap(),
            "User:CN=alice,OU=eng,O=Acme\\, Inc.,C=US"
        );
        assert!(principal_from_cert(b"not a cert").is_err());
    }

    #[test]
    fn unknown_attributes_use_hex() {
        let ca = TestCa::new("ca");
        let leaf = ca.leaf(
            &[
                (DnType::CustomDnType(vec![1, 2, 3, 4]), "x"),
                (DnType::CommonName, "#bob "),
            ],
            false,
            false,
        );
        let p = principal_from_cert(&leaf.der).unwrap();
        // rcgen encodes custom values as UTF8String (tag 0x0c).
        assert_eq!(p, "User:CN=\\#bob\\ ,1.2.3.4=#0c0178");
    }

    #[test]
    fn settings_validation() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("ca");
        let leaf = ca.leaf(&[(DnType::CommonName, "broker")], true, false);
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        let mut s = TlsSettings::new(&cert, &key);
        assert!(build_server_config(&s).is_ok());
        s.protocols = vec!["TLSv1.3".into()];
        assert!(build_server_config(&s).is_ok());
        s.protocols = vec!["SSLv3".into()];
        assert!(matches!(
            build_server_config(&s),
            Err(TlsError::Protocol(_))
        ));
        s.protocols.clear();
        s.client_auth = "REQUIRED".parse().unwrap();
        assert!(matches!(
            build_server_config(&s),
            Err(TlsError::MissingCaBundle(_))
        ));
        assert!("maybe".parse::<ClientAuth>().is_err());
        // Key that does not match the certificate.
        let other = ca.leaf(&[(DnType::CommonName, "x")], true, false);
        std::fs::write(&key, &other.key_pem).unwrap();
        s.client_auth = ClientAuth::None;
        assert!(build_server_config(&s).is_err());
        // Missing / empty files give the path in the error.
        std::fs::write(&cert, "").unwrap();
        let e = build_server_config(&s).unwrap_err().to_string();
        assert!(e.contains("c.pem"), "{e}");
        s.cert_chain = dir.path().join("missing.pem");
        assert!(build_server_config(&s).is_err());
    }
}
