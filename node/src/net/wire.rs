//! The messages of the node's request-response protocols and their framing.
//!
//! Each message is the market crate's canonical encoding style (versioned, bounded, no
//! trailing bytes), framed on the stream by a 4-byte big-endian length that is checked
//! against the protocol's bound before anything is allocated.

use std::io;

use futures::{AsyncReadExt, AsyncWriteExt, prelude::*};
use libp2p::StreamProtocol;
use sietch_market::codec::{Reader, Writer};
use sietch_market::error::DecodeError;
use sietch_market::{
    B256, JobSpec, Outcome, OutputFiles, Outputs, ResultCommitment, Ticket, Voucher,
};

/// Version byte of every message of these protocols.
const WIRE_VERSION: u8 = 1;

/// Job requests and their answer.
/// Version 2: a job that ends quickly is answered with its result ([`JobReply::Done`]).
/// Version 3: a request may carry the payment of the channel's previous job
/// ([`JobRequest::paying`]).
pub const JOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/job/3");
/// Results, from provider to buyer.
pub const RESULT_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/result/1");
/// Blob chunks by blake3 hash.
pub const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/blob/1");
/// Payments (check secret and voucher), from buyer to provider.
pub const PAY_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/pay/1");
/// Re-runs of disputed jobs, asked of the verifiers the escrow drew.
pub const VERIFY_PROTOCOL: StreamProtocol = StreamProtocol::new("/sietch/verify/1");

/// Largest job request (the spec and the ticket; modules and inputs go by blob).
pub const MAX_JOB_REQUEST: usize = 256 * 1024;
/// Largest short answer: a payment's or a verify request's (a job reply, which may carry a
/// result, is bounded by [`MAX_RESULT`]).
pub const MAX_JOB_REPLY: usize = 4 * 1024;
/// Largest result message: stdout and `/output` files travel in it.
pub const MAX_RESULT: usize = 16 * 1024 * 1024;
/// Largest blob chunk a node sends or accepts.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// Largest length of a free-text field (reasons, outcomes).
const MAX_TEXT: usize = 1024;
/// Most `/output` files in a result.
pub const MAX_OUTPUT_FILES: usize = 256;

/// A buyer asks a provider to run a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// What to run.
    pub spec: JobSpec,
    /// The buyer's ticket for it.
    pub ticket: Ticket,
    /// The buyer's EIP-712 signature of the ticket (65 bytes, r‖s‖v).
    pub ticket_signature: [u8; 65],
    /// The payment of an earlier job on the same channel, carried here rather than in a
    /// message of its own on `/sietch/pay/1`: a buyer sending jobs back to back on a
    /// channel pays each with the next one's request. The provider records it before it
    /// looks at the ticket, as if it had come alone.
    pub paying: Option<Payment>,
}

/// Why a provider refuses a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The job asks for more than the provider offers.
    TooBig = 1,
    /// The ticket's prices are not the offer's, or it allows less than the job's limits can
    /// cost at them or than the provider's smallest job (`min_job_price`).
    PriceTooLow = 2,
    /// The ticket's channel cannot pay it: underfunded, not open, or not this provider's.
    ChannelUnderfunded = 3,
    /// The ticket's signature does not verify or is not the channel's buyer.
    BadSignature = 4,
    /// The provider runs as many jobs as it can.
    Busy = 5,
    /// The provider lacks the module or an input and could not fetch it.
    MissingBlob = 6,
    /// Anything else; the message says what.
    Other = 7,
}

impl RefuseReason {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::TooBig,
            2 => Self::PriceTooLow,
            3 => Self::ChannelUnderfunded,
            4 => Self::BadSignature,
            5 => Self::Busy,
            6 => Self::MissingBlob,
            7 => Self::Other,
            _ => return None,
        })
    }
}

/// A provider's answer to a job request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReply {
    /// The provider runs the job and will send its result.
    Accepted {
        /// The job accepted.
        job_id: B256,
    },
    /// The provider does not run the job.
    Refused {
        /// Why.
        reason: RefuseReason,
        /// What to do about it, in words.
        message: String,
    },
    /// The provider accepted and ran the job at once: here is its result, as
    /// `/sietch/result/1` would have carried it. A provider answers so when the job ends
    /// soon after it arrives, which saves a request and its reply for short jobs.
    Done(Box<JobResult>),
}

/// A provider's result for a job: its outputs and its signed commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The job.
    pub job_id: B256,
    /// How the job ended, carried as its tag and value ([`Outcome::tag`]), as the output
    /// hash encodes them, so the buyer can recompute the hash from the outputs. A pair no
    /// run gives decodes as [`Outcome::Unrecognized`], and no check accepts it.
    pub outcome: Outcome,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Files the job wrote to `/output`, by name (each name once: a message naming one twice
    /// does not decode).
    pub files: OutputFiles,
    /// The provider's commitment to this result.
    pub commitment: ResultCommitment,
    /// The provider's EIP-712 signature of the commitment (65 bytes).
    pub signature: [u8; 65],
}

