//! Sealing: the running checksum computed apart from the encoding, so that a primary can
//! hash on another thread than the one that reads and encodes.
//!
//! Every `C` message carries the md5 of everything sent before it ([`checksum`]), so
//! whoever writes a `C` must have hashed the whole stream up to it. A
//! [`StreamEncoder`](super::StreamEncoder) made with [`StreamEncoder::unsealed`] hashes
//! nothing: it writes its messages into an [`Unsealed`] window and marks where each `C`
//! goes. A [`Sealer`], which holds the connection's checksum, then hashes the window's
//! payloads in order and makes each `C`: a [`SealedWindow`], written out as the window's
//! own bytes with the `C` frames between them (one vectored write, no copy) — on a thread
//! of its own (the real driver), or at once (the simulator, tests). The bytes are the
//! same either way, and the same as a [`StreamEncoder::new`] writes hashing as it goes:
//! both hash with [`StreamChecksum::update`] and make each `C` with [`commit_message`].
//!
//! [`checksum`]: super::checksum
//! [`StreamEncoder::unsealed`]: super::StreamEncoder::unsealed
//! [`StreamEncoder::new`]: super::StreamEncoder::new

use std::io::{self, IoSlice, Write};

use crate::protocol::checksum::{ChecksumScanner, StreamChecksum};
use crate::protocol::encoder::{pickled_bytes, read_frame, FrameSink};
use crate::protocol::framing::{write_frame, PREFIX_LEN};
use crate::tid::Tid;

/// The `C` message that ends a transaction, `('C', (md5,))` as zc.zrs's primary pickles it
/// (protocol 1, fast mode), made from the checksum of everything before it; the message is
/// then hashed too, as every message is.
pub fn commit_message(checksum: &mut StreamChecksum) -> Vec<u8> {
    let payload = commit_payload(&checksum.digest());
    checksum.update(&payload);
    payload
}

/// `('C', (digest,))` pickled as zc.zrs's primary pickles it, written directly (one per
/// transaction; `tests` check it against the generic encoder).
fn commit_payload(digest: &[u8; 16]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(MAX_COMMIT_LEN);
    payload.extend_from_slice(b"(X\x01\x00\x00\x00C(");
    pickled_bytes(digest, &mut payload);
    payload.extend_from_slice(b"tt.");
    payload
}

/// The longest [`commit_message`] (a digest whose 16 bytes are all ≥ 0x80 takes two UTF-8
/// bytes each in the pickle).
pub const MAX_COMMIT_LEN: usize = 8 + 18 + 4 + 32 + 13 + 3;

/// Part of a connection's stream as an unsealed encoder writes it: framed messages, and the
/// places where a `C` goes. Its bytes and marks are only ever written by the encoder, so a
/// [`Sealer`] can walk its frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unsealed {
    bytes: Vec<u8>,
    /// Offsets in `bytes` (non-decreasing) where a `C` message goes.
    commits: Vec<usize>,
    /// Set on a connection's first window: the start tid its sealer is seeded with.
    start: Option<Tid>,
}

impl Unsealed {
    /// An empty window with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Unsealed {
        Unsealed {
            bytes: Vec::with_capacity(capacity),
            commits: Vec::new(),
            start: None,
        }
    }

    /// A `C` goes here.
    pub fn commit_here(&mut self) {
        self.commits.push(self.bytes.len());
    }

    /// At most how many bytes the window is once sealed (each `C` counted at its longest):
    /// what a sender's window is measured in.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.commits.len() * (PREFIX_LEN + MAX_COMMIT_LEN)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.commits.is_empty()
    }

    /// Marks this window as the first of a connection whose secondary started after
    /// `start`.
    pub fn set_start(&mut self, start: Tid) {
        self.start = Some(start);
    }

    /// The start tid, on a connection's first window: seed its [`Sealer`] with it.
    pub fn start(&self) -> Option<Tid> {
        self.start
    }
}

impl FrameSink for Unsealed {
    fn frame(&mut self, payload: &[u8]) {
        write_frame(&mut self.bytes, payload);
    }

    fn frame_from(
        &mut self,
        input: &mut dyn io::Read,
        max: usize,
        hash: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let payload = read_frame(&mut self.bytes, input, max)?;
        hash(&self.bytes[payload..]);
        Ok(self.bytes.len() - payload)
    }
}

