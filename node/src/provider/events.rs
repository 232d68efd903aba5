//! Escrow events, and the provider's side of a dispute over its own ticket: handing the job
//! and its result to the drawn verifiers, and keeping that result until then.

use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::{Address, B256};

use super::{Provider, adversary};
use crate::chain::Chain;
use crate::events::{NodeEvent, TicketOutcome};
use crate::net::JobResult;
use crate::net::wire::WireMessage;
use crate::store::{Side, off_async};
use crate::sync::lock;

impl Provider {
    /// What the provider does about an escrow event.
    pub(crate) async fn on_chain_event(&self, ev: &SietchEscrowEvents) {
        let Some(chain) = &self.chain else { return };
        let touched = match ev {
            SietchEscrowEvents::CloseStarted(e) => Some(e.channelId),
            SietchEscrowEvents::ChannelClosed(e) => Some(e.channelId),
            SietchEscrowEvents::ChannelToppedUp(e) => Some(e.channelId),
            SietchEscrowEvents::VoucherClaimed(e) => Some(e.channelId),
            SietchEscrowEvents::TicketClaimed(e) => Some(e.channelId),
            _ => None,
        };
        if let Some(c) = touched {
            lock(&self.channel_views).remove(&c);
        }
        match ev {
            SietchEscrowEvents::CloseStarted(e) => {
                if let Ok(c) = chain.channel(e.channelId).await
                    && c.provider == chain.me()
                {
                    self.settle_now.notify_one();
                }
            }
            SietchEscrowEvents::TicketSettled(e) => {
                let mine = lock(&self.claimed).remove(&e.ticketId);
                if mine.is_some() {
                    self.emit(NodeEvent::TicketSettled {
                        ticket: e.ticketId,
                        outcome: TicketOutcome::from_code(e.outcome),
                    });
                }
            }
            SietchEscrowEvents::VerifiersDrawn(e) => {
                let mine = lock(&self.claimed).get(&e.ticketId).copied();
                if let Some(job) = mine {
                    // Our ticket is disputed: make sure the verifiers can run the job.
                    self.ask_verifiers(
                        chain,
                        e.ticketId,
                        job,
                        crate::chain::drawn(&e.verifiers, e.drawn),
                    )
                    .await;
                }
            }
            _ => {}
        }
    }

    /// Follows the node's events for reorganizations (`docs/finality.md`) until the stream
    /// ends. After any: the channels read for admission are read again (a deposit may be
    /// gone), and the dispute rounds this node voted in are forgotten, so that a party
    /// asking again (the vote may be gone) gets a new vote. After one past the confirmation
    /// depth also: a settlement round at once, its voucher claim forced (a claim may be
    /// gone: what is due is read from the chain again; a claimed ticket the chain no longer
    /// holds is claimed again by the round).
    pub(crate) async fn after_reorgs(
        self: std::sync::Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let deep = match events.recv().await {
                Ok(NodeEvent::Reorg { deep, .. }) => deep,
                // A busy stream: a notice may be lost; the periodic claim catches up.
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            lock(&self.channel_views).clear();
            // A vote of this node in the dropped blocks is gone, whether the roles had seen
            // it or not: a party asking again gets a new one.
            lock(&self.voted).clear();
            if !deep {
                continue;
            }
            if let Some(chain) = &self.chain
                && let Err(e) = self.claim_vouchers(chain, true).await
            {
                tracing::warn!("claiming vouchers again after a deep reorganization: {e}");
            }
            self.settle_now.notify_one();
        }
    }

    /// Sends the disputed job to each drawn verifier (the other party does the same).
    async fn ask_verifiers(&self, chain: &Chain, ticket: B256, job: B256, verifiers: &[Address]) {
        let spec = match self.store.job(Side::Provider, &job).and_then(|r| match r {
            Some(r) => self.store.job_spec(&r.spec_hash),
            None => Ok(None),
        }) {
            Ok(Some(spec)) => spec,
            Ok(None) => {
                tracing::warn!("ticket {ticket} is disputed, and job {job} or its spec is gone");
                return;
            }
            Err(e) => {
                tracing::warn!("ticket {ticket} is disputed, and job {job} cannot be read: {e}");
                return;
            }
        };
        let delivery = if adversary::keeps_results_from_verifiers(&self.config) {
            None
        } else {
            self.kept_result(&job)
        };
        crate::dispute::ask_verifiers(&self.net, chain, ticket, job, &spec, delivery, verifiers)
            .await;
    }

    /// The result of an unpaid job, from memory or, once its ticket was claimed, the store.
    fn kept_result(&self, job: &B256) -> Option<JobResult> {
        if let Some(r) = self.results.get(job) {
            return Some(r);
        }
        let bytes = match self.store.job_outputs(job) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!("cannot read the kept result of {job}: {e}");
                return None;
            }
        };
        match JobResult::from_bytes(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("the kept result of {job} does not decode: {e}");
                None
            }
        }
    }

    /// Writes an unpaid job's result to the store, so that it outlives a restart; whether
    /// this node holds it (in memory or already on disk).
    pub(super) async fn keep_for_dispute(&self, job: &B256) -> bool {
        match self.store.job_outputs(job) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot read the kept result of {job}: {e}"),
        }
        let Some(result) = self.results.get(job) else {
            return false;
        };
        let (id, bytes) = (*job, result.to_bytes());
        match off_async(&self.store, move |s| s.put_job_outputs(&id, &bytes)).await {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!("cannot keep the result of {job} for a dispute: {e}");
                false
            }
            None => {
                tracing::warn!(
                    "keeping the result of {job} for a dispute: the write was cancelled"
                );
                false
            }
        }
    }
}
