//! Account administration by an organisation's admin, on the node that
//! holds the accounts (accounts are node-local, see [`crate::accounts`]):
//!
//! - `POST /v1/accounts/{username}/disable`: sign-in is refused (403
//!   `account_disabled`, said only after a right password) and every
//!   session of the account ends at once.
//! - `POST /v1/accounts/{username}/enable`: sign-in works again.
//!
//! Both are signed like cluster admin requests
//! ([`crate::http::cluster::authenticate`]: addressed to this node, each
//! request accepted once) with the organisation's genesis admin key
//! (`x-rxchain-org`); a node key is refused (403 `not_an_operator`), so is
//! a request another node forwarded (403 `not_forwardable`),
//! as is an account of another organisation (403 `wrong_org`); an unknown
//! username is 404 `unknown_account`. Each change is recorded on the account
//! with the organisation that made it and when, and answered. The body is
//! ignored (but signed); send `{}` or nothing.
//!
//! `POST /v1/accounts/bootstrap`, signed the same way, creates an
//! organisation's first staff admin (`rxchain admin bootstrap`): the body
//! carries the username, display name, password and the person's new
//! signing key, with the `register_staff` transaction for that key (role
//! `admin`) signed by the organisation's admin key. The node cannot sign
//! for the organisation itself, so the CLI signs the transaction and the
//! node does the rest as one action.
//!
//! # The staff admin API
//!
//! A signed-in staff admin (role `admin`, CSRF token as every staff call)
//! manages the accounts of their own organisation on this node, under
//! `/v1/admin/staff`:
//!
//! | call | does |
//! |---|---|
//! | `GET /v1/admin/staff` | lists the organisation's accounts, each with its chain record (active or revoked), disabled flag, forced change, last sign-in and key history |
//! | `POST /v1/admin/staff` | creates an account with an initial password (must be changed at first sign-in) and a fresh signing key, and registers the key on the chain, signed by the admin |
//! | `POST …/{username}/disable`, `…/enable` | an audited account change; disabling ends every session |
//! | `POST …/{username}/reset-password` | a new initial password, to be changed at the next sign-in; ends every session |
//! | `POST …/{username}/rotate-key` | a fresh key registered on the chain, the old one revoked; the old public key stays in the account's history |
//! | `POST …/{username}/revoke` | the key revoked on the chain and the account disabled for good; ends every session |
//! | `POST …/{username}/second-factor` | enrols a TOTP second factor (for prescribers of controlled drugs) and answers its secret and `otpauth://` URI once; sign-in then needs a code |
//!
//! An account of another organisation is 403 `wrong_org`; a non-admin is
//! 403 `wrong_role`. Creating an account and registering its key is one
//! action: if the `register_staff` transaction is refused or not known to
//! be committed, the account is removed before the answer (the refusal or
//! 503 `not_committed`), so no account is left without its key on the
//! chain. (If a commit was merely slow, the transaction may still commit
//! later; its key's secret is gone with the account, so that key can never
//! sign anything.) Every chain change is a transaction signed by the
//! admin's own staff key; every other change is recorded on the account
//! with the admin's organisation, username and time. These calls take no
//! `Idempotency-Key`: creating is refused for an existing username
//! (`account_exists`), and the other calls are safe to repeat.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::state::StaffRecord;
use rxchain_contracts::tx::{RevokeReason, Role, TxBody};
use rxchain_contracts::{Label, OrgId, PublicKey, SecretKey, SignedTx};
use serde::{Deserialize, Serialize};

use super::cluster::{authenticate, Signer};
use super::error::ErrorBody;
use super::session::{Staff, StaffCsrf};
use super::{ApiBody, ApiError, ApiJson, ApiPath, AppState};
use crate::accounts::{
    hash_password, password_policy, AccountError, AccountSummary, Actor, NewAccount, StatusChange,
};
use crate::config::Secret;
use crate::mempool::Receipt;
use crate::service::submit::{submit, Submitted};

/// The account administration routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{username}/disable", post(disable))
        .route("/v1/accounts/bootstrap", post(bootstrap))
        .route("/v1/accounts/{username}/enable", post(enable))
        .route("/v1/admin/staff", get(list_staff).post(create_staff))
        .route("/v1/admin/staff/{username}/disable", post(admin_disable))
        .route("/v1/admin/staff/{username}/enable", post(admin_enable))
        .route(
            "/v1/admin/staff/{username}/reset-password",
            post(reset_password),
        )
        .route("/v1/admin/staff/{username}/rotate-key", post(rotate_key))
        .route("/v1/admin/staff/{username}/revoke", post(revoke))
        .route(
            "/v1/admin/staff/{username}/second-factor",
            post(enrol_second_factor),
        )
}

