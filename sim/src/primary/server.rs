//! The protocol-following primary: what zc.zrs's primary sends on one connection.
//!
//! After the secondary's handshake (protocol id, start tid) it starts its md5 at the start
//! tid and owes the secondary every transaction after it: `T`, then `S` + data per record,
//! then `C` with the running md5 — each message pickled as [`Message::encode_fast`] writes
//! it and framed. The stream is encoded lazily, a transaction at a time, into a queue of
//! frames that the world delivers as much of as a `serve` step asks.
//!
//! Faults act on that queue: a corrupted byte some way ahead, the next message truncated
//! (its size header kept, so the framing slips) or sent twice, the next `C` with a wrong
//! checksum. A stream so damaged is marked, so the heal phase can reset its connection
//! (nothing else would ever unstick a secondary waiting for bytes a damaged header
//! promised).

use std::collections::VecDeque;

use zrs::protocol::framing::frame;
use zrs::protocol::handshake::HandshakeReader;
use zrs::protocol::message::{Message, RecordHeader, TransactionHeader};
use zrs::protocol::{FrameSink, StreamEncoder};
use zrs::Tid;

use super::database::Transaction;

/// One framed message (size header included).
#[derive(Clone, Debug)]
struct Frame {
    bytes: Vec<u8>,
    commit: bool,
}

/// The queue as the encoder's sink: one frame per message.
struct Queue<'a>(&'a mut VecDeque<Frame>);

impl FrameSink for Queue<'_> {
    fn frame(&mut self, payload: &[u8]) {
        self.0.push_back(Frame {
            bytes: frame(payload),
            commit: false,
        });
    }
}

/// The primary's side of one connection, after the handshake.
#[derive(Debug)]
pub struct Server {
    /// The client port of the connection served (a new connection starts over).
    pub port: u32,
    /// The start tid the secondary sent.
    pub start: Tid,
    /// The handshake read, which judges what the secondary sends next (keep-alives only).
    pub handshake: HandshakeReader,
    encoder: StreamEncoder,
    /// Index of the next transaction to encode.
    next: usize,
    queue: VecDeque<Frame>,
    /// Bytes of the front frame already delivered.
    offset: usize,
    /// Whether a fault damaged what this connection carries.
    pub damaged: bool,
}

impl Server {
    /// Starts serving after a complete `handshake`: everything in `history` later than
    /// its start tid is owed.
    ///
    /// # Panics
    /// If the handshake has no start tid yet.
    pub fn new(port: u32, handshake: HandshakeReader, history: &[Transaction]) -> Server {
        let start = handshake.start().expect("a complete handshake");
        Server {
            port,
            start,
            handshake,
            encoder: StreamEncoder::new(start),
            next: history.partition_point(|t| t.tid <= start),
            queue: VecDeque::new(),
            offset: 0,
            damaged: false,
        }
    }

    /// Whether everything in `history` has been delivered.
    pub fn done(&self, history: &[Transaction]) -> bool {
        self.queue.is_empty() && self.next >= history.len()
    }

    /// Encodes the next transaction; false when there is none.
    fn encode_next(&mut self, history: &[Transaction]) -> bool {
        let Some(t) = history.get(self.next) else {
            return false;
        };
        self.next += 1;
        let mut queue = Queue(&mut self.queue);
        let header = TransactionHeader {
            tid: t.tid,
            status: t.status,
            user: t.user.clone(),
            description: t.description.clone(),
            extension: t.extension.clone(),
        };
        self.encoder.transaction_header(&header, &mut queue);
        for record in &t.records {
            let store = RecordHeader {
                oid: record.oid,
                serial: t.tid,
                version: Vec::new(),
                data_txn: record.data_txn,
            };
            self.encoder
                .store(&store, record.data.as_deref(), &mut queue);
        }
        self.encoder.commit(&mut queue);
        self.queue.back_mut().expect("the C").commit = true;
        true
    }

    /// Undelivered bytes queued now.
    fn queued(&self) -> usize {
        self.queue.iter().map(|f| f.bytes.len()).sum::<usize>() - self.offset
    }

