//! `FileStorage`: ZODB's `Data.fs`, read and written byte for byte as Python ZODB 6.4 does.
//!
//! - [`format`](mod@format): record layouts (see `FORMAT.md` beside this file for the prose version);
//! - [`backend`]: the positional I/O trait every byte goes through;
//! - [`index`]: oid → current record and a sparse tid → transaction table, built at open,
//!   extended at finish;
//! - [`scan`]: the open-time scan and crash recovery;
//! - [`lock`]: `Data.fs.lock`, the writer's lock, as ZODB takes it;
//! - [`faulty`]: a backend that fails chosen writes, fsyncs and reads (tests);
//! - this module: the storage (writer) and [`FileStorageReader`] (shared read handles).
//!
//! A new (empty) file gets its magic only when its [`Format`] is decided: by
//! [`Storage::set_format`] (a replica takes its primary's), else at the first `tpc_begin`
//! (`FS30`, as Python 3 ZODB creates files). An existing file keeps its own.
//!
//! Writes follow ZODB: `tpc_vote` appends the whole transaction with status `c`,
//! `tpc_finish` flips the status to `' '` (or `'p'`) and, by default, fsyncs. Only then does
//! the transaction enter the index that readers share, so readers never see a transaction
//! in progress. `restore` turns the primary's `data_txn` into a backpointer exactly as
//! ZODB's `FileStorage.restore` + `_data_find` do, so a replica is byte-identical to its
//! primary. Memory is per object: older revisions are reached through each record's `prev`
//! pointer, as in ZODB, and `data_txn` through the transaction's position (found from the
//! sparse tid table and a short walk over transaction headers) and its record headers.

pub mod backend;
pub mod faulty;
pub mod format;
pub mod index;
pub mod lock;
mod read_ahead;
pub mod scan;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::planted::{planted, Bug};
use crate::storage::{
    Cursor, DataRecord, Format, HistoryEntry, LoadBefore, ReadStorage, Result, Storage,
    StorageError, TransactionCursor, TransactionMeta, TransactionRecord,
};
use crate::tid::{Oid, Tid};

use backend::{Backend, FileBackend};
use format::{
    encode_record, DataHeader, RecordBody, TxnHeader, DATA_HEADER_LEN, MAGIC_PY2, MAX_META_LEN,
    STATUS_CHECKPOINT, STATUS_COMMITTED, STATUS_OFFSET, STATUS_PACKED, TXN_HEADER_LEN,
};
use index::{Index, MAX_POS};
use read_ahead::ReadAhead;
pub use scan::Tail;

/// When finished transactions are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync at every `tpc_finish`, as ZODB does. A finished transaction survives a crash.
    #[default]
    EveryTransaction,
    /// Catch-up mode: fsync once every `n` finished transactions (and at [`Storage::sync`]
    /// and close). A crash loses at most the last `n - 1` finished transactions, never
    /// leaving anything but a clean prefix; replication then simply asks for them again.
    Batch(u32),
}

/// How to open a FileStorage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Refuse writes and leave a damaged tail in place (it is only ignored).
    pub read_only: bool,
    pub durability: Durability,
}

/// State shared by the writer and every reader.
#[derive(Debug)]
struct Shared {
    name: String,
    backend: Box<dyn Backend>,
    index: RwLock<Index>,
    closed: AtomicBool,
    /// The file's [`Format`] as a number (see [`format_code`]); 0 while a new file has no
    /// magic yet.
    format: AtomicU8,
}

fn format_code(format: Option<Format>) -> u8 {
    match format {
        None => 0,
        Some(Format::Fs30) => 1,
        Some(Format::Fs21) => 2,
    }
}

fn format_of(code: u8) -> Option<Format> {
    match code {
        1 => Some(Format::Fs30),
        2 => Some(Format::Fs21),
        _ => None,
    }
}

/// A transaction between `tpc_begin` and `tpc_finish`/`tpc_abort`.
#[derive(Debug)]
struct Pending {
    meta: TransactionMeta,
    /// Where the transaction starts: the committed end of the file.
    pos: u64,
    /// The whole transaction record, header first (its length is patched at vote).
    buf: Vec<u8>,
    /// (oid, position) of each record, in order.
    records: Vec<(Oid, u64)>,
    voted: bool,
}

/// A `Data.fs` opened for reading and writing (or read-only).
#[derive(Debug)]
pub struct FileStorage {
    shared: Arc<Shared>,
    read_only: bool,
    durability: Durability,
    /// Finished transactions not yet fsynced (batch durability).
    unsynced: u32,
    txn: Option<Pending>,
    tail: Option<Tail>,
    /// The records of the transaction `restore` last looked up as a `data_txn`: the
    /// records of an undo all name the same few transactions, so scanning each once keeps
    /// an undo of `n` records linear. Sorted by oid; one transaction's worth of memory.
    data_txn_records: Option<(Tid, Vec<(Oid, u64)>)>,
    /// `Data.fs.lock`, held from open to close by a writer opened by path.
    lock: Option<lock::LockFile>,
    /// The file's length at the last successful fsync (or at open): what is known durable.
    synced_end: u64,
    /// A write, truncation or fsync failed: the file's state is unknown, the storage refuses
    /// everything until [`Storage::recover`].
    failed: bool,
}

/// A read handle on a [`FileStorage`]: cheap to clone, usable from any thread while the
/// storage appends. Sees committed transactions only; it has no write methods.
#[derive(Clone, Debug)]
pub struct FileStorageReader {
    shared: Arc<Shared>,
}

