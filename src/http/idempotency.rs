//! `Idempotency-Key` for the endpoints that sign on the server.
//!
//! A staff or patient call signs a new transaction with a fresh nonce every
//! time, so without a key a retry after a 503 or a 202 (the very answers
//! that tell a client to retry) would record the act twice. With a key the
//! first request stores what it signed ([`crate::service::idempotency`])
//! before submitting it; a retry with the same key and the same request
//! resubmits that same transaction through [`crate::service::submit`],
//! which is idempotent by transaction id: the committed receipt, pending,
//! or a second offer of a transaction that was never admitted. The same
//! key with another request is refused with 422 `idempotency_key_reused`.
//!
//! Keys are scoped by who acts (a staff member's organisation and
//! username; for a patient, the prescription of the code), so two users
//! cannot collide, and a record holds the request's fingerprint: route,
//! path parameters and a hash of the raw body.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use rxchain_contracts::{PrescriptionId, SignedTx};
use serde::de::DeserializeOwned;
use sha3::{Digest, Sha3_256};

use super::session::Staff;
use super::{error, ApiError, AppState};
use crate::clock::now;
use crate::service::idempotency::{Fingerprint, Record, RecordKey};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted.
const MAX_KEY: usize = 128;

/// The `Idempotency-Key` header of a request, if it sent one: 1 to 128
/// visible ASCII characters, or 400 `bad_idempotency_key`.
#[derive(Debug)]
pub struct IdempotencyKey(Option<String>);

fn bad_key(message: &str) -> ApiError {
    ApiError::bad("bad_idempotency_key", message)
}

impl IdempotencyKey {
    /// Parses a header value.
    fn parse(v: &[u8]) -> Result<String, ApiError> {
        if v.is_empty() || v.len() > MAX_KEY {
            return Err(bad_key(
                "an Idempotency-Key is 1 to 128 visible ASCII characters",
            ));
        }
        if !v.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(bad_key(
                "an Idempotency-Key holds only visible ASCII characters (no spaces)",
            ));
        }
        // Checked above: every byte is ASCII.
        Ok(String::from_utf8_lossy(v).into_owned())
    }

    /// The key scoped to a signed-in staff member, for `route` with its
    /// path parameters `path` and the body hashed as `body`.
    pub fn for_staff(
        &self,
        staff: &Staff,
        route: &str,
        path: &str,
        body: &BodyHash,
    ) -> Option<Scoped> {
        let key = self.0.as_ref()?;
        Some(Scoped::new(
            &["staff", staff.org().as_str(), &staff.account().username],
            key,
            route,
            path,
            body,
        ))
    }

    /// This key, or when the request sent none, one derived from a FHIR
    /// `If-None-Exist` condition (hashed, so any condition text fits), so
    /// the same condition again answers the same transaction.
    pub fn or_condition(self, condition: Option<&str>) -> Self {
        match (self.0, condition) {
            (Some(k), _) => IdempotencyKey(Some(k)),
            (None, Some(c)) => IdempotencyKey(Some(format!(
                "if-none-exist:{}",
                hex::encode(Sha3_256::digest(c.as_bytes()))
            ))),
            (None, None) => IdempotencyKey(None),
        }
    }

    /// The key scoped to the holder of prescription `id`'s code.
    pub fn for_patient(&self, id: &PrescriptionId, route: &str, body: &BodyHash) -> Option<Scoped> {
        let key = self.0.as_ref()?;
        Some(Scoped::new(
            &["patient", &id.to_string()],
            key,
            route,
            "",
            body,
        ))
    }
}

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(first) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        if values.next().is_some() {
            return Err(bad_key("send one Idempotency-Key header, not several"));
        }
        Ok(IdempotencyKey(Some(Self::parse(first.as_bytes())?)))
    }
}

/// The SHA3-256 of a request's raw body.
#[derive(Clone, Copy, Debug)]
pub struct BodyHash([u8; 32]);

/// A JSON body like [`super::ApiJson`], with the same errors, that also
/// hashes the raw bytes for the idempotency fingerprint.
pub struct HashedJson<T>(pub T, pub BodyHash);

impl<T: DeserializeOwned> FromRequest<AppState> for HashedJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.api.body_limit_bytes;
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| error::body_rejection(e, limit))?;
        let hash = BodyHash(Sha3_256::digest(&bytes).into());
        // axum's own JSON extractor over the bytes read, so content type,
        // syntax and shape errors map exactly as for `ApiJson`.
        let mut again = Request::new(Body::from(bytes));
        *again.headers_mut() = headers;
        match axum::Json::<T>::from_request(again, state).await {
            Ok(axum::Json(v)) => Ok(HashedJson(v, hash)),
            Err(e) => Err(error::json_rejection(e, limit)),
        }
    }
}

