//! Payments: checking and recording a buyer's vouchers, and what the provider is owed.

use super::*;

impl Provider {
    /// A buyer's payment (or refusal to pay) for a job this node ran.
    /// `carried`: it came in a job request, and its voucher is committed without an fsync
    /// (the caller makes it durable, see [`Provider::on_job`]); else with one before this
    /// returns.
    pub(crate) fn on_payment(&self, peer: PeerId, p: &Payment) -> PaymentAck {
        let voucher = match self.check_payment(peer, p) {
            Ok(Some(v)) => v,
            Ok(None) => return PaymentAck::Accepted,
            Err(refused) => return refused,
        };
        match self.record_payment(&p.job_id, &voucher, false) {
            Ok(()) => PaymentAck::Accepted,
            Err(e) => PaymentAck::Refused {
                message: format!("cannot record the payment: {e}"),
            },
        }
    }

    /// Records a checked payment in a commit of its own (durably), then [`Provider::paid`].
    pub(super) fn record_payment(
        &self,
        job: &B256,
        voucher: &EvmSigned<sietch_market::Voucher>,
        carried: bool,
    ) -> Result<(), StoreError> {
        let (_, update) = self.store.settle_job(Side::Provider, job, voucher, now())?;
        self.paid(job, &voucher.message, update, carried);
        Ok(())
    }

    /// Checks a payment against its job: the secret, and the voucher's channel, amount and
    /// signature. A withheld payment (no voucher) is noted here, and `None` returned; a
    /// voucher that pays is returned, to be recorded.
    pub(super) fn check_payment(
        &self,
        peer: PeerId,
        p: &Payment,
    ) -> Result<Option<EvmSigned<sietch_market::Voucher>>, PaymentAck> {
        let refuse = |m: String| Err(PaymentAck::Refused { message: m });
        let Ok(Some(job)) = self.store.job(Side::Provider, &p.job_id) else {
            return refuse(format!("no job {} here", p.job_id));
        };
        let (Some(ticket), Some(result)) = (job.ticket, job.result) else {
            return refuse(format!("job {} has no result yet", p.job_id));
        };
        if sietch_market::check_commit(&p.secret) != ticket.message.check_commit {
            return refuse("the secret does not match the ticket's check commit".into());
        }
        let Some((voucher, sig)) = &p.voucher else {
            tracing::info!(job = %p.job_id, %peer, "payment withheld: {}", p.note);
            if let Ok(mut u) = self.unpaid.lock() {
                u.insert(
                    p.job_id,
                    Unpaid {
                        since: now(),
                        withheld: true,
                    },
                );
            }
            self.emit(NodeEvent::Withheld {
                job: p.job_id.to_string(),
                reason: p.note.clone(),
            });
            self.settle_now.notify_one();
            return Ok(None);
        };
        if voucher.channel_id != ticket.message.channel_id {
            return refuse("the voucher is for another channel than the ticket's".into());
        }
        let owed = ticket
            .message
            .cumulative_before
            .saturating_add(result.message.amount);
        if voucher.cumulative_amount < owed {
            return refuse(format!(
                "the voucher's cumulative amount {} does not pay the job (owed up to {owed})",
                voucher.cumulative_amount
            ));
        }
        if let Err(e) = voucher.verify(&self.domain, sig, job.counterparty) {
            return refuse(format!("the voucher's signature: {e}"));
        }
        Ok(Some(EvmSigned::new(*voucher, *sig)))
    }

    /// After a payment is recorded: the job is no longer unpaid, its lane is free, and a
    /// newer voucher counts toward the claim threshold.
    pub(super) fn paid(
        &self,
        job: &B256,
        voucher: &sietch_market::Voucher,
        update: VoucherUpdate,
        carried: bool,
    ) {
        if let Ok(mut u) = self.unpaid.lock() {
            u.remove(job);
        }
        self.results.remove(job);
        self.free_lane(&voucher.channel_id, job);
        self.emit(NodeEvent::Paid {
            job: job.to_string(),
            channel: voucher.channel_id.to_string(),
            cumulative: voucher.cumulative_amount.to_string(),
            carried,
        });
        if matches!(update, VoucherUpdate::Stored) {
            self.note_owed(voucher);
        }
    }

    /// Counts what a new voucher adds to what is owed, and wakes the settlement loop when
    /// the total passes the claim threshold (not on every voucher: a claim round reads
    /// every channel on chain).
    pub(super) fn note_owed(&self, voucher: &sietch_market::Voucher) {
        let paid = self
            .channel_views
            .lock()
            .ok()
            .and_then(|v| v.get(&voucher.channel_id).map(|c| U256::from(c.paid)))
            .unwrap_or(U256::ZERO);
        let due = voucher.cumulative_amount.saturating_sub(paid);
        let total = match self.owed.lock() {
            Ok(mut o) => {
                if o.len() < MAX_UNPAID || o.contains_key(&voucher.channel_id) {
                    o.insert(voucher.channel_id, due);
                }
                o.values().fold(U256::ZERO, |a, b| a.saturating_add(*b))
            }
            Err(_) => U256::MAX,
        };
        if total >= U256::from(self.config.claim_threshold) {
            self.settle_now.notify_one();
        }
    }
}
