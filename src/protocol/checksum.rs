//! The running checksum that lets a secondary verify the replication stream.
//!
//! Both ends keep one md5 over the stream after the handshake:
//!
//! - It is seeded with the 8 bytes of the start tid: the tid the secondary sent as its second
//!   message (its last committed transaction; zeros for an empty storage).
//! - It is then updated with the *payload* of every message the primary sends, in order: the
//!   pickled `T`/`S`/`B`/`C` messages and the raw data and blob-chunk messages alike (an empty
//!   data message adds nothing). Length prefixes are never hashed.
//! - A `C` message carries the digest of everything hashed before it; the secondary compares
//!   that with its own digest, and then the `C` message's payload is hashed too, so the next
//!   transaction's checksum covers all the earlier ones.
//!
//! The checksum never restarts within a connection; a new connection starts a new one from the
//! tid the secondary then sends.
//!
//! Two ways to keep it:
//!
//! - [`StreamChecksum`]: fed payload by payload, by whoever holds the payloads (the primary's
//!   encoder).
//! - [`ChecksumScanner`]: fed the received bytes as they arrive, framing and all. It finds the
//!   message boundaries itself (the 4-byte length prefixes, never hashed) and hands out a
//!   [`StreamChecksum`] *checkpoint* at the start of every message: the checksum of
//!   everything before it, which is what a `C` there must carry. The secondary checks its
//!   `C`s against these checkpoints. Because the scanner needs nothing from the decoded
//!   messages, it can run ahead of the decoding, on another thread: the real network driver
//!   runs it on its reader thread, so md5 (the floor of a catch-up: about half of the
//!   secondary's CPU when it was inline) runs on one core while the secondary decodes and
//!   writes on the other; the simulator and the tests run the same scanner inline, inside
//!   the secondary. A checkpoint is a clone of the md5 state (about 100 bytes); it is
//!   finished into a digest only when a `C` asks for it.
//!
//! md5 is the `md-5` crate's portable implementation: it runs at about 0.77× OpenSSL's
//! assembly here (575 against 743 MB per CPU-second, BENCHMARKS.md "Scale"); its `asm`
//! feature gained only 5% and needs an assembler at build time, so it stays off. With the
//! scanner on its own thread, md5's speed bounds a catch-up only where that thread is the
//! slowest stage.

use md5::{Digest, Md5};

use crate::tid::Tid;

/// md5 over the start tid and every message payload since; see the module docs.
#[derive(Clone)]
pub struct StreamChecksum {
    md5: Md5,
}

impl StreamChecksum {
    /// A checksum seeded with the start tid's 8 bytes (Python: `md5(tid)`).
    pub fn new(start: Tid) -> Self {
        StreamChecksum {
            md5: Md5::new_with_prefix(start.as_bytes()),
        }
    }

    /// Hash one message payload (without its length prefix).
    pub fn update(&mut self, payload: &[u8]) {
        self.md5.update(payload);
    }

    /// The digest of everything hashed so far; the checksum goes on unchanged.
    pub fn digest(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }
}

/// Hashes a received stream's payloads ahead of their decoding and records a checkpoint at
/// the start of every message; see the module docs.
///
/// It follows the framing as [`FrameDecoder`](super::framing::FrameDecoder) does (a 4-byte
/// big-endian length, then that many payload bytes) but keeps no bytes: a payload is hashed
/// as its pieces arrive, so memory does not grow with a message. It checks no limit; the
/// decoder that reads the same bytes refuses what is too large, and the stream ends there.
#[derive(Clone, Debug)]
pub struct ChecksumScanner {
    checksum: StreamChecksum,
    /// The length prefix of the next message, as far as it has arrived.
    prefix: [u8; 4],
    prefix_len: usize,
    /// Payload bytes of the current message still to come (0: between messages).
    remaining: u64,
}

