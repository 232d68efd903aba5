//! Holding a result to its commitment: before anything else is done with it, a result must
//! pass the market's one check of a signed result (for this job, spec and ticket's channel,
//! signed by the offer's account or by the operator that account named in the escrow, its
//! files named by the one rule and hashing to what it commits to: [`sietch_market::result`]),
//! and charge no more than the ticket allows and the offer's prices make of its usage. Each
//! refusal is a [`ResultRefused`].
//!
//! Who may sign: a signature by another key than the offer's account is looked up: the escrow
//! says whether that key is the account's operator now ([`Chain::may_sign_for`], cached and
//! refreshed: a revoked operator's results are refused once the revocation is read). Without
//! a chain, only the account itself signs.

use sietch_market::eip712::Domain;
use sietch_market::{
    Address, Expected, InvalidResult, JobSpec, Offer, Ticket, U256, check_commitment, check_outputs,
};
use sietch_verifier::evidence::operator_signer;

use crate::chain::Chain;
use crate::jobs;
use crate::net::JobResult;

/// Why a result does not hold to its commitment. The provider is not paid for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultRefused {
    /// It fails the market's check of a signed result: another job, spec or channel, a bad
    /// signature, an output name against the rule, outputs that do not hash to the
    /// commitment.
    #[error(transparent)]
    Invalid(#[from] InvalidResult),
    /// The charge is over the ticket's maximum.
    #[error("the result charges {amount} over the ticket's {max}")]
    OverMax {
        /// Charged.
        amount: U256,
        /// The ticket's maximum.
        max: U256,
    },
    /// More GPU time than the job's wall time on each GPU it asked for.
    #[error("the result bills {billed} GPU-ms; the job allows at most {allowed}")]
    TooMuchGpu {
        /// GPU milliseconds billed.
        billed: u64,
        /// The most the job allows.
        allowed: u64,
    },
    /// The charge is over the metered usage at the offer's prices.
    #[error("the result charges {amount} for usage that costs {metered} at the offer's prices")]
    OverMetered {
        /// Charged.
        amount: U256,
        /// What the usage costs.
        metered: U256,
    },
}

/// Holds `result`, delivered for `ticket` by `offer`'s provider, to its commitment, signed by
/// the offer's account or, as `chain` says now, by the operator that account named (only a
/// signature by another key than the account's is looked up).
pub(super) async fn hold_to_commitment(
    domain: &Domain,
    spec: &JobSpec,
    ticket: &Ticket,
    result: &JobResult,
    offer: &Offer,
    chain: Option<&Chain>,
) -> Result<(), ResultRefused> {
    let account = offer.evm_address;
    let held = hold_signed_by(domain, spec, ticket, result, offer, account);
    if let (Err(ResultRefused::Invalid(refused)), Some(c)) = (&held, chain)
        && let Some(operator) = operator_signer(c, refused, account).await
    {
        return hold_signed_by(domain, spec, ticket, result, offer, operator);
    }
    held
}

/// [`hold_to_commitment`] with the signer decided: `result` must be signed by `signer`.
fn hold_signed_by(
    domain: &Domain,
    spec: &JobSpec,
    ticket: &Ticket,
    result: &JobResult,
    offer: &Offer,
    signer: Address,
) -> Result<(), ResultRefused> {
    let c = &result.commitment;
    let t = ticket;
    if result.job_id != t.job_id {
        return Err(InvalidResult::WrongJob.into());
    }
    let expected = Expected {
        job_id: t.job_id,
        spec_hash: t.spec_hash,
        channel_id: Some(t.channel_id),
        signer,
    };
    check_commitment(domain, &expected, c, &result.signature)?;
    if c.amount > t.max_amount {
        return Err(ResultRefused::OverMax {
            amount: c.amount,
            max: t.max_amount,
        });
    }
    // GPU time is the provider's own measure, but no more than the job's wall time on each
    // GPU it asked for; the charge is no more than the usage at the offer's prices.
    let allowed = jobs::max_gpu_millis(spec);
    if c.gpu_millis > allowed {
        return Err(ResultRefused::TooMuchGpu {
            billed: c.gpu_millis,
            allowed,
        });
    }
    let metered = jobs::charge(c.fuel_used, c.gpu_millis, &offer.prices, t.max_amount);
    if c.amount > metered {
        return Err(ResultRefused::OverMetered {
            amount: c.amount,
            metered,
        });
    }
    check_outputs(
        result.outcome,
        &result.stdout,
        &result.files,
        &c.output_hash,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
