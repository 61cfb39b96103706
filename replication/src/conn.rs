//! One connection from a broker to a peer's inter-broker listener, on the
//! caller's shard: a request, then its response (the fetcher waits for
//! each answer before the next request, as Kafka's replica fetcher does).
//! Followers' fetches, transaction markers and partition verification all
//! go over these.
//!
//! The byte stream is whatever a [`Dialer`] made: plain TCP, or TLS over
//! it (the broker's dialer), already authenticated with SASL when the
//! inter-broker listener asks for it, so the peer sees this broker's
//! principal (Kafka's `inter.broker.listener.name`).
//!
//! Every socket future is awaited alone or through `shard::rt::timeout`
//! (`shard::wake` explains why), and every wait is bounded: a leader that
//! stops answering costs at most the request timeout, then a new
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, StrBytes};
use shard::rt::{timeout, TcpStream};
use shardline_client::sasl::{plain_message, ScramClient};
use shardline_client::scram::ScramMechanism;

/// The largest response accepted: a Fetch answer is bounded by the
/// request's `max_bytes` (the fetcher asks for at most 64 MiB).
const MAX_RESPONSE: usize = 256 << 20;

/// The client id the leader sees in its logs and quotas.
pub const CLIENT_ID: &str = "shardline-replica-fetcher";

/// A byte stream to a peer: TCP, or TLS over TCP.
pub trait Link: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Link for T {}

/// Makes the connections to peers: the broker's knows the inter-broker
/// listener's security (TLS, SASL); [`PlainDialer`] is plain TCP.
pub trait Dialer {
    /// A connection to `addr`, ready for requests, within `within`.
    fn dial(&self, addr: SocketAddr, within: Duration) -> LocalBoxFuture<'_, Result<LeaderConn>>;
}

/// Plain TCP and no SASL: a PLAINTEXT inter-broker listener.
pub struct PlainDialer;

impl Dialer for PlainDialer {
    fn dial(&self, addr: SocketAddr, within: Duration) -> LocalBoxFuture<'_, Result<LeaderConn>> {
        Box::pin(LeaderConn::connect(addr, within))
    }
}

/// The TCP connection to `addr`, with Nagle off, within `within`.
pub async fn tcp(addr: SocketAddr, within: Duration) -> Result<TcpStream> {
    let stream = timeout(within, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}"))?
        .map_err(|e| anyhow!("connecting to {addr}: {e}"))?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// What a SASL inter-broker listener is told: the mechanism and the
/// broker's credential.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SASL {} as {:?}", self.mechanism, self.user)
    }
}

/// The SCRAM salted password last derived, so that reconnecting costs one
/// PBKDF2 per (salt, iterations) and not one per connection (thousands of
/// HMACs: milliseconds of a shard's time).
#[derive(Default)]
pub struct SaltedCache {
    entry: std::cell::RefCell<Option<Salted>>,
}

struct Salted {
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    iterations: u32,
    password: Vec<u8>,
}

pub struct LeaderConn {
    stream: Box<dyn Link>,
    addr: SocketAddr,
    correlation: i32,
    /// Size of the last response body read.
    last_response_bytes: usize,
}

impl LeaderConn {
    /// Plain TCP to `addr`.
    pub async fn connect(addr: SocketAddr, within: Duration) -> Result<Self> {
        Ok(Self::over(Box::new(tcp(addr, within).await?), addr))
    }

    /// Requests over `stream`, already connected to `addr`.
    pub fn over(stream: Box<dyn Link>, addr: SocketAddr) -> Self {
        Self {
            stream,
            addr,
            correlation: 0,
            last_response_bytes: 0,
        }
    }

    /// SaslHandshake v1, then the mechanism's messages in SaslAuthenticate
    /// v2: from here on the peer sees `login.user` as this connection's
    /// principal. Each step waits at most `within`.
    pub async fn authenticate(
        &mut self,
        login: &SaslLogin,
        cache: &SaltedCache,
        within: Duration,
    ) -> Result<()> {
        let addr = self.addr;
        self.sasl(login, cache, within)
            .await
            .with_context(|| format!("{login:?} to {addr}"))
    }

