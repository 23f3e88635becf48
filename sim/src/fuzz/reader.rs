//! The reader's-eye oracles: the replica's bytes as another program would read them.
//!
//! - [`Oracle::Reader`]: after every quiescent step (no transaction in progress, the storage
//!   neither crashed nor failed) the replica's Data.fs, read as Python ZODB reads it — from
//!   the start, transaction by transaction, stopping at the first one that is not whole or
//!   whose status is the checkpoint `'c'` — ends exactly where the file does, holds as many
//!   transactions as the storage reports, and equals byte for byte the primary's Data.fs
//!   truncated after the same transaction. The primary's Data.fs is the reference file
//!   its history makes when restored into a FileStorage in memory (the write path ZODB's
//!   `copyTransactionsFrom` takes), built as far as needed.
//! - [`Oracle::Durable`]: on a simulated disk, what is durable (what a crash would leave) is
//!   a clean Data.fs, but for a damaged tail that the next open cuts off: no damage with a
//!   whole transaction after it. A storage that retries a failed fsync and carries on breaks
//!   it: the forgotten writes leave a hole in the durable image, followed by what the later
//!   fsync saved.
//!
//! Both are incremental: the disk reports the lowest position changed since the last look
//! ([`SimDisk::take_low_water`](crate::disk::SimDisk::take_low_water)), and only bytes from
//! there on are compared again.

use std::sync::Arc;

use zrs::pickle::dumps_extension;
use zrs::storage::file::backend::{Backend, MemoryBackend};
use zrs::storage::{FileStorage, Options, ReadStorage, Storage, TransactionMeta};

use crate::storage::SimStorage;
use crate::workload::Transaction;

use super::oracle::{Oracle, Violation};

/// Where Python ZODB's reading of a Data.fs stops.
#[derive(Debug, PartialEq, Eq)]
pub struct PythonView {
    /// Whole transactions read.
    pub transactions: usize,
    /// Where the last one ends.
    pub end: u64,
    /// Why the reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

const TXN_HEADER_LEN: u64 = 23;

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads transaction headers from `from` (a transaction boundary after `count` of them) as
/// ZODB's `FileStorage.read_index` walks them: stopping at a checkpoint status, a bad
/// status, a transaction running past the end, or a redundant length that disagrees.
pub fn python_view(bytes: &[u8], from: u64, count: usize) -> PythonView {
    let len = bytes.len() as u64;
    let mut view = PythonView {
        transactions: count,
        end: from,
        stopped: None,
    };
    if from == 0 {
        if bytes.len() < 4 || !(bytes.starts_with(b"FS30") || bytes.starts_with(b"FS21")) {
            view.stopped = Some("no Data.fs magic".into());
            return view;
        }
        view.end = 4;
    }
    let mut pos = view.end;
    while pos < len {
        let stop = |what: String| Some(format!("at byte {pos}: {what}"));
        if len - pos < TXN_HEADER_LEN {
            view.stopped = stop("a transaction header cut short".into());
            break;
        }
        let p = pos as usize;
        let tlen = be64(bytes, p + 8);
        let status = bytes[p + 16];
        if status == b'c' {
            view.stopped = stop("a transaction with the checkpoint status 'c'".into());
            break;
        }
        if ![b' ', b'p', b'u'].contains(&status) {
            view.stopped = stop(format!("status {:?}", status as char));
            break;
        }
        let Some(end) = pos
            .checked_add(tlen)
            .filter(|e| e.checked_add(8).is_some_and(|e8| e8 <= len))
        else {
            view.stopped = stop(format!(
                "a transaction of {tlen} bytes running past the end"
            ));
            break;
        };
        if tlen < TXN_HEADER_LEN || be64(bytes, end as usize) != tlen {
            view.stopped = stop("a redundant length that disagrees".into());
            break;
        }
        pos = end + 8;
        view.transactions += 1;
        view.end = pos;
    }
    view
}

/// Where a whole committed transaction ends the file, found from its trailing redundant
/// length, if one starts at or after `after`.
fn complete_transaction_at_end(bytes: &[u8], after: u64) -> Option<u64> {
    let len = bytes.len() as u64;
    if len < after + TXN_HEADER_LEN + 8 {
        return None;
    }
    let tlen = be64(bytes, len as usize - 8);
    let start = (len - 8).checked_sub(tlen).filter(|s| *s >= after)?;
    let p = start as usize;
    let whole = tlen >= TXN_HEADER_LEN
        && be64(bytes, p + 8) == tlen
        && [b' ', b'p', b'u'].contains(&bytes[p + 16]);
    whole.then_some(start)
}

/// The primary's history written as a Data.fs.
struct Reference {
    backend: Arc<MemoryBackend>,
    storage: FileStorage,
    /// Where each transaction ends (`ends[i]`: after `i + 1` of them).
    ends: Vec<u64>,
}

impl Reference {
    fn new() -> Reference {
        let backend = Arc::new(MemoryBackend::new());
        let storage = FileStorage::open_with_backend(
            "reference.fs",
            Box::new(backend.clone()),
            Options::default(),
        )
        .expect("a FileStorage in memory opens");
        Reference {
            backend,
            storage,
            ends: Vec::new(),
        }
    }

