//! The values the store keeps, and their versioned binary encoding.
//!
//! Protocol messages (offers, specs, tickets, result commitments, vouchers) are stored in the
//! market crate's canonical encoding, nested as length-prefixed byte strings, so their bytes
//! are the very bytes that were signed. What has no protocol type (a job's local state, a
//! reputation row, the node's keys) uses the same primitives ([`Writer`], [`Reader`]) behind
//! one leading record-version byte, so a later schema can tell old rows from new ones. No
//! serde: the bytes are pinned by this file alone.

use ed25519_dalek::SigningKey;
use sietch_market::codec::{Reader, Writer};
use sietch_market::{
    Address, B256, Canonical, DecodeError, Offer, ResultCommitment, Signed, Ticket, Voucher,
};

/// The version byte in front of every record this module encodes.
const RECORD_VERSION: u8 = 1;

/// Longest note (a refusal or failure reason) kept with a job.
pub const MAX_NOTE: usize = 1024;

/// A value with this module's versioned encoding.
pub(crate) trait Record: Sized {
    /// What the value is, for errors.
    const WHAT: &'static str;
    /// The largest encoding accepted.
    const MAX_SIZE: usize;
    fn encode_body(&self, w: &mut Writer);
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_VERSION);
        self.encode_body(&mut w);
        w.into_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_SIZE {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: Self::MAX_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        match r.u8()? {
            RECORD_VERSION => {}
            tag => {
                return Err(DecodeError::BadTag {
                    what: "record version",
                    tag,
                });
            }
        }
        let v = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Which end of a job this node is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This node submitted the job and pays for it.
    Buyer,
    /// This node runs the job and is paid for it.
    Provider,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Buyer => "buyer",
            Self::Provider => "provider",
        })
    }
}

/// Where a job is in its life (`docs/protocol.md` §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// The request was sent (buyer) or received (provider).
    Requested,
    /// The provider accepted it.
    Accepted,
    /// The sandbox is running it.
    Running,
    /// The result commitment was made.
    Done,
    /// A spot check re-ran it and agreed.
    Checked,
    /// A voucher covering it was signed (buyer) or received (provider).
    Paid,
    /// The provider refused the request.
    Refused,
    /// It failed: a trap, a timeout, a failed check, a lost peer.
    Failed,
}

impl JobState {
    /// Every state, in order of their tags.
    pub const ALL: [Self; 8] = [
        Self::Requested,
        Self::Accepted,
        Self::Running,
        Self::Done,
        Self::Checked,
        Self::Paid,
        Self::Refused,
        Self::Failed,
    ];

    fn tag(self) -> u8 {
        match self {
            Self::Requested => 0,
            Self::Accepted => 1,
            Self::Running => 2,
            Self::Done => 3,
            Self::Checked => 4,
            Self::Paid => 5,
            Self::Refused => 6,
            Self::Failed => 7,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.tag() == tag)
    }

    /// Whether the job's life is over: nothing moves it again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Paid | Self::Refused | Self::Failed)
    }

    /// Whether a stored job in this state may be moved to `next`. States only move forward
    /// (requested, accepted, running, done, checked, paid, skipping any), a job may fail from
    /// any state that is not final, only a request may be refused, and a final state stays.
    /// Staying in the same state is allowed, so that a step replayed after a restart is a
    /// no-op rather than an error.
    pub fn can_become(self, next: Self) -> bool {
        if self == next {
            return true;
        }
        if self.is_final() {
            return false;
        }
        match next {
            Self::Failed => true,
            Self::Refused => self == Self::Requested,
            _ => next.tag() > self.tag(),
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Requested => "requested",
            Self::Accepted => "accepted",
            Self::Running => "running",
            Self::Done => "done",
            Self::Checked => "checked",
            Self::Paid => "paid",
            Self::Refused => "refused",
            Self::Failed => "failed",
        })
    }
}

/// A settlement message with the 65-byte EIP-712 signature the contract checks
/// (`sietch_market::TypedData::sign`). The store keeps signatures because they are what
/// a claim or a dispute posts on chain; it does not check them (callers verify on receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvmSigned<T> {
    /// The message.
    pub message: T,
    /// Its EIP-712 signature (r, s, v).
    pub signature: [u8; 65],
}

