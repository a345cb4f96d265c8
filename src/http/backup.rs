//! `GET /v1/admin/backup`: a consistent backup of this node's chain,
//! streamed (see [`crate::store::backup`] for the format).
//!
//! A backup holds every organisation's sealed prescription data, so it is
//! never public: the request is signed like the cluster admin requests
//! ([`crate::http::cluster::auth`]), by the admin key of the organisation
//! that runs this node or by this node's own key. The backup is first
//! written to an unlinked spool file in the data directory (the chain's
//! writers wait only for that local copy, never for a slow download), then
//! streamed from it; the response carries the height and tip hash in
//! `x-rxchain-backup-height` and `x-rxchain-backup-tip`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::cluster::{authenticate, Signer};
use super::error::ErrorBody;
use super::{ApiError, AppState};

/// The response header naming the backup's height.
pub const HEADER_HEIGHT: &str = "x-rxchain-backup-height";
/// The response header naming the backup's tip hash, hex.
pub const HEADER_TIP: &str = "x-rxchain-backup-tip";
/// The route.
pub const PATH: &str = "/v1/admin/backup";

/// The backup route (state applied by the caller).
pub fn router() -> Router<AppState> {
    // The literal path, not [`PATH`]: the OpenAPI test reads the routes
    // from the source.
    Router::new().route("/v1/admin/backup", get(backup))
}

/// A consistent backup of this node's chain (signed admin request).
#[utoipa::path(
    get, path = "/v1/admin/backup", tag = "cluster",
    params(
        ("x-rxchain-node" = Option<String>, Header, description = "This node's id (its node key signs); or give x-rxchain-org"),
        ("x-rxchain-org" = Option<String>, Header, description = "The organisation that runs this node (its admin key signs)"),
        ("x-rxchain-to" = String, Header, description = "This node's id"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and the empty body, hex"),
    ),
    responses(
        (status = 200, description = "The backup: an `rxchain-snap-v2` stream of the chain at one block boundary", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_node`, `unknown_org`, `wrong_target`, `not_your_node`: only this node's organisation or this node may back it up", body = ErrorBody),
        (status = 429, description = "`replay_window_full`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn backup(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let consortium = s.consortium();
    let admitted = authenticate(
        &consortium,
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        &headers,
        &[],
    )?;
    let own_org = consortium.node(s.node_id).map(|(org, _)| org.id.clone());
    let allowed = admitted.forwarded_by.is_none()
        && match &admitted.signer {
            Signer::Node(id) => *id == s.node_id,
            Signer::Operator(org) => own_org.as_ref() == Some(org),
        };
    if !allowed {
        return Err(ApiError::forbidden(
            "not_your_node",
            format!(
                "{} may not back up node {}: only the organisation that runs it, or the node itself, may",
                admitted.signer, s.node_id
            ),
        ));
    }
    let chain = s.chain.clone();
    let (file, info) = tokio::task::spawn_blocking(move || chain.backup_to_spool())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let len = file.metadata().map_err(ApiError::internal)?.len();
    tracing::info!(
        signer = %admitted.signer,
        height = info.height,
        bytes = len,
        "backup written; streaming it"
    );
    let file = tokio::fs::File::from_std(file);
    // A read error ends the stream (the client sees a short body, which
    // its length check and the stream's end record both catch).
    let body = Body::from_stream(futures::stream::unfold(Some(file), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(HEADER_HEIGHT, HeaderValue::from(info.height));
    if let Ok(v) = HeaderValue::from_str(&info.tip_hash.to_hex()) {
        h.insert(HEADER_TIP, v);
    }
    Ok(resp)
}
