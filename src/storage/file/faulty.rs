//! Disk faults: a [`Backend`] wrapper that fails chosen writes, fsyncs and reads with `EIO`
//! or `ENOSPC`, and the description of such a fault ([`DiskFault`]), which the simulator's
//! disk takes too.
//!
//! A fault is armed for one kind of operation; it lets `after` operations of that kind
//! through, then fails the next one (a write first lands `partial` of its bytes, as a full
//! disk or a dying sector would leave them) — once, or every time until [`FaultyBackend::heal`]
//! when it is `sticky`. Over a real file this is what the FileStorage meets when the disk
//! fails; what the kernel does to the failed fsync's pages is the kernel's (the simulated
//! disk models the worst: they never become durable).

use std::fmt;
use std::io;
use std::sync::Mutex;

use super::backend::Backend;

/// The operation a fault fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiskOp {
    Write,
    Sync,
    Read,
}

impl DiskOp {
    pub const ALL: [DiskOp; 3] = [DiskOp::Write, DiskOp::Sync, DiskOp::Read];

    pub fn name(self) -> &'static str {
        match self {
            DiskOp::Write => "write",
            DiskOp::Sync => "sync",
            DiskOp::Read => "read",
        }
    }
}

/// The error a failed operation reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskError {
    /// `EIO`: the device failed.
    Io,
    /// `ENOSPC`: the disk is full.
    NoSpace,
}

impl DiskError {
    pub fn name(self) -> &'static str {
        match self {
            DiskError::Io => "eio",
            DiskError::NoSpace => "enospc",
        }
    }

    /// The `io::Error` an operating system reports.
    pub fn to_io(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            DiskError::Io => 5,       // EIO
            DiskError::NoSpace => 28, // ENOSPC
        })
    }
}

/// One armed fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskFault {
    pub op: DiskOp,
    /// Operations of that kind let through before the failing one.
    pub after: u32,
    pub error: DiskError,
    /// Bytes of a failing write that land before the error.
    pub partial: usize,
    /// Fail every such operation from then on, until healed (else only one).
    pub sticky: bool,
}

impl DiskFault {
    /// `op` fails once, with `error`, at its next call, landing nothing.
    pub fn once(op: DiskOp, error: DiskError) -> DiskFault {
        DiskFault {
            op,
            after: 0,
            error,
            partial: 0,
            sticky: false,
        }
    }
}

impl fmt::Display for DiskFault {
    /// As the scenario step writes it: `write after=2 error=enospc partial=10 sticky`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.name())?;
        if self.after > 0 {
            write!(f, " after={}", self.after)?;
        }
        if self.error != DiskError::Io {
            write!(f, " error={}", self.error.name())?;
        }
        if self.partial > 0 {
            write!(f, " partial={}", self.partial)?;
        }
        if self.sticky {
            f.write_str(" sticky")?;
        }
        Ok(())
    }
}

/// The faults armed on a disk, and which fire on the next operation.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    armed: Vec<DiskFault>,
    fired: u64,
}

impl FaultPlan {
    pub fn arm(&mut self, fault: DiskFault) {
        self.armed.push(fault);
    }

    /// Disarms everything: the disk works again.
    pub fn heal(&mut self) {
        self.armed.clear();
    }

    /// How many operations failed so far.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    pub fn is_armed(&self) -> bool {
        !self.armed.is_empty()
    }

    /// An operation of kind `op` is about to run: the fault that fails it, if one does.
    pub fn next(&mut self, op: DiskOp) -> Option<DiskFault> {
        let i = self.armed.iter().position(|f| f.op == op)?;
        let fault = &mut self.armed[i];
        if fault.after > 0 {
            fault.after -= 1;
            return None;
        }
        let fault = *fault;
        if !fault.sticky {
            self.armed.remove(i);
        }
        self.fired += 1;
        Some(fault)
    }
}

/// A backend whose operations fail as planned.
#[derive(Debug)]
pub struct FaultyBackend<B: Backend> {
    inner: B,
    plan: Mutex<FaultPlan>,
}

