//! The oracles: what must hold after every step of a run, whatever the faults.
//!
//! - [`Oracle::Prefix`] (safety): the secondary's storage is a prefix of the primary's
//!   committed history, transaction for transaction and record for record — tids, status,
//!   user, description, the extension as ZODB stores it, oids, data, backpointers.
//!   Checked incrementally: only transactions added since the last check are compared
//!   (all of them again after the storage was reopened).
//! - [`Oracle::Partial`]: no transaction is left in progress on the storage while the
//!   secondary is not connected (a partial transaction is aborted on disconnect).
//! - [`Oracle::StartTid`]: the start tid of every handshake is the storage's last
//!   committed tid.
//! - [`Oracle::Connection`]: the timers and attempts fit the secondary's state — while
//!   disconnected and not closed exactly one reconnect is pending and no keep-alive; while
//!   connecting, its one attempt and nothing else; while connected, no reconnect and the
//!   keep-alive if configured. After close (zc.zrs does not cancel a pending reconnect):
//!   no keep-alive, at most the one reconnect already pending, and no attempt survives it.
//! - [`Oracle::Protocol`]: the handshake names `zrs2.0` (`zrs2.1` when the secondary keeps
//!   blobs); after it only keep-alives.
//! - [`Oracle::Reader`], [`Oracle::Durable`]: the replica's bytes as Python ZODB would read
//!   them, and what its disk made durable (see [`super::reader`]).
//! - [`Oracle::Blobs`]: each replica's blob directory, read from the directory itself,
//!   holds exactly the primary's blob files of the transactions the replica holds — same
//!   path, the bytes the workload wrote, empty blobs and undo copies included; nothing of
//!   a transaction it does not hold, nothing else under a final name, and no temporary
//!   file while no transaction is in progress. Checked whenever the storage's state
//!   changed (its last transaction, a reopen, the phase); each file's bytes once per
//!   opening. (The primary node's own files are what it serves: a wrong one shows here.)
//! - [`Oracle::Liveness`]: after `heal`, the secondary caught up within the bound.
//! - [`Oracle::Memory`]: bounded memory per connection — the real primary never hands
//!   the network more than its send window plus one transaction at once (it stops
//!   reading once past the window, after a whole transaction), and reads on only as the
//!   link drains (flow control).
//! - With several secondaries (`node …`), each node's storage is held to the same
//!   `prefix` and `partial` oracles, its timers to `connection`, its catching up at heal
//!   to `liveness`, and every secondary serving downstream to `memory`. After a failover
//!   to a node that lagged behind, a storage may be a prefix of the old primary's history
//!   instead (it is refused, and keeps its data); a mix of two histories is a violation.
//! - [`Oracle::Panic`]: nothing panicked (the campaign catches panics per run).
//! - [`Oracle::Determinism`]: a run executed twice leaves the same trace (checked by the
//!   campaign with `--check-determinism`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use zrs::pickle::dumps_extension;
use zrs::secondary::{Phase, Timer};
use zrs::storage::{ReadStorage, TransactionRecord};
use zrs::{Oid, Tid};

use crate::workload::{BlobContent, Transaction};
use crate::world::{Event, OracleView, World};

use super::reader::ReaderCheck;

/// Which oracle a violation is of (a shrunk scenario must fail the same one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Oracle {
    Prefix,
    Partial,
    StartTid,
    Connection,
    Protocol,
    Liveness,
    Memory,
    Panic,
    Determinism,
    Reader,
    Durable,
    Blobs,
}

impl Oracle {
    pub const ALL: [Oracle; 12] = [
        Oracle::Prefix,
        Oracle::Partial,
        Oracle::StartTid,
        Oracle::Connection,
        Oracle::Protocol,
        Oracle::Liveness,
        Oracle::Memory,
        Oracle::Panic,
        Oracle::Determinism,
        Oracle::Reader,
        Oracle::Durable,
        Oracle::Blobs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Oracle::Prefix => "prefix",
            Oracle::Partial => "partial",
            Oracle::StartTid => "start-tid",
            Oracle::Connection => "connection",
            Oracle::Protocol => "protocol",
            Oracle::Liveness => "liveness",
            Oracle::Memory => "memory",
            Oracle::Panic => "panic",
            Oracle::Determinism => "determinism",
            Oracle::Reader => "reader",
            Oracle::Durable => "durable",
            Oracle::Blobs => "blobs",
        }
    }

    pub fn from_name(name: &str) -> Option<Oracle> {
        Oracle::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An oracle that failed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub oracle: Oracle,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oracle {} violated: {}", self.oracle, self.message)
    }
}

