//! The in-memory index of a FileStorage, built by the open scan and extended at each
//! finished transaction. It is kept small: memory grows with the number of objects, not
//! with the number of revisions or transactions.
//!
//! It holds:
//! - where each object's current record is (ZODB's `fsIndex`, oid → position), about
//!   7 bytes per object for the sequential oids ZODB hands out ([`Objects`]);
//! - where every 32nd transaction starts (tid → position, tids strictly increasing), so a
//!   transaction is found by a binary search here and a walk over at most 31 transaction
//!   headers in the file (see `FileStorage`'s `find_txn`);
//! - the last tid, the number of transactions and the committed end of the file.
//!
//! Older revisions are not indexed: `load_before`, `load_serial` and `history` follow the
//! `prev` pointer of each data record back from the current one, as ZODB does, and
//! `restore` finds its `data_txn` record through the transaction's position.
//!
//! Only committed transactions are ever added, so readers sharing the index see nothing
//! of a transaction in progress.
//!
//! There is deliberately no hashing of ids here: ids come from the primary, and any
//! deterministic hash (this project allows no random state) could be defeated by a
//! primary choosing oids that collide. An ordered map costs O(log n) per operation
//! whatever the oids are.

use std::collections::BTreeMap;
use std::fmt;

use crate::tid::{Oid, Tid};

/// Positions are stored in 6 bytes, as in ZODB's `fsIndex`: files stop at 256 TiB.
pub const MAX_POS: u64 = 1 << 48;

/// One transaction in [`MARK_EVERY`] (a power of two) is remembered in memory.
pub const MARK_EVERY: u64 = 32;

/// Objects whose oids differ only in the last byte, sorted by that byte: each entry is the
/// last byte of the oid followed by the record position in 6 big-endian bytes. A chunk
/// holds at most 256 entries, so an insert moves at most 256 × 7 bytes whatever the order
/// of the oids.
#[derive(Clone, Default)]
struct Chunk(Vec<[u8; 7]>);

impl Chunk {
    fn find(&self, low: u8) -> Result<usize, usize> {
        // Dense chunks (sequential oids from a multiple of 256) hold byte `b` at index `b`.
        if let Some(e) = self.0.get(low as usize) {
            if e[0] == low {
                return Ok(low as usize);
            }
        }
        self.0.binary_search_by(|e| e[0].cmp(&low))
    }

    fn get(&self, low: u8) -> Option<u64> {
        self.find(low).ok().map(|i| decode_pos(&self.0[i]))
    }

    /// Set the position of `low`; true if it is new.
    fn set(&mut self, low: u8, pos: u64) -> bool {
        let e = encode_pos(low, pos);
        match self.find(low) {
            Ok(i) => {
                self.0[i] = e;
                false
            }
            Err(i) => {
                self.0.insert(i, e);
                true
            }
        }
    }
}

