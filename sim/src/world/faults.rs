//! Faults: the link's stream faults, the simulated disk's, the primary's crash, restart and
//! failover to a lagging node, and outages. The heal phase that ends them is in `heal`.

use crate::link::{Link, Source};
use crate::primary_node::PrimaryNode;
use std::time::Duration;
use zrs::primary::ConnectionId;
use zrs::secondary::LossReason;

use super::{World, WorldError, MAX_ROUNDS};

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
        let mut node = if self.node.keeps_blobs() {
            // The node taking over has a blob directory of its own.
            PrimaryNode::with_blobs(self.node.address().clone()).map_err(WorldError::Reopen)?
        } else {
            PrimaryNode::default()
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
}
