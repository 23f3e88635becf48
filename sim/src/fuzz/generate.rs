//! A run's steps, drawn from its random stream while they execute.
//!
//! The generator looks at the world before each step so the step it draws makes sense
//! there (an `accept` when an attempt waits, a stream fault while connected), which keeps
//! runs short and busy. It only ever produces scenario [`Step`]s, executed by the same
//! [`Session`](crate::runner::Session) that runs scenario files: the failing run's step
//! list, printed, is a scenario that replays it.
//!
//! A run is: a header (`oracles on`, `primary blobs on` in runs with blobs, `open` with
//! drawn options, `chunking random`, `primary clock virtual`, and in a quarter of the runs
//! one or two more secondary nodes, each replicating from the primary or from a secondary
//! before it: two or three secondaries, chains up to three deep), `steps` body steps — the
//! primary's workload, progress (accept, serve, time passing) and faults, each addressed to
//! the first secondary or to a node — and `heal`.
//!
//! A run with blobs (40 %) has a primary with a blob directory and a secondary that keeps
//! blobs (on the simulated disk in 40 % of them, its blob directory on that disk too, else
//! in memory with its blob directory on a simulated disk of its own), and commits blobs of every size the protocol treats apart: empty,
//! one byte, exactly one 64 KiB block, one block and a byte, others under 20 KB, and now
//! and then (1 in 80 blob commits) 2–2.5 MB (blob bytes are most of such a run's cost).
//! Mid-blob, faults come three steps in four, a third of them the secondary's own (close,
//! crash, disk): see the coverage. Every node of a run with blobs keeps blobs too (a
//! primary with blobs refuses `zrs2.0`).

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use zrs::secondary::{Address, Phase};
use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp};

use crate::network::Chunking;
use crate::scenario::{Open, Step, StorageKind};
use crate::workload::record::Value as Item;
use crate::workload::{Change, Meta};
use crate::world::{listen_address, Node, Upstream, World};

use super::rng::run_rng;
use super::swarm::{Fault, Profile};

/// What shapes every run of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Body steps per run.
    pub steps: usize,
    /// Draw each run's fault kinds and rates.
    pub swarm: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header(usize),
    Body,
    Heal,
    Done,
}

/// Draws a run's steps.
pub struct Generator {
    rng: ChaCha8Rng,
    profile: Profile,
    header: Vec<Step>,
    stage: Stage,
    remaining: usize,
    next_key: u64,
    keep_alive: Duration,
    reconnect: Duration,
    disk: bool,
    /// The run commits blobs.
    blobs: bool,
    /// Restarts drawn in the heal phase.
    heal_restarts: u32,
    /// Node restarts drawn in the heal phase.
    node_restarts: u32,
    /// Whether a `primary checkpoint` was drawn (a failover needs one).
    checkpointed: bool,
    /// Body steps each secondary (`s1` first) is not read for: a slow reader.
    muted: Vec<u32>,
}

