//! A small HTTP/1.1 server for the admin listener: one accept thread per
//! address and one thread per connection, at most [`MAX_CONNECTIONS`] at a
//! time (the next is answered 503 at once and closed), over TLS when the
//! broker has a certificate.
//!
//! Why not `tiny_http` any more: its rustls feature needs an old rustls, and
//! the console needs every request handled off the accept thread so that a
//! slow API call never holds up `/metrics` or another session. A thread per
//! connection with a cap does that with no queue to size: a scrape always
//! finds a thread unless [`MAX_CONNECTIONS`] are busy, and the console caps
//! its own calls below that (`console::MAX_API_CALLS`).
//!
//! Deliberately small: one request per connection (`Connection: close`),
//! `Content-Length` bodies only (no chunked uploads), bounded head and body,
//! read and write timeouts. The request head is parsed by `httparse` (the
//! parser hyper uses), not by hand: this module only bounds what it reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::security::tls::TlsConfigHandle;

/// Connections served at once per process; more are answered 503.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_HEAD: usize = 16 * 1024;
/// Headers in one request, at most (httparse wants the room up front);
/// more is a 431, as a head over [`MAX_HEAD`] is.
const MAX_HEADERS: usize = 64;
pub const MAX_BODY: usize = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string (after `?`), not decoded.
    pub query: String,
    /// `HTTP/1.0` or `HTTP/1.1`: the answer uses the same.
    pub version: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Option<SocketAddr>,
    /// Whether the request came over TLS (cookies get `Secure`).
    pub tls: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Connections being served now, over every address.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Bind `addr` now (a busy port stops start-up) and serve it from a thread
/// of its own for the life of the process.
pub fn serve(
    addr: SocketAddr,
    tls: Option<Arc<TlsConfigHandle>>,
    handler: Handler,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!("admin listener: accept: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                accept(stream, tls.clone(), handler.clone());
            }
        })?;
    Ok(local)
}

fn accept(stream: TcpStream, tls: Option<Arc<TlsConfigHandle>>, handler: Handler) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    if ACTIVE.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        // Over TLS a plain answer would be noise; just close.
        if tls.is_none() {
            let mut s = stream;
            let _ = s.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                  Connection: close\r\nContent-Length: 45\r\n\r\n\
                  too many admin connections; try again later\n\n",
            );
        }
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("admin-conn".into())
        .spawn(move || {
            struct Release;
            impl Drop for Release {
                fn drop(&mut self) {
                    ACTIVE.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _release = Release;
            let peer = stream.peer_addr().ok();
            match tls {
                None => connection(stream, peer, false, &handler),
                Some(handle) => match rustls::ServerConnection::new(handle.current()) {
                    Ok(conn) => {
                        let s = rustls::StreamOwned::new(conn, stream);
                        connection(s, peer, true, &handler)
                    }
                    Err(e) => tracing::debug!("admin listener: TLS: {e}"),
                },
            }
        });
    if let Err(e) = spawned {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("admin listener: no thread for a connection: {e}");
    }
}

/// Serve one request on `io`.
fn connection<S: Read + Write>(io: S, peer: Option<SocketAddr>, tls: bool, handler: &Handler) {
    let mut reader = BufReader::new(io);
    let (version, response, head_only) = match read_request(&mut reader) {
        Ok(mut req) => {
            req.peer = peer;
            req.tls = tls;
            let head_only = req.method == "HEAD";
            (req.version.clone(), handler(&req), head_only)
        }
        Err(ReadError::Closed) => return,
        Err(ReadError::Bad(status, why)) => (
            "HTTP/1.1".to_string(),
            Response::text(status, &format!("{why}\n")),
            false,
        ),
    };
    let mut io = reader.into_inner();
    if let Err(e) = write_response(&mut io, &version, &response, head_only) {
        tracing::debug!("admin listener: answering {peer:?}: {e}");
    }
}

#[derive(Debug)]
enum ReadError {
    /// Nothing (or nothing usable) arrived: close without an answer.
    Closed,
    Bad(u16, String),
}

/// The request head: its lines up to and with the blank one, at most
/// [`MAX_HEAD`] bytes.
fn read_head<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let start = head.len();
        let n = r
            .take((MAX_HEAD + 1 - start) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|_| ReadError::Closed)?;
        if head.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large".into()));
        }
        if n == 0 {
            // Closed before the head ended: nothing to answer.
            return Err(ReadError::Closed);
        }
        let line = &head[start..];
        if start > 0 && (line == b"\r\n" || line == b"\n") {
            return Ok(head);
        }
    }
}

