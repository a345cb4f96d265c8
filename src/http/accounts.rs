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

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::{Json, Router};

use super::cluster::{authenticate, Signer};
use super::error::ErrorBody;
use super::{ApiBody, ApiError, ApiPath, AppState};
use crate::accounts::{AccountError, StatusChange};

/// The account administration routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{username}/disable", post(disable))
        .route("/v1/accounts/{username}/enable", post(enable))
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

fn change(
    s: &AppState,
    username: &str,
    disable: bool,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<StatusChange>, ApiError> {
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
    let org = match admitted.signer {
        Signer::Operator(org) => org,
        Signer::Node(id) => {
            return Err(ApiError::forbidden(
                "not_an_operator",
                format!(
                "node {id}'s key cannot change accounts; sign with your organisation's admin key"
            ),
            ))
        }
    };
    match s.accounts.set_disabled(username, disable, &org) {
        Ok(changed) => Ok(Json(changed)),
        Err(AccountError::UnknownAccount(u)) => Err(ApiError::not_found(
            "unknown_account",
            format!("this node has no account named {u}"),
        )),
        Err(e) => Err(e.into()),
    }
}
