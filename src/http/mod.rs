//! The HTTP API: one module per resource, each exporting `router()`, one
//! [`AppState`], and JSON errors from [`error::ApiError`].

mod access;
mod accounts;
pub mod backup;
mod chain;
pub mod cluster;
mod common;
mod consent;
mod courier;
mod doctor;
mod email;
pub mod error;
mod fhir;
mod formulary;
mod governance;
pub mod idempotency;
pub mod openapi;
pub mod ops;
mod patient;
mod pharmacy;
mod qr;
pub mod quorum;
mod reports;
mod rx;
mod scan;
pub mod session;
mod tokens;
mod tx;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{BoxError, Router};
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::service::Node;
pub use access::{node_access_headers, HEADER_PATIENT_SIG, NODE_ACCESS};
pub use error::ApiError;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState(pub Arc<Node>);

impl std::ops::Deref for AppState {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

/// A JSON body whose failures become precise [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(error::json_rejection(e, state.api.body_limit_bytes)),
        }
    }
}

/// A query string whose failures are JSON 400s `bad_query` (axum's own
/// `Query` answers them in plain text).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad("bad_query", e.body_text())),
        }
    }
}

/// Path parameters whose failures are JSON 400s `bad_path` (axum's own
/// `Path` answers them in plain text).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::bad("bad_path", e.body_text())),
        }
    }
}

/// A raw request body whose failures (too large, unreadable) are JSON
/// errors (axum's own `Bytes` answers them in plain text).
pub struct ApiBody(pub bytes::Bytes);

impl FromRequest<AppState> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(b) => Ok(ApiBody(b)),
            Err(e) => Err(error::body_rejection(e, state.api.body_limit_bytes)),
        }
    }
}

/// The whole API, with limits, timeouts, tracing and panic safety; the web
/// pages are served for every other path: from `web_dir` when given (for
/// page development), else the copy embedded in the binary.
pub fn router(state: AppState, web_dir: Option<&std::path::Path>) -> Router {
    let api = state.api.clone();
    let routes = Router::new()
        .merge(tx::router(api.batch_body_limit_bytes))
        .merge(rx::router())
        .merge(chain::router())
        .merge(scan::router(api.image_limit_bytes))
        .merge(ops::router())
        .merge(session::router())
        .merge(formulary::router())
        .merge(qr::router())
        .merge(doctor::router())
        .merge(email::router())
        .merge(pharmacy::router())
        .merge(courier::router())
        .merge(patient::router())
        .merge(consent::router())
        .merge(access::router())
        .merge(reports::router())
        .merge(cluster::router())
        .merge(accounts::router())
        .merge(governance::router())
        .merge(backup::router())
        .merge(fhir::router())
        .merge(tokens::router())
        .route(
            "/v1/{*rest}",
            axum::routing::any(|| async {
                ApiError::not_found("no_such_route", "there is no such API route")
            }),
        )
        // axum's own 405 has an empty body; every error here is JSON.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    // Test-only: every answer of every route is checked against the
    // OpenAPI document (see `openapi::validate_responses`).
    let routes = if api.testing_validate_openapi {
        tracing::warn!("testing_validate_openapi is on: every answer is checked against the OpenAPI document; a test setting, slow for production");
        routes.route_layer(axum::middleware::from_fn_with_state(
            Arc::new(openapi::ResponseValidator::for_api()),
            openapi::validate_responses,
        ))
    } else {
        routes
    };
    let routes = routes
        .layer(DefaultBodyLimit::max(api.body_limit_bytes))
        .with_state(state);
    let routes = match web_dir {
        Some(dir) => routes.fallback_service(
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => routes.fallback(web::embedded),
    };
    routes.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal("a handler panicked".into()).into_response()
            }))
            .layer(TraceLayer::new_for_http())
            .layer(axum::error_handling::HandleErrorLayer::new(
                |e: BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::Timeout.into_response()
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            ApiError::NotCommitted(e.to_string()),
                        )
                            .into_response()
                    }
                },
            ))
            .timeout(Duration::from_millis(api.request_timeout_ms)),
    )
}
