//! A TLS stream over any `futures::io` stream, driving rustls' buffered
//! `Connection` API by hand (the shards' TcpStream is not tokio, so
//! tokio-rustls does not apply). The same code serves the server side
//! (listeners) and the client side (tests, and later inter-broker links).
//!
//! rustls wants `std::io::Read`/`Write` for its TLS side; we bridge with tiny
//! adapters that turn `Poll::Pending` into `WouldBlock`, the same trick
//! tokio-rustls uses. The underlying stream registers the waker.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use rustls::pki_types::CertificateDer;
use rustls::{Connection, ServerConnection};

struct SyncIo<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<S: AsyncRead + Unpin> Read for SyncIo<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for SyncIo<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

pub struct TlsStream<S> {
    io: S,
    conn: Connection,
    handshake_done: bool,
    /// The transport returned EOF.
    eof: bool,
    close_notify_sent: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    pub fn server(io: S, conn: ServerConnection) -> Self {
        Self::new(io, conn.into())
    }

    pub fn client(io: S, conn: rustls::ClientConnection) -> Self {
        Self::new(io, conn.into())
    }

    fn new(io: S, conn: Connection) -> Self {
        TlsStream {
            io,
            conn,
            handshake_done: false,
            eof: false,
            close_notify_sent: false,
        }
    }

    /// Complete the handshake now (listeners do this first, so they can
    /// map the client certificate to a principal before reading requests).
    pub async fn handshake(&mut self) -> io::Result<()> {
        futures::future::poll_fn(|cx| self.poll_handshake(cx)).await
    }

    /// The peer's certificate chain, end-entity first (after the handshake).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    #[cfg(test)]
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Move TLS records from rustls to the transport.
    fn write_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        match would_block(self.conn.write_tls(&mut io)) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            r => r,
        }
    }

    /// Move TLS records from the transport into rustls and process them.
    fn read_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        let n = match would_block(self.conn.read_tls(&mut io)) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if n == 0 {
            self.eof = true;
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Best effort: tell the peer why (rustls queued an alert).
            let _ = self.write_io(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(n))
    }

    /// Flush everything rustls has queued; Pending if the transport is full.
    fn flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            if let Err(e) = std::task::ready!(self.write_io(cx)) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }

    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handshake_done {
            return Poll::Ready(Ok(()));
        }
        loop {
            let blocked = match self.flush_tls(cx) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => true,
            };
            if !self.conn.is_handshaking() {
                if blocked {
                    return Poll::Pending;
                }
                self.handshake_done = true;
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during TLS handshake",
                )));
            }
            if self.conn.wants_read() {
                match self.read_io(cx) {
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if blocked {
                return Poll::Pending;
            }
            return Poll::Ready(Err(io::Error::other("TLS handshake stalled")));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_handshake(cx))?;
        loop {
            match this.conn.reader().read(buf) {
                // Ok(0) after the peer's close_notify is a clean EOF.
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A transport EOF without close_notify: most Kafka clients
                // just close the socket. Kafka frames carry their length,
                // so a truncated frame is still caught by the frame reader.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Key updates and the like may need an answer; a full transport
            // must not stop us from reading, so ignore Pending here.
            if let Poll::Ready(Err(e)) = this.flush_tls(cx) {
                return Poll::Ready(Err(e));
            }
            if this.eof {
                return Poll::Ready(Ok(0));
            }
            std::task::ready!(this.read_io(cx))?;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_handshake(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Don't buffer without bound: first push out what is already queued.
        std::task::ready!(this.flush_tls(cx))?;
        let n = this.conn.writer().write(buf)?;
        // Start sending right away; if the transport is full the records
        // stay queued and go out on the next write/flush.
        match this.flush_tls(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ if n > 0 => Poll::Ready(Ok(n)),
            // rustls' buffer is full and the transport too: the transport
            // registered our waker.
            Poll::Pending => Poll::Pending,
            // Nothing accepted although everything was flushed: should not
            // happen, but never return Pending without a wake-up.
            Poll::Ready(Ok(())) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_handshake(cx))?;
        this.conn.writer().flush()?;
        std::task::ready!(this.flush_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            this.conn.send_close_notify();
            this.close_notify_sent = true;
        }
        std::task::ready!(this.flush_tls(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

#[cfg(test)]
#[path = "tls_stream_tests.rs"]
mod tests;
