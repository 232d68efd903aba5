//! What the buyer does about the escrow's events: dispute a claimed ticket it withheld (a
//! provider found wrong, a result that broke its commitment, a job never delivered), drive
//! the dispute, hand the drawn verifiers the job, take a result they hold when it never came,
//! and keep the reputation table in step with settlements, disputes and slashes.

use std::time::Duration;

use sietch_contracts::SietchEscrow::{SietchEscrowEvents, TicketRecord};
use sietch_market::{Address, B256};
use sietch_verifier::Check;

use super::reputation::Count;
use super::{Buyer, MAX_IN_FLIGHT};
use crate::chain::Chain;
use crate::events::{NodeEvent, TicketOutcome};
use crate::net::wire::WireMessage as _;
use crate::store::{DisputableTicket, off_async};
use crate::sync::lock;

/// Tickets to dispute kept, at most.
pub(super) const MAX_DISPUTABLE: usize = MAX_IN_FLIGHT * 4;

/// A ticket the buyer disputes if its provider claims it.
#[derive(Debug, Clone)]
pub(super) struct Disputable {
    pub(super) job: B256,
    /// The channel the ticket draws on.
    pub(super) channel: B256,
    /// The check that found the provider wrong (the evidence), if one did.
    pub(super) check: Option<Check>,
    /// The result never arrived: disputed as undelivered, so the verifiers hand it over.
    pub(super) undelivered: bool,
}

impl Buyer {
    /// What the buyer does about an escrow event: dispute a claimed ticket of a job whose
    /// provider was found wrong (or that never delivered), draw the verifiers, send them the
    /// job, and settle once they voted.
    pub(crate) async fn on_chain_event(&self, ev: &SietchEscrowEvents) {
        let Some(chain) = &self.chain else { return };
        self.reputation_from_chain(chain, ev).await;
        match ev {
            SietchEscrowEvents::TicketClaimed(e) => {
                if !self.owns_channel(&e.channelId) {
                    return;
                }
                self.dispute(chain, e.ticketId).await;
            }
            SietchEscrowEvents::TicketDisputed(e) if e.buyer == self.address() => {
                // Draws (from the next block on), redraws and resolves until it settles:
                // every round's verdict window, and the draw's wait, with room to spare.
                let window = chain.verdict_window().await.unwrap_or(3600);
                let limit = Duration::from_secs(window.saturating_mul(8).saturating_add(120));
                chain
                    .drive_dispute(e.ticketId, Duration::from_secs(1), limit)
                    .await;
            }
            SietchEscrowEvents::TicketSettled(e) => {
                if let Ok(rec) = chain.ticket(e.ticketId).await
                    && self.owns_channel(&rec.channelId)
                {
                    self.emit(NodeEvent::TicketSettled {
                        ticket: e.ticketId,
                        outcome: TicketOutcome::from_code(e.outcome),
                    });
                }
            }
            SietchEscrowEvents::VerifiersDrawn(e) => {
                let Ok(rec) = chain.ticket(e.ticketId).await else {
                    return;
                };
                let drawn = crate::chain::drawn(&e.verifiers, e.drawn);
                self.ask_verifiers(chain, e.ticketId, &rec, drawn).await;
            }
            // A verifier agreed: it holds the provider's result, which this buyer may lack.
            SietchEscrowEvents::VerdictSubmitted(e) if e.agrees => {
                let Ok(rec) = chain.ticket(e.ticketId).await else {
                    return;
                };
                self.ask_verifiers(chain, e.ticketId, &rec, &[e.verifier])
                    .await;
            }
            _ => {}
        }
    }

