//! Small helpers every resource module shares: parsing path and query
//! parts into domain values, running blocking work off the runtime,
//! no-store responses, QR images, and signing and submitting on behalf of
//! a signed-in staff member.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::CACHE_CONTROL;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::Response;
use rxchain_contracts::{Genesis, OrgId, PrescriptionId, SecretKey, SignedTx};
use serde::Deserialize;

use super::idempotency::{sign_once, Scoped, Signed};
use super::session::Staff;
use super::tx::submitted_response;
use super::{ApiError, AppState};
use crate::qr::QrPayload;
use crate::raft::peers::FORWARDED_BY;
use crate::service::submit::{submit, Submitted};

/// The client's address from the connection, when the server was started
/// with connect info (a real node); `None` in-process, where no socket
/// exists. Proxy headers such as `X-Forwarded-For` are deliberately not
/// read: anyone can write them, and the address limits sign-in guesses.
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip()),
        ))
    }
}

/// Whether the request arrived over TLS (the TLS server marks every
/// request with its [`crate::tls::PeerNode`]; plain HTTP requests carry none).
pub struct OverTls(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for OverTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(OverTls(
            parts.extensions.get::<crate::tls::PeerNode>().is_some(),
        ))
    }
}

/// Whether a request was forwarded by a member node (it says so, and it
/// comes from the host of a node in the current membership): its client was
/// counted where it connected, so the forwarding node's address is not.
pub fn forwarded_by_member(s: &AppState, headers: &axum::http::HeaderMap, ip: IpAddr) -> bool {
    if !headers.contains_key(FORWARDED_BY) {
        return false;
    }
    let m = s.raft.metrics().borrow().clone();
    let members = m.membership_config.membership().clone();
    let found = members
        .nodes()
        .any(|(_, n)| n.addr.parse::<SocketAddr>().is_ok_and(|a| a.ip() == ip));
    found
}

/// Pixels (PNG) or user units (SVG) per QR module: a version-4 code is
/// then 328 units wide with its quiet zone, sharp on screens and in print.
const QR_SCALE: u32 = 8;

/// Lists answer at most this many prescriptions unless `limit` says otherwise.
const DEFAULT_LIST: usize = 200;
/// The largest `limit` a list accepts.
const MAX_LIST: usize = 1000;

/// Signs a transaction as the signed-in staff member and submits it,
/// answering exactly what `POST /v1/tx` would: 200 with the receipt, the
/// rule's 4xx with the refusal (recorded on the chain), 202 while the
/// commit is slow, 503 when nothing was committed. With an idempotency
/// key, a retry resubmits the transaction signed the first time.
pub async fn sign_and_submit(
    s: &AppState,
    staff: &Staff,
    idem: Option<&Scoped>,
    build: impl FnOnce(&Genesis, &SecretKey) -> SignedTx,
) -> Result<Response, ApiError> {
    Ok(submitted_response(
        sign_and_submit_raw(s, staff, idem, build).await?,
    ))
}

/// Like [`sign_and_submit`], but hands back what became of the submission.
pub async fn sign_and_submit_raw(
    s: &AppState,
    staff: &Staff,
    idem: Option<&Scoped>,
    build: impl FnOnce(&Genesis, &SecretKey) -> SignedTx,
) -> Result<Submitted, ApiError> {
    let signed = sign_once(s, idem, || async {
        // One ECDSA signature is well under a millisecond: done inline,
        // like the signature check in `/v1/tx`.
        let key = staff.signing_key(s)?;
        let tx = build(&s.consortium(), &key);
        tracing::info!(tx_id = %tx.tx.id(s.genesis.chain_id.as_str()), kind = tx.tx.body.kind(), "signed on behalf of staff");
        Ok(Signed { tx, secret: None })
    })
    .await?;
    Ok(submit(s, signed.tx).await?)
}

/// Standard base64 with padding, as `data:` URLs and `atob` expect.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The QR code of `text` as an SVG document and a base64 PNG. Rendering is
/// CPU work, so it runs on a blocking thread.
pub async fn qr_images(text: String) -> Result<(String, String), ApiError> {
    tokio::task::spawn_blocking(move || {
        let svg = crate::qr::render_svg(&text, QR_SCALE).map_err(ApiError::internal)?;
        let png = crate::qr::render_png(&text, QR_SCALE).map_err(ApiError::internal)?;
        Ok((svg, base64(&png)))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Parses a scanned or typed QR payload, or a patient link holding one.
pub fn parse_payload(text: &str) -> Result<QrPayload, ApiError> {
    QrPayload::parse_scanned(text).map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))
}

/// The value of a decryption that should succeed, or `None` with a
/// warning in the log: a wrap or ciphertext this node cannot open is a
/// data problem worth an operator's look, not something to hide.
pub fn opened<T, E: std::fmt::Display + 'static>(
    what: &str,
    id: &PrescriptionId,
    r: Result<T, E>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            // An erased wrap (past retention) is expected, not a fault.
            let erased = (&e as &dyn std::any::Any)
                .downcast_ref::<rxchain_contracts::privacy::PrivacyError>()
                == Some(&rxchain_contracts::privacy::PrivacyError::Erased);
            if !erased {
                tracing::warn!(prescription = %id, error = %e, "cannot open the {what}");
            }
            None
        }
    }
}

/// Checks that `org` is a member pharmacy, the contracts' rule for who may
/// be assigned, claim and dispense: 404 `unknown_org` for a stranger, 400
/// `not_a_pharmacy` for another kind of member.
pub fn need_pharmacy(g: &Genesis, org: &OrgId) -> Result<(), ApiError> {
    if g.is_pharmacy(org) {
        return Ok(());
    }
    match g.org(org) {
        None => Err(ApiError::not_found(
            "unknown_org",
            format!("{org} is not a consortium member"),
        )),
        Some(_) => Err(ApiError::bad(
            "not_a_pharmacy",
            format!("{org} is not a pharmacy"),
        )),
    }
}

/// Parses a prescription id from a path segment.
pub fn parse_id(id: &str) -> Result<PrescriptionId, ApiError> {
    PrescriptionId::parse(id).map_err(|_| {
        ApiError::bad(
            "bad_prescription_id",
            "a prescription id is 32 hex characters",
        )
    })
}

/// Marks a response as holding a secret or patient data: never cached.
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Runs blocking work (storage scans, decryption) off the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// A list's size.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

pub fn list_limit(q: &ListQuery) -> Result<usize, ApiError> {
    match q.limit {
        None => Ok(DEFAULT_LIST),
        Some(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad(
            "bad_limit",
            format!("limit is 1 to {MAX_LIST}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_address_is_read_from_connect_info_when_there_is_one() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        let ClientAddr(none) = ClientAddr::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(none, None);
        let addr: SocketAddr = "192.0.2.9:4321".parse().unwrap();
        parts.extensions.insert(ConnectInfo(addr));
        let ClientAddr(some) = ClientAddr::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(some, Some(addr.ip()));
    }
}
