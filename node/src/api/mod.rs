//! The node's HTTP API, bound to loopback by default. Reads are open; writes need the node's
//! token (`Authorization: Bearer <token>`, the token in `<data dir>/api-token`). Requests
//! are size-limited. Errors are JSON `{"code": "...", "message": "..."}` with a stable code
//! and a message that says what to do.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/node` | identity, addresses, peers, gossip counters, chain |
//! | `GET /api/v1/offers` | the live offers of the order book |
//! | `GET /api/v1/jobs?side=buyer\|provider` | jobs this node stored |
//! | `GET /api/v1/jobs/{id}?side=buyer\|provider` | one job, with its outputs when kept |
//! | `GET /api/v1/channels` | the buyer's payment channels |
//! | `GET /api/v1/providers` | providers: offer, stake, reputation counters and score |
//! | `GET /api/v1/settlements?kind=&limit=` | recent escrow events (claims, tickets, disputes, slashes) |
//! | `GET /api/v1/disputes` | disputed and withheld tickets, their votes, outcome and evidence |
//! | `GET /api/v1/stats` | jobs, checks, charges and fuel in 10-second buckets (the last hour) |
//! | `GET /api/v1/events` | server-sent events: everything the node does, live |
//! | `GET /api/v1/openapi.json` | this API, described |
//! | `GET /` | the explorer (built web assets), or how to build it |
//! | `POST /api/v1/blobs` | upload a module or input (the body); answers its blake3 hash |
//! | `POST /api/v1/jobs[?wait=true]` | submit a job ([`dto::JobSubmission`]) |
//! | `POST /api/v1/channels` | fund a channel to a provider (`{"provider", "amount"}`) |

pub mod dto;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sietch_market::B256;

use crate::buyer::Buyer;
use crate::chain::Chain;
use crate::events::Events;
use crate::net::wire::WireMessage;
use crate::net::{JobResult, Network, peer_id_of};
use crate::store::{JobRecord, Side, Store};

/// Most jobs one request returns.
const MAX_JOBS: usize = 1000;
/// Most jobs read to sort a listing.
const SCAN_JOBS: usize = 10_000;
/// Largest JSON body.
const MAX_JSON: usize = 1 << 20;
/// Largest uploaded blob.
pub const MAX_UPLOAD: usize = 64 << 20;

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
    /// The explorer's built assets, if found.
    pub explorer: Option<std::path::PathBuf>,
}

/// An error answer.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{e}; the node may be shutting down, try again"),
    )
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
    ("get", "/api/v1/settlements"),
    ("get", "/api/v1/disputes"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/blobs"),
];

/// The routes.
pub fn router(api: Api) -> Router {
    let writes = Router::new()
        .route(
            "/api/v1/blobs",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(
            "/api/v1/jobs",
            post(submit).layer(DefaultBodyLimit::max(MAX_JSON)),
        )
        .route(
            "/api/v1/channels",
            post(fund).layer(DefaultBodyLimit::max(MAX_JSON)),
        )
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .route("/api/v1/node", get(node))
        .route("/api/v1/offers", get(offers))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/channels", get(channels))
        .route("/api/v1/events", get(events))
        .route("/api/v1/providers", get(providers))
        .route("/api/v1/settlements", get(settlements))
        .route("/api/v1/disputes", get(disputes))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(writes)
        .route("/api/{*rest}", get(no_route).post(no_route))
        .fallback(get(explorer))
        .with_state(api)
}

/// Binds the API and serves it in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, api: Api) -> Result<SocketAddr, std::io::Error> {
    let app = router(api);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    });
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

/// Serves the explorer's built files: `/` is `index.html`; a path with no file is the
/// app's own route (also `index.html`).
async fn explorer(State(api): State<Api>, uri: axum::http::Uri) -> Response {
    let Some(dir) = &api.explorer else {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NO_EXPLORER,
        )
            .into_response();
    };
    let path = uri.path().trim_start_matches('/');
    // Only plain relative names: nothing above the directory.
    let safe = !path
        .split('/')
        .any(|c| c == ".." || c.starts_with('.') || c.contains('\\'));
    let file = if path.is_empty() || !safe {
        dir.join("index.html")
    } else {
        let f = dir.join(path);
        if f.is_file() {
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
        Err(e) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{}: {e}", file.display()),
        )
        .into_response(),
    }
}

