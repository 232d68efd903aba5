//! Several JSON-RPC endpoints of one chain behind one transport: every request (reads,
//! estimates, `eth_sendRawTransaction`) goes to the endpoint in use; when it fails (refused
//! connection, timeout, HTTP error, a body that is not JSON-RPC) it goes to the next, and
//! after a round where every endpoint failed, again after a backoff that doubles. An endpoint
//! that answered stays in use until it fails. Answers that are JSON-RPC errors (a revert,
//! "nonce too low") are the chain's answer, not the endpoint's failure: they are returned.
//!
//! Retrying `eth_sendRawTransaction` elsewhere is safe: the same signed bytes are the same
//! transaction (same hash, same nonce), at most one of which can be mined.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::transports::http::{Http, reqwest};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use tower_service::Service;

use super::ChainError;

/// The longest wait between two rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One endpoint: its HTTP transport and a label for logs (scheme, host and port: a path or
/// query can hold an API key, which logs must not show).
struct Endpoint {
    label: String,
    url: reqwest::Url,
    http: Http<reqwest::Client>,
}

impl Endpoint {
    /// `e` without this endpoint's URL in its text (an HTTP error names the URL it failed
    /// on, API key and all); unchanged where the URL is not in it.
    fn hide(&self, e: TransportError) -> TransportError {
        let text = e.to_string();
        let clean = redact(&text, &self.url);
        if clean == text {
            e
        } else {
            TransportErrorKind::custom_str(&clean)
        }
    }
}

struct Inner {
    endpoints: Vec<Endpoint>,
    /// The endpoint in use.
    active: AtomicUsize,
    retries: u32,
    backoff: Duration,
}

/// The failover transport (a `tower` service, as alloy's transports are). Cheap to clone.
#[derive(Clone)]
pub(super) struct Failover(Arc<Inner>);

/// How the endpoints are used.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// Each request's time limit on one endpoint.
    pub(super) timeout: Duration,
    /// Rounds after the first.
    pub(super) retries: u32,
    /// Wait after the first failed round.
    pub(super) backoff: Duration,
}

/// `text` with every spelling of `url` in it (with and without its user part and a final
/// slash) replaced by its [`label`]: what logs and errors may show of an endpoint.
pub(crate) fn redact(text: &str, url: &reqwest::Url) -> String {
    let shown = label(url);
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let mut out = text.to_owned();
    for form in [url.as_str(), bare.as_str()] {
        for f in [form, form.trim_end_matches('/')] {
            if !f.is_empty() {
                out = out.replace(f, &shown);
            }
        }
    }
    out
}

/// Scheme, host and port of `url`, for logs.
pub(crate) fn label(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

impl Failover {
    /// The transport over `urls`, in order of preference (at least one).
    pub(super) fn new(urls: &[String], policy: Policy) -> Result<Self, ChainError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .build()
            .map_err(|e| ChainError::Rpc(format!("building the HTTP client: {e}")))?;
        let mut endpoints = Vec::with_capacity(urls.len());
        for u in urls {
            let url: reqwest::Url = u.parse().map_err(|_| ChainError::BadUrl(u.clone()))?;
            endpoints.push(Endpoint {
                label: label(&url),
                url: url.clone(),
                http: Http::with_client(client.clone(), url),
            });
        }
        if endpoints.is_empty() {
            return Err(ChainError::BadUrl(String::new()));
        }
        Ok(Self(Arc::new(Inner {
            endpoints,
            active: AtomicUsize::new(0),
            retries: policy.retries,
            backoff: policy.backoff,
        })))
    }

    /// The label of the endpoint in use.
    pub(super) fn active(&self) -> String {
        let i = self.0.active.load(Ordering::Relaxed);
        self.0
            .endpoints
            .get(i)
            .map(|e| e.label.clone())
            .unwrap_or_default()
    }

    async fn request<R, S>(self, req: R) -> Result<S, TransportError>
    where
        R: Clone,
        Http<reqwest::Client>:
            Service<R, Response = S, Error = TransportError, Future = TransportFut<'static, S>>,
    {
        let inner = &self.0;
        let n = inner.endpoints.len();
        let mut last = None;
        let mut wait = inner.backoff;
        for round in 0..=inner.retries {
            if round > 0 {
                tracing::warn!(
                    round,
                    endpoints = n,
                    "every RPC endpoint failed; trying again in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            let start = inner.active.load(Ordering::Relaxed);
            for step in 0..n {
                let i = (start + step) % n;
                let Some(ep) = inner.endpoints.get(i) else {
                    continue;
                };
                let mut http = ep.http.clone();
                match http.call(req.clone()).await {
                    Ok(resp) => {
                        if i != start
                            && inner
                                .active
                                .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                        {
                            tracing::warn!(
                                endpoint = %ep.label,
                                "RPC now goes through endpoint {} of {n}",
                                i + 1
                            );
                        }
                        return Ok(resp);
                    }
                    Err(e) => {
                        let e = ep.hide(e);
                        tracing::warn!(
                            endpoint = %ep.label,
                                    "RPC endpoint {} of {n} failed: {e}",
                            i + 1
                        );
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| TransportErrorKind::custom_str("no RPC endpoint")))
    }
}

/// Generic over the request so as not to name alloy's JSON-RPC packet types (which this
/// crate's alloy features do not export): whatever the HTTP transport takes, this takes.
impl<R, S> Service<R> for Failover
where
    R: Clone + Send + 'static,
    S: Send + 'static,
    Http<reqwest::Client>:
        Service<R, Response = S, Error = TransportError, Future = TransportFut<'static, S>>,
{
    type Response = S;
    type Error = TransportError;
    type Future = TransportFut<'static, S>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        Box::pin(self.clone().request(req))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_hide_paths_and_keys() {
        let u: reqwest::Url = "https://eth.example.com/v3/SECRETKEY?x=1".parse().unwrap();
        assert_eq!(label(&u), "https://eth.example.com:443");
        let u: reqwest::Url = "http://127.0.0.1:8545".parse().unwrap();
        assert_eq!(label(&u), "http://127.0.0.1:8545");
    }

    #[test]
    fn errors_lose_the_endpoints_key() {
        let u: reqwest::Url = "https://user:pw@eth.example.com/v3/SECRETKEY"
            .parse()
            .unwrap();
        let said = "error sending request for url (https://eth.example.com/v3/SECRETKEY)";
        assert_eq!(
            redact(said, &u),
            "error sending request for url (https://eth.example.com:443)"
        );
        let said = "at https://user:pw@eth.example.com/v3/SECRETKEY/ and so on";
        assert!(!redact(said, &u).contains("SECRETKEY"));
        assert!(!redact(said, &u).contains("pw"));
    }
}
