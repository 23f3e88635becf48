//! The byte store under a FileStorage: a small trait every read and write goes through.
//!
//! The real backend is a plain [`std::fs::File`] used with positional reads and writes, so
//! one open file serves the writer and any number of readers at once. Opened with
//! [`FileBackend::open_write_behind`] (what a writable `FileStorage::open` does), its writes
//! go to the kernel on a thread of their own, so that during a catch-up copying into the
//! page cache overlaps decoding and hashing the next transaction — or, when a `sync` or a
//! read needs them made first, from the caller's thread; see [`WriteBehind`]. [`MemoryBackend`]
//! keeps the bytes in memory (tests, benchmarks). The simulator implements the same trait
//! as a disk that loses unsynced writes or tears the last one at a crash, which is why the
//! storage treats [`Backend::sync`] as the only durability point and the trait is
//! `Send + Sync` with `&self` methods.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

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
    file: Arc<File>,
    behind: Option<WriteBehind>,
}

/// Opens `path` for reading and writing, creating it if missing and never truncating it:
/// how a storage opens its Data.fs and its lock file.
pub(crate) fn open_read_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl FileBackend {
    /// Open `path` for reading and, unless `read_only`, writing; a writable open creates the
    /// file if it is missing. Writes are made before `write_at` returns.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileBackend> {
        let file = if read_only {
            File::open(path)?
        } else {
            open_read_write(path)?
        };
        Ok(FileBackend::from_file(file))
    }

    /// Open `path` for reading and writing (created if missing), with writes made by a
    /// thread of their own ([`WriteBehind`]).
    pub fn open_write_behind(path: &Path) -> io::Result<FileBackend> {
        let mut b = FileBackend::open(path, false)?;
        b.behind = Some(WriteBehind::start(b.file.clone())?);
        Ok(b)
    }

    pub fn from_file(file: File) -> FileBackend {
        FileBackend {
            file: Arc::new(file),
            behind: None,
        }
    }

    /// Wait for queued writes overlapping `pos..end` (all of them for `None`); fails with
    /// the error a queued write met.
    fn settle(&self, range: Option<(u64, u64)>) -> io::Result<()> {
        match &self.behind {
            Some(b) => b.settle(range),
            None => Ok(()),
        }
    }
}

