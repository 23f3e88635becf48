//! The messages a primary sends after the handshake.
//!
//! Each is a pickled `(type, args)` tuple; `S` and `B` are followed by raw (unpickled)
//! messages: one data message, and for `B` then `blocks` blob chunks.

use crate::pickle::Value;
use crate::tid::{Oid, Tid};

/// `('T', (tid, status, user, description, extension))`: a transaction begins.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionHeader {
    pub tid: Tid,
    /// `b' '` normally, `b'p'` for a packed transaction.
    pub status: u8,
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    /// The decoded extension dict (a [`Value::Dict`]).
    pub extension: Value,
}

/// `(oid, serial, version, data_txn)` of an `S` or `B` message.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordHeader {
    pub oid: Oid,
    pub serial: Tid,
    /// Always empty in practice (ZODB versions are gone); kept as sent.
    pub version: Vec<u8>,
    /// Where the primary's record is a backpointer: the transaction that holds the data.
    pub data_txn: Option<Tid>,
}

/// A pickled ZRS message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `T`
    Transaction(TransactionHeader),
    /// `S`, followed by one raw data message (empty = no data).
    Store(RecordHeader),
    /// `B`, followed by one raw data message and `blocks` raw blob chunks.
    Blob { record: RecordHeader, blocks: u64 },
    /// `C`: the md5 of the stream before it, or `None` for the legacy `('C', ())`.
    Commit { checksum: Option<[u8; 16]> },
}