    /// Follows the node's events for reorganizations (`docs/finality.md`) until the stream
    /// ends, and catches up with each: past the confirmation depth, the events it acted on
    /// may be gone, and those before the common ancestor are not handed out again; at any
    /// depth, a channel it opened may be gone (its lane is forgotten).
    pub(crate) async fn after_reorgs(
        self: std::sync::Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(NodeEvent::Reorg { deep, .. }) => {
                    if deep {
                        self.after_deep_reorg().await;
                    }
                    // Off this loop: it waits for a second look and for jobs to end.
                    let me = self.clone();
                    tokio::spawn(async move { me.forget_vanished_lanes().await });
                }
                // A busy stream: a notice may be lost, and the periodic rounds catch up.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// What the buyer does after a reorganization past the confirmation depth: every ticket
    /// it would dispute is read again from the chain; one claimed and not disputed (the
    /// dispute was reorganized out, or the claim moved under the ancestor) is disputed, and
    /// the drawn verifiers of one in a verdict round are asked again (a vote may be gone).
    async fn after_deep_reorg(&self) {
        let Some(chain) = &self.chain else { return };
        let tickets: Vec<B256> = lock(&self.disputable).keys().copied().collect();
        for ticket in tickets {
            let Ok(rec) = chain.ticket(ticket).await else {
                continue;
            };
            match rec.state {
                crate::chain::TICKET_CLAIMED => self.dispute(chain, ticket).await,
                crate::chain::TICKET_DRAWN => {
                    let drawn = crate::chain::drawn(&rec.verifiers, rec.drawn).to_vec();
                    self.ask_verifiers(chain, ticket, &rec, &drawn).await;
                }
                _ => {}
            }
        }
    }

    /// Remembers a ticket to dispute if its provider claims it, in the store too, so that a
    /// restarted buyer still disputes it (bounded: past [`MAX_DISPUTABLE`] tickets, a new one
    /// is not kept, and that is logged).
    pub(super) async fn mark_disputable(&self, ticket: B256, d: Disputable) {
        let record = DisputableTicket {
            job_id: d.job,
            channel_id: d.channel,
            undelivered: d.undelivered,
        };
        {
            let mut w = lock(&self.disputable);
            if w.len() >= MAX_DISPUTABLE && !w.contains_key(&ticket) {
                tracing::warn!(
                    "ticket {ticket} (job {}) will not be disputed if claimed: too many kept",
                    d.job
                );
                return;
            }
            w.insert(ticket, d);
        }
        let kept = off_async(&self.store, move |s| s.put_disputable(&ticket, &record)).await;
        super::warn_unrecorded(kept, || {
            format!("ticket {ticket} to dispute (job {})", record.job_id)
        });
    }

    /// Disputes `ticket` if it is one to dispute (and not disputed yet).
    async fn dispute(&self, chain: &Chain, ticket: B256) {
        let undelivered = lock(&self.disputable).get(&ticket).map(|d| d.undelivered);
        let Some(undelivered) = undelivered else {
            return;
        };
        match chain.dispute(ticket, undelivered).await {
            Ok(()) => self.emit(NodeEvent::Disputed { ticket }),
            Err(err) => tracing::warn!("disputing {ticket}: {err}"),
        }
    }

    /// Disputes `ticket` now if its provider claimed it before this buyer knew it would
    /// dispute it (the claim's event has gone by).
    pub(super) async fn dispute_if_claimed(&self, ticket: B256) {
        let Some(chain) = &self.chain else { return };
        if let Ok(t) = chain.ticket(ticket).await
            && t.state == crate::chain::TICKET_CLAIMED
        {
            self.dispute(chain, ticket).await;
        }
    }

    /// Sends a disputed job of this buyer to `verifiers`; takes the provider's result from
    /// one that holds it, when this buyer never received it.
    async fn ask_verifiers(
        &self,
        chain: &Chain,
        ticket: B256,
        rec: &TicketRecord,
        verifiers: &[Address],
    ) {
        let d = lock(&self.disputable).get(&ticket).cloned();
        let Some(d) = d else { return };
        let spec = match self.store.job_spec(&rec.specHash) {
            Ok(Some(spec)) => spec,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("reading the spec of disputed job {}: {e}", d.job);
                return;
            }
        };
        let got =
            crate::dispute::ask_verifiers(&self.net, chain, ticket, d.job, &spec, None, verifiers)
                .await;
        let Some(result) = got else { return };
        if !d.undelivered
            || !crate::delivery::is_the_claimed(&result, d.job, rec.outputHash, rec.fuelUsed)
        {
            return;
        }
        match self.store.job_outputs(&d.job) {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the outputs of {}: {e}", d.job),
        }
        let (job, bytes) = (d.job, result.to_bytes());
        let kept = off_async(&self.store, move |s| s.put_job_outputs(&job, &bytes)).await;
        if let Some(Ok(())) = kept {
            self.emit(NodeEvent::DeliveredInDispute { job: d.job, ticket });
        } else {
            super::warn_unrecorded(kept, || {
                format!("the outputs of {job}, handed over in dispute")
            });
        }
    }

    /// Keeps the reputation table in step with the escrow: who holds which node key, and
    /// every settlement, dispute and slash of a provider.
    async fn reputation_from_chain(&self, chain: &Chain, ev: &SietchEscrowEvents) {
        use sietch_verifier::ChainEvent as Rep;
        let event = match ev {
            // Only a key that proved it binds itself to the account (else an attacker could
            // register a victim's key and pin its own slashes on it).
            SietchEscrowEvents::Registered(e) if chain.proven(e) => Some(Rep::Registered {
                account: e.account,
                node_key: e.nodeKey,
            }),
            SietchEscrowEvents::VoucherClaimed(e) => Some(Rep::Settled {
                provider: e.provider,
                jobs: 1,
            }),
            SietchEscrowEvents::Slashed(e) => Some(Rep::Slashed {
                provider: e.provider,
            }),
            SietchEscrowEvents::TicketDisputed(e) => match chain.ticket(e.ticketId).await {
                Ok(t) => match chain.channel(t.channelId).await {
                    Ok(c) => Some(Rep::Disputed {
                        provider: c.provider,
                    }),
                    Err(_) => None,
                },
                Err(_) => None,
            },
            _ => None,
        };
        if let Some(e) = event {
            self.count_reputation(Count::Chain(e)).await;
        }
    }

    fn owns_channel(&self, channel: &B256) -> bool {
        lock(&self.lanes).owns(channel)
    }

    /// Tickets withheld and disputable, with their job and the check that found them wrong
    /// (the evidence), for the API.
    pub fn withheld(&self) -> Vec<(B256, B256, Option<Check>)> {
        lock(&self.disputable)
            .iter()
            .map(|(t, d)| (*t, d.job, d.check.clone()))
            .collect()
    }
}
