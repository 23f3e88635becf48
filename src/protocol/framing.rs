//! Sized messages: the framing under every ZRS message (zc.zrs `sizedmessage`).
//!
//! On the wire a message is a 4-byte big-endian length followed by that many payload bytes.
//! A zero-length message is valid: the secondary sends `\0\0\0\0` as a keep-alive.
//!
//! [`FrameDecoder`] is sans-IO: the driver [`feed`](FrameDecoder::feed)s whatever bytes a read
//! returned and takes whole payloads with [`next_frame`](FrameDecoder::next_frame) until it
//! says `Ok(None)`. Its guarantees:
//!
//! - A declared length above the decoder's limit is refused as soon as the 4 length bytes
//!   are in, before anything is allocated for it, with the stream offset of the length prefix.
//! - Memory grows only with bytes actually received: nothing is reserved from a declared
//!   length, so a peer announcing 4 GiB and sending 10 bytes costs 10 bytes.
//! - Every byte is copied a bounded number of times however the stream is chunked (a large
//!   frame arriving a byte at a time costs amortized O(1) per byte, not O(n²)).
//! - After an error the decoder stays failed: it drops its buffer, ignores further input and
//!   returns the same error again.
//!
//! Besides the `Vec<u8>` API there are two copy-free paths: [`FrameDecoder::next_frame_slice`]
//! lends the payload from the internal buffer, and [`FrameDecoder::decode`] hands a callback
//! the frames that lie whole inside the bytes just received straight from those bytes,
//! buffering only what straddles reads.

use crate::planted::{planted, Bug};

/// The primary accepts at most 8 bytes per message (zc.zrs `Stream(..., 8)`): the protocol
/// name (`zrs2.0`/`zrs2.1`), the start tid, and keep-alives are all it ever receives.
pub const PRIMARY_LIMIT: u32 = 8;

/// The secondary's limit: every length the 4-byte prefix can express (`u32::MAX`).
///
/// Python's secondary uses `Stream`'s default limit of `1 << 32`, which no 32-bit length can
/// exceed, so it accepts every message; a smaller limit here would refuse streams a Python
/// secondary replicates (ZODB does not bound record sizes). The limit is not what protects
/// memory: the decoder never allocates from a declared length, only for bytes received.
pub const DEFAULT_SECONDARY_LIMIT: u32 = u32::MAX;

/// Size of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// What went wrong in a stream of sized messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message declared more bytes than the limit allows.
    #[error(
        "message at stream offset {offset} declares {length} bytes, more than the limit of {limit}"
    )]
    TooLarge {
        length: u64,
        limit: u32,
        offset: u64,
    },
    /// The stream ended inside a message (reported by [`FrameDecoder::finish`]).
    #[error(
        "stream ended inside the message at offset {offset}: {buffered} bytes received, {missing} more needed"
    )]
    Truncated {
        offset: u64,
        buffered: u64,
        missing: u64,
    },
}

/// Incremental decoder of sized messages; see the module docs.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: u32,
    /// Received bytes; `buf[pos..]` are not yet returned.
    buf: Vec<u8>,
    pos: usize,
    /// Stream offset of `buf[pos]`: where the next message starts.
    offset: u64,
    failed: Option<FrameError>,
}

/// The length prefix at the start of `bytes`, if all four bytes are there.
fn read_prefix(bytes: &[u8]) -> Option<u32> {
    let prefix: [u8; 4] = bytes.get(..PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix))
}

impl FrameDecoder {
    /// A decoder refusing messages longer than `limit` bytes.
    pub fn new(limit: u32) -> Self {
        FrameDecoder {
            limit,
            buf: Vec::new(),
            pos: 0,
            offset: 0,
            failed: None,
        }
    }

