//! The web pages: `web/` embedded into the binary at build time, so a node
//! started from any directory serves them; the `web_dir` setting serves a
//! directory from disk instead, for working on the pages without rebuilding.

use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use include_dir::{include_dir, Dir};

use super::ApiError;

/// `web/` as it was when the binary was built.
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The content type of a page or asset, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves `uri` from the embedded pages: a directory's `index.html`, a
/// directory named without its trailing slash redirected to it (as
/// tower-http's `ServeDir` does, so relative links resolve), anything else
/// the JSON 404 of the API.
pub(super) async fn embedded(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !matches!(method, Method::GET | Method::HEAD) || path.split('/').any(|seg| seg == "..") {
        return not_found();
    }
    let file = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    };
    if let Some(f) = WEB.get_file(&file) {
        return (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&file)),
                ),
                // A node upgrade changes the pages; browsers revalidate.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            f.contents(),
        )
            .into_response();
    }
    if WEB.get_dir(path).is_some() && WEB.get_file(format!("{path}/index.html")).is_some() {
        return Redirect::temporary(&format!("/{path}/")).into_response();
    }
    not_found()
}

fn not_found() -> Response {
    ApiError::not_found("no_such_route", "there is no such route").into_response()
}
