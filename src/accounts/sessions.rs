//! Sign-in sessions and their CSRF tokens. Only a keyed hash of each session
//! token is stored, so the database holds no usable cookie. Sessions end on
//! sign-out, on expiry, when their account is disabled, and when the
//! account's staff key is revoked on the chain
//! ([`Accounts::end_sessions_on_revocation`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use rxchain_contracts::{PublicKey, Timestamp};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};
use subtle::ConstantTimeEq;

use super::{from_json, normalise, random_hex, to_json, Account, AccountError, Accounts};
use crate::clock::now;
use crate::store::ChainStore;

/// How long a session lasts after sign-in. A working shift, not longer.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// The prefix of session records in the accounts tree.
const SESSION: &[u8] = b"s/";

/// The stored form of a session, under the keyed hash of its token.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    username: String,
    csrf: String,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// A live session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Whose session it is.
    pub account: Account,
    /// The CSRF token state-changing calls must echo in `x-csrf-token`.
    pub csrf: String,
    /// When the session ends (ms).
    pub expires_at: Timestamp,
}

/// Compares two strings in time independent of where they differ, so a
/// CSRF token cannot be guessed byte by byte from response times. Only the
/// lengths, which are public, may end the comparison early.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Accounts {
    fn session_db_key(&self, token: &str) -> Vec<u8> {
        let mut h = Sha3_256::new();
        h.update(self.session_key.expose());
        h.update(token.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        [SESSION, digest.as_slice()].concat()
    }

    /// Starts a session for an account that has just proven its password.
    /// The sign-in time is recorded on the account.
    pub fn start_session(&self, account: Account) -> Result<(String, Session), AccountError> {
        self.purge_expired()?;
        self.record_sign_in(&account.username, &account.org)?;
        let token = random_hex();
        let created_at = now();
        let expires_at = Timestamp(created_at.0 + SESSION_TTL.as_millis() as u64);
        let stored = StoredSession {
            username: account.username.clone(),
            csrf: random_hex(),
            created_at,
            expires_at,
        };
        self.tree
            .insert(self.session_db_key(&token), to_json(&stored)?)?;
        Ok((
            token,
            Session {
                account,
                csrf: stored.csrf,
                expires_at,
            },
        ))
    }

    /// The live session of a cookie token, if any. Expired sessions, and
    /// sessions of disabled or removed accounts, are deleted on sight.
    pub fn session(&self, token: &str) -> Result<Option<Session>, AccountError> {
        // A token is 64 hex characters; anything else is not ours, and
        // refusing it early keeps odd cookies away from the database.
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = self.session_db_key(token);
        let Some(v) = self.tree.get(&key)? else {
            return Ok(None);
        };
        let stored: StoredSession = from_json("session", &v)?;
        if now() >= stored.expires_at {
            self.tree.remove(&key)?;
            return Ok(None);
        }
        let Some(account) = self.enabled_account(&stored.username)? else {
            // Disabling ends sessions already; this holds should one
            // outlive it (written by a sign-in racing the disable).
            self.tree.remove(&key)?;
            return Ok(None);
        };
        Ok(Some(Session {
            account,
            csrf: stored.csrf,
            expires_at: stored.expires_at,
        }))
    }

    /// Ends a session.
    pub fn end_session(&self, token: &str) -> Result<(), AccountError> {
        self.tree.remove(self.session_db_key(token))?;
        Ok(())
    }

    /// Ends every session of `username`; answers how many there were.
    pub fn end_sessions_of(&self, username: &str) -> Result<usize, AccountError> {
        let username = normalise(username);
        let mut ended = 0;
        for r in self.tree.scan_prefix(SESSION) {
            let (k, v) = r?;
            let theirs = match serde_json::from_slice::<StoredSession>(&v) {
                Ok(s) => s.username == username,
                // An unreadable session is useless to anyone; drop it too.
                Err(_) => true,
            };
            if theirs {
                self.tree.remove(k)?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends every session of the accounts whose signing key is `key`;
    /// answers how many there were.
    pub fn end_sessions_for_key(&self, key: &PublicKey) -> Result<usize, AccountError> {
        let mut ended = 0;
        for account in self.all()? {
            if &account.public_key == key {
                ended += self.end_sessions_of(&account.username)?;
            }
        }
        Ok(ended)
    }

    /// Makes `chain` end the sessions of a staff member on this node as soon
    /// as a block revoking their key is applied here. Every node applies
    /// every block, so a revocation ends the person's sessions everywhere.
    /// Staff requests check the chain's record as well (see
    /// `crate::http::session`), so this purge is prompt clean-up, not the
    /// only guard: a node that catches up from a snapshot skips the blocks.
    pub fn end_sessions_on_revocation(self: &Arc<Self>, chain: &ChainStore) {
        // Weak, so the chain's hook list does not keep the store alive.
        let accounts: Weak<Accounts> = Arc::downgrade(self);
        chain.on_staff_revoked(Box::new(move |key: &PublicKey| {
            let Some(accounts) = accounts.upgrade() else {
                return;
            };
            match accounts.end_sessions_for_key(key) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    target: "rxchain::audit",
                    key = %key.to_hex(),
                    sessions_ended = n,
                    "staff key revoked on the chain; sessions ended"
                ),
                // The request-time check still refuses these sessions.
                Err(e) => tracing::warn!(error = %e, "cannot end the sessions of a revoked key"),
            }
        }));
    }

    /// Deletes every expired session. Runs on each sign-in; the scan is
    /// over sessions only, a few per staff member.
    fn purge_expired(&self) -> Result<(), AccountError> {
        let t = now();
        for r in self.tree.scan_prefix(SESSION) {
            let (k, v) = r?;
            let expired = match serde_json::from_slice::<StoredSession>(&v) {
                Ok(s) => t >= s.expires_at,
                // An unreadable session is useless; drop it rather than fail sign-in.
                Err(_) => true,
            };
            if expired {
                self.tree.remove(k)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::hash_password;
    use crate::accounts::test_support::{new, open};
    use rxchain_contracts::SecretKey;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn a_session_lives_until_it_is_ended_and_only_on_its_node() {
        let (_d, a) = open("n1");
        let phc = hash_password("pw").unwrap();
        let acc = a
            .create(new("dr.test"), &phc, &SecretKey::derive("test", b"staff"))
            .unwrap();
        let (token, session) = a.start_session(acc.clone()).unwrap();
        let found = a.session(&token).unwrap().unwrap();
        assert_eq!(found.account, acc);
        assert_eq!(found.csrf, session.csrf);
        // The token itself is not a database key.
        assert!(!a.tree.contains_key(token.as_bytes()).unwrap());
        assert!(a.session("not-a-token").unwrap().is_none());
        a.end_session(&token).unwrap();
        assert!(a.session(&token).unwrap().is_none());
    }
}
