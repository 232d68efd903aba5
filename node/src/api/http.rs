//! The HTTP server's settings (`[http]` in `config.toml`), the `Host` allowlist that keeps a
//! DNS-rebinding web page out, and the security headers every answer carries.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// The HTTP API server's limits and names: `[http]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Names the API answers to besides the loopback ones (`127.0.0.1`, `localhost`,
    /// `[::1]`) and the address it is bound to, as `name` (at the API's port) or
    /// `name:port`; `"*"` turns the check off (only behind a proxy that checks `Host`).
    /// A request whose `Host` is not one of them is refused (421 `host_not_allowed`): a web
    /// page that rebinds its own name to this machine cannot read the API.
    pub allowed_hosts: Vec<String>,
    /// Seconds a client has to send a request's headers, from their first byte.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body (an upload, a job).
    pub body_timeout_secs: u64,
    /// Seconds a connection may wait with no request (before its first one, or between
    /// two), or leave an answer unread, before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once. A new one over the cap closes the longest-idle one (no
    /// request in flight), or is refused (503 `connections_full`) when every one is busy.
    pub max_connections: u32,
    /// Connections open at once from one client address (429 `connections_per_client`
    /// over it, after closing that client's longest-idle one if it has one).
    pub max_connections_per_client: u32,
    /// Event streams (`GET /api/v1/events`) open at once (503 `event_streams_full`).
    pub max_event_streams: u32,
    /// Event streams open at once from one client address (429
    /// `event_streams_per_client`).
    pub max_event_streams_per_client: u32,
    /// Most seconds `POST /api/v1/jobs?wait=true` waits for a job before answering with
    /// its current state (202, `"finished": false`).
    pub wait_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            header_timeout_secs: 10,
            body_timeout_secs: 60,
            idle_timeout_secs: 30,
            max_connections: 128,
            max_connections_per_client: 64,
            max_event_streams: 32,
            max_event_streams_per_client: 8,
            wait_secs: 300,
        }
    }
}

impl HttpConfig {
    /// What is wrong with a value, as `(setting, why)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("http.header_timeout_secs", self.header_timeout_secs),
            ("http.body_timeout_secs", self.body_timeout_secs),
            ("http.idle_timeout_secs", self.idle_timeout_secs),
            ("http.wait_secs", self.wait_secs),
            ("http.max_connections", u64::from(self.max_connections)),
            (
                "http.max_connections_per_client",
                u64::from(self.max_connections_per_client),
            ),
            ("http.max_event_streams", u64::from(self.max_event_streams)),
            (
                "http.max_event_streams_per_client",
                u64::from(self.max_event_streams_per_client),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be at least 1".into()));
        }
        if let Some((key, v)) = positive.iter().take(4).find(|(_, v)| *v > 24 * 3600) {
            return Err((key, format!("{v} s is over a day")));
        }
        if self.max_connections > 65_536 {
            return Err((
                "http.max_connections",
                format!("{} is over 65536", self.max_connections),
            ));
        }
        for h in &self.allowed_hosts {
            let bad = h.is_empty()
                || h.len() > 255
                || h.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "/\\@?#".contains(c));
            if bad {
                return Err((
                    "http.allowed_hosts",
                    format!("{h:?} is not a host name, `name:port` or \"*\""),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    pub(crate) fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs.max(1))
    }
}

/// The `Host` names the API answers to, each as `name:port`, lowercase.
#[derive(Debug, Clone)]
pub(crate) struct Hosts {
    any: bool,
    names: BTreeSet<String>,
}

impl Hosts {
    /// The loopback names and the bound address at the bound port, and the configured
    /// names.
    pub(crate) fn new(config: &HttpConfig, bound: SocketAddr) -> Self {
        let port = bound.port();
        let mut names: BTreeSet<String> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|n| format!("{n}:{port}"))
            .collect();
        if !bound.ip().is_unspecified() {
            names.insert(bound.to_string().to_ascii_lowercase());
        }
        let mut any = false;
        for h in &config.allowed_hosts {
            if h == "*" {
                any = true;
            } else {
                names.insert(with_port(&h.to_ascii_lowercase(), port));
            }
        }
        Self { any, names }
    }

    fn allows(&self, host: &str) -> bool {
        self.any
            || self
                .names
                .contains(&with_port(&host.to_ascii_lowercase(), 80))
    }

    fn list(&self) -> String {
        self.names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// `host` with `:port` when it names none (`[v6]` and `[v6]:port` included).
fn with_port(host: &str, port: u16) -> String {
    let has_port = match host.rfind(':') {
        None => false,
        Some(i) => {
            let tail = host.get(i + 1..).unwrap_or("");
            let head = host.get(..i).unwrap_or("");
            !tail.is_empty()
                && tail.chars().all(|c| c.is_ascii_digit())
                && (!head.contains(':') || head.ends_with(']'))
        }
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// Refuses a request whose `Host` (or absolute-form authority) is not one of the API's
/// names: 421 `host_not_allowed`.
pub(crate) async fn check_host(
    State(hosts): State<Arc<Hosts>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    let named: Vec<&String> = host.iter().chain(authority.iter()).collect();
    if !named.is_empty() && named.iter().all(|h| hosts.allows(h)) {
        return next.run(req).await;
    }
    let shown: String = named
        .first()
        .map_or("(none)".to_owned(), |h| h.chars().take(100).collect());
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        format!(
            "this node's API answers only to {}, not to Host {shown:?}; if you reach it by that \
             name, add it to http.allowed_hosts in the node's config",
            hosts.list()
        ),
    )
    .into_response()
}

/// The explorer's Content-Security-Policy: its own scripts, styles and API, nothing inline,
/// nothing from elsewhere, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the security headers to every answer (where a handler set none of its own).
pub(crate) async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_the_loopback_names_at_the_port_and_the_configured_ones() {
        let bound: SocketAddr = "127.0.0.1:7077".parse().unwrap_or_else(|_| unreachable!());
        let h = Hosts::new(&HttpConfig::default(), bound);
        for ok in [
            "127.0.0.1:7077",
            "localhost:7077",
            "LOCALHOST:7077",
            "[::1]:7077",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for no in [
            "evil.example:7077",
            "localhost:7078",
            "localhost",
            "127.0.0.1",
            "127.0.0.1.evil.example:7077",
            "",
        ] {
            assert!(!h.allows(no), "{no}");
        }
        let c = HttpConfig {
            allowed_hosts: vec!["node.lan".into(), "proxy.example:443".into()],
            ..HttpConfig::default()
        };
        let h = Hosts::new(
            &c,
            "0.0.0.0:7077".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(h.allows("node.lan:7077") && h.allows("proxy.example:443"));
        assert!(!h.allows("node.lan:80") && !h.allows("0.0.0.0:7077"));
        let h = Hosts::new(
            &HttpConfig::default(),
            "192.168.1.5:80".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(h.allows("192.168.1.5") && h.allows("localhost"));
        let c = HttpConfig {
            allowed_hosts: vec!["*".into()],
            ..HttpConfig::default()
        };
        assert!(Hosts::new(&c, bound).allows("anything.example"));
    }

    #[test]
    fn bad_settings_are_named() {
        let c = HttpConfig {
            max_event_streams: 0,
            ..HttpConfig::default()
        };
        assert_eq!(c.check().map_err(|e| e.0), Err("http.max_event_streams"));
        let c = HttpConfig {
            allowed_hosts: vec!["http://x".into()],
            ..HttpConfig::default()
        };
        assert_eq!(c.check().map_err(|e| e.0), Err("http.allowed_hosts"));
        assert!(HttpConfig::default().check().is_ok());
    }
}
