//! The steps of a scenario: what each line of a `.scn` file asks for.
//!
//! `scenarios/README.md` documents each with an example.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zrs::pickle::Value;
use zrs::secondary::Address;

use super::literal::repr;
use crate::network::Chunking;
use crate::workload::{Change, Meta};
use crate::world::Upstream;

/// Which storage the secondary replicates into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// A FileStorage (`Data.fs`) in the run's own directory, or at `path`.
    File { path: Option<PathBuf> },
    /// A MemoryStorage: fast, gone at the end of the run.
    Memory,
    /// A FileStorage on a simulated disk that loses or tears unsynced writes at a crash;
    /// `batch`: fsync every N transactions instead of every one.
    Disk { batch: Option<u32> },
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
    /// Keep blobs (a blob directory beside the storage; the secondary speaks zrs2.1).
    pub blobs: bool,
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

/// What a scripted client of the primary node does (the mirror of `send …` / `read`: a
/// test playing a secondary by hand against the real primary, as zc.zrs's `primary.test`).
#[derive(Clone, Debug, PartialEq)]
pub enum ClientAction {
    /// Connects to the primary node (the next client port).
    Connect,
    /// Sends one message (framed): the protocol, a start tid, a keep-alive, or anything.
    Send(Vec<u8>),
    /// Reads the primary's next message: unpickled and printed (`raw`: printed as bytes).
    Read { raw: bool },
    /// Prints whether a whole message from the primary is waiting.
    HasData,
    /// Closes the connection cleanly from the client's side.
    Close,
}

/// One step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A scripted client of the primary node; `index` names it (1: the first connected),
    /// `None` the last connected.
    Client {
        index: Option<usize>,
        action: ClientAction,
    },
    /// The primary node's `close`: stop listening, send what is committed, then close.
    PrimaryClose,
    /// Remembers the primary's history as it is now: what a standby that stops
    /// replicating here would hold.
    PrimaryCheckpoint,
    /// Fails over to a node lagging behind: the primary's process is lost, and a new one
    /// serves the history of the last checkpoint; the workload goes on from there.
    PrimaryFailover,
    Open(Open),
    Close,
    /// Gives the secondary its primary's address (zc.zrs's `setReplicationAddress`).
    Address(Address),
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
    /// Undoes the N-th last transaction (1: the last).
    Undo(usize),
    Send(Outgoing),
    Chunking(Chunking),
    Root,
    /// Prints the blob file of the object with this oid at its current serial, in the
    /// secondary's storage (or ZODB's `POSKeyError` when it has none).
    Blob(Expr),
    /// Prints every blob file in the secondary's blob directory, read from the directory.
    BlobFiles,
    /// From here on, the oracles are checked after every step (and an inapplicable step is
    /// skipped with a note instead of stopping the run).
    Oracles,
    /// The primary's tids come from the virtual clock from here on.
    VirtualClock,
    /// The primary's storage keeps a blob directory (it then serves `zrs2.1` only).
    PrimaryBlobs,
    /// The protocol-following primary: reads the handshake, then delivers up to N bytes
    /// (all, if none) of the stream it owes the secondary.
    Serve(Option<usize>),
    /// Flips bits (`mask`) of the byte `offset` bytes ahead in the primary's stream.
    Corrupt {
        offset: usize,
        mask: u8,
    },
    /// The next message the primary starts loses its last N bytes (its size header stays).
    Truncate(usize),
    /// The next message the primary starts is sent twice.
    Duplicate,
    /// The next `C` the primary sends carries a wrong checksum.
    BadChecksum,
    /// The secondary's process crashes; a simulated disk keeps the first `keep` unsynced
    /// writes and `tear` bytes of the next.
    Crash {
        keep: usize,
        tear: usize,
    },
    /// Opens a new secondary, as the last one was opened, over its storage (after `close`
    /// or `crash`).
    Restart,
    /// The simulated disk fails an operation (`disk fail …`), or works again (`disk heal`).
    Disk(Option<zrs::storage::file::faulty::DiskFault>),
    /// The primary restarts: the connection is lost.
    PrimaryRestart,
    /// The primary is unreachable for a while: the connection is lost, attempts rejected.
    Outage(Duration),
    /// The faults stop: the primary accepts and serves everything, time passes until the
    /// secondary has caught up — or the bound passes, a liveness violation.
    Heal(Option<Duration>),
    /// `node s<number> from UPSTREAM …`: adds a secondary node replicating from the
    /// primary or from another secondary (`open`'s options; its address defaults to the
    /// upstream's).
    Node {
        number: usize,
        upstream: Upstream,
        open: Open,
    },
    /// `s<number>: STEP`: a step addressed to a node (`s1`: the first secondary, as
    /// without the prefix).
    At {
        number: usize,
        step: Box<Step>,
    },
}