impl FileStorage {
    /// Open (creating it if missing, unless read-only) the file at `path`. The storage is
    /// named after the path as given, like ZODB's. A writer first takes `<path>.lock` as
    /// ZODB does and fails at once, naming the holder's pid, if another writer has it.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<FileStorage> {
        let path = path.as_ref();
        let lock = if options.read_only {
            None
        } else {
            Some(lock::LockFile::acquire(&lock::lock_path(path))?)
        };
        let backend = if options.read_only {
            FileBackend::open(path, true)?
        } else {
            FileBackend::open_write_behind(path)?
        };
        let mut storage =
            FileStorage::open_with_backend(&path.to_string_lossy(), Box::new(backend), options)?;
        storage.lock = lock;
        Ok(storage)
    }

    /// Open a storage over any backend (the simulator's disk, memory).
    pub fn open_with_backend(
        name: &str,
        backend: Box<dyn Backend>,
        options: Options,
    ) -> Result<FileStorage> {
        if let Durability::Batch(0) = options.durability {
            return Err(StorageError::Transaction(
                "Durability::Batch(0): a batch needs at least one transaction".into(),
            ));
        }
        let scan = scan::scan(backend.as_ref(), name)?;
        if let Some(tail) = &scan.tail {
            tracing::warn!(
                target: "zrs.storage",
                "{name}: damaged transaction at the end of the file, at byte {}: {}; {} {} bytes \
                 (file length {} -> {})",
                tail.pos,
                tail.what,
                if options.read_only { "ignoring" } else { "cutting off" },
                tail.len,
                tail.pos + tail.len,
                tail.pos,
            );
            if !options.read_only {
                backend.set_len(tail.pos)?;
                backend.sync()?;
            }
        }
        // A new file gets its magic with its first transaction (or `set_format`), so that
        // a replica can take its primary's format; the others keep theirs.
        let format = if scan.empty {
            None
        } else {
            let mut magic = [0u8; 4];
            backend.read_exact_at(0, &mut magic)?;
            Some(if &magic == MAGIC_PY2 {
                Format::Fs21
            } else {
                Format::Fs30
            })
        };
        let synced_end = if scan.empty { 0 } else { scan.index.end() };
        Ok(FileStorage {
            shared: Arc::new(Shared {
                name: name.to_string(),
                backend,
                index: RwLock::new(scan.index),
                closed: AtomicBool::new(false),
                format: AtomicU8::new(format_code(format)),
            }),
            read_only: options.read_only,
            durability: options.durability,
            unsynced: 0,
            txn: None,
            tail: scan.tail,
            data_txn_records: None,
            lock: None,
            synced_end,
            failed: false,
        })
    }

    /// For a storage opened read-only on a file another process writes (a ZODB or ZEO
    /// server): indexes the transactions it has finished since, so that readers and
    /// cursors see them. Never a transaction still in progress (status `c`) or a torn
    /// tail: those are looked at again on the next call. Returns how many were added.
    pub fn refresh(&self) -> Result<u64> {
        self.shared.check_open()?;
        if !self.read_only {
            return Err(StorageError::Transaction(
                "refresh: only a read-only storage follows another writer".into(),
            ));
        }
        let mut index = self.shared.index_mut();
        scan::scan_appended(self.shared.backend.as_ref(), &mut index)
    }

    /// A shareable read handle.
    pub fn file_reader(&self) -> FileStorageReader {
        FileStorageReader {
            shared: self.shared.clone(),
        }
    }

    /// Simulate a process crash: drop the storage without any cleanup (no abort, no
    /// truncation, no fsync of a pending batch). The file is left exactly as the backend
    /// holds it; a simulator then decides what its disk kept and reopens it. Read handles
    /// answer `Closed` from now on.
    pub fn crash(self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Drop sees a closed storage and does nothing.
    }

    /// Whether a write, truncation or fsync failed: the storage refuses everything until
    /// [`Storage::recover`] succeeds.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The damaged tail the open cut off (or, read-only, ignored), if any.
    pub fn recovered_tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Switch durability, e.g. to batches during catch-up and back afterwards. Switching to
    /// per-transaction durability syncs what a batch left unsynced.
    pub fn set_durability(&mut self, durability: Durability) -> Result<()> {
        if let Durability::Batch(0) = durability {
            return Err(StorageError::Transaction(
                "Durability::Batch(0): a batch needs at least one transaction".into(),
            ));
        }
        self.durability = durability;
        if durability == Durability::EveryTransaction {
            self.sync_now(self.committed_end())?;
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.shared.check_open()?;
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        Ok(())
    }

    fn pending(&mut self, what: &str) -> Result<&mut Pending> {
        self.shared.check_open()?;
        self.txn
            .as_mut()
            .ok_or_else(|| StorageError::Transaction(format!("{what}: no transaction in progress")))
    }

    /// A failed storage, closing: cut the file back to what is known durable, so that the
    /// next process to open it does not read (from the page cache) writes a failed fsync
    /// may never have made durable. If the disk still fails, nothing more can be done.
    fn cut_back(&mut self) {
        let backend = &self.shared.backend;
        if backend.set_len(self.synced_end).is_ok() && backend.sync().is_ok() {
            self.failed = false;
        }
    }

    /// Where the committed transactions end.
    fn committed_end(&self) -> u64 {
        self.shared.index().end()
    }

    /// fsyncs what was finished, the file being `end` bytes long.
    fn sync_now(&mut self, end: u64) -> Result<()> {
        if self.unsynced > 0 {
            if let Err(e) = self.shared.backend.sync() {
                // After a failed fsync nothing about the unsynced writes can be trusted: the
                // kernel may have dropped the dirty pages and will not report it again, so
                // a retry that succeeds proves nothing (PostgreSQL's lesson). Stop; only
                // `recover` goes on, from the last length known durable.
                self.fail();
                return Err(e.into());
            }
            self.unsynced = 0;
            self.synced_end = end;
        }
        Ok(())
    }

    fn fail(&mut self) {
        self.txn = None;
        self.failed = true;
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    /// ZODB's `_data_find`: the position to write as a backpointer for `oid` whose data is
    /// in transaction `data_txn`, or 0 to write the data itself.
    fn data_find(&mut self, oid: Oid, data_txn: Tid, data: Option<&[u8]>) -> Result<u64> {
        let cached = matches!(&self.data_txn_records, Some((t, _)) if *t == data_txn);
        if !cached {
            let Some((tpos, h)) = self.shared.find_txn(data_txn)? else {
                // ZODB raises here, failing the whole replication; the comment in its
                // restore() calls data_txn "just a hint" to ignore when the transaction is
                // not there (e.g. packed away), which is what we do: write the data.
                return Ok(0);
            };
            let records = self.shared.txn_records(tpos, &h)?;
            self.data_txn_records = Some((data_txn, records));
        }
        let records = &self.data_txn_records.as_ref().expect("just filled").1;
        let Ok(i) = records.binary_search_by(|(o, _)| o.cmp(&oid)) else {
            return Ok(0);
        };
        let rpos = records[i].1;
        let shared = &self.shared;
        let (h, _) = shared.data_header(rpos, Some(oid))?;
        if h.plen == 0 {
            // Also a backpointer: trust it, as ZODB does.
            return Ok(rpos);
        }
        let Some(data) = data else {
            // ZODB fails here too (len(None)); a faithful primary never sends it, since its
            // record in data_txn would then be a backpointer as well.
            return Err(StorageError::Transaction(format!(
                "restore of {oid:?}: no data, but its record in {data_txn:?} at byte {rpos} has data"
            )));
        };
        if h.plen != data.len() as u64 {
            tracing::error!(
                target: "zrs.storage",
                "{}: mismatch between data ({} bytes) and the record of {oid:?} in {data_txn:?} \
                 at byte {rpos} ({} bytes); writing the data",
                shared.name, data.len(), h.plen
            );
            return Ok(0);
        }
        let stored = shared.read_data(rpos, h.plen)?;
        Ok(if stored == data { rpos } else { 0 })
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        if !self.shared.closed.load(Ordering::SeqCst) {
            let _ = self.close();
        }
    }
}

impl Shared {
    fn format(&self) -> Option<Format> {
        format_of(self.format.load(Ordering::SeqCst))
    }

    /// The file's length: nothing before a new file has its magic.
    fn size(&self) -> u64 {
        if self.format().is_none() {
            0
        } else {
            self.index().end()
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        // The index is only replaced whole under the lock; a panicking holder cannot leave
        // it half-updated in a way readers could misread, so a poisoned lock is usable.
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn corrupt(&self, pos: u64, what: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            name: self.name.clone(),
            pos,
            what: what.into(),
        }
    }

    /// Read the data record header at `pos` and, where it is a backpointer, the pointer.
    fn data_header(&self, pos: u64, oid: Option<Oid>) -> Result<(DataHeader, u64)> {
        let mut b = [0u8; DATA_HEADER_LEN + 8];
        let n = self.backend.read_at(pos, &mut b)?;
        if n < DATA_HEADER_LEN {
            return Err(self.corrupt(pos, "data record header cut short"));
        }
        let h = DataHeader::decode(b[..DATA_HEADER_LEN].try_into().expect("42 bytes"));
        if let Some(oid) = oid {
            if Oid(h.oid) != oid {
                return Err(self.corrupt(
                    pos,
                    format!("expected a record of {oid:?}, found {:?}", Oid(h.oid)),
                ));
            }
        }
        let mut back = 0;
        if h.plen == 0 {
            if n < DATA_HEADER_LEN + 8 {
                return Err(self.corrupt(pos, "backpointer cut short"));
            }
            back = u64::from_be_bytes(b[DATA_HEADER_LEN..].try_into().expect("8 bytes"));
        }
        Ok((h, back))
    }

    /// The data of the record at `pos` whose header says `plen` bytes.
    fn read_data(&self, pos: u64, plen: u64) -> Result<Vec<u8>> {
        let start = pos + DATA_HEADER_LEN as u64;
        let end = self.index().end();
        // Indexed records lie inside the committed file; checking keeps a corrupt length
        // from asking for an absurd allocation.
        if start.checked_add(plen).is_none_or(|e| e > end) {
            return Err(self.corrupt(pos, format!("data length {plen} runs past the end")));
        }
        let mut data = vec![0u8; plen as usize];
        self.backend.read_exact_at(start, &mut data)?;
        Ok(data)
    }

    /// Follow backpointers from `back` to the data: `(data, tid of the record holding it)`,
    /// or `None` where the chain ends in 0 (the object's creation was undone).
    fn load_back(&self, oid: Oid, mut back: u64) -> Result<Option<(Vec<u8>, Tid)>> {
        let mut from = u64::MAX;
        while back != 0 {
            if back >= from {
                // Backpointers always point backwards; anything else would loop.
                return Err(self.corrupt(from, format!("backpointer {back} does not point back")));
            }
            let (h, next) = self.data_header(back, Some(oid))?;
            if h.plen != 0 {
                return Ok(Some((self.read_data(back, h.plen)?, Tid(h.tid))));
            }
            from = back;
            back = next;
        }
        Ok(None)
    }

    /// The data of the record at `pos`, backpointers followed.
    fn record_data(&self, oid: Oid, pos: u64) -> Result<(DataHeader, Option<Vec<u8>>)> {
        let (h, back) = self.data_header(pos, Some(oid))?;
        let data = if h.plen != 0 {
            Some(self.read_data(pos, h.plen)?)
        } else {
            self.load_back(oid, back)?.map(|(d, _)| d)
        };
        Ok((h, data))
    }

    /// (oid, position) of the records of the committed transaction at `tpos`, sorted by
    /// oid; of two records of one object, the later one (as ZODB's `_data_find`).
    fn txn_records(&self, tpos: u64, h: &TxnHeader) -> Result<Vec<(Oid, u64)>> {
        let tend = tpos + h.tlen;
        let mut pos = tpos + h.header_len();
        let mut records = Vec::new();
        while pos < tend {
            let (d, _) = self.data_header(pos, None)?;
            if d.tloc != tpos {
                return Err(self.corrupt(pos, "data record outside its transaction"));
            }
            records.push((Oid(d.oid), pos));
            pos = pos.saturating_add(d.record_len());
        }
        // Stable: equal oids stay in file order, and the last of each run is kept.
        records.sort_by_key(|&(o, _)| o);
        let mut out: Vec<(Oid, u64)> = Vec::with_capacity(records.len());
        for r in records {
            match out.last_mut() {
                Some(last) if last.0 == r.0 => *last = r,
                _ => out.push(r),
            }
        }
        Ok(out)
    }

    /// Position just past the committed transaction at `pos` whose header is `h`, checked
    /// to lie within the committed file ending at `end`.
    fn next_txn(&self, pos: u64, h: &TxnHeader, end: u64) -> Result<u64> {
        match pos.checked_add(h.tlen).and_then(|e| e.checked_add(8)) {
            Some(next) if next > pos && next <= end => Ok(next),
            _ => Err(self.corrupt(
                pos,
                format!("transaction length {} runs past the end", h.tlen),
            )),
        }
    }

    /// The committed transaction `tid`: its position and header. Starts from the nearest
    /// transaction the index remembers and walks at most `MARK_EVERY - 1` headers.
    fn find_txn(&self, tid: Tid) -> Result<Option<(u64, TxnHeader)>> {
        let (mut pos, end) = {
            let ix = self.index();
            if tid > ix.last_tid() {
                return Ok(None);
            }
            (ix.walk_start(tid), ix.end())
        };
        while pos < end {
            let h = self.txn_header(pos)?;
            match Tid(h.tid).cmp(&tid) {
                std::cmp::Ordering::Less => pos = self.next_txn(pos, &h, end)?,
                std::cmp::Ordering::Equal => return Ok(Some((pos, h))),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Walk the object's records from the current one back through `prev` pointers,
    /// newest first, until `f` returns false. Fails with `NoSuchKey` for an unknown object.
    fn walk_revisions(
        &self,
        oid: Oid,
        mut f: impl FnMut(u64, &DataHeader) -> Result<bool>,
    ) -> Result<()> {
        let mut pos = self
            .index()
            .current(oid)
            .ok_or(StorageError::NoSuchKey(oid))?;
        loop {
            let (h, _) = self.data_header(pos, Some(oid))?;
            if !f(pos, &h)? || h.prev == 0 {
                return Ok(());
            }
            if h.prev >= pos {
                // Previous records always lie before; anything else would loop.
                return Err(self.corrupt(
                    pos,
                    format!("previous-record pointer {} does not point back", h.prev),
                ));
            }
            pos = h.prev;
        }
    }

    fn txn_header(&self, pos: u64) -> Result<TxnHeader> {
        let mut b = [0u8; TXN_HEADER_LEN];
        if self.backend.read_at(pos, &mut b)? < TXN_HEADER_LEN {
            return Err(self.corrupt(pos, "transaction header cut short"));
        }
        Ok(TxnHeader::decode(&b))
    }

    // --- the read side of the Storage trait, shared by writer and readers ---

    fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
        self.check_open()?;
        let pos = self
            .index()
            .current(oid)
            .ok_or(StorageError::NoSuchKey(oid))?;
        let (h, data) = self.record_data(oid, pos)?;
        // The serial is the current record's, even when its data lives elsewhere.
        data.map(|d| (d, Tid(h.tid)))
            .ok_or(StorageError::NoSuchKey(oid))
    }

    fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
        self.check_open()?;
        // As ZODB's loadBefore: the newest record older than `tid`; the record after it
        // (walked just before) ends its validity.
        let mut found = None;
        let mut end_tid = None;
        self.walk_revisions(oid, |pos, h| {
            if Tid(h.tid) < tid {
                found = Some(pos);
                return Ok(false);
            }
            end_tid = Some(Tid(h.tid));
            Ok(true)
        })?;
        let Some(pos) = found else { return Ok(None) };
        let (h, data) = self.record_data(oid, pos)?;
        let data = data.ok_or(StorageError::NoSuchKey(oid))?;
        Ok(Some((data, Tid(h.tid), end_tid)))
    }

    fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
        self.check_open()?;
        let mut found = None;
        self.walk_revisions(oid, |pos, h| {
            if Tid(h.tid) == serial {
                found = Some(pos);
            }
            // Serials decrease along the chain: stop once past it.
            Ok(Tid(h.tid) > serial)
        })?;
        let pos = found.ok_or(StorageError::NoSuchSerial { oid, serial })?;
        self.record_data(oid, pos)?
            .1
            .ok_or(StorageError::NoSuchKey(oid))
    }

    fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
        self.check_open()?;
        let mut headers = Vec::new();
        if size > 0 {
            self.walk_revisions(oid, |_, h| {
                headers.push((Tid(h.tid), h.tloc, h.plen));
                Ok(headers.len() < size)
            })?;
        } else if self.index().current(oid).is_none() {
            return Err(StorageError::NoSuchKey(oid));
        }
        let mut out = Vec::with_capacity(headers.len());
        for (tid, tloc, plen) in headers {
            let (user, description, _) = self.txn_meta(tloc)?;
            out.push(HistoryEntry {
                tid,
                user,
                description,
                // As ZODB reports it: 0 for a backpointer.
                size: plen as usize,
            });
        }
        Ok(out)
    }

    /// User, description and extension of the transaction at `tpos`.
    fn txn_meta(&self, tpos: u64) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let h = self.txn_header(tpos)?;
        let mut b = vec![0u8; (h.header_len() as usize) - TXN_HEADER_LEN];
        self.backend
            .read_exact_at(tpos + TXN_HEADER_LEN as u64, &mut b)?;
        let (u, rest) = b.split_at(h.ulen as usize);
        let (d, e) = rest.split_at(h.dlen as usize);
        Ok((u.to_vec(), d.to_vec(), e.to_vec()))
    }

    /// Read and decode the whole committed transaction at `tpos`, whose header is `h`,
    /// in the committed file ending at `end`.
    fn read_transaction(&self, tpos: u64, h: &TxnHeader, end: u64) -> Result<TransactionRecord> {
        self.next_txn(tpos, h, end)?;
        let mut buf = vec![0u8; h.tlen as usize];
        self.backend.read_exact_at(tpos, &mut buf)?;
        self.decode_transaction(tpos, h, &buf)
    }

    /// Decode the committed transaction at `tpos`, whose header is `h`, from `buf`: its
    /// `h.tlen` bytes (header included).
    fn decode_transaction(
        &self,
        tpos: u64,
        h: &TxnHeader,
        buf: &[u8],
    ) -> Result<TransactionRecord> {
        let hl = h.header_len() as usize;
        let meta_bytes = &buf[TXN_HEADER_LEN..hl];
        let (user, rest) = meta_bytes.split_at(h.ulen as usize);
        let (description, extension) = rest.split_at(h.dlen as usize);
        let meta = TransactionMeta {
            tid: Tid(h.tid),
            status: h.status,
            user: user.to_vec(),
            description: description.to_vec(),
            extension: extension.to_vec(),
        };
        let mut records = Vec::new();
        let mut off = hl;
        while off < buf.len() {
            let rpos = tpos + off as u64;
            let Some(hb) = buf.get(off..off + DATA_HEADER_LEN) else {
                return Err(self.corrupt(rpos, "data record header exceeds its transaction"));
            };
            let d = DataHeader::decode(hb.try_into().expect("42 bytes"));
            let rlen = d.record_len();
            if rlen > (buf.len() - off) as u64 || d.tloc != tpos {
                return Err(self.corrupt(rpos, "data record exceeds its transaction"));
            }
            let body = &buf[off + DATA_HEADER_LEN..off + rlen as usize];
            let oid = Oid(d.oid);
            let (data, data_txn) = if d.plen != 0 {
                (Some(Arc::from(body)), None)
            } else {
                let back = u64::from_be_bytes(body.try_into().expect("8 bytes"));
                if back == 0 {
                    (None, None)
                } else {
                    // As ZODB's iterator: the data at the end of the chain, and the tid
                    // of the record the backpointer names (one link).
                    let (bh, _) = self.data_header(back, Some(oid))?;
                    let data = self.load_back(oid, back)?.map(|(d, _)| Arc::from(d));
                    (data, Some(Tid(bh.tid)))
                }
            };
            records.push(DataRecord {
                oid,
                serial: Tid(d.tid),
                data,
                data_txn,
            });
            off += rlen as usize;
        }
        Ok(TransactionRecord { meta, records })
    }
}

