//! Storages for simulated secondaries.

use std::path::Path;

use zrs::storage::file::backend::FileBackend;
use zrs::storage::file::{Durability, FileStorage, Options};

/// Opens (or creates) the FileStorage at `path`, named `name` as ZODB would name it.
///
/// `durable`: fsync every transaction, as in production; runs in a throw-away directory
/// skip the fsyncs (they would cost more than the whole run and prove nothing there).
pub fn open_file_storage(name: &str, path: &Path, durable: bool) -> Result<FileStorage, String> {
    let error = |e: &dyn std::fmt::Display| format!("opening {}: {e}", path.display());
    let backend = FileBackend::open(path, false).map_err(|e| error(&e))?;
    let durability = if durable {
        Durability::EveryTransaction
    } else {
        Durability::Batch(u32::MAX)
    };
    let options = Options {
        read_only: false,
        durability,
    };
    FileStorage::open_with_backend(name, Box::new(backend), options).map_err(|e| error(&e))
}
