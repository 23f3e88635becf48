//! The secondary nodes: opening them (by generation), carrying out what they ask for
//! (attempts, timers, transmissions, invalidations), the events of their connection, and
//! their crashes and restarts.

use crate::disk::CrashReport;
use crate::network::peer;
use crate::reactor::DelayedCall;
use std::time::Duration;
use zrs::primary::ConnectionId;
use zrs::secondary::{Action, LossReason, Phase, Secondary, Timer};

use super::{SimSecondary, World, WorldError};
use crate::coverage::{Input, Pair, State};

impl World {
    /// Adds a secondary (already constructed, with its opening actions queued).
    pub fn open(&mut self, secondary: SimSecondary) {
        self.secondaries.push(secondary);
        self.dead.push(false);
        let generation = self.secondaries.len() - 1;
        self.dispatch(generation);
    }

    /// Performs every action the secondary of `generation` queued.
    pub(super) fn dispatch(&mut self, generation: usize) {
        while let Some(action) = self.secondaries[generation].poll_action() {
            match action {
                Action::Connect(_) => {
                    self.network.start_attempt();
                    self.attempt_owners.push(generation);
                }
                Action::AbortConnect => self.abort_attempt_of(generation),
                Action::Transmit(bytes) => self.network.write(&bytes),
                Action::Disconnect => self.end_connection(Some(LossReason::Done)),
                Action::SetTimer { timer, delay } => {
                    let n = self.reactor.call_later(timer, delay);
                    self.owners.push((n, generation));
                }
                Action::CancelTimer(timer) => {
                    // Cancel this generation's call of that kind.
                    self.reactor
                        .cancel_owned(&mut self.owners, &generation, timer);
                }
                Action::Invalidate { tid, oids } => {
                    self.replicated += 1;
                    self.invalidations.push((tid, oids));
                    if Some(generation) == self.current().ok() {
                        self.s1_committed();
                    }
                }
            }
        }
    }

    /// Notes that generation `g`, in its present phase, is about to be fed `input`.
    pub(super) fn observe(&mut self, g: usize, input: Input) {
        let state = State::of((!self.dead[g]).then(|| self.secondaries[g].phase()));
        self.coverage.note(Pair::Input(state, input));
    }

    pub(super) fn owner_of(&mut self, call: &DelayedCall) -> Option<usize> {
        let i = self.owners.iter().position(|(n, _)| *n == call.number)?;
        Some(self.owners.remove(i).1)
    }

    /// Fires one delayed call on the secondary that scheduled it.
    pub fn fire(&mut self, call: DelayedCall) {
        if self.fire_node(call.number, call.timer) {
            return;
        }
        if let Some(generation) = self.owner_of(&call) {
            self.observe(
                generation,
                match call.timer {
                    Timer::KeepAlive => Input::KeepAlive,
                    Timer::Connect => Input::Reconnect,
                },
            );
            self.secondaries[generation].timeout(call.timer);
            self.dispatch(generation);
        }
    }

    /// `doLater`: runs the calls queued now, in order.
    pub fn do_later(&mut self) {
        for call in self.reactor.take_all() {
            self.fire(call);
        }
    }

    /// Moves virtual time by `by`, firing what falls due in due order.
    pub fn advance(&mut self, by: Duration) {
        let to = self.reactor.now() + by;
        self.advance_to(to);
    }

    /// Moves virtual time to `to`, firing what falls due in due order.
    pub fn advance_to(&mut self, to: Duration) {
        while let Some(call) = self.reactor.advance_to(to) {
            self.fire(call);
        }
    }

    /// The primary accepts the oldest attempt.
    pub fn accept(&mut self) -> Result<(), WorldError> {
        let attempt = self.network.take_attempt().ok_or(WorldError::NoAttempt)?;
        let generation = self.take_attempt_owner()?;
        let port = attempt.port;
        self.network.establish(attempt);
        self.observe(generation, Input::Accept);
        self.secondaries[generation].connected(&peer(port));
        self.dispatch(generation);
        Ok(())
    }

    /// The primary rejects the oldest attempt.
    pub fn reject(&mut self) -> Result<(), WorldError> {
        self.network.take_attempt().ok_or(WorldError::NoAttempt)?;
        let generation = self.take_attempt_owner()?;
        self.observe(generation, Input::Reject);
        self.secondaries[generation].connection_failed(&LossReason::Other("rejected".into()));
        self.dispatch(generation);
        Ok(())
    }

    /// The connection (if any) ends; the primary node hears of it for `reason` if it
    /// serves the connection (`None`: it does not, its process is gone).
    pub(super) fn end_connection(&mut self, reason: Option<LossReason>) {
        let Some(connection) = self.network.connection.take() else {
            return;
        };
        if let Some(link) = self.link.take() {
            self.handshake = None;
            if let (Some(reason), true) = (reason, link.port == connection.port) {
                self.node
                    .connection_lost(ConnectionId(u64::from(link.port)), &reason);
            }
        }
    }

