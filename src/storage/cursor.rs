//! An owned position in a storage's committed transactions: what a primary streams from.
//!
//! A [`Cursor`] holds its own read handle ([`ReadStorage::reader`]) and the tid of the last
//! transaction it returned, so it lives between calls without borrowing the storage and
//! can be kept per connection for as long as the connection lasts. Each
//! [`next`](Cursor::next) asks the storage for the first transaction after that tid; the
//! storages find it from their transaction index (a binary search over tid → position
//! in a FileStorage: no file is scanned, from either end), and read only that
//! transaction. When the cursor has returned the last committed transaction it answers
//! `None`; it returns later commits once they are finished, so one cursor serves a
//! catch-up and then follows new commits.

use super::{ReadStorage, Result, TransactionRecord};
use crate::tid::Tid;

/// An owned cursor over committed transactions; see the module docs.
pub struct Cursor {
    reader: Box<dyn ReadStorage + Send + Sync>,
    /// The last transaction returned (or the start: the tid the cursor was opened after).
    after: Tid,
    /// `after` is the largest tid there is: nothing can follow.
    exhausted: bool,
}

impl Cursor {
    /// A cursor whose first transaction is the first committed after `after` (all of them
    /// for [`Tid::ZERO`]).
    pub fn new(storage: &dyn ReadStorage, after: Tid) -> Cursor {
        Cursor {
            reader: storage.reader(),
            after,
            exhausted: false,
        }
    }

    /// The tid of the last transaction returned, or the start.
    pub fn after(&self) -> Tid {
        self.after
    }

    /// The next committed transaction, or `None` when there is none yet.
    #[allow(clippy::should_implement_trait)] // not an Iterator: `None` is "not yet", not the end
    pub fn next(&mut self) -> Result<Option<TransactionRecord>> {
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

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("storage", &self.reader.name())
            .field("after", &self.after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, Storage, TransactionMeta};
    use crate::tid::Oid;

    fn commit(s: &mut MemoryStorage, n: u64) {
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

    #[test]
    fn returns_what_follows_then_follows_new_commits() {
        let mut s = MemoryStorage::new("Data.fs");
        for n in [10, 20, 30] {
            commit(&mut s, n);
        }
        // Between two tids: from the next one.
        let mut c = Cursor::new(&s, Tid::from_u64(15));
        assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(20));
        assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(30));
        assert!(c.next().unwrap().is_none(), "nothing more yet");
        commit(&mut s, 40);
        assert_eq!(c.next().unwrap().unwrap().meta.tid, Tid::from_u64(40));
        assert_eq!(c.after(), Tid::from_u64(40));
        let mut all = Cursor::new(&s, Tid::ZERO);
        assert_eq!(all.next().unwrap().unwrap().meta.tid, Tid::from_u64(10));
        let mut end = Cursor::new(&s, Tid::from_u64(u64::MAX));
        assert!(end.next().unwrap().is_none());
    }
}
