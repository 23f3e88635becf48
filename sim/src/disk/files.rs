//! Files and directories on the simulated disk: where a simulated node's blob directory
//! lives, through zrs's [`BlobFs`], so that the one `BlobDir` a `zrs secondary --blob-dir`
//! runs is crashed and failed like the Data.fs beside it.
//!
//! The tree is paths to entries (a directory, or a file naming an inode) and inodes to
//! bytes, kept twice: as reads see it, and as a crash would find it. What changes it goes
//! into the disk's one ordered log of unsynced operations (with the Data.fs's writes) and
//! becomes durable only as POSIX promises:
//!
//! - a file's writes by an fsync of that file ([`WriteFile::sync`]), not its name;
//! - a name created, removed or renamed by an fsync of the directory holding it (for a
//!   rename, the directory it went to: journaling file systems commit the two halves of
//!   a rename together), together with the earlier unsynced operations on the same names
//!   it depends on (the creation of the file it renamed, say);
//! - an entry under a directory whose own entry is not durable is unreachable after a
//!   crash, and goes.
//!
//! A crash keeps a prefix of the log and tears the next operation if it is a write (see
//! [`super::SimDisk::crash`]); a creation, removal or rename is all or nothing. Faults: a
//! file write, a creation, a `mkdir` and a rename fail as writes (nothing changes but the
//! landed part of a write), a file or directory fsync as a sync (a file's unsynced bytes
//! are then forgotten, never to become durable, as the Data.fs's; a directory's changes
//! stay unsynced, for a later fsync to make durable or a crash to undo), a file read as a
//! read. Removals do not fail (each is a
//! cleanup the next recovery repeats); modes are not modelled (`seal` does nothing).
//!
//! Two choices keep a campaign's blob traffic cheap (blob bytes are most of a blob run's
//! cost): paths are keyed as byte strings ([`Key`]), so lookups and listings of the bushy
//! layout's eight-deep directories compare bytes, not `Path` components; and a write's
//! bytes are copied once, when made ([`Contents`]), then shared by the log and both
//! versions of the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::ops::Bound::{Included, Unbounded};
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};

use zrs::storage::blob::fs::{BlobFs, Kind, WriteFile};
use zrs::storage::file::faulty::DiskOp;

use super::{lock, Op, SimDisk, State};

/// A path as the tree keys it: its components (without `.`) joined by NUL bytes, the top
/// directory empty. No name holds a NUL and NUL sorts below every other byte, so keys sort
/// component-wise, as paths do: a directory just before its entries, and those before its
/// next sibling.
type Key = Vec<u8>;

/// The directory holding `key` (the top directory for a top-level name); `None` for the
/// top directory itself.
fn parent(key: &[u8]) -> Option<&[u8]> {
    if key.is_empty() {
        return None;
    }
    Some(
        key.iter()
            .rposition(|b| *b == 0)
            .map_or(&[][..], |i| &key[..i]),
    )
}

/// `key` as the path it stands for, for messages.
fn shown(key: &[u8]) -> String {
    let bytes: Vec<u8> = key
        .iter()
        .map(|b| if *b == 0 { b'/' } else { *b })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A file's bytes, as the writes that made them: each write's bytes are copied once, when
/// it is made, and shared by the log and both versions of the tree (applying a write to
/// either copies nothing; a blob of megabytes used to be copied three times).
#[derive(Clone, Debug, Default)]
pub(super) struct Contents {
    /// The pieces in order, each with the offset where it ends.
    pieces: Vec<(Arc<[u8]>, usize)>,
}

impl Contents {
    fn len(&self) -> usize {
        self.pieces.last().map_or(0, |(_, end)| *end)
    }

    /// Writes `data` at `pos`: an append adds a piece; anything else (an overwrite, or a
    /// write past the end, zeros between) makes the file one piece again.
    fn write(&mut self, pos: usize, data: &Arc<[u8]>) {
        let len = self.len();
        if pos == len {
            if !data.is_empty() {
                self.pieces.push((data.clone(), len + data.len()));
            }
            return;
        }
        let mut bytes = self.to_vec();
        let end = pos + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[pos..end].copy_from_slice(data);
        let end = bytes.len();
        self.pieces = vec![(bytes.into(), end)];
    }

    /// Copies the bytes from `pos` into `buf`; returns how many.
    fn read(&self, pos: usize, buf: &mut [u8]) -> usize {
        let mut n = 0;
        let mut i = self.pieces.partition_point(|(_, end)| *end <= pos);
        while n < buf.len() && i < self.pieces.len() {
            let (bytes, end) = &self.pieces[i];
            let from = pos + n - (end - bytes.len());
            let k = (bytes.len() - from).min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&bytes[from..from + k]);
            n += k;
            i += 1;
        }
        n
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for (bytes, _) in &self.pieces {
            out.extend_from_slice(bytes);
        }
        out
    }
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Dir,
    File(u64),
}

