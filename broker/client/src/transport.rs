//! The byte stream under a [`crate::Conn`]: a blocking TCP socket, or rustls
//! over one. Plain reads go straight into the connection's receive buffer
//! with read(2) (no zeroing, no copy), which the bench's consume path needs.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::BytesMut;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// Bytes read per TLS read; TLS records are at most 16 KiB of plaintext.
const TLS_READ: usize = 64 * 1024;

impl Transport {
    pub(crate) fn connect(
        addr: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Transport> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let tcp = TcpStream::connect_timeout(&sock, connect_timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(io_timeout))?;
        tcp.set_write_timeout(Some(io_timeout))?;
        let Some(config) = tls else {
            return Ok(Transport::Plain(tcp));
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| anyhow!("{host:?} is not a valid TLS server name: {e}"))?;
        let mut conn = ClientConnection::new(config.clone(), name)?;
        let mut tcp = tcp;
        // Finish the handshake here so a refused certificate is reported as
        // such rather than as a failed first request.
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .with_context(|| format!("TLS handshake with {host}"))?;
        }
        Ok(Transport::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }

    pub(crate) fn set_timeout(&self, t: Duration) -> io::Result<()> {
        self.tcp().set_read_timeout(Some(t))?;
        self.tcp().set_write_timeout(Some(t))
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.tcp().read_timeout().ok().flatten()
    }

    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.write_all(buf),
            Transport::Tls(s) => s.write_all(buf).and_then(|_| s.flush()),
        }
    }

    /// Append what one read returns to `buf` (which has spare capacity);
    /// `Ok(0)` is end of stream.
    pub(crate) fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => {
                let spare = buf.spare_capacity_mut();
                // SAFETY: read(2) writes at most spare.len() bytes into memory
                // we own; exactly the n bytes it reports are then marked
                // initialised.
                let n =
                    unsafe { libc::read(s.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: see above.
                unsafe { buf.set_len(buf.len() + n as usize) };
                Ok(n as usize)
            }
            Transport::Tls(s) => {
                let len = buf.len();
                buf.resize(len + TLS_READ, 0);
                let r = s.read(&mut buf[len..]);
                buf.truncate(len + *r.as_ref().unwrap_or(&0));
                r
            }
        }
    }

    /// Whether a read can make progress within `t` (data, EOF or an error).
    pub(crate) fn wait_readable(&mut self, t: Duration) -> io::Result<bool> {
        if let Transport::Tls(s) = self {
            // Plaintext rustls already decrypted is not visible to poll(2).
            let state = s
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                return Ok(true);
            }
        }
        let mut pfd = libc::pollfd {
            fd: self.tcp().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = t.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }
}
