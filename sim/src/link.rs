//! One network link's primary-to-secondary direction: the bytes a real primary node handed
//! to the network and the secondary has not received yet — and the stream faults, which
//! are the link's, not the primary's.
//!
//! The primary ([`zrs::primary::Primary`]) transmits whole messages; the link keeps them as
//! a queue of frames (size header included) so a fault can act on "the next message".
//! When the queue runs dry and more is wanted, the link asks its source for more (the host
//! calls [`Primary::writable`](zrs::primary::Primary::writable) and takes the next
//! `Transmit`): that is the flow control a real socket exerts, so a primary never holds
//! more than one send window per connection, however slowly the link delivers.
//!
//! Faults: a byte some way ahead corrupted, the next message truncated (its size header
//! kept, so the framing slips) or sent twice, the next `C` carrying a wrong checksum. A
//! link so damaged is marked, so the heal phase can reset it (nothing else would unstick a
//! secondary waiting for bytes a damaged header promised).

use std::collections::VecDeque;
use std::sync::Arc;

use zrs::protocol::framing::frame;
use zrs::protocol::message::Message;

/// Where a link gets more bytes from: the next `Transmit` of its primary, if any.
pub type Source<'a> = &'a mut dyn FnMut() -> Option<Vec<u8>>;

/// One framed message (size header included): a range of the transmit it came in, which
/// the frames cut from one transmit share (cutting copies no byte; a fault that changes a
/// frame's bytes gives it its own copy first).
#[derive(Clone, Debug)]
struct Frame {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
    /// The message is a `C` (recognised as it enters the link, see [`Link::push`]).
    commit: bool,
}

impl Frame {
    fn owned(bytes: Vec<u8>, commit: bool) -> Frame {
        Frame {
            end: bytes.len(),
            buf: Arc::new(bytes),
            start: 0,
            commit,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    /// The frame's bytes, to change: copied out of the shared transmit first.
    fn bytes_mut(&mut self) -> &mut Vec<u8> {
        if self.start != 0 || self.end != self.buf.len() || Arc::get_mut(&mut self.buf).is_none() {
            *self = Frame::owned(self.bytes().to_vec(), self.commit);
        }
        Arc::get_mut(&mut self.buf).expect("just made the only owner")
    }
}

/// The link of one connection; see the module docs.
#[derive(Debug)]
pub struct Link {
    /// The client port of the connection (a new connection gets a new link).
    pub port: u32,
    queue: VecDeque<Frame>,
    /// Bytes of the front frame already delivered.
    offset: usize,
    /// Transmitted bytes that do not make a whole frame yet.
    partial: Vec<u8>,
    /// The next frame is a store's raw data (it follows an `S`).
    data_next: bool,
    /// Whether a fault damaged what this link carries.
    pub damaged: bool,
    /// The most bytes the link held at once (a real socket buffer's high-water mark).
    pub high_water: usize,
}

/// The pickled prefix of a message of type `kind` as the primary encodes it, up to and
/// including the type letter: `S` and `C` messages are told apart by it without decoding.
fn type_prefix(message: &Message, kind: u8) -> Vec<u8> {
    let bytes = message.encode_fast();
    let at = bytes
        .iter()
        .position(|b| *b == kind)
        .expect("the type letter is in the message");
    bytes[..=at].to_vec()
}

thread_local! {
    static PREFIXES: (Vec<u8>, Vec<u8>) = (
        type_prefix(&Message::Commit { checksum: Some([0; 16]) }, b'C'),
        type_prefix(
            &Message::Store(zrs::protocol::message::RecordHeader {
                oid: zrs::Oid::ZERO,
                serial: zrs::Tid::ZERO,
                version: Vec::new(),
                data_txn: None,
            }),
            b'S',
        ),
    );
}

impl Link {
    pub fn new(port: u32) -> Link {
        Link {
            port,
            queue: VecDeque::new(),
            offset: 0,
            partial: Vec::new(),
            data_next: false,
            damaged: false,
            high_water: 0,
        }
    }

    /// Takes bytes the primary transmitted, cut into frames (without copying them, unless
    /// an earlier transmit ended mid-frame).
    pub fn push(&mut self, bytes: Vec<u8>) {
        let bytes = if self.partial.is_empty() {
            bytes
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(&bytes);
            joined
        };
        let buf = Arc::new(bytes);
        let mut at = 0;
        while buf.len() - at >= 4 {
            let len = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
            let end = at + 4 + len as usize;
            if end > buf.len() {
                break;
            }
            let payload = &buf[at + 4..end];
            let (commit, store) = if self.data_next {
                (false, false)
            } else {
                PREFIXES.with(|(c, s)| (payload.starts_with(c), payload.starts_with(s)))
            };
            self.data_next = store;
            self.queue.push_back(Frame {
                buf: buf.clone(),
                start: at,
                end,
                commit,
            });
            at = end;
        }
        if at < buf.len() {
            self.partial = buf[at..].to_vec();
        }
        self.high_water = self.high_water.max(self.queued());
    }

    /// Asks the source for more; false when it has nothing.
    fn fill(&mut self, source: Source) -> bool {
        match source() {
            Some(bytes) => {
                self.push(bytes);
                true
            }
            None => false,
        }
    }

    /// Undelivered bytes held now.
    pub fn queued(&self) -> usize {
        self.queue.iter().map(Frame::len).sum::<usize>() - self.offset
    }

    /// Whether the link holds nothing undelivered.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a frame is there to take, asking the source as needed.
    pub fn ready(&mut self, source: Source) -> bool {
        while self.queue.is_empty() {
            if !self.fill(source) {
                return false;
            }
        }
        true
    }

    /// Takes up to `limit` bytes (all there is, if `None`) for delivery, asking the source
    /// for more as the queue runs dry.
    pub fn take(&mut self, limit: Option<usize>, source: Source) -> Vec<u8> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(self.queued()));
        while out.len() < limit {
            if self.queue.is_empty() && !self.fill(source) {
                break;
            }
            let Some(front) = self.queue.front() else {
                // A partial frame only: wait for the rest.
                continue;
            };
            let rest = &front.bytes()[self.offset..];
            let n = rest.len().min(limit - out.len());
            out.extend_from_slice(&rest[..n]);
            self.offset += n;
            if self.offset == front.len() {
                self.queue.pop_front();
                self.offset = 0;
            }
        }
        out
    }

