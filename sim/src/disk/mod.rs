//! A simulated disk under a FileStorage: what was synced survives a crash, what was not
//! may be lost or torn.
//!
//! [`SimDisk`] implements zrs's [`Backend`]. Reads see every write (as a page cache would);
//! [`Backend::sync`] makes them durable. Until then each write and truncation is kept in an
//! ordered log of unsynced operations, and [`SimDisk::crash`] decides what of that log the
//! disk kept: the first `keep` operations whole, and `tear` bytes of the one after (a torn
//! write; a truncation is either done or not). The rest is lost. A campaign draws `keep`
//! and `tear` from its run's rng and writes them into its `crash` step, so a replay crashes
//! the same way.
//!
//! The disk also fails: a [`DiskFault`] armed on it (the `disk fail …` step) fails a write
//! (after landing part of it), an fsync or a read with `EIO` or `ENOSPC`. A failed fsync
//! is the worst case Linux allows: the unsynced writes stay readable (in the page cache)
//! but are forgotten, never to become durable — a later fsync that succeeds does not save
//! them, so a storage that retries and carries on builds on data a crash will lose.
//!
//! Beside the Data.fs the disk holds a tree of files and directories — a simulated node's
//! blob directory, through zrs's `BlobFs` ([`files`]). Its changes go into the same log,
//! in order with the Data.fs's writes, so one crash decides for both and one armed fault
//! fails whichever operation comes next.

mod files;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use files::{FileOp, Tree};

use zrs::storage::file::backend::{read_from, write_into, Backend};
use zrs::storage::file::faulty::{DiskFault, DiskOp, FaultPlan};

/// One unsynced operation: of the Data.fs, or of the file tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
    File(FileOp),
}

#[derive(Debug, Default)]
struct State {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Operations not yet made durable, in order.
    unsynced: Vec<Op>,
    /// The file tree, as reads see it and as a crash would find it.
    files: Tree,
    durable_files: Tree,
    /// The last inode number given to a file.
    next_inode: u64,
    syncs: u64,
    faults: FaultPlan,
    /// Faults do not fire (the oracles' own reads).
    suspended: bool,
    /// The lowest position any write or truncation touched since the oracles last looked,
    /// in what reads see and in what is durable: they re-check from there.
    low_water: (u64, u64),
}

/// What a crash did to the unsynced operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced operations there were.
    pub unsynced: usize,
    /// Operations kept whole.
    pub kept: usize,
    /// Bytes kept of a torn write (0: none torn).
    pub torn: usize,
}

