//! Staff accounts: creation with a password hash and a sealed signing key,
//! look-up, sign-in (password check behind the rate limiter), and the
//! changes an organisation's admin makes (disable, enable, password reset,
//! key rotation, revocation), each recorded on the account with who made it
//! and when.
//!
//! An account created by an admin ([`Accounts::create_enrolled`]) or whose
//! password an admin reset must change its password before anything else
//! (`must_change_password`, enforced by the HTTP session layer). A rotated
//! key is kept in the account's key history, so what the old key signed
//! stays attributed to the same person.

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, PublicKey, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::keystore::SealedKey;
use super::{from_json, normalise, to_json, AccountError, Accounts};
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Whether the password must be changed before the account may do
    /// anything else: set at enrolment by an admin and after a reset.
    #[serde(default)]
    pub must_change_password: bool,
}

/// A signing key the account used before a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastKey {
    /// The old public key; the chain still names it on what it signed.
    pub key: PublicKey,
    /// When it was replaced (ms).
    pub until: Timestamp,
}

/// A second sign-in factor an account must give.
///
/// For prescribers of controlled drugs (US EPCS rules require two factors
/// to sign such prescriptions): an account with a second factor is refused
/// sign-in with its password alone ([`AccountError::SecondFactorRequired`])
/// or with a wrong or replayed code ([`AccountError::BadCredentials`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SecondFactor {
    /// A time-based one-time password (RFC 6238, 30 s steps, 6 digits;
    /// see [`super::totp`]).
    Totp {
        /// The ChaCha20-Poly1305 nonce of the sealed secret, hex.
        nonce: String,
        /// The shared secret sealed under the key-store key, hex.
        sealed_secret: String,
        /// The last step a code was accepted for: no code is accepted twice.
        #[serde(default)]
        last_step: Option<u64>,
    },
}

/// Who made an account change: the organisation, and the admin's username
/// when a signed-in admin made it (none when the organisation's genesis
/// admin key signed the request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The organisation.
    pub org: OrgId,
    /// The admin's username, when a person signed in made the change.
    pub user: Option<String>,
}

impl Actor {
    /// The organisation's admin key itself.
    pub fn org_key(org: &OrgId) -> Self {
        Actor {
            org: org.clone(),
            user: None,
        }
    }
}

/// An account as its organisation's admin sees it: its standing and its
/// history, no secrets.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// When it was created (ms).
    pub created_at: Timestamp,
    /// Whether sign-in is refused.
    pub disabled: bool,
    /// The revocation, once the person was revoked (permanent).
    pub revoked: Option<AccountChange>,
    /// The last successful sign-in (ms), if any.
    pub last_sign_in: Option<Timestamp>,
    /// The keys the account used before, oldest first.
    pub past_keys: Vec<PastKey>,
    /// Whether a second factor is enrolled.
    pub second_factor: bool,
    /// Every audited change, oldest first.
    pub changes: Vec<AccountChange>,
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
    /// The change that disabled the account, while it is disabled. Absent
    /// in records written before accounts could be disabled.
    #[serde(default)]
    disabled: Option<AccountChange>,
    /// Every audited change, oldest first: the account's audit trail.
    #[serde(default)]
    changes: Vec<AccountChange>,
    /// The last successful sign-in.
    #[serde(default)]
    last_sign_in: Option<Timestamp>,
    /// Keys replaced by rotation, oldest first.
    #[serde(default)]
    past_keys: Vec<PastKey>,
    /// The revocation of the person, once revoked (permanent).
    #[serde(default)]
    revoked: Option<AccountChange>,
    /// The second factor, when one is required.
    #[serde(default)]
    second_factor: Option<SecondFactor>,
}

impl StoredAccount {
    fn summary(&self) -> AccountSummary {
        AccountSummary {
            account: self.account.clone(),
            created_at: self.created_at,
            disabled: self.disabled.is_some(),
            revoked: self.revoked.clone(),
            last_sign_in: self.last_sign_in,
            past_keys: self.past_keys.clone(),
            second_factor: self.second_factor.is_some(),
            changes: self.changes.clone(),
        }
    }
}

