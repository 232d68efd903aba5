//! `GET /api/v1/events`: the node's events as server-sent events, with ids a client that
//! reconnects names (`Last-Event-ID`) to get what it missed, and caps on the streams open in
//! all and per client address (503 `event_streams_full`, 429 `event_streams_per_client`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::Api;
use super::error::ApiError;
use crate::events::{NumberedEvent, Since};

/// The event streams open, in total and per client address.
#[derive(Debug)]
pub(crate) struct Streams {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    max: usize,
    max_per_client: usize,
}

/// One open event stream; its drop closes it.
pub(crate) struct StreamPermit {
    streams: Arc<Streams>,
    ip: IpAddr,
}

impl Streams {
    pub(crate) fn new(max: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new((0, HashMap::new())),
            max,
            max_per_client,
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<StreamPermit, ApiError> {
        let mut open = self.open();
        let (total, per) = &mut *open;
        let mine = per.get(&ip).copied().unwrap_or(0);
        if mine >= self.max_per_client {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "event_streams_per_client",
                format!(
                    "this client has {mine} event streams open, as many as the node takes from \
                     one address; close one (one stream carries every event)"
                ),
            ));
        }
        if *total >= self.max {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "event_streams_full",
                format!(
                    "the node has {total} event streams open, as many as it takes; try again \
                     later or poll the other routes"
                ),
            ));
        }
        *total += 1;
        *per.entry(ip).or_default() += 1;
        Ok(StreamPermit {
            streams: self.clone(),
            ip,
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.open();
        let (total, per) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

pub(crate) async fn events(
    State(api): State<Api>,
    Extension(streams): Extension<Arc<Streams>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = streams.acquire(peer.ip())?;
    // A listener coming back names the last event it saw (`<run>-<seq>`, as each event's
    // id): it gets the kept events since, and is told if any are gone for good.
    let since = match headers.get("last-event-id") {
        None => Since::Now,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_event_id)
            .map_or(Since::Unknown, |(run, seq)| Since::After { run, seq }),
    };
    let resumed = api.events.resume(since);
    let run = resumed.run;
    let lost = match resumed.missed {
        Some(0) => None,
        Some(n) => Some(json!({"kind": "lagged", "missed": n})),
        None => Some(
            json!({"kind": "lagged", "missed": null, "why": "the last event id is not from this run of the node"}),
        ),
    };
    let first: Vec<Event> = lost
        .map(|v| Event::default().event("node").data(v.to_string()))
        .into_iter()
        .chain(resumed.replay.iter().map(|e| node_event(run, e)))
        .collect();
    let replay = futures::stream::iter(first.into_iter().map(Ok));
    let live =
        futures::stream::unfold((resumed.live, permit), move |(mut rx, permit)| async move {
            let event = match rx.recv().await {
                Ok(e) => node_event(run, &e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default()
                    .event("node")
                    .data(json!({"kind": "lagged", "missed": n}).to_string()),
                Err(_) => return None,
            };
            Some((Ok(event), (rx, permit)))
        });
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::default()))
}

/// One event as the stream sends it: id `<run>-<seq>` (run in hex), type `node`, the
/// event's JSON.
fn node_event(run: u32, e: &NumberedEvent) -> Event {
    // A failure's reason may quote a chain or disk error: no URL, no path.
    let mut v = serde_json::to_value(&e.event).unwrap_or_default();
    super::error::scrub_fields(&mut v);
    Event::default()
        .id(format!("{run:08x}-{}", e.seq))
        .event("node")
        .data(v.to_string())
}

/// Reads an event id `<run in hex>-<seq>`.
fn parse_event_id(id: &str) -> Option<(u32, u64)> {
    let (run, seq) = id.trim().split_once('-')?;
    if run.len() != 8 {
        return None;
    }
    Some((u32::from_str_radix(run, 16).ok()?, seq.parse().ok()?))
}
