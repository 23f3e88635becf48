//! The steps of a scenario: what each line of a `.scn` file asks for.
//!
//! `scenarios/README.md` documents each with an example.

use std::path::PathBuf;
use std::time::Duration;

use zrs::pickle::Value;
use zrs::secondary::Address;

use crate::network::Chunking;
use crate::primary::{Change, Meta};

/// Which storage the secondary replicates into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// A FileStorage (`Data.fs`) in the run's own directory, or at `path`.
    File { path: Option<PathBuf> },
    /// A MemoryStorage: fast, gone at the end of the run.
    Memory,
}

/// `open`'s options.
#[derive(Clone, Debug, PartialEq)]
pub struct Open {
    /// The storage's name (`Data.fs`): its file name in the run's directory.
    pub name: String,
    pub address: Option<Address>,
    pub keep_alive: Duration,
    pub reconnect: Duration,
    pub check_checksums: bool,
    pub storage: StorageKind,
    pub frame_limit: Option<u32>,
}

/// A value in a step: a literal, a variable, or something read from the run.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    Var(String),
    /// The next message the secondary wrote.
    Read,
    /// `trans.tid`: the tid of the last transaction whose `C` was sent.
    TransTid,
    /// `lastTransaction`: the last tid the secondary's storage holds.
    LastTransaction,
}

/// What part of the primary's transactions to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// The next transaction, whole: `T`, `S` + data per record, `C`.
    Transaction,
    /// Every transaction not sent yet.
    All,
    /// The next transaction's `T` (starting it over if it was begun before).
    T,
    /// The current transaction's next record: `S` + data.
    S,
    /// The current transaction's `C`, with the connection's running md5.
    C,
    /// The current transaction's `C` as old primaries send it: `('C', ())`.
    LegacyC,
    /// A pickled message given as a literal, at a pickle protocol.
    Message { value: Value, protocol: u8 },
    /// A raw (unpickled) message: framed and hashed, not pickled.
    Raw(Vec<u8>),
    /// Bytes written as they are: no framing, no md5.
    Bytes(Vec<u8>),
    /// A captured stream (what a primary sent after the handshake), from a file.
    File(PathBuf),
}

/// One step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Open(Open),
    Close,
    Accept,
    Reject,
    /// The connection fails (reason `'failed'`).
    Fail,
    /// The primary closes the connection cleanly.
    Drop,
    /// Prints the value (`read`, a variable, a literal).
    Print(Expr),
    /// Prints `True` or `False`.
    Compare {
        left: Expr,
        right: Expr,
        equal: bool,
    },
    Let {
        name: String,
        value: Expr,
    },
    InitMd5(Expr),
    Later,
    DoLater,
    /// Moves virtual time, firing what falls due in due order.
    Advance(Duration),
    Clients,
    Commit {
        changes: Vec<Change>,
        meta: Meta,
    },
    Undo,
    Send(Outgoing),
    Chunking(Chunking),
    Root,
}
