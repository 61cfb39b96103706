//! The quorum's network: raft messages to peers, and the controller
//! listener, on plain threads (never a shard: a few peers and a heartbeat
//! every 200 ms need no event loop, and blocking sockets keep it simple).
//!
//! Frames are Kafka's (a 4-byte size, a request header, a body), so the
//! controller listener serves Kafka's own controller APIs — ApiVersions,
//! BrokerRegistration, BrokerHeartbeat, DescribeQuorum — beside raft's
//! messages, which travel one way under a private API key that no client
//! uses ([`RAFT_API_KEY`]) with no response: raft retries what is lost.
//!
//! Limits: each peer has one connection and a bounded queue of batches
//! (`PEER_QUEUE`; a full queue drops, raft resends); the listener serves at
//! most `MAX_CONNECTIONS` connections, a frame at most `MAX_FRAME` bytes
//! (a snapshot travels in one frame), and drops a connection silent for
//! `IDLE` (a live leader sends heartbeats every 200 ms).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use raft::prelude::{Entry, Message, MessageType};

use super::node::Input;
use super::wire;

/// The private API key of a batch of raft messages (one way).
pub const RAFT_API_KEY: i16 = 32_000;
const MAX_FRAME: usize = 256 << 20;
const MAX_CONNECTIONS: usize = 256;
const PEER_QUEUE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Sent data unacknowledged this long drops the connection (TCP_USER_TIMEOUT).
/// Raft's messages are small: across a cut link every write still fits in
/// the send buffer and succeeds while the kernel retransmits with a backoff
/// that doubles up to two minutes, so a healed peer would hear nothing for
/// that long. Failing the connection instead makes the next batch reconnect,
/// which succeeds as soon as the link is back.
const UNACKED_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(120);
const CLIENT_ID: &str = "shardline-quorum";

/// The outbound side: one sender thread per peer.
pub struct Peers {
    senders: HashMap<u64, PeerSender>,
    inbox: SyncSender<Input>,
}

struct PeerSender {
    addr: String,
    queue: SyncSender<Outgoing>,
}

struct Outgoing {
    frame: Vec<u8>,
    /// The batch carries a snapshot: its delivery is reported to raft.
    snapshot: bool,
    /// Proposals forwarded to the leader in the batch: handed back when
    /// the batch is not delivered (see `QuorumCore::undelivered`).
    proposals: Vec<Entry>,
}

impl Outgoing {
    /// This batch did not reach `to` (certainly: nothing or a torn frame
    /// was written, and a torn frame is discarded by the receiver).
    fn failed(self, to: u64, inbox: &SyncSender<Input>) {
        let _ = inbox.try_send(Input::Unreachable {
            to,
            snapshot: self.snapshot,
            proposals: self.proposals,
        });
    }
}

impl Peers {
    pub fn new(inbox: SyncSender<Input>) -> Self {
        Self {
            senders: HashMap::new(),
            inbox,
        }
    }

    /// Send `messages` (all to raft id `to`, at `addr`). A peer that cannot
    /// take them now is reported unreachable (raft slows to probing it).
    pub fn send(&mut self, to: u64, addr: &str, messages: &[Message]) {
        let snapshot = messages
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let frame = raft_frame(&wire::encode(messages));
        let proposals: Vec<Entry> = messages
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgPropose)
            .flat_map(|m| m.entries.iter().cloned())
            .collect();
        if self.senders.get(&to).is_none_or(|s| s.addr != addr) {
            // A new peer, or one that moved: a new thread (the old one
            // ends when its queue's sender is dropped here).
            let (queue, rx) = mpsc::sync_channel(PEER_QUEUE);
            let inbox = self.inbox.clone();
            let peer_addr = addr.to_string();
            let spawned = std::thread::Builder::new()
                .name(format!("quorum-peer-{}", to - 1))
                .spawn(move || peer_sender(to, peer_addr, rx, inbox));
            if let Err(e) = spawned {
                tracing::error!("starting the sender to quorum peer {}: {e}", to - 1);
                return;
            }
            self.senders.insert(
                to,
                PeerSender {
                    addr: addr.to_string(),
                    queue,
                },
            );
        }
        let sender = &self.senders[&to];
        let out = Outgoing {
            frame,
            snapshot,
            proposals,
        };
        match sender.queue.try_send(out) {
            Ok(()) => {}
            Err(TrySendError::Full(out)) | Err(TrySendError::Disconnected(out)) => {
                out.failed(to, &self.inbox)
            }
        }
    }
}

