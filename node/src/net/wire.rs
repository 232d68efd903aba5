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
    B256, Canonical, JobSpec, Outcome, OutputFiles, Outputs, ResultCommitment, Ticket, Voucher,
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

fn read_sig(r: &mut Reader<'_>) -> Result<[u8; 65], DecodeError> {
    let b = r.take(65)?;
    let mut s = [0u8; 65];
    s.copy_from_slice(b);
    Ok(s)
}

fn nested<T: Canonical>(r: &mut Reader<'_>, what: &'static str) -> Result<T, DecodeError> {
    T::decode(r.bytes(what, T::MAX_SIZE)?)
}

impl WireMessage for JobRequest {
    const TAG: u8 = 1;
    const MAX: usize = MAX_JOB_REQUEST;
    fn write(&self, w: &mut Writer) {
        w.bytes(&self.spec.encode());
        w.bytes(&self.ticket.encode());
        w.fixed(&self.ticket_signature);
        w.option(self.paying.as_ref(), |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            spec: nested(r, "job spec")?,
            ticket: nested(r, "ticket")?,
            ticket_signature: read_sig(r)?,
            paying: r.option("carried payment", Payment::read)?,
        })
    }
}

impl WireMessage for JobReply {
    const TAG: u8 = 2;
    /// A result and its variant byte.
    const MAX: usize = MAX_RESULT + 1;
    fn write(&self, w: &mut Writer) {
        match self {
            Self::Accepted { job_id } => {
                w.u8(0);
                w.b256(job_id);
            }
            Self::Refused { reason, message } => {
                w.u8(1);
                w.u8(*reason as u8);
                w.str(truncate(message, MAX_TEXT));
            }
            Self::Done(result) => {
                w.u8(2);
                result.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Accepted { job_id: r.b256()? }),
            1 => {
                let tag = r.u8()?;
                let reason = RefuseReason::from_u8(tag).ok_or(DecodeError::BadTag {
                    what: "refuse reason",
                    tag,
                })?;
                Ok(Self::Refused {
                    reason,
                    message: r.string("refuse message", MAX_TEXT)?,
                })
            }
            2 => Ok(Self::Done(Box::new(JobResult::read(r)?))),
            tag => Err(DecodeError::BadTag {
                what: "job reply",
                tag,
            }),
        }
    }
}

impl WireMessage for JobResult {
    const TAG: u8 = 3;
    const MAX: usize = MAX_RESULT;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        let (tag, value) = self.outcome.tag();
        w.u8(tag);
        w.u32(value as u32);
        w.bytes(&self.stdout);
        w.count(self.files.len());
        for (name, data) in &self.files {
            w.str(name);
            w.bytes(data);
        }
        w.bytes(&self.commitment.encode());
        w.fixed(&self.signature);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            outcome: Outcome::from_wire(r.u8()?, r.u32()? as i32),
            stdout: r.bytes("stdout", MAX_RESULT)?.to_vec(),
            files: read_files(r)?,
            commitment: nested(r, "result commitment")?,
            signature: read_sig(r)?,
        })
    }
}

/// A result's `/output` files: at most [`MAX_OUTPUT_FILES`], each name once.
fn read_files(r: &mut Reader<'_>) -> Result<OutputFiles, DecodeError> {
    let n = r.u32()? as usize;
    if n > MAX_OUTPUT_FILES {
        return Err(DecodeError::TooLong {
            what: "output files",
            len: n,
            max: MAX_OUTPUT_FILES,
        });
    }
    let mut files = OutputFiles::new();
    for _ in 0..n {
        let name = r.string("output file name", MAX_TEXT)?;
        let data = r.bytes("output file", MAX_RESULT)?.to_vec();
        if files.insert(name, data).is_some() {
            return Err(DecodeError::Invalid {
                what: "output files",
                why: "two files share a name",
            });
        }
    }
    Ok(files)
}

