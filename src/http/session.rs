//! Staff sessions: sign-in and sign-out, the `rxsession` cookie, CSRF, and
//! the extractors every staff endpoint authenticates with.
//!
//! * [`Staff`] finds the session from the `rxsession` cookie (401
//!   `no_session` without a live one) and checks, on every request, that
//!   the chain still lists the session's key as an active member of its
//!   organisation: once a `revoke_staff` transaction is applied, the
//!   person's sessions are deleted and the request refused (401
//!   `staff_revoked`), so a revoked key's holder reads nothing more.
//! * [`StaffCsrf`] also requires the session's CSRF token in the
//!   `x-csrf-token` header (403 `csrf_missing` / `csrf_mismatch`); every
//!   state-changing staff call uses it. The cookie is `SameSite=Strict`
//!   already; the token is the second, independent defence, and the one
//!   that still holds for browsers that ignore SameSite.
//! * Sign-in counts each attempt against the username and the client
//!   address before the password is hashed (429 `too_many_attempts`), and
//!   refuses a revoked key (403 `staff_revoked`) or a disabled account
//!   (403 `account_disabled`) only after the password checked out.
//! * Role and organisation checks ([`Staff::require`], [`Staff::act_for`])
//!   answer 403 `wrong_role` and `wrong_org` before anything is signed.
//! * A session whose account must change its password (enrolled by an
//!   admin, or reset) is refused by every staff endpoint with 403
//!   `password_change_required`; only `GET` and `DELETE /v1/session` and
//!   `POST /v1/session/password` take it ([`PendingStaff`]). Sign-in answers
//!   `must_change_password: true` so the page shows the change form first.
//!   A new password must pass [`crate::accounts::password_policy`] (400
//!   `password_too_short`, `password_too_common`, `password_contains_username`).

use axum::extract::{FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, SecretKey};
use serde::{Deserialize, Serialize};

use super::common::{ClientAddr, OverTls};
use super::error::ErrorBody;
use super::{ApiError, ApiJson, AppState};
use crate::accounts::{constant_time_eq, Account, AccountError, Session, SESSION_TTL};
use crate::config::Secret;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "rxsession";

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `POST`, `GET` and `DELETE /v1/session`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/session", post(sign_in).get(current).delete(sign_out))
        .route("/v1/session/password", post(change_password))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::BadCredentials => {
                ApiError::unauthorized("bad_credentials", "the username or password is wrong")
            }
            AccountError::TooManyAttempts { retry_after_secs }
            | AccountError::TooManyAttemptsFromAddress { retry_after_secs } => {
                ApiError::TooManyAttempts { retry_after_secs }
            }
            e @ AccountError::Disabled(_) => ApiError::forbidden("account_disabled", e.to_string()),
            e @ AccountError::NotYourAccount { .. } => {
                ApiError::forbidden("wrong_org", e.to_string())
            }
            // The account behind a session was removed: the session is over.
            AccountError::UnknownAccount(_) => no_session(),
            AccountError::Invalid(m) => ApiError::bad("invalid_account", m),
            AccountError::Exists(u) => ApiError::bad(
                "account_exists",
                format!("an account named {u} exists already"),
            ),
            e @ AccountError::Revoked(_) => ApiError::Conflict {
                code: "account_revoked",
                message: e.to_string(),
            },
            e @ AccountError::SecondFactorRequired(_) => {
                ApiError::forbidden("second_factor_required", e.to_string())
            }
            AccountError::WeakPassword(p) => ApiError::bad(p.code(), p.to_string()),
            e @ (AccountError::Store(_)
            | AccountError::KeyUnavailable(_)
            | AccountError::Hashing(_)) => ApiError::internal(e),
        }
    }
}

/// 401 `no_session`.
pub fn no_session() -> ApiError {
    ApiError::unauthorized(
        "no_session",
        "sign in first: there is no live session on this node",
    )
}

/// Whether the chain lets the account act: its key registered for its
/// organisation and not revoked.
enum Standing {
    Active,
    Revoked,
    Unregistered,
}

fn standing(s: &AppState, account: &Account) -> Result<Standing, ApiError> {
    Ok(
        match s
            .chain
            .staff(&account.public_key)
            .map_err(ApiError::internal)?
        {
            Some(r) if r.org != account.org => Standing::Unregistered,
            Some(r) if r.revoked.is_some() => Standing::Revoked,
            Some(_) => Standing::Active,
            None => Standing::Unregistered,
        },
    )
}

