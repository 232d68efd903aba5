//! Verifier duty: re-running a disputed job this node was drawn for, waiting for the
//! provider's delivery, and posting a signed verdict. [`check_drawn`] and [`delivery_wait`]
//! are the pure parts. A job checked by re-scoring ([`Comparison::Rescore`]) is voted on by
//! its rescoring job instead ([`super::verifier_rescore`]).

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use sietch_contracts::SietchEscrow;
use sietch_market::eip712::TypedData;
use sietch_market::{Address, B256, Comparison, ResultCommitment, U256};
use sietch_sandbox::JobReport;
use tokio::sync::oneshot;

use super::serve::RunError;
use super::{MAX_UNPAID, Provider};
use crate::chain::{Chain, ChainError, TICKET_DRAWN};
use crate::delivery;
use crate::events::NodeEvent;
use crate::net::{VerifyReply, VerifyRequest};
use crate::store::EvmSigned;
use crate::sync::lock;

/// Why a verify request is refused. The party that sent it is told this error's text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyRefusal {
    /// This node follows no chain, so it draws no disputes.
    #[error("this node follows no chain")]
    NoChain,
    /// The ticket could not be read.
    #[error("cannot read the ticket: {0}")]
    Unread(ChainError),
    /// The ticket is not in a verdict round.
    #[error("the ticket is not waiting for verdicts")]
    NotDrawn,
    /// This node is not among the ticket's drawn verifiers.
    #[error("this node was not drawn for the ticket")]
    NotMe,
    /// The job's id with the ticket's channel is another ticket's.
    #[error("the job is not the ticket's")]
    OtherJob,
    /// The spec is not the one the ticket was for.
    #[error("the spec is not the ticket's")]
    OtherSpec,
}

/// A disputed ticket as the chain holds it, as far as a verifier checks a request.
pub(crate) struct DrawnTicket<'a> {
    /// The ticket's state.
    pub(crate) state: u8,
    /// The verifiers drawn for its round.
    pub(crate) drawn: &'a [Address],
    /// Its channel.
    pub(crate) channel_id: B256,
    /// The spec it was for.
    pub(crate) spec_hash: B256,
}

/// Checks a verify request against its ticket: in a verdict round, with `me` among its
/// drawn verifiers, for the request's job and spec.
pub(crate) fn check_drawn(
    req: &VerifyRequest,
    ticket: &DrawnTicket<'_>,
    me: Address,
) -> Result<(), VerifyRefusal> {
    if ticket.state != TICKET_DRAWN {
        Err(VerifyRefusal::NotDrawn)
    } else if !ticket.drawn.contains(&me) {
        Err(VerifyRefusal::NotMe)
    } else if sietch_market::ticket_id(&ticket.channel_id, &req.job_id) != req.ticket_id {
        Err(VerifyRefusal::OtherJob)
    } else if req.spec.hash() != ticket.spec_hash {
        Err(VerifyRefusal::OtherSpec)
    } else {
        Ok(())
    }
}

/// What the disputed ticket commits to, as a commitment on it: the request's job, the
/// ticket's spec and channel (the vote counts on this ticket only: its channel and job make
/// the ticket id), the provider's output hash and fuel.
pub(super) fn disputed(req: &VerifyRequest, rec: &SietchEscrow::TicketRecord) -> ResultCommitment {
    ResultCommitment {
        job_id: req.job_id,
        spec_hash: rec.specHash,
        channel_id: rec.channelId,
        output_hash: rec.outputHash,
        fuel_used: rec.fuelUsed,
        gpu_millis: 0,
        amount: U256::ZERO,
    }
}

/// This node's commitment to its own run `report` of the job of `disputed`'s ticket.
pub(super) fn own_commitment(disputed: &ResultCommitment, report: &JobReport) -> ResultCommitment {
    ResultCommitment {
        output_hash: B256::from(report.output_hash),
        fuel_used: report.fuel_used,
        gpu_millis: report.gpu_time_ns / 1_000_000,
        ..*disputed
    }
}

/// How long a verifier with a right result waits for the provider's delivery, `left`
/// seconds before the verdict window ends: until a quarter of it is left, at least 5 s.
pub(crate) fn delivery_wait(left: u64) -> Duration {
    Duration::from_secs(left.saturating_sub((left / 4).max(5)))
}