impl WireMessage for JobFailure {
    const TAG: u8 = 11;
    const MAX: usize = MAX_JOB_REPLY;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.u8(self.reason as u8);
        w.str(truncate(&self.message, MAX_TEXT));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let job_id = r.b256()?;
        let tag = r.u8()?;
        let reason = RefuseReason::from_u8(tag).ok_or(DecodeError::BadTag {
            what: "failure reason",
            tag,
        })?;
        Ok(Self {
            job_id,
            reason,
            message: r.string("failure message", MAX_TEXT)?,
        })
    }
}

impl WireMessage for ResultMessage {
    /// The tag of a result; a failure has [`JobFailure`]'s.
    const TAG: u8 = JobResult::TAG;
    const MAX: usize = MAX_RESULT;
    fn write(&self, w: &mut Writer) {
        match self {
            Self::Done(r) => r.write(w),
            Self::Failed(f) => f.write(w),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self::Done(Box::new(JobResult::read(r)?)))
    }
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Done(r) => r.to_bytes(),
            Self::Failed(f) => f.to_bytes(),
        }
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.get(1) {
            Some(&JobFailure::TAG) => Ok(Self::Failed(JobFailure::from_bytes(bytes)?)),
            _ => Ok(Self::Done(Box::new(JobResult::from_bytes(bytes)?))),
        }
    }
}

impl WireMessage for ResultAck {
    const TAG: u8 = 4;
    const MAX: usize = 16;
    fn write(&self, w: &mut Writer) {
        w.u8(match self {
            Self::Received => 0,
            Self::UnknownJob => 1,
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Received),
            1 => Ok(Self::UnknownJob),
            tag => Err(DecodeError::BadTag {
                what: "result ack",
                tag,
            }),
        }
    }
}

impl WireMessage for BlobRequest {
    const TAG: u8 = 5;
    const MAX: usize = 64;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.hash);
        w.u64(self.offset);
        w.u32(self.max_len);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            hash: r.b256()?,
            offset: r.u64()?,
            max_len: r.u32()?,
        })
    }
}

impl WireMessage for BlobReply {
    const TAG: u8 = 6;
    const MAX: usize = MAX_CHUNK + 64;
    fn write(&self, w: &mut Writer) {
        match self {
            Self::Chunk { total, data } => {
                w.u8(0);
                w.u64(*total);
                w.bytes(data);
            }
            Self::NotFound => w.u8(1),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Chunk {
                total: r.u64()?,
                data: r.bytes("blob chunk", MAX_CHUNK)?.to_vec(),
            }),
            1 => Ok(Self::NotFound),
            tag => Err(DecodeError::BadTag {
                what: "blob reply",
                tag,
            }),
        }
    }
}

impl WireMessage for Payment {
    const TAG: u8 = 7;
    const MAX: usize = 2 * 1024;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.b256(&self.secret);
        w.option(self.voucher.as_ref(), |w, (v, sig)| {
            w.bytes(&v.encode());
            w.fixed(sig);
        });
        w.str(truncate(&self.note, MAX_TEXT));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            secret: r.b256()?,
            voucher: r.option("voucher", |r| Ok((nested(r, "voucher")?, read_sig(r)?)))?,
            note: r.string("payment note", MAX_TEXT)?,
        })
    }
}

/// Writes a yes-or-reason answer.
fn write_verdict(w: &mut Writer, refused: Option<&str>) {
    match refused {
        None => w.u8(0),
        Some(m) => {
            w.u8(1);
            w.str(truncate(m, MAX_TEXT));
        }
    }
}

/// Reads a yes-or-reason answer: `None` for yes.
fn read_verdict(r: &mut Reader<'_>, what: &'static str) -> Result<Option<String>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.string(what, MAX_TEXT)?)),
        tag => Err(DecodeError::BadTag { what, tag }),
    }
}

impl WireMessage for PaymentAck {
    const TAG: u8 = 8;
    const MAX: usize = MAX_JOB_REPLY;
    fn write(&self, w: &mut Writer) {
        write_verdict(
            w,
            match self {
                Self::Accepted => None,
                Self::Refused { message } => Some(message),
            },
        );
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match read_verdict(r, "payment ack")? {
            None => Self::Accepted,
            Some(message) => Self::Refused { message },
        })
    }
}