/// The refusal of a key the chain does not (or no longer) let act, with
/// `status` 401 for a session and 403 for a sign-in.
fn staff_revoked(standing: &Standing, status: StatusCode) -> ApiError {
    let message = match standing {
        Standing::Revoked => "this staff key is revoked on the chain: its sessions are ended and it cannot sign in; ask your organisation's administrator",
        _ => "this staff key is not registered on the chain for the account's organisation, so it cannot sign in or use a session",
    };
    if status == StatusCode::FORBIDDEN {
        ApiError::forbidden("staff_revoked", message)
    } else {
        ApiError::unauthorized("staff_revoked", message)
    }
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::forbidden(code, message)
}

/// The session cookie's token from the request's `Cookie` headers.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
}

/// A signed-in staff member.
pub struct Staff {
    /// The session.
    pub session: Session,
    /// The cookie token, kept to end the session on sign-out.
    token: String,
}

impl std::fmt::Debug for Staff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token and the CSRF value are credentials: never printed.
        f.debug_struct("Staff")
            .field("username", &self.session.account.username)
            .finish_non_exhaustive()
    }
}

impl Staff {
    /// The account.
    pub fn account(&self) -> &Account {
        &self.session.account
    }

    /// The organisation the session acts for.
    pub fn org(&self) -> &OrgId {
        &self.session.account.org
    }

    /// 403 `wrong_role` unless the account has one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        let role = self.session.account.role;
        if roles.contains(&role) {
            Ok(())
        } else {
            Err(forbidden(
                "wrong_role",
                format!("a {} may not {action}", role.label()),
            ))
        }
    }

    /// 403 `wrong_org` unless `org` is the session's own organisation.
    pub fn act_for(&self, org: &OrgId) -> Result<(), ApiError> {
        if org == self.org() {
            Ok(())
        } else {
            Err(forbidden(
                "wrong_org",
                format!("this session acts for {}, not for {org}", self.org()),
            ))
        }
    }

    /// The staff member's signing key, opened from the node's key store.
    pub fn signing_key(&self, s: &AppState) -> Result<SecretKey, ApiError> {
        Ok(s.accounts.signing_key(&self.session.account.username)?)
    }
}

/// The session of the request's cookie, checked against the chain, whether
/// or not its password must be changed.
async fn live_staff(parts: &Parts, s: &AppState) -> Result<Staff, ApiError> {
    let token = cookie_token(&parts.headers).ok_or_else(no_session)?;
    let session = s.accounts.session(&token)?.ok_or_else(no_session)?;
    let standing = standing(s, &session.account)?;
    if !matches!(standing, Standing::Active) {
        let ended = s.accounts.end_sessions_of(&session.account.username)?;
        tracing::info!(
            target: "rxchain::audit",
            username = %session.account.username,
            sessions_ended = ended,
            "session refused: the staff key is not active on the chain"
        );
        return Err(staff_revoked(&standing, StatusCode::UNAUTHORIZED));
    }
    Ok(Staff { session, token })
}

/// 403 `csrf_missing` / `csrf_mismatch` unless the request echoes the
/// session's CSRF token.
fn check_csrf(parts: &Parts, staff: &Staff) -> Result<(), ApiError> {
    let sent = match parts.headers.get(CSRF_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) if v.trim().is_empty() => None,
        Some(Ok(v)) => Some(v.trim().to_string()),
        // Not even text: certainly not our token.
        Some(Err(_)) => Some(String::new()),
    };
    let Some(sent) = sent else {
        return Err(forbidden(
            "csrf_missing",
            format!("send the session's CSRF token in the {CSRF_HEADER} header"),
        ));
    };
    if !constant_time_eq(&sent, &staff.session.csrf) {
        return Err(forbidden(
            "csrf_mismatch",
            "the CSRF token does not belong to this session; reload the page".into(),
        ));
    }
    Ok(())
}

/// 403 `password_change_required`.
pub fn password_change_required() -> ApiError {
    ApiError::forbidden(
        "password_change_required",
        "change your initial password first (POST /v1/session/password)",
    )
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let staff = live_staff(parts, s).await?;
        if staff.session.account.must_change_password {
            return Err(password_change_required());
        }
        Ok(staff)
    }
}

/// A signed-in staff member whose request carries the session's CSRF token.
#[derive(Debug)]
pub struct StaffCsrf(pub Staff);

impl FromRequestParts<AppState> for StaffCsrf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let staff = Staff::from_request_parts(parts, s).await?;
        check_csrf(parts, &staff)?;
        Ok(StaffCsrf(staff))
    }
}

