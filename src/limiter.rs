//! A sliding-window counter per key: at most `max` events per key inside
//! `window`. Used to throttle refused transactions per signer and per
//! client address.
//!
//! Held in memory only, per node: a restart forgets the counts, which is
//! fine for throttling (the chain, not this counter, is the record). The
//! lock is a `std` mutex, held for a few map operations and never across an
//! `.await`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Keys remembered before stale ones are pruned.
const PRUNE_AT: usize = 10_000;

/// Counts events per key inside a sliding window.
pub struct SlidingWindow<K> {
    max: usize,
    window: Duration,
    events: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> SlidingWindow<K> {
    /// At most `max` events per key inside `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        SlidingWindow {
            max,
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        // Only counters live here; a panic elsewhere cannot leave them
        // inconsistent in a way that matters.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(wait)` when `key` already had `max` events inside the window:
    /// how long until the oldest one leaves it.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.map();
        let Some(q) = map.get_mut(key) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: K) {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= PRUNE_AT {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(key).or_default();
        q.push_back(now);
        // Only the last `max` matter for the decision.
        while q.len() > self.max {
            q.pop_front();
        }
    }
}

/// Whole seconds to wait, at least one (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_events_and_only_for_that_key() {
        let w = SlidingWindow::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(w.check(&"a").is_ok());
            w.record("a");
        }
        let wait = w.check(&"a").expect_err("the fourth is refused");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(58));
        assert!(w.check(&"b").is_ok(), "other keys are not affected");
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
    }

    #[test]
    fn events_leave_the_window() {
        let w = SlidingWindow::new(1, Duration::from_millis(30));
        w.record(1u8);
        assert!(w.check(&1).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(w.check(&1).is_ok());
    }
}
