//! A whole blob fetched from a peer into a [`BlobSink`]: streamed over
//! `/sietch/blob-stream/1` (`blob_stream::fetch`), or chunk by chunk over `/sietch/blob/1`
//! from a peer that does not speak the stream protocol; resumed from where it stopped after
//! a broken connection or a stalled stream, and checked against its hash. Bytes go to the
//! sink as they arrive, written off the async threads while the next buffer fills.

use std::time::Duration;

use libp2p::PeerId;
use sietch_market::B256;

use super::blob_sink::{BlobSink, MemorySink, Pipe};
use super::score::Offence;
use super::{BlobReply, BlobRequest, Command, NetError, Network};

/// Times a blob transfer resumes in a row without progress before giving up.
const BLOB_RETRIES: u32 = 8;

/// A blob fetched from a peer, checked against its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBlob {
    /// The blob.
    pub bytes: Vec<u8>,
    /// How many times the transfer resumed after a failure.
    pub resumes: u32,
    /// Whether it came over `/sietch/blob-stream/1` (else chunk by chunk).
    pub streamed: bool,
}

/// A blob fetched into a sink, checked against its hash.
#[derive(Debug)]
pub struct Fetched<S> {
    /// The sink, holding the whole blob.
    pub sink: S,
    /// The blob's size.
    pub size: u64,
    /// How many times the transfer resumed after a failure.
    pub resumes: u32,
    /// Whether it came over `/sietch/blob-stream/1` (else chunk by chunk).
    pub streamed: bool,
}

/// How one attempt at a transfer ended, short of the whole blob.
pub(crate) enum Attempt {
    /// The peer does not speak the stream protocol: fetch chunk by chunk.
    Unsupported,
    /// Resume from where it stopped (after a backoff and a re-dial).
    Retry(NetError),
    /// Give up.
    Fatal(NetError),
}

/// One transfer's state, across its attempts and both ways.
pub(crate) struct Transfer<S> {
    pub(crate) peer: PeerId,
    pub(crate) hash: B256,
    pub(crate) pipe: Pipe<S>,
    pub(crate) total: Option<u64>,
    max: u64,
}

impl<S: BlobSink> Transfer<S> {
    /// Checks a size the peer announced (before any byte is written) and tells the sink
    /// the first time.
    pub(crate) async fn announced(&mut self, total: u64) -> Result<(), Attempt> {
        if total > self.max {
            return Err(Attempt::Fatal(NetError::BlobTooLarge {
                hash: self.hash,
                size: total,
                max: self.max,
            }));
        }
        match self.total {
            Some(t) if t != total => Err(self.corrupt("the blob's size changed between requests")),
            Some(_) => Ok(()),
            None => {
                self.total = Some(total);
                self.pipe.begin(total).await
            }
        }
    }

    pub(crate) fn corrupt(&self, why: &str) -> Attempt {
        Attempt::Fatal(NetError::BlobCorrupt {
            peer: self.peer,
            why: format!("blob {}: {why}", self.hash),
        })
    }

    fn done(&self) -> bool {
        self.total == Some(self.pipe.handed)
    }
}

/// A failure worth resuming after.
pub(crate) fn retry(peer: PeerId, reason: impl std::fmt::Display) -> Attempt {
    Attempt::Retry(NetError::Request {
        peer,
        reason: reason.to_string(),
    })
}

impl Network {
    /// Fetches a whole blob from a peer into memory and checks it against its hash:
    /// streamed, or chunk by chunk from a peer without the stream protocol; resumed from
    /// where it stopped after a failure (re-dialing the peer), up to 8 times in a row
    /// without progress. `progress` is called with the bytes received so far and the total.
    pub async fn fetch_blob(
        &self,
        peer: PeerId,
        hash: B256,
        progress: impl FnMut(u64, u64),
    ) -> Result<FetchedBlob, NetError> {
        let f = self
            .fetch_blob_into(peer, hash, MemorySink::default(), progress)
            .await?;
        Ok(FetchedBlob {
            bytes: f.sink.into_bytes(),
            resumes: f.resumes,
            streamed: f.streamed,
        })
    }

    /// [`Network::fetch_blob`] into `sink` (a file of the store, written as the bytes
    /// arrive). A sink error ends the transfer. A peer whose bytes do not hash to the blob
    /// is charged a strike.
    pub async fn fetch_blob_into<S: BlobSink>(
        &self,
        peer: PeerId,
        hash: B256,
        sink: S,
        progress: impl FnMut(u64, u64),
    ) -> Result<Fetched<S>, NetError> {
        self.fetch(peer, hash, sink, progress, self.config.blob_stream)
            .await
    }