/// A staff member acting from a browser session with its CSRF token, or
/// from a hospital system with an API token (`Authorization: Bearer
/// rxt_…`, issued by a staff admin; no cookie, so no CSRF to check). Only
/// the routes made for systems (FHIR import) take it. A token that is not
/// live is 401 `bad_token`; one whose account's key is no longer active on
/// the chain is refused as a session would be.
#[derive(Debug)]
pub struct StaffOrToken(pub Staff);

impl FromRequestParts<AppState> for StaffOrToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let Some(token) = bearer else {
            return StaffCsrf::from_request_parts(parts, s)
                .await
                .map(|c| StaffOrToken(c.0));
        };
        let (account, info) = s.accounts.token(&token)?.ok_or_else(|| {
            ApiError::unauthorized(
                "bad_token",
                "the API token is unknown, expired or revoked; ask your organisation's staff admin for a new one",
            )
        })?;
        let standing = standing(s, &account)?;
        if !matches!(standing, Standing::Active) {
            return Err(staff_revoked(&standing, StatusCode::UNAUTHORIZED));
        }
        tracing::debug!(target: "rxchain::audit", username = %account.username, token = %info.id, "request with an API token");
        Ok(StaffOrToken(Staff {
            session: Session {
                account,
                // No cookie, no CSRF: the token itself is the credential.
                csrf: String::new(),
                expires_at: info.expires_at,
            },
            token: String::new(),
        }))
    }
}

/// A signed-in staff member who may still have to change their password:
/// only for the session calls themselves (see the module docs).
#[derive(Debug)]
pub struct PendingStaff(pub Staff);

impl FromRequestParts<AppState> for PendingStaff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        Ok(PendingStaff(live_staff(parts, s).await?))
    }
}

/// [`PendingStaff`] whose request carries the session's CSRF token.
#[derive(Debug)]
pub struct PendingStaffCsrf(pub Staff);

impl FromRequestParts<AppState> for PendingStaffCsrf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let staff = live_staff(parts, s).await?;
        check_csrf(parts, &staff)?;
        Ok(PendingStaffCsrf(staff))
    }
}

/// A session as the pages see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Organisation id.
    pub org: OrgId,
    /// Organisation display name.
    pub org_name: String,
    /// Role.
    pub role: Role,
    /// The CSRF token for `x-csrf-token`.
    pub csrf: String,
    /// Whether the password must be changed before anything else.
    pub must_change_password: bool,
}

fn view(s: &AppState, session: &Session) -> SessionView {
    let a = &session.account;
    SessionView {
        username: a.username.clone(),
        name: a.name.clone(),
        org: a.org.clone(),
        org_name: s
            .consortium()
            .org(&a.org)
            .map(|o| o.name.to_string())
            .unwrap_or_default(),
        role: a.role,
        csrf: session.csrf.clone(),
        must_change_password: a.must_change_password,
    }
}

/// The cookie's ` Secure` attribute, or nothing. Browsers drop a `Secure`
/// cookie set over plain HTTP, except from a loopback origin (which they
/// treat as secure), so a staff sign-in over plain HTTP on a LAN address
/// would silently fail. The cookie is therefore `Secure` when the request
/// came over TLS, or over loopback (or in-process, with no socket), and
/// not otherwise: only a node an operator runs with `insecure_plaintext`
/// sets it without, and there everything crosses the network in the clear.
fn secure_attr(over_tls: bool, client: Option<std::net::IpAddr>) -> &'static str {
    if over_tls || client.is_none_or(|ip| ip.is_loopback()) {
        " Secure;"
    } else {
        ""
    }
}

/// The answer to a session call: no caching anywhere, since it holds the
/// CSRF token.
fn session_response(
    status: StatusCode,
    cookie: Option<String>,
    body: Option<SessionView>,
) -> Result<Response, ApiError> {
    let mut resp = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie {
        h.insert(
            SET_COOKIE,
            HeaderValue::from_str(&c).map_err(ApiError::internal)?,
        );
    }
    Ok(resp)
}

/// A sign-in request. Deliberately not `Debug`: it holds the password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    /// Sign-in name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The one-time code of an account with a second factor (6 digits from
    /// its authenticator app); ignored for other accounts.
    #[serde(default)]
    pub otp: Option<String>,
}

