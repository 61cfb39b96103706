//! A bounds-checked cursor over a byte slice: every read either succeeds or
//! returns [`RecordError::Truncated`], so parsers built on it cannot panic on
//! short or hostile input.

use super::error::RecordError;
use super::varint::{get_varint, get_varlong};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated { what });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The bytes read since position `from`.
    #[inline]
    pub(crate) fn consumed_since(&self, from: usize) -> &'a [u8] {
        &self.buf[from..self.pos]
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RecordError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<i32, RecordError> {
        let (value, used) = get_varint(&self.buf[self.pos..])?;
        self.pos += used;
        Ok(value)
    }

    #[inline]
    pub(crate) fn varlong(&mut self) -> Result<i64, RecordError> {
        let (value, used) = get_varlong(&self.buf[self.pos..])?;
        self.pos += used;
        Ok(value)
    }
}
