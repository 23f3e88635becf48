//! The driver's timer table: one pending deadline per [`Timer`], fired in due order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::secondary::Timer;

/// Pending timers. Setting a timer that is already pending replaces it (the secondary
/// keeps at most one of each kind).
#[derive(Debug, Default)]
pub struct Timers {
    /// Deadline and a sequence number (ties fire in the order they were set).
    pending: BTreeMap<Timer, (Instant, u64)>,
    next_seq: u64,
}

impl Timers {
    pub fn set(&mut self, timer: Timer, now: Instant, delay: Duration) {
        let deadline = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(1 << 40));
        self.pending.insert(timer, (deadline, self.next_seq));
        self.next_seq += 1;
    }

    pub fn cancel(&mut self, timer: Timer) {
        self.pending.remove(&timer);
    }

    /// The earliest deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|(at, _)| *at).min()
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (&timer, _) = self
            .pending
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(_, key)| **key)?;
        self.pending.remove(&timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_due_order_and_replaces() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::Connect, t0, Duration::from_millis(20));
        timers.set(Timer::KeepAlive, t0, Duration::from_millis(10));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(timers.pop_due(t0 + Duration::from_millis(5)), None);
        let later = t0 + Duration::from_millis(30);
        assert_eq!(timers.pop_due(later), Some(Timer::KeepAlive));
        assert_eq!(timers.pop_due(later), Some(Timer::Connect));
        assert_eq!(timers.pop_due(later), None);

        timers.set(Timer::Connect, t0, Duration::from_millis(10));
        timers.set(Timer::Connect, t0, Duration::from_millis(50));
        assert_eq!(
            timers.pop_due(later),
            None,
            "the second set replaced the first"
        );
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(50)));
        timers.cancel(Timer::Connect);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_fire_in_the_order_set() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::KeepAlive, t0, Duration::ZERO);
        timers.set(Timer::Connect, t0, Duration::ZERO);
        assert_eq!(timers.pop_due(t0), Some(Timer::KeepAlive));
        assert_eq!(timers.pop_due(t0), Some(Timer::Connect));
    }
}
