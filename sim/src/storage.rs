//! Storages for simulated secondaries.
//!
//! [`SimStorage`] is the storage a simulated secondary replicates into: a handle that
//! outlives the secondary process, like a file on a disk. A closed secondary keeps its
//! handle (its late timers may still fire, as in zc.zrs); a new secondary opened with
//! `restart` gets another handle on the same storage. [`SimStorage::crash`] is a process
//! crash: a MemoryStorage drops the transaction in progress, a FileStorage is dropped
//! without cleanup and its [`SimDisk`] decides what survived; [`SimStorage::reopen`] then
//! opens it again (a FileStorage scans its file and cuts off a damaged tail).
//!
//! A storage that keeps blobs has its blob directory ([`BlobPlace`]) on the same simulated
//! disk as its FileStorage (one crash, one set of faults for both), on a simulated disk
//! of its own beside a MemoryStorage (never crashed: a process crash loses nothing a
//! file system holds), or on the host's file system beside a FileStorage in a real file.
//!
//! The handle also records whether a transaction is in progress, for the oracle that no
//! partial transaction survives a disconnect.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use zrs::storage::blob::fs::{BlobFs, OsFs};
use zrs::storage::file::backend::{Backend, FileBackend};
use zrs::storage::file::{Durability, FileStorage, Options};
use zrs::storage::memory::MemoryStorage;
use zrs::storage::{
    BlobStorage, CommittedBlob, Format, HistoryEntry, LoadBefore, ReadStorage,
    Result as StorageResult, Storage, StorageError, TransactionMeta, TransactionRecord,
};
use zrs::{Oid, Tid};

use crate::disk::{CrashReport, SimDisk};

/// Opens (or creates) the FileStorage at `path`, named `name` as ZODB would name it, with
/// production durability (fsync at every finish).
///
/// `durable: false` is for runs in a throw-away directory: the storage's code is the same,
/// but its backend's fsync does nothing — it would cost more than the whole run and prove
/// nothing about a directory deleted at the end.
pub fn open_file_storage(
    name: &str,
    path: &Path,
    durable: bool,
) -> std::result::Result<FileStorage, String> {
    let error = |e: &dyn std::fmt::Display| format!("opening {}: {e}", path.display());
    let file = FileBackend::open(path, false).map_err(|e| error(&e))?;
    let backend: Box<dyn Backend> = if durable {
        Box::new(file)
    } else {
        Box::new(Scratch(file))
    };
    FileStorage::open_with_backend(name, backend, Options::default()).map_err(|e| error(&e))
}

/// A file whose fsyncs are skipped (scratch files only).
#[derive(Debug)]
struct Scratch(FileBackend);