/// A disk in memory that can crash.
#[derive(Debug, Default)]
pub struct SimDisk {
    /// Shared with the disk's open files.
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // State changes in whole operations under the lock: a poisoned lock is usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The lowest position `op` changes.
fn touches(op: &Op) -> u64 {
    match op {
        Op::Write { pos, .. } => *pos,
        Op::SetLen(len) => *len,
        Op::File(_) => u64::MAX,
    }
}

fn apply(bytes: &mut Vec<u8>, op: &Op) -> io::Result<()> {
    match op {
        Op::Write { pos, data } => write_into(bytes, *pos, data)?,
        Op::SetLen(len) => bytes.resize(to_usize(*len)?, 0),
        Op::File(_) => {}
    }
    Ok(())
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl SimDisk {
    /// An empty disk, shared: the storage holds one handle, the simulator another.
    pub fn new() -> Arc<SimDisk> {
        Arc::new(SimDisk::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The bytes reads see now.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().current.clone()
    }

    /// The bytes a crash now would keep at the least.
    pub fn durable(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// Runs `f` on what reads see and what is durable, without copying them.
    pub fn with_contents<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> R {
        let s = self.lock();
        f(&s.current, &s.durable)
    }

    /// The lowest position changed (in what reads see, in what is durable) since the last
    /// call; `u64::MAX` where nothing changed.
    pub fn take_low_water(&self) -> (u64, u64) {
        std::mem::replace(&mut self.lock().low_water, (u64::MAX, u64::MAX))
    }

    /// Operations not synced yet.
    pub fn unsynced(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// How many syncs there were.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Arms a fault: the operation it names fails once its `after` count is spent.
    pub fn arm(&self, fault: DiskFault) {
        self.lock().faults.arm(fault);
    }

    /// The disk works again: every armed fault is dropped.
    pub fn heal(&self) {
        self.lock().faults.heal();
    }

    /// Whether a fault is armed.
    pub fn failing(&self) -> bool {
        self.lock().faults.is_armed()
    }

    /// Operations failed so far.
    pub fn failures(&self) -> u64 {
        self.lock().faults.fired()
    }

    /// Runs `f` with faults held back (an oracle reading the storage must not consume the
    /// fault meant for the secondary, nor be failed by it).
    pub fn without_faults<R>(&self, f: impl FnOnce() -> R) -> R {
        let before = std::mem::replace(&mut self.lock().suspended, true);
        let r = f();
        self.lock().suspended = before;
        r
    }

    fn fault(s: &mut State, op: DiskOp) -> Option<DiskFault> {
        if s.suspended {
            return None;
        }
        s.faults.next(op)
    }

    /// The machine crashes: the disk keeps what was synced, the first `keep` unsynced
    /// operations whole, and the first `tear` bytes of the next one if it is a write (a
    /// truncation, or a change of names in the file tree, is all or nothing: `tear > 0`
    /// keeps it). The rest is lost; the disk then reads as what it kept.
    pub fn crash(&self, keep: usize, tear: usize) -> CrashReport {
        let mut s = self.lock();
        let unsynced = std::mem::take(&mut s.unsynced);
        let mut report = CrashReport {
            unsynced: unsynced.len(),
            ..CrashReport::default()
        };
        let mut bytes = std::mem::take(&mut s.durable);
        let mut files = std::mem::take(&mut s.durable_files);
        let mut keep_op = |op: &Op| match op {
            Op::File(op) => {
                files.apply(op);
            }
            // Operations were valid when made; they apply again.
            op => {
                let _ = apply(&mut bytes, op);
            }
        };
        for op in unsynced.iter().take(keep) {
            keep_op(op);
            report.kept += 1;
        }
        if tear > 0 {
            match unsynced.get(keep) {
                Some(Op::Write { pos, data }) => {
                    let n = tear.min(data.len());
                    keep_op(&Op::Write {
                        pos: *pos,
                        data: data[..n].to_vec(),
                    });
                    report.torn = n;
                }
                Some(Op::File(FileOp::Write { inode, pos, data })) => {
                    let n = tear.min(data.len());
                    keep_op(&Op::File(FileOp::Write {
                        inode: *inode,
                        pos: *pos,
                        data: data[..n].into(),
                    }));
                    report.torn = n;
                }
                Some(op) => {
                    keep_op(op);
                    report.kept += 1;
                }
                None => {}
            }
        }
        files.prune();
        s.current = bytes.clone();
        s.durable = bytes;
        s.files = files.clone();
        s.durable_files = files;
        s.low_water = (0, 0);
        report
    }
}

impl Backend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().current.len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.lock();
        if let Some(f) = SimDisk::fault(&mut s, DiskOp::Read) {
            return Err(f.error.to_io());
        }
        read_from(&s.current, pos, buf)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        if let Some(f) = SimDisk::fault(&mut s, DiskOp::Write) {
            let landed = f.partial.min(data.len());
            if landed > 0 {
                let op = Op::Write {
                    pos,
                    data: data[..landed].to_vec(),
                };
                apply(&mut s.current, &op)?;
                s.low_water.0 = s.low_water.0.min(pos);
                s.unsynced.push(op);
            }
            return Err(f.error.to_io());
        }
        let op = Op::Write {
            pos,
            data: data.to_vec(),
        };
        apply(&mut s.current, &op)?;
        s.low_water.0 = s.low_water.0.min(pos);
        s.unsynced.push(op);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        let op = Op::SetLen(len);
        apply(&mut s.current, &op)?;
        s.low_water.0 = s.low_water.0.min(len);
        s.unsynced.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        let failed = SimDisk::fault(&mut s, DiskOp::Sync);
        // The Data.fs's writes; the file tree's stay for their own fsyncs.
        let (ops, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut s.unsynced)
            .into_iter()
            .partition(|op| !matches!(op, Op::File(_)));
        s.unsynced = rest;
        if let Some(f) = failed {
            // The writes stay readable but are forgotten: never durable now.
            return Err(f.error.to_io());
        }
        for op in &ops {
            apply(&mut s.durable, op)?;
            s.low_water.1 = s.low_water.1.min(touches(op));
        }
        s.syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_writes_survive_and_unsynced_are_lost() {
        let d = SimDisk::new();
        d.write_at(0, b"FS21").unwrap();
        d.sync().unwrap();
        d.write_at(4, b"abcd").unwrap();
        d.set_len(6).unwrap();
        assert_eq!(d.contents(), b"FS21ab");
        assert_eq!(d.durable(), b"FS21");
        let r = d.crash(0, 0);
        assert_eq!(
            r,
            CrashReport {
                unsynced: 2,
                kept: 0,
                torn: 0
            }
        );
        assert_eq!(d.contents(), b"FS21");
        assert_eq!(d.unsynced(), 0);
    }

    #[test]
    fn a_crash_keeps_a_prefix_of_the_writes_and_tears_the_next() {
        let d = SimDisk::new();
        d.write_at(0, b"0123").unwrap();
        d.write_at(4, b"4567").unwrap();
        d.write_at(8, b"89ab").unwrap();
        let r = d.crash(1, 3);
        assert_eq!((r.kept, r.torn), (1, 3));
        assert_eq!(d.contents(), b"0123456");
        // Keeping more than there is keeps everything.
        d.write_at(7, b"XY").unwrap();
        d.crash(5, 5);
        assert_eq!(d.contents(), b"0123456XY");
    }

    #[test]
    fn a_failed_fsync_forgets_the_unsynced_writes() {
        use zrs::storage::file::faulty::DiskError;
        let d = SimDisk::new();
        d.write_at(0, b"FS21").unwrap();
        d.sync().unwrap();
        d.write_at(4, b"lost").unwrap();
        d.arm(DiskFault::once(DiskOp::Sync, DiskError::Io));
        assert_eq!(d.sync().unwrap_err().raw_os_error(), Some(5));
        // Still readable, but a later successful fsync does not make it durable.
        assert_eq!(d.contents(), b"FS21lost");
        d.write_at(8, b"more").unwrap();
        d.sync().unwrap();
        assert_eq!(d.durable(), b"FS21\0\0\0\0more");
        d.crash(0, 0);
        assert_eq!(
            d.contents(),
            b"FS21\0\0\0\0more",
            "a hole where the forgotten writes were"
        );
    }

    #[test]
    fn a_failed_write_lands_part_of_it_and_reads_can_fail() {
        use zrs::storage::file::faulty::DiskError;
        let d = SimDisk::new();
        d.arm(DiskFault {
            op: DiskOp::Write,
            after: 1,
            error: DiskError::NoSpace,
            partial: 2,
            sticky: false,
        });
        d.write_at(0, b"FS21").unwrap();
        assert_eq!(d.write_at(4, b"abcd").unwrap_err().raw_os_error(), Some(28));
        assert_eq!(d.contents(), b"FS21ab");
        d.arm(DiskFault {
            op: DiskOp::Read,
            after: 0,
            error: DiskError::Io,
            partial: 0,
            sticky: true,
        });
        let mut buf = [0u8; 4];
        assert!(d.read_at(0, &mut buf).is_err());
        assert_eq!(d.without_faults(|| d.read_at(0, &mut buf).unwrap()), 4);
        assert!(d.read_at(0, &mut buf).is_err(), "sticky");
        d.heal();
        assert_eq!(d.read_at(0, &mut buf).unwrap(), 4);
        assert_eq!(d.failures(), 3);
    }

    #[test]
    fn a_torn_truncation_is_all_or_nothing() {
        let d = SimDisk::new();
        d.write_at(0, b"0123456789").unwrap();
        d.sync().unwrap();
        d.set_len(2).unwrap();
        d.crash(0, 1);
        assert_eq!(d.contents(), b"01");
        d.set_len(1).unwrap();
        d.crash(0, 0);
        assert_eq!(d.contents(), b"01");
    }
}
