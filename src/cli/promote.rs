//! `zrs promote PATH`: make sure a stopped secondary's Data.fs is fit for a primary to
//! serve, for a failover.
//!
//! A Data.fs carries no mark of being a replica — zc.zrs promotes a secondary by
//! reconfiguring it (`replicate-to` instead of `replicate-from`) and restarting it, and so
//! does zrs. What can go wrong is the file: a secondary that was killed may leave a torn
//! last transaction, which a primary would stream to its secondaries. So `promote`:
//! 1. takes `Data.fs.lock` (failing, naming the pid, while the secondary still runs), so
//!    nothing writes the file during the check;
//! 2. checks that the file ends cleanly — or, with `--truncate-tail`, cuts a damaged tail
//!    off as a secondary reopening it would (the transaction was never committed);
//! 3. reads every transaction and record back, so a damaged middle is found now and not
//!    by the secondaries;
//! 4. prints the position the new primary starts from and what to do next.
//!
//! After it, serve the file as a primary; the other secondaries follow it by changing their
//! primary address. One that holds transactions the new primary lacks (it was ahead) is
//! refused by the primary when it connects, rather than diverging.

use std::path::PathBuf;

use zrs::net::status::tid_hex;
use zrs::storage::file::lock::{lock_path, LockFile};
use zrs::storage::{FileStorage, Options, ReadStorage};

/// Check that a stopped secondary's Data.fs ends cleanly and reads back whole, so that it
/// can be served as a primary (failover).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The secondary's Data.fs (its secondary must be stopped).
    path: PathBuf,
    /// Cut off a damaged last transaction (as a secondary reopening the file would) instead
    /// of refusing.
    #[arg(long)]
    truncate_tail: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = &args.path;
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    let opening = |e| format!("opening {}: {e}", path.display());
    // Writable opens take the lock themselves; a read-only check takes it here.
    let (storage, _lock) = if args.truncate_tail {
        (
            FileStorage::open(path, Options::default()).map_err(opening)?,
            None,
        )
    } else {
        let lock = LockFile::acquire(&lock_path(path)).map_err(|e| format!("{e}"))?;
        let read_only = Options {
            read_only: true,
            ..Options::default()
        };
        (
            FileStorage::open(path, read_only).map_err(opening)?,
            Some(lock),
        )
    };
    if let Some(tail) = storage.recovered_tail() {
        if !args.truncate_tail {
            return Err(format!(
                "{} does not end cleanly: a damaged transaction at byte {} ({}; {} bytes). A \
                 primary must not serve it: rerun with --truncate-tail to cut it off (it was \
                 never committed)",
                path.display(),
                tail.pos,
                tail.what,
                tail.len
            ));
        }
        println!(
            "{}: cut off a damaged transaction at byte {} ({} bytes)",
            path.display(),
            tail.pos,
            tail.len
        );
    }
    let mut transactions = 0u64;
    let mut records = 0u64;
    for txn in storage.iterator(None, None) {
        let txn = txn.map_err(|e| format!("{}: reading it back: {e}", path.display()))?;
        transactions += 1;
        records += txn.records.len() as u64;
    }
    let last = storage.last_transaction();
    println!(
        "{}: ends cleanly; {transactions} transactions, {records} records, {} objects, {} bytes; \
         last transaction {} ({last})",
        path.display(),
        storage.len(),
        storage.size(),
        tid_hex(last),
    );
    println!(
        "Ready to serve as a primary: give its <zrs> section `replicate-to ADDRESS` instead of \
         `replicate-from` (or run it as a primary), and point the other secondaries at it."
    );
    Ok(())
}