/// Signs in: sets the `rxsession` cookie and answers the session with its
/// CSRF token.
#[utoipa::path(
    post, path = "/v1/session", tag = "session",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: rxsession=...`", body = SessionView),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 401, description = "`bad_credentials` (a wrong password, or a wrong or reused one-time code)", body = ErrorBody),
        (status = 403, description = "`staff_revoked` (the chain revoked the key), `account_disabled` (the organisation's admin disabled the account) or `second_factor_required`; said only after a right password", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = tracing::field::Empty))]
pub(super) async fn sign_in(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    OverTls(tls): OverTls,
    ApiJson(req): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    if req.username.len() <= 64 {
        tracing::Span::current().record("username", req.username.as_str());
    }
    let account = match s
        .accounts
        .check_sign_in_with(
            &req.username,
            Secret::new(req.password),
            req.otp.map(Secret::new),
            client,
        )
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            if matches!(
                e,
                AccountError::BadCredentials
                    | AccountError::TooManyAttempts { .. }
                    | AccountError::TooManyAttemptsFromAddress { .. }
                    | AccountError::Disabled(_)
            ) {
                tracing::info!(reason = %e, ?client, "sign-in refused");
            }
            let e = ApiError::from(e);
            s.metrics.sign_in_failed(e.code());
            return Err(e);
        }
    };
    // The password checked out, so telling the state of the key reveals
    // nothing to a guesser.
    let standing = standing(&s, &account)?;
    if !matches!(standing, Standing::Active) {
        tracing::info!(
            ?client,
            "sign-in refused: the staff key is not active on the chain"
        );
        let e = staff_revoked(&standing, StatusCode::FORBIDDEN);
        s.metrics.sign_in_failed(e.code());
        return Err(e);
    }
    let (token, session) = s.accounts.start_session(account)?;
    tracing::info!(org = %session.account.org, "signed in");
    let cookie = format!(
        "{COOKIE_NAME}={token}; HttpOnly;{} SameSite=Strict; Path=/; Max-Age={}",
        secure_attr(tls, client),
        SESSION_TTL.as_secs()
    );
    session_response(StatusCode::OK, Some(cookie), Some(view(&s, &session)))
}

/// The current session.
#[utoipa::path(
    get, path = "/v1/session", tag = "session",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn current(
    State(s): State<AppState>,
    PendingStaff(staff): PendingStaff,
) -> Result<Response, ApiError> {
    session_response(StatusCode::OK, None, Some(view(&s, &staff.session)))
}

/// A password change. Deliberately not `Debug`: it holds passwords.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePassword {
    /// The password the session signed in with.
    pub current_password: String,
    /// The new password; see the password policy.
    pub new_password: String,
}

/// Changes the signed-in account's own password; satisfies a forced change.
#[utoipa::path(
    post, path = "/v1/session/password", tag = "session",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; the session goes on", body = SessionView),
        (status = 400, description = "`malformed_json`, `invalid_json`, `password_too_short`, `password_too_long`, `password_too_common`, `password_contains_username`, `password_unchanged`", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`, `bad_credentials` (the current password is wrong)", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
pub(super) async fn change_password(
    State(s): State<AppState>,
    staff: PendingStaffCsrf,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let username = staff.account().username.clone();
    crate::accounts::password_policy::check(&req.new_password, &username)
        .map_err(AccountError::from)?;
    if req.new_password == req.current_password {
        return Err(ApiError::bad(
            "password_unchanged",
            "the new password must differ from the current one",
        ));
    }
    let new = Secret::new(req.new_password);
    let phc = tokio::task::spawn_blocking(move || crate::accounts::hash_password(new.expose()))
        .await
        .map_err(ApiError::internal)??;
    let account = s
        .accounts
        .change_password(&username, Secret::new(req.current_password), &phc)
        .await?;
    let session = Session {
        account,
        ..staff.session
    };
    session_response(StatusCode::OK, None, Some(view(&s, &session)))
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(
    delete, path = "/v1/session", tag = "session",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
pub(super) async fn sign_out(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    OverTls(tls): OverTls,
    staff: PendingStaffCsrf,
) -> Result<Response, ApiError> {
    s.accounts.end_session(&staff.0.token)?;
    let cookie = format!(
        "{COOKIE_NAME}=; HttpOnly;{} SameSite=Strict; Path=/; Max-Age=0",
        secure_attr(tls, client)
    );
    session_response(StatusCode::NO_CONTENT, Some(cookie), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; rxsession=abc ; b=2"));
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("xrxsession=1"));
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn the_cookie_is_secure_over_tls_and_loopback_only() {
        let lan: std::net::IpAddr = "192.168.1.20".parse().unwrap();
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(secure_attr(true, Some(lan)), " Secure;");
        assert_eq!(secure_attr(false, Some(lo)), " Secure;");
        assert_eq!(secure_attr(false, None), " Secure;");
        // Plain HTTP on a LAN address: a browser would drop a Secure cookie.
        assert_eq!(secure_attr(false, Some(lan)), "");
    }
}
