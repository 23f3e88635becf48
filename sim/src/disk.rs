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

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use zrs::storage::file::backend::Backend;

/// One unsynced operation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct State {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    unsynced: Vec<Op>,
    syncs: u64,
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
    state: Mutex<State>,
}

fn apply(bytes: &mut Vec<u8>, op: &Op) -> io::Result<()> {
    match op {
        Op::Write { pos, data } => {
            let pos = to_usize(*pos)?;
            let end = pos
                .checked_add(data.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[pos..end].copy_from_slice(data);
        }
        Op::SetLen(len) => bytes.resize(to_usize(*len)?, 0),
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
        // State changes in whole operations under the lock: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes reads see now.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().current.clone()
    }

    /// The bytes a crash now would keep at the least.
    pub fn durable(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// Operations not synced yet.
    pub fn unsynced(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// How many syncs there were.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The machine crashes: the disk keeps what was synced, the first `keep` unsynced
    /// operations whole, and the first `tear` bytes of the next one if it is a write (a
    /// truncation is all or nothing: `tear > 0` keeps it). The rest is lost; the disk then
    /// reads as what it kept.
    pub fn crash(&self, keep: usize, tear: usize) -> CrashReport {
        let mut s = self.lock();
        let unsynced = std::mem::take(&mut s.unsynced);
        let mut report = CrashReport {
            unsynced: unsynced.len(),
            ..CrashReport::default()
        };
        let mut bytes = std::mem::take(&mut s.durable);
        for op in unsynced.iter().take(keep) {
            // Operations were valid when made; they apply again.
            let _ = apply(&mut bytes, op);
            report.kept += 1;
        }
        if tear > 0 {
            match unsynced.get(keep) {
                Some(Op::Write { pos, data }) => {
                    let n = tear.min(data.len());
                    let torn = Op::Write {
                        pos: *pos,
                        data: data[..n].to_vec(),
                    };
                    let _ = apply(&mut bytes, &torn);
                    report.torn = n;
                }
                Some(op @ Op::SetLen(_)) => {
                    let _ = apply(&mut bytes, op);
                    report.kept += 1;
                }
                None => {}
            }
        }
        s.current = bytes.clone();
        s.durable = bytes;
        report
    }
}

impl Backend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().current.len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.lock();
        let pos = to_usize(pos)?;
        if pos >= s.current.len() {
            return Ok(0);
        }
        let n = buf.len().min(s.current.len() - pos);
        buf[..n].copy_from_slice(&s.current[pos..pos + n]);
        Ok(n)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        let op = Op::Write {
            pos,
            data: data.to_vec(),
        };
        apply(&mut s.current, &op)?;
        s.unsynced.push(op);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        let op = Op::SetLen(len);
        apply(&mut s.current, &op)?;
        s.unsynced.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        let ops = std::mem::take(&mut s.unsynced);
        for op in &ops {
            apply(&mut s.durable, op)?;
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
