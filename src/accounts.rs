//! The node-side store behind the staff web apps: staff accounts, their
//! signing keys, sign-in sessions with CSRF tokens, a failed-sign-in rate
//! limiter, the organisations' data keys this node holds, and the result of
//! the last full chain verification a regulator asked for.
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
//! | `a/`   | username (lower case)          | [`StoredAccount`], JSON                |
//! | `s/`   | keyed SHA3-256 of the token    | [`StoredSession`], JSON                |
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, PublicKey, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use crate::clock::now;
use crate::config::Secret;
use crate::keys::fill_random;
use crate::store::StoreError;

/// How long a session lasts after sign-in. A working shift, not longer.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Failed sign-ins allowed per username inside [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// The sliding window over which failed sign-ins are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Password hashes computed at once. Each argon2id run holds 19 MiB for
/// a few hundred milliseconds; without a cap, a burst of sign-ins could
/// occupy every blocking thread and gigabytes of memory.
const CONCURRENT_HASHES: usize = 4;

/// Longest accepted username and password. Longer input is refused as bad
/// credentials before any hashing, so it costs nothing.
const MAX_USERNAME: usize = 64;
const MAX_PASSWORD: usize = 1024;

/// Usernames remembered by the rate limiter before stale ones are pruned.
const LIMITER_PRUNE_AT: usize = 10_000;

const ACCOUNT: &[u8] = b"a/";
const SESSION: &[u8] = b"s/";
const VERIFICATION: &[u8] = b"m/verification";

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
}

impl From<sled::Error> for AccountError {
    fn from(e: sled::Error) -> Self {
        AccountError::Store(StoreError::Sled(e))
    }
}

/// A staff account as the rest of the node sees it: no secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Sign-in name, lower case.
    pub username: String,
    /// Display name, as registered on the chain.
    pub name: String,
    /// The organisation the account acts for.
    pub org: OrgId,
    /// What the account may do.
    pub role: Role,
    /// The public half of the signing key; the chain names this key.
    pub public_key: PublicKey,
}

/// The stored form of an account.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    #[serde(flatten)]
    account: Account,
    /// argon2id PHC string.
    password_hash: String,
    /// ChaCha20-Poly1305 nonce of the sealed signing key, hex.
    key_nonce: String,
    /// The signing key sealed under the key-store key, tag appended, hex.
    sealed_key: String,
    /// When the account was created (ms).
    created_at: Timestamp,
}

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

/// The result of a full chain verification run on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// When it finished (ms).
    pub at: Timestamp,
    /// Whether every check passed.
    pub ok: bool,
    /// The last block checked.
    pub height: u64,
    /// What was checked, or the first failure.
    pub message: String,
}

/// What an account is created with.
pub struct NewAccount {
    /// Sign-in name; stored lower case.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Organisation.
    pub org: OrgId,
    /// Role.
    pub role: Role,
}

/// The account store. Shared as `Arc<Accounts>`.
pub struct Accounts {
    tree: sled::Tree,
    /// Seals staff signing keys at rest. Derived from the node key; never printed.
    keystore_key: Secret<[u8; 32]>,
    /// Keys the stored hash of session tokens. Derived from the node key.
    session_key: Secret<[u8; 32]>,
    /// Recent failed sign-ins per username. A std mutex: it is held for a
    /// few map operations, never across an `.await`, so an async mutex
    /// would only add cost.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Organisations' data (decryption) keys this node holds: its own
    /// organisation's from `data_key_file`, or every organisation's in the
    /// demo. A std lock: written at start-up, then only read, briefly.
    data_keys: RwLock<HashMap<OrgId, SecretKey>>,
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

fn derive_key(tag: &[u8], node_key: &SecretKey) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(tag);
    h.update(node_key.to_bytes());
    h.finalize().into()
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    hex::encode(b)
}

