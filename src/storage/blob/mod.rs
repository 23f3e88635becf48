//! Blobs: a ZODB blob directory beside a storage, as Python ZODB's `BlobStorage` keeps it.
//!
//! [`BlobStorage`] wraps any [`Storage`] (a FileStorage in production, a MemoryStorage in
//! simulation) and adds ZODB's blob methods through the storage trait: a replicated blob
//! is received chunk by chunk into a temporary file ([`Storage::blob_begin`],
//! [`Storage::blob_write`]), restored with its record ([`Storage::restore_blob`]), and
//! becomes visible with its transaction. Memory does not grow with a blob's size.
//!
//! - [`layout`]: where a blob file goes (`bushy`, `lawn`, the `.layout` marker);
//! - [`dir`]: the files themselves — temporary files, atomic installs, the crash journal;
//! - [`fs`]: the file system they are on (the host's, or zrs-sim's simulated disk).
//!
//! Python ZODB opens the result as a `FileStorage(…, blob_dir=…)` and reads every blob
//! (`tests/blob_storage.rs`).

pub mod dir;
pub mod fs;
pub mod layout;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub use dir::{BlobDir, TempBlob};
pub use fs::{BlobFs, OsFs};
pub use layout::Layout;

use super::{
    Cursor, Format, HistoryEntry, LoadBefore, ReadStorage, Result, Storage, StorageError,
    TransactionMeta, TransactionRecord,
};
use crate::pickle::{loads_sequence, Value};
use crate::tid::{Oid, Tid};

/// A committed blob file, open for reading.
pub struct CommittedBlob {
    /// Its size in bytes.
    pub len: u64,
    pub file: Box<dyn Read + Send>,
}

impl std::fmt::Debug for CommittedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommittedBlob({} bytes)", self.len)
    }
}

impl CommittedBlob {
    /// The whole file (for tests and small blobs; stream large ones from `file`).
    pub fn read_all(mut self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Whether a record's data is a blob's: its class pickle is the global `ZODB.blob.Blob`,
/// as ZODB's and zc.zrs's `is_blob_record` decide.
pub fn is_blob_record(data: &[u8]) -> bool {
    // Cheap test first, as ZODB's: no blob record lacks the module name. A primary asks
    // this of every record it serves: a vectorised substring search, not a byte-by-byte
    // window compare (memchr, already in the dependency tree).
    if memchr::memmem::find(data, b"ZODB.blob").is_none() {
        return false;
    }
    matches!(
        loads_sequence(data, 1).as_deref(),
        Ok([Value::Global { module, name }]) if module == "ZODB.blob" && name == "Blob"
    )
}

/// A storage with a blob directory.
pub struct BlobStorage<S> {
    inner: S,
    dir: Arc<BlobDir>,
    /// The blob file being received.
    receiving: Option<TempBlob>,
    /// Complete blob files of the transaction in progress, installed when it votes.
    staged: Vec<(Oid, Tid, TempBlob)>,
    /// Blob files installed by the vote, until the transaction finishes (removed on abort).
    installed: Vec<(Oid, Tid)>,
    /// The records were recovered but the blob directory's recovery failed (a disk
    /// fault): the storage stays failed until it is done (found by zrs-sim: a failed read
    /// of the journal left the blob files of the transactions cut off in place, and the
    /// storage took new transactions).
    unrecovered: bool,
}

impl<S: Storage> BlobStorage<S> {
    /// Adds the blob directory `dir` (created if missing, in ZODB's layout) to `inner`.
    /// Blob files a crash left of transactions `inner` does not hold are removed.
    /// `durable: false` skips fsyncs, for throw-away directories only.
    pub fn open(inner: S, dir: &Path, durable: bool) -> Result<BlobStorage<S>> {
        BlobStorage::open_on(inner, Arc::new(OsFs), dir, durable)
    }

    /// [`BlobStorage::open`] with the blob directory on the file system `fs`.
    pub fn open_on(
        inner: S,
        fs: Arc<dyn BlobFs>,
        dir: &Path,
        durable: bool,
    ) -> Result<BlobStorage<S>> {
        let context = |e: std::io::Error| {
            StorageError::Io(std::io::Error::new(
                e.kind(),
                format!("blob directory {}: {e}", dir.display()),
            ))
        };
        let blobs = BlobDir::create_on(fs, dir, durable).map_err(context)?;
        blobs.recover(inner.last_transaction()).map_err(context)?;
        Ok(BlobStorage {
            inner,
            dir: Arc::new(blobs),
            receiving: None,
            staged: Vec::new(),
            installed: Vec::new(),
            unrecovered: false,
        })
    }

    /// The process dies: installed blob files and temporary files stay as they are (the
    /// next open's recovery deals with them). Returns the inner storage, to crash it too.
    /// For simulation and tests.
    pub fn crash(mut self) -> S {
        if let Some(temp) = self.receiving.take() {
            temp.abandon();
        }
        for (_, _, temp) in self.staged.drain(..) {
            temp.abandon();
        }
        self.inner
    }

    /// The storage the records go to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The blob directory.
    pub fn blob_dir(&self) -> &BlobDir {
        &self.dir
    }

    /// Drops every blob file of the transaction in progress.
    fn discard_blobs(&mut self) {
        self.receiving = None;
        self.staged.clear();
        for (oid, tid) in std::mem::take(&mut self.installed) {
            // Best effort: a file left here is removed by the next open's recovery.
            let _ = self.dir.remove(oid, tid);
        }
    }
}

/// The reads every blob storage and its read handles share.
macro_rules! delegate_reads {
    () => {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn last_transaction(&self) -> Tid {
            self.inner.last_transaction()
        }
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn keeps_blobs(&self) -> bool {
            true
        }
        fn format(&self) -> Option<Format> {
            self.inner.format()
        }
        fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
            self.inner.load(oid)
        }
        fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
            self.inner.load_before(oid, tid)
        }
        fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
            self.inner.load_serial(oid, serial)
        }
        fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
            self.inner.history(oid, size)
        }
        fn iterator<'a>(
            &'a self,
            start: Option<Tid>,
            stop: Option<Tid>,
        ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a> {
            self.inner.iterator(start, stop)
        }
        fn has_transaction(&self, tid: Tid) -> Result<bool> {
            self.inner.has_transaction(tid)
        }
        fn cursor(&self, after: Tid) -> Cursor {
            self.inner.cursor(after)
        }
        fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
            Box::new(BlobReader {
                inner: self.inner.reader(),
                dir: self.dir.clone(),
            })
        }
        fn open_blob(&self, oid: Oid, serial: Tid) -> Result<Option<CommittedBlob>> {
            Ok(self
                .dir
                .open_blob(oid, serial)
                .map_err(|e| blob_error(oid, serial, e))?
                .map(|(len, file)| CommittedBlob { len, file }))
        }
    };
}

