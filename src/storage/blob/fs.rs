//! The file system under a blob directory: the few operations [`super::BlobDir`] makes,
//! behind a trait.
//!
//! A blob directory is only as good as its install protocol (temporary file, fsync, rename,
//! directory fsync) is under a crash and a failing disk. The trait lets zrs-sim run the one
//! `BlobDir` on a simulated disk that loses what was not made durable and fails operations
//! on demand, as it runs the FileStorage on a simulated [`crate::storage::file::backend::Backend`];
//! [`OsFs`], the host's file system, is what `zrs` uses. Paths are whatever the caller
//! gives (the blob directory's root joined with names); a directory's entries are made
//! durable only by [`BlobFs::sync_dir`], a file's bytes only by [`WriteFile::sync`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File { len: u64 },
    Dir,
}

/// A file open for writing.
pub trait WriteFile: Send + Sync + fmt::Debug {
    /// Appends all of `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes the file's bytes durable (not its name: that is its directory's).
    fn sync(&mut self) -> io::Result<()>;
    /// Gives the file the mode ZODB gives a committed blob (`set_not_writable`: no write
    /// bits, the read bits of `dir`, its directory).
    fn seal(&mut self, dir: &Path) -> io::Result<()>;
}

/// The operations a blob directory makes on its file system.
pub trait BlobFs: Send + Sync + fmt::Debug {
    /// A new, empty file at `path` (mode 0600, as `mkstemp` makes them); fails with
    /// `AlreadyExists` if there is one.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// The file at `path` open for appending, created if missing.
    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// The file at `path` open for reading, and its length; `NotFound` if there is none.
    fn open(&self, path: &Path) -> io::Result<(u64, Box<dyn Read + Send>)>;
    /// Renames `from` to `to`, replacing a file there.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`; `NotFound` if there is none.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates the directory `path` (its parent exists); `AlreadyExists` if it does.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of the directory `path` durable (names created, renamed in or
    /// out, removed).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// What `path` is, if it is anything.
    fn kind(&self, path: &Path) -> io::Result<Option<Kind>>;
    /// The entries of the directory `path`, sorted by name.
    fn list(&self, path: &Path) -> io::Result<Vec<(String, Kind)>>;

    /// The whole file at `path` (small files: the layout marker, the journal).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let (len, mut file) = self.open(path)?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// The host's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl WriteFile for OsFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    #[cfg(unix)]
    fn seal(&mut self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = self.0.metadata()?.permissions().mode() & 0o7777;
        let dir_mode = fs::metadata(dir)?.permissions().mode();
        let mode = (mode & !0o222) | (dir_mode & 0o444);
        self.0.set_permissions(fs::Permissions::from_mode(mode))
    }

    #[cfg(not(unix))]
    fn seal(&mut self, _dir: &Path) -> io::Result<()> {
        let mut permissions = self.0.metadata()?.permissions();
        permissions.set_readonly(true);
        self.0.set_permissions(permissions)
    }
}

fn kind_of(metadata: &fs::Metadata) -> Kind {
    if metadata.is_dir() {
        Kind::Dir
    } else {
        Kind::File {
            len: metadata.len(),
        }
    }
}

impl BlobFs for OsFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        Ok(Box::new(OsFile(options.open(path)?)))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn open(&self, path: &Path) -> io::Result<(u64, Box<dyn Read + Send>)> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok((len, Box::new(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(kind_of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, path: &Path) -> io::Result<Vec<(String, Kind)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // Follows symbolic links, as the paths built from these names will.
            let kind = kind_of(&fs::metadata(entry.path())?);
            entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}