/// One unsynced change to the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum FileOp {
    Write {
        inode: u64,
        pos: u64,
        data: Arc<[u8]>,
    },
    Link {
        path: Key,
        entry: Entry,
    },
    Unlink {
        path: Key,
    },
    Rename {
        from: Key,
        to: Key,
    },
}

impl FileOp {
    /// The names the operation changes.
    fn names(&self) -> Vec<&Key> {
        match self {
            FileOp::Write { .. } => Vec::new(),
            FileOp::Link { path, .. } | FileOp::Unlink { path } => vec![path],
            FileOp::Rename { from, to } => vec![from, to],
        }
    }

    /// The directory whose fsync makes the operation durable, for a change of names.
    fn directory(&self) -> Option<&[u8]> {
        match self {
            FileOp::Write { .. } => None,
            FileOp::Link { path, .. } | FileOp::Unlink { path } => parent(path),
            FileOp::Rename { to, .. } => parent(to),
        }
    }
}

/// One version of the tree.
#[derive(Clone, Debug, Default)]
pub(super) struct Tree {
    entries: BTreeMap<Key, Entry>,
    contents: BTreeMap<u64, Contents>,
}

impl Tree {
    /// Applies `op`; one whose source is gone (a rename of a name a crash undid) does
    /// nothing. Returns the file it left without a name, if any (its bytes are gone).
    pub(super) fn apply(&mut self, op: &FileOp) -> Option<u64> {
        match op {
            FileOp::Write { inode, pos, data } => {
                let pos = usize::try_from(*pos).expect("a simulated file fits in memory");
                self.contents.entry(*inode).or_default().write(pos, data);
                None
            }
            FileOp::Link { path, entry } => {
                if let Entry::File(inode) = entry {
                    self.contents.entry(*inode).or_default();
                }
                self.replace(path, *entry)
            }
            FileOp::Unlink { path } => match self.entries.remove(path) {
                Some(Entry::File(inode)) => self.forget_if_unnamed(inode),
                _ => None,
            },
            FileOp::Rename { from, to } => match self.entries.remove(from) {
                Some(entry) => self.replace(to, entry),
                None => None,
            },
        }
    }

    fn replace(&mut self, path: &[u8], entry: Entry) -> Option<u64> {
        match self.entries.insert(path.to_vec(), entry) {
            Some(Entry::File(old)) if entry != Entry::File(old) => self.forget_if_unnamed(old),
            _ => None,
        }
    }

    fn forget_if_unnamed(&mut self, inode: u64) -> Option<u64> {
        if self.entries.values().any(|e| *e == Entry::File(inode)) {
            return None;
        }
        self.contents.remove(&inode);
        Some(inode)
    }

