//! Linearizable reads on any node: the leader confirms its leadership with
//! a quorum (Raft's ReadIndex) and names the log index a read must wait
//! for; followers ask it for that index (`GET /v1/cluster/read-index`).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::error::ErrorBody;
use crate::http::{ApiError, AppState};
use crate::service::leader::remote_leader;

/// The answer of `GET /v1/cluster/read-index`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadIndex {
    /// The leader that confirmed it.
    pub leader: u64,
    /// Reads are linearizable once the state machine applied this index.
    pub index: u64,
}

/// How long a read waits for the leader's confirmation and for this
/// node's state machine to catch up before it gives up with 503.
const READ_WAIT: Duration = Duration::from_secs(5);

fn cannot_confirm() -> ApiError {
    ApiError::NotCommitted("the node cannot confirm it has the latest chain state; retry".into())
}

/// Makes the next state read linearizable, on any node: the leader confirms
/// its leadership with a quorum (Raft's ReadIndex); a follower asks the
/// leader for that index and waits until it has applied it. Without a
/// reachable leader (say, this node is cut off in a minority) it answers
/// 503 rather than risk a stale answer.
pub async fn linearizable_read(s: &AppState) -> Result<(), ApiError> {
    let m = s.raft.metrics().borrow().clone();
    if m.current_leader == Some(s.node_id) {
        return match tokio::time::timeout(READ_WAIT, s.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "linearizable read failed");
                Err(cannot_confirm())
            }
            Err(_) => Err(cannot_confirm()),
        };
    }
    let (leader, addr) = remote_leader(&s.raft, s.node_id, &s.faults).ok_or_else(cannot_confirm)?;
    let http = s.peers.client(leader).map_err(|e| {
        tracing::warn!(error = %e, leader, "no client for the leader");
        cannot_confirm()
    })?;
    let resp = http
        .get(s.peers.url(&addr, "/v1/cluster/read-index"))
        .timeout(READ_WAIT)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, leader, "cannot reach the leader for a read index");
            cannot_confirm()
        })?;
    if !resp.status().is_success() {
        return Err(cannot_confirm());
    }
    let ri: ReadIndex = resp.json().await.map_err(|_| cannot_confirm())?;
    s.raft.wait(Some(READ_WAIT)).applied_index_at_least(Some(ri.index), "linearizable read").await.map_err(|e| {
        tracing::warn!(error = %e, index = ri.index, "did not apply up to the read index in time");
        cannot_confirm()
    })?;
    Ok(())
}

/// The leader confirms its leadership and names the index a linearizable
/// read waits for.
#[utoipa::path(
    get, path = "/v1/cluster/read-index", tag = "cluster",
    responses(
        (status = 200, description = "The read index", body = ReadIndex),
        (status = 503, description = "`not_committed`: not the leader, or leadership not confirmed", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn read_index(
    State(s): State<AppState>,
) -> Result<Json<ReadIndex>, ApiError> {
    if s.raft.metrics().borrow().current_leader != Some(s.node_id) {
        return Err(ApiError::NotCommitted(
            "this node is not the leader; ask the leader for a read index".into(),
        ));
    }
    let read = match tokio::time::timeout(READ_WAIT, s.raft.ensure_linearizable()).await {
        Ok(Ok(read)) => read,
        _ => return Err(cannot_confirm()),
    };
    Ok(Json(ReadIndex {
        leader: s.node_id,
        index: read.map_or(0, |l| l.index),
    }))
}