fn violation(oracle: Oracle, message: impl Into<String>) -> Violation {
    Violation {
        oracle,
        message: message.into(),
    }
}

/// How much of one storage has been verified, against which history.
#[derive(Default)]
struct Follower {
    /// Transactions of the storage verified so far, and the last one's tid.
    verified: usize,
    verified_tid: Tid,
    /// The storage's reopen count and the world's failover count when last checked.
    reopens: u64,
    failovers: usize,
    /// The history the storage is a prefix of: 0 the primary's, k the k-th newest
    /// abandoned by a failover.
    following: usize,
}

impl Follower {
    /// Verifies the storage is a prefix of one of `histories` (the primary's first, then
    /// those of primaries failed over from, newest first): transactions from two
    /// histories mixed in one storage is a silent divergence, reported.
    fn verify(
        &mut self,
        s: &dyn ReadStorage,
        histories: &[&[Transaction]],
    ) -> Result<(), Violation> {
        let following = self.following.min(histories.len() - 1);
        let Err(v) = self.verify_against(s, histories[following]) else {
            return Ok(());
        };
        for (k, history) in histories.iter().enumerate() {
            if k == following {
                continue;
            }
            let mut fresh = Follower {
                following: k,
                reopens: self.reopens,
                failovers: self.failovers,
                ..Follower::default()
            };
            if fresh.verify_against(s, history).is_ok() {
                *self = fresh;
                return Ok(());
            }
        }
        Err(v)
    }

    fn verify_against(
        &mut self,
        s: &dyn ReadStorage,
        history: &[Transaction],
    ) -> Result<(), Violation> {
        let last = s.last_transaction();
        if last == self.verified_tid && self.verified > 0 {
            return Ok(());
        }
        if last < self.verified_tid {
            // A crash took transactions back: what is left is checked again from the start.
            self.verified = 0;
            self.verified_tid = Tid::ZERO;
        }
        let mut i = self.verified;
        let start = (i > 0).then_some(self.verified_tid);
        for item in s.iterator(start, None) {
            let txn = item.map_err(|e| {
                violation(Oracle::Prefix, format!("the storage cannot be read: {e}"))
            })?;
            if i > 0 && txn.meta.tid <= self.verified_tid {
                continue;
            }
            let Some(expected) = history.get(i) else {
                return Err(violation(
                    Oracle::Prefix,
                    format!(
                        "the storage has transaction {:?} (number {}), the primary committed only {}",
                        txn.meta.tid,
                        i + 1,
                        history.len()
                    ),
                ));
            };
            compare(&txn, expected).map_err(|what| {
                violation(
                    Oracle::Prefix,
                    format!("transaction {} ({:?}): {what}", i + 1, expected.tid),
                )
            })?;
            i += 1;
        }
        self.verified = i;
        self.verified_tid = last;
        Ok(())
    }

    /// Starts over after the storage was reopened or the primary failed over.
    fn reset_if(&mut self, reopens: u64, failovers: usize) {
        if reopens != self.reopens || failovers != self.failovers {
            *self = Follower {
                reopens,
                failovers,
                ..Follower::default()
            };
        }
    }
}

/// Checks the oracles; remembers how much of each storage it has verified.
#[derive(Default)]
pub struct Checker {
    /// The first secondary's storage.
    first: Follower,
    reader: ReaderCheck,
    /// The other nodes' storages, by node (`s2` first).
    nodes: Vec<Follower>,
    /// The blob oracle's memory, by secondary (1: the first).
    blobs: BTreeMap<usize, BlobCheck>,
}

/// What the blob oracle remembers of one secondary's blob directory.
#[derive(Default)]
struct BlobCheck {
    /// The storage's state when its directory was last read.
    checked: Option<BlobState>,
    /// Blob files whose bytes were compared since the storage was last opened.
    verified: BTreeSet<(Oid, Tid)>,
}

