//! The node's HTTP API (read-only so far), bound to loopback by default.
//!
//! - `GET /api/v1/node`: peer id, listen addresses, connected peers, gossip counters.
//! - `GET /api/v1/offers`: the live offers of the order book.
//! - `GET /api/v1/jobs?side=provider|buyer`: the jobs this node stored, newest last.
//!
//! Errors are JSON: `{"code": "...", "message": "..."}` with a stable code.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::net::{Network, peer_id_of};
use crate::store::{Side, Store};

/// Most jobs one request returns.
const MAX_JOBS: usize = 1000;

#[derive(Clone)]
struct Api {
    net: Network,
    store: Arc<Store>,
}

struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
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
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "unavailable",
        message: format!("{e}; the node may be shutting down, try again"),
    }
}

/// Binds the API and serves it in the background; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    net: Network,
    store: Arc<Store>,
) -> Result<SocketAddr, std::io::Error> {
    let app = Router::new()
        .route("/api/v1/node", get(node))
        .route("/api/v1/offers", get(offers))
        .route("/api/v1/jobs", get(jobs))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: "no such route; see /api/v1/node, /api/v1/offers, /api/v1/jobs".into(),
            }
        })
        .with_state(Api { net, store });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    });
    Ok(bound)
}

async fn node(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let listen = api.net.listen_addrs().await.map_err(unavailable)?;
    let peers = api.net.peers().await.map_err(unavailable)?;
    let stats = api.net.stats().await.map_err(unavailable)?;
    let offers = api.net.book().lock().map_or(0, |b| b.len());
    Ok(Json(json!({
        "peer_id": api.net.peer_id().to_string(),
        "listen_addrs": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peers": peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "offers": offers,
        "gossip": {
            "accepted": stats.accepted,
            "rejected": stats.rejected,
            "ignored": stats.ignored,
            "banned": stats.banned,
        },
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
struct JobsQuery {
    side: Option<String>,
}

async fn jobs(State(api): State<Api>, Query(q): Query<JobsQuery>) -> Result<Json<Value>, ApiError> {
    let side = match q.side.as_deref() {
        None | Some("provider") => Side::Provider,
        Some("buyer") => Side::Buyer,
        Some(other) => {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "bad_side",
                message: format!("side {other:?} is not `provider` or `buyer`"),
            });
        }
    };
    let store = api.store.clone();
    let list = tokio::task::spawn_blocking(move || store.jobs(side, None, MAX_JOBS))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|j| {
                json!({
                    "job_id": j.job_id.to_string(),
                    "spec_hash": j.spec_hash.to_string(),
                    "counterparty": j.counterparty.to_string(),
                    "state": format!("{:?}", j.state).to_lowercase(),
                    "amount": j.result.as_ref().map(|r| r.message.amount.to_string()),
                    "fuel_used": j.result.as_ref().map(|r| r.message.fuel_used),
                    "note": j.note,
                    "created_at": j.created_at,
                    "updated_at": j.updated_at,
                })
            })
            .collect(),
    )))
}