    /// Written as far as `n` transactions of `history`.
    fn extend(&mut self, history: &[Transaction], n: usize) -> Result<(), String> {
        while self.ends.len() < n.min(history.len()) {
            let t = &history[self.ends.len()];
            let s = &mut self.storage;
            let meta = TransactionMeta {
                tid: t.tid,
                status: t.status,
                user: t.user.clone(),
                description: t.description.clone(),
                extension: dumps_extension(&t.extension),
            };
            let e = |e: zrs::storage::StorageError| format!("writing the reference file: {e}");
            s.tpc_begin(meta).map_err(e)?;
            for r in &t.records {
                s.restore(r.oid, t.tid, r.data.as_deref(), b"", r.data_txn)
                    .map_err(e)?;
            }
            s.tpc_vote().map_err(e)?;
            s.tpc_finish().map_err(e)?;
            self.ends.push(self.storage.size());
        }
        Ok(())
    }
}

/// What the reader's-eye oracles remember between checks.
#[derive(Default)]
pub struct ReaderCheck {
    reference: Option<Reference>,
    /// Python's view of the replica as far as verified: every byte before `view.end` equals
    /// the reference.
    verified: Option<PythonView>,
    /// Python's view of the durable image as far as verified clean.
    durable_verified: Option<PythonView>,
}

fn violation(oracle: Oracle, message: String) -> Violation {
    Violation { oracle, message }
}

impl ReaderCheck {
    /// Checks the storage's file against `history`; `transactions` is how many the storage
    /// reports (the prefix oracle has just read them).
    pub fn check(
        &mut self,
        storage: &SimStorage,
        history: &[Transaction],
        transactions: usize,
    ) -> Result<(), Violation> {
        if let Some(disk) = storage.disk() {
            let (low, durable_low) = disk.take_low_water();
            if let Some(v) = &self.verified {
                if low < v.end {
                    self.verified = None;
                }
            }
            if let Some(v) = &self.durable_verified {
                if durable_low < v.end {
                    self.durable_verified = None;
                }
            }
            if storage.failed() {
                // The file's state is unknown until the storage is reopened; only the
                // durable image is held to what reads see.
                return disk.with_contents(|_, durable| self.durable(durable));
            }
            let quiet = !storage.in_transaction();
            disk.with_contents(|current, durable| {
                self.durable(durable)?;
                if quiet {
                    self.reader(current, history, transactions)?;
                }
                Ok(())
            })
        } else if let Some(path) = storage.path() {
            if storage.failed() || storage.in_transaction() {
                return Ok(());
            }
            // Scenario runs only (campaigns use memory or the simulated disk): read it all.
            let bytes = std::fs::read(&path).map_err(|e| {
                violation(
                    Oracle::Reader,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            self.verified = None;
            self.reader(&bytes, history, transactions)
        } else {
            Ok(())
        }
    }

    fn durable(&mut self, durable: &[u8]) -> Result<(), Violation> {
        if durable.is_empty() {
            return Ok(());
        }
        let (from, count) = match &self.durable_verified {
            Some(v) if v.end <= durable.len() as u64 => (v.end, v.transactions),
            _ => (0, 0),
        };
        let view = python_view(durable, from, count);
        if let Some(why) = &view.stopped {
            // A damaged tail is what a crash leaves, and an open cuts it off (a truncation a
            // failed fsync forgot leaves one too); damage with a whole transaction after it
            // is a hole no open repairs.
            if let Some(at) = complete_transaction_at_end(durable, view.end) {
                return Err(violation(
                    Oracle::Durable,
                    format!(
                        "what the disk made durable has a hole: reading it stops {why}, yet a \
                         whole transaction follows at byte {at} (a crash would leave that)"
                    ),
                ));
            }
            return Ok(());
        }
        self.durable_verified = Some(view);
        Ok(())
    }

    fn reader(
        &mut self,
        bytes: &[u8],
        history: &[Transaction],
        transactions: usize,
    ) -> Result<(), Violation> {
        let fail = |m: String| Err(violation(Oracle::Reader, m));
        if bytes.is_empty() {
            // A new file gets its magic with its first transaction.
            if transactions > 0 {
                return fail(format!(
                    "the replica is empty, the storage reports {transactions} transactions"
                ));
            }
            return Ok(());
        }
        let (from, count) = match &self.verified {
            Some(v) if v.end <= bytes.len() as u64 => (v.end, v.transactions),
            _ => (0, 0),
        };
        let view = python_view(bytes, from, count);
        if let Some(why) = &view.stopped {
            return fail(format!(
                "Python ZODB would stop reading the replica {why}, after {} transactions; \
                 the file goes on to byte {}",
                view.transactions,
                bytes.len()
            ));
        }
        if view.transactions != transactions {
            return fail(format!(
                "Python ZODB reads {} transactions in the replica, the storage reports {}",
                view.transactions, transactions
            ));
        }
        if view.transactions == 0 {
            // The magic alone (a first transaction that was aborted leaves it): an empty
            // database, as Python reads it.
            self.verified = Some(view);
            return Ok(());
        }
        let reference = self.reference.get_or_insert_with(Reference::new);
        reference
            .extend(history, view.transactions)
            .map_err(|m| violation(Oracle::Reader, m))?;
        if view.transactions > history.len() {
            return fail(format!(
                "the replica holds {} transactions, the primary committed {}",
                view.transactions,
                history.len()
            ));
        }
        let want_end = reference.ends[view.transactions - 1];
        if want_end != view.end {
            return fail(format!(
                "the replica's {} transactions end at byte {}, the primary's at {want_end}",
                view.transactions, view.end
            ));
        }
        let start = from as usize;
        let mut want = vec![0u8; view.end as usize - start];
        reference
            .backend
            .read_exact_at(from, &mut want)
            .map_err(|e| violation(Oracle::Reader, format!("reading the reference file: {e}")))?;
        if let Some(i) = bytes[start..view.end as usize]
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
        {
            return fail(format!(
                "the replica differs from the primary's Data.fs at byte {}",
                start + i
            ));
        }
        self.verified = Some(view);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(status: u8, body: usize) -> Vec<u8> {
        let tlen = TXN_HEADER_LEN + body as u64;
        let mut t = vec![0u8; 8];
        t.extend(tlen.to_be_bytes());
        t.push(status);
        t.extend([0u8; 6]);
        t.extend(vec![7u8; body]);
        t.extend(tlen.to_be_bytes());
        t
    }

    #[test]
    fn python_stops_at_a_checkpoint_or_a_broken_transaction() {
        let mut file = b"FS30".to_vec();
        file.extend(txn(b' ', 5));
        file.extend(txn(b'p', 0));
        let whole = python_view(&file, 0, 0);
        assert_eq!(
            (whole.transactions, whole.end, whole.stopped),
            (2, file.len() as u64, None)
        );
        let mut with_c = file.clone();
        with_c.extend(txn(b'c', 3));
        with_c.extend(txn(b' ', 3));
        let v = python_view(&with_c, 0, 0);
        assert_eq!((v.transactions, v.end), (2, file.len() as u64));
        assert!(v.stopped.unwrap().contains("'c'"));
        let mut cut = file.clone();
        cut.extend(&txn(b' ', 9)[..20]);
        assert!(python_view(&cut, 0, 0)
            .stopped
            .unwrap()
            .contains("cut short"));
        // Resumes from a verified boundary.
        assert_eq!(python_view(&file, whole.end, 2).transactions, 2);
    }
}
