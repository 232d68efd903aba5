//! The fetching side of `/sietch/blob-stream/1`: one attempt at streaming a blob from where
//! the transfer stands to its end, into the transfer's sink.

use std::time::Duration;

use futures::AsyncReadExt;
use libp2p::Stream;
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::streams::OpenError;
use super::{BLOB_STREAM_PROTOCOL, FETCH_BUFFER, StreamHeader, StreamRequest};
use crate::net::blob_fetch::{Attempt, Transfer, retry};
use crate::net::blob_sink::BlobSink;
use crate::net::wire::{WireMessage, read_frame, write_frame};
use crate::net::{Command, NetError, Network};

impl Network {
    /// Streams the rest of the blob, from `t.pipe.handed` to its end. Bytes received before
    /// a failure are kept (the next attempt asks from after them).
    pub(crate) async fn stream_attempt<S: BlobSink>(
        &self,
        t: &mut Transfer<S>,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<(), Attempt> {
        let peer = t.peer;
        let stall = self.config.blob_stall;
        // Two buffers of this node's memory for the peer's bytes, from its inbound budget.
        let _lease = self
            .guard
            .try_hold(peer, 2 * FETCH_BUFFER as u64)
            .map_err(|d| retry(peer, d))?;
        let mut stream = self.open_blob_stream(t, stall).await?;
        let offset = t.pipe.handed;
        let request = StreamRequest {
            hash: t.hash,
            offset,
        };
        timed(stall, write_frame(&mut stream, &request.to_bytes()))
            .await
            .map_err(|e| retry(peer, format!("sending the request: {e}")))?;
        let header = timed(stall, read_frame(&mut stream, StreamHeader::MAX))
            .await
            .map_err(|e| retry(peer, format!("reading the header: {e}")))?;
        let total = match StreamHeader::from_bytes(&header) {
            Err(e) => return Err(t.corrupt(&format!("a malformed stream header: {e}"))),
            Ok(StreamHeader::NotFound) => {
                return Err(Attempt::Fatal(NetError::BlobNotFound {
                    peer,
                    hash: t.hash,
                }));
            }
            Ok(StreamHeader::Busy) => return Err(retry(peer, "the peer is busy")),
            Ok(StreamHeader::Found { total }) => total,
        };
        t.announced(total).await?;
        let mut remaining = total.saturating_sub(offset);
        while remaining > 0 {
            let mut buf = t.pipe.buffer(FETCH_BUFFER);
            let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let mut filled = 0;
            let mut failed = None;
            while filled < want {
                let slot = buf.get_mut(filled..want).unwrap_or_default();
                match timeout(stall, stream.read(slot)).await {
                    Ok(Ok(0)) => {
                        failed = Some(format!(
                            "the stream ended {} bytes before the blob's end",
                            remaining - filled as u64
                        ));
                        break;
                    }
                    Ok(Ok(n)) => filled += n,
                    Ok(Err(e)) => {
                        failed = Some(format!("reading the blob: {e}"));
                        break;
                    }
                    Err(_) => {
                        failed = Some(format!("the stream stalled for {} s", stall.as_secs()));
                        break;
                    }
                }
            }
            if filled > 0 {
                t.pipe.push(buf, filled).await?;
                remaining -= filled as u64;
                progress(t.pipe.handed, total);
            }
            if let Some(why) = failed {
                return Err(retry(peer, why));
            }
        }
        Ok(())
    }

    /// Opens a stream of the protocol to the transfer's peer (dialing it if needed).
    async fn open_blob_stream<S>(
        &self,
        t: &Transfer<S>,
        stall: Duration,
    ) -> Result<Stream, Attempt> {
        let peer = t.peer;
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::OpenBlobStream(peer, tx))
            .await
            .map_err(|_| Attempt::Fatal(NetError::Stopped))?;
        match timeout(stall, rx).await {
            Err(_) => Err(retry(peer, "opening a blob stream timed out")),
            Ok(Err(_)) => Err(retry(peer, "the connection closed")),
            Ok(Ok(Err(OpenError::Unsupported))) => Err(Attempt::Unsupported),
            Ok(Ok(Err(OpenError::Failed(why)))) => Err(retry(
                peer,
                format!("opening {BLOB_STREAM_PROTOCOL}: {why}"),
            )),
            Ok(Ok(Ok(s))) => Ok(s),
        }
    }
}

/// `f` within `limit`; a timeout is an I/O error.
pub(crate) async fn timed<T>(
    limit: Duration,
    f: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    timeout(limit, f)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}
