//! Load test of the simulator's secondary path (issue 8): a generated workload of 1M
//! objects (~1.3 GB of replication stream, records of 100 B – 5 KB, 0.1% of 100–300 KiB,
//! undo records, unicode metadata; `benches/workload.rs`) delivered through the scenario
//! runner's `send file` steps to the sans-IO secondary over a FileStorage. Reports
//! records/s, MB/s and the process's peak memory; checks the secondary ends with the
//! primary's last transaction. The storage is the runner's scratch FileStorage (a fresh
//! temporary directory, fsync skipped, as `zrs-sim run` does without `--storage-dir`).
//!
//!     cargo bench -p zrs-sim --bench load [-- OBJECTS [DIR]]     # default 1000000 /tmp/zrs-scale/sim
//!
//! The stream is split into 64 MiB files, one `send file` each, so the runner holds one
//! piece at a time. Files are generated once into DIR and kept.

#[path = "../../benches/workload.rs"]
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use zrs::protocol::StreamEncoder;
use zrs::storage::{Durability, FileStorage, Options, ReadStorage};
use zrs::Tid;
use zrs_sim::runner::{run, RunOptions};
use zrs_sim::scenario::Scenario;

const PIECE: usize = 64 << 20;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The primary's Data.fs and the stream pieces; returns (pieces, stream bytes, records).
fn prepare(dir: &Path, objects: u64) -> (Vec<PathBuf>, u64, u64) {
    let primary = dir.join("primary.fs");
    let done = dir.join("pieces.txt");
    if !done.exists() {
        let _ = std::fs::remove_file(&primary);
        let mut fs = FileStorage::open(
            &primary,
            Options {
                read_only: false,
                durability: Durability::Batch(100_000),
            },
        )
        .unwrap();
        let g = workload::Generator::new(8, workload::STREAM, objects, 1)
            .run(&mut fs, |_| {})
            .unwrap();
        drop(fs);
        let fs = FileStorage::open(
            &primary,
            Options {
                read_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        let mut encoder = StreamEncoder::new(Tid::ZERO);
        let mut piece = Vec::with_capacity(PIECE + (1 << 20));
        let mut pieces = Vec::new();
        let mut total = 0u64;
        let flush = |piece: &mut Vec<u8>, pieces: &mut Vec<PathBuf>| {
            let path = dir.join(format!("stream-{:04}.bin", pieces.len()));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(piece)
                .unwrap();
            pieces.push(path);
            piece.clear();
        };
        for txn in fs.iterator(None, None) {
            let before = piece.len();
            encoder.transaction(&txn.unwrap(), &mut piece).unwrap();
            total += (piece.len() - before) as u64;
            if piece.len() >= PIECE {
                flush(&mut piece, &mut pieces);
            }
        }
        if !piece.is_empty() {
            flush(&mut piece, &mut pieces);
        }
        let list: String = pieces
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        std::fs::write(&done, format!("{total} {}\n{list}", g.records)).unwrap();
    }
    let text = std::fs::read_to_string(&done).unwrap();
    let mut lines = text.lines();
    let mut head = lines.next().unwrap().split_whitespace();
    let total = head.next().unwrap().parse().unwrap();
    let records = head.next().unwrap().parse().unwrap();
    (lines.map(PathBuf::from).collect(), total, records)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let objects: u64 = args.first().map_or(1_000_000, |a| a.parse().unwrap());
    let dir = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| format!("/tmp/zrs-scale/sim-{objects}")),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = Instant::now();
    let (pieces, bytes, records) = prepare(&dir, objects);
    eprintln!(
        "workload: {objects} objects, {records} records, {bytes} stream bytes in {} pieces ({:.1} s)",
        pieces.len(),
        t0.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_kib().unwrap_or(0);

    let last = FileStorage::open(
        dir.join("primary.fs"),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
    .last_transaction();
    let mut text = String::from("open Data.fs ('127.0.0.1', 8100)\naccept\nread\nread\n");
    for p in &pieces {
        text.push_str(&format!("send file {}\n", p.display()));
    }
    text.push_str("lastTransaction\n");
    let scenario = Scenario::parse(&dir.join("load.scn"), &text).unwrap();
    let t = Instant::now();
    let transcript = run(&scenario, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_kib().unwrap_or(0);
    let tail = &transcript[transcript.len().saturating_sub(2000)..];
    assert!(
        tail.contains(&zrs::repr::py2_bytes_repr(last.as_bytes())),
        "the secondary does not end with the primary's last transaction {last:?}:\n{tail}"
    );
    println!(
        "simulator secondary path: {records} records, {:.1} MB in {secs:.2} s: {:.0} records/s, \
         {:.0} MB/s; peak RSS {:.1} MB (after generating: {:.1} MB); last transaction as the primary's",
        bytes as f64 / 1e6,
        records as f64 / secs,
        bytes as f64 / 1e6 / secs,
        rss as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    );
}
