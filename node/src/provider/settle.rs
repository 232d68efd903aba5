//! Settlement: claiming vouchers and tickets on chain, and moving claimed tickets on. What
//! to claim when is decided by the pure functions at the top; the [`Provider`] methods read
//! the store and the chain, and act on the decisions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sietch_contracts::SietchEscrow::SietchEscrowErrors;
use sietch_market::{Address, B256, U256};

use super::{MAX_UNPAID, Provider, TICKET_MARGIN_SECS, Unpaid, now};
use crate::chain::{
    Chain, ChainError, ChannelView, TICKET_CLAIMED, TICKET_DISPUTED, TICKET_DRAWN, TICKET_SETTLED,
};
use crate::events::NodeEvent;
use crate::store::{Side, StoreError};
use crate::sync::lock;

/// A channel's state on chain: closing (a close started).
const CHANNEL_CLOSING: u8 = 2;
/// A channel's state on chain: closed.
const CHANNEL_CLOSED: u8 = 3;

/// Why a settlement step failed (it is tried again on the next round).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettleError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain could not be read, or refused a transaction.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// What the latest voucher of a channel, `cumulative`, can still claim from the channel `c`
/// as the chain holds it: up to the deposit, beyond what was paid. `None` when nothing: the
/// channel is another provider's, closed, or paid up.
pub(crate) fn voucher_due(cumulative: U256, c: &ChannelView, me: Address) -> Option<U256> {
    if c.provider != me || c.state == CHANNEL_CLOSED {
        return None;
    }
    let due = cumulative
        .min(U256::from(c.deposit))
        .saturating_sub(U256::from(c.paid));
    (!due.is_zero()).then_some(due)
}

/// Whether a round claims the vouchers due, `owed` in all: when that passes the threshold,
/// when a channel is `closing` (what it owes must be claimed before it closes), or when
/// `forced` (periodically, and on the way out).
pub(crate) fn claim_vouchers_now(owed: U256, closing: bool, forced: bool, threshold: u128) -> bool {
    !owed.is_zero() && (forced || closing || owed >= U256::from(threshold))
}

/// Whether a claim round is the periodic one that claims whatever is owed: `every` seconds
/// after the last claim (`last` zero: none since the start, so the first round claims).
pub(crate) fn periodic_claim_due(now: u64, last: u64, every: u64) -> bool {
    now.saturating_sub(last) >= every
}

/// The unpaid jobs whose ticket is claimed now: the buyer withheld payment, or sent none
/// within `timeout` seconds of the result.
pub(crate) fn tickets_due(unpaid: &HashMap<B256, Unpaid>, now: u64, timeout: u64) -> Vec<B256> {
    unpaid
        .iter()
        .filter(|(_, u)| u.withheld || now.saturating_sub(u.since) >= timeout)
        .map(|(j, _)| *j)
        .collect()
}

/// Whether an unpaid job's ticket must be claimed whatever else, its `deadline` being near.
pub(crate) fn deadline_near(deadline: u64, now: u64) -> bool {
    deadline <= now + 2 * TICKET_MARGIN_SECS
}

/// What a claim round does with an unpaid job's ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketAction {
    /// Claim it.
    Claim,
    /// Leave it unclaimed, and stop waiting for its payment.
    Forget,
}

/// A dispute decides delivery too: a ticket is claimed only when this node can still hand
/// its result to the verifiers (`held`).
pub(crate) fn ticket_action(held: bool) -> TicketAction {
    if held {
        TicketAction::Claim
    } else {
        TicketAction::Forget
    }
}

/// What follows when the escrow refuses a ticket's claim with `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedClaim {
    /// The channel's vouchers must be claimed first (the ticket's range starts beyond what
    /// the channel paid); the ticket is tried again.
    VouchersFirst,
    /// Nothing more to claim: paid, expired, or claimed already.
    Over,
    /// Anything else: tried again on the next round.
    Retry,
}

/// [`RefusedClaim`] for the escrow's error, if the refusal is one.
pub(crate) fn refused_claim(error: Option<&SietchEscrowErrors>) -> RefusedClaim {
    match error {
        Some(SietchEscrowErrors::CumulativeNotReached(_)) => RefusedClaim::VouchersFirst,
        Some(
            SietchEscrowErrors::TicketAlreadyPaid(_)
            | SietchEscrowErrors::TicketExpired(_)
            | SietchEscrowErrors::TicketExists(_),
        ) => RefusedClaim::Over,
        _ => RefusedClaim::Retry,
    }
}

