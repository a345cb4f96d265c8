//! The HTTP API: one module per resource, each exporting `router()`, one
//! [`AppState`], and JSON errors from [`error::ApiError`].

pub mod chain;
pub mod cluster;
pub mod error;
pub mod ops;
pub mod patient;
pub mod reports;
pub mod rx;
pub mod scan;
pub mod session;
pub mod staff;
pub mod tx;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{BoxError, Router};
use rxchain_contracts::Genesis;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::Accounts;
use crate::config::ApiSettings;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::raft::Raft;
use crate::store::ChainStore;
pub use error::ApiError;

/// Everything handlers share.
pub struct AppInner {
    /// This node's id.
    pub node_id: u64,
    /// The consortium.
    pub genesis: Arc<Genesis>,
    /// Committed chain and state.
    pub chain: Arc<ChainStore>,
    /// Raft, for leadership, linearizable reads and forwarding.
    pub raft: Raft,
    /// Waiting transactions.
    pub mempool: Arc<Mempool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and waits.
    pub api: ApiSettings,
    /// For forwarding submissions to the leader.
    pub client: reqwest::Client,
    /// Staff accounts and sessions, for the web apps' server-side signing.
    pub accounts: Arc<Accounts>,
    /// Test-only partitions (empty unless `testing_faults` is set).
    pub faults: Arc<crate::raft::Faults>,
}

/// Shared handler state.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
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

/// The whole API, with limits, timeouts, tracing and panic safety; the web
/// pages from `web_dir` are served for every other path.
pub fn router(state: AppState, web_dir: Option<&std::path::Path>) -> Router {
    let api = state.api.clone();
    let routes = Router::new()
        .merge(tx::router())
        .merge(rx::router())
        .merge(chain::router())
        .merge(scan::router(api.image_limit_bytes))
        .merge(ops::router())
        .merge(session::router())
        .merge(staff::router())
        .merge(patient::router())
        .merge(reports::router())
        .merge(cluster::router())
        .route(
            "/v1/{*rest}",
            axum::routing::any(|| async {
                ApiError::not_found("no_such_route", "there is no such API route")
            }),
        )
        .layer(DefaultBodyLimit::max(api.body_limit_bytes))
        .with_state(state);
    let routes = match web_dir {
        Some(dir) => routes.fallback_service(
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => routes
            .fallback(|| async { ApiError::not_found("no_such_route", "there is no such route") }),
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
