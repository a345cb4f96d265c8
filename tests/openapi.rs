//! The OpenAPI document lists exactly the routes the server serves: every
//! `.route("…")` in `src/http/` is documented, and nothing documented is
//! missing from the code.

use std::collections::BTreeSet;

mod common;

fn routes_in_code() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    scan_routes(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut out,
    );
    out
}

/// Collects every `.route("…")` in the `.rs` files under `dir`, its
/// sub-modules (such as `cluster/`) included.
fn scan_routes(dir: &std::path::Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan_routes(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split(".route(").skip(1) {
                let Some(rest) = part.trim_start().strip_prefix('"') else {
                    continue;
                };
                let route = rest.split('"').next().unwrap().to_string();
                // The catch-alls that answer unknown API and FHIR routes
                // with a JSON 404 or an OperationOutcome.
                if !["/v1/{*rest}", "/fhir/r4", "/fhir/r4/", "/fhir/r4/{*rest}"]
                    .contains(&route.as_str())
                {
                    out.insert(route);
                }
            }
        }
    }
}

#[test]
fn openapi_documents_exactly_the_served_routes() {
    let doc: serde_json::Value = serde_json::from_str(rxchain::http::ops::openapi_json()).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served = routes_in_code();
    assert!(served.len() > 30, "route scan found too little: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.json: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "in openapi.json but not served: {stale:?}"
    );
}

/// Answers axum used to give in plain text (a bad query string, a path
/// that is not UTF-8, a wrong method) or without the documented shape
/// are JSON `{code, message}` now; the node runs with the OpenAPI
/// conformance check on, so each answer was also checked against the
/// document.
#[tokio::test(flavor = "multi_thread")]
async fn extractor_failures_are_json_errors() {
    let t = common::start_demo_node().await;
    let http = reqwest::Client::new();
    let expect = |status: u16, code: &'static str| {
        move |resp: (reqwest::StatusCode, serde_json::Value)| {
            assert_eq!(resp.0.as_u16(), status, "{}", resp.1);
            assert_eq!(resp.1["code"], code, "{}", resp.1);
            assert!(resp.1["message"].is_string(), "{}", resp.1);
        }
    };
    async fn answer(r: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"), "status {status}");
        (status, resp.json().await.unwrap())
    }
    // A query string without the required pharmacy.
    expect(400, "bad_query")(
        answer(
            http.post(format!("{}/v1/scan/image?pharmacy=NOT%20AN%20ORG", t.base))
                .body(vec![1u8, 2, 3]),
        )
        .await,
    );
    // A path segment that is not UTF-8.
    expect(400, "bad_path")(answer(http.get(format!("{}/v1/tx/%FF%FE", t.base))).await);
    // A method the path does not answer.
    expect(405, "method_not_allowed")(answer(http.put(format!("{}/v1/tx", t.base))).await);
    // A body that is not declared as JSON.
    expect(415, "unsupported_media_type")(
        answer(
            http.post(format!("{}/v1/tx", t.base))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await,
    );
    // A documented error with the documented shape passes the check.
    expect(404, "unknown_tx")(
        answer(http.get(format!("{}/v1/tx/{}", t.base, "ab".repeat(32)))).await,
    );
}

/// Every `ToSchema` type's name in the document, by the files that derive
/// it: a derive line, then attribute lines (`schema(as = X)` renames), then
/// `pub struct|enum Name`.
fn schema_names(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            schema_names(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("#[") || !line.contains("ToSchema") {
                continue;
            }
            let mut renamed = None;
            for next in &lines[i + 1..] {
                let t = next.trim_start();
                if let Some(rest) = t.split("schema(as = ").nth(1) {
                    renamed = rest.split(')').next().map(|s| s.trim().to_string());
                }
                let item = t
                    .strip_prefix("pub struct ")
                    .or_else(|| t.strip_prefix("pub enum "));
                if let Some(item) = item {
                    let name: String = item
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push((renamed.unwrap_or(name), path.display().to_string()));
                    break;
                }
                if !(t.starts_with("#[") || t.starts_with("///") || t.starts_with(')')) {
                    break;
                }
            }
        }
    }
}

/// utoipa keys components by name, so two types of one name would leave
/// one schema for both, and answers of the other would be checked against
/// the wrong one (this happened: the access log's `Head` replaced the
/// chain's).
#[test]
fn no_two_schema_types_share_a_name() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    schema_names(&root.join("src"), &mut names);
    schema_names(&root.join("contracts/src"), &mut names);
    assert!(
        names.len() > 50,
        "the scan finds the schema types: {names:?}"
    );
    assert!(
        names.iter().any(|(n, _)| n == "AccessLogHead"),
        "renames are read"
    );
    let mut seen = std::collections::BTreeMap::<&str, &str>::new();
    let mut clashes = Vec::new();
    for (name, file) in &names {
        if let Some(other) = seen.insert(name, file) {
            clashes.push(format!("{name}: {other} and {file}"));
        }
    }
    assert!(clashes.is_empty(), "schema names used twice: {clashes:?}");
}