/// The next step for a claimed ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketStep {
    /// Its challenge window passed without a dispute.
    Finalize,
    /// Disputed, and its verifiers' draw is due (the escrow may have re-armed it).
    DrawVerifiers,
    /// Its verdict window ended (a round without a majority is drawn again).
    Resolve,
    /// Settled: stop watching it.
    Forget,
    /// Not on chain: its claim was reorganized out (`docs/finality.md`). Claimed again.
    Reclaim,
    /// Nothing yet.
    Wait,
}

/// [`TicketStep`] for a ticket in `state` with its `deadline` and `draw_block`, at chain
/// time `now` and block `block` (read only for a disputed ticket; any value otherwise).
pub(crate) fn ticket_step(
    state: u8,
    deadline: u64,
    draw_block: u64,
    now: u64,
    block: u64,
) -> TicketStep {
    match state {
        TICKET_CLAIMED if deadline < now => TicketStep::Finalize,
        TICKET_DISPUTED if draw_block < block => TicketStep::DrawVerifiers,
        TICKET_DRAWN if deadline < now => TicketStep::Resolve,
        TICKET_SETTLED => TicketStep::Forget,
        TICKET_NONE => TicketStep::Reclaim,
        _ => TicketStep::Wait,
    }
}

/// A ticket the escrow does not hold (`TicketRecord.state`): never claimed, or its claim
/// was reorganized out.
const TICKET_NONE: u8 = 0;

