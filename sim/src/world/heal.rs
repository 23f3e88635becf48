//! The heal phase: the faults stop, and every node must catch up — the first secondary
//! with the primary, every other node with its upstream — within a bound of virtual time;
//! a node that does not is a liveness event for the oracles.

use std::time::Duration;

use zrs::secondary::LossReason;
use zrs::storage::ReadStorage;

use super::{Event, World, WorldError, MAX_ROUNDS};

impl World {
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
