//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` derives on their bodies (the contracts'
//! chain types included, through their `openapi` feature), and the
//! test-only check that every answer the node gives matches it.
//!
//! The document is built once per process ([`document`]); `/openapi.json`
//! serves it. With `api.testing_validate_openapi` on, [`validate_responses`]
//! runs around every API route and replaces an answer whose status is not
//! documented for its route and method, or whose JSON body does not fit the
//! documented schema, with a 500 `openapi_mismatch`, so any test that meets
//! one fails.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::ApiError;

/// The generated document's source: every documented operation. The
/// internal `/raft/*` routes are deliberately absent.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rxchain node API",
        version = "1.0.0",
        description = "E-prescriptions on a Raft-ordered consortium chain. Every error is a JSON body `{code, message}` (the `ErrorBody` schema); refusals by the chain rules also carry `detail` (the rejection) and, once recorded on the chain, `receipt`."
    ),
    paths(
        super::tx::submit,
        super::tx::submit_batch,
        super::tx::get_tx,
        super::rx::prescription,
        super::rx::sealed,
        super::chain::head,
        super::chain::block,
        super::chain::consortium,
        super::governance::proposals,
        super::scan::scan_text,
        super::scan::scan_image,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
        super::session::sign_in,
        super::session::current,
        super::session::sign_out,
        super::formulary::formulary,
        super::qr::qr,
        super::doctor::issue,
        super::doctor::my_prescriptions,
        super::doctor::cancel,
        super::email::email_code,
        super::email::outbox,
        super::email::unsubscribe,
        super::email::patient_switch,
        super::pharmacy::claim,
        super::pharmacy::dispense,
        super::pharmacy::release,
        super::pharmacy::delivery,
        super::pharmacy::hand_over,
        super::accounts::disable,
        super::accounts::enable,
        super::accounts::bootstrap,
        super::accounts::list_staff,
        super::accounts::create_staff,
        super::accounts::admin_disable,
        super::accounts::admin_enable,
        super::accounts::reset_password,
        super::accounts::rotate_key,
        super::accounts::revoke,
        super::accounts::enrol_second_factor,
        super::tokens::issue,
        super::tokens::list,
        super::tokens::revoke,
        super::session::change_password,
        super::pharmacy::pharmacy_prescriptions,
        super::courier::deliveries,
        super::patient::open,
        super::patient::assign,
        super::patient::cancel,
        super::consent::sharing,
        super::consent::share,
        super::consent::unshare,
        super::consent::refuse,
        super::consent::request,
        super::consent::shared,
        super::consent::claims,
        super::access::patient_access,
        super::access::node_access,
        super::access::by_staff,
        super::access::volumes,
        super::access::verify,
        super::reports::dispensing,
        super::reports::dispensing_csv,
        super::reports::controlled,
        super::reports::alerts,
        super::reports::chain,
        super::reports::verify,
        super::cluster::status,
        super::cluster::local,
        super::cluster::read_index::read_index,
        super::cluster::add_learner,
        super::cluster::promote,
        super::cluster::remove,
        super::cluster::partition,
        super::backup::backup,
        super::fhir::metadata,
        super::fhir::read_request,
        super::fhir::create_request,
        super::fhir::search_dispenses,
        super::fhir::search_provenance,
    ),
    components(schemas(ErrorBody)),
    modifiers(&EveryOperation, &Submissions, &ForcedPasswordChange)
)]
struct ApiDoc;

/// An error answer with the `ErrorBody` schema.
fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Adds what any operation can answer, whatever its handler does: 408 when
/// the request outlives the node's timeout, 500 for an internal failure.
struct EveryOperation;

impl Modify for EveryOperation {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                let r = &mut op.responses.responses;
                r.entry("408".into()).or_insert_with(|| {
                    error("`timeout`: the request took too long and was abandoned")
                });
                r.entry("500".into()).or_insert_with(|| {
                    error("`internal`: the node hit an internal error; nothing was applied")
                });
            }
        }
    }
}

/// Adds 403 `password_change_required` to every operation that takes a
/// staff session (its 401 names `no_session`), except the session calls
/// that a session with a forced password change may still make.
struct ForcedPasswordChange;