impl Backend for Scratch {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(pos, buf)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_at(pos, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a storage lives, to reopen it.
#[derive(Clone, Debug)]
pub enum Place {
    Memory,
    /// A real file.
    File {
        path: PathBuf,
        durable: bool,
    },
    /// A FileStorage on a simulated disk.
    Disk {
        disk: Arc<SimDisk>,
        durability: Durability,
    },
}

/// Where a storage's blob directory is.
#[derive(Clone, Debug)]
pub struct BlobPlace {
    /// Its path on the file system.
    pub root: PathBuf,
    /// The simulated disk it is on; `None`: the host's file system.
    pub disk: Option<Arc<SimDisk>>,
}

impl BlobPlace {
    /// On a simulated disk.
    pub fn simulated(disk: Arc<SimDisk>, root: impl Into<PathBuf>) -> BlobPlace {
        BlobPlace {
            root: root.into(),
            disk: Some(disk),
        }
    }

    /// The file system it is on.
    pub fn fs(&self) -> Arc<dyn BlobFs> {
        match &self.disk {
            Some(disk) => disk.clone(),
            None => Arc::new(OsFs),
        }
    }

    /// Runs `f` on the directory's file system and root with disk faults held back (the
    /// oracles' and the `blobs` step's reads must neither consume nor meet them).
    pub fn inspect<R>(&self, f: impl FnOnce(&dyn BlobFs, &Path) -> R) -> R {
        match &self.disk {
            Some(disk) => disk.without_faults(|| f(&**disk, &self.root)),
            None => f(&OsFs, &self.root),
        }
    }
}

enum Inner {
    Memory(MemoryStorage),
    File(FileStorage),
    /// With a blob directory (`open … blobs=on`).
    BlobMemory(BlobStorage<MemoryStorage>),
    BlobFile(BlobStorage<FileStorage>),
}

struct Slot {
    place: Place,
    /// The blob directory, for storages that keep blobs.
    blobs: Option<BlobPlace>,
    /// `None` after a crash, until reopened.
    storage: Option<Inner>,
    in_transaction: bool,
    /// A blob file is being received (begun, not yet restored with its record).
    in_blob: bool,
}

/// A shared handle on a simulated secondary's storage.
#[derive(Clone)]
pub struct SimStorage {
    name: Arc<str>,
    slot: Arc<Mutex<Slot>>,
}

impl SimStorage {
    /// Opens a storage at `place`, keeping blobs in `blobs` when given (a directory on the
    /// host's file system is fsynced only where the storage's file is durable).
    pub fn open(
        name: &str,
        place: Place,
        blobs: Option<BlobPlace>,
    ) -> std::result::Result<SimStorage, String> {
        let storage = open_inner(name, &place, blobs.as_ref())?;
        Ok(SimStorage {
            name: Arc::from(name),
            slot: Arc::new(Mutex::new(Slot {
                place,
                blobs,
                storage: Some(storage),
                in_transaction: false,
                in_blob: false,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every change is a whole storage call under the lock: a poisoned lock is usable.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a transaction is begun and neither finished nor aborted.
    pub fn in_transaction(&self) -> bool {
        self.lock().in_transaction
    }

    /// Whether a blob file is being received (for coverage: faults that strike mid-blob).
    pub fn receiving_blob(&self) -> bool {
        self.lock().in_blob
    }

    /// The simulated disk, for storages on one.
    pub fn disk(&self) -> Option<Arc<SimDisk>> {
        match &self.lock().place {
            Place::Disk { disk, .. } => Some(disk.clone()),
            _ => None,
        }
    }

    /// Whether the storage is one whose disk failed it (it refuses everything until the
    /// secondary recovers or reopens it), or is crashed.
    pub fn failed(&self) -> bool {
        match &self.lock().storage {
            Some(Inner::File(s)) => s.failed(),
            Some(Inner::BlobFile(s)) => s.failed(),
            Some(Inner::BlobMemory(s)) => s.failed(),
            Some(Inner::Memory(_)) => false,
            None => true,
        }
    }

    /// The blob directory, for storages that keep blobs.
    pub fn blob_dir(&self) -> Option<BlobPlace> {
        self.lock().blobs.clone()
    }

    /// The path of a storage in a real file.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.lock().place {
            Place::File { path, .. } => Some(path.clone()),
            _ => None,
        }
    }

    /// Runs `f` on the storage as it is now (`None` while crashed).
    pub fn with<R>(&self, f: impl FnOnce(Option<&dyn ReadStorage>) -> R) -> R {
        let slot = self.lock();
        match &slot.storage {
            Some(Inner::Memory(s)) => f(Some(s)),
            Some(Inner::File(s)) => f(Some(s)),
            Some(Inner::BlobMemory(s)) => f(Some(s)),
            Some(Inner::BlobFile(s)) => f(Some(s)),
            None => f(None),
        }
    }

    /// The process crashes: nothing unfinished survives; on a simulated disk, unsynced
    /// writes are lost except the first `keep`, and `tear` bytes of the next.
    pub fn crash(&self, keep: usize, tear: usize) -> Option<CrashReport> {
        let mut slot = self.lock();
        slot.in_transaction = false;
        slot.in_blob = false;
        match slot.storage.take() {
            Some(Inner::Memory(mut s)) => {
                // Finished transactions are kept; the storage stays usable (reopened).
                s.crash();
                slot.storage = Some(Inner::Memory(s));
                None
            }
            Some(Inner::File(s)) => {
                s.crash();
                match &slot.place {
                    Place::Disk { disk, .. } => Some(disk.crash(keep, tear)),
                    _ => None,
                }
            }
            Some(Inner::BlobMemory(s)) => {
                // Blob files stay as they are; reopening recovers the directory.
                let mut m = s.crash();
                m.crash();
                let blobs = slot
                    .blobs
                    .clone()
                    .expect("a blob storage has a blob directory");
                slot.storage = open_blobs(m, &blobs, true).map(Inner::BlobMemory).ok();
                None
            }
            Some(Inner::BlobFile(s)) => {
                s.crash().crash();
                match &slot.place {
                    Place::Disk { disk, .. } => Some(disk.crash(keep, tear)),
                    _ => None,
                }
            }
            None => None,
        }
    }

    /// Opens the storage again (after a crash or a close) for a new secondary.
    pub fn reopen(&self) -> std::result::Result<(), String> {
        let mut slot = self.lock();
        slot.in_transaction = false;
        slot.in_blob = false;
        match slot.storage.take() {
            Some(Inner::Memory(mut s)) => {
                // A MemoryStorage's crash is its restart: usable again, finished data kept.
                s.crash();
                slot.storage = Some(Inner::Memory(s));
            }
            Some(Inner::File(mut s)) => {
                // Closed already (or closing now): only then is the file free to reopen.
                let _ = s.close();
                drop(s);
                slot.storage = Some(open_inner(&self.name, &slot.place, None)?);
            }
            Some(Inner::BlobMemory(s)) => {
                let mut m = s.crash();
                m.crash();
                let blobs = slot
                    .blobs
                    .clone()
                    .expect("a blob storage has a blob directory");
                slot.storage = Some(Inner::BlobMemory(
                    open_blobs(m, &blobs, true).map_err(|e| e.to_string())?,
                ));
            }
            Some(Inner::BlobFile(mut s)) => {
                let _ = s.close();
                drop(s);
                let blobs = slot.blobs.clone();
                slot.storage = Some(open_inner(&self.name, &slot.place, blobs.as_ref())?);
            }
            None => {
                let blobs = slot.blobs.clone();
                slot.storage = Some(open_inner(&self.name, &slot.place, blobs.as_ref())?);
            }
        }
        Ok(())
    }
}

/// `inner` with the blob directory at `blobs`.
fn open_blobs<S: Storage>(
    inner: S,
    blobs: &BlobPlace,
    durable: bool,
) -> StorageResult<BlobStorage<S>> {
    BlobStorage::open_on(inner, blobs.fs(), &blobs.root, durable)
}

fn open_inner(
    name: &str,
    place: &Place,
    blobs: Option<&BlobPlace>,
) -> std::result::Result<Inner, String> {
    let inner = open_plain(name, place)?;
    let Some(blobs) = blobs else {
        return Ok(inner);
    };
    // On the host's file system, fsyncs only where the storage's file is durable: a
    // scratch directory's would cost more than the run. A simulated disk's are its
    // crash model.
    let durable = match place {
        Place::File { durable, .. } => *durable,
        Place::Memory | Place::Disk { .. } => true,
    };
    let error =
        |e: StorageError| format!("opening the blob directory {}: {e}", blobs.root.display());
    Ok(match inner {
        Inner::Memory(m) => Inner::BlobMemory(open_blobs(m, blobs, durable).map_err(error)?),
        Inner::File(f) => Inner::BlobFile(open_blobs(f, blobs, durable).map_err(error)?),
        blob => blob,
    })
}

fn open_plain(name: &str, place: &Place) -> std::result::Result<Inner, String> {
    Ok(match place {
        Place::Memory => Inner::Memory(MemoryStorage::new(name)),
        Place::File { path, durable } => Inner::File(open_file_storage(name, path, *durable)?),
        Place::Disk { disk, durability } => {
            let options = Options {
                read_only: false,
                durability: *durability,
            };
            Inner::File(
                FileStorage::open_with_backend(name, Box::new(disk.clone()), options)
                    .map_err(|e| format!("opening {name} on the simulated disk: {e}"))?,
            )
        }
    })
}

/// Delegates a call to the storage, or answers `$none` while crashed.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr, $none:expr) => {{
        let mut slot = $self.lock();
        match slot.storage.as_mut() {
            Some(Inner::Memory($s)) => $call,
            Some(Inner::File($s)) => $call,
            Some(Inner::BlobMemory($s)) => $call,
            Some(Inner::BlobFile($s)) => $call,
            None => $none,
        }
    }};
}

impl ReadStorage for SimStorage {
    fn name(&self) -> &str {
        &self.name
    }
    fn last_transaction(&self) -> Tid {
        delegate!(self, s => s.last_transaction(), Tid::ZERO)
    }
    fn len(&self) -> usize {
        delegate!(self, s => s.len(), 0)
    }
    fn size(&self) -> u64 {
        delegate!(self, s => s.size(), 0)
    }
    fn keeps_blobs(&self) -> bool {
        delegate!(self, s => s.keeps_blobs(), false)
    }
    fn open_blob(&self, oid: Oid, serial: Tid) -> StorageResult<Option<CommittedBlob>> {
        delegate!(self, s => s.open_blob(oid, serial), Err(StorageError::Closed))
    }
    fn format(&self) -> Option<Format> {
        delegate!(self, s => s.format(), None)
    }
    fn load(&self, oid: Oid) -> StorageResult<(Vec<u8>, Tid)> {
        delegate!(self, s => s.load(oid), Err(StorageError::Closed))
    }
    fn load_before(&self, oid: Oid, tid: Tid) -> StorageResult<Option<LoadBefore>> {
        delegate!(self, s => s.load_before(oid, tid), Err(StorageError::Closed))
    }
    fn load_serial(&self, oid: Oid, serial: Tid) -> StorageResult<Vec<u8>> {
        delegate!(self, s => s.load_serial(oid, serial), Err(StorageError::Closed))
    }
    fn history(&self, oid: Oid, size: usize) -> StorageResult<Vec<HistoryEntry>> {
        delegate!(self, s => s.history(oid, size), Err(StorageError::Closed))
    }
    fn iterator<'a>(
        &'a self,
        start: Option<Tid>,
        stop: Option<Tid>,
    ) -> Box<dyn Iterator<Item = StorageResult<TransactionRecord>> + 'a> {
        // Collected: the lock cannot be held by a returned iterator.
        let items: Vec<_> = delegate!(
            self,
            s => s.iterator(start, stop).collect(),
            vec![Err(StorageError::Closed)]
        );
        Box::new(items.into_iter())
    }
    fn has_transaction(&self, tid: Tid) -> StorageResult<bool> {
        delegate!(self, s => s.has_transaction(tid), Err(StorageError::Closed))
    }
    fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
        delegate!(self, s => s.reader(), Box::new(MemoryStorage::new("crashed").reader()))
    }
    fn cursor(&self, after: Tid) -> zrs::storage::Cursor {
        // The storage's own cursor (this handle's iterator collects: it cannot lend its lock).
        delegate!(self, s => s.cursor(after), MemoryStorage::new("crashed").cursor(after))
    }
}