#[utoipa::path(
    post, path = "/v1/accounts/{username}/disable", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-rxchain-org" = String, Header, description = "The signing organisation (its genesis admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),
    ),
    responses(
        (status = 200, description = "Disabled; every session ended (or already so: `unchanged`)", body = StatusChange),
        (status = 400, description = "`bad_path`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_org`, `unknown_node`, `not_an_operator`, `wrong_org`, `wrong_target`, `not_forwardable`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn disable(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Json<StatusChange>, ApiError> {
    change(&s, &username, true, &uri, &headers, &body)
}

#[utoipa::path(
    post, path = "/v1/accounts/{username}/enable", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-rxchain-org" = String, Header, description = "The signing organisation (its genesis admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),
    ),
    responses(
        (status = 200, description = "Enabled (or already so: `unchanged`)", body = StatusChange),
        (status = 400, description = "`bad_path`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_org`, `unknown_node`, `not_an_operator`, `wrong_org`, `wrong_target`, `not_forwardable`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn enable(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Json<StatusChange>, ApiError> {
    change(&s, &username, false, &uri, &headers, &body)
}

/// The organisation whose genesis admin key signed an admin request; a
/// node key or a forwarded request is refused.
fn operator(s: &AppState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<OrgId, ApiError> {
    let admitted = authenticate(
        &s.consortium(),
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        headers,
        body,
    )?;
    if let Some(by) = admitted.forwarded_by {
        // Accounts are node-local: an operator's request to one node must
        // not become a change on another.
        return Err(ApiError::forbidden(
            "not_forwardable",
            format!("node {by} forwarded this request; account changes are sent to the node that holds the account"),
        ));
    }
    match admitted.signer {
        Signer::Operator(org) => Ok(org),
        Signer::Node(id) => Err(ApiError::forbidden(
            "not_an_operator",
            format!(
                "node {id}'s key cannot change accounts; sign with your organisation's admin key"
            ),
        )),
    }
}

fn change(
    s: &AppState,
    username: &str,
    disable: bool,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<StatusChange>, ApiError> {
    let org = operator(s, uri, headers, body)?;
    match s.accounts.set_disabled(username, disable, &org) {
        Ok(changed) => Ok(Json(changed)),
        Err(AccountError::UnknownAccount(u)) => Err(ApiError::not_found(
            "unknown_account",
            format!("this node has no account named {u}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// 404 `unknown_account` for an unknown username, else the usual mapping.
pub(super) fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::UnknownAccount(u) => ApiError::not_found(
            "unknown_account",
            format!("this node has no account named {u}"),
        ),
        e => e.into(),
    }
}

/// Submits a staff transaction and waits for its commit: anything but an
/// applied receipt is an error (the refusal with its receipt, or 503
/// `not_committed` when the commit is not known).
async fn commit(s: &AppState, tx: SignedTx) -> Result<Receipt, ApiError> {
    match submit(s, tx).await? {
        Submitted::Committed(r) if r.outcome.is_applied() => Ok(r),
        Submitted::Committed(r) => match &r.outcome {
            rxchain_contracts::Outcome::Refused { reason } => {
                Err(ApiError::Refused(reason.clone(), Some(r.clone())))
            }
            rxchain_contracts::Outcome::Applied => Ok(r),
        },
        Submitted::Pending(id) => Err(ApiError::NotCommitted(format!(
            "transaction {id} was admitted but its commit was not confirmed in time"
        ))),
        Submitted::Relayed(r) => Err(ApiError::Relayed(r)),
    }
}

/// Hashes a password that passed the policy, on a blocking thread.
async fn policy_hash(password: String, username: &str) -> Result<String, ApiError> {
    password_policy::check(&password, username).map_err(AccountError::from)?;
    let password = Secret::new(password);
    tokio::task::spawn_blocking(move || hash_password(password.expose()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

fn label(what: &str, v: &str) -> Result<Label, ApiError> {
    Label::parse(v.trim().to_string())
        .map_err(|e| ApiError::bad("invalid_account", format!("the {what}: {e}")))
}

/// A signed-in staff admin: the session, who they are for the audit trail,
/// and their signing key's holder.
struct Admin {
    staff: Staff,
    actor: Actor,
}

impl Admin {
    fn of(staff: Staff) -> Result<Admin, ApiError> {
        staff.require(&[Role::Admin], "manage staff accounts")?;
        let actor = Actor {
            org: staff.org().clone(),
            user: Some(staff.account().username.clone()),
        };
        Ok(Admin { staff, actor })
    }

    fn org(&self) -> &OrgId {
        self.staff.org()
    }

    /// 403 `wrong_org` unless `username` is an account of the admin's own
    /// organisation; 404 `unknown_account` if there is none.
    fn summary(&self, s: &AppState, username: &str) -> Result<AccountSummary, ApiError> {
        s.accounts
            .summary(username, self.org())
            .map_err(account_error)
    }
}

/// The chain's view of a key.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    /// Registered for the account's organisation and not revoked.
    Active,
    /// Revoked on the chain.
    Revoked,
    /// Not registered (or not for this organisation).
    Unregistered,
}

/// One account in the admin's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffEntry {
    /// The account, its standing and history.
    #[serde(flatten)]
    pub summary: AccountSummary,
    /// The chain's view of the current key.
    pub chain_status: ChainStatus,
    /// The chain's record of the current key, if registered.
    pub chain: Option<StaffRecord>,
}

fn entry(s: &AppState, summary: AccountSummary) -> Result<StaffEntry, ApiError> {
    let record = s
        .chain
        .staff(&summary.account.public_key)
        .map_err(ApiError::internal)?
        .filter(|r| r.org == summary.account.org);
    let chain_status = match &record {
        Some(r) if r.revoked.is_some() => ChainStatus::Revoked,
        Some(_) => ChainStatus::Active,
        None => ChainStatus::Unregistered,
    };
    Ok(StaffEntry {
        summary,
        chain_status,
        chain: record,
    })
}

/// The admin's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffList {
    /// The organisation.
    pub org: OrgId,
    /// Its accounts on this node, by username.
    pub staff: Vec<StaffEntry>,
}

#[utoipa::path(
    get, path = "/v1/admin/staff", tag = "accounts",
    responses(
        (status = 200, description = "The organisation's accounts on this node", body = StaffList),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`wrong_role`, `password_change_required`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn list_staff(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<StaffList>, ApiError> {
    let admin = Admin::of(staff)?;
    let staff = s
        .accounts
        .staff_of(admin.org())?
        .into_iter()
        .map(|a| entry(&s, a))
        .collect::<Result<_, _>>()?;
    Ok(Json(StaffList {
        org: admin.org().clone(),
        staff,
    }))
}

/// A new staff account. Deliberately not `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateStaff {
    /// Sign-in name: 1 to 64 characters, no spaces; stored lower case.
    pub username: String,
    /// Display name, as the chain will show it.
    pub name: String,
    /// What the person may do; it must fit the organisation's kind.
    pub role: Role,
    /// Professional licence number (for an admin, any reference).
    pub licence: String,
    /// The initial password, to be changed at first sign-in.
    pub password: String,
}

#[utoipa::path(
    post, path = "/v1/admin/staff", tag = "accounts",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = CreateStaff,
    responses(
        (status = 200, description = "Created and its key registered on the chain", body = StaffEntry),
        (status = 400, description = "`malformed_json`, `invalid_json`, `invalid_account`, `account_exists`, `password_too_short`, `password_too_long`, `password_too_common`, `password_contains_username`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `password_change_required`, or a chain rule's refusal; no account was kept", body = ErrorBody),
        (status = 409, description = "A chain rule's refusal (`staff_exists`); no account was kept", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "A chain rule's refusal (`wrong_org_kind`: the role does not fit the organisation); no account was kept", body = ErrorBody),
        (status = 503, description = "`not_committed`: the registration's commit is not known; no account was kept", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn create_staff(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<CreateStaff>,
) -> Result<Json<StaffEntry>, ApiError> {
    let admin = Admin::of(staff.0)?;
    let name = label("display name", &req.name)?;
    let licence = label("licence number", &req.licence)?;
    let username = req.username.trim().to_lowercase();
    if s.accounts.account(&username)?.is_some() {
        return Err(AccountError::Exists(username).into());
    }
    let phc = policy_hash(req.password, &username).await?;
    let admin_key = admin.staff.signing_key(&s)?;
    let key = crate::keys::generate();
    let new = NewAccount {
        username: username.clone(),
        name: name.to_string(),
        org: admin.org().clone(),
        role: req.role,
    };
    let account = s.accounts.create_enrolled(new, &phc, &key, &admin.actor)?;
    let tx = crate::txbuild::register_staff(
        &s.consortium(),
        &admin_key,
        admin.org().clone(),
        key.public(),
        req.role,
        licence,
        name,
    );
    if let Err(e) = commit(&s, tx).await {
        // One action, two effects: without the registration, no account.
        s.accounts.remove_unregistered(&account.username)?;
        return Err(e);
    }
    tracing::info!(target: "rxchain::audit", username = %account.username, by = %admin.staff.account().username, role = ?req.role, "staff account created and registered");
    Ok(Json(entry(&s, admin.summary(&s, &account.username)?)?))
}

async fn admin_change(
    s: &AppState,
    staff: StaffCsrf,
    username: &str,
    disable: bool,
) -> Result<Json<StatusChange>, ApiError> {
    let admin = Admin::of(staff.0)?;
    admin.summary(s, username)?;
    Ok(Json(
        s.accounts
            .set_disabled_by(username, disable, &admin.actor)
            .map_err(account_error)?,
    ))
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/disable", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, description = "Disabled; every session ended (or already so: `unchanged`)", body = StatusChange),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn admin_disable(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
) -> Result<Json<StatusChange>, ApiError> {
    admin_change(&s, staff, &username, true).await
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/enable", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, description = "Enabled (or already so: `unchanged`)", body = StatusChange),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 409, description = "`account_revoked`: a revoked person stays disabled", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn admin_enable(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
) -> Result<Json<StatusChange>, ApiError> {
    admin_change(&s, staff, &username, false).await
}

/// A password reset. Deliberately not `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetPassword {
    /// The new initial password, to be changed at the next sign-in.
    pub password: String,
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/reset-password", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    request_body = ResetPassword,
    responses(
        (status = 200, description = "Reset; the password must be changed at the next sign-in, every session ended", body = StaffEntry),
        (status = 400, description = "`bad_path`, `malformed_json`, `invalid_json`, `password_too_short`, `password_too_long`, `password_too_common`, `password_contains_username`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 409, description = "`account_revoked`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn reset_password(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<ResetPassword>,
) -> Result<Json<StaffEntry>, ApiError> {
    let admin = Admin::of(staff.0)?;
    let target = admin.summary(&s, &username)?;
    let phc = policy_hash(req.password, &target.account.username).await?;
    s.accounts
        .reset_password(&target.account.username, &phc, &admin.actor)
        .map_err(account_error)?;
    Ok(Json(entry(&s, admin.summary(&s, &username)?)?))
}

/// The answer to a key rotation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The account as it stands now.
    pub account: StaffEntry,
    /// The replaced key, revoked on the chain.
    pub old_key: PublicKey,
    /// The new key, registered on the chain.
    pub new_key: PublicKey,
    /// Where the new key's registration was committed.
    pub registered: Receipt,
    /// Where the old key's revocation was committed.
    pub revoked: Receipt,
}

/// Revokes every past key of the account the chain still lets sign: the
/// tail of a rotation whose revocation did not commit, finished now.
async fn revoke_stale_keys(
    s: &AppState,
    admin_key: &SecretKey,
    summary: &AccountSummary,
) -> Result<(), ApiError> {
    for past in &summary.past_keys {
        let active = s
            .chain
            .staff(&past.key)
            .map_err(ApiError::internal)?
            .is_some_and(|r| r.revoked.is_none());
        if active {
            let tx = crate::txbuild::revoke_staff(
                &s.consortium(),
                admin_key,
                past.key,
                RevokeReason::Other,
            );
            commit(s, tx).await?;
        }
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/rotate-key", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, description = "A new key registered, the old one revoked; sessions go on with the new key", body = Rotated),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 409, description = "`account_revoked`, `not_active` (the current key is not active on the chain), or a chain rule's refusal", body = ErrorBody),
        (status = 422, description = "A chain rule's refusal", body = ErrorBody),
        (status = 503, description = "`not_committed`: a step's commit is not known; the account keeps the key the chain last accepted, and a retry finishes the rotation", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn rotate_key(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
) -> Result<Json<Rotated>, ApiError> {
    let admin = Admin::of(staff.0)?;
    let target = entry(&s, admin.summary(&s, &username)?)?;
    if target.summary.revoked.is_some() {
        return Err(AccountError::Revoked(target.summary.account.username).into());
    }
    let Some(record) = target
        .chain
        .clone()
        .filter(|_| matches!(target.chain_status, ChainStatus::Active))
    else {
        return Err(ApiError::Conflict {
            code: "not_active",
            message: format!(
                "the key of {username} is not active on the chain; revoke the person or create a new account"
            ),
        });
    };
    let admin_key = admin.staff.signing_key(&s)?;
    // 1. The new key on the chain, with the same role, licence and name.
    let key = crate::keys::generate();
    let tx = crate::txbuild::register_staff(
        &s.consortium(),
        &admin_key,
        admin.org().clone(),
        key.public(),
        record.role,
        record.licence.clone(),
        record.name.clone(),
    );
    let registered = commit(&s, tx).await?;
    // 2. The account signs with it from now on; the old key joins its
    //    history, so what it signed stays the person's.
    let old_key = s
        .accounts
        .rotate_key(&target.summary.account.username, &key, &admin.actor)
        .map_err(account_error)?;
    // 3. The old key signs nothing more. The account no longer names it,
    //    so the revocation hook ends no session of the person.
    let tx =
        crate::txbuild::revoke_staff(&s.consortium(), &admin_key, old_key, RevokeReason::Other);
    let revoked = commit(&s, tx).await?;
    let summary = admin.summary(&s, &username)?;
    revoke_stale_keys(&s, &admin_key, &summary).await?;
    Ok(Json(Rotated {
        account: entry(&s, summary)?,
        old_key,
        new_key: key.public(),
        registered,
        revoked,
    }))
}

/// Why a person is revoked.
#[derive(Deserialize, utoipa::ToSchema, Default)]
pub struct RevokePerson {
    /// The reason recorded on the chain; `left_organisation` when absent.
    #[serde(default)]
    pub reason: Option<RevokeReason>,
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/revoke", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    request_body = RevokePerson,
    responses(
        (status = 200, description = "Revoked on the chain and disabled for good; every session ended", body = StaffEntry),
        (status = 400, description = "`bad_path`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_account`, or a chain rule's refusal", body = ErrorBody),
        (status = 409, description = "A chain rule's refusal", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 503, description = "`not_committed`: the revocation's commit is not known; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn revoke(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<RevokePerson>,
) -> Result<Json<StaffEntry>, ApiError> {
    let admin = Admin::of(staff.0)?;
    let target = entry(&s, admin.summary(&s, &username)?)?;
    if admin.staff.account().username == target.summary.account.username {
        return Err(ApiError::Conflict {
            code: "cannot_revoke_self",
            message: "an admin cannot revoke themselves; ask another admin".into(),
        });
    }
    let admin_key = admin.staff.signing_key(&s)?;
    if matches!(target.chain_status, ChainStatus::Active) {
        let tx = crate::txbuild::revoke_staff(
            &s.consortium(),
            &admin_key,
            target.summary.account.public_key,
            req.reason.unwrap_or(RevokeReason::LeftOrganisation),
        );
        commit(&s, tx).await?;
    }
    revoke_stale_keys(&s, &admin_key, &target.summary).await?;
    s.accounts
        .mark_revoked(&target.summary.account.username, &admin.actor)
        .map_err(account_error)?;
    Ok(Json(entry(&s, admin.summary(&s, &username)?)?))
}

/// The first admin of an organisation. Deliberately not `Debug`: it holds
/// a password and a signing key.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Bootstrap {
    /// Sign-in name.
    pub username: String,
    /// Display name; must equal the registration's.
    pub name: String,
    /// The admin's password (chosen by them: no forced change).
    pub password: String,
    /// The admin's new signing key, hex; sealed by this node.
    pub secret_key: String,
    /// `register_staff` of that key in role `admin`, signed by the
    /// organisation's admin key.
    #[schema(value_type = Object)]
    pub registration: SignedTx,
}

#[utoipa::path(
    post, path = "/v1/accounts/bootstrap", tag = "accounts",
    params(
        ("x-rxchain-org" = String, Header, description = "The signing organisation (its genesis admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),
    ),
    request_body = Bootstrap,
    responses(
        (status = 200, description = "The admin account created and its key registered", body = StaffEntry),
        (status = 400, description = "`bad_path`, `unreadable_body`, `malformed_json`, `invalid_account`, `account_exists`, `bad_registration`, a password policy code", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_org`, `unknown_node`, `not_an_operator`, `wrong_target`, `not_forwardable`, or a chain rule's refusal; no account was kept", body = ErrorBody),
        (status = 409, description = "A chain rule's refusal (`staff_exists`); no account was kept", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "A chain rule's refusal; no account was kept", body = ErrorBody),
        (status = 429, description = "`replay_window_full`", body = ErrorBody),
        (status = 503, description = "`not_committed`; no account was kept", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn bootstrap(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Json<StaffEntry>, ApiError> {
    let org = operator(&s, &uri, &headers, &body)?;
    let req: Bootstrap = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "malformed_json",
            format!("the body is not a bootstrap request: {e}"),
        )
    })?;
    let bad = |m: &str| ApiError::bad("bad_registration", m.to_string());
    let key = crate::keys::parse_hex(&req.secret_key)
        .ok_or_else(|| bad("secret_key is not a hex secp256k1 key"))?;
    let consortium = s.consortium();
    let admin_key = consortium
        .org(&org)
        .map(|o| o.admin_key)
        .ok_or_else(|| bad("the signing organisation is not a member"))?;
    let TxBody::RegisterStaff(reg) = &req.registration.tx.body else {
        return Err(bad("the registration is not a register_staff transaction"));
    };
    if req.registration.tx.signer != admin_key
        || reg.org != org
        || reg.role != Role::Admin
        || reg.key != key.public()
        || reg.name.as_str() != req.name.trim()
    {
        return Err(bad("the registration must register this secret key's public key as an admin of the signing organisation, with the same name, signed by its admin key"));
    }
    let username = req.username.trim().to_lowercase();
    if s.accounts.account(&username)?.is_some() {
        return Err(AccountError::Exists(username).into());
    }
    let phc = policy_hash(req.password, &username).await?;
    let new = NewAccount {
        username: username.clone(),
        name: req.name.trim().to_string(),
        org: org.clone(),
        role: Role::Admin,
    };
    let account = s.accounts.create(new, &phc, &key)?;
    if let Err(e) = commit(&s, req.registration).await {
        s.accounts.remove_unregistered(&account.username)?;
        return Err(e);
    }
    tracing::info!(target: "rxchain::audit", username = %account.username, %org, "first staff admin bootstrapped with the organisation's admin key");
    Ok(Json(entry(&s, s.accounts.summary(&username, &org)?)?))
}

/// A new TOTP second factor, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecondFactorEnrolled {
    /// The account.
    pub username: String,
    /// The shared secret, base32, for typing into an authenticator app.
    pub secret_base32: String,
    /// The `otpauth://` URI (show it as a QR code for the app to scan).
    pub otpauth_uri: String,
}

#[utoipa::path(
    post, path = "/v1/admin/staff/{username}/second-factor", tag = "accounts",
    params(
        ("username" = String, Path, description = "The account's sign-in name"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, description = "Enrolled (replacing any earlier one); sign-in needs a code from now on. The secret is shown only here.", body = SecondFactorEnrolled),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `password_change_required`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
        (status = 409, description = "`account_revoked`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(%username))]
pub(super) async fn enrol_second_factor(
    State(s): State<AppState>,
    ApiPath(username): ApiPath<String>,
    staff: StaffCsrf,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let admin = Admin::of(staff.0)?;
    let target = admin.summary(&s, &username)?;
    let secret = s
        .accounts
        .enrol_totp(&target.account.username, &admin.actor)
        .map_err(account_error)?;
    let issuer = format!("rxchain {}", admin.org());
    let answer = SecondFactorEnrolled {
        otpauth_uri: crate::accounts::totp::otpauth_uri(&issuer, &target.account.username, &secret),
        secret_base32: data_encoding::BASE32_NOPAD.encode(&secret),
        username: target.account.username,
    };
    // The secret is a credential: never cached.
    Ok(super::common::no_store(Json(answer).into_response()))
}
