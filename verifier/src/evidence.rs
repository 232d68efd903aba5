//! Evidence against a provider found wrong: the signed commitments of a check, bundled.
//!
//! What the node does with it:
//!
//! - **withhold payment**: no voucher for the job ([`crate::Check::pays`] is false);
//! - **dispute on chain**: when the provider posts the ticket (`claimTicket`, seen as a
//!   `TicketClaimed` event with [`Evidence::ticket_id`]), the buyer calls
//!   [`Evidence::open_dispute`] within the challenge window. The drawn verifiers run the job
//!   themselves and sign a commitment for the disputed ticket (the node's verifier role,
//!   [`crate::verdict_commitment`]): a commitment names its ticket's channel, so the re-runs
//!   bundled here, each signed for the re-run's own channel, do not count on chain (the escrow
//!   refuses them as `MismatchedResult`). [`Evidence::claim_ticket`] gives the `claimTicket`
//!   arguments (only the ticket's provider may send them; the tests play the provider);
//! - **show it**: [`Evidence::encode`] for the store, `Display` and the fields for the explorer.
//!
//! Who signs: a provider's account (its offer's `evm_address`) signs its commitments itself,
//! or through the *operator* it named in the escrow (a cold owner's hot key, `Operators.sol`),
//! as the escrow accepts in `claimTicket` and `submitVerdict`. The verifier asks a
//! [`Signers`] which signer speaks for which account; each [`SignedCommitment`] names both.

use alloy::primitives::Bytes;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use async_trait::async_trait;
use sietch_contracts::SietchEscrow::{self, SietchEscrowInstance};
use sietch_contracts::send;
use sietch_market::codec::{Canonical, Reader, Writer};
use sietch_market::eip712::{Domain, TypedData, recover};
use sietch_market::{
    Address, B256, DecodeError, Eip712Error, InvalidResult, PublicKey, ResultCommitment, Ticket,
    Voucher, ticket_id,
};

use crate::error::EvidenceError;

/// Most votes one bundle holds (the first phase's re-runs plus the escalation's).
pub const MAX_VOTES: usize = 64;
/// Largest encoded bundle accepted.
pub const MAX_EVIDENCE_BYTES: usize = 32 * 1024;
/// First bytes of an encoded bundle: the format and its version (2: each commitment names
/// its account as well as its signer).
pub const EVIDENCE_MAGIC: &[u8; 16] = b"sietch-evidence2";
/// The first version's magic (no accounts: each signer was its own account), still read.
pub const EVIDENCE_MAGIC_V1: &[u8; 16] = b"sietch-evidence1";

/// Who may sign result commitments for an account: the account itself, or the operator it
/// named in the escrow (`operatorOf`) while it keeps it named. The node answers from the
/// escrow (a bounded cache, refreshed; a revoked operator speaks for nobody); the default,
/// [`AccountOnly`], trusts no operator.
#[async_trait]
pub trait Signers: Send + Sync + std::fmt::Debug {
    /// Whether `signer` may sign for `account` now. `signer == account` always may; a
    /// signer that cannot be confirmed (the chain unreadable) may not.
    async fn signs_for(&self, signer: Address, account: Address) -> bool;
}

/// Each account signs for itself only: no operators.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountOnly;

#[async_trait]
impl Signers for AccountOnly {
    async fn signs_for(&self, signer: Address, account: Address) -> bool {
        signer == account
    }
}

/// The address that signed `commitment` in `domain`, if the signature is well formed.
pub fn commitment_signer(
    domain: &Domain,
    commitment: &ResultCommitment,
    signature: &[u8; 65],
) -> Option<Address> {
    recover(&commitment.digest(domain), signature).ok()
}

/// The key to hold a commitment for `account` to again, after holding it to `account` itself
/// failed with `refused`: the key that signed it, when that is someone else and `signers` says
/// it speaks for `account` (its operator). `None`: the refusal stands. An account's own
/// signature costs nothing more; only another signer is looked up.
pub async fn operator_signer(
    signers: &dyn Signers,
    refused: &InvalidResult,
    account: Address,
) -> Option<Address> {
    let InvalidResult::Signature(Eip712Error::WrongSigner {
        recovered,
        expected,
        ..
    }) = refused
    else {
        return None;
    };
    if *expected != account || !signers.signs_for(*recovered, account).await {
        return None;
    }
    Some(*recovered)
}

/// A result commitment with its EIP-712 signature, the key that signed it and the account it
/// speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedCommitment {
    /// The EVM key that signed: the account, or the operator it named.
    pub signer: Address,
    /// The account (the provider's offer's `evm_address`: whose stake answers for it).
    pub account: Address,
    /// The commitment.
    pub commitment: ResultCommitment,
    /// 65 bytes `r ‖ s ‖ v`.
    pub signature: [u8; 65],
}