/// The running checksum of one connection, applied to its [`Unsealed`] windows in order.
///
/// It walks a window's frames with the secondary's [`ChecksumScanner`] (one reader of the
/// framing for both ends), which hashes each payload; at each commit mark the scanner's
/// checksum is the digest the `C` carries, and the `C` is scanned in turn.
#[derive(Clone, Debug)]
pub struct Sealer {
    scanner: ChecksumScanner,
}

/// The scanner's per-message checkpoints, which sealing does not need.
struct Discard;

impl Extend<StreamChecksum> for Discard {
    fn extend<I: IntoIterator<Item = StreamChecksum>>(&mut self, _: I) {}
}

impl Sealer {
    /// The sealer of a stream that continues after `start` (the tid the secondary sent).
    pub fn new(start: Tid) -> Sealer {
        Sealer {
            scanner: ChecksumScanner::new(start),
        }
    }

    /// Hashes `window`'s messages and makes its `C`s: the window as it goes on the wire.
    pub fn seal(&mut self, window: Unsealed) -> SealedWindow {
        let mut commits = Vec::with_capacity(window.commits.len() * (PREFIX_LEN + MAX_COMMIT_LEN));
        let mut ends = Vec::with_capacity(window.commits.len());
        let mut pos = 0;
        for &at in &window.commits {
            self.scan(&window.bytes[pos..at]);
            pos = at;
            // Marks fall between frames: the scanner's checksum is the `C`'s digest.
            debug_assert!(self.scanner.between_messages());
            let c = commits.len();
            write_frame(
                &mut commits,
                &commit_payload(&self.scanner.checksum().digest()),
            );
            self.scan(&commits[c..]);
            ends.push(commits.len());
        }
        self.scan(&window.bytes[pos..]);
        SealedWindow {
            window,
            commits,
            ends,
        }
    }

    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.scanner.scan(bytes, usize::MAX, &mut Discard);
            bytes = &bytes[n..];
        }
    }

    /// The digest a `C` sealed now would carry.
    pub fn digest(&self) -> [u8; 16] {
        self.scanner.checksum().digest()
    }
}

/// A window sealed: the encoder's bytes, untouched, and the `C` frames that go between
/// them, written out together without copying the window ([`SealedWindow::write_to`]).
#[derive(Debug)]
pub struct SealedWindow {
    window: Unsealed,
    /// The window's framed `C` messages, one after the other.
    commits: Vec<u8>,
    /// Where each of them ends in `commits`.
    ends: Vec<usize>,
}

/// Slices handed to one vectored write at most (Linux's IOV_MAX).
const MAX_SLICES: usize = 1024;