/// Deliver one peer's batches over one connection, reconnecting as needed.
fn peer_sender(to: u64, addr: String, queue: mpsc::Receiver<Outgoing>, inbox: SyncSender<Input>) {
    let mut stream: Option<TcpStream> = None;
    let mut failed_at: Option<std::time::Instant> = None;
    while let Ok(out) = queue.recv() {
        // After a failure, batches of the next moment go nowhere rather
        // than each waiting out a connect timeout.
        if failed_at.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
            out.failed(to, &inbox);
            continue;
        }
        if stream.is_none() {
            match connect(&addr) {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    if failed_at.is_none() {
                        tracing::debug!("quorum peer {} at {addr}: {e}", to - 1);
                    }
                    failed_at = Some(std::time::Instant::now());
                    out.failed(to, &inbox);
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected above");
        match s.write_all(&out.frame) {
            Ok(()) => {
                failed_at = None;
                if out.snapshot {
                    let _ = inbox.try_send(Input::SnapshotSent {
                        to,
                        delivered: true,
                    });
                }
            }
            Err(e) => {
                tracing::debug!("quorum peer {} at {addr}: {e}", to - 1);
                stream = None;
                failed_at = Some(std::time::Instant::now());
                out.failed(to, &inbox);
            }
        }
    }
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                set_user_timeout(&s, UNACKED_TIMEOUT)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing"))))
}

fn set_user_timeout(s: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: a valid socket fd and a c_uint option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&ms as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A size-prefixed frame of raft messages: header v1, then the archive.
fn raft_frame(archive: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(archive.len() + 64);
    out.put_i32(0);
    out.put_i16(RAFT_API_KEY);
    out.put_i16(0);
    out.put_i32(0);
    out.put_i16(CLIENT_ID.len() as i16);
    out.put_slice(CLIENT_ID.as_bytes());
    out.put_slice(archive);
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.to_vec()
}

/// Answers the controller listener's Kafka requests: given the API key,
/// version and the request (header decoded), the response body, or `None`
/// for an API the listener does not serve (the connection is closed).
pub type Handler = Arc<dyn Fn(ApiKey, i16, Bytes) -> Result<Bytes, String> + Send + Sync>;

/// Serve the controller listener at `addr` on threads of its own.
pub fn serve(listener: TcpListener, inbox: SyncSender<Input>, handler: Handler) {
    let open = Arc::new(AtomicUsize::new(0));
    let spawned = std::thread::Builder::new()
        .name("quorum-listener".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    tracing::warn!(
                        "controller listener: {MAX_CONNECTIONS} connections open; refusing one"
                    );
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (inbox, handler, open) = (inbox.clone(), handler.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name("quorum-conn".into())
                    .spawn(move || {
                        let peer = stream.peer_addr().ok();
                        if let Err(e) = serve_connection(stream, &inbox, &handler) {
                            tracing::debug!("controller listener: connection from {peer:?}: {e}");
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    tracing::error!("controller listener: no thread for a connection");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("starting the controller listener: {e}");
    }
}

fn serve_connection(
    mut stream: TcpStream,
    inbox: &SyncSender<Input>,
    handler: &Handler,
) -> Result<(), String> {
    stream
        .set_read_timeout(Some(IDLE))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    while let Some(frame) = read_frame(&mut stream)? {
        let mut body = frame;
        if body.len() < 8 {
            return Err(format!("a {}-byte frame has no header", body.len()));
        }
        let api_key = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        if api_key == RAFT_API_KEY {
            let _ = body.split_to(8);
            let len = body.get_i16();
            if len > 0 {
                if body.len() < len as usize {
                    return Err("a raft frame's client id is cut short".into());
                }
                body.advance(len as usize);
            }
            let messages = wire::decode(&body)?;
            // Blocks when the quorum thread is behind: back-pressure on
            // the peer (its queue fills and drops, raft resends).
            if inbox.send(Input::Raft(messages)).is_err() {
                return Ok(()); // the quorum stopped
            }
            continue;
        }
        let key = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
        let header = RequestHeader::decode(&mut body, key.request_header_version(version))
            .map_err(|e| format!("malformed {key:?} header: {e}"))?;
        let response = handler(key, version, body)?;
        let mut out = BytesMut::new();
        out.put_i32(0);
        // ApiVersions' response header is v0 at every version (KIP-511).
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, header_version)
            .map_err(|e| e.to_string())?;
        out.put_slice(&response);
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One frame, or `None` at a clean end between frames.
fn read_frame(stream: &mut TcpStream) -> Result<Option<Bytes>, String> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let size = i32::from_be_bytes(size);
    if size <= 0 || size as usize > MAX_FRAME {
        return Err(format!("frame size {size} is outside 1..={MAX_FRAME}"));
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(Some(Bytes::from(body)))
}

/// Encode a response body of `T` at `version`.
pub fn encode_body<T: Encodable>(resp: &T, version: i16) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    resp.encode(&mut out, version).map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

/// Decode a request body of `T` at `version`, all of it.
pub fn decode_body<T: Decodable + HeaderVersion>(
    mut body: Bytes,
    version: i16,
) -> Result<T, String> {
    let r = T::decode(&mut body, version).map_err(|e| format!("malformed request: {e}"))?;
    Ok(r)
}

/// A controller address from `controller_quorum_voters`: `id@host:port`.
pub fn parse_voter(s: &str) -> Result<(i32, String), String> {
    let (id, addr) = s
        .split_once('@')
        .ok_or_else(|| format!("controller_quorum_voters: '{s}' is not id@host:port"))?;
    let id: i32 = id
        .trim()
        .parse()
        .map_err(|_| format!("controller_quorum_voters: '{id}' in '{s}' is not a node id"))?;
    if id < 0 {
        return Err(format!(
            "controller_quorum_voters: node id {id} is negative"
        ));
    }
    let addr = addr.trim();
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => {
            return Err(format!(
                "controller_quorum_voters: '{addr}' is not host:port"
            ))
        }
    }
    Ok((id, addr.to_string()))
}

/// A listener bound for the controller: `addr` now, so a port in use stops
/// the start with a clear error.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("binding the controller listener at {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_as_kafka_writes_them() {
        assert_eq!(
            parse_voter("1@127.0.0.1:9093").unwrap(),
            (1, "127.0.0.1:9093".to_string())
        );
        assert_eq!(
            parse_voter(" 2@host.example:19093").unwrap(),
            (2, "host.example:19093".to_string())
        );
        for bad in ["1", "x@h:1", "-1@h:1", "1@h", "1@:9", "1@h:99999"] {
            assert!(parse_voter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_raft_frame_is_a_kafka_frame() {
        let f = raft_frame(b"abc");
        let size = i32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(size, f.len() - 4);
        assert_eq!(i16::from_be_bytes([f[4], f[5]]), RAFT_API_KEY);
        assert!(f.ends_with(b"abc"));
    }
}