/// Transactions with `start <= tid <= stop` committed when the iterator is made.
fn transactions(
    shared: &Arc<Shared>,
    start: Option<Tid>,
    stop: Option<Tid>,
) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'static> {
    if let Err(e) = shared.check_open() {
        return Box::new(std::iter::once(Err(e)));
    }
    let start = start.unwrap_or(Tid::ZERO);
    let (pos, end) = {
        let ix = shared.index();
        (ix.walk_start(start), ix.end())
    };
    Box::new(TxnIter {
        shared: shared.clone(),
        pos,
        end,
        start,
        stop,
        failed: false,
    })
}

/// Iterates over the transactions committed when it was created (those before `end`),
/// walking the file from one transaction header to the next.
struct TxnIter {
    shared: Arc<Shared>,
    pos: u64,
    end: u64,
    /// Transactions before this one (between the remembered one the walk starts from and
    /// the wanted start) are skipped.
    start: Tid,
    stop: Option<Tid>,
    failed: bool,
}

impl TxnIter {
    fn step(&mut self) -> Result<Option<TransactionRecord>> {
        self.shared.check_open()?;
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let pos = self.pos;
            let h = self.shared.txn_header(pos)?;
            let next = self.shared.next_txn(pos, &h, self.end)?;
            if Tid(h.tid) < self.start {
                self.pos = next;
                continue;
            }
            if self.stop.is_some_and(|s| Tid(h.tid) > s) {
                self.pos = self.end;
                return Ok(None);
            }
            self.pos = next;
            return self.shared.read_transaction(pos, &h, self.end).map(Some);
        }
    }
}