impl Step {
    /// Whether the step can be addressed to a node beyond the first (`s2: …`).
    pub fn addressable(&self) -> bool {
        matches!(
            self,
            Step::Accept
                | Step::Reject
                | Step::Fail
                | Step::Drop
                | Step::Serve(_)
                | Step::Corrupt { .. }
                | Step::Truncate(_)
                | Step::Duplicate
                | Step::BadChecksum
                | Step::Close
                | Step::Crash { .. }
                | Step::Restart
                | Step::Root
                | Step::Print(Expr::LastTransaction)
        )
    }
}

/// Seconds as scenario files write them: `60`, `0.5`, `12.345` — exact to the nanosecond,
/// so a generated step reads back as the same duration.
pub fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return d.as_secs().to_string();
    }
    let frac = format!("{nanos:09}");
    format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
}

fn path_text(parent: &[String], key: &str) -> String {
    let mut out = String::new();
    for p in parent {
        out.push_str(p);
        out.push('.');
    }
    out.push_str(key);
    out
}

/// Text as a Python 2 `u'…'` literal (code points escaped), or bare when it is a plain name.
fn text_literal(bytes: &[u8]) -> String {
    let plain = !bytes.is_empty()
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if plain {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        super::literal::py2_unicode_repr(&String::from_utf8_lossy(bytes))
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddMapping { parent, key } => write!(f, "+{}", path_text(parent, key)),
            Change::AddMappings {
                parent,
                prefix,
                count,
            } => write!(f, "+{}*{count}", path_text(parent, prefix)),
            // The payload's seed is the change's position: see `primary commit`.
            Change::SetBytes {
                parent, key, len, ..
            } => write!(f, "{}={len}", path_text(parent, key)),
            Change::SetBlob {
                parent,
                key,
                literal: Some(bytes),
                ..
            } => write!(
                f,
                "{}=blob:{}",
                path_text(parent, key),
                repr(&Value::Bytes(bytes.clone()))
            ),
            Change::SetBlob {
                parent, key, len, ..
            } => write!(f, "{}=blob:{len}", path_text(parent, key)),
            Change::Remove { parent, key } => write!(f, "-{}", path_text(parent, key)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => f.write_str(&repr(v)),
            Expr::Var(name) => f.write_str(name),
            Expr::Read => f.write_str("read"),
            Expr::TransTid => f.write_str("trans.tid"),
            Expr::LastTransaction => f.write_str("lastTransaction"),
        }
    }
}

impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "open {}", self.name)?;
        match &self.address {
            Some(a) => write!(f, " {a}")?,
            None => f.write_str(" None")?,
        }
        if !self.keep_alive.is_zero() {
            write!(f, " keep_alive={}", seconds(self.keep_alive))?;
        }
        if self.reconnect != Duration::from_secs(60) {
            write!(f, " reconnect={}", seconds(self.reconnect))?;
        }
        if !self.check_checksums {
            f.write_str(" checksums=off")?;
        }
        match &self.storage {
            StorageKind::File { path: None } => {}
            StorageKind::File { path: Some(p) } => write!(f, " path={}", p.display())?,
            StorageKind::Memory => f.write_str(" storage=memory")?,
            StorageKind::Disk { batch } => {
                f.write_str(" storage=disk")?;
                if let Some(n) = batch {
                    write!(f, " batch={n}")?;
                }
            }
        }
        if let Some(limit) = self.frame_limit {
            write!(f, " limit={limit}")?;
        }
        if self.blobs {
            f.write_str(" blobs=on")?;
        }
        Ok(())
    }
}

impl fmt::Display for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outgoing::Transaction => f.write_str("transaction"),
            Outgoing::All => f.write_str("all"),
            Outgoing::T => f.write_str("T"),
            Outgoing::S => f.write_str("S"),
            Outgoing::C => f.write_str("C"),
            Outgoing::LegacyC => f.write_str("C legacy"),
            Outgoing::Message { value, protocol } if *protocol == 1 => {
                write!(f, "message {}", repr(value))
            }
            Outgoing::Message { value, protocol } => {
                write!(f, "message protocol={protocol} {}", repr(value))
            }
            Outgoing::Raw(b) => write!(f, "raw {}", zrs::repr::py2_bytes_repr(b)),
            Outgoing::Bytes(b) => write!(f, "bytes {}", zrs::repr::py2_bytes_repr(b)),
            Outgoing::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