impl Modify for ForcedPasswordChange {
    fn modify(&self, doc: &mut Document) {
        const CODE: &str = "`password_change_required`";
        for (path, item) in doc.paths.paths.iter_mut() {
            if path.starts_with("/v1/session") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let r = &mut op.responses.responses;
                let takes_session = matches!(
                    r.get("401"),
                    Some(RefOr::T(resp)) if resp.description.contains("no_session")
                );
                if !takes_session {
                    continue;
                }
                match r.get_mut("403") {
                    Some(RefOr::T(resp)) => {
                        if !resp.description.contains(CODE) {
                            resp.description.push_str(&format!(
                                "; {CODE}: the initial password must be changed first"
                            ));
                        }
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        r.insert(
                            "403".into(),
                            error(&format!(
                                "{CODE}: the initial password must be changed first"
                            )),
                        );
                    }
                }
            }
        }
    }
}

/// The operations that submit a transaction (through
/// [`crate::service::submit`]), and whether they sign on the server for a
/// staff member or patient (and so take an `Idempotency-Key`).
const SUBMISSIONS: &[(&str, bool)] = &[
    ("/v1/tx", false),
    ("/v1/staff/prescriptions", true),
    ("/v1/staff/prescriptions/{id}/cancel", true),
    ("/v1/staff/claim", true),
    ("/v1/staff/dispense", true),
    ("/v1/staff/release", true),
    ("/v1/staff/delivery", true),
    ("/v1/staff/hand-over", true),
    ("/v1/patient/assign", true),
    ("/v1/patient/cancel", true),
];

/// Adds what every submission can answer whatever its route: 429
/// `too_many_refusals` (the refusal throttle), 503 `mempool_full`; and for
/// the server-signed ones the `Idempotency-Key` header with its 400 and 422.
struct Submissions;

impl Modify for Submissions {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for (path, idempotent) in SUBMISSIONS {
            let Some(op) = doc.paths.paths.get_mut(*path).and_then(|i| i.post.as_mut()) else {
                continue;
            };
            let r = &mut op.responses.responses;
            r.insert(
                "429".into(),
                error("`too_many_refusals` (with `Retry-After`): too many refused transactions from this signer or client address; nothing was admitted"),
            );
            r.entry("503".into()).or_insert_with(|| {
                error("`not_committed` or `mempool_full` (with `Retry-After`): nothing was committed; retry")
            });
            if *idempotent {
                r.entry("400".into())
                    .or_insert_with(|| error("A malformed request"));
                r.insert(
                    "422".into(),
                    error("`idempotency_key_reused`: the key was used for another request; or a chain rule's refusal (validity, items)"),
                );
                let param = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "1-128 visible ASCII characters (400 `bad_idempotency_key` otherwise). A retry with the same key and body answers the first outcome and signs nothing new.",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
                    .build();
                op.parameters.get_or_insert_with(Vec::new).push(param);
            }
        }
    }
}

/// The API document, built once.
pub fn document() -> &'static Document {
    static DOC: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);
    &DOC
}

/// The API document as JSON text, as `/openapi.json` serves it.
pub fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string_pretty(document()).expect("the OpenAPI document serialises")
    });
    &JSON
}

/// Checks answers against the document: compiled response schemas are
/// cached per route, method and status.
pub struct ResponseValidator {
    /// The document as JSON, for looking up operations.
    doc: Value,
    /// `components`, placed beside each response schema so its
    /// `#/components/schemas/...` references resolve.
    components: Value,
    /// Compiled schemas by `(route, method, status)`; `None` when the
    /// documented response has no JSON body.
    cache: Mutex<HashMap<(String, String, u16), Option<Arc<jsonschema::Validator>>>>,
}

/// What is wrong with an answer.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// The route and method are not in the document at all.
    #[error("{method} {route} is not documented")]
    UndocumentedOperation {
        /// The route pattern.
        route: String,
        /// The HTTP method.
        method: String,
    },
    /// The status is not among the operation's documented responses.
    #[error("{method} {route} answered {status}, which is not documented for it")]
    UndocumentedStatus {
        /// The route pattern.
        route: String,
        /// The HTTP method.
        method: String,
        /// The answered status.
        status: u16,
    },
    /// The body is not JSON although the answer says it is.
    #[error("{method} {route} answered {status} with a body that is not JSON: {source}")]
    NotJson {
        /// The route pattern.
        route: String,
        /// The HTTP method.
        method: String,
        /// The answered status.
        status: u16,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The body does not fit the documented schema.
    #[error(
        "{method} {route} answered {status} with a body that does not fit the document: {error}"
    )]
    Schema {
        /// The route pattern.
        route: String,
        /// The HTTP method.
        method: String,
        /// The answered status.
        status: u16,
        /// The first validation error, with where in the body it is.
        error: String,
    },
    /// The document's schema itself does not compile: a bug in the document.
    #[error("the documented schema of {method} {route} {status} does not compile: {error}")]
    BadSchema {
        /// The route pattern.
        route: String,
        /// The HTTP method.
        method: String,
        /// The answered status.
        status: u16,
        /// The compiler's complaint.
        error: String,
    },
}

