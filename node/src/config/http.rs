//! `[http]` in `config.toml`: the HTTP API server's limits and names. Kept with the node's
//! configuration (the API reads it; the configuration does not depend on the API).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    /// What is wrong with a value ([`ConfigError::Invalid`]: the setting and why).
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, why: String| Err(ConfigError::Invalid { key, why });
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
            return invalid(key, "must be at least 1".into());
        }
        if let Some((key, v)) = positive.iter().take(4).find(|(_, v)| *v > 24 * 3600) {
            return invalid(key, format!("{v} s is over a day"));
        }
        if self.max_connections > 65_536 {
            return invalid(
                "http.max_connections",
                format!("{} is over 65536", self.max_connections),
            );
        }
        for h in &self.allowed_hosts {
            let bad = h.is_empty()
                || h.len() > 255
                || h.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "/\\@?#".contains(c));
            if bad {
                return invalid(
                    "http.allowed_hosts",
                    format!("{h:?} is not a host name, `name:port` or \"*\""),
                );
            }
        }
        Ok(())
    }

    /// [`Self::header_timeout_secs`], at least a second.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    /// [`Self::body_timeout_secs`], at least a second.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    /// [`Self::idle_timeout_secs`], at least a second.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// [`Self::wait_secs`], at least a second.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs.max(1))
    }
}