impl Provider {
    /// This node was drawn as a verifier: re-run the job and post a verdict.
    pub(crate) async fn on_verify(
        self: Arc<Self>,
        peer: PeerId,
        mut req: VerifyRequest,
        reply: oneshot::Sender<VerifyReply>,
    ) {
        let (chain, rec) = match self.drawn_for(&req).await {
            Ok(found) => found,
            Err(r) => {
                // The party that asked may be gone: nothing is lost with the answer.
                let _ = reply.send(VerifyReply::Refused {
                    message: r.to_string(),
                });
                return;
            }
        };
        // The provider's result, if this request brings it: kept when its outputs are the
        // claimed ones (whoever sends it, they prove themselves by their hash).
        if let Some(d) = req.delivery.take()
            && delivery::is_the_claimed(&d, req.job_id, rec.outputHash, rec.fuelUsed)
        {
            self.deliveries.put(req.ticket_id, *d);
        }
        let held = self.deliveries.get(&req.ticket_id);
        // One vote per round: a round without a majority is drawn again, maybe with us.
        let round_key = alloy::primitives::keccak256([req.ticket_id.0, [rec.round; 32]].concat());
        let fresh = {
            let mut voted = lock(&self.voted);
            voted.len() < MAX_UNPAID && voted.insert(round_key)
        };
        // A party without the result (the buyer) gets it as soon as this node holds it.
        let _ = reply.send(match held {
            Some(r) => VerifyReply::Delivered(Box::new(r)),
            None => VerifyReply::Accepted,
        });
        if !fresh {
            return;
        }
        let voted = match req.spec.verification.comparison {
            Comparison::Rescore { .. } => self.rescore_vote(peer, &chain, &req, &rec).await,
            _ => self.exact_vote(peer, &chain, &req, &rec).await,
        };
        let commitment = match voted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("verifying ticket {}: {e}", req.ticket_id);
                lock(&self.voted).remove(&round_key);
                return;
            }
        };
        let agrees =
            commitment.output_hash == rec.outputHash && commitment.fuel_used == rec.fuelUsed;
        let signature = match commitment.sign(&self.domain, &self.evm) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("signing a verdict: {e}");
                return;
            }
        };
        match chain
            .submit_verdict(req.ticket_id, &EvmSigned::new(commitment, signature))
            .await
        {
            Ok(()) => self.emit(NodeEvent::Verdict {
                ticket: req.ticket_id,
                agrees,
            }),
            Err(e) => tracing::warn!("posting the verdict on {}: {e}", req.ticket_id),
        }
        // Settle as soon as a majority exists (anyone may; without one yet, the escrow
        // refuses, and the ticket's parties resolve it later).
        if let Err(e) = chain.resolve(req.ticket_id).await {
            tracing::debug!("resolving ticket {} after the verdict: {e}", req.ticket_id);
        }
    }

    /// The vote by re-running the job as it is: its own commitment, "not delivered" in
    /// place of a right output hash when the provider's result did not come.
    async fn exact_vote(
        &self,
        peer: PeerId,
        chain: &Chain,
        req: &VerifyRequest,
        rec: &SietchEscrow::TicketRecord,
    ) -> Result<ResultCommitment, RunError> {
        let report = self.run(peer, &req.spec, req.job_id).await?;
        let mut commitment = own_commitment(&disputed(req, rec), &report);
        let right =
            commitment.output_hash == rec.outputHash && commitment.fuel_used == rec.fuelUsed;
        // A right result counts only if it was delivered: vote "not delivered" otherwise.
        if right
            && !self
                .wait_for_delivery(chain, req.ticket_id, rec.deadline)
                .await
        {
            commitment.output_hash = delivery::NOT_DELIVERED;
        }
        Ok(commitment)
    }

    /// The chain and the request's ticket, when [`check_drawn`] finds this node drawn for
    /// it.
    async fn drawn_for(
        &self,
        req: &VerifyRequest,
    ) -> Result<(Chain, SietchEscrow::TicketRecord), VerifyRefusal> {
        let chain = self.chain.clone().ok_or(VerifyRefusal::NoChain)?;
        let rec = chain
            .ticket(req.ticket_id)
            .await
            .map_err(VerifyRefusal::Unread)?;
        let ticket = DrawnTicket {
            state: rec.state,
            drawn: crate::chain::drawn(&rec.verifiers, rec.drawn),
            channel_id: rec.channelId,
            spec_hash: rec.specHash,
        };
        check_drawn(req, &ticket, chain.me())?;
        Ok((chain, rec))
    }

    /// Waits until this node holds the provider's result for `ticket`, or for
    /// [`delivery_wait`]; whether it holds it.
    pub(super) async fn wait_for_delivery(
        &self,
        chain: &Chain,
        ticket: B256,
        deadline: u64,
    ) -> bool {
        let Ok(now) = chain.now().await else {
            return self.deliveries.get(&ticket).is_some();
        };
        let until = tokio::time::Instant::now() + delivery_wait(deadline.saturating_sub(now));
        loop {
            if self.deliveries.get(&ticket).is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fixtures::spec;

    const ME: Address = Address::repeat_byte(0xa);

    fn request(job_id: B256, channel_id: B256) -> VerifyRequest {
        VerifyRequest {
            ticket_id: sietch_market::ticket_id(&channel_id, &job_id),
            job_id,
            spec: spec(),
            delivery: None,
        }
    }

    #[test]
    fn a_verifier_runs_only_the_ticket_it_was_drawn_for() {
        let (job, channel) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let drawn = [Address::repeat_byte(0xc), ME];
        let ticket = DrawnTicket {
            state: TICKET_DRAWN,
            drawn: &drawn,
            channel_id: channel,
            spec_hash: spec().hash(),
        };
        let req = request(job, channel);
        check_drawn(&req, &ticket, ME).unwrap();
        let not_drawn = DrawnTicket {
            state: TICKET_DRAWN - 1,
            ..ticket
        };
        assert!(matches!(
            check_drawn(&req, &not_drawn, ME),
            Err(VerifyRefusal::NotDrawn)
        ));
        let other = Address::repeat_byte(0xd);
        assert!(matches!(
            check_drawn(&req, &ticket, other),
            Err(VerifyRefusal::NotMe)
        ));
        let other_job = VerifyRequest {
            job_id: B256::repeat_byte(3),
            ..request(job, channel)
        };
        assert!(matches!(
            check_drawn(&other_job, &ticket, ME),
            Err(VerifyRefusal::OtherJob)
        ));
        let mut other_spec = request(job, channel);
        other_spec.spec.limits.fuel += 1;
        assert!(matches!(
            check_drawn(&other_spec, &ticket, ME),
            Err(VerifyRefusal::OtherSpec)
        ));
    }

    #[test]
    fn a_verifier_waits_for_delivery_until_a_quarter_of_the_window_is_left() {
        assert_eq!(delivery_wait(100), Duration::from_secs(75));
        // At least 5 s are left to vote.
        assert_eq!(delivery_wait(12), Duration::from_secs(7));
        assert_eq!(delivery_wait(4), Duration::ZERO);
    }
}
