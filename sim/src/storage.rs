//! Storages for simulated secondaries.

use std::io;
use std::path::Path;

use zrs::storage::file::backend::{Backend, FileBackend};
use zrs::storage::file::{FileStorage, Options};

/// Opens (or creates) the FileStorage at `path`, named `name` as ZODB would name it, with
/// production durability (fsync at every finish).
///
/// `durable: false` is for runs in a throw-away directory: the storage's code is the same,
/// but its backend's fsync does nothing — it would cost more than the whole run and prove
/// nothing about a directory deleted at the end.
pub fn open_file_storage(name: &str, path: &Path, durable: bool) -> Result<FileStorage, String> {
    let error = |e: &dyn std::fmt::Display| format!("opening {}: {e}", path.display());
    let file = FileBackend::open(path, false).map_err(|e| error(&e))?;
    let backend: Box<dyn Backend> = if durable {
        Box::new(file)
    } else {
        Box::new(Scratch(file))
    };
    FileStorage::open_with_backend(name, backend, Options::default()).map_err(|e| error(&e))
}

/// A file whose fsyncs are skipped (scratch files only).
#[derive(Debug)]
struct Scratch(FileBackend);

impl Backend for Scratch {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(pos, buf)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_at(pos, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}