/// What `/` says when the explorer was not built.
const NO_EXPLORER: &str = "<!doctype html><html lang=en><meta charset=utf-8><title>Sietch node</title>\
<body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\"><h1>Sietch node</h1>\
<p>This node serves its HTTP API under <a href=/api/v1/node>/api/v1/</a> \
(<a href=/api/v1/openapi.json>described here</a>), but the explorer's web assets were not found.</p>\
<p>Build them with <code>bash scripts/setup.sh</code> (which runs <code>npm ci</code> and \
<code>npm run build</code> in <code>explorer/</code>), then restart the node, or point \
<code>explorer_dir</code> in its config at a built <code>dist/</code> directory.</p></body></html>";

async fn node(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let listen = api.net.listen_addrs().await.map_err(unavailable)?;
    let peers = api.net.peers().await.map_err(unavailable)?;
    let stats = api.net.stats().await.map_err(unavailable)?;
    let offers = api.net.book().lock().map_or(0, |b| b.len());
    Ok(Json(json!({
        "peer_id": api.net.peer_id().to_string(),
        "evm_address": api.buyer.address().to_string(),
        "listen_addrs": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peers": peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "offers": offers,
        "channels_opening": api.buyer.channels_opening(),
        "gossip": {
            "accepted": stats.accepted,
            "rejected": stats.rejected,
            "ignored": stats.ignored,
            "banned": stats.banned,
        },
        "connections": {
            "open": stats.connected,
            "opened": stats.connections_opened,
            "failed": stats.connections_failed,
            "dials_refused": stats.dials_refused,
            "discovery_requests_served": stats.discovery_requests_served,
        },
        "chain": api.chain.as_ref().map(|c| json!({
            "chain_id": c.chain_id(),
            "escrow": c.escrow().to_string(),
            "token": c.token().to_string(),
        })),
    })))
}

