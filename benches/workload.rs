//! Deterministic, seeded workloads for the scale benchmarks (issue 8): a database of N
//! objects × R revisions, and a catch-up stream shaped like a real primary's.
//!
//! Shared by `examples/workload.rs` (the command line the bench scripts call) and the
//! simulator's load benchmark (`sim/benches/load.rs`), so both measure the same bytes.
//! Every choice comes from one ChaCha8 stream seeded from the caller; the same seed and
//! parameters give the same file, byte for byte.
//!
//! Transactions are written through [`Storage`] (a FileStorage in batch durability), so
//! the result is a Data.fs exactly as ZODB writes it; records are real ZODB pickles (a
//! class pickle and a state dict), so Python ZODB reads them as it would its own.
#![allow(dead_code)]

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::pickle::{dumps_extension, Value};
use zrs::storage::{Result, Storage, TransactionMeta};
use zrs::{Oid, Tid};

/// The shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Records per transaction: uniform in `min..=max`.
    pub records_min: u32,
    pub records_max: u32,
    /// Data sizes: log-uniform in `small_min..=small_max` bytes, except a fraction
    /// `big_fraction` of records of `big_min..=big_max` bytes.
    pub small_min: u32,
    pub small_max: u32,
    pub big_fraction: f64,
    pub big_min: u32,
    pub big_max: u32,
    /// Fraction of records (of objects with an earlier revision) that restore an older
    /// revision with its `data_txn`, as an undo does.
    pub undo_fraction: f64,
    /// Fraction of undo records that undo the object's creation (no data).
    pub undo_creation_fraction: f64,
}

/// Small objects, as a database of many little persistent objects (issue 8's files:
/// ~140 bytes an object on disk).
pub const DATABASE: Shape = Shape {
    records_min: 1,
    records_max: 19,
    small_min: 8,
    small_max: 80,
    big_fraction: 0.0,
    big_min: 0,
    big_max: 0,
    undo_fraction: 0.0,
    undo_creation_fraction: 0.0,
};

/// A real primary's catch-up stream (issue 8: most records 100 B – 5 KB, some of
/// 100 KiB+, undo records, unicode metadata, ~4.6 records a transaction).
pub const STREAM: Shape = Shape {
    records_min: 1,
    records_max: 8,
    small_min: 100,
    small_max: 5000,
    big_fraction: 0.001,
    big_min: 100 << 10,
    big_max: 300 << 10,
    undo_fraction: 0.03,
    undo_creation_fraction: 0.05,
};

/// Users and descriptions, some with non-ASCII text (stored as UTF-8, as ZODB does).
const USERS: [&str; 4] = ["", " /admin", " /Zoë Brontë", " /用户"];
const NOTES: [&str; 5] = [
    "",
    "/edit",
    "/folder/Ünïcödé page",
    "/документ/сохранить",
    "/保存 ✓",
];

/// The state pickle of a persistent object whose state is `{'data': <n bytes>}`, preceded
/// by its class pickle, as ZODB stores it (protocol 3).
fn record_pickle(rng: &mut ChaCha8Rng, n: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.");
    out.extend_from_slice(b"\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02");
    if n < 256 {
        out.extend_from_slice(&[b'C', n as u8]);
    } else {
        out.push(b'B');
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    let start = out.len();
    out.resize(start + n, 0);
    rng.fill_bytes(&mut out[start..]);
    out.extend_from_slice(b"q\x03s.");
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: u32, hi: u32) -> usize {
    let (lo, hi) = (f64::from(lo.max(1)), f64::from(hi.max(lo.max(1))));
    (lo * (hi / lo).powf(rng.gen::<f64>())).round() as usize
}

/// What a generation wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Generated {
    pub transactions: u64,
    pub records: u64,
    pub objects: u64,
}

/// A history generator: creates `objects` objects in oid order, then rewrites each of
/// them `revisions - 1` more times (objects picked at random within each round).
pub struct Generator {
    rng: ChaCha8Rng,
    shape: Shape,
    objects: u64,
    revisions: u32,
    /// Per object: the tid of its newest and of an older data revision (for undos).
    last: Vec<(Tid, Tid)>,
    tid: Tid,
    seconds: f64,
    buf: Vec<u8>,
}

