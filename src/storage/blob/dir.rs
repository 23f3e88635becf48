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

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::fs::{BlobFs, Kind, OsFs, WriteFile};
use super::layout::{self, Layout, LAYOUT_MARKER};
use crate::tid::{Oid, Tid};

const TMP: &str = "tmp";
const JOURNAL: &str = "zrs-journal";
const TEMP_PREFIX: &str = "zrs-";
const TEMP_SUFFIX: &str = ".tmp";
/// The `.layout` marker while it is written (a temporary file: recovery removes it).
const LAYOUT_TEMP: &str = "zrs-layout.tmp";

/// A blob directory in ZODB's layout.
#[derive(Debug)]
pub struct BlobDir {
    fs: Arc<dyn BlobFs>,
    root: PathBuf,
    layout: Layout,
    /// Whether to fsync (off only for throw-away directories, as the simulator's scratch
    /// files are).
    durable: bool,
    /// Names temporary files uniquely within this process.
    next_temp: AtomicU64,
    /// An install failed (a directory fsync, a `mkdir`, a rename) or an installed file
    /// was removed: names it made or removed may be visible yet not durable (a failed
    /// fsync is data of unknown state). Each install from then on makes every level of
    /// its oid's path durable, not only the levels it creates, and the journal goes only
    /// once the paths of all it lists are made durable (found by zrs-sim: a retried
    /// install found the oid's directory there, synced nothing above it, and a crash took
    /// the committed blob with the directory).
    unsure: AtomicBool,
}