fn blob_error(oid: Oid, serial: Tid, e: std::io::Error) -> StorageError {
    StorageError::Blob {
        oid,
        serial,
        what: e.to_string(),
    }
}

impl<S: Storage> ReadStorage for BlobStorage<S> {
    delegate_reads!();
}

/// A read handle on a blob storage: committed records and their blob files. Also what a
/// primary serves when another process (ZODB) writes the storage and its blob directory.
pub struct BlobReader {
    inner: Box<dyn ReadStorage + Send + Sync>,
    dir: Arc<BlobDir>,
}

impl BlobReader {
    /// Reads `inner` with the blob files of the existing blob directory `dir` (its layout
    /// as its `.layout` marker says; nothing is created or written).
    pub fn open(inner: Box<dyn ReadStorage + Send + Sync>, dir: &Path) -> Result<BlobReader> {
        let dir = BlobDir::open_read_only(dir).map_err(|e| {
            StorageError::Io(std::io::Error::new(
                e.kind(),
                format!("blob directory {}: {e}", dir.display()),
            ))
        })?;
        Ok(BlobReader {
            inner,
            dir: Arc::new(dir),
        })
    }
}

impl ReadStorage for BlobReader {
    delegate_reads!();
}

impl<S: Storage> Storage for BlobStorage<S> {
    fn set_format(&mut self, format: Format) -> Result<()> {
        self.inner.set_format(format)
    }
    fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()> {
        if self.unrecovered {
            return Err(StorageError::Io(std::io::Error::other(
                "the blob directory is not recovered yet",
            )));
        }
        self.inner.tpc_begin(meta)?;
        // Left by a transaction that ended without finish or abort, if any.
        self.discard_blobs();
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
        self.inner.restore(oid, serial, data, version, data_txn)
    }
    fn tpc_vote(&mut self) -> Result<()> {
        if self.receiving.is_some() {
            return Err(StorageError::Transaction(
                "vote while a blob file is still being received".into(),
            ));
        }
        self.inner.tpc_vote()?;
        if self.staged.is_empty() {
            return Ok(());
        }
        let entries: Vec<(Oid, Tid)> = self.staged.iter().map(|(o, t, _)| (*o, *t)).collect();
        self.dir.journal_append(&entries)?;
        for (oid, tid, temp) in std::mem::take(&mut self.staged) {
            self.installed.push((oid, tid));
            self.dir
                .install(temp, oid, tid)
                .map_err(|e| blob_error(oid, tid, e))?;
        }
        Ok(())
    }
    fn tpc_finish(&mut self) -> Result<Tid> {
        let tid = self.inner.tpc_finish()?;
        self.installed.clear();
        Ok(tid)
    }
    fn tpc_abort(&mut self) {
        self.inner.tpc_abort();
        if self.inner.failed() {
            // A failed write or fsync (in `tpc_finish`, after the vote installed the blob
            // files): whether the file kept the transaction is unknown until it is
            // recovered or reopened, and a crash may yet make it durable. The files stay,
            // listed in the journal, for that recovery to keep or remove (found by
            // zrs-sim's blob oracle: removing them here left a crash-kept transaction
            // without its blob).
            self.receiving = None;
            self.staged.clear();
            self.installed.clear();
            return;
        }
        self.discard_blobs();
    }
    fn sync(&mut self) -> Result<()> {
        self.inner.sync()?;
        if !self.unrecovered {
            self.dir.journal_clear()?;
        }
        Ok(())
    }
    fn close(&mut self) -> Result<()> {
        self.discard_blobs();
        // The journal goes only once the records are known durable. A storage that cannot
        // be made so — a failed FileStorage, whose close quietly cuts it back to its last
        // synced length — keeps it: the next open removes the blob files of the
        // transactions cut off (found by zrs-sim's blob oracle: a close after a failed
        // fsync left them under their final names).
        let durable = self.inner.sync();
        self.inner.close()?;
        durable?;
        if self.unrecovered {
            // The records were recovered, the blob directory not: the journal stays for
            // the next open's recovery (found by zrs-sim: clearing it here kept the blob
            // files of the transactions the records' recovery had cut off).
            return Ok(());
        }
        self.dir.journal_clear()?;
        Ok(())
    }

