//! Storage benchmarks (see BENCHMARKS.md, "## Storage").
//!
//! - restore throughput into a FileStorage on disk, per-transaction fsync and batched
//!   fsync, next to a plain sequential write of the same bytes with the same fsyncs;
//! - open (index scan) of a ~100 MB Data.fs;
//! - `load` of random objects on a warm file, with p50/p99 from a timing loop.
//!
//! Run with `cargo bench --bench storage`. The data is synthetic and seeded; the files are
//! left in `target/bench-storage/` so the Python reference can be measured on the same
//! bytes. Without `--bench` (e.g. `cargo test --benches`) everything runs once, small.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::storage::ReadStorage;
use zrs::storage::{
    copy_transactions, DataRecord, Durability, FileStorage, MemoryStorage, Options, Storage,
    TransactionMeta, TransactionRecord,
};
use zrs::{Oid, Tid};

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-storage");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A seeded replication-like workload: mostly small pickles, some large, overwrites of a
/// growing set of objects, a few undo-style records (data plus data_txn).
fn workload(target_bytes: u64, seed: u64) -> MemoryStorage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = MemoryStorage::new("workload");
    let mut objects: Vec<(Tid, Vec<u8>)> = Vec::new();
    let mut n = 0u64;
    while s.size() < target_bytes {
        n += 1;
        let tid = Tid::from_u64(0x03d0_0000_0000_0000 + n * 0x1000);
        let user = format!("/ user{}", n % 13).into_bytes();
        let extension = if n.is_multiple_of(3) {
            b"\x80\x03}q\x00X\x03\x00\x00\x00appq\x01X\x05\x00\x00\x00benchq\x02s.".to_vec()
        } else {
            Vec::new()
        };
        s.tpc_begin(TransactionMeta {
            tid,
            status: b' ',
            user,
            description: format!("transaction {n}").into_bytes(),
            extension,
        })
        .unwrap();
        for _ in 0..rng.gen_range(1..6) {
            let (oid, data, data_txn) = if !objects.is_empty() && rng.gen_bool(0.03) {
                let i = rng.gen_range(0..objects.len());
                (i, objects[i].1.clone(), Some(objects[i].0))
            } else {
                let len = if rng.gen_bool(0.01) {
                    rng.gen_range(64 * 1024..200 * 1024)
                } else {
                    rng.gen_range(60..2000)
                };
                let data: Vec<u8> = (0..len)
                    .map(|i| (i as u8) ^ rng.gen::<u8>() & 0x0f)
                    .collect();
                let i = if objects.is_empty() || rng.gen_bool(0.3) {
                    objects.push((tid, Vec::new()));
                    objects.len() - 1
                } else {
                    rng.gen_range(0..objects.len())
                };
                (i, data, None)
            };
            s.restore(Oid::from_u64(oid as u64), tid, Some(&data), b"", data_txn)
                .unwrap();
            if data_txn.is_none() {
                objects[oid] = (tid, data);
            }
        }
        s.tpc_vote().unwrap();
        s.tpc_finish().unwrap();
    }
    s
}

fn transactions(s: &dyn Storage) -> Vec<TransactionRecord> {
    s.iterator(None, None).map(Result::unwrap).collect()
}

/// Replay `txns` into `dst` like replication (and like `copy_transactions`).
fn replay(txns: &[TransactionRecord], dst: &mut dyn Storage) {
    for t in txns {
        dst.tpc_begin(t.meta.clone()).unwrap();
        for DataRecord {
            oid,
            serial,
            data,
            data_txn,
        } in &t.records
        {
            dst.restore(*oid, *serial, data.as_deref(), b"", *data_txn)
                .unwrap();
        }
        dst.tpc_vote().unwrap();
        dst.tpc_finish().unwrap();
    }
    dst.sync().unwrap();
}

