//! The faults a run injects, and how often.
//!
//! By default every run injects every kind of fault at fixed relative weights. With
//! `--swarm` ("swarm testing") each run first draws which kinds it enables and their
//! weights, and how often it injects a fault at all: runs that inject only a few kinds,
//! heavily, reach states an even mix rarely does.

use std::fmt;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A kind of fault (counted in the campaign's summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The connection is lost (`fail`, `drop`).
    Disconnect,
    /// A connection attempt is rejected.
    Reject,
    /// The primary is unreachable for several reconnect delays.
    Outage,
    /// A delivery stops at an arbitrary byte, inside a message or a transaction.
    Cut,
    /// Time passes in the middle of a transfer (keep-alives fire).
    Stall,
    /// A byte of the stream is corrupted.
    Corrupt,
    /// A message is cut short.
    Truncate,
    /// A message is sent twice.
    Duplicate,
    /// A `C` carries a wrong checksum.
    BadChecksum,
    /// The secondary is closed (and later reopened).
    Close,
    /// The secondary's process crashes (and later restarts).
    Crash,
    /// The primary restarts.
    PrimaryRestart,
    /// The simulated disk fails a write (`EIO` / `ENOSPC`, part of it landed).
    DiskWrite,
    /// The simulated disk fails an fsync.
    DiskSync,
    /// The simulated disk fails a read.
    DiskRead,
    /// A secondary node beyond the first crashes (or closes), and later restarts; the
    /// nodes downstream of it lose their connection.
    NodeCrash,
    /// A secondary stops reading for a while (it is not served) while the primary commits.
    SlowReader,
    /// The primary fails over to a node holding an earlier checkpoint of its history.
    Failover,
}

impl Fault {
    /// How many kinds there are.
    pub const COUNT: usize = 18;

    pub const ALL: [Fault; Fault::COUNT] = [
        Fault::Disconnect,
        Fault::Reject,
        Fault::Outage,
        Fault::Cut,
        Fault::Stall,
        Fault::Corrupt,
        Fault::Truncate,
        Fault::Duplicate,
        Fault::BadChecksum,
        Fault::Close,
        Fault::Crash,
        Fault::PrimaryRestart,
        Fault::DiskWrite,
        Fault::DiskSync,
        Fault::DiskRead,
        Fault::NodeCrash,
        Fault::SlowReader,
        Fault::Failover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Disconnect => "disconnect",
            Fault::Reject => "reject",
            Fault::Outage => "outage",
            Fault::Cut => "cut",
            Fault::Stall => "stall",
            Fault::Corrupt => "corrupt",
            Fault::Truncate => "truncate",
            Fault::Duplicate => "duplicate",
            Fault::BadChecksum => "bad-checksum",
            Fault::Close => "close",
            Fault::Crash => "crash",
            Fault::PrimaryRestart => "primary-restart",
            Fault::DiskWrite => "disk-write",
            Fault::DiskSync => "disk-sync",
            Fault::DiskRead => "disk-read",
            Fault::NodeCrash => "node-crash",
            Fault::SlowReader => "slow-reader",
            Fault::Failover => "failover",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).expect("listed")
    }

    /// The weight of this kind in a run without `--swarm`.
    fn default_weight(self) -> u32 {
        match self {
            Fault::Cut | Fault::Stall => 6,
            Fault::Disconnect | Fault::Reject => 4,
            Fault::Corrupt => 3,
            Fault::Truncate | Fault::Duplicate | Fault::BadChecksum => 2,
            Fault::Outage | Fault::Close | Fault::Crash | Fault::PrimaryRestart => 1,
            // Only runs on a simulated disk (a fifth of them) draw these.
            Fault::DiskWrite | Fault::DiskSync | Fault::DiskRead => 3,
            // Only runs with several secondaries (a quarter of them) draw this one.
            Fault::NodeCrash => 3,
            Fault::SlowReader => 1,
            // Only after a checkpoint; a failover leaves a secondary ahead of it refused
            // for the rest of the run, so it is rare.
            Fault::Failover => 1,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a run injects faults.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Weight of each kind (0: never), in [`Fault::ALL`] order.
    pub weights: [u32; Fault::COUNT],
    /// Chance that a step is a fault rather than progress.
    pub rate: f64,
}

impl Profile {
    /// Every kind, at the default weights.
    pub fn standard() -> Profile {
        Profile {
            weights: Fault::ALL.map(Fault::default_weight),
            rate: 0.2,
        }
    }

    /// A swarm profile: each kind enabled with even odds (at least one), a weight from 1
    /// to 10 each, and a fault rate from 5 % to 45 %.
    pub fn swarm(rng: &mut ChaCha8Rng) -> Profile {
        let mut weights = [0u32; Fault::COUNT];
        for w in weights.iter_mut() {
            if rng.gen_bool(0.5) {
                *w = rng.gen_range(1..=10);
            }
        }
        if weights.iter().all(|w| *w == 0) {
            weights[rng.gen_range(0..weights.len())] = rng.gen_range(1..=10);
        }
        Profile {
            weights,
            rate: rng.gen_range(0.05..0.45),
        }
    }

    /// Draws a kind among those `applicable`, by weight; `None` if none is both enabled
    /// and applicable.
    pub fn draw(&self, rng: &mut ChaCha8Rng, applicable: impl Fn(Fault) -> bool) -> Option<Fault> {
        let total: u32 = Fault::ALL
            .iter()
            .filter(|f| applicable(**f))
            .map(|f| self.weights[f.index()])
            .sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.gen_range(0..total);
        for f in Fault::ALL {
            if !applicable(f) {
                continue;
            }
            let w = self.weights[f.index()];
            if pick < w {
                return Some(f);
            }
            pick -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::rng::run_rng;

    #[test]
    fn names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
            assert_eq!(Fault::ALL[f.index()], f);
        }
    }

    #[test]
    fn draws_only_enabled_applicable_kinds() {
        let mut rng = run_rng(3, 0);
        let mut p = Profile::standard();
        p.weights = [0; Fault::COUNT];
        p.weights[Fault::Crash.index()] = 5;
        p.weights[Fault::Reject.index()] = 5;
        for _ in 0..50 {
            assert_eq!(p.draw(&mut rng, |f| f != Fault::Reject), Some(Fault::Crash));
        }
        assert_eq!(p.draw(&mut rng, |f| f == Fault::Cut), None);
        for i in 0..20 {
            let s = Profile::swarm(&mut run_rng(9, i));
            assert!(s.weights.iter().any(|w| *w > 0));
            assert!((0.05..0.45).contains(&s.rate));
        }
    }
}