    fn failed(&self) -> bool {
        self.inner.failed() || self.unrecovered
    }

    fn recover(&mut self) -> Result<bool> {
        if !self.inner.recover()? && !self.unrecovered {
            return Ok(false);
        }
        // The records went back to what was durable: blob files installed for the
        // transactions cut off go too (the journal lists them), as at an open.
        self.unrecovered = true;
        self.discard_blobs();
        self.dir.recover(self.inner.last_transaction())?;
        self.unrecovered = false;
        Ok(true)
    }

    fn blob_begin(&mut self) -> Result<()> {
        self.receiving = None;
        self.receiving = Some(self.dir.create_temp()?);
        Ok(())
    }
    fn blob_write(&mut self, chunk: &[u8]) -> Result<()> {
        let temp = self
            .receiving
            .as_mut()
            .ok_or_else(|| StorageError::Transaction("blob data without a blob begun".into()))?;
        temp.write(chunk)?;
        Ok(())
    }
    fn restore_blob(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> Result<()> {
        let temp = self.receiving.take().ok_or_else(|| {
            StorageError::Transaction(format!("restoreBlob of {oid:?} without a blob begun"))
        })?;
        self.inner.restore(oid, serial, data, version, data_txn)?;
        self.staged.push((oid, serial, temp));
        Ok(())
    }
    fn copy_blob(&mut self, oid: Oid, from: Tid, serial: Tid) -> Result<()> {
        if crate::planted::planted(crate::planted::Bug::NoUndoBlobCopy) {
            return Ok(());
        }
        if let Some(temp) = self
            .dir
            .copy_to_temp(oid, from)
            .map_err(|e| blob_error(oid, from, e))?
        {
            self.staged.push((oid, serial, temp));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_records_are_recognised() {
        // ZODB 6 / Python 3: protocol 3, GLOBAL then the state pickle.
        assert!(is_blob_record(b"\x80\x03cZODB.blob\nBlob\nq\x00.N."));
        // Protocol 4's STACK_GLOBAL form.
        assert!(is_blob_record(
            b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00\x8c\tZODB.blob\x94\x8c\x04Blob\x94\x93\x94.N."
        ));
        assert!(!is_blob_record(
            b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.}q\x01."
        ));
        assert!(!is_blob_record(b"\x80\x03cZODB.blob\nBlobFile\nq\x00.N."));
        assert!(!is_blob_record(b"ZODB.blob but no pickle"));
        assert!(!is_blob_record(b""));
    }
}
