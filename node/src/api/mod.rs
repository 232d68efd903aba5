//! The node's HTTP API, bound to loopback by default. Reads are open; writes need the node's
//! token (`Authorization: Bearer <token>`, the token in `<data dir>/api-token`). Requests
//! are size- and time-limited, connections and event streams capped (`[http]` in the
//! config, [`HttpConfig`]), and answered only under the names the API is bound to (the
//! `Host` check keeps a DNS-rebinding web page out). Errors are JSON
//! `{"code": "...", "message": "..."}` with a stable code and a message that says what to do,
//! naming no URL and no file-system path.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/node` | identity, addresses, peers, gossip counters, chain |
//! | `GET /api/v1/offers` | the live offers of the order book |
//! | `GET /api/v1/jobs?side=buyer\|provider` | jobs this node stored |
//! | `GET /api/v1/jobs/{id}?side=buyer\|provider` | one job, with its outputs when kept |
//! | `GET /api/v1/channels` | the buyer's payment channels |
//! | `GET /api/v1/providers` | providers: offer, stake, reputation counters and score |
//! | `GET /api/v1/provider` | this node as a provider: earnings, jobs, stake, channels, pre-flight |
//! | `GET /api/v1/settlements?kind=&limit=` | recent escrow events (claims, tickets, disputes, slashes) |
//! | `GET /api/v1/disputes` | disputed and withheld tickets, their votes, outcome and evidence |
//! | `GET /api/v1/stats` | jobs, checks, charges and fuel in 10-second buckets (the last hour) |
//! | `GET /api/v1/market` | the whole market since start: prices by GPU model, escrow totals over time and by provider |
//! | `GET /api/v1/events` | server-sent events: everything the node does, live |
//! | `GET /api/v1/openapi.json` | this API, described |
//! | `GET /` | the explorer (built web assets, from the configured directory only) |
//! | `POST /api/v1/blobs` | upload a module or input (the body); answers its blake3 hash |
//! | `POST /api/v1/jobs[?wait=true[&wait_secs=N]]` | submit a job ([`dto::JobSubmission`]) |
//! | `POST /api/v1/channels` | fund a channel to a provider (`{"provider", "amount"}`) |
//!
//! Modules: `server` (accept loop, connection caps) and `conn` (a connection's timeouts),
//! `http` (settings, `Host` allowlist, security headers), `error` (the error form, bodies
//! under bounds), `reads`, `writes`, `market` (the market's figures and the order book's
//! price samples), `explorer`, `dto` (the JSON forms).

mod blobs;
mod conn;
pub mod dto;
mod error;
mod events;
mod explorer;
mod http;
mod market;
mod provider;
mod reads;
mod server;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};

pub use error::{ApiError, scrub};
pub use http::{CSP, HttpConfig};
pub use provider::ProviderInfo;
pub use writes::MAX_UPLOAD;

use crate::buyer::Buyer;
use crate::chain::Chain;
use crate::events::Events;
use crate::net::Network;
use crate::store::Store;

/// What the API serves from.
#[derive(Clone)]
pub struct Api {
    /// The network.
    pub net: Network,
    /// The store.
    pub store: Arc<Store>,
    /// The buyer role.
    pub buyer: Arc<Buyer>,
    /// The event stream.
    pub events: Events,
    /// The chain, if any.
    pub chain: Option<Chain>,
    /// The write token.
    pub token: Arc<String>,
    /// What the node has seen.
    pub activity: crate::activity::Activity,
    /// The explorer's built assets: the configured directory, if it holds an `index.html`.
    pub explorer: Option<std::path::PathBuf>,
    /// The server's limits and names.
    pub http: HttpConfig,
    /// This node as a provider (`GET /api/v1/provider`).
    pub provider: ProviderInfo,
}

/// Every route, as `(method, path)`: what `openapi.json` describes (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/node"),
    ("get", "/api/v1/offers"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/channels"),
    ("post", "/api/v1/channels"),
    ("get", "/api/v1/providers"),
    ("get", "/api/v1/provider"),
    ("get", "/api/v1/settlements"),
    ("get", "/api/v1/disputes"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/market"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/blobs"),
    ("get", "/api/v1/blobs"),
    ("get", "/api/v1/blobs/{hash}"),
];

/// The routes, under the `Host` check (the names of `bound`), the JSON error form and the
/// security headers.
pub fn router(api: Api, bound: SocketAddr) -> Router {
    let hosts = Arc::new(http::Hosts::new(&api.http, bound));
    let streams = events::Streams::new(
        api.http.max_event_streams as usize,
        api.http.max_event_streams_per_client as usize,
    );
    let writes = Router::new()
        .route("/api/v1/blobs", post(writes::upload))
        .route("/api/v1/jobs", post(writes::submit))
        .route("/api/v1/channels", post(writes::fund))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .route("/api/v1/node", get(reads::node))
        .route("/api/v1/offers", get(reads::offers))
        .route("/api/v1/jobs", get(reads::jobs))
        .route("/api/v1/jobs/{id}", get(reads::job))
        .route("/api/v1/blobs", get(blobs::list))
        .route("/api/v1/blobs/{hash}", get(blobs::one))
        .route("/api/v1/channels", get(reads::channels))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/providers", get(reads::providers))
        .route("/api/v1/provider", get(provider::provider))
        .route("/api/v1/settlements", get(reads::settlements))
        .route("/api/v1/disputes", get(reads::disputes))
        .route("/api/v1/stats", get(reads::stats))
        .route("/api/v1/market", get(market::market))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(writes)
        .route("/api/{*rest}", any(no_route))
        .fallback(get(explorer::explorer))
        .layer(Extension(streams))
        .layer(middleware::from_fn_with_state(hosts, http::check_host))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::map_response(http::security_headers))
        .with_state(api)
}

/// Binds the API and serves it in the background; returns the bound address. Bound beyond
/// loopback, it warns: reads need no token, so anyone who can reach the address reads job
/// outputs, channels and the event stream.
pub async fn serve(addr: SocketAddr, api: Api) -> Result<SocketAddr, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "the HTTP API listens on {bound}, beyond loopback: reads need no token, so anyone \
             who can reach this address can read job outputs, channels and the live event \
             stream (writes still need the token, sent in clear over plain HTTP). Bind it to \
             127.0.0.1 unless it sits behind a firewall or a TLS proxy, and list the names it \
             is reached by in http.allowed_hosts"
        );
    }
    let config = api.http.clone();
    tokio::spawn(market::sample_book(api.net.book(), api.activity.clone()));
    let app = router(api, bound);
    tokio::spawn(server::run(listener, app, config));
    Ok(bound)
}

/// The token file in a data directory.
pub const TOKEN_FILE: &str = "api-token";

/// The node's API token: read from `<data_dir>/api-token`, made (owner-only) if missing.
pub fn load_or_create_token(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let token = hex::encode(b);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, token.as_bytes())?;
    Ok(token)
}

async fn authorize(
    State(api): State<Api>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), api.token.as_bytes()) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the token is not this node's: use the one in <data dir>/api-token",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_required",
            "writes need `Authorization: Bearer <token>` with the token in <data dir>/api-token",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; GET /api/v1/openapi.json lists them",
    )
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
