//! The topology: secondary nodes beyond the first, each replicating from the primary node
//! or from another secondary — a chain, as `zrs secondary --listen` runs one.
//!
//! The first secondary (`s1`, opened by `open`) is the one every scripted step addresses;
//! `node s2 from s1 …` adds a node, and `s2: serve` addresses one. A node is a real
//! [`Secondary`] over its own storage; a secondary that serves downstream hosts the real
//! [`zrs::primary::Primary`] over that same storage (a [`Host`], opened at its first
//! connection), told of every transaction its secondary commits — as the TCP driver does.
//! What an upstream transmits crosses a [`Link`] of the node's connection, drained as the
//! node reads (`serve`): an upstream never hands the network more than its send window
//! per connection, however long a node does not read.
//!
//! A node's process lives and dies with its host: a crash drops both (the connections of
//! its downstream nodes are lost, as their sockets would be), a close closes both (the
//! host sends what is committed, then closes), a restart opens both again over the
//! storage. Connections to a node's host take client ports from the same sequence as
//! every other connection.

use zrs::primary::ConnectionId;
use zrs::secondary::{Action, LossReason, Secondary, Timer};
use zrs::storage::ReadStorage;
use zrs::Tid;

use crate::coverage::{Input, Pair, State};
use crate::disk::CrashReport;
use crate::link::Link;
use crate::network::peer;
use crate::primary_node::{Host, Served};
use crate::storage::SimStorage;

use super::{SimSecondary, World, WorldError};

/// Where a node replicates from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// The primary node.
    Primary,
    /// The secondary `s<n>` (1: the first, opened by `open`; 2 on: the nodes, in order).
    Secondary(usize),
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Primary => f.write_str("primary"),
            Upstream::Secondary(n) => write!(f, "s{n}"),
        }
    }
}

/// A node's connection to its upstream.
#[derive(Debug)]
struct NodeConnection {
    port: u32,
    link: Link,
}

impl NodeConnection {
    fn id(&self) -> ConnectionId {
        ConnectionId(u64::from(self.port))
    }
}

/// A secondary node beyond the first; see the module docs.
pub struct Node {
    /// Its number: `s<number>`.
    pub number: usize,
    pub upstream: Upstream,
    secondary: SimSecondary,
    dead: bool,
    /// The client port of the attempt waiting for the upstream's answer.
    attempt: Option<u32>,
    connection: Option<NodeConnection>,
    /// The primary serving downstream nodes from this node's storage.
    host: Host,
    /// How many times its storage was reopened (its content is then checked again).
    pub reopens: u64,
}

/// The read handle a node's host serves: the storage handle itself, so that it reads
/// the storage as it is now (a reopened file included).
fn served(storage: &SimStorage) -> Served {
    Box::new(storage.clone())
}

/// Where `s<number>` listens for downstream nodes (printed in its primary's `Opening …`).
pub fn listen_address(number: usize) -> zrs::secondary::Address {
    zrs::secondary::Address::tcp("", 8000 + number as u16)
}

/// The host `s<number>` serves downstream with, in a fresh node process.
fn new_host(number: usize) -> Host {
    Host::new(listen_address(number))
}

impl Node {
    /// The node's secondary (the current process).
    pub fn secondary(&self) -> &SimSecondary {
        &self.secondary
    }

    /// Whether its process crashed (and was not restarted).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether its process runs (neither crashed nor closed).
    pub fn running(&self) -> bool {
        !self.dead && !self.secondary.is_closed()
    }

    /// Whether it is connected to its upstream.
    pub fn connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Whether an attempt waits for the upstream's answer.
    pub fn attempting(&self) -> bool {
        self.attempt.is_some()
    }

    /// The most bytes its host handed the network at once for one connection.
    pub fn largest_transmit(&self) -> usize {
        self.host.largest_transmit
    }

    /// The last transaction its storage holds.
    pub fn last_transaction(&self) -> Tid {
        self.secondary.storage().last_transaction()
    }
}

