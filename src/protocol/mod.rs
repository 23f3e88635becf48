//! The ZRS wire protocol: framing, messages, the running checksum, and the two things
//! both ends must agree on byte for byte — the [`handshake`] and the primary's stream
//! [`encoder`]. Everything that speaks ZRS (the secondary, the primary, the simulator's
//! scripted primary, the tests) goes through these; nothing encodes a stream or a
//! handshake by hand.

pub mod checksum;
pub mod encoder;
pub mod framing;
pub mod handshake;
pub mod message;
pub mod seal;

pub use encoder::{FrameSink, StreamEncoder};
pub use handshake::{HandshakeError, HandshakeReader};
pub use message::{Message, MessageError, RecordHeader, TransactionHeader};
pub use seal::{Sealer, Unsealed};

/// The protocol id a secondary without blobs sends first.
pub const ZRS_2_0: &[u8] = b"zrs2.0";
/// The protocol id a secondary that keeps blobs sends first.
pub const ZRS_2_1: &[u8] = b"zrs2.1";
