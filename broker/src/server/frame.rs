//! Kafka framing: a 4-byte big-endian size, then that many bytes.

use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use futures::io::{AsyncRead, AsyncReadExt};

/// How far reading has got, for the connection's watchdog: bytes read so
/// far, and whether part of a frame has arrived. Plain cells, so keeping
/// them costs the read path an add and a store.
#[derive(Debug, Default)]
pub struct ReadProgress {
    pub bytes: Cell<u64>,
    pub in_frame: Cell<bool>,
}

impl ReadProgress {
    fn read(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n as u64);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is outside 1..={max} bytes (socket_request_max_bytes)")]
    BadSize { size: i64, max: usize },
    #[error("connection closed in the middle of a {0}-byte frame")]
    Truncated(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one frame; `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    progress: &ReadProgress,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut size_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated(4))
            };
        }
        progress.read(n);
        progress.in_frame.set(true);
        got += n;
    }
    let size = i32::from_be_bytes(size_buf) as i64;
    if size <= 0 || size as u64 > max as u64 {
        return Err(FrameError::BadSize { size, max });
    }
    let size = size as usize;
    let mut body = BytesMut::zeroed(size);
    let mut filled = 0;
    while filled < size {
        let n = r.read(&mut body[filled..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated(size));
        }
        progress.read(n);
        filled += n;
    }
    progress.in_frame.set(false);
    Ok(Some(body.freeze()))
}

/// A raw SASL token as sent after SaslHandshake v0: a 4-byte length, then
/// the token (no Kafka header); an empty token is a bare zero length.
pub fn raw_token_frame(token: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as i32).to_be_bytes());
    out.extend_from_slice(token);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn frames_and_bad_sizes() {
        let p = ReadProgress::default();
        let mut input: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 2, b'x'];
        assert_eq!(
            &run(read_frame(&mut input, 100, &p)).unwrap().unwrap()[..],
            b"abc"
        );
        assert_eq!(p.bytes.get(), 7);
        assert!(!p.in_frame.get(), "a whole frame was read");
        assert!(matches!(
            run(read_frame(&mut input, 100, &p)),
            Err(FrameError::Truncated(2))
        ));
        assert!(p.in_frame.get(), "stopped in the middle of a frame");
        let mut empty: &[u8] = &[];
        assert!(run(read_frame(&mut empty, 100, &p)).unwrap().is_none());
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            run(read_frame(&mut huge, 100, &p)),
            Err(FrameError::BadSize { .. })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            run(read_frame(&mut negative, 100, &p)),
            Err(FrameError::BadSize { size: -1, .. })
        ));
    }
}
