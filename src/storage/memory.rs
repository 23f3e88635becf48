//! `MemoryStorage`: the storage semantics of [`FileStorage`](super::FileStorage) kept in
//! memory, for fast deterministic simulation.
//!
//! Records keep the same shape as in a `Data.fs` (data, or a backpointer to an earlier
//! record, or the "creation undone" backpointer 0), `restore` resolves `data_txn` the same
//! way, and [`ReadStorage::size`] is the size the same transactions take in a `Data.fs`, so the
//! two storages can be compared directly. What is durable is explicit: finished
//! transactions are; [`MemoryStorage::crash`] drops a transaction in progress, as a process
//! crash would.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::storage::{
    DataRecord, Format, HistoryEntry, LoadBefore, ReadStorage, Result, Storage, StorageError,
    TransactionMeta, TransactionRecord,
};
use crate::tid::{Oid, Tid};

use super::file::format::{DATA_HEADER_LEN, MAX_META_LEN, TXN_HEADER_LEN};

/// Where a record is: (transaction index, record index).
type Loc = (usize, usize);

#[derive(Clone, Debug)]
enum Body {
    Data(Arc<[u8]>),
    /// A backpointer to an earlier record, or `None` for ZODB's backpointer 0.
    Back(Option<Loc>),
}

#[derive(Clone, Debug)]
struct Record {
    oid: Oid,
    serial: Tid,
    body: Body,
}

#[derive(Clone, Debug)]
struct Txn {
    meta: TransactionMeta,
    records: Vec<Record>,
}

#[derive(Debug, Default)]
struct State {
    txns: Vec<Txn>,
    /// Every object's revisions: (transaction tid, location), oldest first; one per
    /// transaction (the later record counts, as in ZODB's index).
    objects: BTreeMap<Oid, Vec<(Tid, Loc)>>,
    /// The size a `Data.fs` holding these transactions would have.
    size: u64,
    closed: bool,
    /// The format chosen by `set_format` (a memory storage has no bytes to show it in, but
    /// refuses a second, different one as a file would).
    format: Option<Format>,
}

#[derive(Debug)]
struct Pending {
    meta: TransactionMeta,
    records: Vec<Record>,
    voted: bool,
}

/// A storage in memory.
#[derive(Debug)]
pub struct MemoryStorage {
    name: Arc<str>,
    state: Arc<RwLock<State>>,
    txn: Option<Pending>,
}

/// A shareable read handle on a [`MemoryStorage`].
#[derive(Clone, Debug)]
pub struct MemoryStorageReader {
    name: Arc<str>,
    state: Arc<RwLock<State>>,
}

fn record_len(body: &Body) -> u64 {
    DATA_HEADER_LEN as u64
        + match body {
            Body::Data(d) => d.len() as u64,
            Body::Back(_) => 8,
        }
}

impl MemoryStorage {
    /// An empty storage called `name`.
    pub fn new(name: impl Into<String>) -> MemoryStorage {
        MemoryStorage {
            name: Arc::from(name.into()),
            state: Arc::new(RwLock::new(State {
                size: 4,
                ..State::default()
            })),
            txn: None,
        }
    }

    /// Simulate a crash and restart: whatever was not finished is gone (a transaction in
    /// progress, voted or not); finished transactions stay. The storage is usable again.
    pub fn crash(&mut self) {
        self.txn = None;
        self.write().closed = false;
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        read(&self.state)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        // State is only changed in whole steps under the lock; a poisoned lock is usable.
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.read().closed {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    fn pending(&mut self, what: &str) -> Result<&mut Pending> {
        self.check_open()?;
        self.txn
            .as_mut()
            .ok_or_else(|| StorageError::Transaction(format!("{what}: no transaction in progress")))
    }
}

fn read(state: &RwLock<State>) -> RwLockReadGuard<'_, State> {
    state.read().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    fn record(&self, (t, r): Loc) -> &Record {
        &self.txns[t].records[r]
    }

    /// Follow backpointers from `loc` to the data; `None` where the chain ends in 0.
    fn resolve(&self, mut loc: Loc) -> Option<Arc<[u8]>> {
        loop {
            match &self.record(loc).body {
                Body::Data(d) => return Some(d.clone()),
                Body::Back(Some(next)) => loc = *next,
                Body::Back(None) => return None,
            }
        }
    }

    fn revisions(&self, oid: Oid) -> Result<&[(Tid, Loc)]> {
        match self.objects.get(&oid) {
            Some(v) => Ok(v),
            None => Err(StorageError::NoSuchKey(oid)),
        }
    }

    fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
        self.check_open()?;
        let &(_, loc) = self.revisions(oid)?.last().expect("never empty");
        let serial = self.record(loc).serial;
        let data = self.resolve(loc).ok_or(StorageError::NoSuchKey(oid))?;
        Ok((data.to_vec(), serial))
    }

    fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
        self.check_open()?;
        let revs = self.revisions(oid)?;
        let i = revs.partition_point(|&(t, _)| t < tid);
        if i == 0 {
            return Ok(None);
        }
        let loc = revs[i - 1].1;
        let data = self.resolve(loc).ok_or(StorageError::NoSuchKey(oid))?;
        Ok(Some((
            data.to_vec(),
            self.record(loc).serial,
            revs.get(i).map(|&(t, _)| t),
        )))
    }

    fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
        self.check_open()?;
        let revs = self.revisions(oid)?;
        let i = revs
            .binary_search_by(|(t, _)| t.cmp(&serial))
            .map_err(|_| StorageError::NoSuchSerial { oid, serial })?;
        let data = self
            .resolve(revs[i].1)
            .ok_or(StorageError::NoSuchKey(oid))?;
        Ok(data.to_vec())
    }

    fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
        self.check_open()?;
        let revs = self.revisions(oid)?;
        Ok(revs
            .iter()
            .rev()
            .take(size)
            .map(|&(_, loc)| {
                let rec = self.record(loc);
                let meta = &self.txns[loc.0].meta;
                HistoryEntry {
                    tid: rec.serial,
                    user: meta.user.clone(),
                    description: meta.description.clone(),
                    size: match &rec.body {
                        Body::Data(d) => d.len(),
                        Body::Back(_) => 0,
                    },
                }
            })
            .collect())
    }

    fn transaction(&self, t: usize) -> TransactionRecord {
        let txn = &self.txns[t];
        let records = txn
            .records
            .iter()
            .map(|r| {
                let (data, data_txn) = match &r.body {
                    Body::Data(d) => (Some(d.clone()), None),
                    Body::Back(None) => (None, None),
                    Body::Back(Some(loc)) => (self.resolve(*loc), Some(self.record(*loc).serial)),
                };
                DataRecord {
                    oid: r.oid,
                    serial: r.serial,
                    data,
                    data_txn,
                }
            })
            .collect();
        TransactionRecord {
            meta: txn.meta.clone(),
            records,
        }
    }

    fn txn_index(&self, tid: Tid) -> Option<usize> {
        self.txns.binary_search_by(|t| t.meta.tid.cmp(&tid)).ok()
    }

    fn last_tid(&self) -> Tid {
        self.txns.last().map(|t| t.meta.tid).unwrap_or(Tid::ZERO)
    }
}

/// Iterates over the transactions finished when it was created.
struct TxnIter {
    state: Arc<RwLock<State>>,
    next: usize,
    count: usize,
    stop: Option<Tid>,
    failed: bool,
}

impl Iterator for TxnIter {
    type Item = Result<TransactionRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.count {
            return None;
        }
        let state = read(&self.state);
        if let Err(e) = state.check_open() {
            self.failed = true;
            return Some(Err(e));
        }
        if self
            .stop
            .is_some_and(|s| state.txns[self.next].meta.tid > s)
        {
            self.next = self.count;
            return None;
        }
        self.next += 1;
        Some(Ok(state.transaction(self.next - 1)))
    }
}

fn transactions(
    state: &Arc<RwLock<State>>,
    start: Option<Tid>,
    stop: Option<Tid>,
) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'static> {
    let s = read(state);
    if let Err(e) = s.check_open() {
        return Box::new(std::iter::once(Err(e)));
    }
    let start = start.unwrap_or(Tid::ZERO);
    let next = s.txns.partition_point(|t| t.meta.tid < start);
    let count = s.txns.len();
    drop(s);
    Box::new(TxnIter {
        state: state.clone(),
        next,
        count,
        stop,
        failed: false,
    })
}

macro_rules! read_side {
    () => {
        fn name(&self) -> &str {
            &self.name
        }
        fn last_transaction(&self) -> Tid {
            read(&self.state).last_tid()
        }
        fn len(&self) -> usize {
            read(&self.state).objects.len()
        }
        fn size(&self) -> u64 {
            // As a new file: no bytes before its format (magic) is decided.
            let state = read(&self.state);
            if state.format.is_none() {
                0
            } else {
                state.size
            }
        }
        fn format(&self) -> Option<Format> {
            read(&self.state).format
        }
        fn load(&self, oid: Oid) -> Result<(Vec<u8>, Tid)> {
            read(&self.state).load(oid)
        }
        fn load_before(&self, oid: Oid, tid: Tid) -> Result<Option<LoadBefore>> {
            read(&self.state).load_before(oid, tid)
        }
        fn load_serial(&self, oid: Oid, serial: Tid) -> Result<Vec<u8>> {
            read(&self.state).load_serial(oid, serial)
        }
        fn history(&self, oid: Oid, size: usize) -> Result<Vec<HistoryEntry>> {
            read(&self.state).history(oid, size)
        }
        fn iterator<'a>(
            &'a self,
            start: Option<Tid>,
            stop: Option<Tid>,
        ) -> Box<dyn Iterator<Item = Result<TransactionRecord>> + 'a> {
            transactions(&self.state, start, stop)
        }
        fn has_transaction(&self, tid: Tid) -> Result<bool> {
            let state = read(&self.state);
            state.check_open()?;
            Ok(state.txn_index(tid).is_some())
        }
        fn reader(&self) -> Box<dyn ReadStorage + Send + Sync> {
            Box::new(MemoryStorageReader {
                name: self.name.clone(),
                state: self.state.clone(),
            })
        }
    };
}

