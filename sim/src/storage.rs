//! Storages for simulated secondaries.

use std::path::Path;

use zrs::storage::file::FileStorage;

/// Opens (or creates) the FileStorage at `path`, named `name` as ZODB would name it.
pub fn open_file_storage(name: &str, path: &Path) -> Result<FileStorage, String> {
    FileStorage::open_named(path, name).map_err(|e| format!("opening {}: {e}", path.display()))
}
