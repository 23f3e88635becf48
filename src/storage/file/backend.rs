//! The byte store under a FileStorage: a small trait every read and write goes through.
//!
//! The real backend is a plain [`std::fs::File`] used with positional reads and writes, so
//! one open file serves the writer and any number of readers at once. [`MemoryBackend`]
//! keeps the bytes in memory (tests, benchmarks). The simulator implements the same trait
//! as a disk that loses unsynced writes or tears the last one at a crash, which is why the
//! storage treats [`Backend::sync`] as the only durability point and the trait is
//! `Send + Sync` with `&self` methods.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Positional byte storage.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Read up to `buf.len()` bytes at `pos`; returns how many were read, fewer only at the
    /// end of the data.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `data` at `pos`, extending the store if needed.
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()>;
    /// Truncate (or extend with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make every write so far durable.
    fn sync(&self) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Read exactly `buf.len()` bytes at `pos`, or fail with `UnexpectedEof`.
    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let n = self.read_at(pos, buf)?;
        if n < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("wanted {} bytes at {pos}, got {n}", buf.len()),
            ));
        }
        Ok(())
    }
}

/// A shared backend is a backend: lets a test or the simulator keep a handle on the disk
/// the storage writes to.
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(pos, buf)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(pos, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
}

/// A file on disk.
#[derive(Debug)]
pub struct FileBackend {
    file: File,
}

impl FileBackend {
    /// Open `path` for reading and, unless `read_only`, writing; a writable open creates the
    /// file if it is missing.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileBackend> {
        let file = if read_only {
            File::open(path)?
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?
        };
        Ok(FileBackend { file })
    }

    pub fn from_file(file: File) -> FileBackend {
        FileBackend { file }
    }
}

impl Backend for FileBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match pread(&self.file, &mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            match pwrite(&self.file, &data[done..], pos + done as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        // Data and size: a truncation or an append must survive too.
        self.file.sync_all()
    }
}

#[cfg(unix)]
fn pread(f: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, pos)
}
#[cfg(unix)]
fn pwrite(f: &File, buf: &[u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(f, buf, pos)
}
#[cfg(windows)]
fn pread(f: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, pos)
}
#[cfg(windows)]
fn pwrite(f: &File, buf: &[u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(f, buf, pos)
}

/// Bytes in memory; `sync` does nothing (nothing is lost, nothing to make durable).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    bytes: Mutex<Vec<u8>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    pub fn with_bytes(bytes: Vec<u8>) -> MemoryBackend {
        MemoryBackend {
            bytes: Mutex::new(bytes),
        }
    }

    /// A copy of the current contents.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.bytes).clone()
    }
}

fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    // A panic elsewhere while holding the lock leaves plain bytes behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl Backend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.bytes).len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = lock(&self.bytes);
        let pos = to_usize(pos)?;
        if pos >= bytes.len() {
            return Ok(0);
        }
        let n = buf.len().min(bytes.len() - pos);
        buf[..n].copy_from_slice(&bytes[pos..pos + n]);
        Ok(n)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = lock(&self.bytes);
        let pos = to_usize(pos)?;
        let end = pos
            .checked_add(data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[pos..end].copy_from_slice(data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = to_usize(len)?;
        lock(&self.bytes).resize(len, 0);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(b: &dyn Backend) {
        assert_eq!(b.len().unwrap(), 0);
        b.write_at(0, b"FS21").unwrap();
        b.write_at(6, b"xy").unwrap();
        assert_eq!(b.len().unwrap(), 8);
        let mut buf = [0u8; 10];
        assert_eq!(b.read_at(0, &mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], b"FS21\0\0xy");
        assert_eq!(b.read_at(100, &mut buf).unwrap(), 0);
        assert!(b.read_exact_at(4, &mut buf).is_err());
        b.set_len(5).unwrap();
        assert_eq!(b.len().unwrap(), 5);
        let mut one = [9u8; 1];
        b.read_exact_at(4, &mut one).unwrap();
        assert_eq!(one, [0]);
        b.sync().unwrap();
    }

    #[test]
    fn memory_backend_reads_writes_truncates() {
        exercise(&MemoryBackend::new());
    }

    #[test]
    fn file_backend_reads_writes_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open(&dir.path().join("x.fs"), false).unwrap();
        exercise(&b);
    }
}
