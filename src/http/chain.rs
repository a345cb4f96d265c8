//! The chain itself: head, blocks, and the consortium's members and staff.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rxchain_contracts::genesis::Params;
use rxchain_contracts::state::StaffRecord;
use rxchain_contracts::{Block, Hash, OrgDecl};
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, ApiPath, AppState};

/// `GET /v1/chain/head`, `GET /v1/blocks/{height or hash}`, `GET /v1/consortium`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chain/head", get(head))
        .route("/v1/blocks/{id}", get(block))
        .route("/v1/consortium", get(consortium))
}

/// The chain head.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Head {
    /// The consortium's chain id.
    pub chain_id: String,
    /// Hash of genesis.
    pub genesis_hash: Hash,
    /// Height of the last block.
    pub height: u64,
    /// Its header hash.
    pub hash: Hash,
    /// Its timestamp (ms).
    pub timestamp: u64,
    /// One hash over the whole world state.
    pub state_digest: Hash,
    /// The state root the tip header commits to (LtHash, maintained per
    /// block; the empty state's root before the first block).
    pub state_root: Hash,
}

/// The chain head.
#[utoipa::path(
    get, path = "/v1/chain/head", tag = "chain",
    responses((status = 200, description = "The head", body = Head))
)]
#[tracing::instrument(skip_all)]
pub(super) async fn head(State(s): State<AppState>) -> Result<Json<Head>, ApiError> {
    let tip = s.chain.tip();
    let chain = s.chain.clone();
    let digest = tokio::task::spawn_blocking(move || chain.state_digest())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Head {
        chain_id: s.genesis.chain_id.to_string(),
        genesis_hash: s.genesis.hash(),
        height: tip.height,
        hash: tip.hash,
        timestamp: tip.timestamp.0,
        state_digest: digest,
        state_root: tip.state.root(),
    }))
}

/// A block with its hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BlockView {
    /// The header hash.
    pub hash: Hash,
    /// The block.
    #[serde(flatten)]
    pub block: Block,
}

/// A block by height or hash.
#[utoipa::path(
    get, path = "/v1/blocks/{id}", tag = "chain",
    params(("id" = String, Path, description = "A block height (a number) or a block hash (64 hex characters)")),
    responses(
        (status = 200, description = "The block", body = BlockView),
        (status = 400, description = "`bad_block_id`", body = ErrorBody),
        (status = 404, description = "`unknown_block`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(s))]
pub(super) async fn block(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let found = if let Ok(h) = id.parse::<u64>() {
        s.chain.block(h)?
    } else if let Ok(hash) = Hash::parse_hex(&id) {
        s.chain.block_by_hash(&hash)?
    } else {
        return Err(ApiError::bad(
            "bad_block_id",
            "give a block height (a number) or a block hash (64 hex characters)",
        ));
    };
    let block = found.ok_or_else(|| {
        ApiError::not_found("unknown_block", format!("no block {id} on this chain"))
    })?;
    Ok(Json(BlockView {
        hash: block.hash(s.genesis.chain_id.as_str()),
        block,
    }))
}

/// Members and registered staff: public directory data.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Consortium {
    /// The chain id.
    pub chain_id: String,
    /// Member organisations from genesis.
    pub orgs: Vec<OrgDecl>,
    /// Registered staff, revoked ones included (with their revocation).
    pub staff: Vec<StaffRecord>,
    /// The chain's parameters (validity windows, clock skew), so pages
    /// show the chain's own defaults instead of copies of them.
    pub params: Params,
}

/// Members, staff and chain parameters.
#[utoipa::path(
    get, path = "/v1/consortium", tag = "chain",
    responses((status = 200, description = "The consortium", body = Consortium))
)]
pub(super) async fn consortium(State(s): State<AppState>) -> Result<Json<Consortium>, ApiError> {
    Ok(Json(Consortium {
        chain_id: s.genesis.chain_id.to_string(),
        orgs: s.consortium().orgs.clone(),
        staff: s.chain.all_staff()?,
        params: s.consortium().params.clone(),
    }))
}
