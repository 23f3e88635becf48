//! The blob directory on disk: temporary files, atomic installs, the crash journal.
//!
//! A blob is received into a temporary file in the directory's `tmp` folder (where ZODB
//! keeps its own), fsynced, given the mode ZODB gives committed blobs, renamed to its final
//! name and its directory fsynced: a crash leaves either the whole file under its final
//! name or none. Files are installed when their transaction votes, before the Data.fs
//! commits, so a crash in between leaves complete blob files of a transaction the Data.fs
//! does not hold. The journal (`tmp/zrs-journal`) lists the files installed since the
//! storage was last made durable; opening the directory removes those beyond the Data.fs's
//! last transaction, and our temporary files (`tmp/zrs-*.tmp`) with them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::layout::{self, Layout, LAYOUT_MARKER};
use crate::tid::{Oid, Tid};

const TMP: &str = "tmp";
const JOURNAL: &str = "zrs-journal";
const TEMP_PREFIX: &str = "zrs-";
const TEMP_SUFFIX: &str = ".tmp";

/// A blob directory in ZODB's layout.
#[derive(Debug)]
pub struct BlobDir {
    root: PathBuf,
    layout: Layout,
    /// Whether to fsync (off only for throw-away directories, as the simulator's scratch
    /// files are).
    durable: bool,
    /// Names temporary files uniquely within this process.
    next_temp: AtomicU64,
}

/// A blob file being received, in `tmp`; removed when dropped uninstalled.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    file: Option<File>,
    len: u64,
}

impl TempBlob {
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let file = self.file.as_mut().ok_or_else(closed)?;
        file.write_all(chunk)?;
        self.len += chunk.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Leaves the file where it is, as a process that dies does (simulation and tests).
    pub fn abandon(mut self) {
        self.file = None;
    }
}

