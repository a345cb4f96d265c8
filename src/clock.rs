//! The node's one wall clock.
//!
//! Only the leader's block producer turns a clock reading into chain time
//! (the proposed block's timestamp); everything else that reads it (request
//! signatures, session expiry, "is this prescription still valid now" in a
//! list) uses it for local decisions. Keeping it in one leaf module means a
//! test or a future bounded-clock design has one place to look.

use rxchain_contracts::Timestamp;

/// The current wall clock in Unix milliseconds. A clock set before 1970
/// reads as 0 (peers then refuse signed requests as stale: the right
/// outcome), and one past `u64::MAX` ms saturates.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// [`now`] as plain milliseconds, for signed request headers.
pub fn now_ms() -> u64 {
    now().0
}

/// The clock this node reads chain time from: the block times it proposes
/// and the clock attestations it signs (see `rxchain_contracts::cert`).
///
/// It is the wall clock plus a fault-injected offset, zero unless the node
/// runs with `testing_faults` and sets `testing_clock_offset_ms`. Request
/// signatures keep the plain wall clock, so a node with a skewed chain
/// clock still talks to its peers, which is what the skewed-leader test
/// needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainClock {
    offset_ms: i64,
}

impl ChainClock {
    /// The wall clock shifted by `offset_ms` (test fault injection only).
    pub fn with_offset(offset_ms: i64) -> Self {
        ChainClock { offset_ms }
    }

    /// The current reading, saturating at 0 and `u64::MAX`.
    pub fn now(&self) -> Timestamp {
        let wall = now().0;
        let shifted = if self.offset_ms >= 0 {
            wall.saturating_add(self.offset_ms.unsigned_abs())
        } else {
            wall.saturating_sub(self.offset_ms.unsigned_abs())
        };
        Timestamp(shifted)
    }
}
