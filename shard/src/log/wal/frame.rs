//! The on-disk format of the write-ahead ring: frames of entries.
//!
//! A frame starts on a page boundary and is padded to whole pages. Its
//! 64-byte header names its log sequence number (LSN: the byte position in
//! an endless log, so `lsn % ring_bytes` is where it sits in the ring file)
//! and the checkpoint LSN known when it was written; a CRC32C covers the
//! header and another the body. A frame left in the ring from an earlier lap
//! has another LSN, so it cannot be mistaken for the one expected there.
//!
//! Entry: `path_len u16 | 0u16 | data_len u32 | pos u64 | path | data`: the
//! bytes a segment write put at `pos` of the segment file `path` (relative
//! to the data directory). Replaying entries in order redoes the writes.

/// Frames and their padding are whole pages (O_DIRECT's unit).
pub const PAGE: usize = 4096;
pub const HEADER: usize = 64;
const MAGIC: u32 = 0x534c_5731; // "SLW1"
/// A frame with no entries that says: the next frame is at the start of the
/// next lap (the one after it did not fit before the end of the ring).
pub const FLAG_WRAP: u32 = 1;
const ENTRY_HEADER: usize = 16;
/// Longest relative segment path an entry can carry.
pub const MAX_PATH: usize = u16::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub flags: u32,
    pub lsn: u64,
    /// Every entry of a frame before this LSN is in its segment file durably.
    pub checkpoint: u64,
    pub body_len: u32,
    pub entries: u32,
    pub body_crc: u32,
}

impl FrameHeader {
    /// Bytes the frame takes in the ring, padding included.
    pub fn frame_len(&self) -> u64 {
        frame_len(self.body_len as usize) as u64
    }

    pub fn is_wrap(&self) -> bool {
        self.flags & FLAG_WRAP != 0
    }
}

/// Bytes a frame with `body_len` bytes of entries takes in the ring.
pub fn frame_len(body_len: usize) -> usize {
    (HEADER + body_len).div_ceil(PAGE) * PAGE
}

/// Bytes an entry takes in a frame's body.
pub fn entry_len(path_len: usize, data_len: usize) -> usize {
    ENTRY_HEADER + path_len + data_len
}

/// Write the header into `frame[..HEADER]`; the body must already be in
/// place after it (its CRC is computed here).
pub fn seal(
    frame: &mut [u8],
    flags: u32,
    lsn: u64,
    checkpoint: u64,
    entries: u32,
    body_len: usize,
) {
    assert!(frame.len() >= frame_len(body_len), "frame buffer too short");
    assert!(
        checkpoint <= lsn,
        "checkpoint {checkpoint} after frame {lsn}"
    );
    let body_crc = crc32c::crc32c(&frame[HEADER..HEADER + body_len]);
    let h = &mut frame[..HEADER];
    h.fill(0);
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&flags.to_le_bytes());
    h[8..16].copy_from_slice(&lsn.to_le_bytes());
    h[16..24].copy_from_slice(&checkpoint.to_le_bytes());
    h[24..28].copy_from_slice(&(body_len as u32).to_le_bytes());
    h[28..32].copy_from_slice(&entries.to_le_bytes());
    h[32..36].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&h[..36]);
    h[36..40].copy_from_slice(&header_crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header at the start of `bytes`, if it is one (magic and CRC).
pub fn parse_header(bytes: &[u8]) -> Option<FrameHeader> {
    if bytes.len() < HEADER || u32_at(bytes, 0) != MAGIC {
        return None;
    }
    if crc32c::crc32c(&bytes[..36]) != u32_at(bytes, 36) {
        return None;
    }
    let header = FrameHeader {
        flags: u32_at(bytes, 4),
        lsn: u64_at(bytes, 8),
        checkpoint: u64_at(bytes, 16),
        body_len: u32_at(bytes, 24),
        entries: u32_at(bytes, 28),
        body_crc: u32_at(bytes, 32),
    };
    (header.checkpoint <= header.lsn).then_some(header)
}

/// The body of the frame whose header is `header` and whose bytes start
/// `frame`, if all of it is there and its CRC matches (a torn write fails).
pub fn body<'a>(frame: &'a [u8], header: &FrameHeader) -> Option<&'a [u8]> {
    let end = HEADER.checked_add(header.body_len as usize)?;
    let body = frame.get(HEADER..end)?;
    (crc32c::crc32c(body) == header.body_crc).then_some(body)
}

