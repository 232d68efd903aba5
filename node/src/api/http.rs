//! The HTTP server's settings (`[http]` in `config.toml`), the `Host` allowlist that keeps a
//! DNS-rebinding web page out, and the security headers every answer carries.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
pub use crate::config::HttpConfig;

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
        assert!(matches!(
            c.check(),
            Err(crate::config::ConfigError::Invalid {
                key: "http.max_event_streams",
                ..
            })
        ));
        let c = HttpConfig {
            allowed_hosts: vec!["http://x".into()],
            ..HttpConfig::default()
        };
        assert!(matches!(
            c.check(),
            Err(crate::config::ConfigError::Invalid {
                key: "http.allowed_hosts",
                ..
            })
        ));
        assert!(HttpConfig::default().check().is_ok());
    }
}