/// What, changed, makes a blob directory worth reading again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlobState {
    /// The generation and how many times its storage was reopened.
    opened: (usize, u64),
    last: Tid,
    in_transaction: bool,
    phase: Phase,
}

/// The blob oracle on one secondary: see the module docs. The replica follows the history
/// (the primary's, or one a failover abandoned) that holds its last transaction.
fn check_blob_dir(
    secondary: &crate::world::SimSecondary,
    dead: bool,
    opened: (usize, u64),
    histories: &[&[Transaction]],
    check: &mut BlobCheck,
) -> Result<(), Violation> {
    let storage = secondary.storage();
    let Some(blobs) = storage.blob_dir() else {
        return Ok(());
    };
    // Crashed, failed or closed: the directory is as the process left it, and the next
    // opening recovers it (removing what a transaction not kept installed).
    if dead || secondary.is_closed() || storage.failed() {
        return Ok(());
    }
    let Some(last) = storage.with(|s| s.map(|s| s.last_transaction())) else {
        return Ok(());
    };
    let state = BlobState {
        opened,
        last,
        in_transaction: storage.in_transaction(),
        phase: secondary.phase(),
    };
    if check.checked == Some(state) {
        return Ok(());
    }
    if check.checked.is_none_or(|s| s.opened != opened) {
        check.verified.clear();
    }
    check.checked = Some(state);
    let fail = |what: String| Err(violation(Oracle::Blobs, what));
    let listing = match blobs.inspect(crate::blobfiles::list) {
        Ok(l) => l,
        Err(e) => return fail(format!("the blob directory cannot be read: {e}")),
    };
    if let Some(stray) = listing.strays.first() {
        return fail(format!(
            "{} in the blob directory is no blob file",
            stray.display()
        ));
    }
    if !state.in_transaction {
        if let Some((t, _)) = listing.temporary.iter().find(|(n, _)| n.ends_with(".tmp")) {
            return fail(format!(
                "temporary blob file tmp/{t} left while no transaction is in progress"
            ));
        }
    }
    let history = histories
        .iter()
        .find(|h| last == Tid::ZERO || h.iter().any(|t| t.tid == last))
        .copied()
        .unwrap_or_default();
    let mut expected: BTreeMap<(Oid, Tid), &BlobContent> = BTreeMap::new();
    for t in history.iter().take_while(|t| t.tid <= last) {
        for r in &t.records {
            if let Some(b) = &r.blob {
                expected.insert((r.oid, t.tid), b.content());
            }
        }
    }
    let files: BTreeMap<(Oid, Tid), &crate::blobfiles::BlobFile> =
        listing.files.iter().map(|f| ((f.oid, f.tid), f)).collect();
    for file in &listing.files {
        if !expected.contains_key(&(file.oid, file.tid)) {
            return fail(format!(
                "{} ({:?} at {:?}): {}",
                file.path.display(),
                file.oid,
                file.tid,
                if file.tid > last {
                    "a blob file of a transaction the replica does not hold"
                } else {
                    "a blob file the primary does not have"
                }
            ));
        }
    }
    for (&(oid, tid), content) in &expected {
        let Some(file) = files.get(&(oid, tid)) else {
            return fail(format!(
                "the replica holds transaction {tid:?} but not its blob file of {oid:?}"
            ));
        };
        if file.len != content.len as u64 {
            return fail(format!(
                "{}: {} bytes, the primary's {}",
                file.path.display(),
                file.len,
                content.len
            ));
        }
        if check.verified.contains(&(oid, tid)) {
            continue;
        }
        match blobs.inspect(|fs, root| fs.read(&root.join(&file.path))) {
            Ok(got) if got == content.bytes() => {}
            Ok(_) => {
                return fail(format!(
                    "{}: the bytes differ from the primary's",
                    file.path.display()
                ))
            }
            Err(e) => return fail(format!("reading {}: {e}", file.path.display())),
        }
        check.verified.insert((oid, tid));
    }
    Ok(())
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Checks every oracle against the world as it is now.
    pub fn check(&mut self, world: &mut World) -> Result<(), Violation> {
        for event in world.take_events() {
            check_event(event)?;
        }
        let view = world.view();
        check_connections(&view)?;
        check_node_connections(&view)?;
        check_memory(&view)?;
        self.check_storage(&view)?;
        self.check_nodes(&view)?;
        self.check_blobs(&view)
    }
    /// The blob oracle, for every secondary that keeps blobs (the first, then each node).
    fn check_blobs(&mut self, world: &OracleView) -> Result<(), Violation> {
        let histories = histories(world);
        if let Some(g) = world.secondaries().len().checked_sub(1) {
            let secondary = &world.secondaries()[g];
            let state = self.blobs.entry(1).or_default();
            let key = (g, world.reopens());
            check_blob_dir(secondary, world.is_dead(g), key, &histories, state)?;
        }
        for node in world.nodes() {
            let state = self.blobs.entry(node.number).or_default();
            let key = (0, node.reopens);
            check_blob_dir(node.secondary(), node.is_dead(), key, &histories, state).map_err(
                |v| Violation {
                    oracle: v.oracle,
                    message: format!("s{}: {}", node.number, v.message),
                },
            )?;
        }
        Ok(())
    }

    fn check_storage(&mut self, world: &OracleView) -> Result<(), Violation> {
        let Some(g) = world.secondaries().len().checked_sub(1) else {
            return Ok(());
        };
        if world.is_dead(g) {
            return Ok(());
        }
        let secondary = &world.secondaries()[g];
        let storage = secondary.storage();
        if secondary.phase() != Phase::Connected && storage.in_transaction() {
            return Err(violation(
                Oracle::Partial,
                format!(
                    "a transaction is in progress on the storage while the secondary is {:?}",
                    secondary.phase()
                ),
            ));
        }
        if secondary.is_closed() {
            return Ok(());
        }
        // A reopened file must be a clean prefix: check it all again.
        let histories = histories(world);
        let was = (self.first.failovers, self.first.following);
        self.first.reset_if(world.reopens(), histories.len());
        if storage.with(|s| s.is_none()) {
            // Crashed, not reopened yet: nothing reads it (the reopening cuts a torn tail).
            return Ok(());
        }
        let followed = |f: &Follower| histories[f.following.min(histories.len() - 1)];
        let reader_for = |first: &Follower, reader: &mut ReaderCheck| {
            // The reader's-eye check builds its reference file from one history: another
            // history (a failover, or the storage found following another) starts it over.
            if (first.failovers, first.following) != was {
                *reader = ReaderCheck::default();
            }
        };
        if storage.failed() {
            reader_for(&self.first, &mut self.reader);
            // A storage its disk failed refuses reads until reopened: only the disk is
            // judged (the durable image), by the reader's-eye check.
            return self
                .reader
                .check(storage, followed(&self.first), self.first.verified);
        }
        let first = &mut self.first;
        let mut check = || {
            storage.with(|s| match s {
                Some(s) => first.verify(s, &histories),
                None => Ok(()),
            })
        };
        // The oracle's reads neither consume nor meet the disk's faults.
        match storage.disk() {
            Some(disk) => disk.without_faults(check)?,
            None => check()?,
        }
        reader_for(&self.first, &mut self.reader);
        self.reader
            .check(storage, followed(&self.first), self.first.verified)
    }

    /// Every other node: no partial transaction while not connected, and its storage a
    /// prefix of a primary's history, byte for byte.
    fn check_nodes(&mut self, world: &OracleView) -> Result<(), Violation> {
        let histories = histories(world);
        for node in world.nodes() {
            let i = node.number - 2;
            if self.nodes.len() <= i {
                self.nodes.resize_with(i + 1, Follower::default);
            }
            if node.is_dead() {
                continue;
            }
            let secondary = node.secondary();
            let storage = secondary.storage();
            if secondary.phase() != Phase::Connected && storage.in_transaction() {
                return Err(violation(
                    Oracle::Partial,
                    format!(
                        "s{}: a transaction is in progress on the storage while the secondary is {:?}",
                        node.number,
                        secondary.phase()
                    ),
                ));
            }
            if secondary.is_closed() || storage.failed() {
                continue;
            }
            let follower = &mut self.nodes[i];
            follower.reset_if(node.reopens, histories.len());
            let mut check = || {
                storage.with(|s| match s {
                    Some(s) => follower.verify(s, &histories),
                    None => Ok(()),
                })
            };
            let result = match storage.disk() {
                Some(disk) => disk.without_faults(check),
                None => check(),
            };
            result.map_err(|v| Violation {
                oracle: v.oracle,
                message: format!("s{}: {}", node.number, v.message),
            })?;
        }
        Ok(())
    }
}

