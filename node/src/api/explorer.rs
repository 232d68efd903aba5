//! The explorer's built files, served from the one directory the node was configured with
//! (`explorer_dir`, `--explorer-dir`): never looked for elsewhere, so a node started inside
//! someone else's checkout does not serve that checkout's JavaScript. Every answer carries
//! the security headers (`http::security_headers`): a Content-Security-Policy that lets the
//! page load only its own scripts, styles and API, `nosniff`, no framing, no referrer.

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Api;
use super::error::ApiError;

/// Serves the explorer's built files: `/` is `index.html`; a path with no file is the
/// app's own route (also `index.html`).
pub(crate) async fn explorer(State(api): State<Api>, uri: Uri) -> Response {
    let Some(dir) = &api.explorer else {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NO_EXPLORER,
        )
            .into_response();
    };
    let path = uri.path().trim_start_matches('/');
    // Only plain relative names: nothing above the directory, no hidden files.
    let safe = !path
        .split('/')
        .any(|c| c == ".." || c.starts_with('.') || c.contains('\\'));
    let file = if path.is_empty() || !safe {
        dir.join("index.html")
    } else {
        let f = dir.join(path);
        if tokio::fs::metadata(&f).await.is_ok_and(|m| m.is_file()) {
            f
        } else {
            dir.join("index.html")
        }
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("json" | "map") => "application/json",
                Some("ico") => "image/x-icon",
                Some("woff2") => "font/woff2",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        Err(e) => {
            tracing::warn!("the explorer's {}: {e}", file.display());
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the explorer's files are incomplete: rebuild them (npm run build in explorer/)",
            )
            .into_response()
        }
    }
}

/// What `/` says when the node was given no explorer (no inline style: the page is under the
/// same Content-Security-Policy).
const NO_EXPLORER: &str = "<!doctype html><html lang=en><meta charset=utf-8><title>Sietch node</title>\
<body><h1>Sietch node</h1>\
<p>This node serves its HTTP API under <a href=/api/v1/node>/api/v1/</a> \
(<a href=/api/v1/openapi.json>described here</a>), but it was given no explorer to serve.</p>\
<p>Build it with <code>bash scripts/setup.sh</code> (which runs <code>npm ci</code> and \
<code>npm run build</code> in <code>explorer/</code>), then restart the node with \
<code>--explorer-dir</code> (or <code>explorer_dir</code> in its config) naming the built \
<code>explorer/dist</code> directory.</p></body></html>";
