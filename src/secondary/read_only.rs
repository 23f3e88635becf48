//! A secondary is a read-only storage: reads pass through, writes are refused.

use super::Secondary;
use crate::storage::{Format, HistoryEntry, LoadBefore, Result, Storage, TransactionRecord};
use crate::tid::{Oid, Tid};

impl<S: Storage> Storage for Secondary<S> {
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
    crate::refuse_writes!();
    /// Nothing to abort: a client can never begin a transaction here. Replication's own
    /// transaction is not the client's to abort.
    fn tpc_abort(&mut self) {}
    fn reader(&self) -> Box<dyn Storage + Send + Sync> {
        self.storage.reader()
    }
    fn close(&mut self) -> Result<()> {
        Secondary::close(self)
    }
}
