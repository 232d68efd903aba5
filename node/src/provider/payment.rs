//! Payments: checking and recording a buyer's vouchers, and counting what the provider is
//! owed. [`check_voucher`] is the pure part of a payment's check.

use libp2p::PeerId;
use sietch_market::Eip712Error;
use sietch_market::eip712::{Domain, TypedData};
use sietch_market::{Address, B256, ResultCommitment, Ticket, U256, Voucher};

use super::{MAX_UNPAID, Provider, now};
use crate::events::NodeEvent;
use crate::net::{Payment, PaymentAck};
use crate::store::{EvmSigned, Side, StoreError, VoucherUpdate};
use crate::sync::lock;

/// Why a payment is refused. The buyer is told this error's text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PaymentRefusal {
    /// No such job on this node.
    #[error("no job {0} here")]
    NoJob(B256),
    /// The job could not be read.
    #[error("cannot read job {job}: {error}")]
    Unread { job: B256, error: StoreError },
    /// The job has not ended with a result.
    #[error("job {0} has no result yet")]
    NoResult(B256),
    /// The revealed secret is not the ticket's.
    #[error("the secret does not match the ticket's check commit")]
    WrongSecret,
    /// The voucher is for another channel.
    #[error("the voucher is for another channel than the ticket's")]
    OtherChannel,
    /// The voucher does not reach the end of the job's charge on the channel's line.
    #[error(
        "the voucher's cumulative amount {cumulative} does not pay the job (owed up to {owed})"
    )]
    Short { cumulative: U256, owed: U256 },
    /// The voucher is not signed by the job's buyer.
    #[error("the voucher's signature: {0}")]
    BadSignature(Eip712Error),
    /// The checked payment could not be written.
    #[error("cannot record the payment: {0}")]
    NotRecorded(StoreError),
}

/// Checks a voucher signed `sig` against the job it pays: the job's ticket, the result
/// commitment it was delivered with, and its buyer. A voucher pays the whole job: its
/// cumulative amount reaches the ticket's start plus the result's charge.
pub(crate) fn check_voucher(
    ticket: &Ticket,
    result: &ResultCommitment,
    voucher: &Voucher,
    sig: &[u8; 65],
    domain: &Domain,
    buyer: Address,
) -> Result<(), PaymentRefusal> {
    if voucher.channel_id != ticket.channel_id {
        return Err(PaymentRefusal::OtherChannel);
    }
    let owed = ticket.cumulative_before.saturating_add(result.amount);
    if voucher.cumulative_amount < owed {
        return Err(PaymentRefusal::Short {
            cumulative: voucher.cumulative_amount,
            owed,
        });
    }
    voucher
        .verify(domain, sig, buyer)
        .map_err(PaymentRefusal::BadSignature)
}

impl Provider {
    /// A buyer's payment (or refusal to pay) for a job this node ran, recorded durably
    /// before the answer.
    pub(crate) fn on_payment(&self, peer: PeerId, p: &Payment) -> PaymentAck {
        let refused = |r: PaymentRefusal| PaymentAck::Refused {
            message: r.to_string(),
        };
        let voucher = match self.check_payment(peer, p) {
            Ok(Some(v)) => v,
            Ok(None) => return PaymentAck::Accepted,
            Err(r) => return refused(r),
        };
        match self.record_payment(&p.job_id, &voucher, false) {
            Ok(()) => PaymentAck::Accepted,
            Err(e) => refused(PaymentRefusal::NotRecorded(e)),
        }
    }

    /// Records a checked payment in a commit of its own (durably), then [`Provider::paid`].
    /// `carried`: it came in a job request (see [`Provider::on_job`]).
    pub(super) fn record_payment(
        &self,
        job: &B256,
        voucher: &EvmSigned<Voucher>,
        carried: bool,
    ) -> Result<(), StoreError> {
        let (_, update) = self.store.settle_job(Side::Provider, job, voucher, now())?;
        self.paid(job, &voucher.message, update, carried);
        Ok(())
    }

