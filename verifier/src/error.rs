//! Typed errors of the verifier, one enum per operation.

use sietch_contracts::EscrowError;
use sietch_market::{Address, DecodeError, Eip712Error, InvalidResult, PublicKey};

/// Why a revealed secret cannot decide a spot check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevealError {
    /// `keccak256(secret)` is not the ticket's `checkCommit`: the buyer revealed another
    /// secret than the one it committed to (a bug of the buyer, or a tampered store).
    #[error("the revealed secret does not match the ticket's check commit")]
    WrongSecret,
}

/// Why a job worth `value` may not be sent to a provider (`docs/protocol.md` §4.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueCapError {
    /// The job is worth more than `stake · q / (1 − q)`: cheating on it would pay.
    #[error(
        "a job worth {value} is over the cap of {cap} for a stake of {stake} at a {ppm} ppm \
         sampling rate; pick a provider with more stake, raise the sampling rate or split the job"
    )]
    OverCap {
        /// The job's value (its price cap).
        value: u128,
        /// `stake · q / (1 − q)`.
        cap: u128,
        /// The provider's stake.
        stake: u128,
        /// The sampling rate, in parts per million.
        ppm: u32,
    },
}

/// Why a result (the original's or a re-run's) is not acceptable as what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// It fails the market's one check of a signed result (job, spec, signature, outputs).
    #[error(transparent)]
    Invalid(#[from] InvalidResult),
    /// Tolerance mode needs the outputs, and none came.
    #[error("tolerance comparison needs the outputs, and the result carries none")]
    MissingOutputs,
    /// The outputs are over the job's output limit.
    #[error("the outputs hold {size} bytes, over the job's limit of {limit}")]
    OutputsTooLarge {
        /// Bytes received.
        size: u64,
        /// The limit the spec sets.
        limit: u64,
    },
}

/// Why a spot check could not be made. A check that was made always ends in a
/// [`crate::Decision`], however the re-runs went; these are problems with the job's own
/// records, which the node should fix rather than pay or accuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The secret does not open the ticket's commit.
    #[error(transparent)]
    Reveal(#[from] RevealError),
    /// The ticket is for another job id or spec than the result and spec given.
    #[error("the ticket does not belong to this job: {0}")]
    Ticket(&'static str),
    /// The provider's own result is not what it signed, or is not signed by it. It cannot be
    /// checked (nor paid): there is no commitment to hold it to.
    #[error("the provider's result is not acceptable: {0}")]
    Original(ResultError),
}

/// Why evidence cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The bytes do not decode as evidence.
    #[error("malformed evidence: {0}")]
    Decode(#[from] DecodeError),
    /// A signature in the bundle does not verify for its claimed signer.
    #[error("the commitment of {signer} is not signed by it: {source}")]
    Signature {
        /// Who should have signed.
        signer: Address,
        /// Why the signature is refused.
        source: Eip712Error,
    },
    /// The bundle does not hold together (other job, other spec, no majority against...).
    #[error("inconsistent evidence: {0}")]
    Inconsistent(&'static str),
    /// The bundle has no buyer signature on the ticket, which `claimTicket` needs.
    #[error("the evidence carries no buyer signature on the ticket")]
    NoTicketSignature,
    /// The chain refused a call.
    #[error("the escrow call failed: {0}")]
    Chain(#[from] EscrowError),
}

/// A re-run provider could not deliver. The verifier moves on to another provider; the
/// node implementing [`crate::Executor`] says what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RerunError {
    /// The provider refused the job (busy, price, size...).
    #[error("the re-run provider refused: {0}")]
    Refused(String),
    /// It could not be reached.
    #[error("the re-run provider could not be reached: {0}")]
    Unreachable(String),
    /// It did not answer in time.
    #[error("the re-run provider did not answer in time")]
    TimedOut,
    /// Anything else on the executor's side (channel funding, blob transfer...).
    #[error("the re-run failed: {0}")]
    Failed(String),
}

/// What went wrong with one re-run provider, as recorded in a [`crate::Check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultKind {
    /// It did not deliver.
    #[error(transparent)]
    Rerun(#[from] RerunError),
    /// It delivered something that is not a valid result for the job.
    #[error(transparent)]
    BadResult(#[from] ResultError),
}

/// A re-run provider that did not deliver a valid result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Its key.
    pub provider: PublicKey,
    /// Its EVM account as its offer states it.
    pub owner: Address,
    /// What went wrong.
    pub kind: FaultKind,
}