impl ResponseValidator {
    /// A validator over `doc`.
    pub fn new(doc: &Document) -> Self {
        let doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
        let components = doc.get("components").cloned().unwrap_or(Value::Null);
        ResponseValidator {
            doc,
            components,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A validator over the node's own document.
    pub fn for_api() -> Self {
        Self::new(document())
    }

    /// The compiled schema of a documented JSON response.
    fn schema_for(
        &self,
        route: &str,
        method: &str,
        status: u16,
    ) -> Result<Option<Arc<jsonschema::Validator>>, Mismatch> {
        let key = (route.to_string(), method.to_string(), status);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        let op = self.doc["paths"]
            .get(route)
            .and_then(|p| p.get(method))
            .ok_or_else(|| Mismatch::UndocumentedOperation {
                route: route.into(),
                method: method.to_uppercase(),
            })?;
        let response = op["responses"]
            .get(status.to_string())
            .or_else(|| op["responses"].get("default"))
            .ok_or_else(|| Mismatch::UndocumentedStatus {
                route: route.into(),
                method: method.to_uppercase(),
                status,
            })?;
        let compiled = match response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .and_then(|c| c.get("schema"))
        {
            None => None,
            Some(schema) => {
                let root = serde_json::json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": self.components,
                    "allOf": [schema],
                });
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&root)
                    .map_err(|e| Mismatch::BadSchema {
                        route: route.into(),
                        method: method.to_uppercase(),
                        status,
                        error: e.to_string(),
                    })?;
                Some(Arc::new(v))
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Checks one answer: its status must be documented for the route and
    /// method, and a JSON body (`body` is `Some`) must fit that status's
    /// schema.
    pub fn check(
        &self,
        route: &str,
        method: &Method,
        status: u16,
        body: Option<&[u8]>,
    ) -> Result<(), Mismatch> {
        let method_name = method.as_str().to_lowercase();
        let schema = self.schema_for(route, &method_name, status)?;
        let (Some(schema), Some(body)) = (schema, body) else {
            return Ok(());
        };
        let value: Value = serde_json::from_slice(body).map_err(|source| Mismatch::NotJson {
            route: route.into(),
            method: method.as_str().into(),
            status,
            source,
        })?;
        schema.validate(&value).map_err(|e| Mismatch::Schema {
            route: route.into(),
            method: method.as_str().into(),
            status,
            error: format!("at {:?}: {e}", e.instance_path().as_str()),
        })
    }
}

/// The catch-alls answering unknown `/v1/...` and `/fhir/r4/...` paths:
/// not operations.
const CATCH_ALL: [&str; 4] = ["/v1/{*rest}", "/fhir/r4", "/fhir/r4/", "/fhir/r4/{*rest}"];

/// Middleware (test-only, `api.testing_validate_openapi`): checks every
/// answer of a matched API route against the document and turns a
/// mismatch into a 500 `openapi_mismatch`, logged at error level.
pub async fn validate_responses(
    State(validator): State<Arc<ResponseValidator>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let Some(route) = route.filter(|r| !CATCH_ALL.contains(&r.as_str())) else {
        return resp;
    };
    let status = resp.status();
    // axum answers a known path with another method itself, with an empty
    // body: that is routing, not an operation of the document.
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (parts, body) = resp.into_parts();
    let bytes = if is_json {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => Some(b),
            Err(e) => return ApiError::internal(e).into_response(),
        }
    } else {
        // Not JSON: only the status is checked; the body streams on.
        if let Err(m) = validator.check(&route, &method, status.as_u16(), None) {
            return mismatch(m);
        }
        return Response::from_parts(parts, body);
    };
    match validator.check(&route, &method, status.as_u16(), bytes.as_deref()) {
        Ok(()) => Response::from_parts(parts, Body::from(bytes.unwrap_or_default())),
        Err(m) => mismatch(m),
    }
}

/// The 500 that replaces a mismatching answer.
fn mismatch(m: Mismatch) -> Response {
    tracing::error!(error = %m, "answer does not match the OpenAPI document");
    let body = ErrorBody {
        code: "openapi_mismatch".into(),
        message: m.to_string(),
        receipt: None,
        detail: None,
    };
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_error_schema_and_common_responses() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        let op = &doc["paths"]["/v1/tx"]["post"]["responses"];
        for status in ["200", "202", "400", "408", "413", "415", "500", "503"] {
            assert!(op[status].is_object(), "POST /v1/tx lacks {status}");
        }
        assert!(doc["paths"].get("/raft/append").is_none());
    }

