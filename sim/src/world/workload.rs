//! The workload: commits and undo on the primary's history (the model), each written into
//! the primary node's real storage; a blob directory for that storage; checkpoints of that
//! history for a failover.

use crate::coverage::{BlobKind, Pair};
use crate::primary_node::PrimaryNode;
use crate::workload::database::START_TIME;
use crate::workload::{Change, Meta, RecordBlob};
use zrs::Tid;

use super::{WorkloadError, World};

impl World {
    /// Commits on the primary (at the virtual clock's time, when it is on).
    pub fn commit(&mut self, changes: &[Change], meta: &Meta) -> Result<Tid, WorkloadError> {
        let blobs = changes.iter().any(|c| matches!(c, Change::SetBlob { .. }));
        if blobs && !self.node.keeps_blobs() {
            // As ZODB refuses a Blob on a storage without a blob directory.
            return Err(WorkloadError::Storage(
                "the primary keeps no blob directory: `primary blobs on` first".into(),
            ));
        }
        self.sync_clock();
        let tid = self.primary.commit(changes, meta)?;
        self.store_last()?;
        Ok(tid)
    }

    /// Undoes the `n`-th last transaction on the primary.
    pub fn undo(&mut self, n: usize) -> Result<Tid, WorkloadError> {
        self.sync_clock();
        let tid = self.primary.undo_back(n)?;
        self.store_last()?;
        Ok(tid)
    }

    /// Writes the workload's last transaction into the primary node's storage.
    pub(super) fn store_last(&mut self) -> Result<(), WorkloadError> {
        let last = self.primary.transactions().last().expect("just committed");
        self.node.commit(last).map_err(WorkloadError::Storage)?;
        for r in &last.records {
            let kind = match &r.blob {
                Some(RecordBlob::Written(c)) => BlobKind::of_len(c.len),
                Some(RecordBlob::Copied { .. }) => BlobKind::UndoCopy,
                None => continue,
            };
            self.coverage.note(Pair::Blob(kind));
        }
        Ok(())
    }

    pub(super) fn sync_clock(&mut self) {
        if self.virtual_clock {
            self.primary
                .set_clock(START_TIME as f64 + self.reactor.now().as_secs_f64());
        }
    }

    /// `primary blobs on`: the primary's storage keeps a blob directory (new,
    /// holding the history so far), and so serves `zrs2.1` secondaries only. Before the
    /// primary process first runs.
    pub fn primary_blobs(&mut self) -> Result<(), WorkloadError> {
        if self.node.running() {
            return Err(WorkloadError::Storage(
                "`primary blobs on` must come before the primary first serves".into(),
            ));
        }
        if self.node.keeps_blobs() {
            return Ok(());
        }
        let mut node =
            PrimaryNode::with_blobs(self.node.address().clone()).map_err(WorkloadError::Storage)?;
        for t in self.primary.transactions() {
            node.commit(t).map_err(WorkloadError::Storage)?;
        }
        self.node = node;
        Ok(())
    }

    /// `primary checkpoint`: remembers the workload's history as it is now.
    pub fn checkpoint(&mut self) {
        self.checkpoint = Some(self.primary.clone());
    }
}