    /// After a crash: drops the entries under a directory that is not there, and the
    /// bytes of files no name reaches.
    pub(super) fn prune(&mut self) {
        // Keys sort parent first (component-wise): a kept entry's parent is decided.
        let mut kept: BTreeMap<Key, Entry> = BTreeMap::new();
        for (path, entry) in std::mem::take(&mut self.entries) {
            let reachable = match parent(&path) {
                Some(p) if !p.is_empty() => kept.get(p) == Some(&Entry::Dir),
                _ => true,
            };
            if reachable {
                kept.insert(path, entry);
            }
        }
        let named: BTreeSet<u64> = kept
            .values()
            .filter_map(|e| match e {
                Entry::File(i) => Some(*i),
                Entry::Dir => None,
            })
            .collect();
        self.contents.retain(|i, _| named.contains(i));
        self.entries = kept;
    }

    fn kind(&self, path: &[u8]) -> Option<Kind> {
        if path.is_empty() {
            return Some(Kind::Dir);
        }
        Some(self.kind_of(self.entries.get(path)?))
    }

    fn kind_of(&self, entry: &Entry) -> Kind {
        match entry {
            Entry::Dir => Kind::Dir,
            Entry::File(inode) => Kind::File {
                len: self.contents.get(inode).map_or(0, |b| b.len() as u64),
            },
        }
    }

    /// The inode of the file `path` names; an error naming it if it names a directory
    /// or nothing.
    fn file(&self, path: &[u8]) -> io::Result<u64> {
        match self.entries.get(path) {
            Some(Entry::File(inode)) => Ok(*inode),
            Some(Entry::Dir) => Err(io::Error::other(format!("{}: is a directory", shown(path)))),
            None => Err(not_found(path)),
        }
    }

    fn is_dir(&self, path: &[u8]) -> bool {
        self.kind(path) == Some(Kind::Dir)
    }
}

/// `path` without `.` components, as the tree keys it.
fn normal(path: &Path) -> io::Result<Key> {
    let mut out = Key::with_capacity(path.as_os_str().len());
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(name) if !name.as_encoded_bytes().contains(&0) => {
                if !out.is_empty() {
                    out.push(0);
                }
                out.extend_from_slice(name.as_encoded_bytes());
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: the simulated disk takes relative paths, of names without NUL",
                        path.display()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn not_found(path: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", shown(path)),
    )
}

/// `path` names nothing yet, in a directory that exists: where a new file or directory
/// may be made.
fn vacant(tree: &Tree, path: &[u8]) -> io::Result<()> {
    if tree.kind(path).is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: exists", shown(path)),
        ));
    }
    parent_must_be_dir(tree, path)
}

fn parent_must_be_dir(tree: &Tree, path: &[u8]) -> io::Result<()> {
    match parent(path) {
        Some(p) if !tree.is_dir(p) => Err(not_found(p)),
        _ => Ok(()),
    }
}

impl State {
    /// Logs and applies a change of the tree. The unsynced writes of a file it leaves
    /// without a name go (a removed file's dirty pages are never written).
    fn change(&mut self, op: FileOp) {
        if let Some(gone) = self.files.apply(&op) {
            self.unsynced.retain(
                |op| !matches!(op, Op::File(FileOp::Write { inode, .. }) if *inode == gone),
            );
        }
        self.unsynced.push(Op::File(op));
    }

    fn new_file(&mut self, path: &[u8]) -> u64 {
        self.next_inode += 1;
        let inode = self.next_inode;
        self.change(FileOp::Link {
            path: path.to_vec(),
            entry: Entry::File(inode),
        });
        inode
    }

    /// A write fault for a change of names, if one fires.
    fn name_fault(&mut self) -> io::Result<()> {
        match SimDisk::fault(self, DiskOp::Write) {
            Some(f) => Err(f.error.to_io()),
            None => Ok(()),
        }
    }
}

/// A file on the simulated disk, open for writing at its end.
#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    pos: u64,
}