impl SignedCommitment {
    /// Checks the signature against [`SignedCommitment::signer`]. That an operator speaks for
    /// its account was checked when the bundle was made (a [`Signers`]), and the escrow checks
    /// it again when the ticket is claimed: it is chain state, not in the bundle.
    fn verify(&self, domain: &Domain) -> Result<(), EvidenceError> {
        self.commitment
            .verify(domain, &self.signature, self.signer)
            .map_err(|source| EvidenceError::Signature {
                signer: self.signer,
                source,
            })
    }

    fn encode(&self, w: &mut Writer) {
        w.address(&self.signer);
        w.address(&self.account);
        self.commitment.encode_body(w);
        w.fixed(&self.signature);
    }

    fn decode(r: &mut Reader<'_>, version: u8) -> Result<Self, DecodeError> {
        let signer = r.address()?;
        let account = if version >= 2 { r.address()? } else { signer };
        Ok(Self {
            signer,
            account,
            commitment: ResultCommitment::decode_body(r)?,
            signature: signature65(r)?,
        })
    }
}

fn signature65(r: &mut Reader<'_>) -> Result<[u8; 65], DecodeError> {
    r.take(65)?
        .try_into()
        .map_err(|_| DecodeError::UnexpectedEnd)
}

/// A re-run provider's result and whether it agreed with the provider's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The re-run provider's key.
    pub provider: PublicKey,
    /// Its signed commitment.
    pub result: SignedCommitment,
    /// Whether it agreed with the provider under the job's comparison.
    pub agrees: bool,
}

/// The bundle of a check that found its provider wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Evidence {
    /// The EIP-712 domain every signature is in.
    pub domain: Domain,
    /// Whether the job was compared by its outputs (tolerance or rescore mode), else exact.
    pub tolerance: bool,
    /// The buyer's ticket.
    pub ticket: Ticket,
    /// The buyer's signature on it, if the node put it in.
    pub ticket_signature: Option<[u8; 65]>,
    /// The provider's key.
    pub provider: PublicKey,
    /// The provider's signed result.
    pub original: SignedCommitment,
    /// Every re-run's, in the order they were made.
    pub votes: Vec<Vote>,
}

/// The arguments of the escrow's `claimTicket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimTicket {
    /// The ticket.
    pub ticket: SietchEscrow::Ticket,
    /// The buyer's signature.
    pub buyer_signature: Bytes,
    /// The provider's result.
    pub result: SietchEscrow::ResultCommitment,
    /// The provider's signature.
    pub provider_signature: Bytes,
}

/// The escrow's ABI form of a ticket: the one conversion, for the node's chain calls too.
pub fn escrow_ticket(t: &Ticket) -> SietchEscrow::Ticket {
    SietchEscrow::Ticket {
        jobId: t.job_id,
        specHash: t.spec_hash,
        channelId: t.channel_id,
        cumulativeBefore: t.cumulative_before,
        maxAmount: t.max_amount,
        deadline: t.deadline,
        checkCommit: t.check_commit,
        pricePerGFuel: t.per_gfuel,
        pricePerGpuSecond: t.per_gpu_second,
    }
}

/// The escrow's ABI form of a result commitment.
pub fn escrow_result(c: &ResultCommitment) -> SietchEscrow::ResultCommitment {
    SietchEscrow::ResultCommitment {
        jobId: c.job_id,
        specHash: c.spec_hash,
        channelId: c.channel_id,
        outputHash: c.output_hash,
        fuelUsed: c.fuel_used,
        gpuMillis: c.gpu_millis,
        amount: c.amount,
    }
}

/// The escrow's ABI form of a voucher.
pub fn escrow_voucher(v: &Voucher) -> SietchEscrow::Voucher {
    SietchEscrow::Voucher {
        channelId: v.channel_id,
        cumulativeAmount: v.cumulative_amount,
    }
}

impl Evidence {
    /// Re-checks the bundle on its own: every signature (by its signer), that every
    /// commitment is for the ticket's job and spec, that the votes come from distinct
    /// accounts and signers other than the provider's, that in exact mode each vote's
    /// `agrees` is what the hashes and fuel say, and that more than half of the votes differ
    /// from the provider. (Whether a signer other than its account was that account's
    /// operator is chain state: checked when the bundle was made, and by the escrow.)
    pub fn verify(&self) -> Result<(), EvidenceError> {
        let n = self.votes.len();
        if n > MAX_VOTES {
            return Err(EvidenceError::Inconsistent("too many votes"));
        }
        let job = (self.ticket.job_id, self.ticket.spec_hash);
        let of = |c: &ResultCommitment| (c.job_id, c.spec_hash);
        if of(&self.original.commitment) != job {
            return Err(EvidenceError::Inconsistent(
                "the provider's result is for another job or spec than the ticket",
            ));
        }
        if self.original.commitment.channel_id != self.ticket.channel_id {
            return Err(EvidenceError::Inconsistent(
                "the provider's result is for another channel than the ticket",
            ));
        }
        self.original.verify(&self.domain)?;
        let o = &self.original;
        let mut seen = vec![o.signer, o.account];
        for v in &self.votes {
            let c = &v.result.commitment;
            // Compared by outputs, a re-run may run a spec derived from the job's (a rescoring
            // job, crate::rescore), never another job.
            if of(c) != job && !(self.tolerance && c.job_id == job.0) {
                return Err(EvidenceError::Inconsistent(
                    "a re-run is for another job or spec",
                ));
            }
            let (signer, account) = (v.result.signer, v.result.account);
            if seen.contains(&signer) || seen.contains(&account) {
                return Err(EvidenceError::Inconsistent(
                    "two results are signed by the same account",
                ));
            }
            seen.extend([signer, account]);
            let o = &self.original.commitment;
            let exact = c.output_hash == o.output_hash && c.fuel_used == o.fuel_used;
            if !self.tolerance && v.agrees != exact {
                return Err(EvidenceError::Inconsistent(
                    "a vote's agreement is not what its hash and fuel say",
                ));
            }
            v.result.verify(&self.domain)?;
        }
        if 2 * self.differing() <= n {
            return Err(EvidenceError::Inconsistent(
                "no majority of the re-runs differs from the provider",
            ));
        }
        Ok(())
    }

