//! Drawing a QR payload as an image: `POST /v1/qr`.

use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::common::{no_store, parse_payload, qr_images};
use super::error::ErrorBody;
use super::{ApiError, ApiJson, AppState};

/// `POST /v1/qr`.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/qr", post(qr))
}

/// A payload to draw.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct QrRequest {
    /// The QR payload text.
    pub payload: String,
}

/// A drawn QR code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QrImages {
    /// Standalone SVG document.
    pub svg: String,
    /// PNG, base64.
    pub png_base64: String,
}

/// Draws a payload's QR code. No session needed: the caller already holds
/// the payload, and drawing it reveals nothing more.
#[utoipa::path(
    post, path = "/v1/qr", tag = "staff",
    request_body = QrRequest,
    responses(
        (status = 200, description = "The QR code", body = QrImages),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn qr(ApiJson(req): ApiJson<QrRequest>) -> Result<Response, ApiError> {
    let payload = parse_payload(&req.payload)?;
    let (svg, png_base64) = qr_images(payload.encode()).await?;
    Ok(no_store(Json(QrImages { svg, png_base64 }).into_response()))
}
