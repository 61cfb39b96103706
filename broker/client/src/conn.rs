//! One connection to one broker. Requests can be pipelined: they are written
//! without waiting for earlier responses; Kafka answers in order on a
//! connection, so responses are matched to a FIFO of pending requests by
//! correlation id. Reads go into one growing buffer that is split into
//! zero-copy `Bytes` bodies.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rustls::ClientConfig;

use crate::errors::check;
use crate::sasl::{self, SaslAuth};
use crate::transport::Transport;
use crate::versions::{self, pick_version};

/// Offset of the correlation id in a request frame (after length, key, version).
const CORR_AT: usize = 8;
/// Largest response frame accepted.
const MAX_RESPONSE: i32 = 1 << 30;

/// How to connect: who we say we are, how long to wait, TLS and SASL.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `client_id` of every request header.
    pub client_id: &'static str,
    /// A broker that says nothing for this long is treated as dead.
    pub io_timeout: Duration,
    pub connect_timeout: Duration,
    /// TLS when set (see [`crate::tls::client_config`]).
    pub tls: Option<Arc<ClientConfig>>,
    /// SASL authentication right after ApiVersions when set.
    pub sasl: Option<SaslAuth>,
}

impl Options {
    pub fn new(client_id: &'static str) -> Options {
        Options {
            client_id,
            io_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tls: None,
            sasl: None,
        }
    }
}

/// A connection with the versions its broker supports; `P` is what the
/// caller remembers about each pipelined request until its response.
pub struct Conn<P = ()> {
    pub addr: String,
    transport: Transport,
    client_id: &'static str,
    io_timeout: Duration,
    rbuf: BytesMut,
    next_corr: i32,
    versions: HashMap<i16, (i16, i16)>,
    pending: VecDeque<(i32, P)>,
}

impl<P> Conn<P> {
    /// Connect, negotiate versions with ApiVersions v0 and authenticate.
    pub fn connect(addr: &str, opts: &Options) -> Result<Conn<P>> {
        let transport = Transport::connect(
            addr,
            opts.connect_timeout,
            opts.io_timeout,
            opts.tls.as_ref(),
        )?;
        let mut conn = Conn {
            addr: addr.to_string(),
            transport,
            client_id: opts.client_id,
            io_timeout: opts.io_timeout,
            rbuf: BytesMut::with_capacity(1 << 20),
            next_corr: 1,
            versions: HashMap::new(),
            pending: VecDeque::new(),
        };
        // v0 is understood by every broker and never needs the KIP-511 retry.
        let resp: ApiVersionsResponse = conn.call_at(&ApiVersionsRequest::default(), 0)?;
        check(resp.error_code, format!("ApiVersions to {addr}"), None)?;
        for k in resp.api_keys {
            conn.versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        if let Some(auth) = &opts.sasl {
            sasl::authenticate(&mut conn, auth)?;
        }
        Ok(conn)
    }

    /// Give up on a response (or a send) after `t` instead of the default.
    pub fn set_timeout(&self, t: Duration) -> Result<()> {
        Ok(self.transport.set_timeout(t)?)
    }

    /// The version to use for `key` on this broker, or an error saying why
    /// there is none.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        let ours =
            versions::ours(key).ok_or_else(|| anyhow!("this client does not implement {key:?}"))?;
        let theirs = self.versions.get(&(key as i16)).copied();
        pick_version(ours, theirs).ok_or_else(|| match theirs {
            None => anyhow!(
                "UNSUPPORTED_VERSION: broker {} does not support {key:?}",
                self.addr
            ),
            Some((a, b)) => anyhow!(
                "UNSUPPORTED_VERSION: broker {} supports {key:?} v{a}-v{b}, this client v{}-v{}",
                self.addr,
                ours.0,
                ours.1
            ),
        })
    }

