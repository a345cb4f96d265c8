//! API tokens for hospital systems, managed by an organisation's staff
//! admins: a token acts as one practitioner account of the organisation on
//! the routes made for systems (FHIR import, `StaffOrToken`). Issued tokens
//! are shown once; lists never show them.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use serde::{Deserialize, Serialize};

use super::common::blocking;
use super::error::ErrorBody;
use super::session::{Staff, StaffCsrf};
use super::{ApiError, ApiJson, ApiPath, AppState};
use crate::accounts::{Actor, TokenInfo, MAX_TOKEN_DAYS};

/// `/v1/admin/tokens`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tokens", get(list).post(issue))
        .route("/v1/admin/tokens/{id}/revoke", post(revoke))
}

/// What a staff admin asks for.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// The practitioner account the system acts as.
    pub username: String,
    /// What it is for (the hospital system's name), 1 to 100 characters.
    pub label: String,
    /// Days it lasts, 1 to 365 (default 90).
    #[serde(default)]
    pub days: Option<u32>,
}

/// A new token: the only time it is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// `rxt_` and 64 hex characters, for `Authorization: Bearer`.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Whether a token was revoked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// True when it existed and is gone.
    pub revoked: bool,
}

fn admin(staff: &Staff) -> Result<Actor, ApiError> {
    staff.require(&[Role::Admin], "manage API tokens")?;
    Ok(Actor {
        org: staff.org().clone(),
        user: Some(staff.account().username.clone()),
    })
}

/// Issues a token for a practitioner of the admin's organisation.
#[utoipa::path(
    post, path = "/v1/admin/tokens", tag = "accounts",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The token, shown once", body = IssuedToken),
        (status = 400, description = "`invalid_token_request`: a label of 1 to 100 characters, 1 to 365 days, a practitioner account", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role` (not a staff admin), `wrong_org`", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody),
    )
)]
pub(super) async fn issue(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<IssuedToken>, ApiError> {
    let by = admin(&staff.0)?;
    let label = req.label.trim().to_string();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::bad(
            "invalid_token_request",
            "give the token a label of 1 to 100 characters (the system it is for)",
        ));
    }
    let days = req.days.unwrap_or(90);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::bad(
            "invalid_token_request",
            format!("a token lasts 1 to {MAX_TOKEN_DAYS} days"),
        ));
    }
    let st = s.clone();
    let (token, info) = blocking(move || {
        let account = st
            .accounts
            .summary(&req.username, &by.org)
            .map_err(super::accounts::account_error)?;
        let a = &account.account;
        if a.role != Role::Practitioner || account.disabled || account.revoked.is_some() {
            return Err(ApiError::bad(
                "invalid_token_request",
                format!(
                    "API tokens act as an enabled practitioner (for FHIR import); {} is a {}{}",
                    a.username,
                    a.role.label(),
                    if account.disabled || account.revoked.is_some() {
                        " who may not act"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(st.accounts.issue_token(&a.username, &label, days, &by)?)
    })
    .await?;
    tracing::info!(target: "rxchain::audit", username = %info.username, token = %info.id, by = ?info.created_by, "API token issued");
    Ok(Json(IssuedToken { token, info }))
}

/// The organisation's live tokens, newest first (never the tokens).
#[utoipa::path(
    get, path = "/v1/admin/tokens", tag = "accounts",
    responses(
        (status = 200, description = "Newest first", body = Vec<TokenInfo>),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role` (not a staff admin)", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let by = admin(&staff)?;
    let st = s.clone();
    Ok(Json(
        blocking(move || Ok(st.accounts.tokens_of(&by.org)?)).await?,
    ))
}

/// Revokes one of the organisation's tokens; it stops working at once.
#[utoipa::path(
    post, path = "/v1/admin/tokens/{id}/revoke", tag = "accounts",
    params(
        ("id" = String, Path, description = "The token's id"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role` (not a staff admin)", body = ErrorBody),
        (status = 404, description = "`unknown_token`: no live token of this organisation has this id", body = ErrorBody),
    )
)]
pub(super) async fn revoke(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Revoked>, ApiError> {
    let by = admin(&staff.0)?;
    let st = s.clone();
    let org = by.org.clone();
    let gone = blocking(move || Ok(st.accounts.revoke_token(&org, &id)?)).await?;
    if !gone {
        return Err(ApiError::not_found(
            "unknown_token",
            "no live API token of your organisation has this id",
        ));
    }
    tracing::info!(target: "rxchain::audit", by = ?by.user, "API token revoked");
    Ok(Json(Revoked { revoked: true }))
}