/// The primary's history, then those of the primaries failed over from, newest first.
fn histories<'a>(world: &OracleView<'a>) -> Vec<&'a [Transaction]> {
    let mut all = vec![world.history()];
    let mut abandoned: Vec<&[Transaction]> = world.abandoned().collect();
    abandoned.reverse();
    all.extend(abandoned);
    all
}

fn check_event(event: Event) -> Result<(), Violation> {
    match event {
        Event::Handshake {
            protocol,
            start,
            committed,
            blobs,
        } => {
            let expected = if blobs {
                zrs::protocol::ZRS_2_1
            } else {
                zrs::protocol::ZRS_2_0
            };
            if protocol != expected {
                return Err(violation(
                    Oracle::Protocol,
                    format!("handshake names protocol {}", zrs::repr::py2_bytes_repr(&protocol)),
                ));
            }
            if start != committed {
                return Err(violation(
                    Oracle::StartTid,
                    format!("the secondary asked to start after {start:?}, but its last committed transaction is {committed:?}"),
                ));
            }
            Ok(())
        }
        Event::BadHandshake(what) => Err(violation(
            Oracle::Protocol,
            format!("the secondary's handshake is refused: {what}"),
        )),
        Event::Unexpected(m) => Err(violation(
            Oracle::Protocol,
            format!(
                "the secondary sent {} where only keep-alives are due",
                zrs::repr::py2_bytes_repr(&m[..m.len().min(64)])
            ),
        )),
        Event::NodeNotCaughtUp {
            bound,
            node,
            upstream,
            upstream_last,
            last,
        } => Err(violation(
            Oracle::Liveness,
            format!(
                "s{node} not caught up {} s after the faults stopped: {upstream} is at {upstream_last:?}, s{node} at {last:?}",
                crate::scenario::step::seconds(bound)
            ),
        )),
        Event::NotCaughtUp {
            bound,
            primary,
            secondary,
        } => Err(violation(
            Oracle::Liveness,
            format!(
                "not caught up {} s after the faults stopped: the primary is at {primary:?}, the secondary at {secondary:?}",
                crate::scenario::step::seconds(bound)
            ),
        )),
    }
}