/// Compares two strings in time independent of where they differ, so a
/// CSRF token cannot be guessed byte by byte from response times.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Normalises a username: trimmed and lower case, so `Dr.Ada` signs in as `dr.ada`.
fn normalise(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Hashes a password with argon2id and a fresh salt. CPU and memory heavy
/// (about 19 MiB): run it on a blocking thread.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> Result<bool, AccountError> {
    let parsed = PasswordHash::new(phc).map_err(|e| AccountError::Hashing(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A hash that no password of interest matches, verified against when the
/// username is unknown so that unknown and known usernames take equally long.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("rxchain: no such account").unwrap_or_default())
}

impl Accounts {
    /// Opens the `accounts` tree of the node's database, with keys derived
    /// from the node key.
    pub fn open(db: &sled::Db, node_key: &SecretKey) -> Result<Self, StoreError> {
        Ok(Accounts {
            tree: db.open_tree("accounts")?,
            keystore_key: Secret::new(derive_key(b"rxchain-keystore-v1\0", node_key)),
            session_key: Secret::new(derive_key(b"rxchain-session-v1\0", node_key)),
            failures: Mutex::new(HashMap::new()),
            data_keys: RwLock::new(HashMap::new()),
            hashing: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
            verifying: AtomicBool::new(false),
        })
    }

    // ---- accounts -------------------------------------------------------

    fn key_aad(username: &str, public: &PublicKey) -> Vec<u8> {
        [
            b"rxchain-staff-key-v1\0".as_slice(),
            username.as_bytes(),
            &[0],
            public.as_bytes(),
        ]
        .concat()
    }

    /// Creates an account from a password hash (see [`hash_password`]) and
    /// the staff member's signing key, sealing the key. Refuses an existing
    /// username.
    pub fn create(
        &self,
        new: NewAccount,
        password_hash: &str,
        key: &SecretKey,
    ) -> Result<Account, AccountError> {
        let username = normalise(&new.username);
        if username.is_empty()
            || username.len() > MAX_USERNAME
            || username.chars().any(char::is_whitespace)
        {
            return Err(AccountError::Invalid(format!(
                "a username has 1 to {MAX_USERNAME} characters and no spaces"
            )));
        }
        PasswordHash::new(password_hash)
            .map_err(|e| AccountError::Invalid(format!("not a password hash: {e}")))?;
        let account = Account {
            username: username.clone(),
            name: new.name,
            org: new.org,
            role: new.role,
            public_key: key.public(),
        };
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        let cipher = ChaCha20Poly1305::new(self.keystore_key.expose().into());
        let secret = key.to_bytes();
        let aad = Self::key_aad(&username, &account.public_key);
        let sealed_key = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &secret,
                    aad: &aad,
                },
            )
            .map_err(|_| AccountError::Hashing("sealing the signing key failed".into()))?;
        let stored = StoredAccount {
            account: account.clone(),
            password_hash: password_hash.to_string(),
            key_nonce: hex::encode(nonce),
            sealed_key: hex::encode(sealed_key),
            created_at: now(),
        };
        let bytes = to_json(&stored)?;
        let key = [ACCOUNT, username.as_bytes()].concat();
        match self
            .tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(bytes))?
        {
            Ok(()) => {
                self.tree.flush()?;
                Ok(account)
            }
            Err(_) => Err(AccountError::Exists(username)),
        }
    }

    fn stored(&self, username: &str) -> Result<Option<StoredAccount>, AccountError> {
        let key = [ACCOUNT, normalise(username).as_bytes()].concat();
        self.tree
            .get(key)?
            .map(|v| from_json("account", &v))
            .transpose()
    }

    /// The account named `username`, if any.
    pub fn account(&self, username: &str) -> Result<Option<Account>, AccountError> {
        Ok(self.stored(username)?.map(|s| s.account))
    }

    /// Every account, by username.
    pub fn all(&self) -> Result<Vec<Account>, AccountError> {
        self.tree
            .scan_prefix(ACCOUNT)
            .map(|r| {
                let (_, v) = r?;
                Ok(from_json::<StoredAccount>("account", &v)?.account)
            })
            .collect()
    }

    /// Opens the staff member's signing key, for signing a transaction on
    /// their behalf. Microseconds of work; the key lives only as long as
    /// the returned value.
    pub fn signing_key(&self, username: &str) -> Result<SecretKey, AccountError> {
        let stored = self
            .stored(username)?
            .ok_or_else(|| AccountError::UnknownAccount(username.to_string()))?;
        let unavailable = || AccountError::KeyUnavailable(stored.account.username.clone());
        let cipher = ChaCha20Poly1305::new(self.keystore_key.expose().into());
        let aad = Self::key_aad(&stored.account.username, &stored.account.public_key);
        let nonce: [u8; 12] = hex::decode(&stored.key_nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(unavailable)?;
        let sealed = hex::decode(&stored.sealed_key).map_err(|_| unavailable())?;
        let bytes = cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| unavailable())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| unavailable())?;
        let key = SecretKey::from_bytes(&bytes).map_err(|_| unavailable())?;
        if key.public() != stored.account.public_key {
            return Err(unavailable());
        }
        Ok(key)
    }

    // ---- sign-in and rate limiting ---------------------------------------

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // The map holds only counters; a panic elsewhere cannot leave it
        // inconsistent in a way that matters, so a poisoned lock is used as is.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses when `username` has [`MAX_FAILURES`] failed sign-ins inside
    /// the window.
    pub fn check_rate(&self, username: &str) -> Result<(), AccountError> {
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

    fn record_failure(&self, username: &str) {
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

    fn clear_failures(&self, username: &str) {
        self.failures().remove(&normalise(username));
    }

    /// Checks a username and password and, when they match, starts a
    /// session. Returns the session token (for the cookie) and the session.
    ///
    /// The rate limit is checked first, so a locked-out username costs no
    /// hashing; argon2 runs on a blocking thread, at most
    /// [`CONCURRENT_HASHES`] at a time. Unknown usernames are verified
    /// against a dummy hash so that they cannot be told apart by timing,
    /// and they count towards the limit like known ones.
    pub async fn sign_in(
        &self,
        username: &str,
        password: Secret<String>,
    ) -> Result<(String, Session), AccountError> {
        let username = normalise(username);
        if username.is_empty()
            || username.len() > MAX_USERNAME
            || password.expose().len() > MAX_PASSWORD
        {
            return Err(AccountError::BadCredentials);
        }
        self.check_rate(&username)?;
        let stored = self.stored(&username)?;
        let phc = stored.as_ref().map(|s| s.password_hash.clone());
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let matches = tokio::task::spawn_blocking(move || {
            let ok = match &phc {
                Some(phc) => verify_password(password.expose(), phc),
                None => {
                    // Only the time spent matters here, not the answer.
                    let _ = verify_password(password.expose(), dummy_hash());
                    Ok(false)
                }
            };
            drop(permit);
            ok
        })
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))??;
        let Some(stored) = stored.filter(|_| matches) else {
            self.record_failure(&username);
            return Err(AccountError::BadCredentials);
        };
        self.clear_failures(&username);
        self.start_session(stored.account)
    }

    // ---- sessions --------------------------------------------------------

    fn session_db_key(&self, token: &str) -> Vec<u8> {
        let mut h = Sha3_256::new();
        h.update(self.session_key.expose());
        h.update(token.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        [SESSION, digest.as_slice()].concat()
    }

    /// Starts a session for an account that has just proven its password.
    pub fn start_session(&self, account: Account) -> Result<(String, Session), AccountError> {
        self.purge_expired()?;
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

    /// The live session of a cookie token, if any. Expired sessions are
    /// deleted on sight.
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
        let Some(account) = self.account(&stored.username)? else {
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

    // ---- data keys -------------------------------------------------------

    /// Records an organisation's data key, for opening sealed content
    /// addressed to it (the prescriber's patient names, pharmacy hand-overs).
    pub fn add_data_key(&self, org: OrgId, key: SecretKey) {
        self.data_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org, key);
    }

    /// An organisation's data key, when this node holds it.
    pub fn data_key(&self, org: &OrgId) -> Option<SecretKey> {
        self.data_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(org)
            .cloned()
    }

    // ---- chain verification record --------------------------------------

    /// Marks a verification as running; false when one already runs.
    pub fn begin_verification(&self) -> bool {
        self.verifying
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a finished verification and clears the running mark.
    pub fn finish_verification(&self, v: &Verification) -> Result<(), AccountError> {
        let res = to_json(v).and_then(|b| {
            self.tree.insert(VERIFICATION, b)?;
            Ok(())
        });
        self.verifying.store(false, Ordering::Release);
        res
    }

    /// Whether a verification is running now.
    pub fn verification_running(&self) -> bool {
        self.verifying.load(Ordering::Acquire)
    }

    /// The last recorded verification.
    pub fn last_verification(&self) -> Result<Option<Verification>, AccountError> {
        self.tree
            .get(VERIFICATION)?
            .map(|v| from_json("verification", &v))
            .transpose()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(node: &str) -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (
            dir,
            Accounts::open(&db, &SecretKey::derive("test", node.as_bytes())).unwrap(),
        )
    }

    fn new(username: &str) -> NewAccount {
        NewAccount {
            username: username.into(),
            name: "Test Person".into(),
            org: OrgId::parse("hosp-north").unwrap(),
            role: Role::Practitioner,
        }
    }

    #[test]
    fn signing_keys_round_trip_and_are_bound_to_their_account() {
        let (_d, a) = open("n1");
        let phc = hash_password("pw").unwrap();
        let key = SecretKey::derive("test", b"staff");
        let acc = a.create(new("Dr.Test"), &phc, &key).unwrap();
        assert_eq!(acc.username, "dr.test");
        assert_eq!(a.signing_key("dr.test").unwrap().public(), key.public());
        assert!(matches!(
            a.create(new("dr.test"), &phc, &key),
            Err(AccountError::Exists(_))
        ));
        // The sealed key is not stored in the clear.
        let raw = a.tree.get([ACCOUNT, b"dr.test"].concat()).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&hex::encode(key.to_bytes())));
    }

    #[test]
    fn rate_limit_after_five_failures() {
        let (_d, a) = open("n1");
        for _ in 0..MAX_FAILURES {
            a.check_rate("x").unwrap();
            a.record_failure("X ");
        }
        assert!(matches!(
            a.check_rate("x"),
            Err(AccountError::TooManyAttempts { .. })
        ));
        a.clear_failures("x");
        a.check_rate("x").unwrap();
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
