//! The serving side of `/sietch/blob-stream/1`: each inbound stream read for its request
//! and answered from the node's `BlobSource`, off the actor, the next chunk read from the
//! source while the last one is written.
//!
//! Bounded: at most [`MAX_SERVED_STREAMS`] streams served at once, [`MAX_SERVED_PER_PEER`]
//! of one peer, each holding two chunks of this node's memory taken from its peer's inbound
//! budget; a stream beyond any of these is answered `Busy` (by at most as many answers in
//! flight again; beyond that it is reset). The request must come within 5 s, and every
//! write of the blob within `NetConfig::blob_stall`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use sietch_market::B256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::fetch::timed;
use super::{MAX_SERVED_STREAMS, SERVE_CHUNK, StreamHeader, StreamRequest};
use crate::net::budget::Guard;
use crate::net::config::{BlobSource, NetConfig};
use crate::net::wire::{WireMessage, read_frame};

/// How long a `Busy` answer may take.
const BUSY_WAIT: Duration = Duration::from_secs(2);
/// Streams one peer may have served at once.
const MAX_SERVED_PER_PEER: usize = 4;
/// How long a stream's request may take to arrive (an honest fetcher sends it at once).
const REQUEST_WAIT: Duration = Duration::from_secs(5);

/// Serves the inbound streams until the swarm is gone.
pub(crate) async fn run(
    mut incoming: mpsc::Receiver<(PeerId, Stream)>,
    config: Arc<NetConfig>,
    guard: Arc<Guard>,
) {
    let slots = Arc::new(Semaphore::new(MAX_SERVED_STREAMS));
    let busy = Arc::new(Semaphore::new(MAX_SERVED_STREAMS));
    let per_peer = Arc::new(Mutex::new(HashMap::new()));
    while let Some((peer, mut stream)) = incoming.recv().await {
        let held = PeerSlot::take(&per_peer, peer).and_then(|mine| {
            let slot = slots.clone().try_acquire_owned().ok()?;
            let lease = guard.try_hold(peer, 2 * SERVE_CHUNK as u64).ok()?;
            Some((mine, slot, lease))
        });
        let Some(held) = held else {
            tracing::debug!(%peer, "blob stream refused: busy");
            if let Ok(answer) = busy.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let header = frame(&StreamHeader::Busy);
                    let _ = timed(BUSY_WAIT, async {
                        stream.write_all(&header).await?;
                        stream.close().await
                    })
                    .await;
                    drop(answer);
                });
            }
            continue;
        };
        let source = config.blobs.clone();
        let stall = config.blob_stall;
        tokio::spawn(async move {
            if let Err(e) = serve(stream, source, stall).await {
                tracing::debug!(%peer, "blob stream ended early: {e}");
            }
            drop(held);
        });
    }
}

/// One of the streams a peer may have served at once ([`MAX_SERVED_PER_PEER`]), given back
/// when dropped.
struct PeerSlot {
    peers: Arc<Mutex<HashMap<PeerId, usize>>>,
    peer: PeerId,
}

impl PeerSlot {
    fn take(peers: &Arc<Mutex<HashMap<PeerId, usize>>>, peer: PeerId) -> Option<Self> {
        let mut p = peers.lock().unwrap_or_else(PoisonError::into_inner);
        let n = p.entry(peer).or_default();
        if *n >= MAX_SERVED_PER_PEER {
            return None;
        }
        *n += 1;
        Some(Self {
            peers: peers.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut p = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = p.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.peer);
            }
        }
    }
}

/// A message framed as on the wire: its 4-byte big-endian length, then its bytes.
fn frame<M: WireMessage>(m: &M) -> Vec<u8> {
    let body = m.to_bytes();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Up to a chunk of the blob from `offset`, read off the async threads (started now).
fn read(source: Arc<dyn BlobSource>, hash: B256, offset: u64) -> JoinHandle<Chunk> {
    tokio::task::spawn_blocking(move || source.read(&hash, offset, SERVE_CHUNK))
}

/// A chunk read: the blob's size and the bytes, or nothing when it is not held.
type Chunk = Option<(u64, Vec<u8>)>;

async fn serve(
    mut stream: Stream,
    source: Option<Arc<dyn BlobSource>>,
    stall: Duration,
) -> io::Result<()> {
    let request = timed(
        stall.min(REQUEST_WAIT),
        read_frame(&mut stream, StreamRequest::MAX),
    )
    .await?;
    let request = StreamRequest::from_bytes(&request)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let first = match source.clone() {
        Some(s) => read(s, request.hash, request.offset)
            .await
            .map_err(io::Error::other)?,
        None => None,
    };
    let (Some(source), Some((total, mut data))) = (source, first) else {
        timed(stall, stream.write_all(&frame(&StreamHeader::NotFound))).await?;
        return timed(stall, stream.close()).await;
    };
    timed(
        stall,
        stream.write_all(&frame(&StreamHeader::Found { total })),
    )
    .await?;
    let mut offset = request.offset;
    while !data.is_empty() {
        offset += data.len() as u64;
        // The next chunk is read while this one is written.
        let next = (offset < total).then(|| read(source.clone(), request.hash, offset));
        timed(stall, stream.write_all(&data)).await?;
        let Some(next) = next else { break };
        match next.await.map_err(io::Error::other)? {
            Some((t, d)) if t == total => data = d,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob changed or went away while it was served",
                ));
            }
        }
    }
    timed(stall, stream.close()).await
}