impl<T> EvmSigned<T> {
    /// Pairs a message with its signature.
    pub fn new(message: T, signature: [u8; 65]) -> Self {
        Self { message, signature }
    }
}

fn write_evm_signed<T: Canonical>(w: &mut Writer, v: &EvmSigned<T>) {
    w.bytes(&v.message.encode());
    w.fixed(&v.signature);
}

fn read_evm_signed<T: Canonical>(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<EvmSigned<T>, DecodeError> {
    let message = T::decode(r.bytes(what, T::MAX_SIZE)?)?;
    let mut signature = [0u8; 65];
    signature.copy_from_slice(r.take(65)?);
    Ok(EvmSigned { message, signature })
}

impl<T: Canonical> Record for EvmSigned<T> {
    const WHAT: &'static str = "signed settlement message";
    const MAX_SIZE: usize = 1 + 4 + T::MAX_SIZE + 65;

    fn encode_body(&self, w: &mut Writer) {
        write_evm_signed(w, self);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_evm_signed(r, Self::WHAT)
    }
}

/// One job as this node sees it. The spec itself is stored once per spec hash (see
/// [`super::Store::job_spec`]); the record is small, so state changes rewrite little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The job id (see [`sietch_market::job_id`]).
    pub job_id: B256,
    /// blake3 of the canonical spec.
    pub spec_hash: B256,
    /// The other party's EVM address: the provider's on the buyer side, the buyer's on the
    /// provider side. Reputation is filed under it.
    pub counterparty: Address,
    /// Where the job is.
    pub state: JobState,
    /// The buyer's signed ticket, once there is one.
    pub ticket: Option<EvmSigned<Ticket>>,
    /// The provider's signed result commitment, once there is one.
    pub result: Option<EvmSigned<ResultCommitment>>,
    /// Buyer side only: the spot-check secret behind the ticket's `check_commit`. Kept so a
    /// buyer that restarts can still reveal it.
    pub check_secret: Option<B256>,
    /// Why the job was refused or failed, for people (at most [`MAX_NOTE`] bytes).
    pub note: String,
    /// Unix seconds when it was first stored.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

impl JobRecord {
    /// A new job in state [`JobState::Requested`] with no ticket, result or secret yet.
    pub fn new(job_id: B256, spec_hash: B256, counterparty: Address, now: u64) -> Self {
        Self {
            job_id,
            spec_hash,
            counterparty,
            state: JobState::Requested,
            ticket: None,
            result: None,
            check_secret: None,
            note: String::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl Record for JobRecord {
    const WHAT: &'static str = "job";
    const MAX_SIZE: usize = 1
        + 32
        + 32
        + 20
        + 1
        + (1 + <EvmSigned<Ticket> as Record>::MAX_SIZE)
        + (1 + <EvmSigned<ResultCommitment> as Record>::MAX_SIZE)
        + (1 + 32)
        + (4 + MAX_NOTE)
        + 16;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.b256(&self.spec_hash);
        w.address(&self.counterparty);
        w.u8(self.state.tag());
        w.option(self.ticket.as_ref(), write_evm_signed);
        w.option(self.result.as_ref(), write_evm_signed);
        w.option(self.check_secret.as_ref(), |w, s| w.b256(s));
        w.str(&self.note);
        w.u64(self.created_at);
        w.u64(self.updated_at);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            spec_hash: r.b256()?,
            counterparty: r.address()?,
            state: {
                let tag = r.u8()?;
                JobState::from_tag(tag).ok_or(DecodeError::BadTag {
                    what: "job state",
                    tag,
                })?
            },
            ticket: r.option("ticket", |r| read_evm_signed(r, "ticket"))?,
            result: r.option("result", |r| read_evm_signed(r, "result"))?,
            check_secret: r.option("check secret", Reader::b256)?,
            note: r.string("note", MAX_NOTE)?,
            created_at: r.u64()?,
            updated_at: r.u64()?,
        })
    }
}

/// What this node has counted of one provider: the verifier's counters
/// ([`sietch_verifier::Reputation`], the one model of reputation, `docs/protocol.md` §4.3:
/// matching ranks by it), stored as they are.
pub use sietch_verifier::Reputation;

impl Record for Reputation {
    const WHAT: &'static str = "reputation";
    const MAX_SIZE: usize = 1 + 5 * 8;

    fn encode_body(&self, w: &mut Writer) {
        w.u64(self.settled_jobs);
        w.u64(self.checks_passed);
        w.u64(self.checks_failed);
        w.u64(self.slashes);
        w.u64(self.disputes);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            settled_jobs: r.u64()?,
            checks_passed: r.u64()?,
            checks_failed: r.u64()?,
            slashes: r.u64()?,
            disputes: r.u64()?,
        })
    }
}