fn fresh_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn bench_restore(c: &mut Criterion, dir: &Path) {
    let size = if bench_mode() { 2 << 20 } else { 64 << 10 };
    let src = workload(size, 1);
    let txns = transactions(&src);
    // The bytes a FileStorage holds for them, and each transaction's share.
    let mut reference =
        FileStorage::open(fresh_file(dir, "restore-ref.fs"), Options::default()).unwrap();
    let mut cuts = vec![reference.size()];
    for t in &txns {
        replay(std::slice::from_ref(t), &mut reference);
        cuts.push(reference.size());
    }
    drop(reference);
    let bytes = std::fs::read(dir.join("restore-ref.fs")).unwrap();
    eprintln!(
        "restore workload: {} transactions, {} records, {} bytes",
        txns.len(),
        txns.iter().map(|t| t.records.len()).sum::<usize>(),
        bytes.len()
    );

    let mut g = c.benchmark_group("restore");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    for (name, durability, every) in [
        ("fsync-each", Durability::EveryTransaction, 1usize),
        ("fsync-batch-100", Durability::Batch(100), 100),
    ] {
        g.bench_function(BenchmarkId::new("FileStorage", name), |b| {
            b.iter(|| {
                let path = fresh_file(dir, "restore.fs");
                let mut s = FileStorage::open(
                    &path,
                    Options {
                        read_only: false,
                        durability,
                    },
                )
                .unwrap();
                replay(&txns, &mut s);
                s.close().unwrap();
            })
        });
        // The floor: the same bytes appended in the same pieces, fsynced as often.
        g.bench_function(BenchmarkId::new("plain-write", name), |b| {
            b.iter(|| {
                let path = fresh_file(dir, "plain.fs");
                let mut f = File::create(&path).unwrap();
                f.write_all(&bytes[..4]).unwrap();
                f.sync_all().unwrap();
                for (i, w) in cuts.windows(2).enumerate() {
                    f.write_all(&bytes[w[0] as usize..w[1] as usize]).unwrap();
                    if (i + 1).is_multiple_of(every) {
                        f.sync_all().unwrap();
                    }
                }
                f.sync_all().unwrap();
            })
        });
    }
    g.finish();
    // The same copy through the library's copy (extension round trip included), once.
    let src_fs = FileStorage::open(
        dir.join("restore-ref.fs"),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut dst =
        FileStorage::open(fresh_file(dir, "restore-copy.fs"), Options::default()).unwrap();
    copy_transactions(&src_fs, &mut dst).unwrap();
    drop(dst);
    assert!(std::fs::read(dir.join("restore-copy.fs")).unwrap() == bytes);
}

/// The ~100 MB file for the open and load benchmarks, written once per run.
fn big_file(dir: &Path) -> PathBuf {
    let size = if bench_mode() { 100 << 20 } else { 256 << 10 };
    let path = fresh_file(dir, "big.fs");
    let txns = transactions(&workload(size, 2));
    let mut s = FileStorage::open(
        &path,
        Options {
            read_only: false,
            durability: Durability::Batch(1000),
        },
    )
    .unwrap();
    replay(&txns, &mut s);
    eprintln!(
        "open/load file: {} ({} bytes, {} transactions, {} objects)",
        path.display(),
        s.size(),
        txns.len(),
        s.len()
    );
    path
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

fn bench_open(c: &mut Criterion, path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut g = c.benchmark_group("open");
    g.throughput(Throughput::Bytes(len));
    g.bench_function("index-scan", |b| {
        b.iter(|| FileStorage::open(path, read_only()).unwrap())
    });
    g.finish();
}

fn bench_load(c: &mut Criterion, path: &Path) {
    let s = FileStorage::open(path, read_only()).unwrap();
    let n = s.len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    c.bench_function("load/random-object", |b| {
        b.iter(|| s.load(Oid::from_u64(rng.gen_range(0..n))).unwrap())
    });

    // Percentiles from a plain timing loop (criterion reports means).
    let rounds = if bench_mode() { 200_000 } else { 1000 };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let oid = Oid::from_u64(rng.gen_range(0..n));
        let t0 = Instant::now();
        let r = s.load(oid).unwrap();
        times.push(t0.elapsed());
        std::hint::black_box(r);
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "load latency over {rounds} random loads: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let dir = out_dir();
    bench_restore(&mut c, &dir);
    let big = big_file(&dir);
    bench_open(&mut c, &big);
    bench_load(&mut c, &big);
    c.final_summary();
}