    /// Takes up to `limit` bytes (all there is, if `None`) of the stream for delivery.
    pub fn take(&mut self, limit: Option<usize>, history: &[Transaction]) -> Vec<u8> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < limit {
            if self.queue.is_empty() && !self.encode_next(history) {
                break;
            }
            let front = &self.queue[0];
            let rest = &front.bytes[self.offset..];
            let n = rest.len().min(limit - out.len());
            out.extend_from_slice(&rest[..n]);
            self.offset += n;
            if self.offset == front.bytes.len() {
                self.queue.pop_front();
                self.offset = 0;
            }
        }
        out
    }

    /// Index in the queue of the next frame not yet started, encoding as needed.
    fn next_unstarted(&mut self, history: &[Transaction]) -> Option<usize> {
        let i = usize::from(self.offset > 0);
        while self.queue.len() <= i {
            if !self.encode_next(history) {
                return None;
            }
        }
        Some(i)
    }

    /// Flips bits of the byte `offset` bytes ahead; false when the stream is shorter.
    pub fn corrupt(&mut self, offset: usize, mask: u8, history: &[Transaction]) -> bool {
        let mut queued = self.queued();
        while queued <= offset {
            let before = self.queue.len();
            if !self.encode_next(history) {
                return false;
            }
            queued += self
                .queue
                .iter()
                .skip(before)
                .map(|f| f.bytes.len())
                .sum::<usize>();
        }
        let mut at = offset + self.offset;
        for f in self.queue.iter_mut() {
            if at < f.bytes.len() {
                f.bytes[at] ^= mask;
                self.damaged = true;
                return true;
            }
            at -= f.bytes.len();
        }
        false
    }

    /// The next message loses its last `n` bytes (at least one); its header stays.
    pub fn truncate(&mut self, n: usize, history: &[Transaction]) -> bool {
        let Some(i) = self.next_unstarted(history) else {
            return false;
        };
        let f = &mut self.queue[i];
        let payload = f.bytes.len() - 4;
        if payload == 0 {
            // Nothing to cut from an empty message: its header goes instead.
            f.bytes.truncate(4 - n.clamp(1, 4));
        } else {
            f.bytes.truncate(4 + payload - n.clamp(1, payload));
        }
        self.damaged = true;
        true
    }

    /// The next message is sent twice.
    pub fn duplicate(&mut self, history: &[Transaction]) -> bool {
        let Some(i) = self.next_unstarted(history) else {
            return false;
        };
        let copy = self.queue[i].clone();
        self.queue.insert(i + 1, copy);
        self.damaged = true;
        true
    }

    /// The next `C` carries a wrong checksum.
    pub fn bad_checksum(&mut self, history: &[Transaction]) -> bool {
        let Some(start) = self.next_unstarted(history) else {
            return false;
        };
        let mut i = start;
        loop {
            while self.queue.len() <= i {
                if !self.encode_next(history) {
                    return false;
                }
            }
            if self.queue[i].commit {
                break;
            }
            i += 1;
        }
        // Decode the `C` the primary meant to send; re-encode it with a different digest.
        let payload = &self.queue[i].bytes[4..];
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
        self.queue[i].bytes = frame(&wrong);
        self.damaged = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primary::{Change, Database, Meta};
    use zrs::protocol::checksum::StreamChecksum;
    use zrs::protocol::framing::FrameDecoder;

    /// A handshake from `start`.
    fn from(start: Tid) -> HandshakeReader {
        let mut h = HandshakeReader::new(false);
        h.receive(zrs::protocol::ZRS_2_0).unwrap();
        h.receive(start.as_bytes()).unwrap();
        h
    }

    fn history() -> Database {
        let mut db = Database::new();
        db.commit(
            &[Change::AddMapping {
                parent: vec![],
                key: "x".into(),
            }],
            &Meta::default(),
        )
        .unwrap();
        db
    }

    fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut d = FrameDecoder::new(1 << 20);
        d.feed(bytes);
        std::iter::from_fn(|| d.next_frame().unwrap()).collect()
    }

    #[test]
    fn streams_what_follows_the_start_tid_like_zc_zrs() {
        let db = history();
        let h = db.transactions();
        let mut s = Server::new(47245, from(h[0].tid), h);
        let out = messages(&s.take(None, h));
        // T, then S + data for the root and x, then C.
        assert_eq!(out.len(), 6);
        assert!(
            matches!(Message::decode(&out[0]), Ok(Message::Transaction(t)) if t.tid == h[1].tid)
        );
        let mut md5 = StreamChecksum::new(h[0].tid);
        for m in &out[..5] {
            md5.update(m);
        }
        assert!(matches!(
            Message::decode(&out[5]),
            Ok(Message::Commit { checksum: Some(c) }) if c == md5.digest()
        ));
        assert!(s.done(h));
        // From the last tid there is nothing to send.
        let mut s = Server::new(47245, from(h[1].tid), h);
        assert!(s.take(None, h).is_empty());
    }

    #[test]
    fn deliveries_cut_anywhere_add_up_to_the_stream() {
        let db = history();
        let h = db.transactions();
        let whole = Server::new(1, from(Tid::ZERO), h).take(None, h);
        let mut s = Server::new(1, from(Tid::ZERO), h);
        let mut parts = Vec::new();
        for n in [1, 3, 7, 100, 5] {
            parts.extend(s.take(Some(n), h));
        }
        parts.extend(s.take(None, h));
        assert_eq!(parts, whole);
    }

    #[test]
    fn faults_damage_the_next_bytes_and_messages() {
        let db = history();
        let h = db.transactions();
        let whole = Server::new(1, from(Tid::ZERO), h).take(None, h);

        let mut s = Server::new(1, from(Tid::ZERO), h);
        assert!(s.corrupt(10, 0x40, h));
        let damaged = s.take(None, h);
        assert_eq!(damaged[10], whole[10] ^ 0x40);
        assert!(s.damaged);

        let mut s = Server::new(1, from(Tid::ZERO), h);
        s.take(Some(2), h);
        assert!(s.truncate(3, h));
        let rest = s.take(None, h);
        // The first message (the root's T) lost 3 bytes; its header still says the old size.
        assert_eq!(rest.len(), whole.len() - 2 - 3);
        assert_eq!(&rest[..2], &whole[2..4]);

        let mut s = Server::new(1, from(Tid::ZERO), h);
        assert!(s.duplicate(h));
        let doubled = messages(&s.take(None, h));
        assert_eq!(doubled[0], doubled[1]);

        let mut s = Server::new(1, from(Tid::ZERO), h);
        assert!(s.bad_checksum(h));
        let out = messages(&s.take(None, h));
        let good = messages(&whole);
        assert_eq!(out.len(), good.len());
        assert_ne!(out[3], good[3], "the first C differs");
        assert_eq!(out[4..], good[4..]);

        let mut s = Server::new(1, from(h[1].tid), h);
        assert!(!s.corrupt(0, 1, h), "nothing to damage");
        assert!(!s.duplicate(h));
    }
}