impl WireMessage for VerifyRequest {
    const TAG: u8 = 9;
    /// A job request's worth for the spec, plus a result.
    const MAX: usize = MAX_JOB_REQUEST + MAX_RESULT + 1;
    fn write(&self, w: &mut Writer) {
        w.b256(&self.ticket_id);
        w.b256(&self.job_id);
        w.bytes(&self.spec.encode());
        match &self.delivery {
            None => w.u8(0),
            Some(result) => {
                w.u8(1);
                result.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            ticket_id: r.b256()?,
            job_id: r.b256()?,
            spec: nested(r, "job spec")?,
            delivery: match r.u8()? {
                0 => None,
                1 => Some(Box::new(JobResult::read(r)?)),
                tag => {
                    return Err(DecodeError::BadTag {
                        what: "verify delivery",
                        tag,
                    });
                }
            },
        })
    }
}

impl WireMessage for VerifyReply {
    const TAG: u8 = 10;
    /// A result and its variant byte.
    const MAX: usize = MAX_RESULT + 1;
    fn write(&self, w: &mut Writer) {
        match self {
            Self::Accepted => write_verdict(w, None),
            Self::Refused { message } => write_verdict(w, Some(message)),
            Self::Delivered(result) => {
                w.u8(2);
                result.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // The tags of `write_verdict`, and 2 for a delivery.
        match r.u8()? {
            0 => Ok(Self::Accepted),
            1 => Ok(Self::Refused {
                message: r.string("verify reply", MAX_TEXT)?,
            }),
            2 => Ok(Self::Delivered(Box::new(JobResult::read(r)?))),
            tag => Err(DecodeError::BadTag {
                what: "verify reply",
                tag,
            }),
        }
    }
}

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

async fn read_msg<M: WireMessage, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<M> {
    let bytes = read_frame(io, M::MAX).await?;
    M::from_bytes(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A request-response codec for a pair of wire messages.
#[derive(Debug)]
pub struct Codec<Req, Resp>(std::marker::PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for Codec<Req, Resp> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<Req, Resp> Clone for Codec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req: WireMessage + 'static, Resp: WireMessage + 'static> libp2p::request_response::Codec
    for Codec<Req, Resp>
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.to_bytes()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.to_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_reply_round_trips_and_refuses_trailing_bytes() {
        let m = BlobReply::Chunk {
            total: 10,
            data: vec![1, 2, 3],
        };
        let mut b = m.to_bytes();
        assert_eq!(BlobReply::from_bytes(&b).unwrap(), m);
        b.push(0);
        assert!(matches!(
            BlobReply::from_bytes(&b),
            Err(DecodeError::TrailingBytes(1))
        ));
    }

    #[test]
    fn a_message_of_another_type_is_refused() {
        let b = ResultAck::Received.to_bytes();
        assert!(matches!(
            BlobReply::from_bytes(&b),
            Err(DecodeError::WrongKind { .. })
        ));
    }

    #[test]
    fn payments_and_verify_messages_round_trip() {
        let p = Payment {
            job_id: B256::repeat_byte(1),
            secret: B256::repeat_byte(2),
            voucher: Some((
                Voucher {
                    channel_id: B256::repeat_byte(3),
                    cumulative_amount: sietch_market::U256::from(99),
                },
                [4u8; 65],
            )),
            note: String::new(),
        };
        assert_eq!(Payment::from_bytes(&p.to_bytes()).unwrap(), p);
        let withheld = Payment {
            voucher: None,
            note: "check failed".into(),
            ..p
        };
        assert_eq!(Payment::from_bytes(&withheld.to_bytes()).unwrap(), withheld);
        for a in [
            PaymentAck::Accepted,
            PaymentAck::Refused {
                message: "stale".into(),
            },
        ] {
            assert_eq!(PaymentAck::from_bytes(&a.to_bytes()).unwrap(), a);
        }
        let v = VerifyReply::Refused {
            message: "not drawn".into(),
        };
        assert_eq!(VerifyReply::from_bytes(&v.to_bytes()).unwrap(), v);
        let mut bad = PaymentAck::Accepted.to_bytes();
        bad[2] = 9;
        assert!(matches!(
            PaymentAck::from_bytes(&bad),
            Err(DecodeError::BadTag { .. })
        ));
    }

    #[test]
    fn a_job_request_round_trips_with_and_without_a_carried_payment() {
        use sietch_market::{BlobRef, Limits, Requirements, U256, VerificationPolicy};
        let spec = JobSpec {
            module: BlobRef::of(b"module").hash,
            args: vec!["a".into()],
            env: vec![],
            stdin: None,
            inputs: vec![],
            limits: Limits {
                fuel: 1_000,
                memory_bytes: 1 << 16,
                wall_time_ms: 1_000,
                output_bytes: 1 << 10,
            },
            requirements: Requirements::default(),
            verification: VerificationPolicy::default(),
            price_cap: 10,
            deadline: 100,
        };
        let ticket = Ticket {
            job_id: B256::repeat_byte(1),
            spec_hash: spec.hash(),
            channel_id: B256::repeat_byte(2),
            cumulative_before: U256::from(5),
            max_amount: U256::from(10),
            deadline: 200,
            check_commit: B256::repeat_byte(3),
            per_gfuel: 0,
            per_gpu_second: 0,
        };
        let alone = JobRequest {
            spec,
            ticket,
            ticket_signature: [9u8; 65],
            paying: None,
        };
        assert_eq!(JobRequest::from_bytes(&alone.to_bytes()).unwrap(), alone);
        let carrying = JobRequest {
            paying: Some(Payment {
                job_id: B256::repeat_byte(4),
                secret: B256::repeat_byte(5),
                voucher: Some((
                    Voucher {
                        channel_id: B256::repeat_byte(2),
                        cumulative_amount: U256::from(5),
                    },
                    [6u8; 65],
                )),
                note: String::new(),
            }),
            ..alone.clone()
        };
        let bytes = carrying.to_bytes();
        assert_eq!(JobRequest::from_bytes(&bytes).unwrap(), carrying);
        // The carried payment is the pay protocol's body, behind the option byte.
        let pay = carrying.paying.as_ref().unwrap().to_bytes();
        assert!(bytes.ends_with(&pay[2..]));
        assert_eq!(bytes[bytes.len() - pay.len() + 1], 1);
        // A request cut inside its payment, or with an option byte that is neither 0 nor 1,
        // is refused.
        assert!(JobRequest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = alone.to_bytes();
        *bad.last_mut().unwrap() = 2;
        assert!(matches!(
            JobRequest::from_bytes(&bad),
            Err(DecodeError::BadTag { .. })
        ));
    }

    #[test]
    fn a_result_in_a_job_reply_round_trips_and_is_bounded() {
        let result = JobResult {
            job_id: B256::repeat_byte(7),
            outcome: Outcome::Exited { code: -3 },
            stdout: b"hello".to_vec(),
            files: [("out.bin".to_string(), vec![1, 2, 3])].into(),
            commitment: ResultCommitment {
                job_id: B256::repeat_byte(7),
                spec_hash: B256::repeat_byte(8),
                channel_id: B256::repeat_byte(4),
                output_hash: B256::repeat_byte(9),
                fuel_used: 1234,
                gpu_millis: 0,
                amount: sietch_market::U256::from(55),
            },
            signature: [6u8; 65],
        };
        // Two files of one name: not a result (its files are a map).
        let mut twice = result.to_bytes();
        let file = [
            &7u32.to_be_bytes()[..],
            b"out.bin",
            &3u32.to_be_bytes()[..],
            &[1, 2, 3],
        ]
        .concat();
        let at = twice
            .windows(file.len())
            .position(|w| w == file.as_slice())
            .unwrap();
        twice.splice(at..at, file.iter().copied());
        let count = at - 4;
        twice[count..at].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(
            JobResult::from_bytes(&twice),
            Err(DecodeError::Invalid { .. })
        ));
        // On the result protocol: a result as before (tag 3), or a failure (tag 11).
        let done = ResultMessage::Done(Box::new(result.clone()));
        assert_eq!(done.to_bytes(), result.to_bytes());
        assert_eq!(ResultMessage::from_bytes(&result.to_bytes()).unwrap(), done);
        let failed = ResultMessage::Failed(JobFailure {
            job_id: B256::repeat_byte(7),
            reason: RefuseReason::MissingBlob,
            message: "x".repeat(5_000),
        });
        let f = failed.to_bytes();
        assert_eq!(f[1], 11);
        assert_eq!(
            &f[2..34],
            B256::repeat_byte(7).as_slice(),
            "the job id first"
        );
        let ResultMessage::Failed(back) = ResultMessage::from_bytes(&f).unwrap() else {
            panic!("a failure")
        };
        assert_eq!(back.message.len(), 1024, "the message is bounded");
        assert!(ResultMessage::from_bytes(&f[..f.len() - 1]).is_err());
        let m = JobReply::Done(Box::new(result.clone()));
        let bytes = m.to_bytes();
        assert_eq!(JobReply::from_bytes(&bytes).unwrap(), m);
        // The same body as on the result protocol, behind the reply's variant byte.
        assert_eq!(&bytes[3..], &result.to_bytes()[2..]);
        // A delivery to a verifier, and from it to the buyer: the same body again.
        use sietch_market::{Limits, Requirements, VerificationPolicy};
        let delivered = VerifyReply::Delivered(Box::new(result.clone()));
        let d = delivered.to_bytes();
        assert_eq!(VerifyReply::from_bytes(&d).unwrap(), delivered);
        assert_eq!(&d[3..], &result.to_bytes()[2..]);
        let spec = JobSpec {
            module: B256::repeat_byte(1),
            args: vec![],
            env: vec![],
            stdin: None,
            inputs: vec![],
            limits: Limits {
                fuel: 1,
                memory_bytes: 1,
                wall_time_ms: 1,
                output_bytes: 1,
            },
            requirements: Requirements::default(),
            verification: VerificationPolicy::default(),
            price_cap: 1,
            deadline: 1,
        };
        let mut ask = VerifyRequest {
            ticket_id: B256::repeat_byte(2),
            job_id: B256::repeat_byte(7),
            spec,
            delivery: None,
        };
        assert_eq!(VerifyRequest::from_bytes(&ask.to_bytes()).unwrap(), ask);
        ask.delivery = Some(Box::new(result.clone()));
        let with = ask.to_bytes();
        assert_eq!(VerifyRequest::from_bytes(&with).unwrap(), ask);
        assert!(with.ends_with(&result.to_bytes()[2..]));
        assert!(VerifyRequest::from_bytes(&with[..with.len() - 1]).is_err());
        let mut bad = d.clone();
        bad[2] = 3;
        assert!(matches!(
            VerifyReply::from_bytes(&bad),
            Err(DecodeError::BadTag { .. })
        ));
        let mut cut = bytes.clone();
        cut.truncate(cut.len() - 1);
        assert!(JobReply::from_bytes(&cut).is_err());
        let oversized = vec![0u8; JobReply::MAX + 1];
        assert!(matches!(
            JobReply::from_bytes(&oversized),
            Err(DecodeError::Oversized { .. })
        ));
    }

    #[test]
    fn refusal_text_is_bounded() {
        let m = JobReply::Refused {
            reason: RefuseReason::Busy,
            message: "é".repeat(4000),
        };
        let back = JobReply::from_bytes(&m.to_bytes()).unwrap();
        let JobReply::Refused { message, .. } = back else {
            panic!("not a refusal")
        };
        assert!(message.len() <= MAX_TEXT);
    }
}
