//! The memory of request nonces that makes signed node messages
//! single-use.
//!
//! Every signed node request (a Raft RPC, a cluster admin request) carries a
//! random [`Nonce`] inside its signature, and a timestamp that the receiver
//! accepts only within [`super::rpc::MAX_CLOCK_SKEW_MS`] of its clock. The
//! receiver remembers each accepted nonce, per signer, until that request's
//! timestamp would be refused anyway, so a captured request cannot be played
//! a second time: while its time is fresh the nonce is remembered, and once
//! the nonce is forgotten its time is stale.
//!
//! Memory is bounded twice over. Entries expire with their request's window.
//! And each signer may hold at most `cap` live entries: a signer over the
//! cap is refused new requests ([`NonceError::Full`], answered 429) until
//! some of its entries expire. Forgetting nonces early instead would reopen
//! replay, so the store never does. Signers are genesis identities (nodes
//! and organisations), and a nonce is recorded only after the request's
//! signature verified, so strangers cannot fill the store and the total is
//! at most signers x `cap`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// A request nonce: 16 random bytes, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nonce([u8; Nonce::LEN]);

impl Nonce {
    /// The length in bytes.
    pub const LEN: usize = 16;

    /// A fresh nonce from the operating system's random source.
    pub fn random() -> Nonce {
        let mut b = [0u8; Nonce::LEN];
        // Without OS randomness no nonce (or key) can be made safely, and
        // this does not happen on supported systems.
        getrandom::fill(&mut b).expect("the operating system random source is unavailable");
        Nonce(b)
    }

    /// The nonce with these bytes.
    pub fn from_bytes(bytes: [u8; Nonce::LEN]) -> Nonce {
        Nonce(bytes)
    }

    /// Parses 32 hex digits.
    pub fn parse_hex(s: &str) -> Result<Nonce, BadNonce> {
        let raw = hex::decode(s).map_err(|_| BadNonce)?;
        let bytes: [u8; Nonce::LEN] = raw.try_into().map_err(|_| BadNonce)?;
        Ok(Nonce(bytes))
    }

    /// The 32 lowercase hex digits of the header and the signed message.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A nonce header that is not 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a nonce is 16 bytes written as 32 hex digits")]
pub struct BadNonce;

/// Why a nonce is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The signer already used this nonce inside the window: a replay.
    #[error("this request was already received; a signed request is accepted once")]
    Replayed,
    /// The signer already has `cap` live nonces; it must slow down.
    #[error("the sender has {cap} requests in the replay window already; retry shortly")]
    Full {
        /// The cap per signer.
        cap: usize,
    },
}

/// One signer's live nonces.
#[derive(Debug, Default)]
struct Window {
    /// For lookups.
    seen: HashSet<Nonce>,
    /// In arrival order, with the time (Unix ms) after which each may be
    /// forgotten. Expiry is popped from the front only, so an entry that
    /// expires early but arrived after a later-expiring one lives a little
    /// longer than needed: remembering longer is always safe.
    order: VecDeque<(u64, Nonce)>,
}