impl WriteFile for SimFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = lock(&self.state);
        let (landed, error) = match SimDisk::fault(&mut s, DiskOp::Write) {
            Some(f) => (f.partial.min(data.len()), Some(f.error)),
            None => (data.len(), None),
        };
        if landed > 0 {
            s.change(FileOp::Write {
                inode: self.inode,
                pos: self.pos,
                data: data[..landed].into(),
            });
            self.pos += landed as u64;
        }
        match error {
            Some(e) => Err(e.to_io()),
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = lock(&self.state);
        let failed = SimDisk::fault(&mut s, DiskOp::Sync);
        let inode = self.inode;
        let mine = |op: &Op| matches!(op, Op::File(FileOp::Write { inode: i, .. }) if *i == inode);
        let (ops, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut s.unsynced)
            .into_iter()
            .partition(|op| mine(op));
        s.unsynced = rest;
        if let Some(f) = failed {
            // The writes stay readable but are forgotten: never durable now.
            return Err(f.error.to_io());
        }
        for op in &ops {
            if let Op::File(op) = op {
                s.durable_files.apply(op);
            }
        }
        s.syncs += 1;
        Ok(())
    }

    fn seal(&mut self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// A file on the simulated disk, open for reading.
struct SimReader {
    state: Arc<Mutex<State>>,
    inode: u64,
    pos: usize,
}

impl Read for SimReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = lock(&self.state);
        if let Some(f) = SimDisk::fault(&mut s, DiskOp::Read) {
            return Err(f.error.to_io());
        }
        let Some(bytes) = s.files.contents.get(&self.inode) else {
            return Err(io::Error::other("the file was removed while open"));
        };
        let n = bytes.read(self.pos, buf);
        self.pos += n;
        Ok(n)
    }
}

