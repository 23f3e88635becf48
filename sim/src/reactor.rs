//! The virtual reactor: a clock and a queue of delayed calls, owned by the harness.
//!
//! Modelled on zc.zrs's `TestReactor`: every scheduled call takes the next number of a
//! per-reactor counter and prints as `<1 60 keep_alive () {}>`; `doLater` runs the calls
//! queued at the moment it is called (not the ones they queue); cancel removes. Time moves
//! only when the harness says so: [`Reactor::advance_to`] fires what falls due, in due order.

use std::fmt;
use std::time::Duration;

use zrs::secondary::{format_delay, Timer};

/// A call scheduled with `callLater`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedCall {
    /// Its number, from the reactor's counter (1, 2, …).
    pub number: u64,
    pub delay: Duration,
    pub timer: Timer,
    /// Virtual time (since the start) at which it falls due.
    pub due: Duration,
}

impl fmt::Display for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{} {} {} () {{}}>",
            self.number,
            format_delay(self.delay),
            self.timer.name()
        )
    }
}

/// The clock and the queue.
#[derive(Debug, Default)]
pub struct Reactor {
    now: Duration,
    /// Pending calls in the order they were scheduled (as `TestReactor.later` lists them).
    later: Vec<DelayedCall>,
    counter: u64,
}

impl Reactor {
    pub fn new() -> Reactor {
        Reactor::default()
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn call_later(&mut self, timer: Timer, delay: Duration) -> u64 {
        self.counter += 1;
        self.later.push(DelayedCall {
            number: self.counter,
            delay,
            timer,
            due: self.now + delay,
        });
        self.counter
    }

    /// Cancels the pending call of `timer`; returns whether there was one.
    pub fn cancel(&mut self, timer: Timer) -> bool {
        match self.later.iter().position(|c| c.timer == timer) {
            Some(i) => {
                self.later.remove(i);
                true
            }
            None => false,
        }
    }

    /// Cancels the pending call numbered `number`; returns whether there was one.
    pub fn cancel_number(&mut self, number: u64) -> bool {
        let before = self.later.len();
        self.later.retain(|c| c.number != number);
        self.later.len() != before
    }

    /// Cancels `owner`'s pending call of `timer`, where `owners` records who scheduled each
    /// call (by number): several secondaries share one reactor, and a `CancelTimer` from
    /// one must not cancel another's call of the same kind. The call is forgotten there too.
    pub fn cancel_owned<O: PartialEq>(
        &mut self,
        owners: &mut Vec<(u64, O)>,
        owner: &O,
        timer: Timer,
    ) {
        let number = self
            .later
            .iter()
            .find(|c| c.timer == timer && owners.iter().any(|(n, o)| *n == c.number && o == owner))
            .map(|c| c.number);
        if let Some(number) = number {
            self.cancel_number(number);
            owners.retain(|(n, _)| *n != number);
        }
    }

    /// The pending calls, in scheduling order.
    pub fn later(&self) -> &[DelayedCall] {
        &self.later
    }

    /// `doLater`: takes every call queued now, in order; the caller runs them. Time does
    /// not move (the reference harness ignores delays here).
    pub fn take_all(&mut self) -> Vec<DelayedCall> {
        std::mem::take(&mut self.later)
    }

    /// When the next call falls due, if any.
    pub fn next_due(&self) -> Option<Duration> {
        self.later.iter().map(|c| c.due).min()
    }

    /// Moves the clock to `to` (never backwards) and takes the earliest call due by then,
    /// if any, leaving the clock at its due time. Call repeatedly to fire all in due order;
    /// ties go in scheduling order.
    pub fn advance_to(&mut self, to: Duration) -> Option<DelayedCall> {
        let next = self
            .later
            .iter()
            .enumerate()
            .filter(|(_, c)| c.due <= to)
            .min_by_key(|(i, c)| (c.due, *i))
            .map(|(i, _)| i);
        match next {
            Some(i) => {
                let call = self.later.remove(i);
                self.now = self.now.max(call.due);
                Some(call)
            }
            None => {
                self.now = self.now.max(to);
                None
            }
        }
    }
}

/// Prints the queue as `TestReactor.later` prints: `[<1 60 keep_alive () {}>]`.
pub struct Queue<'a>(pub &'a [DelayedCall]);

impl fmt::Display for Queue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, call) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{call}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_calls_and_prints_like_the_test_reactor() {
        let mut r = Reactor::new();
        assert_eq!(Queue(r.later()).to_string(), "[]");
        r.call_later(Timer::KeepAlive, Duration::from_secs(60));
        r.call_later(Timer::Connect, Duration::from_millis(500));
        assert_eq!(
            Queue(r.later()).to_string(),
            "[<1 60 keep_alive () {}>, <2 0.5 connect () {}>]"
        );
        assert!(r.cancel(Timer::KeepAlive));
        assert!(!r.cancel(Timer::KeepAlive));
        assert_eq!(r.call_later(Timer::KeepAlive, Duration::from_secs(1)), 3);
    }

    #[test]
    fn advance_fires_in_due_order_and_ties_in_scheduling_order() {
        let mut r = Reactor::new();
        r.call_later(Timer::KeepAlive, Duration::from_secs(60));
        r.call_later(Timer::Connect, Duration::from_secs(10));
        let first = r.advance_to(Duration::from_secs(100)).unwrap();
        assert_eq!(
            (first.timer, r.now()),
            (Timer::Connect, Duration::from_secs(10))
        );
        let second = r.advance_to(Duration::from_secs(100)).unwrap();
        assert_eq!(
            (second.timer, r.now()),
            (Timer::KeepAlive, Duration::from_secs(60))
        );
        assert!(r.advance_to(Duration::from_secs(100)).is_none());
        assert_eq!(r.now(), Duration::from_secs(100));
    }
}
