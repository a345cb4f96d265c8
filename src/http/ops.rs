//! Operations endpoints: health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, AppState};

/// The OpenAPI document, kept beside the code and checked by tests against
/// the routes the server really serves.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The node knows a leader and has applied at least what it has committed.
#[tracing::instrument(skip_all)]
async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = s.raft.metrics().borrow().clone();
    let Some(leader) = m.current_leader else {
        return Err(ApiError::NotCommitted(
            "no Raft leader is known yet; the node is not ready".into(),
        ));
    };
    Ok(Json(json!({
        "status": "ready",
        "node_id": s.node_id,
        "leader": leader,
        "term": m.current_term,
        "height": s.chain.tip().height,
    })))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = s.raft.metrics().borrow().clone();
    s.metrics.chain_height.set(s.chain.tip().height as i64);
    s.metrics.mempool_depth.set(s.mempool.depth() as i64);
    s.metrics
        .raft_is_leader
        .set(i64::from(m.current_leader == Some(s.node_id)));
    s.metrics.raft_term.set(m.current_term as i64);
    s.metrics
        .raft_leader
        .set(m.current_leader.unwrap_or(0) as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
