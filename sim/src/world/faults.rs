//! Faults and healing: the link's stream faults, the primary's crash, restart and failover
//! to a lagging node, outages, and the heal phase that checks the secondary catches up.

use crate::link::{Link, Source};
use crate::primary_node::PrimaryNode;
use std::time::Duration;
use zrs::primary::ConnectionId;
use zrs::secondary::LossReason;
use zrs::storage::ReadStorage;

use super::{Event, World, WorldError, MAX_ROUNDS};

impl World {
    /// Runs a fault on the current link.
    pub(super) fn damage(
        &mut self,
        f: impl FnOnce(&mut Link, Source) -> bool,
    ) -> Result<(), WorldError> {
        self.attach()?;
        let link = self.link.as_mut().expect("attached");
        let id = ConnectionId(u64::from(link.port));
        let node = &mut self.node;
        if f(link, &mut || node.pull(id)) {
            Ok(())
        } else {
            Err(WorldError::NothingToDamage)
        }
    }

    pub fn corrupt(&mut self, offset: usize, mask: u8) -> Result<(), WorldError> {
        self.damage(|l, s| l.corrupt(offset, mask, s))
    }

    pub fn truncate(&mut self, n: usize) -> Result<(), WorldError> {
        self.damage(|l, s| l.truncate(n, s))
    }

    pub fn duplicate(&mut self) -> Result<(), WorldError> {
        self.damage(|l, s| l.duplicate(s))
    }

    pub fn bad_checksum(&mut self) -> Result<(), WorldError> {
        self.damage(|l, s| l.bad_checksum(s))
    }

    /// Arms a fault on the current storage's simulated disk, or (`None`) heals it.
    pub fn disk(
        &mut self,
        fault: Option<zrs::storage::file::faulty::DiskFault>,
    ) -> Result<(), WorldError> {
        let disk = self
            .secondary()?
            .storage()
            .disk()
            .ok_or(WorldError::NoDisk)?;
        match fault {
            Some(f) => disk.arm(f),
            None => disk.heal(),
        }
        Ok(())
    }