    /// [`Network::fetch_blob`] chunk by chunk only, as from a peer without the stream
    /// protocol (for comparisons and tests).
    pub async fn fetch_blob_chunked(
        &self,
        peer: PeerId,
        hash: B256,
        progress: impl FnMut(u64, u64),
    ) -> Result<FetchedBlob, NetError> {
        let f = self
            .fetch(peer, hash, MemorySink::default(), progress, false)
            .await?;
        Ok(FetchedBlob {
            bytes: f.sink.into_bytes(),
            resumes: f.resumes,
            streamed: false,
        })
    }

    async fn fetch<S: BlobSink>(
        &self,
        peer: PeerId,
        hash: B256,
        sink: S,
        mut progress: impl FnMut(u64, u64),
        stream: bool,
    ) -> Result<Fetched<S>, NetError> {
        let mut t = Transfer {
            peer,
            hash,
            pipe: Pipe::new(sink, hash),
            total: None,
            max: self.config.max_blob_bytes,
        };
        let mut streamed = stream;
        let (mut failures, mut resumes) = (0u32, 0u32);
        loop {
            let before = t.pipe.handed;
            let r = if streamed {
                self.stream_attempt(&mut t, &mut progress).await
            } else {
                self.chunks_attempt(&mut t, &mut progress).await
            };
            match r {
                Ok(()) => break,
                Err(Attempt::Unsupported) => {
                    tracing::debug!(%peer, %hash, "no blob stream protocol: fetching chunk by chunk");
                    streamed = false;
                }
                Err(Attempt::Fatal(e)) => return Err(self.charged(e)),
                Err(Attempt::Retry(e)) => {
                    if t.pipe.handed > before {
                        failures = 0;
                    }
                    failures += 1;
                    resumes += 1;
                    if failures > BLOB_RETRIES {
                        return Err(e);
                    }
                    tracing::debug!(%peer, %hash, offset = t.pipe.handed, "blob transfer failed, resuming: {e}");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
                    let _ = self.tx.send(Command::DialPeer(peer)).await;
                }
            }
        }
        let sink = t.pipe.finish().await?;
        let total = t.total.unwrap_or(0);
        if sink.written() != total || sink.hash() != hash {
            return Err(self.charged(NetError::BlobCorrupt {
                peer,
                why: format!("blob {hash}: the bytes do not hash to the blob's hash"),
            }));
        }
        Ok(Fetched {
            sink,
            size: total,
            resumes,
            streamed,
        })
    }

    /// A peer that sent a corrupt blob is charged a strike.
    fn charged(&self, e: NetError) -> NetError {
        if let NetError::BlobCorrupt { peer, .. } = &e {
            let _ = self
                .tx
                .try_send(Command::Charge(*peer, Offence::CorruptBlob));
        }
        e
    }

    /// The chunked way: one request per chunk until the end or a failure.
    async fn chunks_attempt<S: BlobSink>(
        &self,
        t: &mut Transfer<S>,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<(), Attempt> {
        while !t.done() {
            let request = BlobRequest {
                hash: t.hash,
                offset: t.pipe.handed,
                max_len: self.config.blob_chunk,
            };
            let (total, data) = match self.blob_chunk(t.peer, request).await {
                Ok(BlobReply::NotFound) => {
                    return Err(Attempt::Fatal(NetError::BlobNotFound {
                        peer: t.peer,
                        hash: t.hash,
                    }));
                }
                Ok(BlobReply::Chunk { total, data }) => (total, data),
                Err(NetError::Stopped) => return Err(Attempt::Fatal(NetError::Stopped)),
                Err(e) => return Err(Attempt::Retry(e)),
            };
            t.announced(total).await?;
            let remaining = total.saturating_sub(t.pipe.handed);
            if data.len() as u64 > remaining.min(u64::from(request.max_len)) {
                return Err(t.corrupt("a chunk is longer than asked"));
            }
            if data.is_empty() && remaining > 0 {
                return Err(t.corrupt("an empty chunk before the end"));
            }
            let n = data.len();
            if n > 0 {
                t.pipe.push(data, n).await?;
            }
            progress(t.pipe.handed, total);
        }
        Ok(())
    }
}
