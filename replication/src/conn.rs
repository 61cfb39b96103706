//! One connection from a follower to its leader's client listener, on the
//! follower's shard: a request, then its response (the fetcher waits for
//! each answer before the next request, as Kafka's replica fetcher does).
//!
//! Every socket future is awaited alone or through `shard::rt::timeout`
//! (`shard::wake` explains why), and every wait is bounded: a leader that
//! stops answering costs at most the request timeout, then a new
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request};
use shard::rt::{timeout, TcpStream};

/// The largest response accepted: a Fetch answer is bounded by the
/// request's `max_bytes` (the fetcher asks for at most 64 MiB).
const MAX_RESPONSE: usize = 256 << 20;

/// The client id the leader sees in its logs and quotas.
pub const CLIENT_ID: &str = "shardline-replica-fetcher";

pub struct LeaderConn {
    stream: TcpStream,
    addr: SocketAddr,
    correlation: i32,
}

impl LeaderConn {
    pub async fn connect(addr: SocketAddr, within: Duration) -> Result<Self> {
        let stream = timeout(within, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}"))?
            .map_err(|e| anyhow::anyhow!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Self {
            stream,
            addr,
            correlation: 0,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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
        Ok(Bytes::from(body))
    }
}