impl World {
    /// `node s<n> from UPSTREAM …`: adds a node (its number must be the next one) running
    /// `secondary`, replicating from `upstream`.
    pub fn add_node(
        &mut self,
        number: usize,
        upstream: Upstream,
        secondary: SimSecondary,
    ) -> Result<(), WorldError> {
        let next = self.nodes.len() + 2;
        if number != next {
            return Err(WorldError::Topology(format!(
                "the next node is s{next}, not s{number}"
            )));
        }
        if let Upstream::Secondary(n) = upstream {
            if n == 0 || n >= number || (n == 1 && self.secondaries.is_empty()) {
                return Err(WorldError::Topology(format!(
                    "no node s{n} to replicate from (open s1 and declare nodes in order)"
                )));
            }
        }
        let host = new_host(number);
        self.nodes.push(Node {
            number,
            upstream,
            secondary,
            dead: false,
            attempt: None,
            connection: None,
            host,
            reopens: 0,
        });
        self.dispatch_node(number - 2);
        Ok(())
    }

    /// The nodes beyond the first secondary, in order (`s2`, `s3`, …).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The index in `nodes` of `s<number>` (2 on).
    pub(super) fn node_index(&self, number: usize) -> Result<usize, WorldError> {
        number
            .checked_sub(2)
            .filter(|i| *i < self.nodes.len())
            .ok_or(WorldError::NoNode(number))
    }

    /// Whether `upstream`'s process runs (can accept a connection).
    pub fn upstream_running(&self, upstream: Upstream) -> bool {
        match upstream {
            Upstream::Primary => true,
            Upstream::Secondary(1) => self.running(),
            Upstream::Secondary(n) => self.nodes.get(n - 2).is_some_and(Node::running),
        }
    }

    /// The last transaction `upstream` holds.
    pub fn upstream_last(&self, upstream: Upstream) -> Tid {
        match upstream {
            Upstream::Primary => self.primary.last_tid(),
            Upstream::Secondary(1) => self
                .secondary()
                .map_or(Tid::ZERO, |s| s.storage().last_transaction()),
            Upstream::Secondary(n) => self
                .nodes
                .get(n - 2)
                .map_or(Tid::ZERO, Node::last_transaction),
        }
    }

    /// Runs `f` on `upstream`'s host, with what opens its primary.
    fn with_host<R>(
        &mut self,
        upstream: Upstream,
        f: impl FnOnce(&mut Host, &dyn Fn() -> Served) -> R,
    ) -> Option<R> {
        match upstream {
            Upstream::Primary => {
                let (host, storage) = self.node.parts();
                Some(f(host, &|| storage.reader()))
            }
            Upstream::Secondary(1) => {
                let storage = self.secondaries.last()?.storage().clone();
                Some(f(&mut self.s1_host, &|| served(&storage)))
            }
            Upstream::Secondary(n) => {
                let node = self.nodes.get_mut(n - 2)?;
                let storage = node.secondary.storage().clone();
                Some(f(&mut node.host, &|| served(&storage)))
            }
        }
    }

