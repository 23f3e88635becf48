//! Coverage of the state space: which secondary phases met which inputs, and which fault
//! kinds were injected in which phase, and how often; with blobs, which sizes of blob files
//! the workload wrote (and undo copied), and which faults struck while the secondary was in
//! the middle of receiving a blob.
//!
//! The world notes the phase of the secondary an input is delivered to just before it is
//! delivered (`World::observe`, and `observe_node` for the other nodes: every secondary of
//! a run counts in the one table), from the simulator's side: the core only exposes its
//! phase. The fuzz executor notes the first secondary's phase when a fault is applied (the
//! faults are drawn against it). Counts are kept in
//! `BTreeMap`s, so the summary lists them in a fixed order, and they add up across shards.
//!
//! Some pairs cannot happen by construction; [`UNREACHABLE`] lists them with the reason,
//! so a summary shows them as such instead of as a blind spot.

use std::collections::BTreeMap;
use std::fmt;

use zrs::secondary::Phase;

use crate::fuzz::swarm::Fault;

/// The phase of the secondary an input or a fault met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connecting,
    Connected,
    Closed,
    /// Crashed (its process is gone), or none opened yet.
    Down,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Idle,
        State::Connecting,
        State::Connected,
        State::Closed,
        State::Down,
    ];

    pub fn of(phase: Option<Phase>) -> State {
        match phase {
            Some(Phase::Idle) => State::Idle,
            Some(Phase::Connecting) => State::Connecting,
            Some(Phase::Connected) => State::Connected,
            Some(Phase::Closed) => State::Closed,
            None => State::Down,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Closed => "closed",
            State::Down => "down",
        }
    }

    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What the world feeds a secondary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    /// `set_replication_address`.
    Address,
    /// The primary accepted its attempt (`connected`).
    Accept,
    /// The primary rejected its attempt (`connection_failed`).
    Reject,
    /// Bytes arrived (`data_received`).
    Data,
    /// The connection was lost (`connection_lost`).
    Lost,
    /// The keep-alive timer fired.
    KeepAlive,
    /// The reconnect timer fired.
    Reconnect,
    /// `close`.
    Close,
    /// Its process crashed.
    Crash,
}

impl Input {
    pub const ALL: [Input; 9] = [
        Input::Address,
        Input::Accept,
        Input::Reject,
        Input::Data,
        Input::Lost,
        Input::KeepAlive,
        Input::Reconnect,
        Input::Close,
        Input::Crash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Input::Address => "address",
            Input::Accept => "accept",
            Input::Reject => "reject",
            Input::Data => "data",
            Input::Lost => "lost",
            Input::KeepAlive => "keep-alive",
            Input::Reconnect => "reconnect",
            Input::Close => "close",
            Input::Crash => "crash",
        }
    }

    pub fn from_name(name: &str) -> Option<Input> {
        Input::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A blob file the workload wrote on the primary, by size (the block size is 64 KiB), or a
/// copy an undo made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKind {
    Empty,
    OneByte,
    /// Exactly one block.
    Block,
    /// One block and one byte.
    BlockAndByte,
    /// Any other size under 1 MB.
    Small,
    /// 1 MB or more.
    Large,
    UndoCopy,
}

impl BlobKind {
    pub const ALL: [BlobKind; 7] = [
        BlobKind::Empty,
        BlobKind::OneByte,
        BlobKind::Block,
        BlobKind::BlockAndByte,
        BlobKind::Small,
        BlobKind::Large,
        BlobKind::UndoCopy,
    ];

    /// The kind of a written blob of `len` bytes.
    pub fn of_len(len: usize) -> BlobKind {
        match len {
            0 => BlobKind::Empty,
            1 => BlobKind::OneByte,
            65_536 => BlobKind::Block,
            65_537 => BlobKind::BlockAndByte,
            n if n < 1_000_000 => BlobKind::Small,
            _ => BlobKind::Large,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Empty => "empty",
            BlobKind::OneByte => "one-byte",
            BlobKind::Block => "64KiB",
            BlobKind::BlockAndByte => "64KiB+1",
            BlobKind::Small => "small",
            BlobKind::Large => "several-MB",
            BlobKind::UndoCopy => "undo-copy",
        }
    }