impl Generator {
    pub fn new(seed: u64, shape: Shape, objects: u64, revisions: u32) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            shape,
            objects,
            revisions: revisions.max(1),
            last: Vec::new(),
            tid: Tid::ZERO,
            // 2024-01-01: tids carry plausible times, 5 ms apart.
            seconds: 1_704_067_200.0,
            buf: Vec::new(),
        }
    }

    fn next_tid(&mut self) -> Tid {
        self.seconds += 0.005;
        self.tid = Tid::from_unix(self.seconds).later_than(self.tid);
        self.tid
    }

    fn meta(&mut self, tid: Tid) -> TransactionMeta {
        let user = USERS[self.rng.gen_range(0..USERS.len())];
        let note = NOTES[self.rng.gen_range(0..NOTES.len())];
        let extension = if self.rng.gen_bool(0.3) {
            dumps_extension(&Value::Dict(vec![(
                Value::Str("comment".into()),
                Value::Str(format!("généré n°{}", self.rng.gen::<u16>())),
            )]))
        } else {
            Vec::new()
        };
        TransactionMeta {
            tid,
            status: b' ',
            user: user.as_bytes().to_vec(),
            description: note.as_bytes().to_vec(),
            extension,
        }
    }

    /// Write the whole history into `storage`; `progress` is called after each
    /// transaction with the running totals.
    pub fn run(
        &mut self,
        storage: &mut dyn Storage,
        mut progress: impl FnMut(&Generated),
    ) -> Result<Generated> {
        let mut done = Generated::default();
        let total = self.objects * u64::from(self.revisions);
        // The order objects are written in: creation in oid order, then rounds of
        // updates in a random order each.
        let mut order: Vec<u64> = Vec::new();
        let mut round = 0u32;
        let mut next = 0usize;
        let mut written = 0u64;
        while written < total {
            let tid = self.next_tid();
            let meta = self.meta(tid);
            storage.tpc_begin(meta)?;
            let k = self
                .rng
                .gen_range(self.shape.records_min..=self.shape.records_max);
            for _ in 0..k {
                if written == total {
                    break;
                }
                let oid = if round == 0 {
                    let oid = written;
                    if written + 1 == self.objects {
                        round = 1;
                    }
                    oid
                } else {
                    if next == order.len() {
                        order = (0..self.objects).collect();
                        // Fisher–Yates with the one stream.
                        for i in (1..order.len()).rev() {
                            let j = self.rng.gen_range(0..=i);
                            order.swap(i, j);
                        }
                        next = 0;
                    }
                    next += 1;
                    order[next - 1]
                };
                written += 1;
                self.record(storage, oid, tid)?;
                done.records += 1;
            }
            storage.tpc_vote()?;
            storage.tpc_finish()?;
            done.transactions += 1;
            done.objects = self.last.len() as u64;
            progress(&done);
        }
        storage.sync()?;
        Ok(done)
    }

    fn record(&mut self, storage: &mut dyn Storage, oid: u64, tid: Tid) -> Result<()> {
        let s = self.shape;
        let i = oid as usize;
        if i == self.last.len() {
            self.last.push((Tid::ZERO, Tid::ZERO));
        }
        let (newest, older) = self.last[i];
        if newest != Tid::ZERO && older != Tid::ZERO && self.rng.gen_bool(s.undo_fraction) {
            if self.rng.gen_bool(s.undo_creation_fraction) {
                // Undo of the creation: a backpointer to nothing. The object keeps its
                // last data revision for later undos.
                storage.restore(Oid::from_u64(oid), tid, None, b"", None)?;
                return Ok(());
            }
            // Undo: the older revision again, by reference to its transaction.
            let data = storage.load_serial(Oid::from_u64(oid), older)?;
            storage.restore(Oid::from_u64(oid), tid, Some(&data), b"", Some(older))?;
            self.last[i] = (tid, newest);
            return Ok(());
        }
        let n = if s.big_fraction > 0.0 && self.rng.gen_bool(s.big_fraction) {
            self.rng.gen_range(s.big_min..=s.big_max) as usize
        } else {
            log_uniform(&mut self.rng, s.small_min, s.small_max)
        };
        let mut buf = std::mem::take(&mut self.buf);
        record_pickle(&mut self.rng, n, &mut buf);
        let r = storage.restore(Oid::from_u64(oid), tid, Some(&buf), b"", None);
        self.buf = buf;
        r?;
        self.last[i] = (tid, newest);
        Ok(())
    }
}