    /// Stream offset of the next message not yet returned (bytes returned so far, with
    /// their prefixes).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The error the decoder failed with, if it has.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Bytes received and held, not yet returned as (part of) a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes of memory the decoder holds for its buffer (its capacity), for checking that
    /// memory follows bytes received, not lengths declared.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Append received bytes. After a failure they are dropped.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.failed.is_some() || bytes.is_empty() {
            return;
        }
        if planted(Bug::SplitPrefixDropsByte) && (1..PREFIX_LEN).contains(&self.buffered()) {
            bytes = &bytes[1..];
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= self.buf.len() - self.pos {
            // Slide the unread tail down only when it is no longer than what was consumed,
            // so each byte is moved at most once per byte consumed: amortized O(1).
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn fail(&mut self, error: FrameError) -> FrameError {
        self.failed = Some(error.clone());
        self.buf = Vec::new();
        self.pos = 0;
        error
    }

    fn too_large(&mut self, length: u32) -> FrameError {
        self.fail(FrameError::TooLarge {
            length: u64::from(length),
            limit: self.limit,
            offset: self.offset,
        })
    }

    /// The next whole payload, lent from the internal buffer (valid until the next call);
    /// `Ok(None)` when more bytes are needed.
    pub fn next_frame_slice(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(length) = read_prefix(&self.buf[self.pos..]) else {
            return Ok(None);
        };
        if length > self.limit {
            return Err(self.too_large(length));
        }
        let total = PREFIX_LEN as u64 + u64::from(length);
        if (self.buffered() as u64) < total {
            return Ok(None);
        }
        // `total <= buffered()`, so it fits in usize.
        let start = self.pos + PREFIX_LEN;
        self.pos += total as usize;
        self.offset += total;
        Ok(Some(&self.buf[start..self.pos]))
    }

    /// The next whole payload; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        Ok(self.next_frame_slice()?.map(<[u8]>::to_vec))
    }

    /// Bytes still needed to complete the header, or the message, at the head of the buffer.
    fn missing(&self) -> u64 {
        let have = self.buffered() as u64;
        match read_prefix(&self.buf[self.pos..]) {
            None => PREFIX_LEN as u64 - have,
            Some(length) => (PREFIX_LEN as u64 + u64::from(length)).saturating_sub(have),
        }
    }

    /// Feed `bytes` and pass every payload that becomes whole to `on_frame`, in order.
    ///
    /// Equivalent to [`feed`](Self::feed) followed by [`next_frame`](Self::next_frame) until
    /// `Ok(None)`, but frames lying whole inside `bytes` are lent straight from `bytes`
    /// without being copied. On error, the frames before the bad one have been passed.
    pub fn decode<F: FnMut(&[u8])>(
        &mut self,
        bytes: &[u8],
        mut on_frame: F,
    ) -> Result<(), FrameError> {
        self.try_decode(bytes, |frame| {
            on_frame(frame);
            Ok(())
        })
    }

    /// As [`decode`](Self::decode), for a consumer that can fail: the first error it
    /// returns stops the decoding and is returned (the frames after it are not passed, and
    /// the decoder is not to be fed again).
    pub fn try_decode<E: From<FrameError>>(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        // First finish what is buffered, topping it up with just the bytes it lacks.
        loop {
            while let Some(frame) = self.next_frame_slice()? {
                on_frame(frame)?;
            }
            if self.buffered() == 0 {
                break;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let take = self.missing().min(bytes.len() as u64) as usize;
            self.feed(&bytes[..take]);
            bytes = &bytes[take..];
        }
        // The buffer is empty: decode in place.
        while let Some(length) = read_prefix(bytes) {
            if length > self.limit {
                return Err(self.too_large(length).into());
            }
            let total = PREFIX_LEN as u64 + u64::from(length);
            if (bytes.len() as u64) < total {
                break;
            }
            let (frame, rest) = bytes.split_at(total as usize);
            self.offset += total;
            bytes = rest;
            on_frame(&frame[PREFIX_LEN..])?;
        }
        self.feed(bytes);
        Ok(())
    }

    /// At end of stream, after `next_frame` returned `Ok(None)`: `Ok` if the stream ended
    /// between messages, else [`FrameError::Truncated`] (or the error the decoder failed with).
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buffered() == 0 {
            return Ok(());
        }
        Err(FrameError::Truncated {
            offset: self.offset,
            buffered: self.buffered() as u64,
            missing: self.missing(),
        })
    }
}

/// Append `payload` with its length prefix to `out`.
///
/// # Panics
/// If `payload` is 4 GiB or longer: no prefix can express that (a caller bug, not input).
pub fn write_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let length = u32::try_from(payload.len()).expect("a sized message holds less than 4 GiB");
    out.reserve(PREFIX_LEN + payload.len());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `payload` with its length prefix (zc.zrs `sizedmessage.marshal`).
///
/// # Panics
/// As [`write_frame`].
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + payload.len());
    write_frame(&mut out, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_one_byte_at_a_time() {
        let mut stream = Vec::new();
        for p in [&b"zrs2.1"[..], b"", b"\x03lk\x90\xfb\xbb\xbb\xbb"] {
            write_frame(&mut stream, p);
        }
        let mut d = FrameDecoder::new(PRIMARY_LIMIT);
        let mut got = Vec::new();
        for b in &stream {
            d.feed(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, [&b"zrs2.1"[..], b"", b"\x03lk\x90\xfb\xbb\xbb\xbb"]);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.offset(), stream.len() as u64);
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn primary_limit_refuses_nine_bytes() {
        let mut d = FrameDecoder::new(PRIMARY_LIMIT);
        d.feed(&frame(b"12345678"));
        d.feed(&frame(b"123456789"));
        assert_eq!(d.next_frame().unwrap().as_deref(), Some(&b"12345678"[..]));
        let e = FrameError::TooLarge {
            length: 9,
            limit: 8,
            offset: 12,
        };
        assert_eq!(d.next_frame(), Err(e.clone()));
        assert_eq!(d.buffered(), 0);
        d.feed(&frame(b"x"));
        assert_eq!(d.buffered(), 0, "a failed decoder holds nothing");
        assert_eq!(d.next_frame(), Err(e.clone()));
        assert_eq!(d.finish(), Err(e));
    }
}