async fn offers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let book = api.net.book();
    let book = book
        .lock()
        .map_err(|_| unavailable("order book unavailable"))?;
    let list: Vec<Value> = book
        .iter()
        .map(|s| {
            let o = &s.payload;
            json!({
                "provider": hex::encode(o.provider.0),
                "peer_id": peer_id_of(&o.provider).map(|p| p.to_string()),
                "evm_address": o.evm_address.to_string(),
                "cpu_cores": o.hardware.cpu_cores,
                "memory_bytes": o.hardware.memory_bytes,
                "gpus": o.hardware.gpus.iter().map(|g| json!({
                    "model": g.model,
                    "memory_bytes": g.memory_bytes,
                    "compute_capability": format!("{}.{}", g.compute_capability.major, g.compute_capability.minor),
                })).collect::<Vec<_>>(),
                "price_per_gfuel": o.prices.per_gfuel.to_string(),
                "price_per_gpu_second": o.prices.per_gpu_second.to_string(),
                "stake": o.stake.to_string(),
                "addresses": o.addresses,
                "sequence": o.sequence,
                "expires_at": o.expires_at,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
struct SideQuery {
    side: Option<String>,
    limit: Option<usize>,
    state: Option<String>,
}

fn side_of(q: &SideQuery) -> Result<Side, ApiError> {
    match q.side.as_deref() {
        None | Some("buyer") => Ok(Side::Buyer),
        Some("provider") => Ok(Side::Provider),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_side",
            format!("side {other:?} is not `provider` or `buyer`"),
        )),
    }
}

/// A job as the API gives it. `me` is this node's EVM address: on the provider side it is the
/// job's provider and the counterparty is the buyer.
fn job_json(
    j: &JobRecord,
    side: Side,
    me: sietch_market::Address,
    note: Option<crate::activity::JobNote>,
) -> Value {
    let note = note.unwrap_or_default();
    let known =
        |a: sietch_market::Address| (a != sietch_market::Address::ZERO).then(|| a.to_string());
    let (provider, buyer) = match side {
        Side::Buyer => (known(j.counterparty), Some(me.to_string())),
        Side::Provider => (Some(me.to_string()), known(j.counterparty)),
    };
    json!({
        "provider": provider,
        "buyer": buyer,
        "outcome": note.outcome,
        "check": {
            "sampled": note.sampled,
            "reruns": note.reruns,
            "passed": note.passed,
            "decision": note.decision,
        },
        "job_id": j.job_id.to_string(),
        "spec_hash": j.spec_hash.to_string(),
        "counterparty": j.counterparty.to_string(),
        "state": j.state.to_string(),
        "channel": j.ticket.as_ref().map(|t| t.message.channel_id.to_string()),
        "amount": j.result.as_ref().map(|r| r.message.amount.to_string()),
        "fuel_used": j.result.as_ref().map(|r| r.message.fuel_used),
        "output_hash": j.result.as_ref().map(|r| r.message.output_hash.to_string()),
        "note": j.note,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
    })
}

async fn jobs(State(api): State<Api>, Query(q): Query<SideQuery>) -> Result<Response, ApiError> {
    let side = side_of(&q)?;
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_JOBS);
    let state = match q.state.as_deref() {
        None => None,
        Some(name) => Some(
            crate::store::JobState::ALL
                .into_iter()
                .find(|s| s.to_string() == name)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_state",
                        format!(
                            "state {name:?} is not one of {}",
                            crate::store::JobState::ALL
                                .map(|s| s.to_string())
                                .join(", ")
                        ),
                    )
                })?,
        ),
    };
    let store = api.store.clone();
    // Newest first. The store keys jobs by id, so this sorts at most SCAN_JOBS of them: past
    // that, a listing is of a sample (a time index in the store would lift the bound).
    let (list, total) = tokio::task::spawn_blocking(move || {
        let total = store.job_count(side)?;
        let mut all = store.jobs(side, None, SCAN_JOBS)?;
        if let Some(state) = state {
            all.retain(|j| j.state == state);
        }
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.job_id.cmp(&a.job_id))
        });
        all.truncate(limit);
        Ok::<_, crate::store::StoreError>((all, total))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    let jobs: Vec<Value> = list
        .iter()
        .map(|j| {
            job_json(
                j,
                side,
                api.buyer.address(),
                api.activity.job_note(&j.job_id.to_string()),
            )
        })
        .collect();
    Ok((
        [(
            header::HeaderName::from_static("x-total-count"),
            header::HeaderValue::from(total),
        )],
        Json(Value::Array(jobs)),
    )
        .into_response())
}

fn parse_id(s: &str) -> Result<B256, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{s:?} is not a 0x-prefixed 32-byte hex id"),
        )
    })
}

async fn job(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<SideQuery>,
) -> Result<Json<Value>, ApiError> {
    let side = side_of(&q)?;
    let id = parse_id(&id)?;
    let store = api.store.clone();
    let (record, outputs) = tokio::task::spawn_blocking(move || {
        let r = store.job(side, &id)?;
        let o = store.job_outputs(&id)?;
        Ok::<_, crate::store::StoreError>((r, o))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    let Some(record) = record else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_job",
            format!("this node has no {side} job {id}"),
        ));
    };
    let mut v = job_json(
        &record,
        side,
        api.buyer.address(),
        api.activity.job_note(&record.job_id.to_string()),
    );
    if let Some(bytes) = outputs
        && let Ok(r) = JobResult::from_bytes(&bytes)
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert(
            "outputs".into(),
            serde_json::to_value(dto::OutputsJson::of(&r)).unwrap_or(Value::Null),
        );
    }
    Ok(Json(v))
}