impl JobResult {
    /// The output hash of its outputs ([`sietch_market::output_hash`]), as the provider
    /// should have committed to; `None` for an outcome no run gives.
    pub fn output_hash(&self) -> Option<B256> {
        self.outcome.is_recognized().then(|| {
            B256::from(sietch_market::output_hash(
                self.outcome,
                &self.stdout,
                &self.files,
            ))
        })
    }

    /// Its outputs in the market's form, as the verifier compares them.
    pub fn outputs(&self) -> Outputs {
        Outputs {
            outcome: self.outcome,
            stdout: self.stdout.clone(),
            files: self.files.clone(),
        }
    }
}

/// A provider's word that a job it accepted ended without a result (its module or an input
/// could not be fetched, the sandbox refused the spec, the run could not start...): sent on
/// `/sietch/result/1` in place of the result, so the buyer moves on at once instead of
/// waiting out the job's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// The job.
    pub job_id: B256,
    /// What kind of failure.
    pub reason: RefuseReason,
    /// What happened, in words (at most 1 KiB).
    pub message: String,
}

/// What `/sietch/result/1` carries: a job's result, or the word that there will be none.
/// A result is encoded as a [`JobResult`] (tag 3) as before; a failure as a
/// [`JobFailure`] (tag 11). Both start with the job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultMessage {
    /// The result.
    Done(Box<JobResult>),
    /// No result will come.
    Failed(JobFailure),
}

impl ResultMessage {
    /// The job it is about.
    pub fn job_id(&self) -> B256 {
        match self {
            Self::Done(r) => r.job_id,
            Self::Failed(f) => f.job_id,
        }
    }
}

/// A buyer's acknowledgement of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultAck {
    /// The buyer has the result.
    Received,
    /// The buyer knows no such job.
    UnknownJob,
}

/// A buyer's word on a job whose result it received: the revealed spot-check secret and,
/// when it accepts the result, a new cumulative voucher for the ticket's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The job.
    pub job_id: B256,
    /// The secret whose commit the ticket carries (`keccak256(secret) == check_commit`).
    pub secret: B256,
    /// The voucher paying the job, with the buyer's EIP-712 signature; `None` when the
    /// buyer withholds payment (`note` says why), which the provider answers by claiming the
    /// ticket on chain.
    pub voucher: Option<(Voucher, [u8; 65])>,
    /// Why payment is withheld, or empty.
    pub note: String,
}

/// A provider's answer to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentAck {
    /// Recorded.
    Accepted,
    /// Not recorded; the message says why (wrong channel, voucher below the last one, ...).
    Refused {
        /// Why.
        message: String,
    },
}

/// Asks a verifier the escrow drew for a disputed ticket to re-run the job and post its
/// verdict on chain. Sent by either party of the dispute; the verifier checks the ticket on
/// chain and fetches the module and inputs from the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The escrow's id of the disputed ticket.
    pub ticket_id: B256,
    /// The disputed job (its id seeds the sandbox, as in the original run).
    pub job_id: B256,
    /// What ran; its hash must be the ticket's spec hash.
    pub spec: JobSpec,
    /// The provider's result, outputs included (sent by the provider): a verifier votes
    /// "agree" only with outputs in hand that hash to the claimed output hash, and hands them
    /// to the buyer, so a dispute also decides delivery.
    pub delivery: Option<Box<JobResult>>,
}

/// A verifier's answer to a verify request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReply {
    /// The verifier re-runs the job and posts its verdict.
    Accepted,
    /// The verifier holds the provider's result for the ticket, outputs matching the claimed
    /// output hash: here it is (the answer to a request without a delivery, once it has one).
    Delivered(Box<JobResult>),
    /// It does not (not drawn, already voted, spec mismatch, ...).
    Refused {
        /// Why.
        message: String,
    },
}

/// A request for part of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRequest {
    /// blake3 hash of the blob.
    pub hash: B256,
    /// First byte wanted.
    pub offset: u64,
    /// Most bytes wanted (at most [`MAX_CHUNK`]).
    pub max_len: u32,
}

/// An answer to a blob request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobReply {
    /// Bytes from the requested offset.
    Chunk {
        /// Size of the whole blob.
        total: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The node does not hold that blob.
    NotFound,
}

/// A message of one of the node's protocols.
pub trait WireMessage: Sized + Send {
    /// Tag byte of this message type.
    const TAG: u8;
    /// Largest encoding accepted.
    const MAX: usize;
    /// Writes the body.
    fn write(&self, w: &mut Writer);
    /// Reads the body.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes with the version and tag bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(WIRE_VERSION);
        w.u8(Self::TAG);
        self.write(&mut w);
        w.into_bytes()
    }

    /// Decodes, refusing anything oversized, of another type or with trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: Self::MAX,
            });
        }
        let mut r = Reader::new(bytes);
        let v = r.u8()?;
        if v != WIRE_VERSION {
            return Err(DecodeError::UnknownVersion(v));
        }
        let tag = r.u8()?;
        if tag != Self::TAG {
            return Err(DecodeError::WrongKind {
                expected: Self::TAG,
                found: tag,
            });
        }
        let m = Self::read(&mut r)?;
        r.finish()?;
        Ok(m)
    }
}

mod encoding;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Reads one length-prefixed frame of at most `max` bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {max}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await?;
    io.close().await
}

#[cfg(test)]
mod tests;