impl Iterator for TxnIter {
    type Item = Result<TransactionRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step().transpose();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}

/// A FileStorage's [`TransactionCursor`]: the position of the next transaction header,
/// kept between calls (so each step reads one transaction, however long the file), and
/// the committed bytes after it read ahead ([`read_ahead`]).
struct FileCursor {
    shared: Arc<Shared>,
    /// Where the next transaction starts; `None` until the start is found.
    pos: Option<u64>,
    after: Tid,
    ahead: ReadAhead,
}

impl FileCursor {
    fn txn_header(&mut self, pos: u64, end: u64) -> Result<TxnHeader> {
        if end.saturating_sub(pos) < TXN_HEADER_LEN as u64 {
            return Err(self.shared.corrupt(pos, "transaction header cut short"));
        }
        let ahead = self
            .ahead
            .get(&*self.shared.backend, pos, TXN_HEADER_LEN, end)?;
        match ahead.and_then(|b| <&[u8; TXN_HEADER_LEN]>::try_from(b).ok()) {
            Some(b) => Ok(TxnHeader::decode(b)),
            None => self.shared.txn_header(pos),
        }
    }

    fn read_transaction(&mut self, pos: u64, h: &TxnHeader, end: u64) -> Result<TransactionRecord> {
        let shared = &*self.shared;
        // `next_txn` checked that the transaction (and its length after it) is committed.
        match self
            .ahead
            .get(&*shared.backend, pos, h.tlen as usize, end)?
        {
            Some(bytes) => shared.decode_transaction(pos, h, bytes),
            None => shared.read_transaction(pos, h, end),
        }
    }
}