fn closed() -> io::Error {
    io::Error::other("temporary blob file already installed")
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl BlobDir {
    /// Opens the blob directory at `root` for writing, creating it, its `tmp` folder and
    /// its `.layout` marker as ZODB does when they are missing.
    pub fn create(root: &Path, durable: bool) -> io::Result<BlobDir> {
        let layout = layout::select(root)?;
        let created = !root.exists();
        fs::create_dir_all(root.join(TMP))?;
        let marker = root.join(LAYOUT_MARKER);
        if !marker.exists() {
            // No newline, as ZODB writes it.
            fs::write(&marker, layout.name())?;
        }
        let dir = BlobDir {
            root: root.to_path_buf(),
            layout,
            durable,
            next_temp: AtomicU64::new(0),
        };
        if created && durable {
            if let Some(parent) = root.parent() {
                sync_dir(if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                })?;
            }
        }
        Ok(dir)
    }

    /// Opens an existing blob directory for reading only.
    pub fn open_read_only(root: &Path) -> io::Result<BlobDir> {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no blob directory", root.display()),
            ));
        }
        Ok(BlobDir {
            root: root.to_path_buf(),
            layout: layout::select(root)?,
            durable: false,
            next_temp: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Where the committed blob of `(oid, tid)` lives.
    pub fn blob_path(&self, oid: Oid, tid: Tid) -> PathBuf {
        self.root.join(self.layout.blob_path(oid, tid))
    }

    /// A new, empty temporary file (mode 0600, as `mkstemp` makes them).
    pub fn create_temp(&self) -> io::Result<TempBlob> {
        loop {
            let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
            let path = self.root.join(TMP).join(format!(
                "{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}",
                std::process::id()
            ));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(file) => {
                    return Ok(TempBlob {
                        path,
                        file: Some(file),
                        len: 0,
                    })
                }
                // Left by an earlier process with the same pid: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A temporary copy of the committed blob of `(oid, tid)`, if there is one.
    pub fn copy_to_temp(&self, oid: Oid, tid: Tid) -> io::Result<Option<TempBlob>> {
        let mut source = match File::open(self.blob_path(oid, tid)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut temp = self.create_temp()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            temp.write(&buf[..n])?;
        }
        Ok(Some(temp))
    }

    /// Makes `temp` the committed blob of `(oid, tid)`: durable first, then renamed into
    /// place (replacing a file of an earlier, interrupted try), then the rename durable.
    pub fn install(&self, mut temp: TempBlob, oid: Oid, tid: Tid) -> io::Result<()> {
        let file = temp.file.take().ok_or_else(closed)?;
        let result = self.install_file(&file, &temp.path, oid, tid);
        drop(file);
        if result.is_err() {
            let _ = fs::remove_file(&temp.path);
        }
        result
    }

    fn install_file(&self, file: &File, temp: &Path, oid: Oid, tid: Tid) -> io::Result<()> {
        if self.durable {
            file.sync_all()?;
        }
        let oid_dir = self.create_oid_dir(oid)?;
        set_not_writable(file, &oid_dir)?;
        let target = oid_dir.join(layout::blob_file_name(tid));
        fs::rename(temp, &target)?;
        if self.durable {
            sync_dir(&oid_dir)?;
            sync_dir(&self.root.join(TMP))?;
        }
        Ok(())
    }

    /// The oid's directory, created (and each new level made durable) if missing.
    fn create_oid_dir(&self, oid: Oid) -> io::Result<PathBuf> {
        let relative = self.layout.oid_path(oid);
        let path = self.root.join(&relative);
        if path.is_dir() {
            return Ok(path);
        }
        // The first level that is missing: its parent's entry must be synced, and so on down.
        let mut missing = Vec::new();
        let mut p = path.as_path();
        while !p.exists() {
            missing.push(p.to_path_buf());
            match p.parent() {
                Some(parent) if parent.starts_with(&self.root) => p = parent,
                _ => break,
            }
        }
        fs::create_dir_all(&path)?;
        if self.durable {
            for dir in missing.iter().rev() {
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
            }
        }
        Ok(path)
    }

    /// Removes the committed blob of `(oid, tid)`, if there is one.
    pub fn remove(&self, oid: Oid, tid: Tid) -> io::Result<()> {
        match fs::remove_file(self.blob_path(oid, tid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The committed blob of `(oid, tid)`: its length and an open file.
    pub fn open_blob(&self, oid: Oid, tid: Tid) -> io::Result<Option<(u64, File)>> {
        match File::open(self.blob_path(oid, tid)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((len, f)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join(TMP).join(JOURNAL)
    }

    /// Records, durably, that the blobs `entries` are about to be installed.
    pub fn journal_append(&self, entries: &[(Oid, Tid)]) -> io::Result<()> {
        let mut text = String::new();
        for (oid, tid) in entries {
            text.push_str(&format!("{:016x} {:016x}\n", oid.as_u64(), tid.as_u64()));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.journal_path())?;
        file.write_all(text.as_bytes())?;
        if self.durable {
            file.sync_all()?;
            // The journal's own entry, the first time.
            sync_dir(&self.root.join(TMP))?;
        }
        Ok(())
    }

    /// Forgets the journal: everything it lists is now durable in the Data.fs.
    pub fn journal_clear(&self) -> io::Result<()> {
        match fs::remove_file(self.journal_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// After a crash: removes the journal's blobs beyond `last` (their transaction never
    /// became durable) and our temporary files; returns how many blob files went.
    pub fn recover(&self, last: Tid) -> io::Result<usize> {
        let mut removed = 0;
        match fs::read_to_string(self.journal_path()) {
            Ok(text) => {
                for line in text.lines() {
                    // A torn last line was never acted on: its blob was not installed.
                    let Some((oid, tid)) = parse_journal_line(line) else {
                        continue;
                    };
                    if tid > last && self.blob_path(oid, tid).exists() {
                        self.remove(oid, tid)?;
                        removed += 1;
                    }
                }
                self.journal_clear()?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for entry in fs::read_dir(self.root.join(TMP))? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(removed)
    }
}

fn parse_journal_line(line: &str) -> Option<(Oid, Tid)> {
    let (oid, tid) = line.split_once(' ')?;
    if oid.len() != 16 || tid.len() != 16 {
        return None;
    }
    Some((
        Oid::from_u64(u64::from_str_radix(oid, 16).ok()?),
        Tid::from_u64(u64::from_str_radix(tid, 16).ok()?),
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// ZODB's `set_not_writable`: no write bits; the read bits of the directory added.
#[cfg(unix)]
fn set_not_writable(file: &File, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let dir_mode = fs::metadata(dir)?.permissions().mode();
    let mode = (mode & !0o222) | (dir_mode & 0o444);
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_not_writable(file: &File, _dir: &Path) -> io::Result<()> {
    let mut permissions = file.metadata()?.permissions();
    permissions.set_readonly(true);
    file.set_permissions(permissions)
}
