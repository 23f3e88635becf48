//! An owned position in a storage's committed transactions: what a primary streams from.
//!
//! A cursor ([`ReadStorage::cursor`]) holds its own handle on the storage and its place in
//! it, so it lives between calls without borrowing the storage and is kept per connection
//! for as long as the connection lasts. [`TransactionCursor::next`] returns the next
//! committed transaction after the last one returned; when there is none yet it answers
//! `None`, and returns later commits once they are finished, so one cursor serves a
//! catch-up and then follows new commits.
//!
//! How a storage finds the start and moves on is its own: a FileStorage's cursor keeps the
//! file position of the next transaction header (each step reads one transaction; the
//! start is found from the transaction marks of its index, a binary search and a walk of
//! at most 31 headers — never a scan from either end of the file). [`IteratorCursor`], the
//! default, asks [`ReadStorage::iterator`] for the first transaction after the last one
//! returned at every step: right for storages whose iterator starts in O(log n) (the
//! MemoryStorage).

use super::{ReadStorage, Result, TransactionRecord};
use crate::tid::Tid;

/// An owned cursor over committed transactions; see the module docs.
pub trait TransactionCursor: Send {
    /// The next committed transaction, or `None` when there is none yet.
    fn next(&mut self) -> Result<Option<TransactionRecord>>;
    /// The tid of the last transaction returned, or the one the cursor started after.
    fn after(&self) -> Tid;
}

/// A boxed cursor, as [`ReadStorage::cursor`] returns it.
pub type Cursor = Box<dyn TransactionCursor>;

/// The default cursor, over [`ReadStorage::iterator`]; see the module docs.
pub struct IteratorCursor {
    reader: Box<dyn ReadStorage + Send + Sync>,
    /// The last transaction returned (or the start: the tid the cursor was opened after).
    after: Tid,
    /// `after` is the largest tid there is: nothing can follow.
    exhausted: bool,
}

impl IteratorCursor {
    /// A cursor whose first transaction is the first committed after `after` (all of them
    /// for [`Tid::ZERO`]).
    pub fn new(storage: &(impl ReadStorage + ?Sized), after: Tid) -> IteratorCursor {
        IteratorCursor {
            reader: storage.reader(),
            after,
            exhausted: false,
        }
    }
}

impl TransactionCursor for IteratorCursor {
    fn after(&self) -> Tid {
        self.after
    }

    fn next(&mut self) -> Result<Option<TransactionRecord>> {
        if self.exhausted {
            return Ok(None);
        }
        let Some(first) = self.after.as_u64().checked_add(1) else {
            self.exhausted = true;
            return Ok(None);
        };
        let next = self
            .reader
            .iterator(Some(Tid::from_u64(first)), None)
            .next()
            .transpose()?;
        if let Some(txn) = &next {
            self.after = txn.meta.tid;
        }
        Ok(next)
    }
}

impl std::fmt::Debug for IteratorCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IteratorCursor")
            .field("storage", &self.reader.name())
            .field("after", &self.after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::file::backend::MemoryBackend;
    use crate::storage::{FileStorage, MemoryStorage, Options, Storage, TransactionMeta};
    use crate::tid::Oid;

    fn commit(s: &mut dyn Storage, n: u64) {
        let tid = Tid::from_u64(n);
        s.tpc_begin(TransactionMeta {
            tid,
            status: b' ',
            user: Vec::new(),
            description: Vec::new(),
            extension: Vec::new(),
        })
        .unwrap();
        s.restore(Oid::from_u64(n), tid, Some(b"x"), b"", None)
            .unwrap();
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
    }

    /// Both kinds of cursor: the default (MemoryStorage) and the FileStorage's.
    fn storages() -> Vec<Box<dyn Storage>> {
        let file = FileStorage::open_with_backend(
            "Data.fs",
            Box::new(MemoryBackend::new()),
            Options::default(),
        )
        .unwrap();
        vec![Box::new(MemoryStorage::new("Data.fs")), Box::new(file)]
    }

    #[test]
    fn returns_what_follows_then_follows_new_commits() {
        for mut s in storages() {
            // Enough transactions for the FileStorage's index to skip some.
            for n in 1..=100 {
                commit(&mut *s, n * 10);
            }
            // Between two tids: from the next one.
            let mut c = s.cursor(Tid::from_u64(415));
            assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(420));
            let mut c = s.cursor(Tid::from_u64(990));
            assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(1000));
            assert!(c.next().unwrap().is_none(), "nothing more yet");
            commit(&mut *s, 1010);
            assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(1010));
            assert_eq!(c.after(), Tid::from_u64(1010));
            assert!(c.next().unwrap().is_none());
            let mut all = s.cursor(Tid::ZERO);
            let tids: Vec<u64> = std::iter::from_fn(|| all.next().unwrap())
                .map(|t| t.meta.tid.as_u64())
                .collect();
            assert_eq!(tids, (1..=101).map(|n| n * 10).collect::<Vec<_>>());
            let mut end = s.cursor(Tid::from_u64(u64::MAX));
            assert!(end.next().unwrap().is_none());
            assert!(s.has_transaction(Tid::from_u64(420)).unwrap());
            assert!(!s.has_transaction(Tid::from_u64(415)).unwrap());
            assert!(!s.has_transaction(Tid::from_u64(2000)).unwrap());
        }
    }
}
