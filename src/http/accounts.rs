//! Account administration by an organisation's admin, on the node that
//! holds the accounts (accounts are node-local, see [`crate::accounts`]):
//!
//! - `POST /v1/accounts/{username}/disable`: sign-in is refused (403
//!   `account_disabled`, said only after a right password) and every
//!   session of the account ends at once.
//! - `POST /v1/accounts/{username}/enable`: sign-in works again.
//!
//! Both are signed like cluster admin requests
//! ([`crate::http::cluster::authenticate`]) with the organisation's genesis
//! admin key (`x-rxchain-org`); a node key is refused (403 `not_an_operator`),
//! as is an account of another organisation (403 `wrong_org`); an unknown
//! username is 404 `unknown_account`. Each change is recorded on the account
//! with the organisation that made it and when, and answered. The body is
//! ignored (but signed); send `{}` or nothing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::{Json, Router};

use super::cluster::{authenticate, Signer};
use super::{ApiError, AppState};
use crate::accounts::{AccountError, StatusChange};

/// The account administration routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{username}/disable", post(disable))
        .route("/v1/accounts/{username}/enable", post(enable))
}

#[tracing::instrument(skip_all, fields(%username))]
async fn disable(
    State(s): State<AppState>,
    Path(username): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<StatusChange>, ApiError> {
    change(&s, &username, true, &uri, &headers, &body)
}

#[tracing::instrument(skip_all, fields(%username))]
async fn enable(
    State(s): State<AppState>,
    Path(username): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
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
    let org = match authenticate(&s.genesis, uri.path(), headers, body)? {
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
