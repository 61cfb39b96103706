//! A pipelined Kafka connection: requests are written without waiting for
//! earlier responses; Kafka answers in order on a connection, so responses
//! are matched to a FIFO of pending requests by correlation id.
//!
//! Blocking sockets on one thread per connection: writes are whole frames,
//! reads go into one growing buffer that is split into zero-copy `Bytes`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

const CLIENT_ID: &str = "shardline-bench";
/// A broker that says nothing for this long is treated as dead.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Offset of the correlation id in a request frame (after length, key, version).
const CORR_AT: usize = 8;

/// Versions this tool encodes and decodes, per API (highest common wins).
pub const OURS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
];

pub fn pick_version(ours: (i16, i16), theirs: Option<(i16, i16)>) -> Option<i16> {
    let (bmin, bmax) = theirs?;
    let max = ours.1.min(bmax);
    (max >= ours.0.max(bmin)).then_some(max)
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let mut out = String::new();
            for (i, ch) in format!("{e:?}").chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// What we remember about a request until its response arrives.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub corr: i32,
    pub intended_ns: u64,
    pub sent_ns: u64,
    /// (partition, records) carried by a Produce request.
    pub counts: Vec<(i32, u32)>,
}

pub struct Conn {
    pub addr: String,
    stream: TcpStream,
    rbuf: BytesMut,
    next_corr: i32,
    versions: HashMap<i16, (i16, i16)>,
    pub pending: VecDeque<Pending>,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            rbuf: BytesMut::with_capacity(1 << 20),
            next_corr: 1,
            versions: HashMap::new(),
            pending: VecDeque::new(),
        };
        // v0 is understood by every broker (no KIP-511 retry dance needed).
        let resp: ApiVersionsResponse = conn.call_at(&ApiVersionsRequest::default(), 0)?;
        if resp.error_code != 0 {
            bail!("ApiVersions to {addr}: {}", error_name(resp.error_code));
        }
        for k in resp.api_keys {
            conn.versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(conn)
    }

    /// Give up on a response (or a send) after `t` instead of the default.
    pub fn set_timeout(&self, t: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(t))?;
        self.stream.set_write_timeout(Some(t))?;
        Ok(())
    }

    pub fn version(&self, key: ApiKey) -> Result<i16> {
        let ours = OURS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, a, b)| (*a, *b))
            .expect("API listed in OURS");
        let theirs = self.versions.get(&(key as i16)).copied();
        pick_version(ours, theirs).ok_or_else(|| {
            anyhow!(
                "UNSUPPORTED_VERSION: broker {} supports {key:?} {theirs:?}, we need v{}..=v{}",
                self.addr,
                ours.0,
                ours.1
            )
        })
    }

    /// Blocking request/response at the negotiated version (setup calls,
    /// only while nothing is pipelined).
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let v = self.version(key)?;
        self.call_at(req, v)
    }

    fn call_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        assert!(
            self.pending.is_empty(),
            "blocking call on a pipelined connection"
        );
        let mut frame = BytesMut::new();
        encode_frame(req, version, &mut frame)?;
        self.send_frame(&mut frame, true, Pending::default())?;
        let (_, body) = self.recv(None)?.expect("no timeout given");
        decode_body::<R::Response>(body, version)
    }

    /// Write a frame made by [`encode_frame`] after stamping the next
    /// correlation id into it; remember `p` when a response will come.
    pub fn send_frame(
        &mut self,
        frame: &mut [u8],
        expect_response: bool,
        mut p: Pending,
    ) -> Result<()> {
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1);
        frame[CORR_AT..CORR_AT + 4].copy_from_slice(&corr.to_be_bytes());
        self.stream
            .write_all(frame)
            .with_context(|| format!("sending to {}", self.addr))?;
        if expect_response {
            p.corr = corr;
            self.pending.push_back(p);
        }
        Ok(())
    }

    /// The next response (its body, header included) and the pending entry it
    /// answers. With a timeout, `None` when nothing complete arrived in time.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<(Pending, Bytes)>> {
        if self.pending.is_empty() {
            bail!("recv with no request in flight");
        }
        loop {
            if self.rbuf.len() >= 4 {
                let len = i32::from_be_bytes(self.rbuf[..4].try_into().unwrap());
                if !(4..=1 << 30).contains(&len) {
                    bail!("bad response length {len} from {}", self.addr);
                }
                let total = 4 + len as usize;
                if self.rbuf.len() >= total {
                    let mut frame = self.rbuf.split_to(total);
                    let _ = frame.split_to(4);
                    let body = frame.freeze();
                    let corr = i32::from_be_bytes(body[..4].try_into().unwrap());
                    let p = self.pending.pop_front().expect("checked above");
                    if corr != p.corr {
                        bail!(
                            "correlation id mismatch from {}: expected {}, got {corr}",
                            self.addr,
                            p.corr
                        );
                    }
                    return Ok(Some((p, body)));
                }
                // Read the rest of a big frame (fetch) with few syscalls.
                self.rbuf.reserve(total - self.rbuf.len());
            }
            if let Some(t) = timeout {
                if !self.wait_readable(t)? {
                    return Ok(None);
                }
            }
            self.fill()?;
        }
    }

    fn wait_readable(&self, t: Duration) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = t.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e.into());
        }
        Ok(r > 0)
    }

    fn fill(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 64 * 1024 {
            self.rbuf.reserve(256 * 1024);
        }
        let spare = self.rbuf.spare_capacity_mut();
        // SAFETY: read(2) writes at most spare.len() bytes into memory we own;
        // exactly the n bytes it reports are then marked initialised.
        let n = unsafe {
            libc::read(
                self.stream.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::Interrupted => Ok(()),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    let t = self
                        .stream
                        .read_timeout()
                        .ok()
                        .flatten()
                        .unwrap_or(IO_TIMEOUT);
                    bail!("no response from {} within {t:?}", self.addr)
                }
                _ => Err(anyhow!(e).context(format!("reading from {}", self.addr))),
            };
        }
        if n == 0 {
            bail!("{} closed the connection", self.addr);
        }
        // SAFETY: see above.
        unsafe { self.rbuf.set_len(self.rbuf.len() + n as usize) };
        Ok(())
    }
}

/// Length-prefixed request frame with a placeholder correlation id (set by
/// [`Conn::send_frame`]), appended to `out`.
pub fn encode_frame<R: Request>(req: &R, version: i16, out: &mut BytesMut) -> Result<()> {
    let start = out.len();
    out.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(0)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(out, R::header_version(version))?;
    req.encode(out, version)
        .with_context(|| format!("encoding api {} v{version}", R::KEY))?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

pub fn decode_body<T: Decodable + HeaderVersion>(mut body: Bytes, version: i16) -> Result<T> {
    ResponseHeader::decode(&mut body, T::header_version(version))?;
    T::decode(&mut body, version).with_context(|| format!("decoding v{version} response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(pick_version((3, 9), Some((0, 11))), Some(9));
        assert_eq!(pick_version((3, 9), Some((0, 7))), Some(7));
        assert_eq!(pick_version((4, 12), Some((0, 3))), None);
        assert_eq!(pick_version((4, 12), None), None);
    }

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    }

    #[test]
    fn frame_has_correlation_id_slot_at_8() {
        let mut out = BytesMut::new();
        encode_frame(&ApiVersionsRequest::default(), 0, &mut out).unwrap();
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
}
