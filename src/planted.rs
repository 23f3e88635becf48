//! Planted bugs, for mutation testing: each [`Bug`] breaks zrs at one point, so that the
//! simulator's campaigns can be shown to catch it (zrs-sim's `tests/mutants.rs`).
//!
//! Production code asks [`planted`] at each such point — `if planted(Bug::X) { … }` — and
//! carries no `cfg`: without the feature `deliberate-bugs` the predicate is a constant
//! `false` (`#[inline(always)]`), and the broken branch compiles away. madsim's `buggify`
//! is the model. With the feature, a bug is planted for the current thread only
//! ([`plant`]), so tests running side by side each break zrs their own way, and a
//! simulation run is as deterministic as without it.

/// A deliberately broken behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// The secondary does not check `C`'s checksum.
    IgnoreChecksum,
    /// The secondary does not abort a partial transaction when the connection ends.
    KeepPartialTransaction,
    /// The start tid sent is the last *received* transaction's, not the last committed.
    StartFromReceived,
    /// No reconnect is scheduled after a rejected connection attempt.
    NoReconnectAfterReject,
    /// The keep-alive timer is left running after a disconnect.
    KeepAliveAfterDisconnect,
    /// The framing drops a byte when a length prefix arrives split across reads.
    SplitPrefixDropsByte,
    /// A connection lost after a `T` but before its first record leaves the transaction
    /// begun in the storage.
    KeepBegunTransaction,
    /// Reopening a FileStorage keeps a voted but unfinished (`'c'`) transaction at its end.
    ReopenKeepsVoted,
    /// `tpc_abort` after a failed write leaves the voted transaction's bytes in the file.
    AbortKeepsFailedWrite,
    /// A blob storage makes no copy of the blob file when an undo asks for one (as
    /// zc.zrs's secondary: the replica then lacks the primary's undo copies).
    NoUndoBlobCopy,
}

impl Bug {
    pub const ALL: [Bug; 10] = [
        Bug::IgnoreChecksum,
        Bug::KeepPartialTransaction,
        Bug::StartFromReceived,
        Bug::NoReconnectAfterReject,
        Bug::KeepAliveAfterDisconnect,
        Bug::SplitPrefixDropsByte,
        Bug::KeepBegunTransaction,
        Bug::ReopenKeepsVoted,
        Bug::AbortKeepsFailedWrite,
        Bug::NoUndoBlobCopy,
    ];
}

#[cfg(feature = "deliberate-bugs")]
thread_local! {
    static PLANTED: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Whether `bug` is planted on this thread: always `false` in a build without the feature
/// `deliberate-bugs`.
#[inline(always)]
pub fn planted(bug: Bug) -> bool {
    #[cfg(feature = "deliberate-bugs")]
    {
        PLANTED.with(|p| p.get() == Some(bug))
    }
    #[cfg(not(feature = "deliberate-bugs"))]
    {
        let _ = bug;
        false
    }
}

/// Plants `bug` (or none) on this thread until the guard is dropped.
///
/// # Panics
/// If asked to plant a bug in a build without the feature `deliberate-bugs`: the caller
/// would otherwise test an unbroken zrs and believe it broken.
pub fn plant(bug: Option<Bug>) -> Planting {
    #[cfg(feature = "deliberate-bugs")]
    {
        Planting {
            previous: PLANTED.with(|p| p.replace(bug)),
        }
    }
    #[cfg(not(feature = "deliberate-bugs"))]
    {
        assert!(
            bug.is_none(),
            "cannot plant {bug:?}: zrs was built without the feature deliberate-bugs"
        );
        Planting { previous: None }
    }
}

/// Restores what was planted before, when dropped.
#[must_use = "the bug is planted only while the guard lives"]
#[derive(Debug)]
pub struct Planting {
    #[cfg_attr(not(feature = "deliberate-bugs"), allow(dead_code))]
    previous: Option<Bug>,
}

impl Drop for Planting {
    fn drop(&mut self) {
        #[cfg(feature = "deliberate-bugs")]
        PLANTED.with(|p| p.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_planted_by_default() {
        for bug in Bug::ALL {
            assert!(!planted(bug));
        }
        let _none = plant(None);
        assert!(Bug::ALL.iter().all(|&b| !planted(b)));
    }

    #[cfg(feature = "deliberate-bugs")]
    #[test]
    fn a_bug_is_planted_on_this_thread_while_the_guard_lives() {
        {
            let _g = plant(Some(Bug::IgnoreChecksum));
            assert!(planted(Bug::IgnoreChecksum));
            assert!(!planted(Bug::StartFromReceived));
            std::thread::spawn(|| assert!(!planted(Bug::IgnoreChecksum)))
                .join()
                .unwrap();
        }
        assert!(!planted(Bug::IgnoreChecksum));
    }
}