    async fn sasl(
        &mut self,
        login: &SaslLogin,
        cache: &SaltedCache,
        within: Duration,
    ) -> Result<()> {
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(login.mechanism.clone()));
        let resp: SaslHandshakeResponse = self.call(&req, 1, within).await?;
        if resp.error_code != 0 {
            let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
            bail!(
                "the listener refused mechanism {} (error {}; it offers {})",
                login.mechanism,
                shardline_client::error_name(resp.error_code),
                offered.join(", ")
            );
        }
        match ScramMechanism::from_name(&login.mechanism) {
            None => {
                self.sasl_step(plain_message(&login.user, &login.password), within)
                    .await?;
            }
            Some(m) => {
                let mut c = ScramClient::new(m, &login.user, &login.password);
                let server_first = self
                    .sasl_step(c.first_message().into_bytes(), within)
                    .await?;
                let server_first = String::from_utf8_lossy(&server_first).into_owned();
                let (salt, iterations) = ScramClient::salt_and_iterations(&server_first)?;
                // Kafka's SCRAM bounds: a peer asking for more costs this
                // shard that much hashing.
                if !(4096..=16384).contains(&iterations) {
                    bail!("the peer asks for {iterations} SCRAM iterations, outside 4096..=16384");
                }
                let hit = cache.entry.borrow().as_ref().and_then(|e| {
                    (e.mechanism == m && e.salt == salt && e.iterations == iterations)
                        .then(|| e.password.clone())
                });
                let salted = match hit {
                    Some(salted) => salted,
                    None => {
                        let salted =
                            m.salted_password(login.password.as_bytes(), &salt, iterations);
                        *cache.entry.borrow_mut() = Some(Salted {
                            mechanism: m,
                            salt,
                            iterations,
                            password: salted.clone(),
                        });
                        salted
                    }
                };
                let fin = c.final_message_salted(&server_first, &salted)?;
                let server_final = self.sasl_step(fin.into_bytes(), within).await?;
                c.verify_server_final(&String::from_utf8_lossy(&server_final))?;
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, token: Vec<u8>, within: Duration) -> Result<Bytes> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let resp: SaslAuthenticateResponse = self.call(&req, 2, within).await?;
        if resp.error_code != 0 {
            bail!(
                "{}: {}",
                shardline_client::error_name(resp.error_code),
                resp.error_message
                    .as_deref()
                    .unwrap_or("authentication failed")
            );
        }
        Ok(resp.auth_bytes)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes of the last response's body: what its decoded fields' slices
    /// (records) keep alive between them.
    pub fn last_response_bytes(&self) -> usize {
        self.last_response_bytes
    }

    /// Send `req` at `version` and wait up to `within` for its response.
    pub async fn call<R, T>(&mut self, req: &R, version: i16, within: Duration) -> Result<T>
    where
        R: Request,
        T: Decodable + HeaderVersion,
    {
        self.correlation = self.correlation.wrapping_add(1);
        let mut frame = BytesMut::new();
        shardline_client::encode_frame(req, version, CLIENT_ID, &mut frame)?;
        // The correlation id follows the size, api key and version.
        frame[8..12].copy_from_slice(&self.correlation.to_be_bytes());
        let body = timeout(within, self.exchange(frame.freeze()))
            .await
            .with_context(|| format!("{} did not answer api {} in time", self.addr, R::KEY))??;
        let correlation = i32::from_be_bytes(body[..4].try_into().expect("checked length"));
        if correlation != self.correlation {
            bail!(
                "{} answered correlation id {correlation}, expected {}",
                self.addr,
                self.correlation
            );
        }
        shardline_client::decode_body::<T>(body, version)
    }

    async fn exchange(&mut self, frame: Bytes) -> Result<Bytes> {
        self.stream.write_all(&frame).await?;
        self.stream.flush().await?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > MAX_RESPONSE {
            bail!("{} sent a response of {size} bytes", self.addr);
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).await?;
        self.last_response_bytes = body.len();
        Ok(Bytes::from(body))
    }
}
