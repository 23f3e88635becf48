//! What the secondary asks its driver to do, and what the driver tells it.

use std::fmt;
use std::time::Duration;

use super::config::Address;
use crate::tid::{Oid, Tid};

/// The secondary's timers. At most one of each is pending at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Send an empty message to keep the connection alive.
    KeepAlive,
    /// Try to connect again.
    Connect,
}

impl Timer {
    /// The name zc.zrs's method has (`keep_alive`, `connect`): timer queues print it.
    pub fn name(self) -> &'static str {
        match self {
            Timer::KeepAlive => "keep_alive",
            Timer::Connect => "connect",
        }
    }
}

/// Work for the driver, drained with [`super::Secondary::poll_action`] in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a connection attempt; answer with `connected` or `connection_failed`.
    Connect(Address),
    /// Give up the attempt in progress; the secondary already counts it as failed.
    AbortConnect,
    /// Write these bytes on the connection.
    Transmit(Vec<u8>),
    /// Close the connection; the secondary already counts it as lost (do not report it).
    Disconnect,
    /// Call [`super::Secondary::timeout`] with `timer` after `delay`.
    SetTimer { timer: Timer, delay: Duration },
    /// Forget the pending `timer`.
    CancelTimer(Timer),
    /// A transaction was committed: clients caching these objects must drop them.
    Invalidate { tid: Tid, oids: Vec<Oid> },
}

/// Why a connection ended, printed as zc.zrs logs Twisted's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// Closed cleanly (by either side).
    Done,
    /// Lost uncleanly (reset, I/O error).
    Lost,
    /// Any other reason, printed as a Python string repr (`'failed'`).
    Other(String),
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossReason::Done => f.write_str(
                "<twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionDone'>>",
            ),
            LossReason::Lost => f.write_str(
                "<twisted.python.failure.Failure <class 'twisted.internet.error.ConnectionLost'>>",
            ),
            LossReason::Other(s) => f.write_str(&crate::repr::py_str_repr(s)),
        }
    }
}