    pub fn from_name(name: &str) -> Option<BlobKind> {
        BlobKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a fault that strikes mid-blob does to the blob on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobFault {
    /// The connection ends (disconnect, cut, outage, the primary's restart or failover).
    Cut,
    /// The stream is damaged (corrupt, truncate, duplicate, bad checksum).
    Damage,
    /// Nothing more arrives for a while (a stall, a slow reader).
    Stall,
    /// The secondary closes.
    Close,
    /// The secondary's process crashes.
    Crash,
    /// The simulated disk under the secondary's Data.fs fails.
    Disk,
}

impl BlobFault {
    pub const ALL: [BlobFault; 6] = [
        BlobFault::Cut,
        BlobFault::Damage,
        BlobFault::Stall,
        BlobFault::Close,
        BlobFault::Crash,
        BlobFault::Disk,
    ];

    /// The class of a fault kind, for the first secondary's blob on its way (`None`: a
    /// rejection cannot strike mid-blob, a node's crash strikes another node).
    pub fn of(fault: Fault) -> Option<BlobFault> {
        Some(match fault {
            Fault::Reject | Fault::NodeCrash => return None,
            Fault::Disconnect
            | Fault::Cut
            | Fault::Outage
            | Fault::PrimaryRestart
            | Fault::Failover => BlobFault::Cut,
            Fault::SlowReader => BlobFault::Stall,
            Fault::Corrupt | Fault::Truncate | Fault::Duplicate | Fault::BadChecksum => {
                BlobFault::Damage
            }
            Fault::Stall => BlobFault::Stall,
            Fault::Close => BlobFault::Close,
            Fault::Crash => BlobFault::Crash,
            Fault::DiskWrite | Fault::DiskSync | Fault::DiskRead => BlobFault::Disk,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            BlobFault::Cut => "cut",
            BlobFault::Damage => "damage",
            BlobFault::Stall => "stall",
            BlobFault::Close => "close",
            BlobFault::Crash => "crash",
            BlobFault::Disk => "disk",
        }
    }

    pub fn from_name(name: &str) -> Option<BlobFault> {
        BlobFault::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A pair a summary counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pair {
    /// A secondary in this state was fed this input.
    Input(State, Input),
    /// This fault was applied while the current secondary was in this state.
    Fault(Fault, State),
    /// The workload wrote a blob file of this kind on the primary.
    Blob(BlobKind),
    /// A fault of this class was applied while the current secondary was receiving a
    /// blob (after its `B`, before its last block).
    MidBlob(BlobFault),
}

impl Pair {
    /// Every pair, in summary order.
    pub fn all() -> Vec<Pair> {
        let inputs = State::ALL
            .into_iter()
            .flat_map(|s| Input::ALL.into_iter().map(move |i| Pair::Input(s, i)));
        let faults = Fault::ALL
            .into_iter()
            .flat_map(|f| State::ALL.into_iter().map(move |s| Pair::Fault(f, s)));
        let blobs = BlobKind::ALL.into_iter().map(Pair::Blob);
        let mid_blob = BlobFault::ALL.into_iter().map(Pair::MidBlob);
        inputs.chain(faults).chain(blobs).chain(mid_blob).collect()
    }

    /// Why this pair cannot happen, if it cannot.
    pub fn unreachable(self) -> Option<&'static str> {
        match self {
            Pair::Input(s, i) => UNREACHABLE_INPUTS
                .iter()
                .find(|(states, inputs, _)| states.contains(&s) && inputs.contains(&i))
                .map(|(_, _, why)| *why),
            Pair::Fault(f, s) => UNREACHABLE_FAULTS
                .iter()
                .find(|(faults, states, _)| faults.contains(&f) && states.contains(&s))
                .map(|(_, _, why)| *why),
            Pair::Blob(_) | Pair::MidBlob(_) => None,
        }
    }

    /// Reads `input STATE INPUT` / `fault FAULT STATE` / `blob written KIND` /
    /// `blob mid-blob FAULT` back.
    pub fn parse(kind: &str, a: &str, b: &str) -> Option<Pair> {
        match (kind, a) {
            ("input", _) => Some(Pair::Input(State::from_name(a)?, Input::from_name(b)?)),
            ("fault", _) => Some(Pair::Fault(Fault::from_name(a)?, State::from_name(b)?)),
            ("blob", "written") => Some(Pair::Blob(BlobKind::from_name(b)?)),
            ("blob", "mid-blob") => Some(Pair::MidBlob(BlobFault::from_name(b)?)),
            _ => None,
        }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pair::Input(s, i) => write!(f, "input {} {}", s.name(), i.name()),
            Pair::Fault(k, s) => write!(f, "fault {} {}", k.name(), s.name()),
            Pair::Blob(k) => write!(f, "blob written {}", k.name()),
            Pair::MidBlob(k) => write!(f, "blob mid-blob {}", k.name()),
        }
    }
}

use Input as I;
use State as S;

/// Phase × input pairs that cannot happen, and why (each row: these states × these inputs).
pub const UNREACHABLE_INPUTS: &[(&[State], &[Input], &str)] = &[
    (
        &State::ALL,
        &[I::Address],
        "generated runs give the address when the secondary opens, never by a later step",
    ),
    (
        &[S::Idle, S::Connected, S::Closed, S::Down],
        &[I::Accept, I::Reject],
        "an attempt waits only while its owner connects (closing or crashing aborts it)",
    ),
    (
        &[S::Idle, S::Connecting, S::Closed, S::Down],
        &[I::Data, I::Lost, I::KeepAlive],
        "only a connection carries data, is lost or keeps alive; losing, closing or crashing ends it and cancels the keep-alive",
    ),
    (
        &[S::Connecting, S::Connected],
        &[I::Reconnect],
        "the reconnect timer is set on going idle, and its firing is what starts connecting",
    ),
    (
        &[S::Down],
        &[I::Reconnect],
        "a crash cancels every call its generation scheduled",
    ),
    (
        &[S::Closed, S::Down],
        &[I::Close, I::Crash],
        "the generator closes or crashes only a running secondary (it restarts a stopped one)",
    ),
];

const STREAM_FAULTS: &[Fault] = &[
    Fault::Disconnect,
    Fault::Cut,
    Fault::Stall,
    Fault::Corrupt,
    Fault::Truncate,
    Fault::Duplicate,
    Fault::BadChecksum,
    Fault::PrimaryRestart,
];

/// Fault kind × phase pairs that cannot happen, and why (each row: these kinds × these
/// states).
pub const UNREACHABLE_FAULTS: &[(&[Fault], &[State], &str)] = &[
    (
        &Fault::ALL,
        &[S::Closed, S::Down],
        "the generator draws faults only while the secondary runs (it restarts a stopped one)",
    ),
    (
        STREAM_FAULTS,
        &[S::Idle, S::Connecting],
        "the generator draws connection faults only while connected",
    ),
    (
        &[Fault::Reject],
        &[S::Idle, S::Connected],
        "the generator draws a rejection only while an attempt waits (connecting)",
    ),
];

/// How often each pair was reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub counts: BTreeMap<Pair, u64>,
}

impl Coverage {
    pub fn note(&mut self, pair: Pair) {
        *self.counts.entry(pair).or_insert(0) += 1;
    }

    pub fn add(&mut self, other: &Coverage) {
        for (pair, n) in &other.counts {
            *self.counts.entry(*pair).or_insert(0) += n;
        }
    }

    pub fn count(&self, pair: Pair) -> u64 {
        self.counts.get(&pair).copied().unwrap_or(0)
    }

    /// Pairs never reached that are not marked unreachable.
    pub fn missed(&self) -> Vec<Pair> {
        Pair::all()
            .into_iter()
            .filter(|p| self.count(*p) == 0 && p.unreachable().is_none())
            .collect()
    }
}