    /// The primary restarts: its process (and the connection, if any) is lost; its
    /// storage is kept, and the next connection reaches a new process over it.
    pub fn primary_restart(&mut self) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        self.node.crash();
        self.downstream_lost(super::Upstream::Primary);
        self.end_connection(None);
        let generation = self.current()?;
        self.observe(generation, crate::coverage::Input::Lost);
        self.secondaries[generation].connection_lost(&LossReason::Lost);
        self.dispatch(generation);
        Ok(())
    }

    /// `primary failover`: the primary's process is lost with its connection (the
    /// secondary sees `ConnectionLost`), and a node holding the last checkpoint's history
    /// takes over at the same address; the workload goes on from that history.
    pub fn failover(&mut self) -> Result<(), WorldError> {
        let mut history = self.checkpoint.clone().ok_or(WorldError::NoCheckpoint)?;
        self.node.crash();
        self.downstream_lost(super::Upstream::Primary);
        if self.network.connection.is_some() {
            self.end_connection(None);
            let generation = self.current()?;
            self.observe(generation, crate::coverage::Input::Lost);
            self.secondaries[generation].connection_lost(&LossReason::Lost);
            self.dispatch(generation);
        }
        let mut node = match self.node.blob_dir() {
            // The node taking over has a blob directory of its own.
            Some(dir) => {
                let mut fresh = dir.as_os_str().to_owned();
                fresh.push("+");
                let fresh = std::path::PathBuf::from(fresh);
                PrimaryNode::with_blobs(self.node.address().clone(), &fresh)
                    .map_err(WorldError::Reopen)?
            }
            None => PrimaryNode::default(),
        };
        for t in history.transactions() {
            node.commit(t).map_err(WorldError::Reopen)?;
        }
        self.largest_transaction = self.largest_transaction.max(self.node.largest_transaction);
        self.node = node;
        // Time went on across the failover: the new primary's tids are later than any the
        // old one gave (else a secondary ahead could hold a tid the new primary reuses for
        // another transaction, which no primary can tell apart).
        history.raise_floor(self.primary.last_tid().max(self.primary.floor()));
        let old = std::mem::replace(&mut self.primary, history);
        self.abandoned.push(old);
        Ok(())
    }

    /// The primary is unreachable for `length`: the connection is lost and every attempt
    /// in that time rejected.
    pub fn outage(&mut self, length: Duration) -> Result<(), WorldError> {
        if self.connected() {
            self.lose_connection(LossReason::Lost)?;
        }
        let deadline = self.reactor.now() + length;
        for _ in 0..MAX_ROUNDS {
            while self.attempt_owner().is_some() {
                self.reject()?;
            }
            match self.reactor.next_due() {
                Some(due) if due <= deadline => {
                    if let Some(call) = self.reactor.advance_to(due) {
                        self.fire(call);
                    }
                }
                _ => break,
            }
        }
        self.advance_to(deadline);
        Ok(())
    }

    /// Whether the current secondary's storage holds everything the primary committed.
    pub fn caught_up(&self) -> bool {
        self.secondary()
            .is_ok_and(|s| s.storage().last_transaction() == self.primary.last_tid())
    }

    /// The heal phase: faults stop; a connection whose stream was damaged is reset; the
    /// primary accepts every attempt and serves everything; time passes until the secondary
    /// has caught up, or `bound` (default: three reconnect delays and ten seconds) passes.
    /// Returns what it prints.
    pub fn heal(&mut self, bound: Option<Duration>) -> Result<String, WorldError> {
        let g = self.current()?;
        if let Some(disk) = self.secondaries[g].storage().disk() {
            disk.heal();
        }
        if !self.running() && self.nodes.is_empty() {
            return Ok("the secondary is not running: nothing to catch up".into());
        }
        let bound = bound.unwrap_or_else(|| {
            // Three reconnect delays, and one more per node: a chain's hops may each wait
            // for their reconnect in turn.
            let slowest = self
                .nodes
                .iter()
                .map(|n| n.secondary().config().reconnect_delay)
                .fold(self.secondaries[g].config().reconnect_delay, Duration::max);
            slowest * (3 + self.nodes.len() as u32) + Duration::from_secs(10)
        });
        let start = self.reactor.now();
        let deadline = start + bound;
        let damaged = self.link.as_ref().is_some_and(|l| {
            l.damaged && self.network.connection.as_ref().map(|c| c.port) == Some(l.port)
        });
        if damaged {
            self.lose_connection(LossReason::Lost)?;
        }
        for _ in 0..MAX_ROUNDS {
            if self.s1_settled() && (0..self.nodes.len()).all(|i| self.node_settled(i)) {
                let took = self.reactor.now() - start;
                return Ok(format!(
                    "caught up after {} s",
                    crate::scenario::step::seconds(took)
                ));
            }
            if self.attempt_owner().is_some() {
                self.accept()?;
                continue;
            }
            if self.connected() {
                let port = self.network.connection.as_ref().map(|c| c.port);
                let fresh = self.link.as_ref().map(|l| l.port) != port;
                if self.serve(None)? > 0 || fresh {
                    continue;
                }
            }
            if self.heal_nodes_round()? {
                continue;
            }
            match self.reactor.next_due() {
                Some(due) if due <= deadline => {
                    if let Some(call) = self.reactor.advance_to(due) {
                        self.fire(call);
                    }
                }
                _ => break,
            }
        }
        self.advance_to(deadline);
        let after = crate::scenario::step::seconds(bound);
        let mut printed = Vec::new();
        if !self.s1_settled() {
            let secondary = self.secondary()?.storage().last_transaction();
            let primary = self.primary.last_tid();
            self.events.push(Event::NotCaughtUp {
                bound,
                primary,
                secondary,
            });
            printed.push(format!(
                "not caught up after {after} s: the primary is at {primary:?}, the secondary at {secondary:?}"
            ));
        }
        for i in 0..self.nodes.len() {
            if self.node_settled(i) {
                continue;
            }
            let (node, upstream) = (i + 2, self.nodes[i].upstream);
            let (last, upstream_last) = (
                self.nodes[i].last_transaction(),
                self.upstream_last(upstream),
            );
            self.events.push(Event::NodeNotCaughtUp {
                bound,
                node,
                upstream,
                upstream_last,
                last,
            });
            printed.push(format!(
                "s{node} not caught up after {after} s: {upstream} is at {upstream_last:?}, s{node} at {last:?}"
            ));
        }
        Ok(printed.join("\n"))
    }

    /// Whether the first secondary is where the heal phase wants it: stopped, caught up,
    /// or refused for holding a history the primary does not have.
    fn s1_settled(&self) -> bool {
        match self.secondary() {
            Ok(s) if self.running() => {
                let last = s.storage().last_transaction();
                last == self.primary.last_tid() || self.other_history(last)
            }
            _ => true,
        }
    }
}