    /// Votes that differ from the provider.
    pub fn differing(&self) -> usize {
        self.votes.iter().filter(|v| !v.agrees).count()
    }

    /// The escrow's id of the job's ticket.
    pub fn ticket_id(&self) -> B256 {
        ticket_id(&self.ticket.channel_id, &self.ticket.job_id)
    }

    /// The `claimTicket` arguments (needs the buyer's ticket signature).
    pub fn claim_ticket(&self) -> Result<ClaimTicket, EvidenceError> {
        let sig = self
            .ticket_signature
            .ok_or(EvidenceError::NoTicketSignature)?;
        Ok(ClaimTicket {
            ticket: escrow_ticket(&self.ticket),
            buyer_signature: Bytes::copy_from_slice(&sig),
            result: escrow_result(&self.original.commitment),
            provider_signature: Bytes::copy_from_slice(&self.original.signature),
        })
    }

    /// Disputes the claimed ticket, from the `buyer`'s account (the alloy provider behind
    /// `escrow` must sign for it). The escrow takes the dispute bond from the buyer.
    pub async fn open_dispute<P: Provider>(
        &self,
        escrow: &SietchEscrowInstance<P>,
        buyer: Address,
    ) -> Result<TransactionReceipt, EvidenceError> {
        Ok(send(escrow.dispute(self.ticket_id()).from(buyer)).await?)
    }

    /// The bundle's bytes: [`EVIDENCE_MAGIC`], then the fields in the market's canonical
    /// encoding (`sietch_market::codec`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(EVIDENCE_MAGIC);
        w.u64(self.domain.chain_id);
        w.address(&self.domain.verifying_contract);
        w.bool(self.tolerance);
        self.ticket.encode_body(&mut w);
        w.option(self.ticket_signature.as_ref(), |w, s| w.fixed(s));
        w.fixed(&self.provider.0);
        self.original.encode(&mut w);
        w.count(self.votes.len());
        for v in &self.votes {
            w.fixed(&v.provider.0);
            v.result.encode(&mut w);
            w.bool(v.agrees);
        }
        w.into_bytes()
    }

    /// Decodes [`Evidence::encode`]'s bytes (signatures are not checked: call
    /// [`Evidence::verify`]). Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: MAX_EVIDENCE_BYTES,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let magic = r.take(EVIDENCE_MAGIC.len())?;
        let version = if magic == EVIDENCE_MAGIC {
            2
        } else if magic == EVIDENCE_MAGIC_V1 {
            1
        } else {
            return Err(DecodeError::Invalid {
                what: "evidence",
                why: "not a sietch evidence bundle of version 1 or 2",
            }
            .into());
        };
        let domain = Domain::new(r.u64()?, r.address()?);
        let tolerance = r.bool()?;
        let ticket = Ticket::decode_body(&mut r)?;
        let ticket_signature = r.option("ticket signature", signature65)?;
        let provider = PublicKey(r.bytes32()?);
        let original = SignedCommitment::decode(&mut r, version)?;
        let votes = r.list("votes", MAX_VOTES, |r| {
            Ok(Vote {
                provider: PublicKey(r.bytes32()?),
                result: SignedCommitment::decode(r, version)?,
                agrees: r.bool()?,
            })
        })?;
        r.finish()?;
        Ok(Self {
            domain,
            tolerance,
            ticket,
            ticket_signature,
            provider,
            original,
            votes,
        })
    }
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "provider {} ({}{}) found wrong on job {}: {} of {} re-runs differ in {} mode \
             (output {} against",
            self.provider.short(),
            self.original.account,
            if self.original.signer == self.original.account {
                String::new()
            } else {
                format!(", signed by its operator {}", self.original.signer)
            },
            self.ticket.job_id,
            self.differing(),
            self.votes.len(),
            if self.tolerance { "tolerance" } else { "exact" },
            self.original.commitment.output_hash,
        )?;
        for v in self.votes.iter().filter(|v| !v.agrees) {
            write!(
                f,
                " {} by {}",
                v.result.commitment.output_hash, v.result.account
            )?;
        }
        write!(f, "); escrow ticket {}", self.ticket_id())
    }
}
