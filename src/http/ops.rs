//! Operations endpoints: health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, AppState};

/// The OpenAPI document as JSON text, generated from the handlers'
/// annotations ([`super::openapi`]) and checked by tests against the
/// routes the server really serves.
pub fn openapi_json() -> &'static str {
    super::openapi::document_json()
}

/// The OpenAPI document.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    super::openapi::document().clone()
}

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// `{"status": "ok"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Health))
)]
pub(super) async fn healthz() -> impl IntoResponse {
    Json(Health { status: "ok" })
}

/// The answer of `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// This node's id.
    pub node_id: u64,
    /// The leader it knows.
    pub leader: u64,
    /// Its Raft term.
    pub term: u64,
    /// Height of its last applied block.
    pub height: u64,
}

/// The node knows a leader and has applied at least what it has committed.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "`not_committed`: no leader known yet", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = s.raft.metrics().borrow().clone();
    let Some(leader) = m.current_leader else {
        return Err(ApiError::NotCommitted(
            "no Raft leader is known yet; the node is not ready".into(),
        ));
    };
    Ok(Json(Ready {
        status: "ready",
        node_id: s.node_id,
        leader,
        term: m.current_term,
        height: s.chain.tip().height,
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = s.raft.metrics().borrow().clone();
    s.metrics.chain_height.set(s.chain.tip().height as i64);
    s.metrics.mempool_depth.set(s.mempool.depth() as i64);
    s.metrics.mempool_bytes.set(s.mempool.bytes() as i64);
    s.metrics.observe_raft(s.node_id, &m);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub(super) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}
