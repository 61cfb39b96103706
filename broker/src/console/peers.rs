//! The other brokers' metrics history, for the console's cluster-wide
//! charts (`GET /api/v1/metrics/cluster-history`).
//!
//! Each broker keeps only its own history (`history`); the broker serving
//! the console asks the others for theirs over their admin listeners, at
//! the address each registered with the controller (the
//! [`ADMIN_ENDPOINT`] endpoint of its registration, which no Kafka
//! response ever shows). It asks the open, read-only
//! `GET /api/v1/metrics/history`, which serves the same figures as the
//! peer's `/metrics`: the caller's session token is never sent on, since
//! sessions live in the memory of the broker that opened them (a peer
//! would not know the token) and a bearer token should not travel to other
//! processes at all.
//!
//! Short timeouts ([`CONNECT_TIMEOUT`], [`CALL_TIMEOUT`]), all peers at
//! once, and a peer that does not answer, answers badly or has no admin
//! address is reported missing with the reason, never as an error of the
//! call. Over HTTPS the peer's certificate is verified against
//! `ssl_truststore_location` (the CA the brokers' certificates come from,
//! as for inter-broker TLS); without one an HTTPS peer is missing, saying
//! why.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::Value;

use crate::metadata::{ClusterState, MetadataStore, ADMIN_ENDPOINT};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The whole of one peer call: connect, request, the answer read.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read from a peer (24 h of every series is ~6 MiB).
const MAX_ANSWER: usize = 32 << 20;
/// Peers asked at once (one thread each, for the call's duration).
const FAN_OUT: usize = 16;

/// The metadata, for the brokers' admin addresses: set once the broker has
/// opened it (the admin listener starts before). Held weakly, as the
/// metrics providers hold it, so it never keeps a stopping store alive.
static METADATA: OnceLock<Weak<MetadataStore>> = OnceLock::new();

pub fn set_metadata(store: &Arc<MetadataStore>) {
    let _ = METADATA.set(Arc::downgrade(store));
}

/// A registered broker and where its admin listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: i32,
    pub admin: Option<AdminAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAddr {
    pub host: String,
    pub port: u16,
    pub https: bool,
}

/// Every registered broker (fenced ones too: a stopped broker is the one
/// an operator wants to see missing), by id; empty before the metadata is
/// open or on a broker that is not part of a cluster.
pub fn registered() -> Vec<Peer> {
    METADATA
        .get()
        .and_then(Weak::upgrade)
        .map_or_else(Vec::new, |m| peers_of(&m.snapshot()))
}

pub fn peers_of(state: &ClusterState) -> Vec<Peer> {
    state
        .brokers
        .values()
        .map(|b| Peer {
            id: b.id,
            admin: b.endpoint(ADMIN_ENDPOINT).map(|e| AdminAddr {
                host: e.host.clone(),
                port: e.port,
                // The admin endpoint's protocol id: 1 (SSL) is HTTPS.
                https: e.security_protocol == 1,
            }),
        })
        .collect()
}

/// `f(peer)` for every peer, at most [`FAN_OUT`] at once, in order.
pub fn for_each<T: Send>(peers: &[Peer], f: impl Fn(&Peer) -> T + Sync) -> Vec<T> {
    let mut out = Vec::with_capacity(peers.len());
    for chunk in peers.chunks(FAN_OUT) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|p| s.spawn(|| f(p))).collect();
            for h in handles {
                // A panicking call is a bug; it shows as this thread's panic.
                out.push(h.join().expect("peer call thread"));
            }
        });
    }
    out
}

/// The JSON body of a 200 to `GET path_and_query` on a peer's admin
/// listener, or why there is none (a sentence).
pub fn get_json(
    addr: &AdminAddr,
    path_and_query: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Value, String> {
    let deadline = Instant::now() + CALL_TIMEOUT;
    let scheme = if addr.https { "https" } else { "http" };
    let url = format!("{scheme}://{}:{}{path_and_query}", addr.host, addr.port);
    let text = fetch(addr, path_and_query, tls, deadline).map_err(|e| format!("{url}: {e}"))?;
    let (status, body) = parse_response(&text).map_err(|e| format!("{url}: {e}"))?;
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| format!("{url}: HTTP {status} with a body that is not JSON: {e}"))?;
    if status != 200 {
        let why = json["error"].as_str().unwrap_or("no reason given");
        return Err(format!("{url}: HTTP {status}: {why}"));
    }
    Ok(json)
}

fn fetch(
    addr: &AdminAddr,
    path_and_query: &str,
    tls: Option<&Arc<ClientConfig>>,
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let tcp = connect(&addr.host, addr.port, CONNECT_TIMEOUT)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))
    };
    tcp.set_read_timeout(Some(left()?))?;
    tcp.set_write_timeout(Some(left()?))?;
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\n\
         User-Agent: shardline-console-peer\r\nConnection: close\r\n\r\n",
        addr.host, addr.port
    );
    if !addr.https {
        let sock = tcp.try_clone()?;
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())?;
        return read_to_end(&mut tcp, &sock, left);
    }
    let Some(config) = tls else {
        return Err(io::Error::other(
            "an HTTPS admin listener, and no ssl_truststore_location to verify its certificate",
        ));
    };
    let sock = tcp.try_clone()?;
    let mut s = tls_over(tcp, config, &addr.host)?;
    s.write_all(request.as_bytes())?;
    s.flush()?;
    read_to_end(&mut s, &sock, left)
}