impl fmt::Display for Chunking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunking::Doubling => f.write_str("doubling"),
            Chunking::Whole => f.write_str("whole"),
            Chunking::Sizes(sizes) => {
                f.write_str("sizes")?;
                for s in sizes {
                    write!(f, " {s}")?;
                }
                Ok(())
            }
            Chunking::Random(seed) => write!(f, "random {seed}"),
        }
    }
}

/// A step as a scenario line: parsing the text gives the same step back.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Open(open) => write!(f, "{open}"),
            Step::Close => f.write_str("close"),
            Step::Address(a) => write!(f, "address {a}"),
            Step::Accept => f.write_str("accept"),
            Step::Reject => f.write_str("reject"),
            Step::Fail => f.write_str("fail"),
            Step::Drop => f.write_str("drop"),
            Step::Print(e) => write!(f, "print {e}"),
            Step::Compare { left, right, equal } => {
                write!(f, "{left} {} {right}", if *equal { "==" } else { "!=" })
            }
            Step::Let { name, value } => write!(f, "let {name} = {value}"),
            Step::InitMd5(e) => write!(f, "init_md5 {e}"),
            Step::Later => f.write_str("later"),
            Step::DoLater => f.write_str("doLater"),
            Step::Advance(d) => write!(f, "advance {}", seconds(*d)),
            Step::Clients => f.write_str("clients"),
            Step::Commit { changes, meta } => {
                f.write_str("primary commit")?;
                for c in changes {
                    write!(f, " {c}")?;
                }
                if !meta.user.is_empty() {
                    write!(f, " user={}", text_literal(&meta.user))?;
                }
                if !meta.description.is_empty() {
                    write!(f, " description={}", text_literal(&meta.description))?;
                }
                for (k, v) in &meta.extension {
                    write!(f, " ext.{k}={}", text_literal(v.as_bytes()))?;
                }
                Ok(())
            }
            Step::Undo(1) => f.write_str("primary undo"),
            Step::Undo(n) => write!(f, "primary undo {n}"),
            Step::Send(o) => write!(f, "send {o}"),
            Step::Chunking(c) => write!(f, "chunking {c}"),
            Step::Root => f.write_str("root"),
            Step::Blob(e) => write!(f, "blob {e}"),
            Step::BlobFiles => f.write_str("blobs"),
            Step::Oracles => f.write_str("oracles on"),
            Step::VirtualClock => f.write_str("primary clock virtual"),
            Step::PrimaryBlobs => f.write_str("primary blobs on"),
            Step::Serve(None) => f.write_str("serve"),
            Step::Serve(Some(n)) => write!(f, "serve {n}"),
            Step::Corrupt { offset, mask } => write!(f, "corrupt {offset} {mask}"),
            Step::Truncate(n) => write!(f, "truncate {n}"),
            Step::Duplicate => f.write_str("duplicate"),
            Step::BadChecksum => f.write_str("bad_checksum"),
            Step::Crash { keep: 0, tear: 0 } => f.write_str("crash"),
            Step::Crash { keep, tear } => write!(f, "crash keep={keep} tear={tear}"),
            Step::Restart => f.write_str("restart"),
            Step::Disk(Some(fault)) => write!(f, "disk fail {fault}"),
            Step::Disk(None) => f.write_str("disk heal"),
            Step::PrimaryRestart => f.write_str("primary restart"),
            Step::Outage(d) => write!(f, "outage {}", seconds(*d)),
            Step::Client { index, action } => {
                f.write_str("client")?;
                if let Some(i) = index {
                    write!(f, " {i}")?;
                }
                match action {
                    ClientAction::Connect => f.write_str(" connect"),
                    ClientAction::Send(bytes) => {
                        write!(f, " send {}", repr(&Value::Bytes(bytes.clone())))
                    }
                    ClientAction::Read { raw: false } => f.write_str(" read"),
                    ClientAction::Read { raw: true } => f.write_str(" read raw"),
                    ClientAction::HasData => f.write_str(" has_data"),
                    ClientAction::Close => f.write_str(" close"),
                }
            }
            Step::PrimaryClose => f.write_str("primary close"),
            Step::PrimaryCheckpoint => f.write_str("primary checkpoint"),
            Step::PrimaryFailover => f.write_str("primary failover"),
            Step::Node {
                number,
                upstream,
                open,
            } => {
                let open = open.to_string();
                let options = open.strip_prefix("open ").unwrap_or(&open);
                write!(f, "node s{number} from {upstream} {options}")
            }
            Step::At { number, step } => write!(f, "s{number}: {step}"),
            Step::Heal(None) => f.write_str("heal"),
            Step::Heal(Some(d)) => write!(f, "heal {}", seconds(*d)),
        }
    }
}
