//! The blob cache through the API: what the node holds (modules, inputs, models), so that a
//! client uploads a model only when the node lacks it and an operator sees the cache.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Api;
use super::error::{ApiError, unavailable};
use super::reads::parse_id;

/// Most blobs `GET /api/v1/blobs` lists.
const MAX_BLOBS_LISTED: usize = 1000;

fn blob_json(e: &crate::store::BlobEntry) -> Value {
    json!({"hash": e.hash.to_string(), "bytes": e.bytes, "last_used": e.last_used})
}

/// `GET /api/v1/blobs`: the blob cache (modules, inputs, models): totals, quota, and the
/// blobs most recently used first (at most [`MAX_BLOBS_LISTED`]).
pub(crate) async fn list(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let store = api.store.clone();
    let (entries, (bytes, count), quota) = tokio::task::spawn_blocking(move || {
        let b = store.blobs();
        Ok::<_, crate::store::BlobError>((
            b.entries(MAX_BLOBS_LISTED)?,
            b.total(),
            b.limits().quota_bytes,
        ))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    Ok(Json(json!({
        "bytes": bytes,
        "count": count,
        "quota_bytes": quota,
        "blobs": entries.iter().map(blob_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/blobs/{hash}`: whether the node holds a blob (a client uploads a model only
/// when it does not), its size and when it was last used; 404 `no_such_blob` otherwise.
pub(crate) async fn one(
    State(api): State<Api>,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hash = parse_id(&hash)?;
    let store = api.store.clone();
    let entry = tokio::task::spawn_blocking(move || store.blobs().entry(&hash))
        .await
        .map_err(unavailable)?;
    entry.map(|e| Json(blob_json(&e))).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_blob",
            format!("this node holds no blob {hash}; POST /api/v1/blobs uploads it"),
        )
    })
}