/// One redone write.
#[derive(Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub path: &'a [u8],
    pub pos: u64,
    pub data: &'a [u8],
}

/// Append an entry's header and path to `out` at `at`; the caller copies
/// the `data_len` data bytes after them. Returns where the data goes.
pub fn put_entry_header(
    out: &mut [u8],
    at: usize,
    path: &[u8],
    pos: u64,
    data_len: usize,
) -> usize {
    assert!(path.len() <= MAX_PATH, "segment path too long for the ring");
    let len = u32::try_from(data_len).expect("entry data fits u32");
    out[at..at + 2].copy_from_slice(&(path.len() as u16).to_le_bytes());
    out[at + 2..at + 4].fill(0);
    out[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    out[at + 8..at + 16].copy_from_slice(&pos.to_le_bytes());
    let data_at = at + ENTRY_HEADER + path.len();
    out[at + ENTRY_HEADER..data_at].copy_from_slice(path);
    data_at
}

/// The entries of a checked body, in order; `Err` names where a body
/// whose CRC matched still does not parse (a bug, never a torn write).
pub fn entries(body: &[u8], count: u32) -> Result<Vec<EntryRef<'_>>, String> {
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0;
    for i in 0..count {
        let head = body
            .get(at..at + ENTRY_HEADER)
            .ok_or_else(|| format!("entry {i}: header past the body's end"))?;
        let path_len = u16::from_le_bytes([head[0], head[1]]) as usize;
        let data_len = u32_at(head, 4) as usize;
        let pos = u64_at(head, 8);
        let path_at = at + ENTRY_HEADER;
        let data_at = path_at + path_len;
        let end = data_at + data_len;
        if end > body.len() {
            return Err(format!("entry {i}: {data_len} bytes past the body's end"));
        }
        out.push(EntryRef {
            path: &body[path_at..data_at],
            pos,
            data: &body[data_at..end],
        });
        at = end;
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last entry", body.len() - at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with(entries_in: &[(&[u8], u64, &[u8])], lsn: u64, checkpoint: u64) -> Vec<u8> {
        let body_len: usize = entries_in
            .iter()
            .map(|(p, _, d)| entry_len(p.len(), d.len()))
            .sum();
        let mut frame = vec![0u8; frame_len(body_len)];
        let mut at = HEADER;
        for (path, pos, data) in entries_in {
            let data_at = put_entry_header(&mut frame, at, path, *pos, data.len());
            frame[data_at..data_at + data.len()].copy_from_slice(data);
            at = data_at + data.len();
        }
        seal(
            &mut frame,
            0,
            lsn,
            checkpoint,
            entries_in.len() as u32,
            body_len,
        );
        frame
    }

    #[test]
    fn a_frame_reads_back_as_written() {
        let frame = frame_with(
            &[(b"t-0/0.log", 4096, b"abc"), (b"u-1/5.log", 0, b"")],
            8192,
            4096,
        );
        assert_eq!(frame.len(), PAGE);
        let h = parse_header(&frame).expect("header");
        assert_eq!((h.lsn, h.checkpoint, h.entries), (8192, 4096, 2));
        let body = body(&frame, &h).expect("body");
        let got = entries(body, h.entries).unwrap();
        assert_eq!(
            got[0],
            EntryRef {
                path: b"t-0/0.log",
                pos: 4096,
                data: b"abc"
            }
        );
        assert_eq!(got[1].path, b"u-1/5.log");
        assert!(got[1].data.is_empty());
    }

    #[test]
    fn a_torn_or_damaged_frame_is_refused() {
        let data = vec![7u8; 3 * PAGE];
        let mut frame = frame_with(&[(b"t-0/0.log", 0, &data)], 0, 0);
        assert_eq!(frame.len(), 4 * PAGE);
        let h = parse_header(&frame).unwrap();
        // The last page never reached the device.
        frame[3 * PAGE..].fill(0);
        assert!(body(&frame, &h).is_none());
        // A bit flipped in the header.
        frame[9] ^= 1;
        assert!(parse_header(&frame).is_none());
        // Zeros (an unwritten ring) are no frame.
        assert!(parse_header(&[0u8; PAGE]).is_none());
    }

    #[test]
    fn entries_past_the_body_are_reported() {
        let mut body = vec![0u8; 20];
        put_entry_header(&mut body, 0, b"p", 0, 100);
        assert!(entries(&body[..17], 1).is_err());
    }
}
