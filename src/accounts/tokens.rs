//! API tokens: what a hospital system uses instead of a browser session to
//! act as one doctor (FHIR import). A staff admin issues one for an account
//! of their organisation; it is shown once. Only a keyed hash of the token
//! is stored (like sessions), with the account, a label, who issued it and
//! when it ends. A token works while it has not expired or been revoked and
//! its account is enabled and its key active on the chain (checked at each
//! use, as for sessions), so disabling or revoking the person ends it.

use std::time::Duration;

use rxchain_contracts::{OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use super::{from_json, normalise, random_hex, to_json, Account, AccountError, Accounts, Actor};
use crate::clock::now;

/// The longest a token may live.
pub const MAX_TOKEN_DAYS: u32 = 365;

/// What every token starts with, so it is recognised in a header or a leak
/// scan.
pub const TOKEN_PREFIX: &str = "rxt_";

/// Token records in the accounts tree, under the keyed hash of the token.
const TOKEN: &[u8] = b"t/";

/// A token as listed: never the token itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Its id (to list and revoke it).
    pub id: String,
    /// The account it acts as.
    pub username: String,
    /// The organisation.
    pub org: OrgId,
    /// What it is for, e.g. the hospital system's name.
    pub label: String,
    /// When it was issued (ms).
    pub created_at: Timestamp,
    /// Who issued it (username).
    pub created_by: Option<String>,
    /// When it ends (ms).
    pub expires_at: Timestamp,
}

impl Accounts {
    fn token_db_key(&self, token: &str) -> Vec<u8> {
        let mut h = Sha3_256::new();
        h.update(b"rxchain-api-token-v1\0");
        h.update(self.session_key.expose());
        h.update(token.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        [TOKEN, digest.as_slice()].concat()
    }

    /// Issues a token acting as `username`, an account of `by.org`, for
    /// `days` (1 to [`MAX_TOKEN_DAYS`]); answers the token, shown once.
    pub fn issue_token(
        &self,
        username: &str,
        label: &str,
        days: u32,
        by: &Actor,
    ) -> Result<(String, TokenInfo), AccountError> {
        let account = self
            .account(username)?
            .ok_or_else(|| AccountError::UnknownAccount(normalise(username)))?;
        if account.org != by.org {
            return Err(AccountError::NotYourAccount {
                username: account.username,
                org: by.org.clone(),
            });
        }
        let created_at = now();
        let days = days.clamp(1, MAX_TOKEN_DAYS);
        let ttl = Duration::from_secs(u64::from(days) * 86_400);
        let info = TokenInfo {
            id: random_hex()[..16].to_string(),
            username: account.username,
            org: account.org,
            label: label.trim().to_string(),
            created_at,
            created_by: by.user.clone(),
            expires_at: Timestamp(created_at.0.saturating_add(ttl.as_millis() as u64)),
        };
        let token = format!("{TOKEN_PREFIX}{}", random_hex());
        self.tree
            .insert(self.token_db_key(&token), to_json(&info)?)?;
        Ok((token, info))
    }

    /// The account a token acts as, with the token's record, when the token
    /// is live and its account enabled. An expired token is deleted on sight.
    pub fn token(&self, token: &str) -> Result<Option<(Account, TokenInfo)>, AccountError> {
        let Some(hex) = token.strip_prefix(TOKEN_PREFIX) else {
            return Ok(None);
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = self.token_db_key(token);
        let Some(v) = self.tree.get(&key)? else {
            return Ok(None);
        };
        let info: TokenInfo = from_json("api token", &v)?;
        if now() >= info.expires_at {
            self.tree.remove(&key)?;
            return Ok(None);
        }
        Ok(self.enabled_account(&info.username)?.map(|a| (a, info)))
    }

    /// The live tokens of `org`'s accounts, newest first.
    pub fn tokens_of(&self, org: &OrgId) -> Result<Vec<TokenInfo>, AccountError> {
        let t = now();
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(TOKEN) {
            let (_, v) = r?;
            let info: TokenInfo = from_json("api token", &v)?;
            if &info.org == org && info.expires_at > t {
                out.push(info);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    /// Revokes `org`'s token `id`; answers whether there was one.
    pub fn revoke_token(&self, org: &OrgId, id: &str) -> Result<bool, AccountError> {
        for r in self.tree.scan_prefix(TOKEN) {
            let (k, v) = r?;
            let info: TokenInfo = from_json("api token", &v)?;
            if &info.org == org && info.id == id {
                self.tree.remove(k)?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support;
    use super::*;

    #[test]
    fn a_token_acts_as_its_account_until_revoked_and_never_for_another_org() {
        let (_dir, accounts) = test_support::open("hosp-a");
        let new = test_support::new("dr.token");
        let org = new.org.clone();
        let phc = super::super::hash_password("pw").unwrap();
        accounts
            .create(new, &phc, &rxchain_contracts::SecretKey::derive("t", b"k"))
            .unwrap();
        let by = Actor {
            org: org.clone(),
            user: Some("admin.a".into()),
        };
        let (token, info) = accounts.issue_token("dr.token", "EHR", 30, &by).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        let (account, found) = accounts.token(&token).unwrap().expect("live");
        assert_eq!((account.username.as_str(), &found), ("dr.token", &info));
        assert_eq!(accounts.tokens_of(&org).unwrap(), vec![info.clone()]);
        // Another organisation can neither issue for the account nor revoke.
        let other = Actor {
            org: OrgId::parse("hosp-b").unwrap(),
            user: None,
        };
        assert!(matches!(
            accounts.issue_token("dr.token", "EHR", 30, &other),
            Err(AccountError::NotYourAccount { .. })
        ));
        assert!(!accounts.revoke_token(&other.org, &info.id).unwrap());
        // A forged or altered token is nobody.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(accounts.token(&forged).unwrap().is_none());
        assert!(accounts.token("rxt_short").unwrap().is_none());
        assert!(accounts.revoke_token(&org, &info.id).unwrap());
        assert!(accounts.token(&token).unwrap().is_none());
        assert!(accounts.tokens_of(&org).unwrap().is_empty());
    }
}
