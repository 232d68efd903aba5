//! Where a fetched blob's bytes go: the [`BlobSink`] trait, a sink in memory, and the pipe
//! that hands a transfer's buffers to its sink off the async threads, one write at a time
//! while the next buffer fills.

use std::io;

use sietch_market::B256;
use tokio::task::JoinHandle;

use super::NetError;
use super::blob_fetch::Attempt;

/// Spare buffers a transfer keeps for reuse.
const SPARE_BUFFERS: usize = 2;

/// A write done off the async threads: the sink and the buffer back, and how it went.
type Written<S> = (S, Vec<u8>, io::Result<()>);

/// Where a fetched blob's bytes go as they arrive: memory ([`MemorySink`]) or a file of the
/// node's store. The network writes at most the size the peer announced, which it checks
/// against its own limit first, and asks the sink for the hash of what was written at the
/// end.
pub trait BlobSink: Send + 'static {
    /// The blob's size, as the peer announced it (within `max_blob_bytes`), before any byte
    /// is written; an error refuses the transfer (too large for the sink, no room).
    fn begin(&mut self, total: u64) -> io::Result<()>;
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// The blake3 hash of the bytes written so far.
    fn hash(&self) -> B256;
}

/// A blob fetched into memory, hashed as it arrives.
#[derive(Debug, Default)]
pub struct MemorySink {
    bytes: Vec<u8>,
    total: u64,
    hasher: blake3::Hasher,
}

impl MemorySink {
    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl BlobSink for MemorySink {
    fn begin(&mut self, total: u64) -> io::Result<()> {
        let len =
            usize::try_from(total).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        self.bytes
            .try_reserve_exact(len)
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
        self.total = total;
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written().saturating_add(bytes.len() as u64) > self.total {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the blob's size",
            ));
        }
        self.hasher.update(bytes);
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn hash(&self) -> B256 {
        B256::from(*self.hasher.finalize().as_bytes())
    }
}

/// Writes handed to a sink off the async threads, one at a time, while the next buffer
/// fills.
pub(crate) struct Pipe<S> {
    sink: Option<S>,
    writing: Option<JoinHandle<Written<S>>>,
    spare: Vec<Vec<u8>>,
    /// Bytes handed to the sink (written, or being written).
    pub(crate) handed: u64,
    hash: B256,
}

impl<S: BlobSink> Pipe<S> {
    fn sink_error(&self, why: impl std::fmt::Display) -> Attempt {
        Attempt::Fatal(NetError::BlobWrite {
            hash: self.hash,
            why: why.to_string(),
        })
    }

    pub(crate) fn new(sink: S, hash: B256) -> Self {
        Self {
            sink: Some(sink),
            writing: None,
            spare: Vec::new(),
            handed: 0,
            hash,
        }
    }

    /// Waits for the last write and hands the sink back.
    pub(crate) async fn finish(mut self) -> Result<S, NetError> {
        match self.settle().await {
            Ok(()) => self.sink.take().ok_or(NetError::Stopped),
            Err(Attempt::Fatal(e) | Attempt::Retry(e)) => Err(e),
            Err(Attempt::Unsupported) => Err(NetError::Stopped),
        }
    }

    /// Waits for the write in flight.
    async fn settle(&mut self) -> Result<(), Attempt> {
        if let Some(h) = self.writing.take() {
            let (sink, buf, r) = h.await.map_err(|e| self.sink_error(e))?;
            self.sink = Some(sink);
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(buf);
            }
            r.map_err(|e| self.sink_error(e))?;
        }
        Ok(())
    }

    /// Tells the sink the blob's size.
    pub(crate) async fn begin(&mut self, total: u64) -> Result<(), Attempt> {
        self.settle().await?;
        let r = match self.sink.as_mut() {
            Some(s) => s.begin(total),
            None => Err(io::Error::other("no sink")),
        };
        r.map_err(|e| self.sink_error(e))
    }

    /// A buffer of `len` bytes to fill (a spare one when there is one).
    pub(crate) fn buffer(&mut self, len: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => vec![0; len],
        }
    }

    /// Hands `buf[..n]` to the sink, written in the background once the write before it
    /// has finished.
    pub(crate) async fn push(&mut self, mut buf: Vec<u8>, n: usize) -> Result<(), Attempt> {
        self.settle().await?;
        let Some(mut sink) = self.sink.take() else {
            return Err(self.sink_error("no sink"));
        };
        buf.truncate(n);
        self.handed += n as u64;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let r = sink.write(&buf);
            (sink, buf, r)
        }));
        Ok(())
    }
}