impl SealedWindow {
    /// The bytes for the wire, in order: the window up to its first commit mark, the first
    /// `C`, the window up to the next mark, and so on.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = &self.window.bytes[..];
        let marks = &self.window.commits;
        (0..=marks.len()).flat_map(move |i| {
            let from = if i == 0 { 0 } else { marks[i - 1] };
            let to = marks.get(i).copied().unwrap_or(bytes.len());
            let c = match i {
                i if i == marks.len() => &[][..],
                0 => &self.commits[..self.ends[0]],
                i => &self.commits[self.ends[i - 1]..self.ends[i]],
            };
            [&bytes[from..to], c]
        })
    }

    /// How many bytes go on the wire.
    pub fn len(&self) -> usize {
        self.window.bytes.len() + self.commits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes for the wire in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        out
    }

    /// Writes every piece to `out`, with vectored writes.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let pieces: Vec<&[u8]> = self.pieces().filter(|p| !p.is_empty()).collect();
        let (mut i, mut offset) = (0, 0);
        while i < pieces.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(&pieces[i][offset..])
                .chain(pieces[i + 1..].iter().copied())
                .take(MAX_SLICES)
                .map(IoSlice::new)
                .collect();
            let mut n = match out.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            while n > 0 {
                let left = pieces[i].len() - offset;
                if n < left {
                    offset += n;
                    break;
                }
                n -= left;
                (i, offset) = (i + 1, 0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::Message;

    #[test]
    fn the_direct_c_encoding_is_the_generic_one_and_never_longer_than_the_bound() {
        let mut checksum = StreamChecksum::new(Tid::ZERO);
        let mut longest = 0;
        for i in 0..2000u32 {
            let digest = checksum.digest();
            let direct = commit_message(&mut checksum);
            let generic = Message::Commit {
                checksum: Some(digest),
            }
            .encode_fast();
            assert_eq!(direct, generic, "digest {digest:?}");
            longest = longest.max(direct.len());
            checksum.update(&i.to_le_bytes());
        }
        let all_high = Message::Commit {
            checksum: Some([0xff; 16]),
        }
        .encode_fast();
        assert_eq!(all_high.len(), MAX_COMMIT_LEN);
        assert!(longest <= MAX_COMMIT_LEN);
    }

    #[test]
    fn sealing_puts_each_commit_in_place_with_the_digest_of_all_before() {
        let mut window = Unsealed::with_capacity(0);
        window.commit_here(); // a commit first: digest of the start tid alone
        window.frame(b"one");
        window.frame(b"");
        window.commit_here();
        window.commit_here(); // two in a row
        window.frame(b"two");
        let mut sealer = Sealer::new(Tid::from_u64(5));
        let sealed = sealer.seal(window.clone());
        // `len` bounds the sealed size from above, and closely: a `C` is at most 16 bytes
        // shorter than its longest (each digest byte takes one or two bytes of UTF-8).
        assert!(sealed.len() <= window.len());
        assert!(window.len() - sealed.len() <= 3 * 16, "{}", window.len());
        let sealed = sealed.to_vec();

        let mut expected = Vec::new();
        let mut checksum = StreamChecksum::new(Tid::from_u64(5));
        let mut message = |payload: &[u8], checksum: &mut StreamChecksum| {
            checksum.update(payload);
            write_frame(&mut expected, payload);
        };
        let c = Message::Commit {
            checksum: Some(checksum.digest()),
        }
        .encode_fast();
        message(&c, &mut checksum);
        message(b"one", &mut checksum);
        message(b"", &mut checksum);
        for _ in 0..2 {
            let c = Message::Commit {
                checksum: Some(checksum.digest()),
            }
            .encode_fast();
            message(&c, &mut checksum);
        }
        message(b"two", &mut checksum);
        assert_eq!(sealed, expected);
        assert_eq!(sealer.digest(), checksum.digest());
    }

    /// Takes at most `max` bytes per write, across slices, and fails every third call as
    /// interrupted: a socket under pressure.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls == 3 {
                self.calls = 0;
                return Err(io::ErrorKind::Interrupted.into());
            }
            assert!(bufs.len() <= MAX_SLICES);
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sealed_window_is_empty_only_with_nothing_in_it() {
        let mut sealer = Sealer::new(Tid::ZERO);
        assert!(sealer.seal(Unsealed::default()).is_empty());
        let mut window = Unsealed::default();
        window.frame(b"");
        assert!(
            !sealer.seal(window).is_empty(),
            "an empty message is 4 bytes"
        );
        let mut window = Unsealed::default();
        window.commit_here();
        assert!(!sealer.seal(window).is_empty());
    }

    /// An unsealed window is empty only with neither bytes nor a commit mark: a window of a
    /// blob's blocks holds no `C`, one may hold only the `C` that ends the transaction the
    /// window before filled, and each must go out (the primary sends no empty window).
    #[test]
    fn an_unsealed_window_is_empty_only_with_nothing_in_it() {
        assert!(Unsealed::default().is_empty());
        let mut window = Unsealed::default();
        window.frame(b"a block");
        assert!(!window.is_empty(), "bytes without a commit");
        let mut window = Unsealed::default();
        window.commit_here();
        assert!(!window.is_empty(), "a commit without bytes");
    }

    /// An interrupted write is retried; any other error ends the write and is returned.
    #[test]
    fn a_failing_write_is_returned_not_retried() {
        struct Broken(usize);
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                assert!(self.0 < 10, "a broken pipe retried");
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut window = Unsealed::default();
        window.frame(b"one");
        window.commit_here();
        let sealed = Sealer::new(Tid::ZERO).seal(window);
        let mut out = Broken(0);
        let e = sealed.write_to(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(out.0, 1, "tried once");
    }

    #[test]
    fn a_sealed_window_writes_all_its_pieces_in_order_however_the_writes_split() {
        let mut window = Unsealed::default();
        for i in 0..1500u32 {
            window.frame(&i.to_be_bytes()[..(i % 5) as usize]);
            if i % 2 == 0 {
                window.commit_here();
            }
        }
        let sealed = Sealer::new(Tid::ZERO).seal(window);
        let whole = sealed.to_vec();
        assert_eq!(whole.len(), sealed.len());
        for max in [13, 100, 5_000, usize::MAX / 2] {
            let mut out = Trickle {
                out: Vec::new(),
                max,
                calls: 0,
            };
            sealed.write_to(&mut out).unwrap();
            assert_eq!(out.out, whole, "{max} bytes per write");
        }
    }
}
