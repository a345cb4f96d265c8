//! The one HTTP error type. Every refusal is a status code plus a JSON body
//! `{"code": "...", "message": "..."}`: a stable machine-readable code and a
//! sentence for people. Internal detail is logged, never sent.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rxchain_contracts::{Rejection, TxError};
use serde::Serialize;

use crate::mempool::Receipt;
use crate::service::leader::Relayed;
use crate::service::submit::SubmitError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request body or a parameter is malformed.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 400: the transaction's signature does not verify.
    #[error("the transaction signature does not verify for its declared signer")]
    BadSignature,
    /// 4xx by rule, before ordering: the signer may not sign this kind of
    /// transaction (admission control); nothing was written to the chain.
    #[error("{0}")]
    NotAdmitted(Rejection),
    /// 4xx by rule: the chain refused the transaction (and recorded the refusal).
    #[error("{0}")]
    Refused(Rejection, Option<Receipt>),
    /// 404: the thing asked for does not exist.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 401: no credentials, or credentials that do not authenticate (no
    /// or expired session, a bad request signature).
    #[error("{message}")]
    Unauthorized {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 403: authenticated, but not allowed (wrong role or organisation).
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 409: the request conflicts with the current state outside the chain
    /// rules (e.g. `cluster_unhealthy`: no membership change now).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 405: the path exists, but not with this method.
    #[error("this path does not answer this method")]
    MethodNotAllowed,
    /// 413: the body is larger than allowed.
    #[error("the request body is larger than the {limit} bytes allowed")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: the content type is wrong.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// 422: the input is well-formed but cannot be used (e.g. an unreadable QR photo).
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
    },
    /// 429: too many attempts.
    #[error("{0}")]
    TooMany(String),
    /// 429 `too_many_attempts`: too many failed sign-ins for one username;
    /// answered with `Retry-After`.
    #[error("too many failed sign-ins for this account or from this address; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// Seconds until another attempt is allowed.
        retry_after_secs: u64,
    },
    /// 408: the request took too long.
    #[error("the request took too long and was abandoned")]
    Timeout,
    /// 503: nothing was committed; the client should retry.
    #[error("{0}")]
    NotCommitted(String),
    /// 503 with `Retry-After`: the node is at capacity (e.g.
    /// `mempool_full`); nothing was admitted.
    #[error("{message}")]
    Busy {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// 429 with `Retry-After`: too many refused attempts from one signer
    /// or client address (`too_many_refusals`).
    #[error("{message}")]
    RateLimited {
        /// Machine-readable code.
        code: &'static str,
        /// Sentence for people.
        message: String,
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// The leader's own answer to a forwarded request, relayed unchanged
    /// (its status and JSON body).
    #[error("the leader answered {}", .0.status)]
    Relayed(Relayed),
    /// 500: a bug or a storage failure. Logged with its cause chain; the
    /// client gets a generic sentence.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unknown_prescription`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Where the refused transaction was recorded on the chain (refusals
    /// by a chain rule, once committed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The chain rule's refusal, with its details (refusals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Rejection>,
}

/// The HTTP status of a chain refusal.
pub fn rejection_status(r: &Rejection) -> StatusCode {
    use Rejection::*;
    match r {
        UnknownPrescription
        | UnknownStaff
        | UnknownOrg { .. }
        | UnknownProposal
        | NoGrant { .. }
        | NoPendingRequest { .. }
        | UnknownNode { .. } => StatusCode::NOT_FOUND,
        UnknownSigner
        | SignerRevoked { .. }
        | WrongRole { .. }
        | NotOrgAdmin { .. }
        | NotPrescriberOrPatient
        | NotPatient
        | WrongSecret { .. }
        | CannotRevokeAdmin
        | NotYourNode { .. }
        | NotCarrier { .. } => StatusCode::FORBIDDEN,
        Expired { .. }
        | ProposalExpired { .. }
        | GrantExpired { .. }
        | PersonalDataErased { .. } => StatusCode::GONE,
        Duplicate
        | AlreadyClaimed
        | ClaimedByOther { .. }
        | AlreadyDispensed { .. }
        | PrescriptionExists
        | StaffExists
        | AlreadyRevoked
        | ProofReused
        | ClaimedCannotChange
        | DispensedCannotCancel
        | DeliveryOutOfOrder { .. }
        | ExceedsAllowance { .. }
        | AssignedElsewhere { .. }
        | NotClaimed
        | WrongFulfilmentMode { .. }
        | ControlledUnchanged { .. }
        | NotADelivery
        | HandOverInPerson { .. }
        | AlreadyApproved { .. }
        | ProposalExecuted { .. }
        | NodeExists { .. }
        | OrgExists { .. }
        | KeyInUse
        | GrantRevoked { .. }
        | RequestPending { .. }
        | AlreadyGranted { .. }
        | AnchorNotNewer { .. }
        | Cancelled { .. } => StatusCode::CONFLICT,
        BadValidity
        | ValidityTooLong { .. }
        | MissingKeyWrap { .. }
        | BadAccessKey
        | BadItem { .. }
        | WrongOrgKind { .. }
        | ControlledMismatch { .. }
        | FromTheFuture
        | InvalidConsortium { .. }
        | GrantPeriodInvalid { .. }
        | NotYetValid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl ApiError {
    /// The seconds a client should wait before retrying, for the answers
    /// sent with `Retry-After` (429 and 503).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::Busy {
                retry_after_secs, ..
            }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::BadSignature => StatusCode::BAD_REQUEST,
            ApiError::Refused(r, _) | ApiError::NotAdmitted(r) => rejection_status(r),
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Relayed(r) => {
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooMany(_) | ApiError::TooManyAttempts { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotCommitted(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Busy { code, .. }
            | ApiError::RateLimited { code, .. } => code,
            ApiError::BadSignature => "bad_signature",
            ApiError::Refused(r, _) | ApiError::NotAdmitted(r) => r.code(),
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMedia(_) => "unsupported_media_type",
            ApiError::TooMany(_) => "too_many_requests",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Timeout => "timeout",
            ApiError::NotCommitted(_) => "not_committed",
            ApiError::Relayed(_) => "relayed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A 400 with a code and sentence.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with a code and sentence.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A 401 with a code and sentence.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// A 403 with a code and sentence.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A storage or other internal failure, keeping its cause; logged when
    /// the response is built.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(e.into())
    }
}

/// An error and all its sources, for one log line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Relayed(r) = self {
            return (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r.body,
            )
                .into_response();
        }
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
                "The node hit an internal error; the request was not applied. Operators have the details in the log.".to_string()
            }
            other => other.to_string(),
        };
        let code = self.code().to_string();
        let retry_after = self.retry_after_secs();
        let (receipt, detail) = match self {
            ApiError::Refused(r, receipt) => (receipt, Some(r)),
            ApiError::NotAdmitted(r) => (None, Some(r)),
            _ => (None, None),
        };
        let body = ErrorBody {
            code,
            message,
            receipt,
            detail,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<TxError> for ApiError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::BadSignature => ApiError::BadSignature,
            TxError::Invalid(m) => ApiError::bad("invalid_transaction", m),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(e) => e.into(),
            SubmitError::Inadmissible(r) => ApiError::NotAdmitted(r),
            e @ SubmitError::CorruptState(_) => ApiError::internal(e),
            SubmitError::Store(e) => e.into(),
            e @ SubmitError::BadLeaderAnswer(_) => ApiError::internal(e),
            e @ SubmitError::NotAdmitted(_) => ApiError::Busy {
                code: "mempool_full",
                message: e.to_string(),
                retry_after_secs: 1,
            },
            SubmitError::Throttled {
                retry_after_secs,
                what,
            } => ApiError::RateLimited {
                code: "too_many_refusals",
                message: format!(
                    "too many refused transactions from this {what}; try again in {retry_after_secs} seconds"
                ),
                retry_after_secs,
            },
            e @ (SubmitError::NoLeader(_) | SubmitError::LostLeadership) => {
                ApiError::NotCommitted(e.to_string())
            }
        }
    }
}

fn bytes_rejection(e: &BytesRejection, limit: usize) -> ApiError {
    let text = e.body_text();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
        ApiError::TooLarge { limit }
    } else {
        ApiError::bad(
            "unreadable_body",
            format!("the request body could not be read: {text}"),
        )
    }
}

/// Maps axum's JSON extractor failures to precise errors.
pub fn json_rejection(e: JsonRejection, limit: usize) -> ApiError {
    match e {
        JsonRejection::JsonDataError(e) => ApiError::bad(
            "invalid_json",
            format!("the JSON does not fit: {}", e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad(
            "malformed_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMedia(
            "send the body as JSON with Content-Type: application/json".into(),
        ),
        JsonRejection::BytesRejection(e) => bytes_rejection(&e, limit),
        other => ApiError::bad("bad_request", other.body_text()),
    }
}

/// Maps a raw-body read failure.
pub fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    bytes_rejection(&e, limit)
}
