//! The failed-sign-in rate limiter: at most [`MAX_FAILURES`] failures per
//! username inside a sliding [`FAILURE_WINDOW`], held in memory only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{normalise, AccountError, Accounts};

/// Failed sign-ins allowed per username inside [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// The sliding window over which failed sign-ins are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Usernames remembered by the rate limiter before stale ones are pruned.
const LIMITER_PRUNE_AT: usize = 10_000;

/// Recent failed sign-ins per normalised username.
///
/// A std mutex: it is held for a few map operations, never across an
/// `.await`, so an async mutex would only add cost.
#[derive(Default)]
pub(super) struct RateLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    fn failures(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // The map holds only counters; a panic elsewhere cannot leave it
        // inconsistent in a way that matters, so a poisoned lock is used as is.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses when `username` has [`MAX_FAILURES`] failed sign-ins inside
    /// the window.
    pub(super) fn check(&self, username: &str) -> Result<(), AccountError> {
        let now = Instant::now();
        let mut map = self.failures();
        let Some(q) = map.get_mut(&normalise(username)) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            q.pop_front();
        }
        if q.len() >= MAX_FAILURES {
            let oldest = q.front().copied().unwrap_or(now);
            let left = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(AccountError::TooManyAttempts {
                retry_after_secs: left.as_secs().max(1),
            });
        }
        Ok(())
    }

    /// Counts a failed sign-in for `username`.
    pub(super) fn record_failure(&self, username: &str) {
        let now = Instant::now();
        let mut map = self.failures();
        if map.len() >= LIMITER_PRUNE_AT {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        let q = map.entry(normalise(username)).or_default();
        q.push_back(now);
        // Only the last MAX_FAILURES matter for the decision.
        while q.len() > MAX_FAILURES {
            q.pop_front();
        }
    }

    /// Forgets the failures of `username`, after a successful sign-in.
    pub(super) fn clear(&self, username: &str) {
        self.failures().remove(&normalise(username));
    }
}

impl Accounts {
    /// Refuses when `username` has [`MAX_FAILURES`] failed sign-ins inside
    /// the window.
    pub fn check_rate(&self, username: &str) -> Result<(), AccountError> {
        self.limiter.check(username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::test_support::open;

    #[test]
    fn rate_limit_after_five_failures() {
        let (_d, a) = open("n1");
        for _ in 0..MAX_FAILURES {
            a.check_rate("x").unwrap();
            a.limiter.record_failure("X ");
        }
        assert!(matches!(
            a.check_rate("x"),
            Err(AccountError::TooManyAttempts { .. })
        ));
        a.limiter.clear("x");
        a.check_rate("x").unwrap();
    }
}
