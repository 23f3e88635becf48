//! The in-memory index of a FileStorage, built by the open scan and extended at each
//! finished transaction.
//!
//! It answers three questions without touching the file:
//! - where is an object's current record (ZODB's `fsIndex`, oid → position);
//! - where is an object's record in a given transaction (every revision of every object,
//!   oldest first: what `restore` needs to turn `data_txn` into a backpointer, and what
//!   `load_before` / `history` walk — Python ZODB answers the first by scanning the file
//!   backwards, which dominates a Python secondary's catch-up);
//! - where does a transaction start (tid → position, tids strictly increasing).
//!
//! Only committed transactions are ever added, so readers sharing the index see nothing
//! of a transaction in progress.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::tid::{Oid, Tid};

/// A committed transaction's place in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnEntry {
    pub tid: Tid,
    /// Position of the transaction header.
    pub pos: u64,
    pub status: u8,
}

/// Revisions of one object: (tid of the transaction holding the record, record position),
/// in file order. One revision is by far the common case, so it needs no allocation.
#[derive(Clone, Debug)]
enum Revisions {
    One([(Tid, u64); 1]),
    Many(Vec<(Tid, u64)>),
}

impl Revisions {
    fn as_slice(&self) -> &[(Tid, u64)] {
        match self {
            Revisions::One(a) => a,
            Revisions::Many(v) => v,
        }
    }

    fn push(&mut self, tid: Tid, pos: u64) {
        match self {
            Revisions::One([(t, p)]) => {
                if *t == tid {
                    // A second record for the same object in one transaction: like ZODB's
                    // index, the later record is the one that counts.
                    *p = pos;
                } else {
                    *self = Revisions::Many(vec![(*t, *p), (tid, pos)]);
                }
            }
            Revisions::Many(v) => match v.last_mut() {
                Some((t, p)) if *t == tid => *p = pos,
                _ => v.push((tid, pos)),
            },
        }
    }
}

/// A fast, deterministic hasher for 8-byte ids (no random state, so runs are repeatable).
///
/// Ids arrive as big-endian bytes, so sequential oids differ only in the high bits of the
/// word the hasher sees; hashbrown picks buckets from the *low* bits of the hash. `finish`
/// therefore ends with splitmix64's finalizer, a full avalanche: every output bit depends
/// on every input bit, so sequential ids, strides and any other arithmetic structure
/// spread evenly over the buckets and every id-keyed map stays linear.
///
/// This defends against structure that happens, not against an adversary: the function is
/// public and invertible, so a hostile primary that reads this code could still choose oids
/// that share low hash bits. No deterministic, unkeyed hash can prevent that; what bounds
/// the damage is that the object index does not rely on hashing (see [`Index`]).
#[derive(Default)]
pub struct IdHasher(u64);

