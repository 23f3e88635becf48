//! The storage interface replication needs, and its two implementations.
//!
//! Two traits: [`ReadStorage`], ZODB's client reads of committed transactions (what a
//! client, a primary and the oracles need), and [`Storage`], replication's writes on top
//! of them, following ZODB's two-phase commit (`tpc_begin`, `restore` per record,
//! `tpc_vote`, `tpc_finish`, or `tpc_abort`). Read handles and a secondary are
//! `ReadStorage` only: a write to them does not compile.
//!
//! - [`memory::MemoryStorage`]: the same semantics in memory, for simulation;
//! - [`file::FileStorage`]: ZODB's `Data.fs`, byte-identical to what Python ZODB writes;
//! - [`extension`]: the one place a replicated transaction's extension is re-encoded;
//! - [`copy`]: replaying one storage into another (`zrs copy`);
//! - [`cursor`]: an owned position in the committed transactions, for a primary's stream;
//! - [`blob`]: a ZODB blob directory beside any of them ([`BlobStorage`]).

pub mod blob;
pub mod copy;
pub mod cursor;
pub mod extension;
pub mod file;
pub mod memory;

pub use blob::{BlobReader, BlobStorage, CommittedBlob};
pub use copy::{copy_transactions, CopyStats};
pub use cursor::{Cursor, IteratorCursor, TransactionCursor};
pub use extension::{encode_extension, replicated_extension};
pub use file::{Durability, FileStorage, FileStorageReader, Options};
pub use memory::MemoryStorage;

use std::sync::Arc;

use crate::tid::{Oid, Tid};

/// Which ZODB a storage's bytes are for: the Data.fs magic, and how transaction extensions
/// are pickled. A replica takes its primary's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `FS30`: Python 3 ZODB (5.x, 6.x); extensions pickled at protocol 3.
    Fs30,
    /// `FS21`: Python 2 ZODB (4.x, 5.x on Python 2); extensions as cPickle at protocol 1.
    Fs21,
}

impl Format {
    /// The file magic.
    pub fn magic(self) -> &'static [u8; 4] {
        match self {
            Format::Fs30 => b"FS30",
            Format::Fs21 => b"FS21",
        }
    }

    /// `fs30` / `fs21`, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Fs30 => "fs30",
            Format::Fs21 => "fs21",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(self.magic()).expect("ASCII"))
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "fs30" | "py3" => Ok(Format::Fs30),
            "fs21" | "py2" => Ok(Format::Fs21),
            _ => Err(format!("unknown format {s:?}: expected fs30 or fs21")),
        }
    }
}

/// Transaction metadata exactly as a storage keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMeta {
    pub tid: Tid,
    /// `b' '`, `b'p'` (packed), `b'u'` (undone, legacy) — `b'c'` is never visible.
    pub status: u8,
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    /// The extension as stored: ZODB's pickle of the dict (see [`Format`]), empty for an
    /// empty dict.
    pub extension: Vec<u8>,
}

/// One data record of a transaction, as ZODB's storage iterator yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRecord {
    pub oid: Oid,
    /// The tid of the transaction the record belongs to.
    pub serial: Tid,
    /// The object's state (backpointers followed); `None` where the record undoes the
    /// object's creation (backpointer 0). Shared, so that a storage holding it in memory
    /// hands it out without a copy.
    pub data: Option<Arc<[u8]>>,
    /// Where the record is a backpointer: the tid of the transaction holding the data.
    pub data_txn: Option<Tid>,
}

/// A transaction with its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRecord {
    pub meta: TransactionMeta,
    pub records: Vec<DataRecord>,
}

/// One entry of an object's history, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub tid: Tid,
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    pub size: usize,
}

