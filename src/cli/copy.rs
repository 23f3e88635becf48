//! `zrs copy SRC DST`: rebuild a FileStorage through the replication write path.

use std::path::PathBuf;

use zrs::storage::{
    copy_transactions, Durability, FileStorage, Options, ReadStorage, Storage, StorageError,
};

/// Copy the transactions of the FileStorage SRC into the FileStorage DST (created if
/// missing; when it already holds transactions, the copy resumes after its last one), the
/// way a secondary writes them: extension re-encoded, each record restored with its
/// data_txn. The result is byte-identical to SRC.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Data.fs to read (opened read-only).
    src: PathBuf,
    /// The Data.fs to write.
    dst: PathBuf,
    /// fsync once every N transactions instead of at each one (catch-up mode).
    #[arg(long, value_name = "N")]
    batch: Option<u32>,
}

pub fn run(args: Args) -> Result<(), String> {
    let context = |what: &str, path: &std::path::Path| {
        let path = path.display().to_string();
        let what = what.to_string();
        move |e: StorageError| format!("{what} {path}: {e}")
    };
    let src = FileStorage::open(
        &args.src,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .map_err(context("opening", &args.src))?;
    let durability = match args.batch {
        Some(n) => Durability::Batch(n),
        None => Durability::EveryTransaction,
    };
    let mut dst = FileStorage::open(
        &args.dst,
        Options {
            read_only: false,
            durability,
        },
    )
    .map_err(context("opening", &args.dst))?;
    let stats = copy_transactions(&src, &mut dst).map_err(context("copying into", &args.dst))?;
    dst.close().map_err(context("closing", &args.dst))?;
    eprintln!(
        "zrs copy: {} transactions, {} records, {} data bytes; {} is {} bytes",
        stats.transactions,
        stats.records,
        stats.data_bytes,
        args.dst.display(),
        dst.size()
    );
    Ok(())
}