fn read_request<R: BufRead>(r: &mut R) -> Result<Request, ReadError> {
    let head = read_head(r)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        // The head read ends with its blank line: a parse that wants more
        // is a malformed head.
        Ok(httparse::Status::Partial) => {
            return Err(ReadError::Bad(400, "malformed request head".into()))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Bad(
                431,
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(httparse::Error::Version) => return Err(ReadError::Bad(505, "HTTP/1.x only".into())),
        Err(e) => return Err(ReadError::Bad(400, format!("malformed request: {e}"))),
    }
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Bad(400, "malformed request line".into()));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        version: format!("HTTP/1.{minor}"),
        ..Request::default()
    };
    for h in parsed.headers.iter() {
        let v = std::str::from_utf8(h.value)
            .map_err(|_| ReadError::Bad(400, format!("header {} is not UTF-8", h.name)))?;
        req.headers
            .push((h.name.to_ascii_lowercase(), v.trim().to_string()));
    }
    if req.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad(
            411,
            "chunked bodies are not accepted; send Content-Length".into(),
        ));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(400, "bad Content-Length".into()))?,
    };
    if len > MAX_BODY {
        return Err(ReadError::Bad(
            413,
            format!("request body over {MAX_BODY} bytes"),
        ));
    }
    req.body = vec![0; len];
    r.read_exact(&mut req.body)
        .map_err(|_| ReadError::Bad(408, "request body incomplete".into()))?;
    Ok(req)
}

fn write_response<W: Write>(
    w: &mut W,
    version: &str,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(r.body.len() + 256);
    let version = if version == "HTTP/1.0" {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    write!(
        out,
        "{version} {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    )?;
    for (k, v) in &r.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, ReadError> {
        read_request(&mut std::io::Cursor::new(raw.as_bytes().to_vec()))
    }

    #[test]
    fn parses_a_request_with_query_headers_and_body() {
        let r = parse(
            "POST /api/v1/session?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\
             Cookie: a=b\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/v1/session");
        assert_eq!(r.query, "x=1");
        assert_eq!(r.header("cookie"), Some("a=b"));
        assert_eq!(r.body, b"body");
    }

    #[test]
    fn refuses_what_it_does_not_take() {
        assert!(matches!(parse(""), Err(ReadError::Closed)));
        assert!(matches!(
            parse("GARBAGE\r\n\r\n"),
            Err(ReadError::Bad(400, _))
        ));
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(parse(&big), Err(ReadError::Bad(413, _))));
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(chunked), Err(ReadError::Bad(411, _))));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&long), Err(ReadError::Bad(431, _))));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(&many), Err(ReadError::Bad(431, _))));
        assert!(matches!(
            parse("GET / HTTP/2.0\r\n\r\n"),
            Err(ReadError::Bad(505, _))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nno colon here\r\n\r\n"),
            Err(ReadError::Bad(400, _))
        ));
        // Closed in the middle of the head: no answer.
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: h\r\n"),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn takes_bare_newlines_and_http_1_0() {
        let r = parse("GET /metrics?a=%20 HTTP/1.0\nHost:  h \n\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("GET", "/metrics", "a=%20")
        );
        assert_eq!(r.version, "HTTP/1.0");
        assert_eq!(r.header("host"), Some("h"));
        assert!(r.body.is_empty());
    }
}