async fn providers(State(api): State<Api>) -> Json<Value> {
    let offers: Vec<sietch_market::Offer> = api
        .net
        .book()
        .lock()
        .map(|b| b.iter().map(|s| s.payload.clone()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for o in offers {
        let (rep, score) = api.buyer.reputation_of(&o.provider);
        let chain = api
            .chain
            .as_ref()
            .and_then(|c| c.known_account(&o.evm_address));
        out.push(json!({
            "offer": true,
            "evm_address": o.evm_address.to_string(),
            "peer_id": peer_id_of(&o.provider).map(|p| p.to_string()),
            "provider": hex::encode(o.provider.0),
            "offered_stake": o.stake.to_string(),
            "stake": chain.map(|a| a.stake.to_string()),
            "registered": chain.map(|a| a.node_key == o.provider.0),
            "price_per_gfuel": o.prices.per_gfuel.to_string(),
            "cpu_cores": o.hardware.cpu_cores,
            "memory_bytes": o.hardware.memory_bytes,
            "gpus": o.hardware.gpus.iter().map(|g| g.model.clone()).collect::<Vec<_>>(),
            "reputation": {
                "score": score,
                "settled_jobs": rep.settled_jobs,
                "checks_passed": rep.checks_passed,
                "checks_failed": rep.checks_failed,
                "slashes": rep.slashes,
                "disputes": rep.disputes,
            },
        }));
    }
    // Registered accounts with no live offer (gone quiet, or slashed out of the market).
    if let Some(c) = &api.chain {
        for (addr, a) in c.accounts() {
            if a.node_key == [0; 32] || out.iter().any(|p| p["evm_address"] == addr.to_string()) {
                continue;
            }
            let key = sietch_market::PublicKey(a.node_key);
            let (rep, score) = api.buyer.reputation_of(&key);
            out.push(json!({
                "offer": false,
                "evm_address": addr.to_string(),
                "peer_id": peer_id_of(&key).map(|p| p.to_string()),
                "provider": hex::encode(a.node_key),
                "offered_stake": null,
                "stake": a.stake.to_string(),
                "registered": true,
                "price_per_gfuel": null,
                "cpu_cores": null,
                "memory_bytes": null,
                "gpus": [],
                "reputation": {
                    "score": score,
                    "settled_jobs": rep.settled_jobs,
                    "checks_passed": rep.checks_passed,
                    "checks_failed": rep.checks_failed,
                    "slashes": rep.slashes,
                    "disputes": rep.disputes,
                },
            }));
        }
    }
    Json(Value::Array(out))
}

#[derive(Deserialize)]
struct SettlementQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

async fn settlements(State(api): State<Api>, Query(q): Query<SettlementQuery>) -> Json<Value> {
    let limit = q.limit.unwrap_or(200).min(MAX_JOBS);
    Json(serde_json::to_value(api.activity.chain(q.kind.as_deref(), limit)).unwrap_or_default())
}

async fn disputes(State(api): State<Api>) -> Json<Value> {
    // Every ticket the chain saw claimed, with what happened to it, plus the evidence of the
    // ones this node withheld.
    let mut by_ticket: std::collections::BTreeMap<String, Value> = Default::default();
    for r in api.activity.chain(None, usize::MAX) {
        let Some(t) = r.fields.get("ticket").and_then(Value::as_str) else {
            continue;
        };
        let e = by_ticket
            .entry(t.to_owned())
            .or_insert_with(|| json!({"ticket": t, "events": [], "state": "claimed"}));
        let state = match r.kind {
            "TicketDisputed" | "Redrawn" => Some("disputed"),
            "VerifiersDrawn" => Some("drawn"),
            "TicketSettled" => Some("settled"),
            _ => None,
        };
        if let Some(obj) = e.as_object_mut() {
            if let Some(st) = state {
                obj.insert("state".into(), json!(st));
            }
            if r.kind == "TicketSettled" {
                obj.insert(
                    "outcome".into(),
                    r.fields.get("outcome").cloned().unwrap_or_default(),
                );
            }
            if r.kind == "TicketClaimed" {
                obj.insert(
                    "job".into(),
                    r.fields.get("job").cloned().unwrap_or_default(),
                );
            }
            if let Some(Value::Array(list)) = obj.get_mut("events") {
                list.push(json!({"block": r.block, "kind": r.kind, "fields": r.fields}));
            }
        }
    }
    for (ticket, job, check) in api.buyer.withheld() {
        let e = by_ticket.entry(ticket.to_string()).or_insert_with(
            || json!({"ticket": ticket.to_string(), "events": [], "state": "withheld"}),
        );
        if let Some(obj) = e.as_object_mut() {
            obj.insert("job".into(), json!(job.to_string()));
            obj.insert("withheld_by_this_node".into(), json!(true));
            if let Some(c) = check {
                obj.insert("decision".into(), json!(format!("{:?}", c.decision)));
                obj.insert(
                    "evidence".into(),
                    json!({
                        "summary": c.evidence.as_ref().map(ToString::to_string),
                        "original": {
                            "provider": c.owner.to_string(),
                        },
                        "runs": c.runs.iter().map(|r| json!({
                            "provider": r.owner.to_string(),
                            "output_hash": r.commitment.output_hash.to_string(),
                            "fuel_used": r.commitment.fuel_used,
                            "agrees": r.agreement.agrees(),
                            "signature": format!("0x{}", hex::encode(r.signature)),
                        })).collect::<Vec<_>>(),
                    }),
                );
            }
        }
    }
    Json(Value::Array(by_ticket.into_values().collect()))
}

async fn stats(State(api): State<Api>) -> Json<Value> {
    Json(json!({
        "bucket_secs": crate::activity::BUCKET_SECS,
        "buckets": api.activity.buckets(),
    }))
}

async fn channels(State(api): State<Api>) -> Json<Value> {
    Json(Value::Array(
        api.buyer
            .channels()
            .iter()
            .map(|(id, provider, cumulative, deposit)| {
                json!({
                    "channel": id.to_string(),
                    "provider": provider.to_string(),
                    "cumulative": cumulative.to_string(),
                    "deposit": deposit.to_string(),
                })
            })
            .collect(),
    ))
}

async fn events(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = api.events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let data = match rx.recv().await {
            Ok(e) => serde_json::to_string(&e).unwrap_or_default(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                json!({"kind": "lagged", "missed": n}).to_string()
            }
            Err(_) => return None,
        };
        Some((Ok(Event::default().event("node").data(data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn upload(State(api): State<Api>, body: Bytes) -> Result<Json<Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_blob",
            "the body is empty: send the blob's bytes as the request body",
        ));
    }
    let store = api.store.clone();
    let size = body.len();
    let hash = tokio::task::spawn_blocking(move || store.blobs().put(&body))
        .await
        .map_err(unavailable)?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "blob_store",
                e.to_string(),
            )
        })?;
    Ok(Json(json!({"hash": hash.to_string(), "size": size})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    provider: String,
    amount: String,
}

async fn fund(State(api): State<Api>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_funding", m);
    let r: FundRequest = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "expected {{\"provider\": \"0x...\", \"amount\": \"...\"}}: {e}"
        ))
    })?;
    let provider: sietch_market::Address = r
        .provider
        .parse()
        .map_err(|_| bad(format!("{:?} is not an EVM address", r.provider)))?;
    let amount: sietch_market::U256 = r.amount.parse().map_err(|_| {
        bad(format!(
            "{:?} is not a whole number of token base units",
            r.amount
        ))
    })?;
    if amount.is_zero() {
        return Err(bad("the amount is zero".into()));
    }
    let channel = api
        .buyer
        .fund(provider, amount)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "funding_failed", e.to_string()))?;
    Ok(Json(
        json!({"channel": channel.to_string(), "provider": provider.to_string()}),
    ))
}