/// A blob file being received, in `tmp`; removed when dropped uninstalled.
#[derive(Debug)]
pub struct TempBlob {
    fs: Arc<dyn BlobFs>,
    path: PathBuf,
    file: Option<Box<dyn WriteFile>>,
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
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// Whether `path` is a directory (the empty path is the current one).
fn is_dir(fs: &dyn BlobFs, path: &Path) -> io::Result<bool> {
    if path.as_os_str().is_empty() {
        return Ok(true);
    }
    Ok(fs.kind(path)? == Some(Kind::Dir))
}

/// Creates `path` and its missing parents; returns those created, outermost first.
fn create_dir_all(fs: &dyn BlobFs, path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = path;
    while !is_dir(fs, p)? {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    missing.reverse();
    for dir in &missing {
        match fs.create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(missing)
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl BlobDir {
    /// Opens the blob directory at `root` on the host's file system for writing, creating
    /// it, its `tmp` folder and its `.layout` marker as ZODB does when they are missing.
    pub fn create(root: &Path, durable: bool) -> io::Result<BlobDir> {
        BlobDir::create_on(Arc::new(OsFs), root, durable)
    }

    /// [`BlobDir::create`] on the file system `fs`.
    pub fn create_on(fs: Arc<dyn BlobFs>, root: &Path, durable: bool) -> io::Result<BlobDir> {
        let layout = layout::select(&*fs, root)?;
        let created = create_dir_all(&*fs, &root.join(TMP))?;
        if durable {
            for dir in &created {
                fs.sync_dir(parent_of(dir))?;
            }
        }
        let marker = root.join(LAYOUT_MARKER);
        if fs.kind(&marker)?.is_none() {
            // Whole or not at all, as a blob file: a crash that kept the marker's name but
            // not its bytes left a directory no open could read the layout of again (found
            // by zrs-sim's simulated disk; `scenarios/blobs/crash.scn`).
            let temp = root.join(TMP).join(LAYOUT_TEMP);
            match fs.remove_file(&temp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = fs.create_new(&temp)?;
            // No newline, as ZODB writes it.
            file.write_all(layout.name().as_bytes())?;
            if durable {
                file.sync()?;
            }
            drop(file);
            fs.rename(&temp, &marker)?;
            if durable {
                fs.sync_dir(root)?;
            }
        }
        Ok(BlobDir {
            fs,
            root: root.to_path_buf(),
            layout,
            durable,
            next_temp: AtomicU64::new(0),
            unsure: AtomicBool::new(false),
        })
    }

    /// Opens an existing blob directory on the host's file system for reading only.
    pub fn open_read_only(root: &Path) -> io::Result<BlobDir> {
        let fs: Arc<dyn BlobFs> = Arc::new(OsFs);
        if !is_dir(&*fs, root)? {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no blob directory", root.display()),
            ));
        }
        Ok(BlobDir {
            layout: layout::select(&*fs, root)?,
            fs,
            root: root.to_path_buf(),
            durable: false,
            next_temp: AtomicU64::new(0),
            unsure: AtomicBool::new(false),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The file system the directory is on.
    pub fn fs(&self) -> &Arc<dyn BlobFs> {
        &self.fs
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
                "{TEMP_PREFIX}{n}-{}{TEMP_SUFFIX}",
                std::process::id()
            ));
            match self.fs.create_new(&path) {
                Ok(file) => {
                    return Ok(TempBlob {
                        fs: self.fs.clone(),
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
        let mut source = match self.fs.open(&self.blob_path(oid, tid)) {
            Ok((_, f)) => f,
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
        let mut file = temp.file.take().ok_or_else(closed)?;
        let result = self.install_file(&mut *file, &temp.path, oid, tid);
        drop(file);
        if result.is_err() {
            self.unsure.store(true, Ordering::Relaxed);
            let _ = self.fs.remove_file(&temp.path);
        }
        result
    }

    fn install_file(
        &self,
        file: &mut dyn WriteFile,
        temp: &Path,
        oid: Oid,
        tid: Tid,
    ) -> io::Result<()> {
        if self.durable {
            file.sync()?;
        }
        let oid_dir = self.create_oid_dir(oid)?;
        file.seal(&oid_dir)?;
        let target = oid_dir.join(layout::blob_file_name(tid));
        self.fs.rename(temp, &target)?;
        if self.durable {
            self.sync_dir(&oid_dir)?;
            self.sync_dir(&self.root.join(TMP))?;
        }
        Ok(())
    }

    /// Makes `dir`'s entries durable; a failure leaves the directory [`BlobDir::unsure`].
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let result = self.fs.sync_dir(dir);
        if result.is_err() {
            self.unsure.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The oid's directory, created (and each new level made durable) if missing.
    fn create_oid_dir(&self, oid: Oid) -> io::Result<PathBuf> {
        let path = self.root.join(self.layout.oid_path(oid));
        let created = create_dir_all(&*self.fs, &path)?;
        if self.durable {
            // Each new level's entry is in its parent: synced, outermost first (every
            // level's, after a failed directory fsync).
            let levels: Vec<PathBuf> = if self.unsure.load(Ordering::Relaxed) {
                let mut levels: Vec<PathBuf> = path
                    .ancestors()
                    .take_while(|p| p.starts_with(&self.root) && *p != self.root)
                    .map(Path::to_path_buf)
                    .collect();
                levels.reverse();
                levels
            } else {
                created
            };
            for dir in &levels {
                self.sync_dir(parent_of(dir))?;
            }
        }
        Ok(path)
    }

    /// Removes the committed blob of `(oid, tid)`, if there is one (made durable when the
    /// journal goes).
    pub fn remove(&self, oid: Oid, tid: Tid) -> io::Result<()> {
        self.unsure.store(true, Ordering::Relaxed);
        match self.fs.remove_file(&self.blob_path(oid, tid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The committed blob of `(oid, tid)`: its length and a reader.
    pub fn open_blob(&self, oid: Oid, tid: Tid) -> io::Result<Option<(u64, Box<dyn Read + Send>)>> {
        match self.fs.open(&self.blob_path(oid, tid)) {
            Ok(opened) => Ok(Some(opened)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join(TMP).join(JOURNAL)
    }

    /// Records, durably, that the blobs `entries` are about to be installed.
    pub fn journal_append(&self, entries: &[(Oid, Tid)]) -> io::Result<()> {
        // From a new line: an append that failed part way left a torn line, which must
        // not swallow the first of these (found by zrs-sim: the entry it ran into could
        // not be read, and recovery kept the blob file of a transaction cut off).
        let mut text = String::from("\n");
        for (oid, tid) in entries {
            text.push_str(&format!("{:016x} {:016x}\n", oid.as_u64(), tid.as_u64()));
        }
        let mut file = self.fs.append(&self.journal_path())?;
        file.write_all(text.as_bytes())?;
        if self.durable {
            file.sync()?;
            // The journal's own entry, the first time.
            self.sync_dir(&self.root.join(TMP))?;
        }
        Ok(())
    }

    /// Forgets the journal: everything it lists is now durable in the Data.fs (and, after
    /// a failed install, made durable in the directory first).
    pub fn journal_clear(&self) -> io::Result<()> {
        if self.durable && self.unsure.load(Ordering::Relaxed) {
            let entries = match self.fs.read(&self.journal_path()) {
                Ok(bytes) => journal_entries(&bytes),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            self.make_paths_durable(&entries)?;
            self.unsure.store(false, Ordering::Relaxed);
        }
        self.remove_journal()
    }

    fn remove_journal(&self) -> io::Result<()> {
        match self.fs.remove_file(&self.journal_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes the directories of the oids of `entries` durable, every level of each path
    /// and the oid's directory itself (names created, renamed or removed in them).
    fn make_paths_durable(&self, entries: &[(Oid, Tid)]) -> io::Result<()> {
        let oids: std::collections::BTreeSet<Oid> = entries.iter().map(|(o, _)| *o).collect();
        for oid in oids {
            let path = self.root.join(self.layout.oid_path(oid));
            let mut levels: Vec<&Path> = path
                .ancestors()
                .take_while(|p| p.starts_with(&self.root) && *p != self.root)
                .collect();
            levels.reverse();
            for level in levels {
                if !is_dir(&*self.fs, level)? {
                    break;
                }
                self.sync_dir(parent_of(level))?;
            }
            if is_dir(&*self.fs, &path)? {
                self.sync_dir(&path)?;
            }
        }
        Ok(())
    }

    /// After a crash: removes the journal's blobs beyond `last` (their transaction never
    /// became durable) and our temporary files; returns how many blob files went.
    pub fn recover(&self, last: Tid) -> io::Result<usize> {
        let mut removed = 0;
        match self.fs.read(&self.journal_path()) {
            Ok(bytes) => {
                let entries = journal_entries(&bytes);
                for &(oid, tid) in &entries {
                    if tid > last && self.fs.kind(&self.blob_path(oid, tid))?.is_some() {
                        self.remove(oid, tid)?;
                        removed += 1;
                    }
                }
                // The process that wrote the journal did not see its installs through:
                // the removals above, and whatever it left unsynced in those directories,
                // are made durable before the journal that lists them goes.
                if self.durable {
                    self.make_paths_durable(&entries)?;
                    self.unsure.store(false, Ordering::Relaxed);
                }
                self.remove_journal()?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let tmp = self.root.join(TMP);
        for (name, _) in self.fs.list(&tmp)? {
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                self.fs.remove_file(&tmp.join(name))?;
            }
        }
        Ok(removed)
    }
}

/// The entries of a journal; a torn line (its blob never installed) is skipped.
fn journal_entries(bytes: &[u8]) -> Vec<(Oid, Tid)> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(parse_journal_line)
        .collect()
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