/// Text with non-ASCII characters, for transaction metadata.
const TEXTS: [&str; 6] = [
    "b\u{f6}b",
    "caf\u{e9} cr\u{e8}me",
    "\u{20ac}uro",
    "\u{65e5}\u{672c}\u{8a9e}",
    "\u{1f600} ok",
    "plain",
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Generator {
    /// The generator of run `index` of campaign `seed`.
    pub fn new(seed: u64, index: u64, settings: Settings) -> Generator {
        let mut rng = run_rng(seed, index);
        let profile = if settings.swarm {
            Profile::swarm(&mut rng)
        } else {
            Profile::standard()
        };
        let blobs = rng.gen_bool(0.4);
        // Blob runs are on the simulated disk more often: disk faults under blob writes.
        let disk = rng.gen_bool(if blobs { 0.4 } else { 0.2 });
        let storage = if disk {
            StorageKind::Disk {
                batch: rng.gen_bool(0.5).then(|| rng.gen_range(2..=8)),
            }
        } else {
            StorageKind::Memory
        };
        let keep_alive = if rng.gen_bool(0.5) {
            Duration::ZERO
        } else {
            Duration::from_secs([1, 5, 10, 30][rng.gen_range(0..4)])
        };
        let reconnect = Duration::from_secs([1, 5, 10, 60][rng.gen_range(0..4)]);
        let open = Open {
            blobs,
            name: "Data.fs".into(),
            address: Some(Address::tcp("", 8000)),
            keep_alive,
            reconnect,
            check_checksums: true,
            storage,
            frame_limit: None,
        };
        let mut header = vec![Step::Oracles];
        if blobs {
            header.push(Step::PrimaryBlobs);
        }
        header.extend([
            Step::Open(open),
            Step::Chunking(Chunking::Random(rng.gen())),
            Step::VirtualClock,
        ]);
        let extra = match rng.gen_range(0..8) {
            0 => 2,
            1 => 1,
            _ => 0,
        };
        for number in 2..2 + extra {
            let upstream = if rng.gen_bool(0.4) {
                Upstream::Primary
            } else {
                Upstream::Secondary(rng.gen_range(1..number))
            };
            header.push(Step::Node {
                number,
                upstream,
                open: Open {
                    blobs,
                    name: "Data.fs".into(),
                    address: Some(match upstream {
                        Upstream::Primary => Address::tcp("", 8000),
                        Upstream::Secondary(n) => listen_address(n),
                    }),
                    keep_alive: Duration::ZERO,
                    reconnect: Duration::from_secs([1, 5, 10][rng.gen_range(0..3)]),
                    check_checksums: true,
                    storage: StorageKind::Memory,
                    frame_limit: None,
                },
            });
        }
        Generator {
            rng,
            profile,
            header,
            stage: Stage::Header(0),
            remaining: settings.steps,
            next_key: 0,
            keep_alive,
            reconnect,
            disk,
            blobs,
            heal_restarts: 0,
            node_restarts: 0,
            checkpointed: false,
            muted: vec![0; 1 + extra],
        }
    }

    /// The next step, with the fault it injects (if it is one); `None` when the run is over.
    pub fn next_step(&mut self, world: &World) -> Option<(Step, Option<Fault>)> {
        match self.stage {
            Stage::Header(i) => {
                let step = self.header[i].clone();
                self.stage = if i + 1 < self.header.len() {
                    Stage::Header(i + 1)
                } else {
                    Stage::Body
                };
                Some((step, None))
            }
            Stage::Body if self.remaining > 0 => {
                self.remaining -= 1;
                Some(self.body(world))
            }
            Stage::Body | Stage::Heal => {
                if let Some(node) = world.nodes().iter().find(|n| !n.running()) {
                    if self.node_restarts < 6 {
                        self.stage = Stage::Heal;
                        self.node_restarts += 1;
                        return Some((at(node.number, Step::Restart), None));
                    }
                }
                if !world.running() {
                    self.stage = Stage::Heal;
                    // A disk still failing (a read fault fails the reopening scan) is healed
                    // first; a restart that fails even so is not retried for ever.
                    let failing = world
                        .secondary()
                        .ok()
                        .and_then(|s| s.storage().disk())
                        .is_some_and(|d| d.failing());
                    if failing {
                        return Some((Step::Disk(None), None));
                    }
                    if self.heal_restarts < 3 {
                        self.heal_restarts += 1;
                        return Some((Step::Restart, None));
                    }
                }
                self.stage = Stage::Done;
                Some((Step::Heal(None), None))
            }
            Stage::Done => None,
        }
    }

    fn body(&mut self, world: &World) -> (Step, Option<Fault>) {
        for m in self.muted.iter_mut() {
            *m = m.saturating_sub(1);
        }
        if !world.running() {
            // Closed or crashed: let some time pass (the old one's reconnect may fire), or
            // start again.
            if self.rng.gen_bool(0.3) {
                let by = self
                    .rng
                    .gen_range(1..=self.reconnect.as_millis() as u64 * 2);
                return (Step::Advance(ms(by)), None);
            }
            return (Step::Restart, None);
        }
        // Mid-blob, faults come three steps in four: that is where a blob's atomicity is
        // tested.
        let mid_blob = world
            .secondary()
            .is_ok_and(|s| s.storage().receiving_blob());
        let rate = if mid_blob {
            self.profile.rate.max(0.75)
        } else {
            self.profile.rate
        };
        if self.rng.gen_bool(rate) {
            let connected = world.connected();
            let attempt = world.attempt_owner().is_some();
            let disk = self.disk;
            let checkpointed = self.checkpointed;
            let nodes = world.nodes().iter().any(Node::running);
            // Mid-blob, a third of the faults are the secondary's own (a close, a crash, a
            // disk fault), where the profile has them: a blob's atomicity across a crash.
            if mid_blob && self.rng.gen_bool(1.0 / 3.0) {
                let own = self.profile.draw(&mut self.rng, |f| match f {
                    Fault::Close | Fault::Crash => true,
                    Fault::DiskWrite | Fault::DiskSync | Fault::DiskRead => disk,
                    _ => false,
                });
                if let Some(fault) = own {
                    return (self.fault(fault, world), Some(fault));
                }
            }
            let fault = self.profile.draw(&mut self.rng, |f| match f {
                Fault::Reject => attempt,
                Fault::Outage | Fault::Close | Fault::Crash | Fault::SlowReader => true,
                Fault::DiskWrite | Fault::DiskSync | Fault::DiskRead => disk,
                Fault::NodeCrash => nodes,
                Fault::Failover => checkpointed,
                _ => connected,
            });
            if let Some(fault) = fault {
                return (self.fault(fault, world), Some(fault));
            }
        }
        if !world.nodes().is_empty() && self.rng.gen_bool(0.3) {
            return (self.node_step(world), None);
        }
        if self.rng.gen_bool(0.3) {
            return (self.workload(world), None);
        }
        (self.progress(world), None)
    }

    /// A step that moves replication along.
    fn progress(&mut self, world: &World) -> Step {
        if world.attempt_owner().is_some() {
            return Step::Accept;
        }
        match world.phase() {
            Some(Phase::Connected) if self.muted[0] > 0 => {
                // A slow reader: time passes, nothing is read.
                Step::Advance(ms(self.rng.gen_range(1..=2000)))
            }
            // With blobs, more partial deliveries: they stop mid-blob.
            Some(Phase::Connected) => match self.rng.gen_range(0..20) {
                0..=7 if self.blobs => Step::Serve(None),
                0..=11 if !self.blobs => Step::Serve(None),
                0..=16 => Step::Serve(Some(self.log_uniform(17))),
                _ => Step::Advance(ms(self.rng.gen_range(1..=2000))),
            },
            _ => {
                let now = world.now();
                match world.next_due() {
                    Some(due) if due > now => Step::Advance(due - now),
                    Some(_) => Step::Advance(ms(1)),
                    None => Step::Advance(ms(self.rng.gen_range(1..=5000))),
                }
            }
        }
    }

    /// A step of a node beyond the first: what moves its replication along.
    fn node_step(&mut self, world: &World) -> Step {
        let nodes = world.nodes();
        let node = &nodes[self.rng.gen_range(0..nodes.len())];
        let number = node.number;
        if !node.running() {
            if self.rng.gen_bool(0.3) {
                return Step::Advance(ms(self.rng.gen_range(1..=5000)));
            }
            return at(number, Step::Restart);
        }
        if node.attempting() {
            return at(
                number,
                if world.upstream_running(node.upstream) && self.rng.gen_bool(0.9) {
                    Step::Accept
                } else {
                    Step::Reject
                },
            );
        }
        if node.connected() {
            if self.muted[number - 1] > 0 {
                return Step::Advance(ms(self.rng.gen_range(1..=2000)));
            }
            return match self.rng.gen_range(0..10) {
                0..=6 => at(number, Step::Serve(None)),
                _ => at(number, Step::Serve(Some(self.log_uniform(17)))),
            };
        }
        let now = world.now();
        match world.next_due() {
            Some(due) if due > now => Step::Advance(due - now),
            _ => Step::Advance(ms(self.rng.gen_range(1..=5000))),
        }
    }

    /// A number from 1 to 2^bits, evenly spread over magnitudes.
    fn log_uniform(&mut self, bits: u32) -> usize {
        let top = 1usize << self.rng.gen_range(0..bits);
        top + self.rng.gen_range(0..top)
    }

    fn fault(&mut self, fault: Fault, world: &World) -> Step {
        match fault {
            Fault::NodeCrash => {
                let running: Vec<usize> = world
                    .nodes()
                    .iter()
                    .filter(|n| n.running())
                    .map(|n| n.number)
                    .collect();
                let number = running[self.rng.gen_range(0..running.len())];
                return at(
                    number,
                    if self.rng.gen_bool(0.3) {
                        Step::Close
                    } else {
                        Step::Crash { keep: 0, tear: 0 }
                    },
                );
            }
            Fault::SlowReader => {
                // One secondary is not read for a while; the primary commits meanwhile.
                let reader = self.rng.gen_range(0..self.muted.len());
                self.muted[reader] = self.rng.gen_range(10..=60);
                return self.workload(world);
            }
            Fault::Failover => return Step::PrimaryFailover,
            _ => {}
        }
        let rng = &mut self.rng;
        match fault {
            Fault::Disconnect => {
                if rng.gen_bool(0.5) {
                    Step::Fail
                } else {
                    Step::Drop
                }
            }
            Fault::Reject => Step::Reject,
            Fault::Outage => {
                let periods = rng.gen_range(2..=6);
                Step::Outage(self.reconnect * periods + ms(rng.gen_range(0..1000)))
            }
            Fault::Cut => Step::Serve(Some(self.log_uniform(16))),
            Fault::Stall => {
                let max = if self.keep_alive.is_zero() {
                    30_000
                } else {
                    self.keep_alive.as_millis() as u64 * 3
                };
                Step::Advance(ms(rng.gen_range(1..=max)))
            }
            Fault::Corrupt => {
                // Mostly within the next few messages, sometimes far ahead.
                let bits = if rng.gen_bool(0.7) { 11 } else { 18 };
                let offset = self.log_uniform(bits) - 1;
                let mask = 1u8 << self.rng.gen_range(0..8);
                Step::Corrupt { offset, mask }
            }
            Fault::Truncate => Step::Truncate(rng.gen_range(1..=8)),
            Fault::Duplicate => Step::Duplicate,
            Fault::BadChecksum => Step::BadChecksum,
            Fault::Close => Step::Close,
            Fault::Crash if self.disk => Step::Crash {
                keep: rng.gen_range(0..=3),
                tear: if rng.gen_bool(0.5) {
                    0
                } else {
                    rng.gen_range(1..=4096)
                },
            },
            Fault::Crash => Step::Crash { keep: 0, tear: 0 },
            Fault::PrimaryRestart => Step::PrimaryRestart,
            Fault::DiskWrite => self.disk_fault(DiskOp::Write),
            Fault::DiskSync => self.disk_fault(DiskOp::Sync),
            Fault::DiskRead => self.disk_fault(DiskOp::Read),
            Fault::NodeCrash | Fault::SlowReader | Fault::Failover => unreachable!("above"),
        }
    }

    /// A disk fault: soon or a few operations on, either error, a write landing part of its
    /// bytes, now and then one that lasts until healed.
    fn disk_fault(&mut self, op: DiskOp) -> Step {
        let rng = &mut self.rng;
        Step::Disk(Some(DiskFault {
            op,
            after: if rng.gen_bool(0.5) {
                0
            } else {
                rng.gen_range(1..=6)
            },
            error: if rng.gen_bool(0.5) {
                DiskError::Io
            } else {
                DiskError::NoSpace
            },
            partial: if op == DiskOp::Write && rng.gen_bool(0.7) {
                rng.gen_range(1..=4096)
            } else {
                0
            },
            sticky: rng.gen_bool(0.2),
        }))
    }

    /// A blob's size: the sizes the protocol treats apart, most often.
    fn blob_size(&mut self) -> usize {
        match self.rng.gen_range(0..40) {
            0..=5 => 0,
            6..=11 => 1,
            12..=17 => 65_536,
            18..=23 => 65_537,
            24 if self.rng.gen_bool(0.5) => self.rng.gen_range(2_000_000..=2_500_000),
            _ => self.rng.gen_range(2..20_000),
        }
    }

    fn new_key(&mut self) -> String {
        self.next_key += 1;
        format!("k{}", self.next_key)
    }

    /// A commit, undo or delete on the primary.
    fn workload(&mut self, world: &World) -> Step {
        if self.rng.gen_range(0..60) == 0 {
            // What a standby that stops replicating here holds (a failover goes back to it).
            self.checkpointed = true;
            return Step::PrimaryCheckpoint;
        }
        let all: Vec<String> = world
            .workload()
            .items(&[])
            .map(|items| {
                items
                    .iter()
                    .filter(|(_, v)| matches!(v, Item::Ref(_)))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        // `b…` mappings hold a big value: left alone but for deletes.
        let keys: Vec<String> = all
            .iter()
            .filter(|k| !k.starts_with('b'))
            .cloned()
            .collect();
        // Per 200: 8 % undo, 10 % delete, 3 % hundreds of records, 1.5 % a big record,
        // 34 % one tiny record, 20 % a new mapping, the rest a few changes at once.
        let roll = self.rng.gen_range(0..200);
        if roll < 16 {
            let n = self.rng.gen_range(1..=3);
            if world.workload().can_undo_back(n) {
                return Step::Undo(n);
            }
        }
        let existing = |g: &mut Generator| -> Option<String> {
            (!keys.is_empty()).then(|| keys[g.rng.gen_range(0..keys.len())].clone())
        };
        let mut changes = Vec::new();
        if self.blobs && self.rng.gen_bool(0.5) {
            // A blob, new or a new revision, in a mapping (new or not).
            let k = match existing(self) {
                Some(k) => k,
                None => {
                    let k = self.new_key();
                    changes.push(add(vec![], k.clone()));
                    k
                }
            };
            let key = ["f", "g", "h"][self.rng.gen_range(0..3)];
            let len = self.blob_size();
            changes.push(Change::SetBlob {
                parent: vec![k],
                key: key.into(),
                len,
                seed: 0,
                literal: None,
            });
            return commit(changes, Meta::default());
        }
        match roll {
            16..=35 if !all.is_empty() => changes.push(Change::Remove {
                parent: vec![],
                key: all[self.rng.gen_range(0..all.len())].clone(),
            }),
            16..=35 => changes.push(add(vec![], self.new_key())),
            36..=41 => {
                // Hundreds of records in one transaction.
                let k = self.new_key();
                changes.push(add(vec![], k.clone()));
                changes.push(Change::AddMappings {
                    parent: vec![k],
                    prefix: "c".into(),
                    count: self.rng.gen_range(100..=300),
                });
            }
            42..=44 => {
                // A record of several hundred KiB, in a mapping of its own: a mapping is
                // stored whole at every change, so tiny changes elsewhere stay tiny.
                self.next_key += 1;
                let k = format!("b{}", self.next_key);
                changes.push(add(vec![], k.clone()));
                changes.push(set(k, "big", self.rng.gen_range(200_000..=350_000)));
            }
            45..=112 => {
                // One tiny record.
                match existing(self) {
                    Some(k) => changes.push(set(k, "v", self.rng.gen_range(1..=32))),
                    None => changes.push(add(vec![], self.new_key())),
                }
            }
            113..=152 => changes.push(add(vec![], self.new_key())),
            _ => {
                for _ in 0..self.rng.gen_range(2..=5) {
                    match existing(self) {
                        Some(k) if self.rng.gen_bool(0.6) => {
                            let len = self.rng.gen_range(1..=2000);
                            changes.push(set(k, "w", len))
                        }
                        _ => changes.push(add(vec![], self.new_key())),
                    }
                }
            }
        }
        let meta = if self.rng.gen_bool(0.3) {
            let text =
                |g: &mut Generator| TEXTS[g.rng.gen_range(0..TEXTS.len())].as_bytes().to_vec();
            Meta {
                user: text(self),
                description: text(self),
                extension: if self.rng.gen_bool(0.5) {
                    vec![(
                        "note".into(),
                        TEXTS[self.rng.gen_range(0..TEXTS.len())].into(),
                    )]
                } else {
                    Vec::new()
                },
            }
        } else {
            Meta::default()
        };
        commit(changes, meta)
    }
}

/// `step` addressed to node `s<number>`.
fn at(number: usize, step: Step) -> Step {
    Step::At {
        number,
        step: Box::new(step),
    }
}

fn add(parent: Vec<String>, key: String) -> Change {
    Change::AddMapping { parent, key }
}

fn set(parent: String, key: &str, len: usize) -> Change {
    Change::SetBytes {
        parent: vec![parent],
        key: key.into(),
        len,
        seed: 0,
    }
}

/// A commit step, its payload seeds numbered by position as `primary commit` parses them,
/// so that the step reads back from its text unchanged.
pub fn commit(mut changes: Vec<Change>, meta: Meta) -> Step {
    renumber(&mut changes);
    Step::Commit { changes, meta }
}

/// Numbers payload seeds by position (1, 2, …), as the scenario parser does.
pub fn renumber(changes: &mut [Change]) {
    for (i, c) in changes.iter_mut().enumerate() {
        if let Change::SetBytes { seed, .. } | Change::SetBlob { seed, .. } = c {
            *seed = i as u64 + 1;
        }
    }
}