impl TransactionCursor for FileCursor {
    fn after(&self) -> Tid {
        self.after
    }

    fn next(&mut self) -> Result<Option<TransactionRecord>> {
        self.shared.check_open()?;
        let (mut pos, end) = {
            let ix = self.shared.index();
            if ix.last_tid() <= self.after {
                return Ok(None);
            }
            let first = Tid::from_u64(self.after.as_u64() + 1);
            (self.pos.unwrap_or_else(|| ix.walk_start(first)), ix.end())
        };
        while pos < end {
            let h = self.txn_header(pos, end)?;
            let next = self.shared.next_txn(pos, &h, end)?;
            if Tid(h.tid) <= self.after {
                pos = next;
                continue;
            }
            let txn = self.read_transaction(pos, &h, end)?;
            self.pos = Some(next);
            self.after = txn.meta.tid;
            return Ok(Some(txn));
        }
        self.pos = Some(pos);
        Ok(None)
    }
}

macro_rules! read_side {
    () => {
        fn name(&self) -> &str {
            &self.shared.name
        }
        fn last_transaction(&self) -> Tid {
            self.shared.index().last_tid()
        }
        fn len(&self) -> usize {
            self.shared.index().len()
        }
        fn size(&self) -> u64 {
            self.shared.size()
        }
        fn format(&self) -> Option<Format> {
            self.shared.format()
        }
        fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
            self.shared.load(oid)
        }
        fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
            self.shared.load_before(oid, tid)
        }
        fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
            self.shared.load_serial(oid, serial)
        }
        fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
            self.shared.history(oid, size)
        }
        fn iterator<'a>(
            &'a self,
            start: Option<Tid>,
            stop: Option<Tid>,
        ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a> {
            transactions(&self.shared, start, stop)
        }
        fn has_transaction(&self, tid: Tid) -> Result<bool> {
            self.shared.check_open()?;
            Ok(self.shared.find_txn(tid)?.is_some())
        }
        fn cursor(&self, after: Tid) -> Cursor {
            Box::new(FileCursor {
                shared: self.shared.clone(),
                pos: None,
                after,
                ahead: ReadAhead::default(),
            })
        }
        fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
            Box::new(FileStorageReader {
                shared: self.shared.clone(),
            })
        }
    };
}

