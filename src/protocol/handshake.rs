//! The handshake: what a secondary sends first, and how a primary reads it.
//!
//! A secondary opens every connection with two sized messages: the protocol id
//! ([`ZRS_2_0`], or [`ZRS_2_1`] when it keeps blobs) and the 8-byte id of the last
//! transaction it holds (zeros when it holds none). After that it sends only empty
//! messages, as keep-alives. [`hello`] writes the two messages; [`HandshakeReader`] is the
//! primary's side, checking them as zc.zrs's `PrimaryProtocol.messageReceived` does. Its
//! errors print as zc.zrs logs them (`Invalid protocol b'Hi'`, `Invalid transaction id,
//! b'xxxxxxx'`, `Too many messages`). Messages longer than 8 bytes never get here: the
//! primary's framing refuses them ([`PRIMARY_LIMIT`](super::framing::PRIMARY_LIMIT)).

use super::framing::frame;
use super::{ZRS_2_0, ZRS_2_1};
use crate::repr::py3_bytes_repr;
use crate::tid::Tid;

/// The secondary's two opening messages, framed: the protocol id, then the start tid.
pub fn hello(protocol: &[u8], start: Tid) -> [Vec<u8>; 2] {
    [frame(protocol), frame(start.as_bytes())]
}

/// What a message the primary received means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The protocol id, accepted.
    Protocol(&'static [u8]),
    /// The start tid: stream every transaction after it.
    Start(Tid),
    /// An empty message after the start: ignored.
    KeepAlive,
}

/// A handshake the primary refuses; printed as zc.zrs logs it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("Invalid protocol {}", py3_bytes_repr(.0))]
    UnknownProtocol(Vec<u8>),
    /// `zrs2.0` (no blobs) asked of a primary whose storage keeps blobs.
    #[error("Invalid protocol {}. Require >= 2.1", py3_bytes_repr(.0))]
    BlobsRequired(Vec<u8>),
    #[error("Invalid transaction id, {}", py3_bytes_repr(.0))]
    BadTid(Vec<u8>),
    /// A non-empty message after the start tid.
    #[error("Too many messages")]
    TooManyMessages,
}

/// The primary's reading of one connection's handshake.
#[derive(Clone, Debug, Default)]
pub struct HandshakeReader {
    protocol: Option<&'static [u8]>,
    start: Option<Tid>,
    /// The storage keeps blobs: `zrs2.0` is refused.
    blobs: bool,
}

impl HandshakeReader {
    /// A reader for a primary whose storage keeps blobs (`blobs`) or not.
    pub fn new(blobs: bool) -> HandshakeReader {
        HandshakeReader {
            blobs,
            ..HandshakeReader::default()
        }
    }

    /// The protocol id accepted, once received.
    pub fn protocol(&self) -> Option<&'static [u8]> {
        self.protocol
    }

    /// The start tid, once received.
    pub fn start(&self) -> Option<Tid> {
        self.start
    }

    /// Reads the next message from the secondary. After an error the connection is to be
    /// closed: the reader is not to be fed again.
    pub fn receive(&mut self, message: &[u8]) -> Result<Received, HandshakeError> {
        if self.protocol.is_none() {
            let protocol = match message {
                m if m == ZRS_2_0 && !self.blobs => ZRS_2_0,
                m if m == ZRS_2_0 => return Err(HandshakeError::BlobsRequired(m.to_vec())),
                m if m == ZRS_2_1 => ZRS_2_1,
                m => return Err(HandshakeError::UnknownProtocol(m.to_vec())),
            };
            self.protocol = Some(protocol);
            return Ok(Received::Protocol(protocol));
        }
        if self.start.is_some() {
            return if message.is_empty() {
                Ok(Received::KeepAlive)
            } else {
                Err(HandshakeError::TooManyMessages)
            };
        }
        let start =
            Tid::from_slice(message).ok_or_else(|| HandshakeError::BadTid(message.to_vec()))?;
        self.start = Some(start);
        Ok(Received::Start(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_secondary_sends() {
        let [p, t] = hello(ZRS_2_0, Tid::from_u64(5));
        assert_eq!(p, b"\0\0\0\x06zrs2.0");
        assert_eq!(&t[..4], b"\0\0\0\x08");
        let mut r = HandshakeReader::new(false);
        assert_eq!(r.protocol(), None);
        assert_eq!(r.receive(&p[4..]), Ok(Received::Protocol(ZRS_2_0)));
        assert_eq!(r.protocol(), Some(ZRS_2_0));
        assert_eq!(r.start(), None);
        assert_eq!(r.receive(&t[4..]), Ok(Received::Start(Tid::from_u64(5))));
        assert_eq!(r.receive(b""), Ok(Received::KeepAlive));
        assert_eq!(r.start(), Some(Tid::from_u64(5)));
        assert_eq!(r.receive(b"Hi"), Err(HandshakeError::TooManyMessages));
    }

    #[test]
    fn refusals_print_as_zc_zrs_logs_them() {
        let e = HandshakeReader::new(false).receive(b"Hi").unwrap_err();
        assert_eq!(e.to_string(), "Invalid protocol b'Hi'");
        let e = HandshakeReader::new(true).receive(b"zrs2.0").unwrap_err();
        assert_eq!(e.to_string(), "Invalid protocol b'zrs2.0'. Require >= 2.1");
        let mut r = HandshakeReader::new(false);
        r.receive(b"zrs2.1").unwrap();
        let e = r.receive(b"xxxxxxx").unwrap_err();
        assert_eq!(e.to_string(), "Invalid transaction id, b'xxxxxxx'");
        assert_eq!(
            HandshakeError::TooManyMessages.to_string(),
            "Too many messages"
        );
    }
}