    /// Index in the queue of the next frame not yet started, asking for more as needed.
    fn next_unstarted(&mut self, source: Source) -> Option<usize> {
        let i = usize::from(self.offset > 0);
        while self.queue.len() <= i {
            if !self.fill(source) {
                return None;
            }
        }
        Some(i)
    }

    /// Flips bits of the byte `offset` bytes ahead; false when the stream is shorter.
    pub fn corrupt(&mut self, offset: usize, mask: u8, source: Source) -> bool {
        while self.queued() <= offset {
            if !self.fill(source) {
                return false;
            }
        }
        let mut at = offset + self.offset;
        for f in self.queue.iter_mut() {
            if at < f.len() {
                f.bytes_mut()[at] ^= mask;
                self.damaged = true;
                return true;
            }
            at -= f.len();
        }
        false
    }

    /// The next message loses its last `n` bytes (at least one); its header stays.
    pub fn truncate(&mut self, n: usize, source: Source) -> bool {
        let Some(i) = self.next_unstarted(source) else {
            return false;
        };
        let f = &mut self.queue[i];
        let len = f.len();
        let keep = match len.checked_sub(4) {
            // Nothing to cut from an empty message: its header goes instead.
            Some(0) => 4 - n.clamp(1, 4),
            Some(payload) => len - n.clamp(1, payload),
            // What an earlier truncate left of a header: it loses `n` bytes, or none if
            // fewer are left.
            None => len.checked_sub(n.max(1)).unwrap_or(len),
        };
        // Cutting the frame's range leaves the shared transmit as it is.
        f.end = f.start + keep.min(len);
        // A cut `C` is no longer one a later `bad_checksum` can re-encode (truncated
        // again and again, not even its header is left: a campaign's panic).
        f.commit = false;
        self.damaged = true;
        true
    }

    /// The next message is sent twice.
    pub fn duplicate(&mut self, source: Source) -> bool {
        let Some(i) = self.next_unstarted(source) else {
            return false;
        };
        let copy = self.queue[i].clone();
        self.queue.insert(i + 1, copy);
        self.damaged = true;
        true
    }