impl ChecksumScanner {
    /// A scanner for a stream whose checksum is seeded with `start` (see [`StreamChecksum::new`]).
    pub fn new(start: Tid) -> Self {
        ChecksumScanner {
            checksum: StreamChecksum::new(start),
            prefix: [0; 4],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// The checksum of everything scanned so far: between two messages, what a `C` there
    /// carries (the primary's [`Sealer`](super::seal::Sealer) makes its `C`s from it).
    pub fn checksum(&self) -> &StreamChecksum {
        &self.checksum
    }

    /// Whether the bytes scanned so far end between two messages.
    pub fn between_messages(&self) -> bool {
        self.remaining == 0 && self.prefix_len == 0
    }

    /// Hashes the payload bytes in `bytes`, the next bytes of the stream, and appends to
    /// `checkpoints` the checksum at the start of each message whose length prefix ends in
    /// them, in order: one per message, even an empty one.
    ///
    /// Stops after `max` checkpoints (so what one call holds is bounded however small the
    /// messages are) and returns how many bytes of `bytes` it consumed; the caller scans the
    /// rest with another call. With `max` ≥ 1 it consumes at least one byte of a non-empty
    /// `bytes`.
    pub fn scan(
        &mut self,
        bytes: &[u8],
        max: usize,
        checkpoints: &mut impl Extend<StreamChecksum>,
    ) -> usize {
        let mut rest = bytes;
        let mut made = 0;
        while !rest.is_empty() {
            if self.remaining > 0 {
                let take = rest
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.checksum.update(&rest[..take]);
                self.remaining -= take as u64;
                rest = &rest[take..];
                continue;
            }
            if made == max {
                break;
            }
            let take = (4 - self.prefix_len).min(rest.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&rest[..take]);
            self.prefix_len += take;
            rest = &rest[take..];
            if self.prefix_len == 4 {
                self.prefix_len = 0;
                self.remaining = u64::from(u32::from_be_bytes(self.prefix));
                checkpoints.extend(Some(self.checksum.clone()));
                made += 1;
            }
        }
        bytes.len() - rest.len()
    }
}

impl std::fmt::Debug for StreamChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self.digest().iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "StreamChecksum({hex})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::write_frame;

    /// Payloads of every shape the scanner must step over: empty ones, ones shorter than a
    /// prefix, and ones longer than an md5 block.
    fn payloads() -> Vec<Vec<u8>> {
        let mut payloads = vec![Vec::new(), b"T".to_vec(), b"abc".to_vec(), Vec::new()];
        for n in [63, 64, 65, 200, 4096] {
            payloads.push((0..n).map(|i| (i * 7 + n) as u8).collect());
        }
        payloads.push(Vec::new());
        payloads
    }

    /// The checksum before each payload, hashed payload by payload.
    fn expected(start: Tid, payloads: &[Vec<u8>]) -> Vec<[u8; 16]> {
        let mut checksum = StreamChecksum::new(start);
        payloads
            .iter()
            .map(|p| {
                let before = checksum.digest();
                checksum.update(p);
                before
            })
            .collect()
    }

    fn stream(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            write_frame(&mut out, p);
        }
        out
    }

    #[test]
    fn checkpoints_are_the_checksum_before_each_message_in_any_chunking() {
        let start = Tid::from_u64(0x0102_0304_0506_0708);
        let payloads = payloads();
        let bytes = stream(&payloads);
        let want = expected(start, &payloads);
        for chunk in [1, 2, 3, 5, 64, 1000, bytes.len()] {
            let mut scanner = ChecksumScanner::new(start);
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                assert_eq!(scanner.scan(piece, usize::MAX, &mut got), piece.len());
            }
            let got: Vec<_> = got.iter().map(StreamChecksum::digest).collect();
            assert_eq!(got, want, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_scan_stops_after_max_checkpoints_and_the_rest_continues_it() {
        let start = Tid::ZERO;
        let payloads = payloads();
        let bytes = stream(&payloads);
        let want = expected(start, &payloads);
        for max in [1, 2, 3] {
            let mut scanner = ChecksumScanner::new(start);
            let mut got = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let before = got.len();
                let used = scanner.scan(rest, max, &mut got);
                assert!(used > 0, "a scan with max {max} made no progress");
                assert!(got.len() - before <= max, "more than {max} checkpoints");
                rest = &rest[used..];
            }
            let got: Vec<_> = got.iter().map(StreamChecksum::digest).collect();
            assert_eq!(got, want, "max {max}");
        }
    }

    #[test]
    fn between_messages_exactly_at_message_boundaries() {
        let payloads = payloads();
        let bytes = stream(&payloads);
        let mut boundaries = vec![0];
        for p in &payloads {
            boundaries.push(boundaries.last().unwrap() + 4 + p.len());
        }
        let mut scanner = ChecksumScanner::new(Tid::ZERO);
        assert!(scanner.between_messages());
        for at in 1..=bytes.len() {
            scanner.scan(&bytes[at - 1..at], usize::MAX, &mut Vec::new());
            assert_eq!(
                scanner.between_messages(),
                boundaries.contains(&at),
                "after byte {at}"
            );
        }
    }

    #[test]
    fn the_seed_is_the_start_tid() {
        let mut a = ChecksumScanner::new(Tid::ZERO);
        let mut b = ChecksumScanner::new(Tid::from_u64(1));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.scan(&stream(&[b"x".to_vec()]), 1, &mut x);
        b.scan(&stream(&[b"x".to_vec()]), 1, &mut y);
        assert_ne!(x[0].digest(), y[0].digest());
        assert_eq!(x[0].digest(), StreamChecksum::new(Tid::ZERO).digest());
    }
}