/// What an audited account change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Sign-in refused and every session ended.
    Disabled,
    /// Sign-in allowed again.
    Enabled,
    /// Created by an admin, with an initial password to change.
    Created,
    /// The password was reset by an admin; it must be changed.
    PasswordReset,
    /// The account's holder changed the password.
    PasswordChanged,
    /// A new signing key replaced the old one, which was revoked.
    KeyRotated,
    /// The person's key was revoked on the chain; permanent.
    Revoked,
    /// A TOTP second factor was enrolled (replacing any earlier one).
    SecondFactorEnrolled,
}

/// One audited change to an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountChange {
    /// What was done.
    pub action: ChangeKind,
    /// The organisation that made the change (its genesis admin key
    /// signed the request, or one of its admins was signed in).
    pub by: OrgId,
    /// The signed-in admin (or, for a password change, the holder) who
    /// made the change; absent when the organisation's admin key signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_user: Option<String>,
    /// When (ms).
    pub at: Timestamp,
}

impl AccountChange {
    fn new(action: ChangeKind, by: &Actor) -> Self {
        AccountChange {
            action,
            by: by.org.clone(),
            by_user: by.user.clone(),
            at: now(),
        }
    }
}

/// The result of disabling or enabling an account.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StatusChange {
    /// The account.
    pub account: Account,
    /// Whether it is disabled now.
    pub disabled: bool,
    /// The change recorded, or the one that already stood when nothing changed.
    pub change: Option<AccountChange>,
    /// True when the account already was in the asked-for state.
    pub unchanged: bool,
    /// Sessions ended by this call.
    pub sessions_ended: usize,
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
    /// username. The password needs no change (the demo's accounts, and the
    /// first admin, who chose their own password).
    pub fn create(
        &self,
        new: NewAccount,
        password_hash: &str,
        key: &SecretKey,
    ) -> Result<Account, AccountError> {
        self.insert(new, password_hash, key, None)
    }

    /// Creates an account enrolled by an admin (`by`): its initial password
    /// must be changed at first sign-in, and the creation is audited.
    pub fn create_enrolled(
        &self,
        new: NewAccount,
        password_hash: &str,
        key: &SecretKey,
        by: &Actor,
    ) -> Result<Account, AccountError> {
        self.insert(
            new,
            password_hash,
            key,
            Some(AccountChange::new(ChangeKind::Created, by)),
        )
    }

    /// Removes an account whose key never made it onto the chain: the undo
    /// of a creation whose `register_staff` was refused or not committed,
    /// so that no account is left without its registration.
    pub fn remove_unregistered(&self, username: &str) -> Result<(), AccountError> {
        let username = normalise(username);
        self.end_sessions_of(&username)?;
        self.tree.remove([ACCOUNT, username.as_bytes()].concat())?;
        self.tree.flush()?;
        tracing::info!(target: "rxchain::audit", %username, "account removed: its key was not registered on the chain");
        Ok(())
    }

    fn insert(
        &self,
        new: NewAccount,
        password_hash: &str,
        key: &SecretKey,
        created: Option<AccountChange>,
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
            must_change_password: created.is_some(),
        };
        let sealed = self.keystore.seal(&username, key)?;
        let stored = StoredAccount {
            account: account.clone(),
            password_hash: password_hash.to_string(),
            key_nonce: sealed.nonce,
            sealed_key: sealed.sealed,
            created_at: now(),
            disabled: None,
            changes: created.into_iter().collect(),
            last_sign_in: None,
            past_keys: Vec::new(),
            revoked: None,
            second_factor: None,
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

    /// The account named `username` unless it is disabled.
    pub(super) fn enabled_account(&self, username: &str) -> Result<Option<Account>, AccountError> {
        Ok(self
            .stored(username)?
            .filter(|s| s.disabled.is_none())
            .map(|s| s.account))
    }

    /// Checks a username and password from a client at `client` (unknown
    /// for in-process callers) and answers the account when they match.
    /// The caller decides whether to start a session
    /// ([`Accounts::start_session`]): the HTTP layer first checks the
    /// chain's staff record.
    ///
    /// The attempt is counted against the username and the client address
    /// before any hashing and uncounted only when the password is right, so
    /// parallel guesses cannot slip past the limit; a locked-out username
    /// or address costs no hashing. argon2 runs on a blocking thread, at
    /// most `CONCURRENT_HASHES` at a time. Unknown usernames are verified
    /// against a dummy hash so that they cannot be told apart by timing,
    /// and they count towards the limit like known ones. A disabled account
    /// is refused ([`AccountError::Disabled`]) only after its password
    /// checked out, so the answer tells a guesser nothing.
    pub async fn check_sign_in(
        &self,
        username: &str,
        password: Secret<String>,
        client: Option<IpAddr>,
    ) -> Result<Account, AccountError> {
        self.check_sign_in_with(username, password, None, client)
            .await
    }

    /// [`Accounts::check_sign_in`] with a one-time code for an account
    /// with a second factor. A wrong or replayed code counts as a failed
    /// sign-in, like a wrong password; a missing one is
    /// [`AccountError::SecondFactorRequired`], told only after the right
    /// password.
    pub async fn check_sign_in_with(
        &self,
        username: &str,
        password: Secret<String>,
        otp: Option<Secret<String>>,
        client: Option<IpAddr>,
    ) -> Result<Account, AccountError> {
        let username = normalise(username);
        if username.is_empty()
            || username.len() > MAX_USERNAME
            || password.expose().len() > MAX_PASSWORD
        {
            return Err(AccountError::BadCredentials);
        }
        let reservation = self.limiter.reserve(&username, client)?;
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
        // A wrong password keeps its reservation: it is the counted failure.
        let Some(stored) = stored.filter(|_| matches) else {
            return Err(AccountError::BadCredentials);
        };
        if let Some(SecondFactor::Totp {
            nonce,
            sealed_secret,
            last_step,
        }) = &stored.second_factor
        {
            let Some(otp) = otp else {
                self.limiter.release(reservation);
                return Err(AccountError::SecondFactorRequired(stored.account.username));
            };
            let secret = self.keystore.open_bytes(
                &stored.account.username,
                "totp",
                &SealedKey {
                    nonce: nonce.clone(),
                    sealed: sealed_secret.clone(),
                },
            )?;
            // A wrong or replayed code keeps the reservation, as a wrong
            // password does.
            let Some(step) = super::totp::check(&secret, otp.expose(), now().0, *last_step) else {
                return Err(AccountError::BadCredentials);
            };
            self.use_totp_step(&stored.account.username, &stored.account.org, step)?;
        }
        self.limiter.release(reservation);
        if stored.disabled.is_some() {
            return Err(AccountError::Disabled(stored.account.username));
        }
        Ok(stored.account)
    }

    /// Disables (`disable`) or enables an account of organisation `by`,
    /// recording the change with who made it and when. Disabling also ends
    /// every session of the account, and does so even when it already was
    /// disabled. Refuses an account of another organisation.
    pub fn set_disabled(
        &self,
        username: &str,
        disable: bool,
        by: &OrgId,
    ) -> Result<StatusChange, AccountError> {
        self.set_disabled_by(username, disable, &Actor::org_key(by))
    }

    /// [`Accounts::set_disabled`] by an actor, who may be a signed-in admin.
    /// A revoked person cannot be enabled again ([`AccountError::Revoked`]).
    pub fn set_disabled_by(
        &self,
        username: &str,
        disable: bool,
        by: &Actor,
    ) -> Result<StatusChange, AccountError> {
        let mut outcome = None;
        let stored = self.modify(username, &by.org, |stored| {
            if !disable && stored.revoked.is_some() {
                return Err(AccountError::Revoked(stored.account.username.clone()));
            }
            if stored.disabled.is_some() == disable {
                let standing = if disable {
                    stored.disabled.clone()
                } else {
                    stored.changes.last().cloned()
                };
                outcome = Some((standing, true));
                return Ok(false);
            }
            let change = AccountChange::new(
                if disable {
                    ChangeKind::Disabled
                } else {
                    ChangeKind::Enabled
                },
                by,
            );
            stored.disabled = disable.then(|| change.clone());
            stored.changes.push(change.clone());
            outcome = Some((Some(change), false));
            Ok(true)
        })?;
        let (change, unchanged) = outcome.unwrap_or((None, true));
        let username = stored.account.username.clone();
        let sessions_ended = if disable {
            self.end_sessions_of(&username)?
        } else {
            0
        };
        tracing::info!(
            target: "rxchain::audit",
            %username,
            by = %by.org,
            by_user = by.user.as_deref().unwrap_or("-"),
            disabled = disable,
            unchanged,
            sessions_ended,
            "account status changed"
        );
        Ok(StatusChange {
            account: stored.account,
            disabled: disable,
            change,
            unchanged,
            sessions_ended,
        })
    }

    /// Changes the stored account of `username` with `f`, which answers
    /// whether it changed anything, by compare-and-swap so that a
    /// concurrent change is never overwritten with a stale copy. Refuses an
    /// account of another organisation than `org`. Answers the record as
    /// it stands afterwards.
    fn modify(
        &self,
        username: &str,
        org: &OrgId,
        mut f: impl FnMut(&mut StoredAccount) -> Result<bool, AccountError>,
    ) -> Result<StoredAccount, AccountError> {
        let username = normalise(username);
        let key = [ACCOUNT, username.as_bytes()].concat();
        loop {
            let Some(old) = self.tree.get(&key)? else {
                return Err(AccountError::UnknownAccount(username));
            };
            let mut stored: StoredAccount = from_json("account", &old)?;
            if &stored.account.org != org {
                return Err(AccountError::NotYourAccount {
                    username,
                    org: org.clone(),
                });
            }
            if !f(&mut stored)? {
                return Ok(stored);
            }
            let new = to_json(&stored)?;
            if self
                .tree
                .compare_and_swap(&key, Some(old), Some(new))?
                .is_ok()
            {
                self.tree.flush()?;
                return Ok(stored);
            }
        }
    }

    /// Sets a new initial password (its hash) chosen by an admin: it must be
    /// changed at the next sign-in, and every session of the account ends.
    pub fn reset_password(
        &self,
        username: &str,
        password_hash: &str,
        by: &Actor,
    ) -> Result<Account, AccountError> {
        PasswordHash::new(password_hash)
            .map_err(|e| AccountError::Invalid(format!("not a password hash: {e}")))?;
        let stored = self.modify(username, &by.org, |stored| {
            if stored.revoked.is_some() {
                return Err(AccountError::Revoked(stored.account.username.clone()));
            }
            stored.password_hash = password_hash.to_string();
            stored.account.must_change_password = true;
            stored
                .changes
                .push(AccountChange::new(ChangeKind::PasswordReset, by));
            Ok(true)
        })?;
        let ended = self.end_sessions_of(&stored.account.username)?;
        tracing::info!(target: "rxchain::audit", username = %stored.account.username, by = %by.org, by_user = by.user.as_deref().unwrap_or("-"), sessions_ended = ended, "password reset");
        Ok(stored.account)
    }

    /// The holder changes their own password: `current` must match, and
    /// the new hash replaces it; a forced change is then satisfied.
    /// Sessions other than the caller's are not ended: the holder is
    /// signed in and proved the password.
    pub async fn change_password(
        &self,
        username: &str,
        current: Secret<String>,
        new_hash: &str,
    ) -> Result<Account, AccountError> {
        PasswordHash::new(new_hash)
            .map_err(|e| AccountError::Invalid(format!("not a password hash: {e}")))?;
        let stored = self
            .stored(username)?
            .ok_or_else(|| AccountError::UnknownAccount(normalise(username)))?;
        let phc = stored.password_hash.clone();
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let matches = tokio::task::spawn_blocking(move || {
            let ok = verify_password(current.expose(), &phc);
            drop(permit);
            ok
        })
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))??;
        if !matches {
            return Err(AccountError::BadCredentials);
        }
        let me = Actor {
            org: stored.account.org.clone(),
            user: Some(stored.account.username.clone()),
        };
        let stored = self.modify(username, &me.org, |s| {
            s.password_hash = new_hash.to_string();
            s.account.must_change_password = false;
            s.changes
                .push(AccountChange::new(ChangeKind::PasswordChanged, &me));
            Ok(true)
        })?;
        tracing::info!(target: "rxchain::audit", username = %stored.account.username, "password changed by its holder");
        Ok(stored.account)
    }

    /// Replaces the account's signing key with `new_key`, keeping the old
    /// public key in its key history. The caller registers the new key on
    /// the chain first and revokes the old one after. Answers the old key.
    pub fn rotate_key(
        &self,
        username: &str,
        new_key: &SecretKey,
        by: &Actor,
    ) -> Result<PublicKey, AccountError> {
        let mut old_key = None;
        self.modify(username, &by.org, |stored| {
            if stored.revoked.is_some() {
                return Err(AccountError::Revoked(stored.account.username.clone()));
            }
            let sealed = self.keystore.seal(&stored.account.username, new_key)?;
            let old = stored.account.public_key;
            stored.past_keys.push(PastKey {
                key: old,
                until: now(),
            });
            stored.account.public_key = new_key.public();
            stored.key_nonce = sealed.nonce;
            stored.sealed_key = sealed.sealed;
            stored
                .changes
                .push(AccountChange::new(ChangeKind::KeyRotated, by));
            old_key = Some(old);
            Ok(true)
        })?;
        let old = old_key.ok_or_else(|| AccountError::UnknownAccount(normalise(username)))?;
        tracing::info!(target: "rxchain::audit", %username, old_key = %old.to_hex(), new_key = %new_key.public().to_hex(), by = %by.org, "signing key rotated");
        Ok(old)
    }

    /// Marks the person revoked (after their key's revocation committed):
    /// permanently disabled, every session ended.
    pub fn mark_revoked(&self, username: &str, by: &Actor) -> Result<Account, AccountError> {
        let stored = self.modify(username, &by.org, |stored| {
            if stored.revoked.is_some() {
                return Ok(false);
            }
            let change = AccountChange::new(ChangeKind::Revoked, by);
            stored.revoked = Some(change.clone());
            stored.disabled = Some(change.clone());
            stored.changes.push(change);
            Ok(true)
        })?;
        self.end_sessions_of(&stored.account.username)?;
        Ok(stored.account)
    }

    /// Records the step of an accepted code; refuses one not later than
    /// the last (two sign-ins racing with the same code).
    fn use_totp_step(&self, username: &str, org: &OrgId, step: u64) -> Result<(), AccountError> {
        self.modify(username, org, |stored| match &mut stored.second_factor {
            Some(SecondFactor::Totp { last_step, .. }) => {
                if last_step.is_some_and(|l| l >= step) {
                    return Err(AccountError::BadCredentials);
                }
                *last_step = Some(step);
                Ok(true)
            }
            None => Ok(false),
        })?;
        Ok(())
    }

    /// Enrols a TOTP second factor for the account (replacing any earlier
    /// one) and answers its new shared secret, to show the holder once.
    /// From now on sign-in needs a code.
    pub fn enrol_totp(&self, username: &str, by: &Actor) -> Result<Vec<u8>, AccountError> {
        let secret = super::totp::new_secret();
        self.modify(username, &by.org, |stored| {
            if stored.revoked.is_some() {
                return Err(AccountError::Revoked(stored.account.username.clone()));
            }
            let sealed = self
                .keystore
                .seal_bytes(&stored.account.username, "totp", &secret)?;
            stored.second_factor = Some(SecondFactor::Totp {
                nonce: sealed.nonce,
                sealed_secret: sealed.sealed,
                last_step: None,
            });
            stored
                .changes
                .push(AccountChange::new(ChangeKind::SecondFactorEnrolled, by));
            Ok(true)
        })?;
        tracing::info!(target: "rxchain::audit", %username, by = %by.org, by_user = by.user.as_deref().unwrap_or("-"), "TOTP second factor enrolled");
        Ok(secret.to_vec())
    }

    /// Records a successful sign-in's time.
    pub(super) fn record_sign_in(&self, username: &str, org: &OrgId) -> Result<(), AccountError> {
        self.modify(username, org, |stored| {
            stored.last_sign_in = Some(now());
            Ok(true)
        })?;
        Ok(())
    }

    /// The accounts of organisation `org` with their standing and history,
    /// by username.
    pub fn staff_of(&self, org: &OrgId) -> Result<Vec<AccountSummary>, AccountError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(ACCOUNT) {
            let (_, v) = r?;
            let stored: StoredAccount = from_json("account", &v)?;
            if &stored.account.org == org {
                out.push(stored.summary());
            }
        }
        Ok(out)
    }

    /// Every signing key the account has had: the current one first, then
    /// the rotated ones, newest first. What each signed is the person's.
    pub fn keys_of(&self, username: &str) -> Result<Vec<PublicKey>, AccountError> {
        let stored = self
            .stored(username)?
            .ok_or_else(|| AccountError::UnknownAccount(normalise(username)))?;
        Ok(std::iter::once(stored.account.public_key)
            .chain(stored.past_keys.iter().rev().map(|p| p.key))
            .collect())
    }

    /// One account's summary, if it belongs to `org`.
    pub fn summary(&self, username: &str, org: &OrgId) -> Result<AccountSummary, AccountError> {
        let stored = self
            .stored(username)?
            .ok_or_else(|| AccountError::UnknownAccount(normalise(username)))?;
        if &stored.account.org != org {
            return Err(AccountError::NotYourAccount {
                username: stored.account.username,
                org: org.clone(),
            });
        }
        Ok(stored.summary())
    }

    /// The audited changes of an account, oldest first.
    pub fn changes(&self, username: &str) -> Result<Vec<AccountChange>, AccountError> {
        self.stored(username)?
            .map(|s| s.changes)
            .ok_or_else(|| AccountError::UnknownAccount(normalise(username)))
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

    #[tokio::test]
    async fn disabling_is_audited_ends_sessions_and_is_told_only_after_the_password() {
        let (_d, a) = open("n1");
        let org = OrgId::parse("hosp-north").unwrap();
        let other = OrgId::parse("hosp-river").unwrap();
        let phc = hash_password("pw").unwrap();
        let acc = a
            .create(new("dr.test"), &phc, &SecretKey::derive("test", b"staff"))
            .unwrap();
        let (token, _) = a.start_session(acc.clone()).unwrap();
        assert!(matches!(
            a.set_disabled("dr.test", true, &other),
            Err(AccountError::NotYourAccount { .. })
        ));
        assert!(matches!(
            a.set_disabled("nobody", true, &org),
            Err(AccountError::UnknownAccount(_))
        ));
        let changed = a.set_disabled("Dr.Test", true, &org).unwrap();
        assert!(changed.disabled && !changed.unchanged);
        assert_eq!(changed.sessions_ended, 1);
        assert!(a.session(&token).unwrap().is_none());
        let pw = |p: &str| Secret::new(p.to_string());
        assert!(matches!(
            a.check_sign_in("dr.test", pw("pw"), None).await,
            Err(AccountError::Disabled(u)) if u == "dr.test"
        ));
        assert!(matches!(
            a.check_sign_in("dr.test", pw("wrong"), None).await,
            Err(AccountError::BadCredentials)
        ));
        let enabled = a.set_disabled("dr.test", false, &org).unwrap();
        assert!(!enabled.disabled && !enabled.unchanged);
        assert_eq!(
            a.check_sign_in("dr.test", pw("pw"), None).await.unwrap(),
            acc
        );
        let changes = a.changes("dr.test").unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.action, c.by.clone()))
                .collect::<Vec<_>>(),
            [
                (ChangeKind::Disabled, org.clone()),
                (ChangeKind::Enabled, org)
            ]
        );
    }
}
