//! A whole blob streamed over one libp2p stream (`/sietch/blob-stream/1`), the way models
//! and other large inputs travel: one request, then the blob's bytes from the asked offset
//! to its end, unframed, written to the fetcher's sink as they arrive.
//!
//! On the stream (docs/protocol/exchanges.md, "Blobs"):
//!
//! 1. the fetcher writes one frame (4-byte big-endian length, then a [`StreamRequest`]:
//!    the blob's hash and the first byte wanted) and closes its side;
//! 2. the server answers with one frame, a [`StreamHeader`]: `Found` with the blob's total
//!    size, `NotFound`, or `Busy`;
//! 3. after `Found`, the server writes the bytes `offset..total` as they are, and closes.
//!
//! The fetcher checks the size against its limit before it writes a byte, reads no more
//! than `total - offset`, gives up a stream that stalls (`NetConfig::blob_stall`) and asks
//! again from where it stopped, and hashes the whole blob at the end; a peer whose bytes do
//! not hash to the blob is charged (`Offence::CorruptBlob`). A peer that does not speak the
//! protocol is fetched from the chunked way (`/sietch/blob/1`).
//!
//! Modules: `streams` the libp2p behaviour that opens and accepts raw streams; `serve` the
//! serving side; `fetch` the fetching side, with its fallback.

pub(crate) mod fetch;
pub(crate) mod serve;
pub(crate) mod streams;

use libp2p::StreamProtocol;
use sietch_market::B256;
use sietch_market::codec::{Reader, Writer};
use sietch_market::error::DecodeError;

use super::wire::WireMessage;

/// Whole blobs over one stream. Version 1.
pub const BLOB_STREAM_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/blob-stream/1");

/// Bytes read from the stream into one buffer before they go to the sink (two such buffers
/// per fetch: one filling while the other is written).
pub(crate) const FETCH_BUFFER: usize = 2 * 1024 * 1024;

/// Bytes read from the blob source at a time when serving (two per stream served).
pub(crate) const SERVE_CHUNK: usize = 1024 * 1024;

/// Streams served at once by a node, over all peers; a stream beyond it is reset.
pub(crate) const MAX_SERVED_STREAMS: usize = 16;

/// A request for a blob from `offset` to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRequest {
    /// blake3 hash of the blob.
    pub hash: B256,
    /// First byte wanted (0, or where a broken transfer stopped).
    pub offset: u64,
}

/// The server's answer, before the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamHeader {
    /// The blob follows: `total - offset` bytes.
    Found {
        /// Size of the whole blob.
        total: u64,
    },
    /// The node does not hold that blob.
    NotFound,
    /// The node serves as many streams as it may; ask again later.
    Busy,
}

impl WireMessage for StreamRequest {
    const TAG: u8 = 12;
    const MAX: usize = 64;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.hash);
        w.u64(self.offset);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            hash: r.b256()?,
            offset: r.u64()?,
        })
    }
}

impl WireMessage for StreamHeader {
    const TAG: u8 = 13;
    const MAX: usize = 64;
    fn write(&self, w: &mut Writer) {
        match self {
            Self::Found { total } => {
                w.u8(0);
                w.u64(*total);
            }
            Self::NotFound => w.u8(1),
            Self::Busy => w.u8(2),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Found { total: r.u64()? }),
            1 => Ok(Self::NotFound),
            2 => Ok(Self::Busy),
            tag => Err(DecodeError::BadTag {
                what: "blob stream header",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_pinned_and_round_trip() {
        let req = StreamRequest {
            hash: B256::repeat_byte(0xab),
            offset: 0x0102_0304_0506_0708,
        };
        let bytes = req.to_bytes();
        let mut want = vec![1u8, 12];
        want.extend([0xab; 32]);
        want.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes, want);
        assert_eq!(StreamRequest::from_bytes(&bytes).unwrap(), req);

        let found = StreamHeader::Found { total: 300 };
        assert_eq!(found.to_bytes(), [1, 13, 0, 0, 0, 0, 0, 0, 0, 1, 44]);
        assert_eq!(StreamHeader::NotFound.to_bytes(), [1, 13, 1]);
        assert_eq!(StreamHeader::Busy.to_bytes(), [1, 13, 2]);
        for h in [found, StreamHeader::NotFound, StreamHeader::Busy] {
            assert_eq!(StreamHeader::from_bytes(&h.to_bytes()).unwrap(), h);
        }
        assert!(StreamHeader::from_bytes(&[1, 13, 3]).is_err());
        assert!(
            StreamHeader::from_bytes(&[1, 13, 1, 0]).is_err(),
            "trailing"
        );
        assert!(
            StreamRequest::from_bytes(&[1, 13, 1]).is_err(),
            "wrong kind"
        );
    }
}