    /// Checks a payment against its job: the secret, and [`check_voucher`]. A withheld
    /// payment (no voucher) is noted here, and `None` returned; a voucher that pays is
    /// returned, to be recorded.
    pub(super) fn check_payment(
        &self,
        peer: PeerId,
        p: &Payment,
    ) -> Result<Option<EvmSigned<Voucher>>, PaymentRefusal> {
        let job = match self.store.job(Side::Provider, &p.job_id) {
            Ok(Some(job)) => job,
            Ok(None) => return Err(PaymentRefusal::NoJob(p.job_id)),
            Err(error) => {
                return Err(PaymentRefusal::Unread {
                    job: p.job_id,
                    error,
                });
            }
        };
        let (Some(ticket), Some(result)) = (job.ticket, job.result) else {
            return Err(PaymentRefusal::NoResult(p.job_id));
        };
        if sietch_market::check_commit(&p.secret) != ticket.message.check_commit {
            return Err(PaymentRefusal::WrongSecret);
        }
        let Some((voucher, sig)) = &p.voucher else {
            tracing::info!(job = %p.job_id, %peer, "payment withheld: {}", p.note);
            self.note_unpaid(p.job_id, true);
            self.emit(NodeEvent::Withheld {
                job: p.job_id,
                reason: p.note.clone(),
            });
            self.settle_now.notify_one();
            return Ok(None);
        };
        check_voucher(
            &ticket.message,
            &result.message,
            voucher,
            sig,
            &self.domain,
            job.counterparty,
        )?;
        Ok(Some(EvmSigned::new(*voucher, *sig)))
    }

    /// After a payment is recorded: the job is no longer unpaid, its lane is free, and a
    /// newer voucher counts toward the claim threshold.
    pub(super) fn paid(&self, job: &B256, voucher: &Voucher, update: VoucherUpdate, carried: bool) {
        self.forget_unpaid(job);
        self.results.remove(job);
        self.free_lane(&voucher.channel_id, job);
        self.emit(NodeEvent::Paid {
            job: *job,
            channel: voucher.channel_id,
            cumulative: voucher.cumulative_amount,
            carried,
        });
        if matches!(update, VoucherUpdate::Stored) {
            self.note_owed(voucher);
        }
    }

    /// Counts what a new voucher adds to what is owed, and wakes the settlement loop when
    /// the total passes the claim threshold (not on every voucher: a claim round reads
    /// every channel on chain).
    fn note_owed(&self, voucher: &Voucher) {
        let paid = lock(&self.channel_views)
            .get(&voucher.channel_id)
            .map_or(U256::ZERO, |c| U256::from(c.paid));
        let due = voucher.cumulative_amount.saturating_sub(paid);
        let total = {
            let mut owed = lock(&self.owed);
            if owed.len() < MAX_UNPAID || owed.contains_key(&voucher.channel_id) {
                owed.insert(voucher.channel_id, due);
            }
            owed.values().fold(U256::ZERO, |a, b| a.saturating_add(*b))
        };
        if total >= U256::from(self.config.claim_threshold) {
            self.settle_now.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::provider::fixtures::{NOW, domain, spec};

    fn ticket() -> Ticket {
        Ticket {
            job_id: B256::repeat_byte(1),
            spec_hash: spec().hash(),
            channel_id: B256::repeat_byte(2),
            cumulative_before: U256::from(1_000),
            max_amount: U256::from(500),
            deadline: NOW + 3_600,
            check_commit: B256::repeat_byte(3),
            per_gfuel: 1_000,
            per_gpu_second: 0,
        }
    }

    fn result(amount: u64) -> ResultCommitment {
        ResultCommitment {
            job_id: B256::repeat_byte(1),
            spec_hash: spec().hash(),
            channel_id: B256::repeat_byte(2),
            output_hash: B256::repeat_byte(4),
            fuel_used: 1,
            gpu_millis: 0,
            amount: U256::from(amount),
        }
    }

    fn signed(key: &PrivateKeySigner, channel_id: B256, cumulative: u64) -> (Voucher, [u8; 65]) {
        let v = Voucher {
            channel_id,
            cumulative_amount: U256::from(cumulative),
        };
        let sig = v.sign(&domain(), key).unwrap();
        (v, sig)
    }

    #[test]
    fn a_voucher_pays_the_whole_job_on_the_tickets_channel() {
        let buyer = PrivateKeySigner::random();
        let (t, r) = (ticket(), result(300));
        let check = |v: &(Voucher, [u8; 65]), who: Address| {
            check_voucher(&t, &r, &v.0, &v.1, &domain(), who)
        };
        // The job's range starts at 1,000 and it charged 300.
        let exact = signed(&buyer, t.channel_id, 1_300);
        check(&exact, buyer.address()).unwrap();
        let short = signed(&buyer, t.channel_id, 1_299);
        let e = check(&short, buyer.address()).unwrap_err();
        assert!(
            matches!(e, PaymentRefusal::Short { owed, .. } if owed == U256::from(1_300)),
            "{e}"
        );
        let elsewhere = signed(&buyer, B256::repeat_byte(9), 1_300);
        assert!(matches!(
            check(&elsewhere, buyer.address()),
            Err(PaymentRefusal::OtherChannel)
        ));
        let stranger = PrivateKeySigner::random();
        let forged = signed(&stranger, t.channel_id, 1_300);
        assert!(matches!(
            check(&forged, buyer.address()),
            Err(PaymentRefusal::BadSignature(_))
        ));
    }
}