/// What can go wrong in a storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("no such key: oid {0:?}")]
    NoSuchKey(Oid),
    #[error("no record of oid {oid:?} at serial {serial:?}")]
    NoSuchSerial { oid: Oid, serial: Tid },
    #[error("read-only storage")]
    ReadOnly,
    #[error("tid {tid:?} is not later than the last transaction {last:?}")]
    TidNotIncreasing { tid: Tid, last: Tid },
    #[error("{0}")]
    Transaction(String),
    #[error("corrupt storage {name} at byte {pos}: {what}")]
    Corrupt {
        name: String,
        pos: u64,
        what: String,
    },
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage is closed")]
    Closed,
    #[error("{name} is an {have} file; refusing to write {want} transactions into it")]
    FormatMismatch {
        name: String,
        have: Format,
        want: Format,
    },
    /// Another writer holds the storage's lock file (`Data.fs.lock`).
    #[error("{0}")]
    Locked(#[from] file::lock::LockError),
    #[error("this storage keeps no blobs")]
    NoBlobs,
    #[error("blob of oid {oid:?} at serial {serial:?}: {what}")]
    Blob { oid: Oid, serial: Tid, what: String },
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What `load_before` finds: data, its serial, and the serial that replaced it (if any).
pub type LoadBefore = (Vec<u8>, Tid, Option<Tid>);

/// A ZODB storage as clients (and a primary) read it: committed transactions only.
pub trait ReadStorage {
    /// The name ZODB prints (`Data.fs` for a FileStorage opened as `Data.fs`).
    fn name(&self) -> &str;
    /// The last committed tid, [`Tid::ZERO`] when empty.
    fn last_transaction(&self) -> Tid;
    /// Number of objects.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Whether the storage keeps blobs (a secondary over it then speaks `zrs2.1`).
    fn keeps_blobs(&self) -> bool {
        false
    }
    /// The storage's [`Format`]; `None` while a new storage has none yet (its first
    /// transaction, or [`Storage::set_format`], decides), and for storages without one.
    fn format(&self) -> Option<Format> {
        None
    }

    /// Current data and serial of an object.
    fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)>;
    /// The revision current before `tid`: data, its serial, and the serial that replaced it.
    fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>>;
    /// The data of the revision written by `serial`.
    fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>>;
    /// Up to `size` revisions, newest first.
    fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>>;
    /// Transactions with `start <= tid <= stop`, oldest first.
    fn iterator<'a>(
        &'a self,
        start: Option<Tid>,
        stop: Option<Tid>,
    ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a>;
    /// Whether a transaction with this tid is committed. The default reads it through
    /// [`iterator`](Self::iterator); indexed storages answer from their index.
    fn has_transaction(&self, tid: Tid) -> Result<bool> {
        match self.iterator(Some(tid), Some(tid)).next() {
            None => Ok(false),
            Some(r) => r.map(|t| t.meta.tid == tid),
        }
    }
    /// A read handle that can be used from other threads while the storage is written:
    /// it sees committed transactions only.
    fn reader(&self) -> Box<dyn ReadStorage + Send + Sync>;
    /// An owned cursor returning the committed transactions after `after` (all of them for
    /// [`Tid::ZERO`]), then later commits as they are finished; see [`cursor`].
    fn cursor(&self, after: Tid) -> Cursor {
        Box::new(IteratorCursor::new(self, after))
    }
    /// The committed blob file of `oid` at `serial`, if the storage keeps blobs and has it.
    fn open_blob(&self, _oid: Oid, _serial: Tid) -> Result<Option<CommittedBlob>> {
        Ok(None)
    }
}