/// splitmix64's output function (Steele, Lea, Flood 2014): a bijection on `u64` with full
/// avalanche.
fn avalanche(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        avalanche(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Combining only; the mixing happens once, in `finish`.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type IdMap<V> = HashMap<Oid, V, BuildHasherDefault<IdHasher>>;

/// The index of committed data.
#[derive(Clone, Debug, Default)]
pub struct Index {
    objects: IdMap<Revisions>,
    txns: Vec<TxnEntry>,
    /// Position just past the last committed transaction.
    end: u64,
}

impl Index {
    /// An empty index of a file whose transactions start at `end` (4, after the magic).
    pub fn new(end: u64) -> Index {
        Index {
            objects: IdMap::default(),
            txns: Vec::new(),
            end,
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Position just past the last committed transaction (ZODB's `_pos`, `getSize()`).
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn last_tid(&self) -> Tid {
        self.txns.last().map(|t| t.tid).unwrap_or(Tid::ZERO)
    }

    pub fn transactions(&self) -> &[TxnEntry] {
        &self.txns
    }

    /// Position of the object's current record.
    pub fn current(&self, oid: Oid) -> Option<u64> {
        self.revisions(oid).last().map(|&(_, p)| p)
    }

    /// Every revision of the object, oldest first (empty for an unknown object).
    pub fn revisions(&self, oid: Oid) -> &[(Tid, u64)] {
        self.objects
            .get(&oid)
            .map(Revisions::as_slice)
            .unwrap_or(&[])
    }

    /// Position of the object's (last) record in transaction `tid`.
    pub fn record_in(&self, oid: Oid, tid: Tid) -> Option<u64> {
        let revs = self.revisions(oid);
        revs.binary_search_by(|(t, _)| t.cmp(&tid))
            .ok()
            .map(|i| revs[i].1)
    }

    /// The committed transaction with this tid.
    pub fn txn(&self, tid: Tid) -> Option<TxnEntry> {
        self.txns
            .binary_search_by(|t| t.tid.cmp(&tid))
            .ok()
            .map(|i| self.txns[i])
    }

    /// Index in [`Index::transactions`] of the first transaction with a tid `>= tid`.
    pub fn first_at_or_after(&self, tid: Tid) -> usize {
        self.txns.partition_point(|t| t.tid < tid)
    }

    /// Add a committed transaction ending at `end`, whose records are `(oid, position)` in
    /// file order. The caller guarantees `txn.tid` is later than every indexed tid.
    pub fn add_transaction(&mut self, txn: TxnEntry, records: &[(Oid, u64)], end: u64) {
        debug_assert!(self.txns.last().is_none_or(|t| t.tid < txn.tid));
        for &(oid, pos) in records {
            self.objects
                .entry(oid)
                .and_modify(|r| r.push(txn.tid, pos))
                .or_insert(Revisions::One([(txn.tid, pos)]));
        }
        self.txns.push(txn);
        self.end = end;
    }

    /// Add a transaction whose records are not indexed (status `u`, as ZODB skips them).
    pub fn add_unindexed_transaction(&mut self, txn: TxnEntry, end: u64) {
        self.txns.push(txn);
        self.end = end;
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
    fn entry(n: u64, pos: u64) -> TxnEntry {
        TxnEntry {
            tid: t(n),
            pos,
            status: b' ',
        }
    }

    #[test]
    fn indexes_current_revisions_and_transactions() {
        let mut ix = Index::new(4);
        assert_eq!(ix.last_tid(), Tid::ZERO);
        ix.add_transaction(entry(10, 4), &[(o(0), 50), (o(1), 100)], 200);
        ix.add_transaction(entry(20, 200), &[(o(1), 250), (o(1), 300)], 400);
        ix.add_transaction(entry(30, 400), &[(o(1), 450)], 500);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.end(), 500);
        assert_eq!(ix.last_tid(), t(30));
        assert_eq!(ix.current(o(0)), Some(50));
        assert_eq!(ix.current(o(1)), Some(450));
        assert_eq!(ix.current(o(2)), None);
        // The later of two records in one transaction counts.
        assert_eq!(
            ix.revisions(o(1)),
            &[(t(10), 100), (t(20), 300), (t(30), 450)]
        );
        assert_eq!(ix.record_in(o(1), t(20)), Some(300));
        assert_eq!(ix.record_in(o(0), t(20)), None);
        assert_eq!(ix.txn(t(20)).map(|e| e.pos), Some(200));
        assert_eq!(ix.txn(t(25)), None);
        assert_eq!(ix.first_at_or_after(t(0)), 0);
        assert_eq!(ix.first_at_or_after(t(20)), 1);
        assert_eq!(ix.first_at_or_after(t(21)), 2);
        assert_eq!(ix.first_at_or_after(t(31)), 3);
    }

    #[test]
    fn unindexed_transactions_are_found_by_tid_only() {
        let mut ix = Index::new(4);
        ix.add_unindexed_transaction(
            TxnEntry {
                tid: t(5),
                pos: 4,
                status: b'u',
            },
            60,
        );
        assert!(ix.is_empty());
        assert_eq!(ix.txn(t(5)).map(|e| e.status), Some(b'u'));
        assert_eq!(ix.end(), 60);
    }

    #[test]
    fn id_hasher_is_deterministic() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let h = |oid: Oid| b.hash_one(oid);
        assert_eq!(h(o(1)), h(o(1)));
        assert_ne!(h(o(1)), h(o(2)));
    }

    /// How many of `n` buckets (hashbrown takes the low bits of the hash) `n` ids fill.
    fn buckets_filled(ids: impl Iterator<Item = Oid>, n: usize) -> usize {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let mut used = vec![false; n];
        for id in ids {
            used[(b.hash_one(id) as usize) & (n - 1)] = true;
        }
        used.iter().filter(|&&u| u).count()
    }

    /// The regression behind issue 8: sequential big-endian oids all fell into one bucket,
    /// making every map keyed by ids quadratic. `n` uniformly hashed keys fill about
    /// `n * (1 - 1/e)` = 63% of `n` buckets; ask for 58% (the old hasher filled 1).
    #[test]
    fn id_hasher_spreads_structured_ids_over_low_bits() {
        let n = 1 << 12;
        let floor = n * 58 / 100;
        for (what, stride) in [
            ("sequential", 1u64),
            ("stride 256", 256),
            ("stride 2^16", 1 << 16),
            ("stride 2^32", 1 << 32),
        ] {
            let filled = buckets_filled((0..n as u64).map(|i| o(i * stride)), n);
            assert!(filled >= floor, "{what} oids fill {filled} of {n} buckets");
        }
        // Ids shaped like ZODB's tids: a time in the high bytes, steps of a few ms.
        let filled = buckets_filled(
            (0..n as u64).map(|i| o(0x03ed_0000_0000_0000 + (i << 20))),
            n,
        );
        assert!(filled >= floor, "tid-like ids fill {filled} of {n} buckets");
    }

    #[test]
    fn avalanche_flips_half_the_bits() {
        // Flipping any one input bit flips each output bit with probability about 1/2.
        let mut total = 0u32;
        let mut count = 0u32;
        for i in 0..256u64 {
            let input = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for bit in 0..64 {
                total += (avalanche(input) ^ avalanche(input ^ (1 << bit))).count_ones();
                count += 1;
            }
        }
        let mean = f64::from(total) / f64::from(count);
        assert!((30.0..34.0).contains(&mean), "mean bits flipped {mean}");
    }
}
