//! The failed-sign-in rate limiter, held in memory only: at most
//! [`MAX_FAILURES`] failures per username and [`MAX_FAILURES_PER_ADDRESS`]
//! per client address inside a sliding [`FAILURE_WINDOW`].
//!
//! An attempt is *reserved* (counted as a failure) before its password is
//! hashed, in the same critical section that checks the limits, and the
//! reservation is released only when the password turns out right. Counting
//! after the hash instead would let every guess sent in parallel pass the
//! check before any of them is recorded. The per-address limit keeps one
//! client from spreading guesses over many usernames (and from locking out
//! every user it knows of); the per-username limit holds however many
//! addresses the guesses come from.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{normalise, AccountError, Accounts};

/// Failed sign-ins allowed per username inside [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// Failed sign-ins allowed per client address inside [`FAILURE_WINDOW`],
/// whatever usernames they name.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;

/// The sliding window over which failed sign-ins are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Keys remembered per map before stale ones are pruned.
const LIMITER_PRUNE_AT: usize = 10_000;

/// Recent attempt times per key, oldest first.
struct Window<K> {
    map: HashMap<K, VecDeque<Instant>>,
    limit: usize,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: usize) -> Self {
        Window {
            map: HashMap::new(),
            limit,
        }
    }

    /// Seconds until `key` may try again, or `None` when it is under its limit.
    fn blocked(&mut self, key: &K, now: Instant) -> Option<u64> {
        let q = self.map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            q.pop_front();
        }
        if q.len() < self.limit {
            return None;
        }
        let oldest = q.front().copied().unwrap_or(now);
        let left = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
        Some(left.as_secs().max(1))
    }

    fn push(&mut self, key: K, at: Instant) {
        if self.map.len() >= LIMITER_PRUNE_AT {
            self.map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| at.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        let q = self.map.entry(key).or_default();
        q.push_back(at);
        // Only the last `limit` entries matter for the decision.
        while q.len() > self.limit {
            q.pop_front();
        }
    }

    /// Removes one entry made at `at` (a released reservation).
    fn remove(&mut self, key: &K, at: Instant) {
        if let Some(q) = self.map.get_mut(key) {
            if let Some(i) = q.iter().position(|t| *t == at) {
                q.remove(i);
            }
            if q.is_empty() {
                self.map.remove(key);
            }
        }
    }
}

/// Both windows, behind one lock so that checking and counting an attempt
/// is one step.
struct Windows {
    users: Window<String>,
    addresses: Window<IpAddr>,
}

/// Recent failed (or still undecided) sign-ins per normalised username and
/// per client address.
///
/// A std mutex: it is held for a few map operations, never across an
/// `.await`, so an async mutex would only add cost.
pub(super) struct RateLimiter {
    windows: Mutex<Windows>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            windows: Mutex::new(Windows {
                users: Window::new(MAX_FAILURES),
                addresses: Window::new(MAX_FAILURES_PER_ADDRESS),
            }),
        }
    }
}

/// A counted attempt, to release if its password is right.
#[must_use = "a reservation stays counted as a failure unless released"]
pub(super) struct Reservation {
    username: String,
    address: Option<IpAddr>,
    at: Instant,
}

/// The address an attempt is counted under: IPv4 addresses whole, IPv6
/// addresses by their /64 prefix, since one client usually holds a whole
/// /64 and could otherwise take a fresh address for every guess.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl RateLimiter {
    fn windows(&self) -> MutexGuard<'_, Windows> {
        // The maps hold only counters; a panic elsewhere cannot leave them
        // inconsistent in a way that matters, so a poisoned lock is used as is.
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an attempt for `username` from `address` (unknown for
    /// in-process callers), or refuses it when either is at its limit; a
    /// refused attempt is not counted, since nothing was tried.
    pub(super) fn reserve(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> Result<Reservation, AccountError> {
        let now = Instant::now();
        let username = normalise(username);
        let address = address.map(address_key);
        let mut w = self.windows();
        if let Some(retry_after_secs) = w.users.blocked(&username, now) {
            return Err(AccountError::TooManyAttempts { retry_after_secs });
        }
        if let Some(addr) = &address {
            if let Some(retry_after_secs) = w.addresses.blocked(addr, now) {
                return Err(AccountError::TooManyAttemptsFromAddress { retry_after_secs });
            }
        }
        w.users.push(username.clone(), now);
        if let Some(addr) = address {
            w.addresses.push(addr, now);
        }
        Ok(Reservation {
            username,
            address,
            at: now,
        })
    }

    /// Uncounts an attempt whose password was right.
    pub(super) fn release(&self, r: Reservation) {
        let mut w = self.windows();
        w.users.remove(&r.username, r.at);
        if let Some(addr) = &r.address {
            w.addresses.remove(addr, r.at);
        }
    }

    /// Refuses when `username` has [`MAX_FAILURES`] counted sign-ins inside
    /// the window.
    pub(super) fn check(&self, username: &str) -> Result<(), AccountError> {
        match self
            .windows()
            .users
            .blocked(&normalise(username), Instant::now())
        {
            Some(retry_after_secs) => Err(AccountError::TooManyAttempts { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in for `username`, from no known address.
    #[cfg(test)]
    pub(super) fn record_failure(&self, username: &str) {
        self.windows()
            .users
            .push(normalise(username), Instant::now());
    }

    /// Forgets the failures of `username`.
    #[cfg(test)]
    pub(super) fn clear(&self, username: &str) {
        self.windows().users.map.remove(&normalise(username));
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

    #[test]
    fn reservations_count_at_once_and_released_ones_do_not() {
        let l = RateLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        // Five undecided attempts already fill the username's allowance.
        let held: Vec<_> = (0..MAX_FAILURES)
            .map(|_| l.reserve("cara", Some(ip)).unwrap())
            .collect();
        assert!(matches!(
            l.reserve("Cara", Some(ip)),
            Err(AccountError::TooManyAttempts { retry_after_secs }) if (1..=300).contains(&retry_after_secs)
        ));
        // A right password gives its slot back.
        let mut held = held.into_iter();
        l.release(held.next().unwrap());
        let again = l.reserve("cara", None).unwrap();
        l.release(again);
        // The address counts every username it names.
        for i in 0..(MAX_FAILURES_PER_ADDRESS - (MAX_FAILURES - 1)) {
            let _counted = l.reserve(&format!("user{i}"), Some(ip)).unwrap();
        }
        assert!(matches!(
            l.reserve("someone.else", Some(ip)),
            Err(AccountError::TooManyAttemptsFromAddress { .. })
        ));
        // Another address is not affected.
        let _other = l.reserve("someone.else", "192.0.2.8".parse().ok()).unwrap();
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
