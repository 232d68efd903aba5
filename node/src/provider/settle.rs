//! Settlement: claiming vouchers and tickets on chain, and moving claimed tickets on.

use super::*;

impl Provider {
    /// Claims vouchers and tickets until the node stops: when woken (a voucher, a withheld
    /// payment, a close), and every `settle_every_secs`.
    pub(crate) async fn settle_loop(self: Arc<Self>) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let every = Duration::from_secs(self.config.settle_every_secs.max(1));
        // Zero: the first round claims whatever is owed (a provider restarted with an
        // unclaimed voucher claims it at once).
        let mut last_claim = 0;
        loop {
            tokio::select! {
                () = self.settle_now.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
            let periodic = now().saturating_sub(last_claim) >= self.config.claim_every_secs;
            match self.claim_vouchers(&chain, periodic).await {
                Ok(true) => last_claim = now(),
                Ok(false) => {}
                Err(e) => tracing::warn!("claiming vouchers: {e:#}"),
            }
            if let Err(e) = self.claim_tickets(&chain).await {
                tracing::warn!("claiming tickets: {e:#}");
            }
            if let Err(e) = self.finalize_tickets(&chain).await {
                tracing::warn!("finalizing tickets: {e:#}");
            }
        }
    }

    /// Claims, in one batch, every channel whose latest voucher pays more than the chain
    /// has paid, when what is owed in all passes the threshold, or `force`, or a channel is
    /// closing. Returns whether it claimed.
    pub(crate) async fn claim_vouchers(&self, chain: &Chain, force: bool) -> anyhow::Result<bool> {
        let mut batch = Vec::new();
        let mut owed = U256::ZERO;
        let mut closing = false;
        for v in self.store.vouchers()? {
            let c = chain.channel(v.message.channel_id).await?;
            if c.provider != chain.me() || c.state == 3 {
                continue;
            }
            let due = v
                .message
                .cumulative_amount
                .min(U256::from(c.deposit))
                .saturating_sub(U256::from(c.paid));
            if due.is_zero() {
                continue;
            }
            closing |= c.state == 2;
            owed += due;
            batch.push(v);
        }
        if batch.is_empty() {
            return Ok(false);
        }
        if !(force || closing || owed >= U256::from(self.config.claim_threshold)) {
            return Ok(false);
        }
        let receipt = chain.claim_batch(&batch).await?;
        if let Ok(mut o) = self.owed.lock() {
            o.clear();
        }
        self.emit(NodeEvent::Claimed {
            channels: batch.len(),
            amount: owed.to_string(),
            tx: receipt.transaction_hash.to_string(),
            gas: receipt.gas_used,
        });
        Ok(true)
    }

    /// Claims on chain the tickets of delivered jobs whose payment was withheld, timed out,
    /// or whose ticket deadline nears.
    pub(super) async fn claim_tickets(&self, chain: &Chain) -> anyhow::Result<()> {
        let due: Vec<B256> = {
            let unpaid = self
                .unpaid
                .lock()
                .map_err(|_| anyhow::anyhow!("provider state"))?;
            let n = now();
            unpaid
                .iter()
                .filter(|(_, u)| {
                    u.withheld || n.saturating_sub(u.since) >= self.config.voucher_timeout_secs
                })
                .map(|(j, _)| *j)
                .collect()
        };
        let n = now();
        let mut near: Vec<B256> = Vec::new();
        if let Ok(unpaid) = self.unpaid.lock() {
            for j in unpaid.keys() {
                if let Ok(Some(job)) = self.store.job(Side::Provider, j)
                    && let Some(t) = job.ticket
                    && t.message.deadline <= n + 2 * TICKET_MARGIN_SECS
                {
                    near.push(*j);
                }
            }
        }
        for job_id in due.into_iter().chain(near) {
            let Some(job) = self.store.job(Side::Provider, &job_id)? else {
                continue;
            };
            let (Some(ticket), Some(result)) = (job.ticket, job.result) else {
                continue;
            };
            // A dispute decides delivery too: claim only a result this node can still hand
            // to the verifiers, kept on disk from now on (it may restart before the dispute).
            if !self.keep_for_dispute(&job_id).await {
                tracing::warn!(
                    "not claiming the ticket of {job_id}: its result is no longer held, so it \
                     could not be delivered in a dispute"
                );
                if let Ok(mut u) = self.unpaid.lock() {
                    u.remove(&job_id);
                }
                continue;
            }
            let id = Chain::ticket_id(ticket.message.channel_id, job_id);
            let remove = match chain.claim_ticket(&ticket, &result).await {
                Ok(_) => {
                    self.emit(NodeEvent::TicketClaimed {
                        job: job_id.to_string(),
                        ticket: id.to_string(),
                    });
                    if let Ok(mut c) = self.claimed.lock()
                        && c.len() < MAX_UNPAID
                    {
                        c.insert(id, job_id);
                    }
                    true
                }
                Err(e) => match reverted(&e) {
                    // Claim the channel's vouchers first, then the ticket.
                    Some(SietchEscrowErrors::CumulativeNotReached(_)) => {
                        self.claim_vouchers(chain, true).await?;
                        false
                    }
                    Some(
                        SietchEscrowErrors::TicketAlreadyPaid(_)
                        | SietchEscrowErrors::TicketExpired(_)
                        | SietchEscrowErrors::TicketExists(_),
                    ) => true,
                    _ => {
                        tracing::warn!("claiming the ticket of {job_id}: {e}");
                        false
                    }
                },
            };
            if remove {
                if let Ok(mut u) = self.unpaid.lock() {
                    u.remove(&job_id);
                }
                self.free_lane(&ticket.message.channel_id, &job_id);
            }
        }
        Ok(())
    }

    /// Moves this provider's claimed tickets on: finalizes those whose challenge window
    /// passed without a dispute, draws the verifiers of disputed ones whose draw is due (the
    /// escrow may have re-armed it), and resolves those whose verdict window ended (a round
    /// without a majority is drawn again).
    pub(super) async fn finalize_tickets(&self, chain: &Chain) -> anyhow::Result<()> {
        use crate::chain::{TICKET_CLAIMED, TICKET_DISPUTED, TICKET_DRAWN, TICKET_SETTLED};
        let claimed: Vec<(B256, B256)> = self
            .claimed
            .lock()
            .map(|c| c.iter().map(|(a, b)| (*a, *b)).collect())
            .unwrap_or_default();
        let t = chain.now().await?;
        for (id, _job) in claimed {
            let rec = chain.ticket(id).await?;
            let done = match rec.state {
                TICKET_CLAIMED if rec.deadline < t => chain.finalize_ticket(id).await,
                TICKET_DISPUTED if rec.drawBlock < chain.block_number().await? => {
                    chain.draw_verifiers(id).await
                }
                TICKET_DRAWN if rec.deadline < t => chain.resolve(id).await,
                TICKET_SETTLED => {
                    if let Ok(mut c) = self.claimed.lock() {
                        c.remove(&id);
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = done {
                tracing::warn!("moving ticket {id} on: {e}");
            }
        }
        Ok(())
    }
}

/// The escrow's custom error in a chain error, if that is what it is.
pub(crate) fn reverted(e: &ChainError) -> Option<&SietchEscrowErrors> {
    match e {
        ChainError::Escrow(e) => e.reverted(),
        _ => None,
    }
}