    /// Performs every action node `i` queued.
    pub(super) fn dispatch_node(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].secondary.poll_action() {
            match action {
                Action::Connect(_) => {
                    let port = self.network.take_port();
                    self.nodes[i].attempt = Some(port);
                }
                Action::AbortConnect => self.nodes[i].attempt = None,
                Action::Transmit(bytes) => {
                    if let Some(id) = self.nodes[i].connection.as_ref().map(|c| c.id()) {
                        let up = self.nodes[i].upstream;
                        self.with_host(up, |h, open| h.data_received(id, &bytes, open));
                    }
                }
                Action::Disconnect => {
                    if let Some(c) = self.nodes[i].connection.take() {
                        let up = self.nodes[i].upstream;
                        self.with_host(up, |h, _| h.connection_lost(c.id(), &LossReason::Done));
                    }
                }
                Action::SetTimer { timer, delay } => {
                    let n = self.reactor.call_later(timer, delay);
                    self.node_owners.push((n, i));
                }
                Action::CancelTimer(timer) => {
                    self.reactor.cancel_owned(&mut self.node_owners, &i, timer);
                }
                Action::Invalidate { .. } => {
                    self.replicated += 1;
                    self.nodes[i].host.committed();
                }
            }
        }
    }

    /// Fires a delayed call if a node owns it; false if none does.
    pub(super) fn fire_node(&mut self, number: u64, timer: Timer) -> bool {
        let Some(at) = self.node_owners.iter().position(|(n, _)| *n == number) else {
            return false;
        };
        let (_, i) = self.node_owners.remove(at);
        self.observe_node(
            i,
            match timer {
                Timer::KeepAlive => Input::KeepAlive,
                Timer::Connect => Input::Reconnect,
            },
        );
        self.nodes[i].secondary.timeout(timer);
        self.dispatch_node(i);
        true
    }

    /// Notes that node `i`, in its present phase, is about to be fed `input` (the coverage
    /// counts every secondary's phases × inputs, the first's and the nodes' alike).
    fn observe_node(&mut self, i: usize, input: Input) {
        let node = &self.nodes[i];
        let state = State::of((!node.dead).then(|| node.secondary.phase()));
        self.coverage.note(Pair::Input(state, input));
    }

    /// Cancels every call node `i` scheduled.
    fn cancel_node_calls(&mut self, i: usize) {
        let owned: Vec<u64> = self
            .node_owners
            .iter()
            .filter(|(_, o)| *o == i)
            .map(|(n, _)| *n)
            .collect();
        for n in owned {
            self.reactor.cancel_number(n);
        }
        self.node_owners.retain(|(_, o)| *o != i);
    }

    /// Calls pending for `timer`, scheduled by node `s<number>`.
    pub fn node_pending(&self, number: usize, timer: Timer) -> usize {
        let Some(i) = number.checked_sub(2) else {
            return 0;
        };
        self.reactor
            .later()
            .iter()
            .filter(|c| {
                c.timer == timer
                    && self
                        .node_owners
                        .iter()
                        .any(|(n, o)| *n == c.number && *o == i)
            })
            .count()
    }

    /// `upstream`'s process is gone: the connections of the nodes it served are lost.
    pub(super) fn downstream_lost(&mut self, upstream: Upstream) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].upstream == upstream && self.nodes[i].connection.is_some() {
                self.nodes[i].connection = None;
                self.observe_node(i, Input::Lost);
                self.nodes[i].secondary.connection_lost(&LossReason::Lost);
                self.dispatch_node(i);
            }
        }
    }

    /// The first secondary's host: crashed (with the connections of its downstream nodes)
    /// when its process ends.
    pub(super) fn s1_process_ended(&mut self) {
        if self.s1_host.running() {
            self.s1_host.crash();
        }
        self.downstream_lost(Upstream::Secondary(1));
    }

    /// The first secondary's host closes with it.
    pub(super) fn s1_closed(&mut self) {
        if self.s1_host.running() {
            self.with_host(Upstream::Secondary(1), |h, open| h.close(open));
        }
    }

    /// The first secondary committed: its host follows.
    pub(super) fn s1_committed(&mut self) {
        self.s1_host.committed();
    }

    /// `s<n>: accept`: the upstream accepts the node's attempt.
    pub fn node_accept(&mut self, number: usize) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        let up = self.nodes[i].upstream;
        if self.nodes[i].attempt.is_none() {
            return Err(WorldError::NoAttempt);
        }
        if !self.upstream_running(up) {
            return Err(WorldError::Topology(format!(
                "{up} is not running: it can only refuse (reject)"
            )));
        }
        let port = self.nodes[i].attempt.take().expect("checked");
        let connection = NodeConnection {
            port,
            link: Link::new(port),
        };
        let id = connection.id();
        self.nodes[i].connection = Some(connection);
        self.with_host(up, |h, open| h.connected(id, &peer(port), open));
        self.observe_node(i, Input::Accept);
        self.nodes[i].secondary.connected(&peer(port));
        self.dispatch_node(i);
        Ok(())
    }

    /// `s<n>: reject`: the node's attempt is refused.
    pub fn node_reject(&mut self, number: usize) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        self.nodes[i].attempt.take().ok_or(WorldError::NoAttempt)?;
        self.observe_node(i, Input::Reject);
        self.nodes[i]
            .secondary
            .connection_failed(&LossReason::Other("rejected".into()));
        self.dispatch_node(i);
        Ok(())
    }

    /// `s<n>: serve [N]`: the node reads up to N bytes (all there is, if `None`) of what its
    /// upstream sends it; the upstream transmits more as the link drains. Returns how many
    /// bytes it read.
    pub fn node_serve(&mut self, number: usize, limit: Option<usize>) -> Result<usize, WorldError> {
        let i = self.node_index(number)?;
        let Some(id) = self.nodes[i].connection.as_ref().map(|c| c.id()) else {
            return Err(WorldError::NotConnected);
        };
        let up = self.nodes[i].upstream;
        let mut link = self.nodes[i]
            .connection
            .as_mut()
            .map(|c| std::mem::replace(&mut c.link, Link::new(c.port)))
            .expect("connected");
        let bytes = self
            .with_host(up, |h, _| link.take(limit, &mut || h.pull(id)))
            .unwrap_or_default();
        if let Some(c) = self.nodes[i].connection.as_mut() {
            c.link = link;
        }
        if !bytes.is_empty() {
            self.observe_node(i, Input::Data);
            self.nodes[i].secondary.data_received(&bytes);
            self.dispatch_node(i);
        }
        let closed = self
            .with_host(up, |h, _| h.take_disconnect(id))
            .unwrap_or(false);
        if closed && self.nodes[i].connection.as_ref().map(|c| c.id()) == Some(id) {
            // What the upstream sent before closing arrives first.
            let mut rest = Vec::new();
            if let Some(c) = self.nodes[i].connection.as_mut() {
                let mut link = std::mem::replace(&mut c.link, Link::new(c.port));
                rest = self
                    .with_host(up, |h, _| link.take(None, &mut || h.pull(id)))
                    .unwrap_or_default();
            }
            if !rest.is_empty() {
                self.observe_node(i, Input::Data);
                self.nodes[i].secondary.data_received(&rest);
                self.dispatch_node(i);
            }
            if self.nodes[i].connection.as_ref().map(|c| c.id()) == Some(id) {
                self.nodes[i].connection = None;
                self.observe_node(i, Input::Lost);
                self.nodes[i].secondary.connection_lost(&LossReason::Done);
                self.dispatch_node(i);
            }
        }
        Ok(bytes.len())
    }

    /// `s<n>: fail` / `s<n>: drop`: the node's connection ends from the network's side.
    pub fn node_lose(&mut self, number: usize, reason: LossReason) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        let c = self.nodes[i]
            .connection
            .take()
            .ok_or(WorldError::NotConnected)?;
        let up = self.nodes[i].upstream;
        self.with_host(up, |h, _| h.connection_lost(c.id(), &reason));
        self.observe_node(i, Input::Lost);
        self.nodes[i].secondary.connection_lost(&reason);
        self.dispatch_node(i);
        Ok(())
    }

    /// `s<n>: close`: the node's secondary and its host close.
    pub fn node_close(&mut self, number: usize) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        self.observe_node(i, Input::Close);
        if let Err(e) = self.nodes[i].secondary.close() {
            zrs::log::critical(zrs::secondary::LOGGER, &format!("closing the storage: {e}"));
        }
        self.dispatch_node(i);
        if self.nodes[i].host.running() {
            self.with_host(Upstream::Secondary(number), |h, open| h.close(open));
        }
        Ok(())
    }

    /// `s<n>: crash`: the node's process crashes with its host.
    pub fn node_crash(
        &mut self,
        number: usize,
        keep: usize,
        tear: usize,
    ) -> Result<Option<CrashReport>, WorldError> {
        let i = self.node_index(number)?;
        if self.nodes[i].dead {
            return Err(WorldError::NotRunning);
        }
        self.observe_node(i, Input::Crash);
        self.nodes[i].dead = true;
        self.end_node_process(i, number);
        Ok(self.nodes[i].secondary.storage().crash(keep, tear))
    }

    /// Node `i` (`s<number>`)'s process is gone: its calls, its connection attempt, its
    /// connection (lost, for its upstream host), what it served downstream.
    fn end_node_process(&mut self, i: usize, number: usize) {
        self.cancel_node_calls(i);
        self.nodes[i].attempt = None;
        if let Some(c) = self.nodes[i].connection.take() {
            let up = self.nodes[i].upstream;
            self.with_host(up, |h, _| h.connection_lost(c.id(), &LossReason::Lost));
        }
        self.nodes[i].host.crash();
        self.downstream_lost(Upstream::Secondary(number));
    }

    /// `s<n>: restart`: a new process over the node's storage, configured as before.
    pub fn node_restart(&mut self, number: usize) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        if self.nodes[i].running() {
            return Err(WorldError::Running);
        }
        // The old process (closed, or crashed) is gone with everything it scheduled.
        self.end_node_process(i, number);
        let storage = self.nodes[i].secondary.storage().clone();
        storage.reopen().map_err(WorldError::Reopen)?;
        let config = self.nodes[i].secondary.config().clone();
        let secondary = Secondary::new(storage, config);
        let node = &mut self.nodes[i];
        node.reopens += 1;
        node.host = new_host(number);
        node.secondary = secondary;
        node.dead = false;
        self.dispatch_node(i);
        Ok(())
    }

    /// Whether node `i` is where the heal phase wants it: caught up with its upstream, or
    /// holding a history the primary does not (refused: it cannot catch up), or stopped.
    pub(super) fn node_settled(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        if !node.running() || !self.upstream_running(node.upstream) {
            // Nothing to catch up from (the campaign restarts stopped nodes before healing).
            return true;
        }
        let last = node.last_transaction();
        last == self.upstream_last(node.upstream) || self.other_history(last)
    }

    /// Whether a storage whose last transaction is `last` holds a history the primary does
    /// not (after a failover to a node that lagged behind it).
    pub fn other_history(&self, last: Tid) -> bool {
        !self.abandoned.is_empty()
            && last != Tid::ZERO
            && self
                .primary
                .transactions()
                .binary_search_by(|t| t.tid.cmp(&last))
                .is_err()
    }

    /// One round of the heal phase for the nodes: accepts (or, upstream down, refuses) an
    /// attempt, or serves a connection. Returns whether anything happened.
    pub(super) fn heal_nodes_round(&mut self) -> Result<bool, WorldError> {
        for i in 0..self.nodes.len() {
            let number = i + 2;
            if self.nodes[i].attempt.is_some() {
                if self.upstream_running(self.nodes[i].upstream) {
                    self.node_accept(number)?;
                } else {
                    self.node_reject(number)?;
                }
                return Ok(true);
            }
            if self.nodes[i].connection.is_some() {
                let damaged = self.nodes[i]
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.link.damaged);
                if damaged {
                    self.node_lose(number, LossReason::Lost)?;
                    return Ok(true);
                }
                if self.node_serve(number, None)? > 0 {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Node `s<number>`'s link faults (as the first secondary's `corrupt`, `truncate`, …).
    pub fn node_damage(
        &mut self,
        number: usize,
        f: impl FnOnce(&mut Link, crate::link::Source) -> bool,
    ) -> Result<(), WorldError> {
        let i = self.node_index(number)?;
        let up = self.nodes[i].upstream;
        let Some(c) = self.nodes[i].connection.as_mut() else {
            return Err(WorldError::NotConnected);
        };
        let id = c.id();
        let mut link = std::mem::replace(&mut c.link, Link::new(c.port));
        let done = self
            .with_host(up, |h, _| f(&mut link, &mut || h.pull(id)))
            .unwrap_or(false);
        if let Some(c) = self.nodes[i].connection.as_mut() {
            c.link = link;
        }
        if done {
            Ok(())
        } else {
            Err(WorldError::NothingToDamage)
        }
    }
}