/// The escrow's custom error in a chain error, if that is what it is.
pub(crate) fn reverted(e: &ChainError) -> Option<&SietchEscrowErrors> {
    match e {
        ChainError::Escrow(e) => e.reverted(),
        _ => None,
    }
}

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
            let periodic = periodic_claim_due(now(), last_claim, self.config.claim_every_secs);
            match self.claim_vouchers(&chain, periodic).await {
                Ok(true) => last_claim = now(),
                Ok(false) => {}
                Err(e) => tracing::warn!("claiming vouchers: {e}"),
            }
            if let Err(e) = self.claim_tickets(&chain).await {
                tracing::warn!("claiming tickets: {e}");
            }
            if let Err(e) = self.finalize_tickets(&chain).await {
                tracing::warn!("finalizing tickets: {e}");
            }
        }
    }

    /// Claims, in one batch, every channel whose latest voucher pays more than the chain
    /// has paid, when [`claim_vouchers_now`] says so. Returns whether it claimed.
    pub(crate) async fn claim_vouchers(
        &self,
        chain: &Chain,
        force: bool,
    ) -> Result<bool, SettleError> {
        let mut batch = Vec::new();
        let mut owed = U256::ZERO;
        let mut closing = false;
        for v in self.store.vouchers()? {
            let c = chain.channel(v.message.channel_id).await?;
            let Some(due) = voucher_due(v.message.cumulative_amount, &c, chain.me()) else {
                continue;
            };
            closing |= c.state == CHANNEL_CLOSING;
            owed += due;
            batch.push(v);
        }
        if !claim_vouchers_now(owed, closing, force, self.config.claim_threshold) {
            return Ok(false);
        }
        let receipt = chain.claim_batch(&batch).await?;
        lock(&self.owed).clear();
        self.emit(NodeEvent::Claimed {
            channels: batch.len(),
            amount: owed,
            tx: receipt.transaction_hash,
            gas: receipt.gas_used,
        });
        Ok(true)
    }

    /// Claims on chain the tickets of delivered jobs whose payment was withheld, timed out
    /// ([`tickets_due`]), or whose ticket deadline nears ([`deadline_near`]).
    async fn claim_tickets(&self, chain: &Chain) -> Result<(), SettleError> {
        let n = now();
        let (due, waiting): (Vec<B256>, Vec<B256>) = {
            let unpaid = lock(&self.unpaid);
            (
                tickets_due(&unpaid, n, self.config.voucher_timeout_secs),
                unpaid.keys().copied().collect(),
            )
        };
        let mut near = Vec::new();
        for j in waiting {
            match self.store.job(Side::Provider, &j) {
                Ok(Some(job)) => {
                    if job
                        .ticket
                        .is_some_and(|t| deadline_near(t.message.deadline, n))
                    {
                        near.push(j);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot read job {j} to see its ticket's deadline: {e}"),
            }
        }
        for job_id in due.into_iter().chain(near) {
            let Some(job) = self.store.job(Side::Provider, &job_id)? else {
                continue;
            };
            let (Some(ticket), Some(result)) = (job.ticket, job.result) else {
                continue;
            };
            // Kept on disk from now on: the node may restart before the dispute.
            let held = self.keep_for_dispute(&job_id).await;
            if ticket_action(held) == TicketAction::Forget {
                tracing::warn!(
                    "not claiming the ticket of {job_id}: its result is no longer held, so it \
                     could not be delivered in a dispute"
                );
                self.forget_unpaid(&job_id);
                continue;
            }
            let id = sietch_market::ticket_id(&ticket.message.channel_id, &job_id);
            let over = match chain.claim_ticket(&ticket, &result).await {
                Ok(_) => {
                    self.emit(NodeEvent::TicketClaimed {
                        job: job_id,
                        ticket: id,
                    });
                    let mut claimed = lock(&self.claimed);
                    if claimed.len() < MAX_UNPAID {
                        claimed.insert(id, job_id);
                    }
                    true
                }
                Err(e) => match refused_claim(reverted(&e)) {
                    RefusedClaim::VouchersFirst => {
                        self.claim_vouchers(chain, true).await?;
                        false
                    }
                    RefusedClaim::Over => true,
                    RefusedClaim::Retry => {
                        tracing::warn!("claiming the ticket of {job_id}: {e}");
                        false
                    }
                },
            };
            if over {
                self.forget_unpaid(&job_id);
                self.free_lane(&ticket.message.channel_id, &job_id);
            }
        }
        Ok(())
    }

    /// A claimed ticket the chain no longer holds (a reorganization dropped its claim): its
    /// job is unpaid again, withheld, so the next round claims it again (its result was kept
    /// on disk when it was first claimed).
    fn reclaim(&self, ticket: B256) {
        let Some(job) = lock(&self.claimed).remove(&ticket) else {
            return;
        };
        tracing::warn!(
            "the claim of ticket {ticket} (job {job}) is no longer on chain (reorganized out): \
             claiming it again"
        );
        let mut unpaid = lock(&self.unpaid);
        if unpaid.len() < MAX_UNPAID || unpaid.contains_key(&job) {
            unpaid.insert(
                job,
                Unpaid {
                    since: now(),
                    withheld: true,
                },
            );
        }
    }

    /// Moves this provider's claimed tickets on ([`ticket_step`]).
    async fn finalize_tickets(&self, chain: &Chain) -> Result<(), SettleError> {
        let claimed: Vec<B256> = lock(&self.claimed).keys().copied().collect();
        let t = chain.now().await?;
        for id in claimed {
            let rec = chain.ticket(id).await?;
            let block = if rec.state == TICKET_DISPUTED {
                chain.block_number().await?
            } else {
                0
            };
            let done = match ticket_step(rec.state, rec.deadline, rec.drawBlock, t, block) {
                TicketStep::Finalize => chain.finalize_ticket(id).await,
                TicketStep::DrawVerifiers => chain.draw_verifiers(id).await,
                TicketStep::Resolve => chain.resolve(id).await,
                TicketStep::Forget => {
                    lock(&self.claimed).remove(&id);
                    Ok(())
                }
                TicketStep::Reclaim => {
                    self.reclaim(id);
                    Ok(())
                }
                TicketStep::Wait => Ok(()),
            };
            if let Err(e) = done {
                tracing::warn!("moving ticket {id} on: {e}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sietch_contracts::SietchEscrow;

    use super::*;

    const ME: Address = Address::repeat_byte(0xa);

    fn channel(state: u8, deposit: u128, paid: u128) -> ChannelView {
        ChannelView {
            buyer: Address::repeat_byte(0xb),
            provider: ME,
            state,
            closes_at: 0,
            deposit,
            paid,
            reserved: 0,
        }
    }

    fn u(x: u64) -> U256 {
        U256::from(x)
    }

    #[test]
    fn a_voucher_is_due_what_it_pays_beyond_the_chain_up_to_the_deposit() {
        assert_eq!(
            voucher_due(u(500), &channel(1, 1_000, 100), ME),
            Some(u(400))
        );
        // Capped by the deposit: the escrow pays no more.
        assert_eq!(voucher_due(u(500), &channel(1, 300, 100), ME), Some(u(200)));
        // A closing channel still pays.
        assert_eq!(voucher_due(u(500), &channel(2, 1_000, 0), ME), Some(u(500)));
        assert_eq!(
            voucher_due(u(100), &channel(1, 1_000, 100), ME),
            None,
            "paid up"
        );
        assert_eq!(
            voucher_due(u(500), &channel(3, 1_000, 0), ME),
            None,
            "closed"
        );
        let other = Address::repeat_byte(0xc);
        assert_eq!(
            voucher_due(u(500), &channel(1, 1_000, 0), other),
            None,
            "not ours"
        );
    }

    #[test]
    fn vouchers_are_claimed_past_the_threshold_when_forced_or_closing() {
        let threshold = 1_000;
        assert!(!claim_vouchers_now(u(999), false, false, threshold));
        assert!(claim_vouchers_now(u(1_000), false, false, threshold));
        assert!(
            claim_vouchers_now(u(1), true, false, threshold),
            "a closing channel"
        );
        assert!(claim_vouchers_now(u(1), false, true, threshold), "forced");
        assert!(
            !claim_vouchers_now(U256::ZERO, true, true, threshold),
            "nothing owed"
        );
    }

    #[test]
    fn the_periodic_claim_comes_every_interval_and_on_the_first_round() {
        let every = 3_600;
        assert!(
            periodic_claim_due(1_000_000, 0, every),
            "none since the start"
        );
        assert!(!periodic_claim_due(1_000_000, 1_000_000 - every + 1, every));
        assert!(periodic_claim_due(1_000_000, 1_000_000 - every, every));
    }

    #[test]
    fn a_ticket_is_claimed_when_payment_is_withheld_or_late() {
        let (now, timeout) = (10_000, 300);
        let job = |b| B256::repeat_byte(b);
        let unpaid = HashMap::from([
            (
                job(1),
                Unpaid {
                    since: now,
                    withheld: true,
                },
            ),
            (
                job(2),
                Unpaid {
                    since: now - timeout + 1,
                    withheld: false,
                },
            ),
            (
                job(3),
                Unpaid {
                    since: now - timeout,
                    withheld: false,
                },
            ),
        ]);
        let mut due = tickets_due(&unpaid, now, timeout);
        due.sort();
        assert_eq!(due, vec![job(1), job(3)]);
    }

    #[test]
    fn a_ticket_is_claimed_when_its_deadline_nears() {
        let now = 10_000;
        assert!(deadline_near(now + 2 * TICKET_MARGIN_SECS, now));
        assert!(deadline_near(now, now));
        assert!(!deadline_near(now + 2 * TICKET_MARGIN_SECS + 1, now));
    }

    #[test]
    fn a_ticket_whose_result_is_not_held_is_not_claimed() {
        assert_eq!(ticket_action(false), TicketAction::Forget);
        assert_eq!(ticket_action(true), TicketAction::Claim);
    }

    #[test]
    fn a_refused_claim_is_retried_after_the_vouchers_or_dropped_when_over() {
        let not_reached =
            SietchEscrowErrors::CumulativeNotReached(SietchEscrow::CumulativeNotReached {
                cumulativeBefore: u(10),
                paid: u(0),
            });
        assert_eq!(
            refused_claim(Some(&not_reached)),
            RefusedClaim::VouchersFirst
        );
        let expired =
            SietchEscrowErrors::TicketExpired(SietchEscrow::TicketExpired { deadline: 1 });
        assert_eq!(refused_claim(Some(&expired)), RefusedClaim::Over);
        let exists = SietchEscrowErrors::TicketExists(SietchEscrow::TicketExists {
            ticketId: B256::ZERO,
        });
        assert_eq!(refused_claim(Some(&exists)), RefusedClaim::Over);
        let paid = SietchEscrowErrors::TicketAlreadyPaid(SietchEscrow::TicketAlreadyPaid {
            cumulativeEnd: u(10),
            paid: u(10),
        });
        assert_eq!(refused_claim(Some(&paid)), RefusedClaim::Over);
        assert_eq!(refused_claim(None), RefusedClaim::Retry, "an RPC failure");
    }

    #[test]
    fn a_claimed_ticket_moves_on_when_its_windows_end() {
        let (now, block) = (10_000, 50);
        assert_eq!(
            ticket_step(TICKET_CLAIMED, now, 0, now, block),
            TicketStep::Wait
        );
        assert_eq!(
            ticket_step(TICKET_CLAIMED, now - 1, 0, now, block),
            TicketStep::Finalize
        );
        assert_eq!(
            ticket_step(TICKET_DISPUTED, 0, block, now, block),
            TicketStep::Wait
        );
        assert_eq!(
            ticket_step(TICKET_DISPUTED, 0, block - 1, now, block),
            TicketStep::DrawVerifiers
        );
        assert_eq!(
            ticket_step(TICKET_DRAWN, now, 0, now, block),
            TicketStep::Wait
        );
        assert_eq!(
            ticket_step(TICKET_DRAWN, now - 1, 0, now, block),
            TicketStep::Resolve
        );
        assert_eq!(
            ticket_step(TICKET_SETTLED, 0, 0, now, block),
            TicketStep::Forget
        );
        assert_eq!(
            ticket_step(TICKET_NONE, 0, 0, now, block),
            TicketStep::Reclaim,
            "a claim reorganized out"
        );
    }
}