    #[test]
    fn the_validator_passes_a_fitting_answer_and_catches_mismatches() {
        let v = ResponseValidator::for_api();
        let head = serde_json::json!({
            "chain_id": "demo", "genesis_hash": "ab".repeat(32), "height": 3,
            "hash": "cd".repeat(32), "timestamp": 1_700_000_000_000u64,
            "state_digest": "ef".repeat(32), "state_root": "ab".repeat(32),
        });
        let ok = serde_json::to_vec(&head).unwrap();
        v.check("/v1/chain/head", &Method::GET, 200, Some(&ok))
            .expect("a fitting head passes");

        // A field of the wrong type.
        let mut wrong = head.clone();
        wrong["height"] = Value::String("three".into());
        let err = v
            .check(
                "/v1/chain/head",
                &Method::GET,
                200,
                Some(&serde_json::to_vec(&wrong).unwrap()),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Mismatch::Schema { error, .. } if error.contains("height")),
            "{err}"
        );

        // A hash that is not hex.
        let mut wrong = head.clone();
        wrong["hash"] = Value::String("not hex".into());
        assert!(matches!(
            v.check(
                "/v1/chain/head",
                &Method::GET,
                200,
                Some(&serde_json::to_vec(&wrong).unwrap())
            ),
            Err(Mismatch::Schema { .. })
        ));

        // A status the route does not document.
        let err = v
            .check("/v1/chain/head", &Method::GET, 418, None)
            .unwrap_err();
        assert!(
            matches!(err, Mismatch::UndocumentedStatus { status: 418, .. }),
            "{err}"
        );

        // An error body must be `{code, message}`.
        let bad_error = br#"{"message": "no code"}"#;
        assert!(matches!(
            v.check("/v1/tx/{id}", &Method::GET, 404, Some(bad_error)),
            Err(Mismatch::Schema { .. })
        ));
        let good_error = br#"{"code": "unknown_tx", "message": "no such transaction"}"#;
        v.check("/v1/tx/{id}", &Method::GET, 404, Some(good_error))
            .expect("a fitting error passes");

        // A route that is not documented at all.
        assert!(matches!(
            v.check("/raft/append", &Method::POST, 200, None),
            Err(Mismatch::UndocumentedOperation { .. })
        ));
    }

    /// The middleware on a router: a fitting answer passes unchanged, a
    /// wrongly typed body and an undocumented status become a 500
    /// `openapi_mismatch` naming the route and status.
    #[tokio::test]
    async fn the_middleware_replaces_mismatching_answers() {
        use axum::routing::get;
        use tower::ServiceExt as _;

        async fn call(body: Value, status: StatusCode) -> (StatusCode, Value) {
            let app = axum::Router::new()
                .route(
                    "/v1/chain/head",
                    get(move || async move { (status, axum::Json(body)) }),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::new(ResponseValidator::for_api()),
                    validate_responses,
                ));
            let req = Request::get("/v1/chain/head").body(Body::empty()).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, serde_json::from_slice(&bytes).unwrap())
        }

        let head = serde_json::json!({
            "chain_id": "demo", "genesis_hash": "ab".repeat(32), "height": 3,
            "hash": "cd".repeat(32), "timestamp": 5, "state_digest": "ef".repeat(32), "state_root": "ab".repeat(32),
        });
        let (status, body) = call(head.clone(), StatusCode::OK).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, head);

        let mut wrong = head.clone();
        wrong["timestamp"] = Value::Null;
        let (status, body) = call(wrong, StatusCode::OK).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "openapi_mismatch");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("/v1/chain/head")
                && message.contains("200")
                && message.contains("timestamp"),
            "{message}"
        );

        let (status, body) = call(head, StatusCode::CONFLICT).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "openapi_mismatch");
        assert!(body["message"].as_str().unwrap().contains("409"), "{body}");
    }
}