impl ReadStorage for FileStorage {
    read_side!();
}

impl Storage for FileStorage {
    fn set_format(&mut self, format: Format) -> Result<()> {
        self.check_writable()?;
        match self.shared.format() {
            Some(have) if have == format => Ok(()),
            Some(have) => Err(StorageError::FormatMismatch {
                name: self.shared.name.clone(),
                have,
                want: format,
            }),
            None => {
                let backend = &self.shared.backend;
                let written = backend
                    .write_at(0, format.magic())
                    .and_then(|()| backend.sync());
                if let Err(e) = written {
                    // A failed write may have landed part of the magic, a failed fsync
                    // left it of unknown state: the file goes back to empty, or the storage
                    // stops.
                    if backend.set_len(0).is_err() {
                        self.fail();
                    }
                    return Err(e.into());
                }
                self.shared
                    .format
                    .store(format_code(Some(format)), Ordering::SeqCst);
                Ok(())
            }
        }
    }

    fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()> {
        self.check_writable()?;
        if self.shared.format().is_none() {
            // Nobody chose: Python 3 ZODB's format, as it creates files.
            self.set_format(Format::Fs30)?;
        }
        if self.txn.is_some() {
            return Err(StorageError::Transaction(
                "tpc_begin: a transaction is already in progress".into(),
            ));
        }
        let (last, pos) = {
            let ix = self.shared.index();
            (ix.last_tid(), ix.end())
        };
        if meta.tid <= last {
            return Err(StorageError::TidNotIncreasing {
                tid: meta.tid,
                last,
            });
        }
        if meta.status != STATUS_COMMITTED && meta.status != STATUS_PACKED {
            return Err(StorageError::Transaction(format!(
                "tpc_begin: transaction status must be ' ' or 'p', not {:?}",
                meta.status as char
            )));
        }
        for (what, len) in [
            ("user name", meta.user.len()),
            ("description", meta.description.len()),
            ("extension", meta.extension.len()),
        ] {
            if len > MAX_META_LEN {
                return Err(StorageError::Transaction(format!(
                    "tpc_begin: {what} of {len} bytes is longer than {MAX_META_LEN}"
                )));
            }
        }
        let header = TxnHeader {
            tid: meta.tid.0,
            tlen: 0, // patched at vote
            status: STATUS_CHECKPOINT,
            ulen: meta.user.len() as u16,
            dlen: meta.description.len() as u16,
            elen: meta.extension.len() as u16,
        };
        let mut buf = Vec::with_capacity(header.header_len() as usize + 4096);
        buf.extend_from_slice(&header.encode());
        buf.extend_from_slice(&meta.user);
        buf.extend_from_slice(&meta.description);
        buf.extend_from_slice(&meta.extension);
        self.txn = Some(Pending {
            meta,
            pos,
            buf,
            records: Vec::new(),
            voted: false,
        });
        Ok(())
    }

