//! The node-side store behind the staff web apps: staff accounts, their
//! signing keys, sign-in sessions with CSRF tokens, a failed-sign-in rate
//! limiter, the organisations' data keys this node holds, and the result of
//! the last full chain verification a regulator asked for.
//!
//! Each concern has its own file: `users` (accounts, password hashes and
//! sign-in, and the admin's changes), `password_policy` (what a new password
//! must be), `totp` (the second factor's codes), `keystore` (staff signing keys sealed at rest), `sessions`
//! (sessions and CSRF tokens, and ending them when a key is revoked on the
//! chain), `tokens` (API tokens for hospital systems), `rate_limit` (the
//! failed-sign-in limiter),
//! `data_keys` (organisations' data keys) and `verification` (the last chain
//! verification). [`Accounts`] ties them together over one sled tree.
//!
//! Everything durable lives in the `accounts` sled tree of the node's own
//! database, beside (never inside) the replicated `chain` tree: accounts are
//! one organisation's business, not the consortium's, so they are not
//! ordered by Raft and never reach another node.
//!
//! Key layout (ASCII prefix, then the rest):
//!
//! | prefix | rest of key                    | value                                  |
//! |--------|--------------------------------|----------------------------------------|
//! | `a/`   | username (lower case)          | a stored account, JSON, with its disable/enable audit trail |
//! | `s/`   | keyed SHA3-256 of the token    | a stored session, JSON                 |
//! | `t/`   | keyed SHA3-256 of the API token | a [`TokenInfo`], JSON                 |
//! | `m/verification` |                      | [`Verification`], JSON                 |
//!
//! Secrets at rest:
//!
//! * Passwords are argon2id hashes (PHC strings) with the argon2 crate's
//!   defaults (19 MiB, 2 passes, 1 lane: the OWASP minimum for argon2id).
//! * Each staff member's secp256k1 signing key is sealed with
//!   ChaCha20-Poly1305 under the node's **key-store key**, with the username
//!   and public key as associated data so a sealed key cannot be moved to
//!   another account. The key-store key is
//!   `SHA3-256("rxchain-keystore-v1\0" || node secret key)`. It is derived
//!   rather than kept in a file of its own because the node key file is
//!   already the one secret an operator must protect on this machine: a copy
//!   of the database alone (a backup, a stolen disk image of the data
//!   directory) then reveals no staff key, and there is no second secret to
//!   provision, rotate or lose. The domain tag makes the derived key
//!   independent of every other use of the node key (block and Raft
//!   signatures, other derivations), so neither can help attack the other.
//!   It is held in memory only, in a [`Secret`], and never printed.
//! * Session tokens are 32 random bytes; only a keyed hash
//!   (`SHA3-256("rxchain-session-v1\0" || node secret key || token)`) is
//!   stored, so the database does not hold usable cookies, and a cookie
//!   minted by one node means nothing to a node with another key.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rxchain_contracts::{OrgId, SecretKey};
use serde::Serialize;
use sha3::{Digest, Sha3_256};

use crate::config::Secret;
use crate::keys::fill_random;
use crate::store::StoreError;

mod data_keys;
mod keystore;
pub mod password_policy;
mod rate_limit;
mod sessions;
mod tokens;
pub mod totp;
mod users;
mod verification;

pub use password_policy::PolicyError;
pub use rate_limit::{FAILURE_WINDOW, MAX_FAILURES, MAX_FAILURES_PER_ADDRESS};
pub use sessions::{constant_time_eq, Session, SESSION_TTL};
pub use tokens::{TokenInfo, MAX_TOKEN_DAYS, TOKEN_PREFIX};
pub use users::{
    hash_password, Account, AccountChange, AccountSummary, Actor, ChangeKind, NewAccount, PastKey,
    SecondFactor, StatusChange,
};
pub use verification::Verification;