fn encode_pos(low: u8, pos: u64) -> [u8; 7] {
    debug_assert!(pos < MAX_POS);
    let b = pos.to_be_bytes();
    [low, b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn decode_pos(e: &[u8; 7]) -> u64 {
    u64::from_be_bytes([0, 0, e[1], e[2], e[3], e[4], e[5], e[6]])
}

/// oid → position of the current record: an ordered map from the first 7 bytes of the
/// oid to a [`Chunk`] (the same shape as ZODB's `fsIndex`, which maps 6-byte prefixes to
/// buckets of 2-byte suffixes; 1-byte suffixes bound the cost of an insert).
#[derive(Clone, Default)]
struct Objects {
    chunks: BTreeMap<u64, Chunk>,
    len: usize,
}

impl Objects {
    fn split(oid: Oid) -> (u64, u8) {
        let n = oid.as_u64();
        (n >> 8, n as u8)
    }

    fn get(&self, oid: Oid) -> Option<u64> {
        let (high, low) = Objects::split(oid);
        self.chunks.get(&high)?.get(low)
    }

    /// Set the positions of `records`, in order. Runs of oids sharing a chunk (a
    /// transaction's new objects, a scan of them) look the chunk up once.
    fn set_all(&mut self, records: &[(Oid, u64)]) {
        let mut rest = records;
        while let Some(&(first, _)) = rest.first() {
            let (high, _) = Objects::split(first);
            let chunk = self.chunks.entry(high).or_default();
            let run = rest
                .iter()
                .position(|&(oid, _)| Objects::split(oid).0 != high)
                .unwrap_or(rest.len());
            for &(oid, pos) in &rest[..run] {
                if chunk.set(Objects::split(oid).1, pos) {
                    self.len += 1;
                }
            }
            rest = &rest[run..];
        }
    }
}

/// The index of committed data.
#[derive(Clone)]
pub struct Index {
    objects: Objects,
    /// (tid, position) of transactions number 0, 32, 64, ... in file order.
    marks: Vec<(Tid, u64)>,
    txn_count: u64,
    last_tid: Tid,
    /// Position just past the last committed transaction.
    end: u64,
    /// Where the first transaction starts (just after the magic).
    start: u64,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Summarised: a database's index has millions of entries.
        f.debug_struct("Index")
            .field("objects", &self.objects.len)
            .field("transactions", &self.txn_count)
            .field("last_tid", &self.last_tid)
            .field("end", &self.end)
            .finish()
    }
}

impl Index {
    /// An empty index of a file whose transactions start at `end` (4, after the magic).
    pub fn new(end: u64) -> Index {
        Index {
            objects: Objects::default(),
            marks: Vec::new(),
            txn_count: 0,
            last_tid: Tid::ZERO,
            end,
            start: end,
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len
    }

    pub fn is_empty(&self) -> bool {
        self.objects.len == 0
    }

    /// Position just past the last committed transaction (ZODB's `_pos`, `getSize()`).
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn last_tid(&self) -> Tid {
        self.last_tid
    }

    /// Number of committed transactions.
    pub fn transaction_count(&self) -> u64 {
        self.txn_count
    }

    /// Position of the object's current record.
    pub fn current(&self, oid: Oid) -> Option<u64> {
        self.objects.get(oid)
    }

    /// Where to start walking the file's transactions to find the first one with a tid
    /// `>= tid`: the position of the last remembered transaction with a smaller tid, or
    /// of the first transaction. The walk ends at [`Index::end`].
    pub fn walk_start(&self, tid: Tid) -> u64 {
        let i = self.marks.partition_point(|&(t, _)| t < tid);
        if i == 0 {
            self.start
        } else {
            self.marks[i - 1].1
        }
    }

    /// [`Index::walk_start`], with the number of transactions before that position.
    pub fn walk_start_counted(&self, tid: Tid) -> (u64, u64) {
        let i = self.marks.partition_point(|&(t, _)| t < tid);
        if i == 0 {
            (self.start, 0)
        } else {
            // Mark k is transaction number k * MARK_EVERY (see add_txn).
            (self.marks[i - 1].1, (i as u64 - 1) * MARK_EVERY)
        }
    }

    fn add_txn(&mut self, tid: Tid, pos: u64, end: u64) {
        debug_assert!(self.txn_count == 0 || self.last_tid < tid);
        debug_assert!(end <= MAX_POS);
        if self.txn_count & (MARK_EVERY - 1) == 0 {
            self.marks.push((tid, pos));
        }
        self.txn_count += 1;
        self.last_tid = tid;
        self.end = end;
    }

    /// Add a committed transaction `tid` at `pos`, ending at `end`, whose records are
    /// `(oid, position)` in file order (of two records of one object, the later one counts,
    /// as in ZODB's index). The caller guarantees `tid` is later than every indexed tid
    /// and `end <= MAX_POS`.
    pub fn add_transaction(&mut self, tid: Tid, pos: u64, records: &[(Oid, u64)], end: u64) {
        self.objects.set_all(records);
        self.add_txn(tid, pos, end);
    }

    /// Add a transaction whose records are not indexed (status `u`, as ZODB skips them).
    pub fn add_unindexed_transaction(&mut self, tid: Tid, pos: u64, end: u64) {
        self.add_txn(tid, pos, end);
    }

    /// An estimate of the heap the index holds, in bytes (for tests and logs; the
    /// benchmarks measure the process instead).
    pub fn heap_bytes(&self) -> usize {
        // A BTreeMap leaf holds up to 11 entries plus ~16 bytes of bookkeeping; count
        // each chunk's slot in it at 1.5× its size for partly filled nodes.
        let node_share = (std::mem::size_of::<(u64, Chunk)>() * 3) / 2 + 2;
        let chunks: usize = self
            .objects
            .chunks
            .values()
            .map(|c| c.0.capacity() * 7)
            .sum();
        chunks
            + self.objects.chunks.len() * node_share
            + self.marks.capacity() * std::mem::size_of::<(Tid, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Tid {
        Tid::from_u64(n)
    }
    fn o(n: u64) -> Oid {
        Oid::from_u64(n)
    }

    #[test]
    fn indexes_current_records_and_transactions() {
        let mut ix = Index::new(4);
        assert_eq!(ix.last_tid(), Tid::ZERO);
        ix.add_transaction(t(10), 4, &[(o(0), 50), (o(1), 100)], 200);
        ix.add_transaction(t(20), 200, &[(o(1), 250), (o(1), 300)], 400);
        ix.add_transaction(t(30), 400, &[(o(1), 450), (o(0x1234), 460)], 500);
        assert_eq!(ix.len(), 3);
        assert!(!ix.is_empty());
        assert_eq!(ix.end(), 500);
        assert_eq!(ix.last_tid(), t(30));
        assert_eq!(ix.transaction_count(), 3);
        assert_eq!(ix.current(o(0)), Some(50));
        assert_eq!(ix.current(o(1)), Some(450));
        assert_eq!(ix.current(o(0x1234)), Some(460));
        assert_eq!(ix.current(o(2)), None);
        assert_eq!(ix.current(o(0x1334)), None);
        // Only the first of these few transactions is remembered.
        assert_eq!(ix.walk_start(t(5)), 4);
        assert_eq!(ix.walk_start(t(30)), 4);
    }

    #[test]
    fn remembers_every_32nd_transaction() {
        let mut ix = Index::new(4);
        for i in 0..100u64 {
            ix.add_unindexed_transaction(t(10 + i), 4 + 100 * i, 104 + 100 * i);
        }
        assert!(ix.is_empty());
        assert_eq!(ix.transaction_count(), 100);
        // Transactions 0, 32, 64, 96 (tids 10, 42, 74, 106).
        assert_eq!(ix.walk_start(t(10)), 4);
        assert_eq!(ix.walk_start(t(42)), 4);
        assert_eq!(ix.walk_start(t(43)), 4 + 3200);
        assert_eq!(ix.walk_start(t(106)), 4 + 6400);
        assert_eq!(ix.walk_start(t(107)), 4 + 9600);
        assert_eq!(ix.walk_start(t(1000)), 4 + 9600);
        // The same positions, with the number of transactions before each.
        assert_eq!(ix.walk_start_counted(t(10)), (4, 0));
        assert_eq!(ix.walk_start_counted(t(42)), (4, 0));
        assert_eq!(ix.walk_start_counted(t(43)), (4 + 3200, 32));
        assert_eq!(ix.walk_start_counted(t(106)), (4 + 6400, 64));
        assert_eq!(ix.walk_start_counted(t(107)), (4 + 9600, 96));
        assert_eq!(ix.walk_start_counted(t(1000)), (4 + 9600, 96));
    }

    #[test]
    fn positions_round_trip_through_six_bytes() {
        for pos in [0, 4, 0x1234_5678, MAX_POS - 1] {
            assert_eq!(decode_pos(&encode_pos(7, pos)), pos);
        }
    }

    /// Any order of oids gives the same index: sequential, reversed, strided, and oids
    /// chosen to share a chunk or each to have their own.
    #[test]
    fn any_order_of_oids_is_indexed() {
        let n = 3000u64;
        let orders: Vec<(&str, Vec<u64>)> = vec![
            ("sequential", (0..n).collect()),
            ("reversed", (0..n).rev().collect()),
            ("stride 256", (0..n).map(|i| i << 8).collect()),
            (
                "stride 2^40, reversed",
                (0..n).rev().map(|i| i << 40).collect(),
            ),
            (
                "interleaved",
                (0..n).map(|i| (i % 7) * 1000 + i / 7).collect(),
            ),
        ];
        for (what, oids) in orders {
            let mut ix = Index::new(4);
            for (i, &oid) in oids.iter().enumerate() {
                ix.add_transaction(t(i as u64 + 1), 4, &[(o(oid), 100 + i as u64)], 200);
            }
            assert_eq!(ix.len(), n as usize, "{what}");
            for (i, &oid) in oids.iter().enumerate() {
                assert_eq!(ix.current(o(oid)), Some(100 + i as u64), "{what}: {oid}");
            }
            assert_eq!(ix.current(o(u64::MAX)), None, "{what}");
            assert!(ix.objects.chunks.values().all(|c| c.0.len() <= 256));
        }
    }

    /// The index holds one small entry per object, however many revisions and
    /// transactions there are (issue 8: it used to hold every revision).
    #[test]
    fn memory_is_per_object_not_per_revision() {
        let objects = 100_000u64;
        let build = |revisions: u64| {
            let mut ix = Index::new(4);
            let mut tid = 1;
            for rev in 0..revisions {
                // Transactions of 5 records, as in a real catch-up stream.
                for first in (0..objects).step_by(5) {
                    let records: Vec<(Oid, u64)> = (first..first + 5)
                        .map(|oid| (o(oid), 1000 * rev + oid))
                        .collect();
                    ix.add_transaction(t(tid), tid, &records, tid + 1);
                    tid += 1;
                }
            }
            ix
        };
        let one = build(1);
        let ten = build(10);
        let per_object = one.heap_bytes() as f64 / objects as f64;
        assert!(per_object <= 10.0, "{per_object} bytes per object");
        let ratio = ten.heap_bytes() as f64 / one.heap_bytes() as f64;
        assert!(ratio <= 1.5, "10 revisions take {ratio}× the memory of 1");
    }

    /// An index prints as a summary (its counts, last tid and end), never its entries:
    /// a database's index holds millions, and a storage's `Debug` includes it.
    #[test]
    fn an_index_prints_as_a_summary() {
        let mut ix = Index::new(4);
        for i in 0..1000u64 {
            ix.add_transaction(t(i + 1), 4 + i, &[(o(i), 4 + i)], 5 + i);
        }
        let text = format!("{ix:?}");
        assert!(text.starts_with("Index {"), "{text}");
        assert!(text.contains("objects: 1000"), "{text}");
        assert!(text.contains("transactions: 1000"), "{text}");
        assert!(text.contains("end: 1004"), "{text}");
        assert!(text.len() < 200, "{text}");
    }

    /// The estimate is not an underestimate: it counts at least what the index surely
    /// holds, each chunk's 7-byte entries and each chunk's slot in the map (here every
    /// object has a chunk of its own).
    #[test]
    fn the_memory_estimate_counts_every_chunk_and_its_slot() {
        let n = 1000u64;
        let mut ix = Index::new(4);
        for i in 0..n {
            ix.add_transaction(t(i + 1), 4, &[(o(i << 40), 100 + i)], 200);
        }
        assert_eq!(ix.objects.chunks.len(), n as usize);
        let slot = std::mem::size_of::<(u64, Chunk)>();
        let least = n as usize * (7 + slot);
        assert!(ix.heap_bytes() >= least, "{} < {least}", ix.heap_bytes());
    }
}
