//! The ZRS wire protocol: framing, messages, and the running checksum.

pub mod checksum;
pub mod framing;
pub mod message;

pub use message::{Message, MessageError, RecordHeader, TransactionHeader};

/// The protocol id a secondary without blobs sends first.
pub const ZRS_2_0: &[u8] = b"zrs2.0";
/// The protocol id a secondary that keeps blobs sends first.
pub const ZRS_2_1: &[u8] = b"zrs2.1";