impl<B: Backend> FaultyBackend<B> {
    pub fn new(inner: B) -> FaultyBackend<B> {
        FaultyBackend {
            inner,
            plan: Mutex::new(FaultPlan::default()),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, FaultPlan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn arm(&self, fault: DiskFault) {
        self.plan().arm(fault);
    }

    pub fn heal(&self) {
        self.plan().heal();
    }

    /// How many operations failed so far.
    pub fn fired(&self) -> u64 {
        self.plan().fired()
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = self.plan().next(DiskOp::Read) {
            return Err(f.error.to_io());
        }
        self.inner.read_at(pos, buf)
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        if let Some(f) = self.plan().next(DiskOp::Write) {
            let landed = f.partial.min(data.len());
            if landed > 0 {
                self.inner.write_at(pos, &data[..landed])?;
            }
            return Err(f.error.to_io());
        }
        self.inner.write_at(pos, data)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        if let Some(f) = self.plan().next(DiskOp::Sync) {
            return Err(f.error.to_io());
        }
        self.inner.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::file::backend::MemoryBackend;

    #[test]
    fn a_plan_is_armed_from_arm_until_its_faults_are_spent_or_healed() {
        let fault = |sticky| DiskFault {
            op: DiskOp::Sync,
            after: 0,
            error: DiskError::Io,
            partial: 0,
            sticky,
        };
        let mut plan = FaultPlan::default();
        assert!(!plan.is_armed());
        plan.arm(fault(false));
        assert!(plan.is_armed());
        assert!(plan.next(DiskOp::Sync).is_some());
        assert!(!plan.is_armed(), "a one-shot fault is spent once it fires");
        plan.arm(fault(true));
        assert!(plan.next(DiskOp::Sync).is_some());
        assert!(plan.is_armed(), "a sticky fault stays");
        plan.heal();
        assert!(!plan.is_armed());
    }

    #[test]
    fn a_fault_lets_some_through_then_fails_once_or_until_healed() {
        let b = FaultyBackend::new(MemoryBackend::new());
        b.arm(DiskFault {
            op: DiskOp::Write,
            after: 1,
            error: DiskError::NoSpace,
            partial: 2,
            sticky: false,
        });
        b.write_at(0, b"abcd").unwrap();
        let e = b.write_at(4, b"efgh").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert_eq!(b.inner().contents(), b"abcdef", "two bytes landed");
        b.write_at(6, b"gh").unwrap();
        b.arm(DiskFault {
            op: DiskOp::Sync,
            after: 0,
            error: DiskError::Io,
            partial: 0,
            sticky: true,
        });
        assert_eq!(b.sync().unwrap_err().raw_os_error(), Some(5));
        assert!(b.sync().is_err(), "sticky");
        b.heal();
        b.sync().unwrap();
        assert_eq!(b.fired(), 3);
    }

    /// A failing write of which nothing lands changes nothing, even aimed past the end
    /// (where a write of no bytes would still stretch the memory disk).
    #[test]
    fn a_failing_write_with_nothing_landed_leaves_the_disk_alone() {
        let b = FaultyBackend::new(MemoryBackend::new());
        b.write_at(0, b"abcd").unwrap();
        b.arm(DiskFault::once(DiskOp::Write, DiskError::Io));
        assert_eq!(b.write_at(10, b"xy").unwrap_err().raw_os_error(), Some(5));
        assert_eq!(b.inner().contents(), b"abcd");
        assert_eq!(b.len().unwrap(), 4);
    }

    #[test]
    fn faults_print_as_scenario_steps_write_them() {
        let f = DiskFault {
            op: DiskOp::Write,
            after: 2,
            error: DiskError::NoSpace,
            partial: 10,
            sticky: true,
        };
        assert_eq!(
            f.to_string(),
            "write after=2 error=enospc partial=10 sticky"
        );
        let plain = DiskFault::once(DiskOp::Sync, DiskError::Io);
        assert_eq!(plain.to_string(), "sync");
    }
}