    /// The next `C` carries a wrong checksum.
    pub fn bad_checksum(&mut self, source: Source) -> bool {
        let Some(start) = self.next_unstarted(source) else {
            return false;
        };
        let mut i = start;
        loop {
            while self.queue.len() <= i {
                if !self.fill(source) {
                    return false;
                }
            }
            if self.queue[i].commit {
                break;
            }
            i += 1;
        }
        // Decode the `C` the primary sent; re-encode it with a different digest.
        let Some(payload) = self.queue[i].bytes().get(4..) else {
            return false;
        };
        let Ok(Message::Commit {
            checksum: Some(mut digest),
        }) = Message::decode(payload)
        else {
            return false;
        };
        digest[0] ^= 0xff;
        let wrong = Message::Commit {
            checksum: Some(digest),
        }
        .encode_fast();
        self.queue[i] = Frame::owned(frame(&wrong), true);
        self.damaged = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zrs::protocol::framing::FrameDecoder;
    use zrs::protocol::message::{RecordHeader, TransactionHeader};
    use zrs::protocol::StreamEncoder;
    use zrs::{Oid, Tid};

    /// Two transactions as a primary transmits them, one `Transmit` each.
    fn transmits() -> Vec<Vec<u8>> {
        let mut encoder = StreamEncoder::new(Tid::ZERO);
        (1..=2u64)
            .map(|n| {
                let mut out = Vec::new();
                let header = TransactionHeader {
                    tid: Tid::from_u64(n),
                    status: b' ',
                    user: Vec::new(),
                    description: Vec::new(),
                    extension: zrs::pickle::Value::Dict(Vec::new()),
                };
                encoder.transaction_header(&header, &mut out);
                let record = RecordHeader {
                    oid: Oid::from_u64(n),
                    serial: Tid::from_u64(n),
                    version: Vec::new(),
                    data_txn: None,
                };
                // Data that starts like a `C` must not be taken for one.
                let data = PREFIXES.with(|(c, _)| c.clone());
                encoder.store(&record, Some(&data), &mut out);
                encoder.commit(&mut out);
                out
            })
            .collect()
    }

    fn source(mut t: Vec<Vec<u8>>) -> impl FnMut() -> Option<Vec<u8>> {
        t.reverse();
        move || t.pop()
    }

    fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut d = FrameDecoder::new(1 << 20);
        d.feed(bytes);
        std::iter::from_fn(|| d.next_frame().unwrap()).collect()
    }

    #[test]
    fn deliveries_cut_anywhere_add_up_to_the_stream() {
        let whole = transmits().concat();
        let mut s = source(transmits());
        let mut link = Link::new(1);
        let mut parts = Vec::new();
        for n in [1, 3, 7, 100, 5] {
            parts.extend(link.take(Some(n), &mut s));
        }
        parts.extend(link.take(None, &mut s));
        assert_eq!(parts, whole);
        assert!(link.is_empty());
        // It asked for the second transaction only once the first was delivered.
        assert!(link.high_water <= transmits()[0].len().max(transmits()[1].len()));
    }

    /// A truncate after one that took a message's header too cuts what is left of it, or
    /// nothing when less is left than it would cut (a swarm campaign truncates that often).
    #[test]
    fn truncating_what_is_left_of_a_header_cuts_what_is_there_or_nothing() {
        let mut s = source(vec![[frame(b""), frame(b"abc")].concat()]);
        let mut link = Link::new(1);
        assert!(link.truncate(3, &mut s));
        assert_eq!(link.queued(), 1 + 7);
        assert!(link.truncate(2, &mut s));
        assert_eq!(link.queued(), 1 + 7, "one byte left: two are not cut");
        assert!(link.truncate(1, &mut s));
        assert!(link.truncate(1, &mut s));
        assert_eq!(link.take(None, &mut s), frame(b"abc"));
        assert!(link.is_empty());
    }

    #[test]
    fn faults_damage_the_next_bytes_and_messages() {
        let whole = transmits().concat();

        let mut link = Link::new(1);
        let mut s = source(transmits());
        assert!(link.corrupt(10, 0x40, &mut s));
        let damaged = link.take(None, &mut s);
        assert_eq!(damaged[10], whole[10] ^ 0x40);
        assert!(link.damaged);

        let mut link = Link::new(1);
        let mut s = source(transmits());
        link.take(Some(2), &mut s);
        assert!(link.truncate(3, &mut s));
        let rest = link.take(None, &mut s);
        // The first message (the T) lost 3 bytes; its header still says the old size.
        assert_eq!(rest.len(), whole.len() - 2 - 3);
        assert_eq!(&rest[..2], &whole[2..4]);

        let mut link = Link::new(1);
        let mut s = source(transmits());
        assert!(link.duplicate(&mut s));
        let doubled = messages(&link.take(None, &mut s));
        assert_eq!(doubled[0], doubled[1]);

        let mut link = Link::new(1);
        let mut s = source(transmits());
        assert!(link.bad_checksum(&mut s));
        let out = messages(&link.take(None, &mut s));
        let good = messages(&whole);
        assert_eq!(out.len(), good.len());
        // T, S, data (which looks like a C but is not one), C: the fourth message.
        assert_eq!(out[..3], good[..3]);
        assert_ne!(out[3], good[3], "the first C differs");
        assert_eq!(out[4..], good[4..]);

        let mut link = Link::new(1);
        let mut none = source(Vec::new());
        assert!(!link.corrupt(0, 1, &mut none), "nothing to damage");
        assert!(!link.duplicate(&mut none));
        assert!(!link.bad_checksum(&mut none));
    }
}