impl BlobFs for SimDisk {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let path = normal(path)?;
        let mut s = self.lock();
        vacant(&s.files, &path)?;
        s.name_fault()?;
        let inode = s.new_file(&path);
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
            pos: 0,
        }))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let path = normal(path)?;
        let mut s = self.lock();
        let (inode, pos) = match s.files.entries.get(&path) {
            Some(Entry::File(inode)) => {
                let inode = *inode;
                (inode, s.files.contents.get(&inode).map_or(0, |b| b.len()))
            }
            Some(Entry::Dir) => {
                return Err(io::Error::other(format!(
                    "{}: is a directory",
                    shown(&path)
                )))
            }
            None => {
                parent_must_be_dir(&s.files, &path)?;
                s.name_fault()?;
                (s.new_file(&path), 0)
            }
        };
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
            pos: pos as u64,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<(u64, Box<dyn Read + Send>)> {
        let path = normal(path)?;
        let s = self.lock();
        let inode = s.files.file(&path)?;
        Ok((
            s.files.contents.get(&inode).map_or(0, |b| b.len() as u64),
            Box::new(SimReader {
                state: self.state.clone(),
                inode,
                pos: 0,
            }),
        ))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (normal(from)?, normal(to)?);
        let mut s = self.lock();
        match s.files.entries.get(&from) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(io::Error::other("renaming a directory")),
            None => return Err(not_found(&from)),
        }
        if s.files.entries.get(&to) == Some(&Entry::Dir) {
            return Err(io::Error::other(format!("{}: is a directory", shown(&to))));
        }
        parent_must_be_dir(&s.files, &to)?;
        s.name_fault()?;
        s.change(FileOp::Rename { from, to });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = normal(path)?;
        let mut s = self.lock();
        s.files.file(&path)?;
        s.change(FileOp::Unlink { path });
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let path = normal(path)?;
        let mut s = self.lock();
        vacant(&s.files, &path)?;
        s.name_fault()?;
        s.change(FileOp::Link {
            path,
            entry: Entry::Dir,
        });
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = normal(path)?;
        let mut s = self.lock();
        if !s.files.is_dir(&dir) {
            return Err(not_found(&dir));
        }
        if let Some(f) = SimDisk::fault(&mut s, DiskOp::Sync) {
            // The changes stay unsynced: a later fsync may make them durable, a crash
            // before it undo them (a file's failed fsync forgets its bytes instead, as
            // Linux drops the failed pages; a journaling file system keeps a directory's
            // changes for its next commit).
            return Err(f.error.to_io());
        }
        // From the end: the directory's own changes, and every earlier change of a name
        // one already taken changes (what it depends on).
        let log = std::mem::take(&mut s.unsynced);
        let mut taken = vec![false; log.len()];
        let mut names: BTreeSet<Key> = BTreeSet::new();
        for (i, op) in log.iter().enumerate().rev() {
            let Op::File(op) = op else { continue };
            let ours =
                op.directory() == Some(&dir[..]) || op.names().iter().any(|n| names.contains(*n));
            if ours {
                taken[i] = true;
                names.extend(op.names().into_iter().cloned());
            }
        }
        let mut durable = Vec::new();
        for (op, taken) in log.into_iter().zip(taken) {
            if taken {
                durable.push(op);
            } else {
                s.unsynced.push(op);
            }
        }
        for op in &durable {
            if let Op::File(op) = op {
                s.durable_files.apply(op);
            }
        }
        s.syncs += 1;
        Ok(())
    }

    /// As a program reads a whole file: a read that returns its bytes (a fault fails
    /// it), then one that finds the end (an empty file: that one only). Straight from the
    /// tree into the result (the trait's `read_to_end` would zero the buffer first).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = normal(path)?;
        let mut s = self.lock();
        let inode = s.files.file(&path)?;
        let mut bytes = Vec::new();
        loop {
            if let Some(f) = SimDisk::fault(&mut s, DiskOp::Read) {
                return Err(f.error.to_io());
            }
            let Some(contents) = s.files.contents.get(&inode) else {
                return Err(io::Error::other("the file was removed while open"));
            };
            if bytes.len() == contents.len() {
                return Ok(bytes);
            }
            bytes = contents.to_vec();
        }
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        let path = normal(path)?;
        Ok(self.lock().files.kind(&path))
    }

    fn list(&self, path: &Path) -> io::Result<Vec<(String, Kind)>> {
        let dir = normal(path)?;
        let s = self.lock();
        if !s.files.is_dir(&dir) {
            return Err(not_found(&dir));
        }
        let mut out = Vec::new();
        // The entries just below `dir`, child by child: keys sort component-wise, so a
        // child's own entries come right after it, and its key with a byte 1 appended
        // sorts after all of them and before its next sibling: the walk skips them, and
        // costs what the directory holds, not its whole subtree.
        let mut prefix = dir;
        if !prefix.is_empty() {
            prefix.push(0);
        }
        let mut from = prefix.clone();
        while let Some((key, entry)) = s
            .files
            .entries
            .range::<[u8], _>((Included(&from[..]), Unbounded))
            .next()
        {
            let Some(rest) = key.strip_prefix(&prefix[..]) else {
                break;
            };
            let name = rest.split(|b| *b == 0).next().unwrap_or_default();
            if name.len() == rest.len() {
                out.push((
                    String::from_utf8_lossy(name).into_owned(),
                    s.files.kind_of(entry),
                ));
            }
            from = key[..prefix.len() + name.len()].to_vec();
            from.push(1);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zrs::storage::file::faulty::{DiskError, DiskFault};

    fn names(d: &SimDisk, dir: &str) -> Vec<String> {
        d.list(Path::new(dir))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// A directory `d` whose creation is durable.
    fn disk_with_dir() -> Arc<SimDisk> {
        let d = SimDisk::new();
        d.create_dir(Path::new("d")).unwrap();
        d.sync_dir(Path::new("")).unwrap();
        d
    }

    #[test]
    fn unsynced_file_bytes_are_lost_or_torn() {
        let d = disk_with_dir();
        let mut f = d.create_new(Path::new("d/a")).unwrap();
        f.write_all(b"0123").unwrap();
        d.sync_dir(Path::new("d")).unwrap();
        f.write_all(b"4567").unwrap();
        // Kept: the first write whole, two bytes of the second.
        let r = d.crash(1, 2);
        assert_eq!((r.unsynced, r.kept, r.torn), (2, 1, 2));
        assert_eq!(d.read(Path::new("d/a")).unwrap(), b"012345");
        // A synced file keeps its bytes whatever the crash.
        let mut f = d.append(Path::new("d/a")).unwrap();
        f.write_all(b"67").unwrap();
        f.sync().unwrap();
        d.crash(0, 0);
        assert_eq!(d.read(Path::new("d/a")).unwrap(), b"01234567");
    }

    #[test]
    fn a_rename_needs_its_directory_synced() {
        let d = disk_with_dir();
        d.create_dir(Path::new("d/tmp")).unwrap();
        d.create_dir(Path::new("d/o")).unwrap();
        d.sync_dir(Path::new("d")).unwrap();
        let mut f = d.create_new(Path::new("d/tmp/t")).unwrap();
        f.write_all(b"blob").unwrap();
        f.sync().unwrap();
        d.rename(Path::new("d/tmp/t"), Path::new("d/o/b")).unwrap();
        assert_eq!(names(&d, "d/o"), ["b"]);
        // Not synced: the crash undoes the rename and the creation before it.
        d.crash(0, 0);
        assert!(names(&d, "d/o").is_empty() && names(&d, "d/tmp").is_empty());

        let mut f = d.create_new(Path::new("d/tmp/t")).unwrap();
        f.write_all(b"blob").unwrap();
        f.sync().unwrap();
        d.rename(Path::new("d/tmp/t"), Path::new("d/o/b")).unwrap();
        // Keeping the creation only: the temporary file, whole (its bytes were synced).
        d.crash(1, 0);
        assert_eq!(names(&d, "d/tmp"), ["t"]);
        assert_eq!(d.read(Path::new("d/tmp/t")).unwrap(), b"blob");
        d.rename(Path::new("d/tmp/t"), Path::new("d/o/b")).unwrap();
        // The destination's fsync makes the rename durable, with the creation it needs.
        d.sync_dir(Path::new("d/o")).unwrap();
        assert_eq!(d.unsynced(), 0);
        d.crash(0, 0);
        assert_eq!(names(&d, "d/o"), ["b"]);
        assert!(names(&d, "d/tmp").is_empty());
        assert_eq!(d.read(Path::new("d/o/b")).unwrap(), b"blob");
    }

    #[test]
    fn entries_under_an_undone_directory_go() {
        let d = SimDisk::new();
        d.create_dir(Path::new("a")).unwrap();
        d.create_dir(Path::new("a/b")).unwrap();
        d.create_new(Path::new("a/b/f")).unwrap().sync().unwrap();
        d.sync_dir(Path::new("a/b")).unwrap();
        d.sync_dir(Path::new("a")).unwrap();
        // `a` itself was never synced into the top: all of it goes.
        d.crash(0, 0);
        assert!(names(&d, "").is_empty());
        assert_eq!(d.kind(Path::new("a/b/f")).unwrap(), None);
    }

    #[test]
    fn a_failed_directory_fsync_leaves_its_changes_unsynced() {
        let d = disk_with_dir();
        d.create_new(Path::new("d/x")).unwrap();
        d.arm(DiskFault::once(DiskOp::Sync, DiskError::Io));
        assert!(d.sync_dir(Path::new("d")).is_err());
        assert_eq!(names(&d, "d"), ["x"], "still visible");
        assert_eq!(d.unsynced(), 1);
        d.crash(0, 0);
        assert!(names(&d, "d").is_empty(), "a crash undoes it");
        d.create_new(Path::new("d/x")).unwrap();
        d.arm(DiskFault::once(DiskOp::Sync, DiskError::Io));
        assert!(d.sync_dir(Path::new("d")).is_err());
        d.sync_dir(Path::new("d")).unwrap();
        d.crash(0, 0);
        assert_eq!(names(&d, "d"), ["x"], "a later fsync made it durable");
    }

    #[test]
    fn contents_read_back_as_written_wherever_written() {
        let piece = |b: &[u8]| -> Arc<[u8]> { b.into() };
        let mut c = Contents::default();
        c.write(0, &piece(b"0123"));
        c.write(4, &piece(b"4567"));
        c.write(8, &piece(b""));
        assert_eq!((c.len(), c.pieces.len()), (8, 2), "appends add pieces");
        let mut buf = [0u8; 5];
        assert_eq!(c.read(2, &mut buf), 5);
        assert_eq!(&buf, b"23456", "a read across pieces");
        assert_eq!(c.read(7, &mut buf), 1);
        assert_eq!(buf[0], b'7');
        assert_eq!(c.read(8, &mut buf), 0);
        c.write(3, &piece(b"xy"));
        assert_eq!(c.to_vec(), b"012xy567", "an overwrite");
        c.write(10, &piece(b"z"));
        assert_eq!(c.to_vec(), b"012xy567\0\0z", "past the end: zeros between");
        c.write(11, &piece(b"!"));
        assert_eq!(c.to_vec(), b"012xy567\0\0z!");
    }

    #[test]
    fn two_handles_on_one_file_write_where_each_is() {
        let d = disk_with_dir();
        let mut first = d.create_new(Path::new("d/f")).unwrap();
        first.write_all(b"abcd").unwrap();
        let mut second = d.append(Path::new("d/f")).unwrap();
        second.write_all(b"ef").unwrap();
        first.write_all(b"GH").unwrap();
        assert_eq!(d.read(Path::new("d/f")).unwrap(), b"abcdGH");
        first.sync().unwrap();
        second.sync().unwrap();
        d.sync_dir(Path::new("d")).unwrap();
        d.crash(0, 0);
        assert_eq!(d.read(Path::new("d/f")).unwrap(), b"abcdGH");
    }

    #[test]
    fn listings_sort_as_paths_do_and_skip_subtrees() {
        let d = disk_with_dir();
        for dir in ["d/a", "d/a/b", "d/a-b"] {
            d.create_dir(Path::new(dir)).unwrap();
        }
        for file in ["d/a/b/f", "d/a.txt", "d/a/g"] {
            d.create_new(Path::new(file)).unwrap();
        }
        // Component-wise, `a` sorts before `a-b` and `a.txt`, though `/` is a greater
        // byte than `-` and `.`.
        assert_eq!(names(&d, "d"), ["a", "a-b", "a.txt"]);
        assert_eq!(names(&d, "d/a"), ["b", "g"]);
        assert_eq!(names(&d, "./d/a/b"), ["f"]);
        assert_eq!(names(&d, ""), ["d"]);
        assert!(d.list(Path::new("d/nothing")).is_err());
        assert!(
            d.list(Path::new("/d")).is_err(),
            "absolute paths are refused"
        );
    }

    #[test]
    fn names_fail_as_writes_and_reads_as_reads() {
        let d = disk_with_dir();
        let fault = |op| DiskFault {
            op,
            after: 0,
            error: DiskError::NoSpace,
            partial: 0,
            sticky: false,
        };
        d.arm(fault(DiskOp::Write));
        assert!(d.create_new(Path::new("d/x")).is_err());
        assert_eq!(d.kind(Path::new("d/x")).unwrap(), None);
        let mut f = d.create_new(Path::new("d/x")).unwrap();
        f.write_all(b"abc").unwrap();
        d.arm(fault(DiskOp::Write));
        assert!(d.rename(Path::new("d/x"), Path::new("d/y")).is_err());
        d.arm(fault(DiskOp::Read));
        let (len, mut r) = d.open(Path::new("d/x")).unwrap();
        assert_eq!(len, 3);
        let mut buf = [0u8; 3];
        assert!(r.read(&mut buf).is_err());
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(d.failures(), 3);
    }
}
