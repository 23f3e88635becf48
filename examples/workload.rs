//! The scale benchmarks' tool (issue 8; driven by `benches/scale.py`):
//!
//! ```text
//! workload datafs OUT.fs --objects N [--revisions R] [--shape database|stream] [--seed S]
//! workload stream DATA.fs OUT.bin     # what a primary sends for DATA.fs, after tid zero
//! workload open DATA.fs               # open (index scan), print seconds and objects
//! ```
//!
//! `datafs` writes a deterministic Data.fs (see `benches/workload.rs`). `stream` writes the
//! replication stream a zc.zrs primary would send for it (every byte after the handshake),
//! and `OUT.bin.sizes`: the size each transaction takes in the Data.fs, one a line (what a
//! plain write + fsync per transaction writes). `open` measures `FileStorage::open` of a
//! file, read-only, as a process of its own so that its peak RSS can be measured.

#[path = "../benches/workload.rs"]
mod workload;

use std::io::Write;
use std::time::Instant;

use zrs::protocol::encoder::StreamEncoder;
use zrs::storage::{Durability, FileStorage, Options, ReadStorage, Storage};
use zrs::Tid;

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("workload: {e}");
        std::process::exit(2);
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match flag(args, name) {
        None => Ok(default),
        Some(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name} {v:?}: not a whole number")),
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: workload datafs OUT --objects N [--revisions R] [--shape database|stream] \
                 [--seed S] | workload stream DATA.fs OUT | workload open DATA.fs";
    match args.first().map(String::as_str) {
        Some("datafs") => {
            let out = args.get(1).ok_or(usage)?;
            let objects = number(&args, "--objects", 0)?;
            if objects == 0 {
                return Err(usage.into());
            }
            let revisions = number(&args, "--revisions", 1)? as u32;
            let seed = number(&args, "--seed", 8)?;
            let shape = match flag(&args, "--shape").as_deref() {
                None | Some("database") => workload::DATABASE,
                Some("stream") => workload::STREAM,
                Some(other) => return Err(format!("--shape {other:?}: database or stream")),
            };
            let _ = std::fs::remove_file(out);
            let mut fs = FileStorage::open(
                out,
                Options {
                    read_only: false,
                    durability: Durability::Batch(100_000),
                },
            )
            .map_err(|e| format!("{out}: {e}"))?;
            let t0 = Instant::now();
            let mut generator = workload::Generator::new(seed, shape, objects, revisions);
            let done = generator
                .run(&mut fs, |_| {})
                .map_err(|e| format!("{out}: {e}"))?;
            fs.close().map_err(|e| format!("{out}: {e}"))?;
            println!(
                "{out}: {} objects, {} records, {} transactions, {} bytes in {:.2} s",
                done.objects,
                done.records,
                done.transactions,
                fs.size(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some("stream") => {
            let (Some(src), Some(out)) = (args.get(1), args.get(2)) else {
                return Err(usage.into());
            };
            let fs = FileStorage::open(
                src,
                Options {
                    read_only: true,
                    ..Options::default()
                },
            )
            .map_err(|e| format!("{src}: {e}"))?;
            let mut file = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?,
            );
            let mut sizes = String::new();
            let mut encoder = StreamEncoder::new(Tid::ZERO);
            let mut bytes = Vec::new();
            let mut total = 0u64;
            let mut transactions = 0u64;
            for txn in fs.iterator(None, None) {
                let txn = txn.map_err(|e| format!("{src}: {e}"))?;
                bytes.clear();
                encoder
                    .transaction(&txn, &mut bytes)
                    .map_err(|e| e.to_string())?;
                file.write_all(&bytes).map_err(|e| format!("{out}: {e}"))?;
                total += bytes.len() as u64;
                transactions += 1;
                // Size in the Data.fs: header, metadata, records, redundant length.
                let m = &txn.meta;
                let mut size = 23 + m.user.len() + m.description.len() + m.extension.len() + 8;
                for r in &txn.records {
                    size += 42
                        + match (&r.data, r.data_txn) {
                            (Some(d), None) => d.len(),
                            _ => 8, // a backpointer (restore may still write the data; close enough)
                        };
                }
                sizes.push_str(&format!("{size}\n"));
            }
            file.flush().map_err(|e| format!("{out}: {e}"))?;
            std::fs::write(format!("{out}.sizes"), sizes).map_err(|e| format!("{out}: {e}"))?;
            println!("{out}: {transactions} transactions, {total} bytes");
            Ok(())
        }
        Some("open") => {
            let path = args.get(1).ok_or(usage)?;
            let t0 = Instant::now();
            let fs = FileStorage::open(
                path,
                Options {
                    read_only: true,
                    ..Options::default()
                },
            )
            .map_err(|e| format!("{path}: {e}"))?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "open {secs:.4} s, {} objects, {} bytes",
                fs.len(),
                fs.size()
            );
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