impl Backend for FileBackend {
    fn len(&self) -> io::Result<u64> {
        self.settle(None)?;
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.settle(Some((pos, pos.saturating_add(buf.len() as u64))))?;
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
        match &self.behind {
            Some(b) => b.queue(pos, data),
            None => write_all_at(&self.file, pos, data),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.settle(None)?;
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.settle(None)?;
        // Data and size: a truncation or an append must survive too.
        self.file.sync_all()
    }
}

fn write_all_at(file: &File, pos: u64, data: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match pwrite(file, &data[done..], pos + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Most bytes queued for the writer thread before `write_at` waits: bounds the memory the
/// queue holds while letting a batch of transactions be in flight.
const WRITE_BEHIND_LIMIT: usize = 16 << 20;

/// The writer thread is woken once this much is queued (or when a caller needs the
/// writes made): small transactions then cost one system call per megabyte, not two each.
const WRITE_BEHIND_CHUNK: usize = 1 << 20;

/// How long the writer thread leaves a write short of a chunk queued before it makes it:
/// it wakes every linger while writes come, and makes those that waited a whole one; after
/// a linger in which nothing was queued it sleeps until the next write is queued. So a
/// burst is written in large writes, and its tail (or a lone transaction) reaches the file
/// within two lingers rather than at the next `sync` — other processes reading the file
/// (a `zrs primary` following it) see it. A transaction fsynced at its `tpc_finish` is
/// written sooner, by the caller of `sync` itself (see [`WriteBehind`]).
const WRITE_BEHIND_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// A write shorter than this starts a job of its own size, not a chunk's.
const SMALL_JOB: usize = 512;

/// Writes made in order by a thread of their own, behind the caller's back but never out
/// of its sight: every read waits for the queued writes it overlaps, and `len`,
/// `set_len` and `sync` for all of them, so what the backend answers is exactly what it
/// would answer writing in place. The first failed write is kept and returned by every
/// later call; the writes queued after it are dropped (never, say, a status byte flipped
/// over data that did not reach the file). Queued writes are merged: an append to the
/// last queued write extends it, and a write inside it (a transaction's status flip)
/// patches it, so that a catch-up's many small transactions reach the kernel in large
/// writes.
///
/// A caller that needs queued writes made (a `sync`, an overlapping read) makes them
/// itself, in queue order, whenever the writer thread is not in the middle of one; it
/// waits only for a write in flight. With an fsync at every `tpc_finish` the transaction
/// written at vote is still queued at the finish (the writer thread leaves writes short of
/// a chunk for a linger), so its status flip patches it and the storage's own thread
/// makes one write and the fsync: no hand-off between threads per transaction (strace
/// counted two futex wake-ups and a thread switch each way per transaction before). One
/// write is in flight at a time, whoever makes it, so the order and the first-error rule
/// hold whichever thread writes.
#[derive(Debug)]
struct WriteBehind {
    file: Arc<File>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The queue and its two wake-ups: `work` for the writer thread, `done` for callers
/// waiting on it. Each is signalled only when someone waits on it (a futex call per
/// write would cost more than the write).
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    done: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<(u64, Vec<u8>)>,
    /// The range being written now, by the writer thread or a caller: one at a time.
    in_flight: Option<(u64, u64)>,
    /// Counts the times a write was queued into an empty queue: the writer thread tells by
    /// it whether what is queued now was queued before its last linger.
    epoch: u64,
    queued_bytes: usize,
    error: Option<(io::ErrorKind, String)>,
    closing: bool,
    /// The writer thread waits for work.
    idle: bool,
    /// The writer thread waits with no timeout: the next write queued wakes it.
    asleep: bool,
    /// Callers waiting for the writer.
    waiting: usize,
    /// A written job's buffer, kept for the next job (merged appends fill a buffer up to
    /// [`WRITE_BEHIND_CHUNK`]: reusing one saves growing a new one and faulting in its
    /// pages for every megabyte written).
    spare: Option<Vec<u8>>,
}

impl Queue {
    fn overlaps(&self, range: Option<(u64, u64)>) -> bool {
        let hit = |(s, e): (u64, u64)| range.is_none_or(|(a, b)| s < b && a < e);
        self.in_flight.is_some_and(hit)
            || self.jobs.iter().any(|(p, d)| hit((*p, p + d.len() as u64)))
    }

    fn failed(&self) -> io::Result<()> {
        match &self.error {
            Some((kind, what)) => Err(io::Error::new(*kind, what.clone())),
            None => Ok(()),
        }
    }
}

impl WriteBehind {
    fn start(file: Arc<File>) -> io::Result<WriteBehind> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let writer_file = file.clone();
        let thread = std::thread::Builder::new()
            .name("zrs-writer".into())
            .spawn(move || write_loop(&writer_file, &worker))?;
        Ok(WriteBehind {
            file,
            shared,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the writer thread until `until` holds (or a write failed).
    fn wait_for<'a>(
        &'a self,
        mut q: std::sync::MutexGuard<'a, Queue>,
        until: impl Fn(&Queue) -> bool,
    ) -> std::sync::MutexGuard<'a, Queue> {
        while q.error.is_none() && !until(&q) {
            q.waiting += 1;
            q = self.shared.done.wait(q).unwrap_or_else(|p| p.into_inner());
            q.waiting -= 1;
        }
        q
    }

    fn queue(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut q = self.lock();
        q.failed()?;
        let end = pos + data.len() as u64;
        if let Some((p, job)) = q.jobs.back_mut() {
            let job_end = *p + job.len() as u64;
            if *p <= pos && end <= job_end {
                let at = (pos - *p) as usize;
                job[at..at + data.len()].copy_from_slice(data);
                return Ok(());
            }
            if job_end == pos && job.len() < WRITE_BEHIND_CHUNK {
                job.extend_from_slice(data);
                q.queued_bytes += data.len();
                self.wake(&q);
                return Ok(());
            }
        }
        if q.queued_bytes + data.len() > WRITE_BEHIND_LIMIT {
            self.wake_now(&q);
            q = self.wait_for(q, |q| {
                q.queued_bytes == 0 || q.queued_bytes + data.len() <= WRITE_BEHIND_LIMIT
            });
            q.failed()?;
        }
        q.queued_bytes += data.len();
        if q.jobs.is_empty() {
            q.epoch += 1;
        }
        // An append is likely to be followed by more (merged above): start it in a buffer
        // that holds a whole chunk. Small writes elsewhere (a status flip) get their size.
        let job = match q.spare.take() {
            Some(mut job) if data.len() >= SMALL_JOB => {
                job.extend_from_slice(data);
                job
            }
            spare => {
                q.spare = spare;
                if data.len() >= SMALL_JOB && data.len() < WRITE_BEHIND_CHUNK {
                    let mut job = Vec::with_capacity(WRITE_BEHIND_CHUNK);
                    job.extend_from_slice(data);
                    job
                } else {
                    data.to_vec()
                }
            }
        };
        q.jobs.push_back((pos, job));
        self.wake(&q);
        Ok(())
    }

    /// Wake the writer thread if enough is queued to be worth a write, or if it sleeps
    /// (lingering after a write, it comes back on its own).
    fn wake(&self, q: &Queue) {
        if q.queued_bytes >= WRITE_BEHIND_CHUNK || q.asleep {
            self.wake_now(q);
        }
    }

    fn wake_now(&self, q: &Queue) {
        if q.idle {
            self.shared.work.notify_one();
        }
    }

    /// Make the queued writes overlapping `range` (all of them for `None`), and the ones
    /// queued before them: here, unless the writer thread is making one, then after it.
    fn settle(&self, range: Option<(u64, u64)>) -> io::Result<()> {
        let mut q = self.lock();
        while q.error.is_none() && q.overlaps(range) {
            if q.in_flight.is_some() {
                q.waiting += 1;
                q = self.shared.done.wait(q).unwrap_or_else(|p| p.into_inner());
                q.waiting -= 1;
                continue;
            }
            let (pos, data) = q.jobs.pop_front().expect("overlaps a queued job");
            q = write_job(&self.file, &self.shared, q, pos, data);
        }
        q.failed()
    }
}

/// Make one queued write (popped from `q` by the caller, the one write in flight), with
/// the queue unlocked meanwhile; returns the queue locked again. A failure is kept and
/// drops every write queued after it.
fn write_job<'a>(
    file: &File,
    shared: &'a Shared,
    mut q: std::sync::MutexGuard<'a, Queue>,
    pos: u64,
    data: Vec<u8>,
) -> std::sync::MutexGuard<'a, Queue> {
    q.in_flight = Some((pos, pos + data.len() as u64));
    drop(q);
    let r = write_all_at(file, pos, &data);
    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    q.in_flight = None;
    q.queued_bytes -= data.len();
    if let Err(e) = r {
        q.error = Some((
            e.kind(),
            format!("write of {} bytes at {pos}: {e}", data.len()),
        ));
        q.queued_bytes = 0;
        q.jobs.clear();
    } else if (WRITE_BEHIND_CHUNK..=2 * WRITE_BEHIND_CHUNK).contains(&data.capacity()) {
        let mut data = data;
        data.clear();
        q.spare = Some(data);
    }
    if q.waiting > 0 {
        shared.done.notify_all();
    }
    q
}

fn write_loop(file: &File, shared: &Shared) {
    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    // The queue's epoch when the writer last looked: what is queued under the same epoch
    // now has waited at least that long.
    let mut seen = q.epoch;
    loop {
        if q.in_flight.is_none() && !q.jobs.is_empty() {
            // A chunk is worth a write at once; less waits a linger, in case a `sync`
            // makes it first (and a status flip patches it meanwhile); closing, write all.
            let due = q.queued_bytes >= WRITE_BEHIND_CHUNK || q.closing || q.epoch == seen;
            if due {
                let (pos, data) = q.jobs.pop_front().expect("not empty");
                q = write_job(file, shared, q, pos, data);
                continue;
            }
        }
        if q.closing && q.jobs.is_empty() {
            return;
        }
        // Nothing queued since the last look, and nothing left: sleep until a write comes.
        let quiet = q.jobs.is_empty() && q.epoch == seen;
        seen = q.epoch;
        q.idle = true;
        if quiet {
            q.asleep = true;
            q = shared.work.wait(q).unwrap_or_else(|p| p.into_inner());
            q.asleep = false;
        } else {
            q = shared
                .work
                .wait_timeout(q, WRITE_BEHIND_LINGER)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        q.idle = false;
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Queued writes are still made: dropping the backend is not a crash.
        self.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

/// Reads into `buf` from `pos` of a file held in memory: as much as it holds there, 0 at
/// or past its end (the memory backend's read, and the simulated disk's).
pub fn read_from(bytes: &[u8], pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    let pos = to_usize(pos)?;
    if pos >= bytes.len() {
        return Ok(0);
    }
    let n = buf.len().min(bytes.len() - pos);
    buf[..n].copy_from_slice(&bytes[pos..pos + n]);
    Ok(n)
}

/// Writes `data` at `pos` of a file held in memory, growing it (with zeros up to `pos`)
/// as a file grows: the memory backend's write, and the simulated disk's.
pub fn write_into(bytes: &mut Vec<u8>, pos: u64, data: &[u8]) -> io::Result<()> {
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

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl Backend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.bytes).len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_from(&lock(&self.bytes), pos, buf)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        write_into(&mut lock(&self.bytes), pos, data)
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
        assert!(b.is_empty().unwrap());
        b.write_at(0, b"FS21").unwrap();
        assert!(!b.is_empty().unwrap());
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
        let b = FileBackend::open_write_behind(&dir.path().join("y.fs")).unwrap();
        exercise(&b);
    }

    /// A short write is continued where it stopped, with the rest of the bytes: here the
    /// file-size limit cuts a write of 10 bytes at 1 after its first 6 (as a full disk cuts
    /// one), and the rest, at 7, fails with EFBIG. What landed is the write's first bytes
    /// in place, and the error is returned. The limit holds for the whole process, so the
    /// write is made in a child: this test binary run again for this one test, told so by
    /// `ZRS_SHORT_WRITE_FILE`; it is waited for with a bound.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_short_write_is_continued_where_it_stopped() {
        const FILE: &str = "ZRS_SHORT_WRITE_FILE";
        const LIMIT: libc::rlim_t = 7;
        let name = "a_short_write_is_continued_where_it_stopped";
        if let Some(path) = std::env::var_os(FILE) {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            // SAFETY: plain system calls on values we own; this process is the child.
            unsafe {
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
                // A write at the limit fails with EFBIG instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            let file = OpenOptions::new().write(true).open(path).unwrap();
            let e = write_all_at(&file, 1, b"0123456789").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.fs");
        std::fs::write(&path, b"").unwrap();
        // The test's name as the harness knows it: its module path less the crate's name.
        let module = module_path!().split_once("::").unwrap().1;
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::{name}"), "--test-threads=1"])
            .env(FILE, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let Ok(out) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
            // SAFETY: kill of our own child, which has not been waited for.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the child never finished its write");
        };
        let out = out.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"\x00012345");
    }

    /// A failing `pread` or `pwrite` (here EBADF: a file opened for the other direction)
    /// is returned to the caller, not retried as an interrupted call is. Run on a thread
    /// and waited for with a bound, so that a retry loop fails the test instead of hanging it.
    #[test]
    fn a_failing_read_or_write_is_returned_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.fs");
        std::fs::write(&path, b"FS30").unwrap();
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let read_only = File::open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4];
            let read = FileBackend::from_file(write_only).read_at(0, &mut buf);
            let write = FileBackend::from_file(read_only).write_at(0, b"FS21");
            let _ = tx.send((
                read.map_err(|e| e.raw_os_error()),
                write.map_err(|e| e.raw_os_error()),
            ));
        });
        let (read, write) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the calls return");
        assert_eq!(read, Err(Some(libc::EBADF)));
        assert_eq!(write, Err(Some(libc::EBADF)));
        assert_eq!(std::fs::read(&path).unwrap(), b"FS30");
    }

    /// A queued write that fails is not lost in the queue: the sync (and every write
    /// after it) returns its error. Here the write-behind's file is opened read-only, so
    /// its `pwrite` fails with EBADF.
    #[test]
    fn a_failed_write_behind_is_the_error_of_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.fs");
        std::fs::write(&path, b"FS30").unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let b = FileBackend {
            file: file.clone(),
            behind: Some(WriteBehind::start(file).unwrap()),
        };
        b.write_at(4, b"queued").unwrap(); // queued: fails later, on the writer's side
        let e = b.sync().unwrap_err().to_string();
        assert!(e.contains("write of 6 bytes at 4"), "{e}");
        assert!(b.write_at(10, b"more").is_err(), "later writes fail too");
        assert_eq!(std::fs::read(&path).unwrap(), b"FS30");
    }

    /// The queue never holds more than `WRITE_BEHIND_LIMIT` bytes: a write that would pass
    /// it waits until the writer has made room, and no longer: room for it, not an empty
    /// queue. Here there is no writer thread, so the test takes the writer's part: it sees
    /// the caller wait, then makes the first queued write as the writer does.
    #[test]
    fn a_write_past_the_queue_limit_waits_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let behind = Arc::new(WriteBehind {
            file: Arc::new(File::create(dir.path().join("x.fs")).unwrap()),
            shared: Arc::new(Shared::default()),
            thread: None,
        });
        let caller = behind.clone();
        let half = WRITE_BEHIND_LIMIT / 2;
        let filler = std::thread::spawn(move || {
            // Not adjacent: a job each, the third 1 byte over the limit.
            caller.queue(0, &vec![1u8; half]).unwrap();
            caller.queue(1 << 30, &vec![2u8; half]).unwrap();
            caller.queue(1 << 40, &[3u8; 1]).unwrap();
        });
        // Bounded: a caller that waits for good fails the test rather than hanging it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let bounded = || {
            assert!(
                std::time::Instant::now() < deadline,
                "the caller neither waits nor returns"
            );
            std::thread::yield_now();
        };
        while behind.lock().waiting == 0 && !filler.is_finished() {
            bounded();
        }
        let q = behind.lock();
        assert_eq!(q.waiting, 1, "the third write waits");
        assert_eq!(q.queued_bytes, WRITE_BEHIND_LIMIT);
        drop(q);
        let mut q = behind.lock();
        let (pos, data) = q.jobs.pop_front().unwrap();
        drop(write_job(&behind.file, &behind.shared, q, pos, data));
        while !filler.is_finished() {
            bounded();
        }
        filler.join().unwrap();
        let q = behind.lock();
        assert_eq!(q.queued_bytes, half + 1);
        assert_eq!(q.jobs.len(), 2);
        // Done waiting, the caller no longer counts as waiting (the writer would wake
        // callers that are not there at every write).
        assert_eq!(q.waiting, 0);
    }

    /// Writes that overlap a queued one without fitting in it (past its end, or from
    /// before its start), or that do not follow it, are not patched into it nor appended
    /// to it: each lands where it was written, the later bytes winning, in reads and in
    /// the file.
    #[test]
    fn overlapping_and_scattered_writes_land_where_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.fs");
        let b = FileBackend::open_write_behind(&path).unwrap();
        let want = b"ABCDEFGH..xyZw";
        b.write_at(0, b"abcd").unwrap();
        b.write_at(0, b"ABCDEFGH").unwrap(); // past the queued write's end
        b.write_at(12, b"zw").unwrap(); // after a gap: not appended
        b.write_at(10, b"xyZ").unwrap(); // from before the queued write into it
        b.write_at(8, b"..").unwrap();
        let mut got = [0u8; 14];
        b.read_exact_at(0, &mut got).unwrap();
        assert_eq!(&got, want);
        b.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// `queued_bytes` (what the limit and the writer's wake-ups go by) is always the bytes
    /// of the queued jobs plus the write in flight, also while the writer drains a queue
    /// held at the limit.
    #[test]
    fn queued_bytes_counts_the_queue_and_the_write_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open_write_behind(&dir.path().join("q.fs")).unwrap();
        let behind = b.behind.as_ref().unwrap();
        let check = |when: &str| {
            let q = behind.lock();
            let jobs: usize = q.jobs.iter().map(|(_, d)| d.len()).sum();
            let in_flight = q.in_flight.map_or(0, |(s, e)| (e - s) as usize);
            assert_eq!(q.queued_bytes, jobs + in_flight, "{when}");
        };
        let job = vec![7u8; 1 << 20];
        // Not adjacent: a job each; past the limit, so the writer must drain some first.
        let n = (WRITE_BEHIND_LIMIT >> 20) + 4;
        for i in 0..n as u64 {
            b.write_at(i * (2 << 20), &job).unwrap();
            check(&format!("after write {i}"));
        }
        b.sync().unwrap();
        check("after the sync");
        assert_eq!(behind.lock().queued_bytes, 0);
    }

    /// A caller that needs the queued writes made (`sync`, `len`, a read over them) makes
    /// them itself when no write is in flight: here there is no writer thread at all, so
    /// waiting for one would hang (bounded: the test fails instead). A transaction and its
    /// status flip reach the file as one patched write, in order with what came before.
    #[test]
    fn a_caller_that_needs_the_writes_makes_them_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.fs");
        let b = without_writer(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        let caller = std::thread::spawn(move || {
            b.write_at(0, b"FS30").unwrap();
            // Not adjacent: a job of its own.
            b.write_at(10, b"tx c data").unwrap();
            let mut head = [0u8; 4];
            b.read_exact_at(0, &mut head).unwrap();
            let queued_after_read = b.behind.as_ref().unwrap().lock().jobs.len();
            b.write_at(13, b" ").unwrap();
            b.write_at(19, b"more").unwrap();
            let queued_before_sync = b.behind.as_ref().unwrap().lock().jobs.len();
            b.sync().unwrap();
            let q = b.behind.as_ref().unwrap().lock();
            let _ = tx.send((
                head,
                (queued_after_read, queued_before_sync),
                q.jobs.len(),
                q.queued_bytes,
            ));
        });
        let (head, (queued_after_read, queued_before_sync), queued, bytes) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the caller made the writes itself");
        caller.join().unwrap();
        assert_eq!(&head, b"FS30");
        // The read needed only the first write: the transaction stays queued.
        assert_eq!(queued_after_read, 1);
        // The flip patched the queued transaction, the append extended it: one write.
        assert_eq!(queued_before_sync, 1);
        assert_eq!((queued, bytes), (0, 0));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"FS30\0\0\0\0\0\0tx   datamore"
        );
    }

    /// A write-behind backend on the file at `path` (created if missing) with no writer
    /// thread: queued writes stay queued until a caller needs them, so a test sees the
    /// queue exactly as the calls left it.
    fn without_writer(path: &Path) -> FileBackend {
        let file = Arc::new(open_read_write(path).unwrap());
        FileBackend {
            file: file.clone(),
            behind: Some(WriteBehind {
                file,
                shared: Arc::new(Shared::default()),
                thread: None,
            }),
        }
    }

    /// The ranges of the queued jobs, in queue order.
    fn queued(b: &FileBackend) -> Vec<(u64, u64)> {
        let q = b.behind.as_ref().unwrap().lock();
        q.jobs
            .iter()
            .map(|(p, d)| (*p, p + d.len() as u64))
            .collect()
    }

    /// A read makes (or waits for) exactly the queued writes it overlaps: not one that
    /// ends where the read starts, nor one that starts where the read ends.
    #[test]
    fn a_read_makes_only_the_queued_writes_it_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fs");
        std::fs::write(&path, [b'.'; 30]).unwrap();
        let b = without_writer(&path);
        b.write_at(4, b"AAAA").unwrap();
        b.write_at(20, b"BBBB").unwrap(); // after a gap: a job of its own
        let mut buf = [0u8; 12];
        b.read_exact_at(0, &mut buf[..4]).unwrap(); // up to where the first starts
        assert_eq!(&buf[..4], b"....");
        b.read_exact_at(8, &mut buf).unwrap(); // from the first's end to the second's start
        assert_eq!(&buf, b"............");
        b.read_exact_at(24, &mut buf[..6]).unwrap(); // from where the second ends
        assert_eq!(&buf[..6], b"......");
        assert_eq!(queued(&b), [(4, 8), (20, 24)]);
        let queued_bytes = || b.behind.as_ref().unwrap().lock().queued_bytes;
        assert_eq!(queued_bytes(), 8);
        b.read_exact_at(7, &mut buf[..1]).unwrap(); // the first's last byte
        assert_eq!(&buf[..1], b"A");
        assert_eq!(queued(&b), [(20, 24)]);
        assert_eq!(queued_bytes(), 4);
        b.read_exact_at(19, &mut buf[..2]).unwrap(); // into the second's first byte
        assert_eq!(&buf[..2], b".B");
        assert_eq!(queued(&b), []);
        assert_eq!(queued_bytes(), 0);
    }

    /// A caller that needs queued writes while another write is in flight (the writer
    /// thread's, played here by the test) waits for that write to end before it makes
    /// the rest: one write at a time, in queue order. Done waiting, it no longer counts
    /// as waiting.
    #[test]
    fn a_caller_waits_for_the_write_in_flight_before_making_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.fs");
        let b = Arc::new(without_writer(&path));
        let behind = || b.behind.as_ref().unwrap();
        b.write_at(0, b"FS30").unwrap();
        // The "writer" takes the first job and starts writing it.
        let (pos, data) = {
            let mut q = behind().lock();
            let (pos, data) = q.jobs.pop_front().unwrap();
            q.in_flight = Some((pos, pos + data.len() as u64));
            (pos, data)
        };
        b.write_at(10, b"next").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let syncer = {
            let b = b.clone();
            std::thread::spawn(move || tx.send(b.sync().map_err(|e| e.to_string())))
        };
        // Bounded: a caller that never waits, or waits uncounted, fails the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while behind().lock().waiting == 0 {
            assert!(!syncer.is_finished(), "the sync did not wait");
            assert!(std::time::Instant::now() < deadline, "the sync never waits");
            std::thread::yield_now();
        }
        assert_eq!(
            queued(&b),
            [(10, 14)],
            "nothing made while a write is in flight"
        );
        // The "writer" makes its write, as the writer thread does: that wakes the caller.
        let q = behind().lock();
        drop(write_job(&b.file, &behind().shared, q, pos, data));
        let synced = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(synced, Ok(Ok(())), "the caller was woken and made the rest");
        syncer.join().unwrap().unwrap();
        let q = behind().lock();
        assert_eq!((q.jobs.len(), q.queued_bytes, q.waiting), (0, 0, 0));
        assert_eq!(std::fs::read(&path).unwrap(), b"FS30\0\0\0\0\0\0next");
    }

    /// Job buffers: a write that appends are likely to follow (`SMALL_JOB` bytes or more,
    /// less than a chunk) starts a job in a buffer that holds a chunk; a small write (a
    /// status flip) gets a buffer of its own size. Appends merge into the last job until it
    /// holds a chunk, then start a job of their own. A written job's buffer of one to two
    /// chunks is kept and reused by the next job that is not small; a larger one is let go.
    #[test]
    fn job_buffers_hold_a_chunk_for_appends_and_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.fs");
        let b = without_writer(&path);
        let behind = b.behind.as_ref().unwrap();
        let c = WRITE_BEHIND_CHUNK;
        let jobs = || {
            let q = behind.lock();
            let j: Vec<_> = q
                .jobs
                .iter()
                .map(|(p, d)| (*p, d.len(), d.capacity()))
                .collect();
            j
        };
        let spare = || behind.lock().spare.as_ref().map(Vec::capacity);
        b.write_at(0, &[1; SMALL_JOB]).unwrap();
        assert_eq!(jobs(), [(0, SMALL_JOB, c)]);
        b.write_at(SMALL_JOB as u64, &vec![2; c - SMALL_JOB])
            .unwrap();
        assert_eq!(jobs(), [(0, c, c)], "an append merges");
        let small = SMALL_JOB - 1;
        b.write_at(c as u64, &vec![3; small]).unwrap();
        assert_eq!(
            jobs(),
            [(0, c, c), (c as u64, small, small)],
            "an append to a whole chunk starts a job; a small one of its own size"
        );
        b.sync().unwrap();
        assert_eq!(
            spare(),
            Some(c),
            "the chunk's buffer is kept, not the small one's"
        );
        b.write_at(4 * c as u64, &[4; 10]).unwrap();
        assert_eq!(jobs(), [(4 * c as u64, 10, 10)]);
        assert_eq!(
            spare(),
            Some(c),
            "a small write leaves the spare buffer alone"
        );
        b.write_at(5 * c as u64, &[5; SMALL_JOB]).unwrap();
        assert_eq!(spare(), None, "a larger one takes it");
        assert_eq!(jobs()[1], (5 * c as u64, SMALL_JOB, c));
        // Appends grow it past a chunk; at up to two chunks it is still kept.
        b.write_at((5 * c + SMALL_JOB) as u64, &vec![6; c]).unwrap();
        b.sync().unwrap();
        let kept = spare().expect("a buffer of less than two chunks is kept");
        assert!((c + SMALL_JOB..=2 * c).contains(&kept), "{kept}");
        // More than two chunks: let go (what the queue keeps stays bounded).
        b.write_at(8 * c as u64, &vec![7; 2 * c + 1]).unwrap();
        assert_eq!(spare(), None);
        b.sync().unwrap();
        assert_eq!(spare(), None);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 10 * c + 1);
        assert_eq!(
            (
                bytes[0],
                bytes[c - 1],
                bytes[c],
                bytes[4 * c],
                bytes[5 * c + SMALL_JOB]
            ),
            (1, 2, 3, 4, 6)
        );
        assert_eq!((bytes[3 * c], bytes[10 * c]), (0, 7));
    }

    /// A small write, and the tail of a burst, reach the file without a read, a sync or a
    /// megabyte more behind them: another process reading the file sees them.
    #[test]
    fn write_behind_writes_a_small_tail_without_being_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.fs");
        let b = FileBackend::open_write_behind(&path).unwrap();
        let on_disk = |len: u64| {
            // Bounded: the writer lingers milliseconds; minutes mean it never wrote.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::fs::metadata(&path).unwrap().len() < len {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{len} bytes never written"
                );
                std::thread::yield_now();
            }
        };
        // A lone write while the writer sleeps.
        b.write_at(0, b"FS30").unwrap();
        on_disk(4);
        // A burst: many small writes, then nothing more.
        let mut pos = 4u64;
        for i in 0..300u64 {
            let c = vec![(i % 251) as u8; 700];
            b.write_at(pos, &c).unwrap();
            pos += c.len() as u64;
        }
        on_disk(pos);
        // And a lone write again, after the writer went back to sleep.
        b.write_at(pos, b"end").unwrap();
        on_disk(pos + 3);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"FS30");
        assert_eq!(&bytes[bytes.len() - 3..], b"end");
    }

    /// Dropping a write-behind backend makes what is still queued (dropping it is not a
    /// crash) and ends its writer thread before it returns: the thread, which holds the
    /// queue's other handle, is gone.
    #[test]
    fn dropping_write_behind_makes_the_queued_writes_and_ends_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.fs");
        let b = FileBackend::open_write_behind(&path).unwrap();
        let shared = b.behind.as_ref().unwrap().shared.clone();
        b.write_at(0, b"FS30").unwrap();
        b.write_at(4, b"last").unwrap();
        drop(b);
        assert_eq!(std::fs::read(&path).unwrap(), b"FS30last");
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "the writer thread still runs"
        );
    }

    /// Writes queued behind are seen by every read that follows them, in order, from
    /// any thread, and reach the file by the time the backend is dropped.
    #[test]
    fn write_behind_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.fs");
        let b = Arc::new(FileBackend::open_write_behind(&path).unwrap());
        let reader = b.clone();
        let chunk = |i: u64| vec![(i % 251) as u8; 1000 + (i as usize % 7) * 100_000];
        let mut pos = 0u64;
        let mut ends = Vec::new();
        for i in 0..200u64 {
            let c = chunk(i);
            b.write_at(pos, &c).unwrap();
            pos += c.len() as u64;
            ends.push(pos);
            // A read of what was just written, and of the middle of the file.
            let mut last = [0u8; 1];
            assert_eq!(b.read_at(pos - 1, &mut last).unwrap(), 1);
            assert_eq!(last[0], (i % 251) as u8);
        }
        b.write_at(3, b"X").unwrap();
        let t = std::thread::spawn(move || {
            let mut one = [0u8; 1];
            reader.read_exact_at(3, &mut one).unwrap();
            one[0]
        });
        assert_eq!(t.join().unwrap(), b'X');
        // A transaction and its status flip, queued together: the flip patches it.
        b.write_at(pos, b"cccc").unwrap();
        b.write_at(pos + 4, b"dddd").unwrap();
        b.write_at(pos + 2, b" ").unwrap();
        let mut txn = [0u8; 8];
        b.read_exact_at(pos, &mut txn).unwrap();
        assert_eq!(&txn, b"cc cdddd");
        b.set_len(pos).unwrap();
        assert_eq!(b.len().unwrap(), pos);
        drop(b);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, pos);
        let mut start = 0usize;
        for (i, &end) in ends.iter().enumerate() {
            let want = (i % 251) as u8;
            let got = &bytes[start..end as usize];
            let ok = got
                .iter()
                .enumerate()
                .all(|(k, &x)| x == want || (start + k == 3 && x == b'X'));
            assert!(ok, "chunk {i}");
            start = end as usize;
        }
    }
}
