//! `Data.fs.lock`: the writer's lock, taken exactly as ZODB takes it, so that zrs and
//! Python ZODB (a ZEO server, a zc.zrs secondary, a script) never write one file at once.
//!
//! ZODB's `FileStorage`, opened for writing, takes a `zc.lockfile.LockFile` on
//! `<path>.lock` before touching the data file: it opens the lock file (creating it if
//! missing, never truncating it first), takes a non-blocking exclusive `flock(2)` on it,
//! then writes `" <pid>\n"` at its start and truncates it there. The lock lasts as long as
//! the open file; the lock file itself is never removed. Readers take no lock.
//!
//! We do the same, byte for byte (retrying for a tenth of a second, see `RELEASE_GRACE`),
//! with `flock` (not `fcntl`/`lockf` record locks: Linux
//! keeps the two apart, and only `flock` excludes a Python holder). A `flock` belongs to
//! the open file, so two writers in one process exclude each other too. When the lock is
//! held, the pid written in the file names the holder in our error.
//!
//! Hand-written over `libc::flock`: std's `File::try_lock` needs Rust 1.89 (the crate
//! supports 1.80), and the whole protocol is a dozen lines.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::backend::open_read_write;

/// How long a held lock is retried before giving up. A lock is released only when every
/// descriptor of it is closed, and a child the holder forks keeps a copy until its `exec`
/// closes it: a lock just released can look held for that instant. A tenth of a second
/// covers it and still fails "at once" against a real holder.
const RELEASE_GRACE: Duration = Duration::from_millis(100);

/// A held `Data.fs.lock`; dropping it releases the lock (the file stays, as ZODB leaves it).
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    _file: File,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another open in this one) holds it.
    #[error("{} is locked{}: another process writes this storage (a zrs node or a ZODB/ZEO process); \
             stop it first, or open the storage read-only", path.display(), holder_text(holder))]
    Held {
        path: PathBuf,
        /// What the lock file says about its holder: the pid zc.lockfile wrote, if any.
        holder: Option<String>,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn holder_text(holder: &Option<String>) -> String {
    match holder {
        Some(pid) if pid.bytes().all(|b| b.is_ascii_digit()) => format!(" by pid {pid}"),
        Some(other) => format!(" (the lock file says {other:?})"),
        None => String::new(),
    }
}

/// The lock file of the data file at `data_path`: `Data.fs` → `Data.fs.lock`.
pub fn lock_path(data_path: &Path) -> PathBuf {
    let mut p = data_path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl LockFile {
    /// Take the lock at `path` (the `.lock` file itself) without waiting, and write our pid.
    pub fn acquire(path: &Path) -> Result<LockFile, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_read_write(path).map_err(io_err)?;
        let deadline = Instant::now() + RELEASE_GRACE;
        loop {
            match try_lock_exclusive(&file) {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(false) => {
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        holder: read_holder(path),
                    })
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        // zc.lockfile's content: " {pid}\n" from the start, the rest cut off.
        let content = format!(" {}\n", std::process::id());
        write_content(&file, content.as_bytes()).map_err(io_err)?;
        Ok(LockFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The holder the lock file names (trimmed), if it names anything.
fn read_holder(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    // A pid line is short; anything long is not zc.lockfile's and is only hinted at.
    let text = String::from_utf8_lossy(&text[..text.len().min(200)])
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

fn write_content(file: &File, content: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    std::os::unix::fs::FileExt::write_all_at(file, content, 0)?;
    #[cfg(not(unix))]
    {
        use std::io::{Seek, Write};
        let mut f = file;
        f.seek(io::SeekFrom::Start(0))?;
        f.write_all(content)?;
    }
    file.set_len(content.len() as u64)
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when someone else holds it.
#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own for the duration of the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> io::Result<bool> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "locking a Data.fs is implemented for Unix (flock) only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_pid_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("Data.fs"));
        assert!(path.ends_with("Data.fs.lock"));
        let first = LockFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(" {}\n", std::process::id())
        );
        let err = LockFile::acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Data.fs.lock"), "{text}");
        assert!(
            text.contains(&format!("by pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        // The file stays (as ZODB leaves it) and the lock is free again.
        assert!(path.exists());
        let again = LockFile::acquire(&path).unwrap();
        assert_eq!(again.path(), path);
    }

    /// zc.lockfile writes a pid; anything else in the file is quoted, not called a pid.
    #[test]
    fn the_holder_is_named_as_the_lock_file_says() {
        assert_eq!(holder_text(&Some("4242".into())), " by pid 4242");
        assert_eq!(
            holder_text(&Some("4242 x".into())),
            " (the lock file says \"4242 x\")"
        );
        assert_eq!(holder_text(&None), "");
    }

    /// A lock let go while `acquire` retries (within `RELEASE_GRACE`) is taken: a holder's
    /// forked child can keep it an instant after the holder closed it. The test holds the
    /// lock through another open of the file, waits until `acquire` has been refused once
    /// (its thread then sleeps between tries: Linux shows the system call a thread is
    /// blocked in), and lets go. A round in which the machine stalls the test past the
    /// grace proves nothing (`acquire` then gives up, as it should), so there are a few;
    /// one lock taken is what the test wants, and a first refusal that is final never
    /// gives one.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lock_let_go_within_the_grace_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Data.fs.lock");
        let sleeping = |nr: i64| {
            #[cfg(target_arch = "x86_64")]
            if nr == libc::SYS_nanosleep {
                return true;
            }
            nr == libc::SYS_clock_nanosleep
        };
        for _round in 0..20 {
            let holder = LockFile::acquire(&path).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            let waiter = std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() }).unwrap();
                LockFile::acquire(&p)
            });
            let syscall = format!("/proc/self/task/{}/syscall", rx.recv().unwrap());
            // Until it sleeps between tries, or returns (refused for good).
            while !waiter.is_finished() {
                let text = std::fs::read_to_string(&syscall).unwrap_or_default();
                let nr = text.split_whitespace().next().and_then(|n| n.parse().ok());
                if nr.is_some_and(sleeping) {
                    break;
                }
                std::thread::yield_now();
            }
            drop(holder);
            match waiter.join().unwrap() {
                Ok(lock) => {
                    assert_eq!(lock.path(), path);
                    return;
                }
                Err(LockError::Held { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("acquire never took a lock let go while it retried");
    }

    #[test]
    fn old_content_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Data.fs.lock");
        std::fs::write(&path, " 123456789 and a much longer stale line\n").unwrap();
        let _lock = LockFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(" {}\n", std::process::id())
        );
    }
}
