//! A secondary is a read-only storage: it reads its storage and has no write methods
//! (replication's writes reach the storage through the secondary's stream only).

use super::Secondary;
use crate::storage::{
    CommittedBlob, Cursor, Format, HistoryEntry, LoadBefore, ReadStorage, Result, Storage,
    TransactionRecord,
};
use crate::tid::{Oid, Tid};

impl<S: Storage> ReadStorage for Secondary<S> {
    fn name(&self) -> &str {
        self.storage.name()
    }
    fn last_transaction(&self) -> Tid {
        self.storage.last_transaction()
    }
    fn len(&self) -> usize {
        self.storage.len()
    }
    fn size(&self) -> u64 {
        self.storage.size()
    }
    fn format(&self) -> Option<Format> {
        self.storage.format()
    }
    fn keeps_blobs(&self) -> bool {
        self.storage.keeps_blobs()
    }
    fn open_blob(&self, oid: Oid, serial: Tid) -> Result<Option<CommittedBlob>> {
        self.storage.open_blob(oid, serial)
    }
    fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
        self.storage.load(oid)
    }
    fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
        self.storage.load_before(oid, tid)
    }
    fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
        self.storage.load_serial(oid, serial)
    }
    fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
        self.storage.history(oid, size)
    }
    fn iterator<'a>(
        &'a self,
        start: Option<Tid>,
        stop: Option<Tid>,
    ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a> {
        self.storage.iterator(start, stop)
    }
    fn has_transaction(&self, tid: Tid) -> Result<bool> {
        self.storage.has_transaction(tid)
    }
    fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
        self.storage.reader()
    }
    fn cursor(&self, after: Tid) -> Cursor {
        self.storage.cursor(after)
    }
}