/// The node's secret keys (`docs/protocol.md` §1.1): its ed25519 identity, which signs offers and
/// p2p messages and is its libp2p peer id, and the EVM account key that stakes, claims and
/// signs tickets, results and vouchers. `Debug` prints public parts only.
#[derive(Clone)]
pub struct NodeKeys {
    /// The ed25519 identity.
    pub ed25519: SigningKey,
    /// The EVM account's secret key (secp256k1), if this node has one; a buyer that signs
    /// with a wallet outside the node has none.
    pub evm: Option<B256>,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field(
                "ed25519",
                &hex::encode(self.ed25519.verifying_key().as_bytes()),
            )
            .field("evm", &self.evm.map(|_| "<secret>"))
            .finish()
    }
}

impl PartialEq for NodeKeys {
    fn eq(&self, other: &Self) -> bool {
        self.ed25519.to_bytes() == other.ed25519.to_bytes() && self.evm == other.evm
    }
}
impl Eq for NodeKeys {}

impl Record for NodeKeys {
    const WHAT: &'static str = "node keys";
    const MAX_SIZE: usize = 1 + 32 + 1 + 32;

    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.ed25519.to_bytes());
        w.option(self.evm.as_ref(), |w, k| w.b256(k));
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            ed25519: SigningKey::from_bytes(&r.bytes32()?),
            evm: r.option("evm key", Reader::b256)?,
        })
    }
}

/// The node's own offer for one of its keys: the latest signed offer, if not withdrawn, and
/// the last sequence number used, so a restarted node never reissues an old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnOffer {
    /// The last sequence number used (by an offer or a withdrawal).
    pub sequence: u64,
    /// The live offer; `None` after a withdrawal.
    pub offer: Option<Signed<Offer>>,
}

/// Largest encoded signed offer: the offer's bound plus its 64-byte signature.
const MAX_SIGNED_OFFER: usize = <Offer as Canonical>::MAX_SIZE + 64;

impl Record for OwnOffer {
    const WHAT: &'static str = "own offer";
    const MAX_SIZE: usize = 1 + 8 + 1 + 4 + MAX_SIGNED_OFFER;

    fn encode_body(&self, w: &mut Writer) {
        w.u64(self.sequence);
        w.option(self.offer.as_ref(), |w, o| w.bytes(&o.encode()));
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            sequence: r.u64()?,
            offer: r.option("own offer", |r| {
                Signed::<Offer>::decode(r.bytes("signed offer", MAX_SIGNED_OFFER)?)
            })?,
        })
    }
}

/// A ticket whose payment the buyer withheld (a result that broke its commitment, a
/// provider found wrong, a result that never came): disputed if its provider claims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DisputableTicket {
    /// The job.
    pub job_id: B256,
    /// The channel the ticket draws on.
    pub channel_id: B256,
    /// The result never arrived: disputed as undelivered, so the verifiers hand it over.
    pub undelivered: bool,
}

impl Record for DisputableTicket {
    const WHAT: &'static str = "disputable ticket";
    const MAX_SIZE: usize = 1 + 32 + 32 + 1;

    fn encode_body(&self, w: &mut Writer) {
        w.b256(&self.job_id);
        w.b256(&self.channel_id);
        w.u8(u8::from(self.undelivered));
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            job_id: r.b256()?,
            channel_id: r.b256()?,
            undelivered: match r.u8()? {
                0 => false,
                1 => true,
                tag => {
                    return Err(DecodeError::BadTag {
                        what: "undelivered",
                        tag,
                    });
                }
            },
        })
    }
}

/// What [`super::Store::put_voucher`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherUpdate {
    /// The voucher is now the channel's latest.
    Stored,
    /// A voucher with this cumulative amount or more was already stored; it stays.
    Kept(EvmSigned<Voucher>),
}

#[cfg(test)]
mod pinned;
