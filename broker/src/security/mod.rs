//! Listener security: TLS, SASL and the principal a connection acts as.
//!
//! How the pieces fit (the wiring lives in the listener code):
//!
//! ```text
//! accept ──► PLAINTEXT / SASL_PLAINTEXT: raw shard::rt::TcpStream
//!        └─► SSL / SASL_SSL: tls::TlsConfigHandle::current() → ServerConnection
//!                            → tls_stream::TlsStream::server(..).handshake()
//!                            → client cert? tls::principal_from_cert → "User:CN=.."
//! SASL_*: SaslHandshake picks a mechanism, then SaslAuthenticate tokens (or
//!         raw length-prefixed tokens after SaslHandshake v0) go to
//!         plain::authenticate or scram::ScramServer::step, which look users
//!         up in credentials::Credentials (salted keys only, in the metadata log).
//!         Failures go through auth_limiter::AuthFailureLimiter per client IP.
//! result: principal "User:<name>" (SASL wins over the TLS certificate, as in
//!         Kafka), or "User:ANONYMOUS" for PLAINTEXT / SSL without a cert.
//! ```
//!
//! Every module here is self-contained and unit-tested on its own.

pub mod auth_limiter;
pub mod credentials;
pub mod migrate;
pub mod plain;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod tls_stream;
