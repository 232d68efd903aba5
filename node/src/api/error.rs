//! The API's one error form, `{"code": "...", "message": "..."}`, and what makes every error
//! take it: the handlers' own errors, axum's rejections and anything else that answers with a
//! bare status (a response-mapping layer), request bodies read under a size bound and a time
//! bound, and messages scrubbed of what they must not tell a client (URLs, which can carry an
//! RPC key in their path, and absolute file-system paths).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

/// Longest message an error carries (a rejection's text is cut there).
const MAX_MESSAGE: usize = 600;

/// An error answer: a status, a stable code and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Structured facts beside the message (`"detail"` in the answer), for the codes that
    /// carry some (`no_match`: which filter stopped the offers, how many passed each).
    pub(crate) detail: Option<serde_json::Value>,
    /// Close the connection after answering (a body left unread).
    pub(crate) close: bool,
}

impl ApiError {
    /// An error with its status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            close: false,
        }
    }

    /// The error with structured facts beside its message.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": scrub(&self.message)});
        if let (Some(detail), Some(map)) = (self.detail, body.as_object_mut()) {
            map.insert("detail".into(), detail);
        }
        let body = body.to_string();
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// 503: the node's own machinery failed or is going away.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{e}; the node may be shutting down, try again"),
    )
}

/// `message` with every URL written `<url>` and every absolute file-system path `<path>`:
/// a chain error can carry the RPC URL (and a key in its path), an I/O error the node's data
/// directory. The API's own route names (`/api/...`) stay.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    // Long enough for any message worth reading; the scan below stays cheap.
    let mut cut = message.len().min(4 * MAX_MESSAGE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rest = message.get(..cut).unwrap_or("");
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let at_token_start = prev.is_none_or(|p| p.is_whitespace() || "\"'`([{=,;<".contains(p));
        let token_len = rest
            .find(|c: char| c.is_whitespace() || "\"'`)]},;<>".contains(c))
            .unwrap_or(rest.len());
        let token = rest.get(..token_len).unwrap_or(rest);
        if at_token_start && is_url(token) {
            out.push_str("<url>");
            // Punctuation after a URL (`url: reason`) stays.
            let url_len = token.trim_end_matches([':', '.', ',']).len();
            rest = rest.get(url_len..).unwrap_or("");
            prev = Some('>');
            continue;
        }
        if at_token_start && is_abs_path(token) {
            out.push_str("<path>");
            // An I/O error writes `path: reason`: keep the colon.
            let path_len = token.find(':').unwrap_or(token_len);
            rest = rest.get(path_len..).unwrap_or("");
            prev = Some('>');
            continue;
        }
        out.push(c);
        prev = Some(c);
        rest = rest.get(c.len_utf8()..).unwrap_or("");
    }
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

fn is_url(token: &str) -> bool {
    token.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Where a multiaddress starts (`/ip4/127.0.0.1/tcp/7070/p2p/...` is an address, not a file).
const MULTIADDR: [&str; 8] = [
    "/ip4/",
    "/ip6/",
    "/dns/",
    "/dns4/",
    "/dns6/",
    "/dnsaddr/",
    "/p2p/",
    "/p2p-circuit",
];

/// `/x/y...` with at least two parts, not one of the API's routes nor a multiaddress.
fn is_abs_path(token: &str) -> bool {
    let path = token.split(':').next().unwrap_or(token);
    path.starts_with('/')
        && !path.starts_with("/api/")
        && !MULTIADDR.iter().any(|m| path.starts_with(m))
        && path.trim_matches('/').contains('/')
        && path.chars().nth(1).is_some_and(|c| c != '/')
}

/// Scrubs the free-text fields (`reason`, `message`, `detail`, `note`) of an event or record
/// going out to a client: an error from the chain or the disk may be quoted there.
pub(crate) fn scrub_fields(v: &mut serde_json::Value) {
    if let Some(obj) = v.as_object_mut() {
        for (k, x) in obj.iter_mut() {
            match x {
                serde_json::Value::String(text)
                    if matches!(k.as_str(), "reason" | "message" | "detail" | "note") =>
                {
                    *text = scrub(text);
                }
                serde_json::Value::Object(_) => scrub_fields(x),
                _ => {}
            }
        }
    }
}

/// The request's body, at most `limit` bytes and within `within` of the first byte asked
/// for: 413 `too_large` over the bound (at once when `Content-Length` says so), 408
/// `body_timeout` when it comes too slowly (a connection holding an upload open is cut off),
/// 400 `bad_body` when it breaks off.
pub(crate) async fn read_body(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    within: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over this request's limit of {limit} bytes"),
        )
        .closing()
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the body could not be read: {e}"),
                )
                .closing()
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(within, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {} s; send it at once, or raise \
                 http.body_timeout_secs on the node",
                within.as_secs()
            ),
        )
        .closing()),
    }
}

/// The stable code of an error status that did not come with one (axum's rejections, the
/// router's 404 and 405).
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        411 => "length_required",
        413 => "too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

/// Gives every error answer the JSON form: a 4xx or 5xx that is not JSON (axum's own
/// rejections: an unknown route, a wrong method, a malformed query or path) becomes
/// `{"code", "message"}` with the status's stable code and the rejection's text.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4 * MAX_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let hint = match status {
        StatusCode::NOT_FOUND => "no such route; GET /api/v1/openapi.json lists them",
        StatusCode::METHOD_NOT_ALLOWED => {
            "this route does not take that method; GET /api/v1/openapi.json lists them"
        }
        _ => "GET /api/v1/openapi.json describes what each route takes",
    };
    let message = if text.is_empty() {
        hint.to_owned()
    } else {
        format!("{text}; {hint}")
    };
    let mut out = ApiError::new(status, code_of(status), message).into_response();
    // Keep what the status needs (`Allow` of a 405) and the connection's fate.
    for name in [header::ALLOW, header::CONNECTION, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_urls_and_paths_and_keeps_routes() {
        let m = "error sending request for url (http://127.0.0.1:8545/v3/SECRETKEY): refused";
        let s = scrub(m);
        assert!(!s.contains("SECRETKEY") && !s.contains("8545"), "{s}");
        assert!(s.contains("<url>") && s.contains("refused"), "{s}");

        let m = "blob I/O on /home/alice/.sietch/blobs/ab/cd.tmp: No space left on device";
        let s = scrub(m);
        assert_eq!(s, "blob I/O on <path>: No space left on device");

        let m = "upload it with POST /api/v1/blobs first";
        assert_eq!(scrub(m), m);
        let m = "input name \"../../etc/passwd\" has a path separator (`/` or `\\`)";
        assert_eq!(scrub(m), m);
        let m =
            "writes need `Authorization: Bearer <token>` with the token in <data dir>/api-token";
        assert_eq!(scrub(m), m);
        assert_eq!(scrub("at \"/etc/x/y\""), "at \"<path>\"");
        let m = "dial /ip4/127.0.0.1/tcp/7070/p2p/12D3Koo failed";
        assert_eq!(scrub(m), m);
        let mut v =
            json!({"kind": "job_failed", "reason": "rpc http://h/KEY: down", "job": "/a/b"});
        scrub_fields(&mut v);
        assert_eq!(v["reason"], "rpc <url>: down");
        assert_eq!(v["job"], "/a/b");
        assert!(scrub(&"x".repeat(5000)).len() < 700);
    }
}