#[derive(Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: bool,
}

async fn submit(
    State(api): State<Api>,
    Query(q): Query<WaitQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sub: dto::JobSubmission = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_job",
            format!("the job is not valid JSON of the submission form: {e}"),
        )
    })?;
    let blobs = api.store.blobs();
    let spec = sub
        .to_spec((crate::net::system_clock())(), |h| {
            std::fs::metadata(blobs.path(h)).ok().map(|m| m.len())
        })
        .map_err(|e| match e {
            dto::SpecError::MissingBlob(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "missing_blob", e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_job", e.to_string()),
        })?;
    let id = api
        .buyer
        .prepare(&spec)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "cannot_submit", e.to_string()))?;
    let buyer = api.buyer.clone();
    let run = tokio::spawn(async move { buyer.run_prepared(&spec, id).await });
    if !q.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"job_id": id.to_string()})),
        )
            .into_response());
    }
    match run.await {
        Ok(Ok(done)) => Ok(Json(json!({
            "job_id": id.to_string(),
            "provider": done.provider.to_string(),
            "paid": done.paid.to_string(),
            "check": done.check.map(|d| format!("{d:?}")),
            "millis": done.elapsed.as_millis() as u64,
            "outputs": dto::OutputsJson::of(&done.result),
        }))
        .into_response()),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "job_failed",
            format!("job {id}: {e}"),
        )),
        Err(e) => Err(unavailable(e)),
    }
}