impl ReadStorage for MemoryStorage {
    read_side!();
}

impl Storage for MemoryStorage {
    fn set_format(&mut self, format: Format) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match state.format {
            Some(have) if have != format => Err(StorageError::FormatMismatch {
                name: self.name.to_string(),
                have,
                want: format,
            }),
            _ => {
                state.format = Some(format);
                Ok(())
            }
        }
    }

    fn tpc_begin(&mut self, meta: TransactionMeta) -> Result<()> {
        self.check_open()?;
        if self.format().is_none() {
            self.set_format(Format::Fs30)?;
        }
        if self.txn.is_some() {
            return Err(StorageError::Transaction(
                "tpc_begin: a transaction is already in progress".into(),
            ));
        }
        let last = self.read().last_tid();
        if meta.tid <= last {
            return Err(StorageError::TidNotIncreasing {
                tid: meta.tid,
                last,
            });
        }
        if meta.status != b' ' && meta.status != b'p' {
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
        self.txn = Some(Pending {
            meta,
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
        if self.pending("restore")?.voted {
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
            return Err(StorageError::Transaction(format!(
                "restore of {oid:?}: empty data"
            )));
        }
        // As FileStorage (ZODB's _data_find): point at the object's record in data_txn
        // when that record is itself a backpointer or holds identical data.
        let mut back = None;
        if let Some(dt) = data_txn {
            let state = self.read();
            if let Some(ti) = state.txn_index(dt) {
                let found = state.txns[ti]
                    .records
                    .iter()
                    .rposition(|r| r.oid == oid)
                    .map(|ri| (ti, ri));
                if let Some(loc) = found {
                    match (&state.record(loc).body, data) {
                        (Body::Back(_), _) => back = Some(loc),
                        (Body::Data(_), None) => {
                            return Err(StorageError::Transaction(format!(
                                "restore of {oid:?}: no data, but its record in {dt:?} has data"
                            )))
                        }
                        (Body::Data(stored), Some(d)) => {
                            if &stored[..] == d {
                                back = Some(loc);
                            }
                        }
                    }
                }
            }
        }
        let body = match (back, data) {
            (Some(loc), _) => Body::Back(Some(loc)),
            (None, Some(d)) => Body::Data(Arc::from(d)),
            (None, None) => Body::Back(None),
        };
        let txn = self.txn.as_mut().expect("checked above");
        txn.records.push(Record { oid, serial, body });
        Ok(())
    }

    fn tpc_vote(&mut self) -> Result<()> {
        let txn = self.pending("tpc_vote")?;
        if txn.voted {
            return Err(StorageError::Transaction(
                "tpc_vote: the transaction is already voted".into(),
            ));
        }
        txn.voted = true;
        Ok(())
    }

    fn tpc_finish(&mut self) -> Result<Tid> {
        if !self.pending("tpc_finish")?.voted {
            return Err(StorageError::Transaction(
                "tpc_finish: the transaction was not voted".into(),
            ));
        }
        let txn = self.txn.take().expect("checked above");
        let tid = txn.meta.tid;
        let mut state = self.write();
        let ti = state.txns.len();
        let m = &txn.meta;
        let mut size =
            (TXN_HEADER_LEN + m.user.len() + m.description.len() + m.extension.len()) as u64 + 8;
        for (ri, r) in txn.records.iter().enumerate() {
            size += record_len(&r.body);
            let revs = state.objects.entry(r.oid).or_default();
            match revs.last_mut() {
                Some((t, loc)) if *t == tid => *loc = (ti, ri),
                _ => revs.push((tid, (ti, ri))),
            }
        }
        state.size += size;
        state.txns.push(Txn {
            meta: txn.meta,
            records: txn.records,
        });
        Ok(tid)
    }

    fn tpc_abort(&mut self) {
        self.txn = None;
    }

    fn close(&mut self) -> Result<()> {
        self.txn = None;
        self.write().closed = true;
        Ok(())
    }
}

impl ReadStorage for MemoryStorageReader {
    read_side!();
}
