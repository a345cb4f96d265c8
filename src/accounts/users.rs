//! Staff accounts: creation with a password hash and a sealed signing key,
//! look-up, and sign-in (password check behind the rate limiter).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, PublicKey, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::keystore::SealedKey;
use super::{from_json, normalise, to_json, AccountError, Accounts, Session};
use crate::clock::now;
use crate::config::Secret;
use crate::keys::fill_random;

/// Longest accepted username and password. Longer input is refused as bad
/// credentials before any hashing, so it costs nothing.
const MAX_USERNAME: usize = 64;
const MAX_PASSWORD: usize = 1024;

/// The prefix of account records in the accounts tree.
const ACCOUNT: &[u8] = b"a/";

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
        let sealed = self.keystore.seal(&username, key)?;
        let stored = StoredAccount {
            account: account.clone(),
            password_hash: password_hash.to_string(),
            key_nonce: sealed.nonce,
            sealed_key: sealed.sealed,
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
        self.keystore.open(
            &stored.account.username,
            &stored.account.public_key,
            &SealedKey {
                nonce: stored.key_nonce,
                sealed: stored.sealed_key,
            },
        )
    }

    /// Checks a username and password and, when they match, starts a
    /// session. Returns the session token (for the cookie) and the session.
    ///
    /// The rate limit is checked first, so a locked-out username costs no
    /// hashing; argon2 runs on a blocking thread, at most
    /// `CONCURRENT_HASHES` at a time. Unknown usernames are verified
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
        self.limiter.check(&username)?;
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
            self.limiter.record_failure(&username);
            return Err(AccountError::BadCredentials);
        };
        self.limiter.clear(&username);
        self.start_session(stored.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::test_support::{new, open};

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
    fn a_database_copied_to_another_node_does_not_open_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let n1 = Accounts::open(&db, &SecretKey::derive("test", b"n1")).unwrap();
        let key = SecretKey::derive("test", b"staff");
        n1.create(new("dr.test"), &hash_password("pw").unwrap(), &key)
            .unwrap();
        let n2 = Accounts::open(&db, &SecretKey::derive("test", b"n2")).unwrap();
        assert!(matches!(
            n2.signing_key("dr.test"),
            Err(AccountError::KeyUnavailable(u)) if u == "dr.test"
        ));
    }
}