fn check_memory(world: &OracleView) -> Result<(), Violation> {
    let node = world.primary_memory();
    let bound = node.send_window + node.largest_transaction;
    if node.largest_transmit > bound {
        return Err(violation(
            Oracle::Memory,
            format!(
                "the primary handed the network {} bytes at once for one connection; more than its send window ({}) plus the largest transaction ({})",
                node.largest_transmit,
                node.send_window,
                node.largest_transaction
            ),
        ));
    }
    for (number, largest) in world.chained_transmits() {
        if largest > bound {
            return Err(violation(
                Oracle::Memory,
                format!(
                    "s{number}, serving downstream, handed the network {largest} bytes at once for one connection; more than its send window ({}) plus the largest transaction ({})",
                    node.send_window,
                    node.largest_transaction
                ),
            ));
        }
    }
    Ok(())
}

/// The connection oracle for the nodes beyond the first: timers and attempts fit the
/// node's phase, as for the first secondary.
fn check_node_connections(world: &OracleView) -> Result<(), Violation> {
    for node in world.nodes() {
        let keep_alive = world.node_pending(node.number, Timer::KeepAlive);
        let reconnect = world.node_pending(node.number, Timer::Connect);
        let fail = |what: String| {
            Err(violation(
                Oracle::Connection,
                format!("s{}: {what}", node.number),
            ))
        };
        if node.is_dead() {
            if keep_alive + reconnect > 0 || node.attempting() || node.connected() {
                return fail("a crashed node still has calls, an attempt or a connection".into());
            }
            continue;
        }
        let secondary = node.secondary();
        match secondary.phase() {
            Phase::Closed => {
                if keep_alive > 0 || reconnect > 1 || node.attempting() || node.connected() {
                    return fail(format!(
                        "closed with {keep_alive} keep-alive(s), {reconnect} reconnect(s), attempt {}, connected {}",
                        node.attempting(),
                        node.connected()
                    ));
                }
            }
            Phase::Idle => {
                if reconnect != 1 || keep_alive > 0 || node.attempting() || node.connected() {
                    return fail(format!(
                        "idle with {reconnect} reconnect(s), {keep_alive} keep-alive(s), attempt {}, connected {}",
                        node.attempting(),
                        node.connected()
                    ));
                }
            }
            Phase::Connecting => {
                if !node.attempting() || reconnect + keep_alive > 0 {
                    return fail(format!(
                        "connecting with attempt {}, {reconnect} reconnect(s), {keep_alive} keep-alive(s)",
                        node.attempting()
                    ));
                }
            }
            Phase::Connected => {
                let due = usize::from(!secondary.config().keep_alive_delay.is_zero());
                if !node.connected() || reconnect > 0 || keep_alive != due {
                    return fail(format!(
                        "connected with connection {}, {reconnect} reconnect(s), {keep_alive} keep-alive(s) ({due} due)",
                        node.connected()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_connections(world: &OracleView) -> Result<(), Violation> {
    let attempts = world.attempts();
    if attempts != world.owned_attempts() {
        return Err(violation(
            Oracle::Connection,
            format!(
                "{attempts} connection attempt(s) waiting, owned by {:?}",
                world.attempt_owner()
            ),
        ));
    }
    let last = world.secondaries().len().checked_sub(1);
    for (g, secondary) in world.secondaries().iter().enumerate() {
        let keep_alive = world.pending_of(g, Timer::KeepAlive);
        let reconnect = world.pending_of(g, Timer::Connect);
        let attempt = world.owns_attempt(g);
        let current = Some(g) == last;
        let fail = |what: String| {
            Err(violation(
                Oracle::Connection,
                format!(
                    "secondary {} ({:?}): {what}",
                    g + 1,
                    if world.is_dead(g) {
                        None
                    } else {
                        Some(secondary.phase())
                    }
                ),
            ))
        };
        if world.is_dead(g) {
            if keep_alive + reconnect > 0 || attempt {
                return fail("a crashed secondary still has calls or an attempt".into());
            }
            continue;
        }
        match secondary.phase() {
            Phase::Closed => {
                if keep_alive > 0 {
                    return fail(format!("{keep_alive} keep-alive(s) pending after close"));
                }
                if reconnect > 1 {
                    return fail(format!("{reconnect} reconnects pending after close"));
                }
                if attempt {
                    return fail("a connection attempt survives close".into());
                }
                if current && world.connected() {
                    return fail("still connected after close".into());
                }
            }
            Phase::Idle => {
                if secondary.config().address.is_some() && reconnect != 1 {
                    return fail(format!(
                        "disconnected with {reconnect} reconnects pending (one is due)"
                    ));
                }
                if keep_alive > 0 {
                    return fail(format!(
                        "disconnected with {keep_alive} keep-alive(s) pending"
                    ));
                }
                if attempt || (current && world.connected()) {
                    return fail("idle but holding an attempt or a connection".into());
                }
            }
            Phase::Connecting => {
                if !attempt {
                    return fail("connecting without an attempt".into());
                }
                if reconnect + keep_alive > 0 {
                    return fail(format!(
                        "connecting with {reconnect} reconnect(s) and {keep_alive} keep-alive(s) pending"
                    ));
                }
            }
            Phase::Connected => {
                if !current || !world.connected() {
                    return fail("connected without a connection".into());
                }
                if reconnect > 0 {
                    return fail(format!("connected with {reconnect} reconnect(s) pending"));
                }
                let due = usize::from(!secondary.config().keep_alive_delay.is_zero());
                if keep_alive != due {
                    return fail(format!(
                        "connected with {keep_alive} keep-alive(s) pending ({due} due)"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The first difference between a stored transaction and the primary's.
fn compare(got: &TransactionRecord, want: &Transaction) -> Result<(), String> {
    let meta = &got.meta;
    if meta.tid != want.tid {
        return Err(format!("tid {:?} in the storage", meta.tid));
    }
    if meta.status != want.status {
        return Err(format!(
            "status {:?}, not {:?}",
            meta.status as char, want.status as char
        ));
    }
    if meta.user != want.user {
        return Err(format!("user {}", zrs::repr::py2_bytes_repr(&meta.user)));
    }
    if meta.description != want.description {
        return Err(format!(
            "description {}",
            zrs::repr::py2_bytes_repr(&meta.description)
        ));
    }
    let extension = dumps_extension(&want.extension);
    if meta.extension != extension {
        return Err(format!(
            "extension {}, not {}",
            zrs::repr::py2_bytes_repr(&meta.extension),
            zrs::repr::py2_bytes_repr(&extension)
        ));
    }
    if got.records.len() != want.records.len() {
        return Err(format!(
            "{} records, not {}",
            got.records.len(),
            want.records.len()
        ));
    }
    for (j, (r, w)) in got.records.iter().zip(&want.records).enumerate() {
        if r.oid != w.oid || r.serial != want.tid {
            return Err(format!("record {j}: oid {:?} serial {:?}", r.oid, r.serial));
        }
        if r.data.as_deref() != w.data.as_deref() {
            return Err(format!(
                "record {j} ({:?}): data differs ({} bytes stored, {} committed)",
                r.oid,
                r.data.as_ref().map_or(0, |d| d.len()),
                w.data.as_ref().map_or(0, |d| d.len())
            ));
        }
        if r.data_txn != w.data_txn {
            return Err(format!(
                "record {j} ({:?}): backpointer to {:?}, not {:?}",
                r.oid, r.data_txn, w.data_txn
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primary_node::PrimaryNode;
    use crate::workload::{Change, Database, Meta};

    fn add(db: &mut Database, key: &str) {
        let change = Change::AddMapping {
            parent: vec![],
            key: key.into(),
        };
        db.commit(&[change], &Meta::default()).unwrap();
    }

    /// A storage holding a prefix of either history passes (the newer one first, then the
    /// one failed over from); one holding the old history's transaction followed by the
    /// new history's — a silent divergence — fails `prefix`.
    #[test]
    fn the_prefix_oracle_tells_a_prefix_of_an_old_history_from_a_mix() {
        let mut old = Database::new();
        add(&mut old, "a");
        let mut new = old.clone();
        add(&mut old, "b");
        new.raise_floor(old.last_tid());
        add(&mut new, "c");
        let (old_h, new_h) = (old.transactions(), new.transactions());
        let histories = [new_h, old_h];

        let mut ahead = PrimaryNode::default();
        for t in old_h {
            ahead.commit(t).unwrap();
        }
        let mut follower = Follower::default();
        assert_eq!(follower.verify(ahead.storage(), &histories), Ok(()));
        assert_eq!(follower.following, 1);

        let mut caught_up = PrimaryNode::default();
        for t in new_h {
            caught_up.commit(t).unwrap();
        }
        let mut follower = Follower::default();
        assert_eq!(follower.verify(caught_up.storage(), &histories), Ok(()));
        assert_eq!(follower.following, 0);

        // The old history, then the new one's next transaction.
        let mut mixed = PrimaryNode::default();
        for t in old_h.iter().chain(new_h.last()) {
            mixed.commit(t).unwrap();
        }
        let mut follower = Follower::default();
        let v = follower.verify(mixed.storage(), &histories).unwrap_err();
        assert_eq!(v.oracle, Oracle::Prefix, "{v}");
    }

    #[test]
    fn the_memory_oracle_fails_a_primary_that_hands_over_too_much() {
        let mut world = World::new();
        assert_eq!(check_memory(&world.view()), Ok(()));
        let node = world.primary_node();
        let bound = node.send_window() + node.largest_transaction;
        world.primary_node_mut().host.largest_transmit = bound;
        assert_eq!(check_memory(&world.view()), Ok(()));
        world.primary_node_mut().host.largest_transmit = bound + 1;
        assert_eq!(
            check_memory(&world.view()).unwrap_err().oracle,
            Oracle::Memory
        );
    }
}
