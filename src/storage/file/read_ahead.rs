//! Committed bytes of a FileStorage read ahead for a [`Cursor`](crate::storage::Cursor):
//! a primary streaming a catch-up reads one transaction after another, and one `pread` per
//! transaction header and another per transaction cost more than copying the bytes (a few
//! KB each). A cursor instead reads up to [`READ_AHEAD`] bytes at once and takes its headers
//! and transactions from them.
//!
//! Only bytes before the committed end are ever read ahead, and committed bytes never
//! change in place (a FileStorage appends; a pack replaces the file, and the primary then
//! opens new cursors), so what is buffered stays true. Memory: [`READ_AHEAD`] per cursor; a
//! longer transaction is read on its own, as before.

use std::io;

use super::backend::Backend;

/// Bytes a cursor reads at once (and holds).
pub const READ_AHEAD: usize = 256 << 10;

/// A cursor's read-ahead buffer: the file's bytes from `at` for `len` bytes.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    at: u64,
    len: usize,
    buf: Vec<u8>,
}

impl ReadAhead {
    /// The `len` bytes at `pos`, all before `end` (the caller checks `pos + len <= end`),
    /// from the buffer, refilled from `pos` on when they are not in it; `None` where `len`
    /// is more than [`READ_AHEAD`] (read those directly).
    pub(super) fn get(
        &mut self,
        backend: &dyn Backend,
        pos: u64,
        len: usize,
        end: u64,
    ) -> io::Result<Option<&[u8]>> {
        let buffered = pos >= self.at && pos + len as u64 <= self.at + self.len as u64;
        if !buffered {
            if len > READ_AHEAD {
                return Ok(None);
            }
            let n = end.saturating_sub(pos).min(READ_AHEAD as u64) as usize;
            if n < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("wanted {len} bytes at {pos}, the committed file ends at {end}"),
                ));
            }
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            // Forget the old bytes first: a failed read leaves nothing buffered.
            self.len = 0;
            backend.read_exact_at(pos, &mut self.buf[..n])?;
            (self.at, self.len) = (pos, n);
        }
        let from = (pos - self.at) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::file::backend::MemoryBackend;

    #[test]
    fn reads_ahead_up_to_the_end_and_serves_ranges_from_the_buffer() {
        let backend = MemoryBackend::new();
        let data: Vec<u8> = (0..(READ_AHEAD * 3)).map(|i| (i % 251) as u8).collect();
        backend.write_at(0, &data).unwrap();
        let end = (READ_AHEAD * 2 + 100) as u64; // committed: less than the file
        let mut ahead = ReadAhead::default();
        let mut pos = 0u64;
        for len in [23usize, 4000, 1, 70_000, 23, 250_000, 9] {
            let got = ahead.get(&backend, pos, len, end).unwrap().unwrap();
            assert_eq!(got, &data[pos as usize..pos as usize + len]);
            pos += len as u64;
        }
        assert!(ahead.len <= READ_AHEAD && ahead.at + ahead.len as u64 <= end);
        // Longer than the read-ahead: read directly.
        assert!(ahead
            .get(&backend, 0, READ_AHEAD + 1, end)
            .unwrap()
            .is_none());
        // As long as the read-ahead, or ending at the committed end: served from it.
        let whole = READ_AHEAD as u64;
        let got = ahead.get(&backend, 7, READ_AHEAD, end).unwrap().unwrap();
        assert_eq!(got, &data[7..7 + READ_AHEAD]);
        let got = ahead.get(&backend, end - 10, 10, end).unwrap().unwrap();
        assert_eq!(got, &data[end as usize - 10..end as usize]);
        let got = ahead.get(&backend, end - whole, READ_AHEAD, end).unwrap();
        assert_eq!(got.unwrap(), &data[(end - whole) as usize..end as usize]);
        // Past the committed end: an error, not bytes that are not committed.
        let e = ahead.get(&backend, end - 10, 11, end).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Backwards works too (a new refill).
        assert_eq!(
            ahead.get(&backend, 5, 3, end).unwrap().unwrap(),
            &data[5..8]
        );
    }
}
