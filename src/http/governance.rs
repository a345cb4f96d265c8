//! Governance, read side: `GET /v1/governance/proposals` lists every
//! proposal, open and decided, with its approvals and the threshold in
//! force. Proposals and approvals themselves are transactions
//! (`propose`, `approve`, `leave_node`) submitted through `POST /v1/tx`;
//! `rxchain governance` builds and signs them.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rxchain_contracts::governance::{self, Proposal};
use serde::Serialize;

use super::{ApiError, AppState};

/// The governance routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/governance/proposals", get(proposals))
}

/// Where a proposal stands.
#[derive(Serialize, utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// It may still be approved.
    Open,
    /// Its approvals reached the threshold and the action took effect.
    Executed,
    /// It expired before reaching the threshold.
    Expired,
}

/// One proposal with its status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProposalView {
    /// Open, executed or expired (against this node's clock).
    pub status: ProposalStatus,
    /// Approvals still missing for the threshold in force (0 once executed).
    pub missing: usize,
    /// The proposal as stored on chain.
    pub proposal: Proposal,
}

/// Every proposal and the rule that decides them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Proposals {
    /// Organisations whose approvals a proposal needs now.
    pub threshold: usize,
    /// Member organisations now.
    pub orgs: usize,
    /// Every proposal, in the order proposed.
    pub proposals: Vec<ProposalView>,
}

/// Every governance proposal, open and decided.
#[utoipa::path(
    get, path = "/v1/governance/proposals", tag = "governance",
    responses((status = 200, description = "Proposals with their approvals", body = Proposals))
)]
pub(super) async fn proposals(State(s): State<AppState>) -> Result<Json<Proposals>, ApiError> {
    let consortium = s.consortium();
    let threshold = governance::threshold(&consortium);
    let now = crate::clock::now();
    let proposals = s
        .chain
        .proposals()?
        .into_iter()
        .map(|p| {
            let status = if p.executed_at.is_some() {
                ProposalStatus::Executed
            } else if p.is_open(now) {
                ProposalStatus::Open
            } else {
                ProposalStatus::Expired
            };
            let counted = p
                .approvals
                .iter()
                .filter(|o| consortium.org(o).is_some())
                .count();
            let missing = match status {
                ProposalStatus::Executed => 0,
                _ => threshold.saturating_sub(counted),
            };
            ProposalView {
                status,
                missing,
                proposal: p,
            }
        })
        .collect();
    Ok(Json(Proposals {
        threshold,
        orgs: consortium.orgs.len(),
        proposals,
    }))
}
