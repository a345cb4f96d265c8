//! The OpenAPI document lists exactly the routes the server serves: every
//! `.route("…")` in `src/http/` is documented, and nothing documented is
//! missing from the code.

use std::collections::BTreeSet;

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
                // The catch-all that answers unknown API routes with a JSON 404.
                if route != "/v1/{*rest}" {
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