/// Password hashes computed at once. Each argon2id run holds 19 MiB for
/// a few hundred milliseconds; without a cap, a burst of sign-ins could
/// occupy every blocking thread and gigabytes of memory.
const CONCURRENT_HASHES: usize = 4;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The username and password do not match an account.
    #[error("the username or password is wrong")]
    BadCredentials,
    /// Too many failed sign-ins for this username recently.
    #[error("too many failed sign-ins for this account; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// Seconds until the oldest counted failure leaves the window.
        retry_after_secs: u64,
    },
    /// Too many failed sign-ins from this client address recently, whatever
    /// the usernames.
    #[error("too many failed sign-ins from this address; try again in {retry_after_secs} seconds")]
    TooManyAttemptsFromAddress {
        /// Seconds until the oldest counted failure leaves the window.
        retry_after_secs: u64,
    },
    /// The account is disabled by its organisation's admin. Only said to
    /// someone who gave its right password.
    #[error("the account {0} is disabled; ask your organisation's administrator")]
    Disabled(String),
    /// The account belongs to another organisation than the one asking.
    #[error("the account {username} does not belong to {org}")]
    NotYourAccount {
        /// The account.
        username: String,
        /// The organisation that asked.
        org: OrgId,
    },
    /// An account with this username exists already.
    #[error("an account named {0} exists already")]
    Exists(String),
    /// No account has this username.
    #[error("no account is named {0}")]
    UnknownAccount(String),
    /// The stored signing key does not open with this node's key-store key:
    /// the database was copied from a node with another node key, or altered.
    #[error("the signing key of {0} cannot be opened with this node's key")]
    KeyUnavailable(String),
    /// The account details are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Password hashing failed (a bad stored hash or a bug).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The person was revoked: the account stays for the record but can
    /// never be enabled, reset or given a key again.
    #[error("the account {0} is revoked permanently")]
    Revoked(String),
    /// The account needs a second factor (a TOTP code) and none was given.
    /// Only said to someone who gave its right password.
    #[error("the account {0} needs a one-time code from its authenticator app")]
    SecondFactorRequired(String),
    /// A new password does not meet the password policy.
    #[error(transparent)]
    WeakPassword(#[from] PolicyError),
}

impl From<sled::Error> for AccountError {
    fn from(e: sled::Error) -> Self {
        AccountError::Store(StoreError::Sled(e))
    }
}

/// The account store. Shared as `Arc<Accounts>`.
pub struct Accounts {
    tree: sled::Tree,
    /// Seals staff signing keys at rest. Derived from the node key; never printed.
    keystore: keystore::KeyStore,
    /// Keys the stored hash of session tokens. Derived from the node key.
    session_key: Secret<[u8; 32]>,
    /// Recent failed sign-ins per username and per client address.
    limiter: rate_limit::RateLimiter,
    /// Organisations' data (decryption) keys this node holds: its own
    /// organisation's from `data_key_file`, or every organisation's in the
    /// demo.
    data_keys: data_keys::DataKeys,
    /// Caps concurrent argon2 runs (see [`CONCURRENT_HASHES`]).
    hashing: Arc<tokio::sync::Semaphore>,
    /// Set while a background chain verification runs, so only one does.
    verifying: AtomicBool,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Opens the `accounts` tree of the node's database, with keys derived
    /// from the node key.
    pub fn open(db: &sled::Db, node_key: &SecretKey) -> Result<Self, StoreError> {
        Ok(Accounts {
            tree: db.open_tree("accounts")?,
            keystore: keystore::KeyStore::new(Secret::new(derive_key(
                b"rxchain-keystore-v1\0",
                node_key,
            ))),
            session_key: Secret::new(derive_key(b"rxchain-session-v1\0", node_key)),
            limiter: rate_limit::RateLimiter::default(),
            data_keys: data_keys::DataKeys::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
            verifying: AtomicBool::new(false),
        })
    }
}

/// A key for one purpose, derived from the node key under a domain tag.
fn derive_key(tag: &[u8], node_key: &SecretKey) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(tag);
    h.update(node_key.to_bytes());
    h.finalize().into()
}

/// 32 fresh random bytes in hex: session tokens and CSRF tokens.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    hex::encode(b)
}

/// Normalises a username: trimmed and lower case, so `Dr.Ada` signs in as `dr.ada`.
fn normalise(username: &str) -> String {
    username.trim().to_lowercase()
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, AccountError> {
    serde_json::to_vec(v).map_err(|e| {
        AccountError::Store(StoreError::Encode {
            what: "account record",
            detail: e.to_string(),
        })
    })
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, AccountError> {
    serde_json::from_slice(bytes).map_err(|e| {
        AccountError::Store(StoreError::Corrupt {
            what: what.to_string(),
            detail: e.to_string(),
        })
    })
}

/// Helpers shared by the submodules' tests.
#[cfg(test)]
mod test_support {
    use rxchain_contracts::tx::Role;
    use rxchain_contracts::{OrgId, SecretKey};

    use super::{Accounts, NewAccount};

    /// A fresh store in a temporary directory, keyed by a node key derived from `node`.
    pub(super) fn open(node: &str) -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (
            dir,
            Accounts::open(&db, &SecretKey::derive("test", node.as_bytes())).unwrap(),
        )
    }

    /// A practitioner account at `hosp-north`.
    pub(super) fn new(username: &str) -> NewAccount {
        NewAccount {
            username: username.into(),
            name: "Test Person".into(),
            org: OrgId::parse("hosp-north").unwrap(),
            role: Role::Practitioner,
        }
    }
}
