//! The API's reads: the node, its book, jobs, channels, providers, the escrow's events,
//! disputes and activity over time (the live event stream is `events`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sietch_market::B256;

use super::error::{ApiError, unavailable};
use super::{Api, dto};
use crate::net::wire::WireMessage;
use crate::net::{JobResult, peer_id_of};
use crate::store::{JobRecord, Side};

/// Most jobs one request returns.
const MAX_JOBS: usize = 1000;
/// Most jobs read to sort a listing.
const SCAN_JOBS: usize = 10_000;

pub(crate) async fn node(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
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
            "peers_refused": stats.peers_refused,
            "discovery_requests_served": stats.discovery_requests_served,
        },
        "chain": api.chain.as_ref().map(|c| json!({
            "chain_id": c.chain_id(),
            "escrow": c.escrow().to_string(),
            "token": c.token().to_string(),
        })),
        // Amount fields stay base units; this says how a person reads them.
        "token": api.chain.as_ref().map(|c| {
            let t = c.token_info();
            json!({
                "address": t.address.to_string(),
                "symbol": t.symbol,
                "decimals": t.decimals,
            })
        }),
    })))
}

pub(crate) async fn offers(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
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
                // The protocol version the provider says it speaks (its offer's extension
                // record 1, from 1.1 on; null for a 1.0 provider).
                "version": s.protocol_version().map(|v| v.to_string()),
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
pub(crate) struct SideQuery {
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
pub(crate) fn job_json(
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
        "note": super::scrub(&j.note),
        "created_at": j.created_at,
        "updated_at": j.updated_at,
    })
}

pub(crate) async fn jobs(
    State(api): State<Api>,
    Query(q): Query<SideQuery>,
) -> Result<Response, ApiError> {
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
    let (list, generation, total) = tokio::task::spawn_blocking(move || {
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
        // Whether each is a generation job, from its spec (small, shared by spec hash): the
        // listing never reads outputs; `GET /api/v1/jobs/{id}` gives the summary.
        let mut by_spec: HashMap<B256, bool> = HashMap::new();
        let mut generation = Vec::with_capacity(all.len());
        for j in &all {
            let g = match by_spec.get(&j.spec_hash) {
                Some(g) => *g,
                None => {
                    let g = store
                        .job_spec(&j.spec_hash)?
                        .is_some_and(|s| dto::is_generation_spec(&s));
                    by_spec.insert(j.spec_hash, g);
                    g
                }
            };
            generation.push(g);
        }
        Ok::<_, crate::store::StoreError>((all, generation, total))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    let jobs: Vec<Value> = list
        .iter()
        .zip(generation)
        .map(|(j, g)| {
            let mut v = job_json(
                j,
                side,
                api.buyer.address(),
                api.activity.job_note(&j.job_id.to_string()),
            );
            if let Some(obj) = v.as_object_mut() {
                obj.insert("generation".into(), Value::Bool(g));
            }
            v
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

pub(super) fn parse_id(s: &str) -> Result<B256, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{s:?} is not a 0x-prefixed 32-byte hex id"),
        )
    })
}

pub(crate) async fn job(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<SideQuery>,
) -> Result<Json<Value>, ApiError> {
    let side = side_of(&q)?;
    let id = parse_id(&id)?;
    let store = api.store.clone();
    let (record, outputs, generation_spec) = tokio::task::spawn_blocking(move || {
        let r = store.job(side, &id)?;
        let o = store.job_outputs(&id)?;
        let g = match &r {
            Some(r) => store
                .job_spec(&r.spec_hash)?
                .is_some_and(|s| dto::is_generation_spec(&s)),
            None => false,
        };
        Ok::<_, crate::store::StoreError>((r, o, g))
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
    let mut generation = Value::Bool(generation_spec);
    if let Some(bytes) = outputs
        && let Ok(r) = JobResult::from_bytes(&bytes)
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert(
            "outputs".into(),
            serde_json::to_value(dto::OutputsJson::of(&r)).unwrap_or(Value::Null),
        );
        // Timed from submission to the node's last change of the record (whole seconds).
        let amount = record
            .result
            .as_ref()
            .map_or(r.commitment.amount, |c| c.message.amount);
        let seconds = record.updated_at.saturating_sub(record.created_at);
        if let Some(g) = dto::generation_summary(&r.files, amount, seconds) {
            generation = g;
        }
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert("generation".into(), generation);
        // The buyer's side: the providers it sent the job to, in order (the last one runs
        // it now, or ran it), for a client that submits it again elsewhere (`avoid`).
        if side == Side::Buyer {
            let sent: Vec<String> = api
                .buyer
                .sent_to(&id)
                .iter()
                .map(ToString::to_string)
                .collect();
            obj.insert("sent_to".into(), json!(sent));
        }
    }
    Ok(Json(v))
}

/// Jobs settled on chain by provider, counted by job: this node's bought jobs paid by a
/// voucher that a `VoucherClaimed` event since start paid (a claim covers every job of its
/// voucher). The reputation table counts each claim once, whatever the jobs it covers (the
/// only count for channels of other buyers): each provider's `settled_jobs` is the larger.
async fn settled_by_job(api: &Api) -> HashMap<sietch_market::Address, u64> {
    let claimed = api.activity.claimed();
    if claimed.is_empty() {
        return HashMap::new();
    }
    let store = api.store.clone();
    tokio::task::spawn_blocking(move || {
        let jobs = store.jobs(Side::Buyer, None, SCAN_JOBS).unwrap_or_default();
        crate::activity::jobs_settled(&jobs, &claimed, |j| j.counterparty)
    })
    .await
    .unwrap_or_default()
}

pub(crate) async fn providers(State(api): State<Api>) -> Json<Value> {
    let by_job = settled_by_job(&api).await;
    let settled = |addr: &sietch_market::Address, claims: u64| {
        by_job.get(addr).copied().unwrap_or(0).max(claims)
    };
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
                "settled_jobs": settled(&o.evm_address, rep.settled_jobs),
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
                    "settled_jobs": settled(&addr, rep.settled_jobs),
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
pub(crate) struct SettlementQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn settlements(
    State(api): State<Api>,
    Query(q): Query<SettlementQuery>,
) -> Json<Value> {
    let limit = q.limit.unwrap_or(200).min(MAX_JOBS);
    Json(serde_json::to_value(api.activity.chain(q.kind.as_deref(), limit)).unwrap_or_default())
}

pub(crate) async fn disputes(State(api): State<Api>) -> Json<Value> {
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

pub(crate) async fn stats(State(api): State<Api>) -> Json<Value> {
    Json(json!({
        "bucket_secs": crate::activity::BUCKET_SECS,
        "buckets": api.activity.buckets(),
    }))
}

pub(crate) async fn channels(State(api): State<Api>) -> Json<Value> {
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