    fn restore(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> Result<()> {
        self.check_writable()?;
        let voted = self.pending("restore")?.voted;
        if voted {
            return Err(StorageError::Transaction(
                "restore: the transaction is already voted".into(),
            ));
        }
        if !version.is_empty() {
            return Err(StorageError::Transaction(
                "restore: versions are no longer supported".into(),
            ));
        }
        if data.is_some_and(|d| d.is_empty()) {
            // A zero data length means "backpointer follows": an empty pickle cannot be
            // stored (ZODB would write a corrupt record).
            return Err(StorageError::Transaction(format!(
                "restore of {oid:?}: empty data"
            )));
        }
        let back = match data_txn {
            Some(t) => self.data_find(oid, t, data)?,
            None => 0,
        };
        // The previous record is the committed current one, as in ZODB (not an earlier
        // record of the same object in this transaction).
        let prev = self.shared.index().current(oid).unwrap_or(0);
        let txn = self.txn.as_mut().expect("checked above");
        let here = txn.pos + txn.buf.len() as u64;
        let body = match data {
            Some(d) if back == 0 => RecordBody::Data(d),
            _ => RecordBody::Back(back),
        };
        let header = DataHeader {
            oid: oid.0,
            tid: serial.0,
            prev,
            tloc: txn.pos,
            vlen: 0,
            plen: match body {
                RecordBody::Data(d) => d.len() as u64,
                RecordBody::Back(_) => 0,
            },
        };
        encode_record(&mut txn.buf, &header, body);
        txn.records.push((oid, here));
        Ok(())
    }

    fn tpc_vote(&mut self) -> Result<()> {
        self.check_writable()?;
        let txn = self.pending("tpc_vote")?;
        if txn.voted {
            return Err(StorageError::Transaction(
                "tpc_vote: the transaction is already voted".into(),
            ));
        }
        let tlen = txn.buf.len() as u64;
        if txn.pos + tlen + 8 > MAX_POS {
            return Err(StorageError::Transaction(format!(
                "tpc_vote: the file would grow past {MAX_POS} bytes, the most a FileStorage holds"
            )));
        }
        txn.buf[8..16].copy_from_slice(&tlen.to_be_bytes());
        txn.buf.extend_from_slice(&tlen.to_be_bytes());
        let pos = txn.pos;
        // One write: header (status 'c'), records, redundant length.
        let written = self
            .shared
            .backend
            .write_at(pos, &self.txn.as_ref().expect("pending").buf);
        if let Err(e) = written {
            // Leave no partial transaction behind (ZODB truncates too).
            if !planted(Bug::AbortKeepsFailedWrite) && self.shared.backend.set_len(pos).is_err() {
                self.fail();
            }
            if let Some(t) = self.txn.as_mut() {
                t.buf.truncate(t.buf.len() - 8);
            }
            return Err(e.into());
        }
        self.txn.as_mut().expect("pending").voted = true;
        Ok(())
    }

    fn tpc_finish(&mut self) -> Result<Tid> {
        self.check_writable()?;
        let txn = self.pending("tpc_finish")?;
        if !txn.voted {
            return Err(StorageError::Transaction(
                "tpc_finish: the transaction was not voted".into(),
            ));
        }
        let txn = self.txn.take().expect("pending");
        let end = txn.pos + txn.buf.len() as u64;
        if let Err(e) = self
            .shared
            .backend
            .write_at(txn.pos + STATUS_OFFSET, &[txn.meta.status])
        {
            self.fail();
            return Err(e.into());
        }
        self.unsynced += 1;
        let due = match self.durability {
            Durability::EveryTransaction => true,
            Durability::Batch(n) => self.unsynced >= n,
        };
        if due {
            self.sync_now(end)?;
        }
        self.shared
            .index_mut()
            .add_transaction(txn.meta.tid, txn.pos, &txn.records, end);
        Ok(txn.meta.tid)
    }

    fn tpc_abort(&mut self) {
        if let Some(txn) = self.txn.take() {
            if txn.voted && self.shared.backend.set_len(txn.pos).is_err() {
                tracing::error!(
                    target: "zrs.storage",
                    "{}: could not truncate an aborted transaction at byte {}; closing",
                    self.shared.name, txn.pos
                );
                self.fail();
            }
        }
    }

    fn sync(&mut self) -> Result<()> {
        self.shared.check_open()?;
        self.sync_now(self.committed_end())
    }

    fn close(&mut self) -> Result<()> {
        if self.failed {
            self.cut_back();
            self.lock = None;
            return Ok(());
        }
        if self.shared.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.tpc_abort();
        let r = self.sync_now(self.committed_end());
        if self.failed {
            self.cut_back();
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        // Another writer may take the file now (readers keep reading nothing: closed).
        self.lock = None;
        r
    }

    fn failed(&self) -> bool {
        self.failed
    }

    fn recover(&mut self) -> Result<bool> {
        if !self.failed {
            return Ok(false);
        }
        // Back to what the last successful fsync covered, made durable; then the file is
        // read afresh, as an open would.
        let backend = &self.shared.backend;
        let name = &self.shared.name;
        backend.set_len(self.synced_end)?;
        backend.sync()?;
        let scan = scan::scan(backend.as_ref(), name)?;
        if let Some(tail) = &scan.tail {
            backend.set_len(tail.pos)?;
            backend.sync()?;
        }
        let end = scan.index.end();
        tracing::warn!(
            target: "zrs.storage",
            "{name}: reopened after a storage failure, at the last length known durable \
             ({end} bytes)"
        );
        if scan.empty {
            // Cut back to nothing: the magic comes again with the first transaction.
            self.shared
                .format
                .store(format_code(None), Ordering::SeqCst);
        }
        let end = if scan.empty { 0 } else { end };
        *self.shared.index_mut() = scan.index;
        self.synced_end = end;
        self.tail = scan.tail;
        self.txn = None;
        self.unsynced = 0;
        self.data_txn_records = None;
        self.failed = false;
        self.shared.closed.store(false, Ordering::SeqCst);
        Ok(true)
    }
}

impl FileStorageReader {
    /// How far the committed file goes past `tid`: the number of transactions later than
    /// `tid` and their bytes. A primary's status answers a secondary's lag with this; it
    /// reads at most a mark's worth of transaction headers.
    pub fn after(&self, tid: Tid) -> Result<After> {
        let shared = &self.shared;
        shared.check_open()?;
        let (mut pos, mut before, count, end) = {
            let ix = shared.index();
            let (pos, before) =
                ix.walk_start_counted(Tid::from_u64(tid.as_u64().saturating_add(1)));
            (pos, before, ix.transaction_count(), ix.end())
        };
        while pos < end {
            let h = shared.txn_header(pos)?;
            if Tid(h.tid) > tid {
                break;
            }
            pos = shared.next_txn(pos, &h, end)?;
            before += 1;
        }
        Ok(After {
            transactions: count - before.min(count),
            bytes: end - pos.min(end),
        })
    }

    /// The number of committed transactions.
    pub fn transaction_count(&self) -> u64 {
        self.shared.index().transaction_count()
    }
}

/// What [`FileStorageReader::after`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct After {
    pub transactions: u64,
    pub bytes: u64,
}

impl ReadStorage for FileStorageReader {
    read_side!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn send_sync<T: Send + Sync + ?Sized>() {}

