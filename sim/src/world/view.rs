//! What the oracles may read of a world: a narrow, read-only view, so that they judge the
//! run without reaching into its state (and a change of the world's insides does not
//! change what they check).

use zrs::secondary::Timer;

use zrs::storage::ReadStorage;

use super::{Event, SimSecondary, World};
use crate::workload::Transaction;

/// The primary's memory per connection, as the memory oracle judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimaryMemory {
    /// The most bytes handed to the network at once for one connection.
    pub largest_transmit: usize,
    pub send_window: usize,
    /// The largest transaction, in bytes as the primary sends it.
    pub largest_transaction: usize,
}

/// A read-only view of a world for the oracles.
#[derive(Clone, Copy)]
pub struct OracleView<'a> {
    world: &'a World,
}

impl World {
    /// What the world noticed since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The oracles' view of the world.
    pub fn view(&self) -> OracleView<'_> {
        OracleView { world: self }
    }
}

impl<'a> OracleView<'a> {
    /// Every secondary opened, by generation; the last is the current one.
    pub fn secondaries(&self) -> &'a [SimSecondary] {
        &self.world.secondaries
    }

    /// Whether generation `g` crashed.
    pub fn is_dead(&self, g: usize) -> bool {
        self.world.is_dead(g)
    }

    /// Calls pending for `timer`, scheduled by generation `g`.
    pub fn pending_of(&self, g: usize, timer: Timer) -> usize {
        self.world.pending_of(g, timer)
    }

    /// Connection attempts waiting for the primary's answer.
    pub fn attempts(&self) -> usize {
        self.world.network.clients.len()
    }

    /// The generation that owns the waiting attempt, if any.
    pub fn attempt_owner(&self) -> Option<usize> {
        self.world.attempt_owner()
    }

    /// Whether generation `g` has an attempt waiting.
    pub fn owns_attempt(&self, g: usize) -> bool {
        self.world.owns_attempt(g)
    }

    /// How many waiting attempts have an owner.
    pub fn owned_attempts(&self) -> usize {
        self.world.owned_attempts()
    }

    /// Whether the current secondary is connected.
    pub fn connected(&self) -> bool {
        self.world.connected()
    }

    /// How many times a secondary's storage was reopened.
    pub fn reopens(&self) -> u64 {
        self.world.reopens
    }

    /// The primary's committed history, oldest first.
    pub fn history(&self) -> &'a [Transaction] {
        self.world.primary.transactions()
    }

    /// The primary node's storage (its blob files included).
    pub fn primary_storage(&self) -> &'a dyn ReadStorage {
        self.world.node.storage()
    }

    pub fn primary_memory(&self) -> PrimaryMemory {
        let node = &self.world.node;
        PrimaryMemory {
            largest_transmit: node.largest_transmit(),
            send_window: node.send_window(),
            largest_transaction: node.largest_transaction.max(self.world.largest_transaction),
        }
    }

    /// The most bytes each secondary serving downstream handed the network at once for
    /// one connection, by node number (1: the first secondary).
    pub fn chained_transmits(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(1, self.world.s1_host.largest_transmit)];
        out.extend(
            self.world
                .nodes
                .iter()
                .map(|n| (n.number, n.largest_transmit())),
        );
        out
    }

    /// The secondary nodes beyond the first.
    pub fn nodes(&self) -> &'a [super::Node] {
        &self.world.nodes
    }

    /// Calls pending for `timer`, scheduled by node `s<number>` (2 on).
    pub fn node_pending(&self, number: usize, timer: Timer) -> usize {
        self.world.node_pending(number, timer)
    }

    /// The histories of the primaries failed over from, oldest first.
    pub fn abandoned(&self) -> impl Iterator<Item = &'a [Transaction]> {
        self.world.abandoned.iter().map(|d| d.transactions())
    }

    /// The primary's last transaction.
    pub fn primary_last(&self) -> zrs::Tid {
        self.world.primary.last_tid()
    }

    /// Whether the first secondary's last transaction is one the primary's history lacks
    /// (after a failover to a node that lagged behind it).
    pub fn other_history(&self, last: zrs::Tid) -> bool {
        self.world.other_history(last)
    }
}