impl Window {
    fn prune(&mut self, now_ms: u64) {
        while let Some(&(expires, nonce)) = self.order.front() {
            if expires > now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

/// The accepted nonces of every signer, each kept until its request's
/// window closes. Shared by the handlers of one server.
#[derive(Debug)]
pub struct Nonces<K> {
    cap: usize,
    signers: Mutex<HashMap<K, Window>>,
}

impl<K: Eq + Hash + Clone> Nonces<K> {
    /// An empty store that holds at most `cap_per_signer` live nonces for
    /// each signer.
    pub fn new(cap_per_signer: usize) -> Self {
        Nonces {
            cap: cap_per_signer,
            signers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `nonce` from `signer` would be admitted now: not seen in the
    /// window, and the signer under its cap. Records nothing, so it is safe
    /// to call before the request is authenticated.
    pub fn check(&self, signer: &K, nonce: &Nonce, now_ms: u64) -> Result<(), NonceError> {
        let mut signers = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(window) = signers.get_mut(signer) else {
            return if self.cap == 0 {
                Err(NonceError::Full { cap: self.cap })
            } else {
                Ok(())
            };
        };
        window.prune(now_ms);
        if window.seen.contains(nonce) {
            return Err(NonceError::Replayed);
        }
        if window.seen.len() >= self.cap {
            return Err(NonceError::Full { cap: self.cap });
        }
        Ok(())
    }

    /// Admits `nonce` from `signer` and remembers it until `expires_ms`
    /// (Unix ms), or refuses it as a replay or over the cap. Checking and
    /// recording are one step, so of two concurrent copies of a request
    /// exactly one is admitted. Call it only for authenticated requests.
    pub fn record(
        &self,
        signer: &K,
        nonce: Nonce,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), NonceError> {
        let mut signers = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        // Signers whose windows emptied are dropped on the way, so the map
        // holds only signers with live entries.
        signers.retain(|_, w| {
            w.prune(now_ms);
            !w.order.is_empty()
        });
        if self.cap == 0 {
            return Err(NonceError::Full { cap: self.cap });
        }
        let window = signers.entry(signer.clone()).or_default();
        if window.seen.contains(&nonce) {
            return Err(NonceError::Replayed);
        }
        if window.seen.len() >= self.cap {
            return Err(NonceError::Full { cap: self.cap });
        }
        window.seen.insert(nonce);
        window.order.push_back((expires_ms, nonce));
        Ok(())
    }

    /// How many live nonces `signer` has (expired ones may still count
    /// until the next call prunes them).
    pub fn len(&self, signer: &K) -> usize {
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(signer)
            .map_or(0, |w| w.seen.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(b: u8) -> Nonce {
        Nonce::from_bytes([b; Nonce::LEN])
    }

    #[test]
    fn a_nonce_is_admitted_once_per_signer_inside_its_window() {
        let store = Nonces::new(10);
        assert_eq!(store.check(&1u64, &n(1), 1_000), Ok(()));
        assert_eq!(store.record(&1, n(1), 5_000, 1_000), Ok(()));
        assert_eq!(store.check(&1, &n(1), 2_000), Err(NonceError::Replayed));
        assert_eq!(
            store.record(&1, n(1), 5_000, 2_000),
            Err(NonceError::Replayed)
        );
        // Another signer's identical nonce is its own.
        assert_eq!(store.record(&2, n(1), 5_000, 2_000), Ok(()));
        assert_eq!(store.len(&1), 1);
        assert_eq!(store.len(&2), 1);
    }

    #[test]
    fn an_entry_is_forgotten_only_after_it_expires() {
        let store = Nonces::new(10);
        store.record(&1u64, n(1), 5_000, 1_000).expect("admitted");
        assert_eq!(store.check(&1, &n(1), 4_999), Err(NonceError::Replayed));
        assert_eq!(store.check(&1, &n(1), 5_000), Ok(()));
        assert_eq!(store.len(&1), 0);
        // A signer with no live entries leaves the map on the next record.
        store.record(&2, n(2), 9_000, 5_000).expect("admitted");
        assert_eq!(store.signers.lock().expect("lock").len(), 1);
    }

    #[test]
    fn a_signer_over_its_cap_is_refused_instead_of_forgetting() {
        let store = Nonces::new(3);
        for b in 0..3 {
            store.record(&1u64, n(b), 10_000, 1_000).expect("admitted");
        }
        assert_eq!(
            store.record(&1, n(9), 10_000, 1_000),
            Err(NonceError::Full { cap: 3 })
        );
        assert_eq!(
            store.check(&1, &n(9), 1_000),
            Err(NonceError::Full { cap: 3 })
        );
        // The old nonces are all still remembered.
        for b in 0..3 {
            assert_eq!(store.check(&1, &n(b), 1_000), Err(NonceError::Replayed));
        }
        // Other signers are not affected.
        assert_eq!(store.record(&2, n(9), 10_000, 1_000), Ok(()));
        // Once the window passes, the signer is admitted again.
        assert_eq!(store.record(&1, n(9), 20_000, 10_000), Ok(()));
        assert_eq!(store.len(&1), 1);
    }

    #[test]
    fn a_late_expiring_entry_keeps_the_ones_behind_it_remembered() {
        let store = Nonces::new(10);
        store.record(&1u64, n(1), 9_000, 1_000).expect("admitted");
        store.record(&1, n(2), 3_000, 1_000).expect("admitted");
        // n(2)'s own window passed, but it is behind n(1): still refused,
        // which is safe (never forgotten early).
        assert_eq!(store.check(&1, &n(2), 4_000), Err(NonceError::Replayed));
        assert_eq!(store.check(&1, &n(2), 9_000), Ok(()));
    }

    #[test]
    fn nonces_are_random_and_round_trip_through_hex() {
        let a = Nonce::random();
        assert_ne!(a, Nonce::random());
        let hex = a.to_hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(Nonce::parse_hex(&hex).expect("parses"), a);
        assert!(Nonce::parse_hex("abcd").is_err());
        assert!(Nonce::parse_hex(&"zz".repeat(16)).is_err());
    }
}