    #[test]
    fn handles_cross_threads() {
        shareable::<FileStorageReader>();
        send_sync::<FileStorage>();
        send_sync::<dyn Backend>();
    }

    /// Takes any write and keeps nothing: a transaction can be voted at a position no
    /// test file reaches.
    #[derive(Debug)]
    struct Sink;

    impl Backend for Sink {
        fn len(&self) -> std::io::Result<u64> {
            Ok(0)
        }
        fn read_at(&self, _: u64, _: &mut [u8]) -> std::io::Result<usize> {
            Ok(0)
        }
        fn write_at(&self, _: u64, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn sync(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Positions are 6 bytes in the index: a transaction may end (redundant length
    /// included) exactly at `MAX_POS`, and the vote refuses one byte more.
    #[test]
    fn a_transaction_may_end_at_the_largest_position_and_not_past_it() {
        for (past, fits) in [(0, true), (1, false)] {
            let mut s =
                FileStorage::open_with_backend("x.fs", Box::new(Sink), Options::default()).unwrap();
            s.tpc_begin(TransactionMeta {
                tid: Tid::from_u64(1),
                status: STATUS_COMMITTED,
                user: Vec::new(),
                description: Vec::new(),
                extension: Vec::new(),
            })
            .unwrap();
            let txn = s.txn.as_mut().unwrap();
            // The vote appends the 8-byte redundant length.
            txn.pos = MAX_POS - txn.buf.len() as u64 - 8 + past;
            let vote = s.tpc_vote();
            assert_eq!(vote.is_ok(), fits, "{past}: {vote:?}");
        }
    }

    #[test]
    fn batch_of_zero_is_refused() {
        let r = FileStorage::open_with_backend(
            "x.fs",
            Box::new(backend::MemoryBackend::new()),
            Options {
                read_only: false,
                durability: Durability::Batch(0),
            },
        );
        assert!(matches!(r, Err(StorageError::Transaction(_))));
        let mut s = FileStorage::open_with_backend(
            "x.fs",
            Box::new(backend::MemoryBackend::new()),
            Options::default(),
        )
        .unwrap();
        assert!(s.set_durability(Durability::Batch(0)).is_err());
        s.set_durability(Durability::Batch(5)).unwrap();
        assert_eq!(s.durability(), Durability::Batch(5));
    }
}