    /// The connection ends from the network's side, for `reason`.
    pub fn lose_connection(&mut self, reason: LossReason) -> Result<(), WorldError> {
        if self.network.connection.is_none() {
            return Err(WorldError::NotConnected);
        }
        self.end_connection(Some(reason.clone()));
        let generation = self.current()?;
        self.observe(generation, Input::Lost);
        self.secondaries[generation].connection_lost(&reason);
        self.dispatch(generation);
        Ok(())
    }

    /// Gives the current secondary its primary's address.
    pub fn set_address(&mut self, address: zrs::secondary::Address) -> Result<(), WorldError> {
        let generation = self.current()?;
        self.observe(generation, Input::Address);
        self.secondaries[generation].set_replication_address(address);
        self.dispatch(generation);
        Ok(())
    }

    /// Closes the current secondary.
    pub fn close(&mut self) -> Result<(), WorldError> {
        let generation = self.current()?;
        self.observe(generation, Input::Close);
        if let Err(e) = self.secondaries[generation].close() {
            zrs::log::critical(zrs::secondary::LOGGER, &format!("closing the storage: {e}"));
        }
        self.dispatch(generation);
        self.s1_closed();
        Ok(())
    }

    /// The current secondary's process crashes: its calls, attempt and connection vanish,
    /// and its storage keeps what it had made durable.
    pub fn crash(&mut self, keep: usize, tear: usize) -> Result<Option<CrashReport>, WorldError> {
        let g = self.current()?;
        if self.dead[g] {
            return Err(WorldError::NotRunning);
        }
        self.observe(g, Input::Crash);
        self.dead[g] = true;
        let owned: Vec<u64> = self
            .owners
            .iter()
            .filter(|(_, o)| *o == g)
            .map(|(n, _)| *n)
            .collect();
        for n in owned {
            self.reactor.cancel_number(n);
        }
        self.owners.retain(|(_, o)| *o != g);
        self.abort_attempt_of(g);
        if !self.secondaries[g].is_closed() {
            self.end_connection(Some(LossReason::Lost));
        }
        self.s1_process_ended();
        Ok(self.secondaries[g].storage().crash(keep, tear))
    }

    /// Opens a new secondary over the last one's storage, configured as it was.
    pub fn restart(&mut self) -> Result<(), WorldError> {
        let g = self.current()?;
        if !self.dead[g] && !self.secondaries[g].is_closed() {
            return Err(WorldError::Running);
        }
        self.s1_process_ended();
        let storage = self.secondaries[g].storage().clone();
        storage.reopen().map_err(WorldError::Reopen)?;
        self.reopens += 1;
        let config = self.secondaries[g].config().clone();
        self.open(Secondary::new(storage, config));
        Ok(())
    }

    /// Whether the current secondary is running (opened, neither closed nor crashed).
    pub fn running(&self) -> bool {
        match self.current() {
            Ok(g) => !self.dead[g] && !self.secondaries[g].is_closed(),
            Err(_) => false,
        }
    }

    /// The current secondary's phase, `None` if it crashed (or none was opened).
    pub fn phase(&self) -> Option<Phase> {
        let g = self.current().ok()?;
        (!self.dead[g]).then(|| self.secondaries[g].phase())
    }

    /// Calls pending for `timer`, scheduled by generation `g`.
    pub fn pending_of(&self, g: usize, timer: Timer) -> usize {
        self.reactor
            .later()
            .iter()
            .filter(|c| {
                c.timer == timer && self.owners.iter().any(|(n, o)| *n == c.number && *o == g)
            })
            .count()
    }

    /// Whether generation `g` crashed.
    pub fn is_dead(&self, g: usize) -> bool {
        self.dead.get(g).copied().unwrap_or(false)
    }

    /// The generation that owns the waiting attempt, if any.
    pub fn attempt_owner(&self) -> Option<usize> {
        self.attempt_owners.first().copied()
    }

    /// Whether generation `g` has an attempt waiting.
    pub fn owns_attempt(&self, g: usize) -> bool {
        self.attempt_owners.contains(&g)
    }

    /// How many attempts have an owner (each generation at most one).
    pub fn owned_attempts(&self) -> usize {
        self.attempt_owners.len()
    }

    /// Generation `g` gives its attempt up (not another generation's).
    fn abort_attempt_of(&mut self, g: usize) {
        if let Some(i) = self.attempt_owners.iter().position(|o| *o == g) {
            self.attempt_owners.remove(i);
            self.network.abort_attempt_at(i);
        }
    }

    /// The owner of the oldest attempt, which the primary answers.
    fn take_attempt_owner(&mut self) -> Result<usize, WorldError> {
        if self.attempt_owners.is_empty() {
            return Err(WorldError::NoAttempt);
        }
        Ok(self.attempt_owners.remove(0))
    }

    pub fn secondary(&self) -> Result<&SimSecondary, WorldError> {
        self.secondaries.last().ok_or(WorldError::NoSecondary)
    }

    pub(super) fn current(&self) -> Result<usize, WorldError> {
        self.secondaries
            .len()
            .checked_sub(1)
            .ok_or(WorldError::NoSecondary)
    }

    /// Whether the secondary of the current generation is connected.
    pub fn connected(&self) -> bool {
        self.network.connection.is_some()
    }
}