    /// Requests sent whose responses have not been read yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Request/response at the negotiated version (only while nothing is
    /// pipelined).
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        Ok(self.send(req)?.0)
    }

    /// [`Conn::call`], also returning the version used.
    pub fn send<R: Request>(&mut self, req: &R) -> Result<(R::Response, i16)> {
        let version = self.version(api_key::<R>()?)?;
        Ok((self.call_at(req, version)?, version))
    }

    /// Send without waiting for a response (Produce with acks=0).
    pub fn send_no_response<R: Request>(&mut self, req: &R) -> Result<()> {
        let version = self.version(api_key::<R>()?)?;
        let mut frame = BytesMut::new();
        encode_frame(req, version, self.client_id, &mut frame)?;
        self.write_frame(&mut frame).map(|_| ())
    }

    fn call_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        assert!(
            self.pending.is_empty(),
            "blocking call on a pipelined connection"
        );
        let mut frame = BytesMut::new();
        encode_frame(req, version, self.client_id, &mut frame)?;
        let corr = self.write_frame(&mut frame)?;
        let body = self.read_frame(None)?.expect("no timeout given");
        check_corr(&self.addr, corr, &body)?;
        decode_body::<R::Response>(body, version)
            .with_context(|| format!("decoding api {} v{version} response", R::KEY))
    }

    /// A frame for `req` (see [`encode_frame`]) with this connection's
    /// client id, appended to `out`.
    pub fn encode<R: Request>(&self, req: &R, version: i16, out: &mut BytesMut) -> Result<()> {
        encode_frame(req, version, self.client_id, out)
    }

    /// Write a frame made by [`encode_frame`] after stamping the next
    /// correlation id into it; remember `p` when a response will come.
    pub fn send_frame(&mut self, frame: &mut [u8], expect_response: bool, p: P) -> Result<()> {
        let corr = self.write_frame(frame)?;
        if expect_response {
            self.pending.push_back((corr, p));
        }
        Ok(())
    }

    fn write_frame(&mut self, frame: &mut [u8]) -> Result<i32> {
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1);
        frame[CORR_AT..CORR_AT + 4].copy_from_slice(&corr.to_be_bytes());
        self.transport
            .write_all(frame)
            .with_context(|| format!("sending to {}", self.addr))?;
        Ok(corr)
    }

    /// The next response (its body, header included) and the pending entry it
    /// answers. With a timeout, `None` when nothing complete arrived in time.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<(P, Bytes)>> {
        if self.pending.is_empty() {
            bail!("recv with no request in flight");
        }
        let Some(body) = self.read_frame(timeout)? else {
            return Ok(None);
        };
        let (corr, p) = self.pending.pop_front().expect("checked above");
        check_corr(&self.addr, corr, &body)?;
        Ok(Some((p, body)))
    }

    fn read_frame(&mut self, timeout: Option<Duration>) -> Result<Option<Bytes>> {
        loop {
            if self.rbuf.len() >= 4 {
                let len = i32::from_be_bytes(self.rbuf[..4].try_into().unwrap());
                if !(4..=MAX_RESPONSE).contains(&len) {
                    bail!("bad response length {len} from {}", self.addr);
                }
                let total = 4 + len as usize;
                if self.rbuf.len() >= total {
                    let mut frame = self.rbuf.split_to(total);
                    frame.advance(4);
                    return Ok(Some(frame.freeze()));
                }
                // Read the rest of a big frame (fetch) with few syscalls.
                self.rbuf.reserve(total - self.rbuf.len());
            }
            if let Some(t) = timeout {
                if !self.transport.wait_readable(t)? {
                    return Ok(None);
                }
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 64 * 1024 {
            self.rbuf.reserve(256 * 1024);
        }
        match self.transport.read_into(&mut self.rbuf) {
            Ok(0) => bail!(
                "reading response from {}: the broker closed the connection",
                self.addr
            ),
            Ok(_) => Ok(()),
            Err(e) => match e.kind() {
                std::io::ErrorKind::Interrupted => Ok(()),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    let t = self.transport.read_timeout().unwrap_or(self.io_timeout);
                    bail!("no response from {} within {t:?}", self.addr)
                }
                _ => Err(anyhow!(e).context(format!("reading response from {}", self.addr))),
            },
        }
    }
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))
}

fn check_corr(addr: &str, sent: i32, body: &[u8]) -> Result<()> {
    let got = body
        .get(..4)
        .map(|b| i32::from_be_bytes(b.try_into().unwrap()));
    if got != Some(sent) {
        bail!("correlation id mismatch from {addr}: sent {sent}, got {got:?}");
    }
    Ok(())
}

/// Length-prefixed request frame with a placeholder correlation id (set by
/// [`Conn::send_frame`]), appended to `out`.
pub fn encode_frame<R: Request>(
    req: &R,
    version: i16,
    client_id: &'static str,
    out: &mut BytesMut,
) -> Result<()> {
    let start = out.len();
    out.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(0)
        .with_client_id(Some(StrBytes::from_static_str(client_id)))
        .encode(out, R::header_version(version))?;
    req.encode(out, version)
        .with_context(|| format!("encoding api {} v{version}", R::KEY))?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Decode a response body (header included) of `T` at `version`.
pub fn decode_body<T: Decodable + HeaderVersion>(mut body: Bytes, version: i16) -> Result<T> {
    ResponseHeader::decode(&mut body, T::header_version(version))?;
    let resp =
        T::decode(&mut body, version).with_context(|| format!("decoding v{version} response"))?;
    if body.has_remaining() {
        tracing::debug!("{} trailing bytes in response", body.remaining());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_correlation_id_slot_at_8() {
        let mut out = BytesMut::new();
        encode_frame(&ApiVersionsRequest::default(), 0, "t", &mut out).unwrap();
        assert_eq!(
            i32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
            out.len() - 4
        );
        assert_eq!(
            i16::from_be_bytes(out[4..6].try_into().unwrap()),
            ApiKey::ApiVersions as i16
        );
        assert_eq!(&out[CORR_AT..CORR_AT + 4], &[0, 0, 0, 0]);
    }

    #[test]
    fn correlation_ids_must_match() {
        assert!(check_corr("a", 7, &7i32.to_be_bytes()).is_ok());
        assert!(check_corr("a", 7, &8i32.to_be_bytes()).is_err());
        assert!(check_corr("a", 7, &[0, 0]).is_err());
    }
}