/// A TCP connection to `host:port` (its first address), within `timeout`.
/// Shared with the alert webhooks' sender (`alerts::post`).
pub fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let sock = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{host} resolves to no address")))?;
    TcpStream::connect_timeout(&sock, timeout)
}

/// TLS as a client over `tcp`, the server's certificate verified by
/// `config` for the name `host`. Shared with `alerts::post`.
pub fn tls_over(
    tcp: TcpStream,
    config: &Arc<ClientConfig>,
    host: &str,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host}: not a TLS server name: {e}"),
        )
    })?;
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    Ok(StreamOwned::new(conn, tcp))
}

/// Read until the peer closes (it answers `Connection: close`), within the
/// deadline and [`MAX_ANSWER`].
fn read_to_end(
    r: &mut impl Read,
    sock: &TcpStream,
    left: impl Fn() -> io::Result<Duration>,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        sock.set_read_timeout(Some(left()?))?;
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A TLS peer closing without close_notify after a whole answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(out)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if out.len() > MAX_ANSWER {
            return Err(io::Error::other(format!(
                "answer larger than {MAX_ANSWER} bytes"
            )));
        }
    }
}

/// (status, body) of an HTTP/1.x answer read whole (head parsed by
/// `httparse`); the body is what Content-Length says when given (the rest
/// must be there).
pub fn parse_response(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("no complete HTTP answer".into()),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    let status = resp.code.ok_or("an answer with no status")?;
    let body = &raw[head_len..];
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("a bad Content-Length")
        })
        .transpose()?;
    match length {
        Some(n) if n > body.len() => Err(format!(
            "the answer ended after {} of {n} body bytes",
            body.len()
        )),
        Some(n) => Ok((status, &body[..n])),
        None => Ok((status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerMeta, Endpoint};

    #[test]
    fn answers_are_parsed_and_short_ones_refused() {
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(ok).unwrap(), (200, &b"{}"[..]));
        let short = b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n{}";
        assert!(parse_response(short).unwrap_err().contains("2 of 10"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        let no_len = b"HTTP/1.1 404 Not Found\r\n\r\n{\"error\":\"x\"}";
        assert_eq!(parse_response(no_len).unwrap().0, 404);
    }

    #[test]
    fn peers_come_from_the_registrations_admin_endpoints() {
        let mut state = ClusterState::default();
        let broker = |id: i32, admin: Option<(u16, i16)>| {
            let mut endpoints = vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9092,
                security_protocol: 0,
            }];
            if let Some((port, proto)) = admin {
                endpoints.push(Endpoint {
                    name: ADMIN_ENDPOINT.into(),
                    host: "h".into(),
                    port,
                    security_protocol: proto,
                });
            }
            BrokerMeta {
                id,
                incarnation: uuid::Uuid::new_v4(),
                epoch: 1,
                endpoints,
                rack: None,
                shards: 1,
                fenced: id == 3,
            }
        };
        state.brokers.insert(1, broker(1, Some((9644, 0))));
        state.brokers.insert(2, broker(2, Some((9645, 1))));
        state.brokers.insert(3, broker(3, None));
        let peers = peers_of(&state);
        assert_eq!(peers.len(), 3, "fenced brokers are listed too");
        assert_eq!(
            peers[0].admin,
            Some(AdminAddr {
                host: "h".into(),
                port: 9644,
                https: false
            })
        );
        assert!(peers[1].admin.as_ref().unwrap().https);
        assert_eq!(peers[2].admin, None, "an older broker registered none");
    }

    #[test]
    fn a_peer_that_does_not_answer_fails_within_the_timeouts() {
        // Accepts and never answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let addr = AdminAddr {
            host: "127.0.0.1".into(),
            port,
            https: false,
        };
        let t0 = Instant::now();
        let e = get_json(&addr, "/api/v1/metrics/history", None).unwrap_err();
        assert!(t0.elapsed() < CALL_TIMEOUT + Duration::from_secs(1), "{e}");
        assert!(e.contains(&format!("http://127.0.0.1:{port}")), "{e}");
        drop(l);
        let e = get_json(&addr, "/x", None).unwrap_err();
        assert!(e.contains("refused") || e.contains("onnection"), "{e}");
        let https = AdminAddr {
            https: true,
            ..addr
        };
        let e = get_json(&https, "/x", None).unwrap_err();
        assert!(
            e.contains("refused") || e.contains("truststore"),
            "HTTPS without a truststore: {e}"
        );
    }
}
