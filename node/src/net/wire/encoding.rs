//! Each message's encoding ([`WireMessage`] for every type of the protocols).

use sietch_market::codec::{Reader, Writer};
use sietch_market::error::DecodeError;
use sietch_market::{Canonical, Outcome, OutputFiles};

use super::*;

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
