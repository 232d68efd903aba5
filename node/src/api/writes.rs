//! The API's writes (behind the token): upload a blob, fund a channel, submit a job. Bodies
//! are read under a size bound and `http.body_timeout_secs`; a job is checked against every
//! rule a provider's admission and sandbox apply before it is accepted (`dto`), and
//! `?wait=true` answers within `http.wait_secs` (or the `wait_secs` asked for, if less). A
//! job may name providers to `avoid` (`bad_avoid` when the list is malformed; `no_match`
//! at once, blocker `avoid`, when only they fit).

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sietch_market::Stage;

use super::error::{ApiError, read_body, unavailable};
use super::{Api, dto};
use crate::buyer::BuyError;
use crate::store::{BlobError, Side};

/// Largest JSON body.
pub(crate) const MAX_JSON: usize = 1 << 20;
/// Largest uploaded blob, whatever the store allows (a model is about 100 MB; the store's
/// `max_blob_bytes`, 256 MiB by default, is the bound below this one).
pub const MAX_UPLOAD: usize = 1 << 30;

fn declared(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) async fn upload(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let limit = usize::try_from(api.store.blobs().max_blob_bytes())
        .unwrap_or(MAX_UPLOAD)
        .min(MAX_UPLOAD);
    let body = read_body(body, declared(&headers), limit, api.http.body_timeout()).await?;
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
            // The full error (with the path) goes to the node's log, not to the client.
            tracing::warn!("storing an uploaded blob: {e}");
            match e {
                BlobError::TooLarge { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
                }
                BlobError::QuotaFull { .. } => ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "blob_quota",
                    format!("{e}; wait for older blobs to age out, or raise blob_quota_bytes"),
                ),
                _ => ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "blob_store",
                    format!("the node could not store the blob ({e}); its log says more"),
                ),
            }
        })?;
    Ok(Json(json!({"hash": hash.to_string(), "size": size})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    provider: String,
    amount: String,
}

pub(crate) async fn fund(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, declared(&headers), MAX_JSON, api.http.body_timeout()).await?;
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
    // The chain takes deposits of up to 2^128 - 1 base units.
    let amount = dto::parse_amount(&r.amount).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_amount",
            format!("amount: {why}"),
        )
    })?;
    if amount == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_amount",
            "amount: zero; fund a channel with at least one base unit",
        ));
    }
    let channel = api
        .buyer
        .fund(provider, sietch_market::U256::from(amount))
        .await
        .map_err(|e| {
            tracing::warn!("funding a channel to {provider}: {e}");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "funding_failed",
                format!("the channel was not funded: {e}"),
            )
        })?;
    Ok(Json(
        json!({"channel": channel.to_string(), "provider": provider.to_string()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    #[serde(default)]
    wait: bool,
    /// Wait at most this long (capped by `http.wait_secs`).
    wait_secs: Option<u64>,
}

pub(crate) async fn submit(
    State(api): State<Api>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, declared(&headers), MAX_JSON, api.http.body_timeout()).await?;
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
        .map_err(|e| {
            let code = match e {
                dto::SpecError::MissingBlob(_) => "missing_blob",
                dto::SpecError::InputName { .. } => "bad_input_name",
                _ => "bad_job",
            };
            ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
        })?;
    let avoid = sub
        .avoided()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_avoid", e.to_string()))?;
    // A job whose avoid list leaves no offer is refused now, not after it is recorded: its
    // submitter asks again without the list (the SDKs' round drivers do).
    if !avoid.is_empty()
        && let Err(BuyError::NoMatch(why)) = api.buyer.can_match(&spec, &avoid)
    {
        return Err(no_match(None, &why));
    }
    let id = api
        .buyer
        .prepare(&spec)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "cannot_submit", e.to_string()))?;
    let buyer = api.buyer.clone();
    let mut run = tokio::spawn(async move { buyer.run_prepared(&spec, id, &avoid).await });
    if !q.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"job_id": id.to_string()})),
        )
            .into_response());
    }
    let bound = q.wait_secs.map_or(api.http.wait(), |s| {
        Duration::from_secs(s).min(api.http.wait())
    });
    let outcome = match tokio::time::timeout(bound, &mut run).await {
        Ok(outcome) => outcome,
        Err(_) => return still_running(&api, id, bound).await,
    };
    match outcome {
        Ok(Ok(done)) => Ok(Json(json!({
            "job_id": id.to_string(),
            "finished": true,
            "provider": done.provider.to_string(),
            "paid": done.paid.to_string(),
            "check": done.check.map(|d| format!("{d:?}")),
            "millis": done.elapsed.as_millis() as u64,
            "outputs": dto::OutputsJson::of(&done.result),
        }))
        .into_response()),
        Ok(Err(BuyError::NoMatch(why))) => Err(no_match(Some(id), &why)),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "job_failed",
            format!("job {id}: {e}"),
        )),
        Err(e) => Err(unavailable(e)),
    }
}

/// 422 `no_match`: no offer in the book can run the job. The market's explanation is the
/// message, whole; `detail` holds the filter that stopped the last offers (`blocker`) and how
/// many offers passed each filter (`funnel`: `{"filter", "passed"}` in the order they apply).
/// `id`: the job, when one was recorded (not for a job refused for its avoid list).
fn no_match(id: Option<sietch_market::B256>, why: &sietch_market::NoMatch) -> ApiError {
    let funnel: Vec<Value> = Stage::ALL
        .iter()
        .map(|s| json!({"filter": s.name(), "passed": why.funnel.passed(*s)}))
        .collect();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_match",
        match id {
            Some(id) => format!("job {id}: {why}"),
            None => why.to_string(),
        },
    )
    .with_detail(json!({"blocker": why.blocker.name(), "funnel": funnel}))
}

/// The answer of a wait that ran out: 202, the job as stored now, `"finished": false`. The
/// job goes on; `GET /api/v1/jobs/{id}` follows it.
async fn still_running(
    api: &Api,
    id: sietch_market::B256,
    waited: Duration,
) -> Result<Response, ApiError> {
    let store = api.store.clone();
    let record = tokio::task::spawn_blocking(move || store.job(Side::Buyer, &id))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
    let mut v = record.map_or_else(
        || json!({}),
        |r| {
            super::reads::job_json(
                &r,
                Side::Buyer,
                api.buyer.address(),
                api.activity.job_note(&id.to_string()),
            )
        },
    );
    if let Some(obj) = v.as_object_mut() {
        obj.insert("job_id".into(), json!(id.to_string()));
        obj.insert("finished".into(), json!(false));
        obj.insert(
            "message".into(),
            json!(format!(
                "still running after {} s; follow it with GET /api/v1/jobs/{id}",
                waited.as_secs()
            )),
        );
    }
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}