/// A key bound to who acts and to what they asked.
#[derive(Debug)]
pub struct Scoped {
    key: RecordKey,
    fingerprint: Fingerprint,
}

impl Scoped {
    fn new(scope: &[&str], key: &str, route: &str, path: &str, body: &BodyHash) -> Self {
        let mut h = Sha3_256::new();
        h.update(b"rxchain-idempotency-request-v1\0");
        for part in [route.as_bytes(), path.as_bytes(), &body.0] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Scoped {
            key: RecordKey::new(scope, key),
            fingerprint: Fingerprint(h.finalize().into()),
        }
    }
}

/// The transaction to submit for a request.
#[derive(Debug)]
pub struct Signed {
    /// The transaction: freshly signed, or the one signed for this key before.
    pub tx: SignedTx,
    /// What the builder asked to keep for rebuilding the answer.
    pub secret: Option<Vec<u8>>,
}

fn reused() -> ApiError {
    ApiError::Unprocessable {
        code: "idempotency_key_reused",
        message:
            "this Idempotency-Key was used for a different request; use a new key for a new action"
                .into(),
    }
}

/// The stored transaction when it answers the same request; 422 otherwise.
fn replay(scoped: &Scoped, r: Record) -> Result<Signed, ApiError> {
    if r.fingerprint != scoped.fingerprint {
        return Err(reused());
    }
    tracing::info!("idempotent retry: re-offering the transaction signed before");
    Ok(Signed {
        tx: r.tx,
        secret: r.secret,
    })
}

/// What was signed before for this key and this very request, if anything;
/// a record of another request under the key is not an error here.
pub async fn signed_before(
    s: &AppState,
    scoped: Option<&Scoped>,
) -> Result<Option<Signed>, ApiError> {
    let Some(scoped) = scoped else {
        return Ok(None);
    };
    let store = s.idempotency.clone();
    let key = scoped.key.clone();
    let found = super::common::blocking(move || Ok(store.get(&key)?)).await?;
    Ok(found
        .filter(|r| r.fingerprint == scoped.fingerprint)
        .map(|r| Signed {
            tx: r.tx,
            secret: r.secret,
        }))
}

/// Signs at most once per key: without a key, `build` runs; with one, the
/// transaction stored for it is answered, or `build` runs and its result is
/// stored (atomically, before anyone submits it) unless a concurrent first
/// request stored its own first, which then wins.
pub async fn sign_once<F, Fut>(
    s: &AppState,
    scoped: Option<&Scoped>,
    build: F,
) -> Result<Signed, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Signed, ApiError>>,
{
    let Some(scoped) = scoped else {
        return build().await;
    };
    let store = s.idempotency.clone();
    let key = scoped.key.clone();
    let found = super::common::blocking(move || Ok(store.get(&key)?)).await?;
    if let Some(r) = found {
        return replay(scoped, r);
    }
    let signed = build().await?;
    let record = Record {
        fingerprint: scoped.fingerprint,
        created_at: now(),
        tx: signed.tx,
        secret: signed.secret,
    };
    let store = s.idempotency.clone();
    let key = scoped.key.clone();
    let (record, earlier) =
        super::common::blocking(move || Ok(store.insert(&key, &record).map(|e| (record, e))?))
            .await?;
    match earlier {
        None => Ok(Signed {
            tx: record.tx,
            secret: record.secret,
        }),
        Some(r) => replay(scoped, r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert_eq!(
            IdempotencyKey::parse(b"0b7c-UUID_ok:1").unwrap(),
            "0b7c-UUID_ok:1"
        );
        assert!(IdempotencyKey::parse(&[b'a'; 128]).is_ok());
        for bad in [
            &b""[..],
            &[b'a'; 129],
            b"has space",
            b"tab\t",
            "é".as_bytes(),
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code(),
                "bad_idempotency_key"
            );
        }
    }

    #[test]
    fn the_fingerprint_covers_route_path_and_body() {
        let body = BodyHash([1; 32]);
        let a = Scoped::new(&["staff", "o", "u"], "k", "cancel", "id1", &body);
        let b = Scoped::new(&["staff", "o", "u"], "k", "cancel", "id2", &body);
        let c = Scoped::new(
            &["staff", "o", "u"],
            "k",
            "cancel",
            "id1",
            &BodyHash([2; 32]),
        );
        let d = Scoped::new(&["staff", "o", "v"], "k", "cancel", "id1", &body);
        assert_eq!(a.key, b.key);
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_ne!(a.key, d.key);
    }
}
