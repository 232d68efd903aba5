//! A whole blob fetched from a peer chunk by chunk, resumed after a failed chunk and
//! checked against its hash.

use std::time::Duration;

use libp2p::PeerId;
use sietch_market::B256;

use super::{BlobReply, BlobRequest, Command, NetError, Network};

/// Times a blob transfer resumes after a failed chunk before giving up.
const BLOB_RETRIES: u32 = 8;

/// A blob fetched from a peer, checked against its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBlob {
    /// The blob.
    pub bytes: Vec<u8>,
    /// How many times the transfer resumed after a failed chunk.
    pub resumes: u32,
}

impl Network {
    /// Fetches a whole blob from a peer, chunk by chunk, and checks it against its hash. A
    /// failed chunk (dropped connection, timeout) is retried from where the transfer
    /// stopped after re-dialing the peer, up to 8 times in a row. `progress` is called
    /// with the bytes received so far and the total.
    pub async fn fetch_blob(
        &self,
        peer: PeerId,
        hash: B256,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<FetchedBlob, NetError> {
        let max = self.config.max_blob_bytes;
        let mut resumes = 0u32;
        let mut buf: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        let mut failures = 0u32;
        loop {
            let request = BlobRequest {
                hash,
                offset: buf.len() as u64,
                max_len: self.config.blob_chunk,
            };
            match self.blob_chunk(peer, request).await {
                Ok(BlobReply::NotFound) => return Err(NetError::BlobNotFound { peer, hash }),
                Ok(BlobReply::Chunk { total: t, data }) => {
                    failures = 0;
                    let corrupt = |why: &str| NetError::BlobCorrupt {
                        peer,
                        why: format!("blob {hash}: {why}"),
                    };
                    if t > max {
                        return Err(NetError::BlobTooLarge { hash, size: t, max });
                    }
                    if total.is_some_and(|old| old != t) {
                        return Err(corrupt("the blob's size changed between chunks"));
                    }
                    total = Some(t);
                    let remaining = t.saturating_sub(buf.len() as u64);
                    if data.len() as u64 > remaining.min(u64::from(request.max_len)) {
                        return Err(corrupt("a chunk is longer than asked"));
                    }
                    if data.is_empty() && remaining > 0 {
                        return Err(corrupt("an empty chunk before the end"));
                    }
                    buf.extend_from_slice(&data);
                    progress(buf.len() as u64, t);
                    if buf.len() as u64 == t {
                        if blake3::hash(&buf).as_bytes() != hash.as_slice() {
                            return Err(corrupt("the bytes do not hash to the blob's hash"));
                        }
                        return Ok(FetchedBlob {
                            bytes: buf,
                            resumes,
                        });
                    }
                }
                Err(NetError::Stopped) => return Err(NetError::Stopped),
                Err(e) => {
                    failures += 1;
                    resumes += 1;
                    if failures > BLOB_RETRIES {
                        return Err(e);
                    }
                    tracing::debug!(%peer, %hash, offset = buf.len(), "blob chunk failed, resuming: {e}");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
                    let _ = self.tx.send(Command::DialPeer(peer)).await;
                }
            }
        }
    }
}