impl Storage for SimStorage {
    fn set_format(&mut self, format: Format) -> StorageResult<()> {
        delegate!(self, s => s.set_format(format), Err(StorageError::Closed))
    }
    fn tpc_begin(&mut self, meta: TransactionMeta) -> StorageResult<()> {
        let mut slot = self.lock();
        let r = match slot.storage.as_mut() {
            Some(Inner::Memory(s)) => s.tpc_begin(meta),
            Some(Inner::File(s)) => s.tpc_begin(meta),
            Some(Inner::BlobMemory(s)) => s.tpc_begin(meta),
            Some(Inner::BlobFile(s)) => s.tpc_begin(meta),
            None => Err(StorageError::Closed),
        };
        if r.is_ok() {
            slot.in_transaction = true;
        }
        r
    }
    fn restore(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> StorageResult<()> {
        delegate!(self, s => s.restore(oid, serial, data, version, data_txn), Err(StorageError::Closed))
    }
    fn tpc_vote(&mut self) -> StorageResult<()> {
        delegate!(self, s => s.tpc_vote(), Err(StorageError::Closed))
    }
    fn tpc_finish(&mut self) -> StorageResult<Tid> {
        let mut slot = self.lock();
        let r = match slot.storage.as_mut() {
            Some(Inner::Memory(s)) => s.tpc_finish(),
            Some(Inner::File(s)) => s.tpc_finish(),
            Some(Inner::BlobMemory(s)) => s.tpc_finish(),
            Some(Inner::BlobFile(s)) => s.tpc_finish(),
            None => Err(StorageError::Closed),
        };
        if r.is_ok() {
            slot.in_transaction = false;
        }
        r
    }
    fn tpc_abort(&mut self) {
        let mut slot = self.lock();
        slot.in_transaction = false;
        slot.in_blob = false;
        match slot.storage.as_mut() {
            Some(Inner::Memory(s)) => s.tpc_abort(),
            Some(Inner::File(s)) => s.tpc_abort(),
            Some(Inner::BlobMemory(s)) => s.tpc_abort(),
            Some(Inner::BlobFile(s)) => s.tpc_abort(),
            None => {}
        }
    }
    fn sync(&mut self) -> StorageResult<()> {
        delegate!(self, s => s.sync(), Err(StorageError::Closed))
    }
    fn close(&mut self) -> StorageResult<()> {
        let mut slot = self.lock();
        slot.in_transaction = false;
        slot.in_blob = false;
        match slot.storage.as_mut() {
            Some(Inner::Memory(s)) => s.close(),
            Some(Inner::File(s)) => s.close(),
            Some(Inner::BlobMemory(s)) => s.close(),
            Some(Inner::BlobFile(s)) => s.close(),
            None => Ok(()),
        }
    }
    fn recover(&mut self) -> StorageResult<bool> {
        delegate!(self, s => s.recover(), Err(StorageError::Closed))
    }
    fn blob_begin(&mut self) -> StorageResult<()> {
        let r = delegate!(self, s => s.blob_begin(), Err(StorageError::Closed));
        self.lock().in_blob = r.is_ok();
        r
    }
    fn blob_write(&mut self, chunk: &[u8]) -> StorageResult<()> {
        delegate!(self, s => s.blob_write(chunk), Err(StorageError::Closed))
    }
    fn restore_blob(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&[u8]>,
        version: &[u8],
        data_txn: Option<Tid>,
    ) -> StorageResult<()> {
        let r = delegate!(self, s => s.restore_blob(oid, serial, data, version, data_txn), Err(StorageError::Closed));
        self.lock().in_blob = false;
        r
    }
    fn copy_blob(&mut self, oid: Oid, from: Tid, serial: Tid) -> StorageResult<()> {
        delegate!(self, s => s.copy_blob(oid, from, serial), Err(StorageError::Closed))
    }
}
