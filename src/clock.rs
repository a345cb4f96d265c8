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