/// A ZODB storage as replication writes it: ZODB's two-phase commit, a record at a time
/// as the primary sent it. Reading is [`ReadStorage`]'s.
pub trait Storage: ReadStorage {
    /// Decides the format of a storage that has none yet; fails if it has another one.
    /// Storages without a format accept any.
    fn set_format(&mut self, _format: Format) -> Result<()> {
        Ok(())
    }
    /// Begin a transaction with the given metadata. One at a time; the tid must be later
    /// than the last transaction.
    fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()>;
    /// Store a record as a primary sent it: full data (or `None`), plus where the primary's
    /// record was a backpointer, the transaction it points to.
    fn restore(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> Result<()>;
    fn tpc_vote(&mut self) -> Result<()>;
    /// Make the transaction durable and visible; returns its tid.
    fn tpc_finish(&mut self) -> Result<Tid>;
    /// Drop the transaction in progress, if any. Never fails.
    fn tpc_abort(&mut self);
    /// Make every finished transaction durable. A no-op where `tpc_finish` already is
    /// (the default); needed by storages that batch their fsyncs during catch-up.
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) -> Result<()>;
    /// After a failure that left the storage refusing writes (a failed fsync: data of
    /// unknown state), try to make it usable again from what is known durable — a
    /// FileStorage cuts its file back to the last synced length and re-scans it, so
    /// transactions finished since that sync are gone and must be replicated again.
    /// `Ok(true)` if it had failed and recovered, `Ok(false)` if it had not failed; an error
    /// (it stays failed) while the disk still fails. The default: storages that cannot fail.
    fn recover(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// Whether a failure left the storage refusing writes until [`Storage::recover`]: what
    /// its file holds of the transaction in progress is then unknown. The default: storages
    /// that cannot fail.
    fn failed(&self) -> bool {
        false
    }

    // Blobs (ZODB's `IBlobStorage`), for storages that keep them; the defaults keep none.

    /// Start the blob file of the record the next [`Storage::restore_blob`] restores; the
    /// file is then written chunk by chunk with [`Storage::blob_write`].
    fn blob_begin(&mut self) -> Result<()> {
        Err(StorageError::NoBlobs)
    }
    /// Append a chunk to the blob file begun.
    fn blob_write(&mut self, _chunk: &[u8]) -> Result<()> {
        Err(StorageError::NoBlobs)
    }
    /// ZODB's `restoreBlob`: [`Storage::restore`] the record, with the blob file written
    /// since [`Storage::blob_begin`] as its blob. The file becomes visible with the
    /// transaction, and an aborted transaction leaves none.
    fn restore_blob(
        &mut self,
        _oid: Oid,
        _serial: Tid,
        _data: Option<&[u8]>,
        _version: &[u8],
        _data_txn: Option<Tid>,
    ) -> Result<()> {
        Err(StorageError::NoBlobs)
    }
    /// Give `oid` at `serial`, in the transaction in progress, a copy of its committed blob
    /// file at `from` (as ZODB's undo does); does nothing when there is no such file.
    fn copy_blob(&mut self, _oid: Oid, _from: Tid, _serial: Tid) -> Result<()> {
        Err(StorageError::NoBlobs)
    }
}

/// A boxed storage is a storage (the simulator picks file or memory at run time).
impl<T: ReadStorage + ?Sized> ReadStorage for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn last_transaction(&self) -> Tid {
        (**self).last_transaction()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn keeps_blobs(&self) -> bool {
        (**self).keeps_blobs()
    }
    fn format(&self) -> Option<Format> {
        (**self).format()
    }
    fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
        (**self).load(oid)
    }
    fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
        (**self).load_before(oid, tid)
    }
    fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
        (**self).load_serial(oid, serial)
    }
    fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
        (**self).history(oid, size)
    }
    fn iterator<'a>(
        &'a self,
        start: Option<Tid>,
        stop: Option<Tid>,
    ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a> {
        (**self).iterator(start, stop)
    }
    fn has_transaction(&self, tid: Tid) -> Result<bool> {
        (**self).has_transaction(tid)
    }
    fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
        (**self).reader()
    }
    fn cursor(&self, after: Tid) -> Cursor {
        (**self).cursor(after)
    }
    fn open_blob(&self, oid: Oid, serial: Tid) -> Result<Option<CommittedBlob>> {
        (**self).open_blob(oid, serial)
    }
}

impl<T: Storage + ?Sized> Storage for Box<T> {
    fn set_format(&mut self, format: Format) -> Result<()> {
        (**self).set_format(format)
    }
    fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()> {
        (**self).tpc_begin(meta)
    }
    fn restore(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> Result<()> {
        (**self).restore(oid, serial, data, version, data_txn)
    }
    fn tpc_vote(&mut self) -> Result<()> {
        (**self).tpc_vote()
    }
    fn tpc_finish(&mut self) -> Result<Tid> {
        (**self).tpc_finish()
    }
    fn tpc_abort(&mut self) {
        (**self).tpc_abort()
    }
    fn sync(&mut self) -> Result<()> {
        (**self).sync()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn recover(&mut self) -> Result<bool> {
        (**self).recover()
    }
    fn failed(&self) -> bool {
        (**self).failed()
    }
    fn blob_begin(&mut self) -> Result<()> {
        (**self).blob_begin()
    }
    fn blob_write(&mut self, chunk: &[u8]) -> Result<()> {
        (**self).blob_write(chunk)
    }
    fn restore_blob(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> Result<()> {
        (**self).restore_blob(oid, serial, data, version, data_txn)
    }
    fn copy_blob(&mut self, oid: Oid, from: Tid, serial: Tid) -> Result<()> {
        (**self).copy_blob(oid, from, serial)
    }
}
