//! One attempt at a job: take a lane to the provider, sign a ticket committing to a fresh
//! check secret, send the request (carrying the lane's waiting payment), wait for the result
//! or the word that none will come, and hold the result to its commitment. Also the
//! verifier's executor, for which a spot check's re-run is an attempt like any other.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libp2p::PeerId;
use sietch_market::Eip712Error;
use sietch_market::eip712::TypedData;
use sietch_market::{B256, JobSpec, Offer, Ticket, U256, check_commit};
use sietch_verifier::{Executor, RerunError, RerunRequest, RunResult};
use tokio::sync::oneshot;

use super::chain_events::Disputable;
use super::channels::LaneError;
use super::lanes::Taken;
use super::reputation::Count;
use super::result_check::{ResultRefused, hold_to_commitment};
use super::{Buyer, MAX_IN_FLIGHT, TICKET_TTL_SECS, now};
use crate::jobs;
use crate::net::{self, JobReply, JobRequest, JobResult, NetError, RefuseReason, ResultAck};
use crate::net::{ResultMessage, wire::WireMessage as _};
use crate::store::{EvmSigned, off_async};
use crate::sync::lock;

/// Why one provider did not deliver a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// No provider was tried.
    #[error("no provider tried")]
    NotTried,
    /// The offer's node key is not a libp2p peer id.
    #[error("the offer's key is not a peer id")]
    BadPeerKey,
    /// No lane to the provider.
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// The ticket could not be signed.
    #[error("cannot sign the ticket: {0}")]
    Sign(Eip712Error),
    /// The buyer waits for as many results as it can hold.
    #[error("too many jobs in flight")]
    TooManyInFlight,
    /// The provider refused the job.
    #[error("refused ({reason:?}): {message}")]
    Refused {
        /// Why, in a word.
        reason: RefuseReason,
        /// Why, in the provider's words.
        message: String,
    },
    /// The provider could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(NetError),
    /// The provider accepted the job and said it could not run it.
    #[error("failed after accepting ({reason:?}): {message}")]
    FailedAfterAccepting {
        /// Why, in a word.
        reason: RefuseReason,
        /// Why, in the provider's words (made printable).
        message: String,
    },
    /// The provider accepted the job and sent no result in time.
    #[error("no result within {secs} s")]
    NoResult {
        /// How long the buyer waited.
        secs: u64,
    },
    /// The result does not hold to its commitment.
    #[error(transparent)]
    Result(#[from] ResultRefused),
    /// The provider was found wrong by a spot check.
    #[error("the provider was found wrong")]
    FoundWrong,
}

impl AttemptError {
    /// Whether the provider accepted the job (and holds its ticket) and delivered nothing:
    /// the lane takes no more tickets and the ticket is disputed if claimed.
    fn undelivered(&self) -> bool {
        matches!(
            self,
            Self::FailedAfterAccepting { .. } | Self::NoResult { .. }
        )
    }
}

/// A result delivered for a ticket, waiting for the buyer's decision.
#[derive(Debug, Clone)]
pub(super) struct Delivered {
    pub(super) peer: PeerId,
    pub(super) taken: Taken,
    pub(super) ticket: EvmSigned<Ticket>,
    pub(super) secret: B256,
    pub(super) result: JobResult,
}

impl Buyer {
    /// Sends the job to one provider and waits for a result that holds to its commitment.
    /// `max_cost`: the most the job can cost at the offer's prices, as the order book found
    /// it (`sietch_market::max_cost`). `rerun`: a spot check's re-run, which never waits for
    /// a busy lane (see `take_lane`).
    pub(super) async fn attempt(
        &self,
        spec: &JobSpec,
        id: B256,
        offer: &Offer,
        max_cost: u128,
        rerun: bool,
    ) -> Result<Delivered, AttemptError> {
        // Counted from the moment of choice (before any wait), so that jobs matched right
        // after this one see it queued for a lane.
        let heading = self.heading.hold(offer.evm_address);
        let peer = net::peer_id_of(&offer.provider).ok_or(AttemptError::BadPeerKey)?;
        for a in &offer.addresses {
            if let Ok(a) = a.parse()
                && let Err(e) = self.net.add_address(peer, a).await
            {
                tracing::debug!("adding an address of {peer}: {e}");
            }
        }
        let max_amount = max_cost.min(spec.price_cap);
        // The escrow holds the provider's charge to its usage at these prices.
        let prices = jobs::ticket_prices(spec, &offer.prices);
        let taken = self
            .take_lane(offer.evm_address, U256::from(max_amount), rerun)
            .await;
        drop(heading);
        let taken = taken?;
        let secret = self.random_b256();
        let ticket = Ticket {
            job_id: id,
            spec_hash: spec.hash(),
            channel_id: taken.channel,
            cumulative_before: taken.cumulative_before,
            max_amount: U256::from(max_amount),
            deadline: spec.deadline.max(now()) + TICKET_TTL_SECS,
            check_commit: check_commit(&secret),
            per_gfuel: prices.per_gfuel,
            per_gpu_second: prices.per_gpu_second,
        };
        let signature = match ticket.sign(&self.domain, &self.evm) {
            Ok(s) => s,
            Err(e) => {
                self.release_lane(&taken, false);
                return Err(AttemptError::Sign(e));
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut w = lock(&self.waiting);
            if w.len() >= MAX_IN_FLIGHT {
                drop(w);
                self.release_lane(&taken, false);
                return Err(AttemptError::TooManyInFlight);
            }
            w.insert((id, peer), tx);
        }
        // The lane's last payment rides along: the provider records it first.
        let paying = self.take_pending(taken.channel);
        let request = JobRequest {
            spec: spec.clone(),
            ticket,
            ticket_signature: signature,
            paying: paying.clone(),
        };
        let outcome = async {
            match self.net.request_job(peer, request).await {
                Ok(JobReply::Accepted { .. }) => {}
                // A short job: its result came with the answer.
                Ok(JobReply::Done(r)) => return Ok(*r),
                Ok(JobReply::Refused { reason, message }) => {
                    return Err(AttemptError::Refused { reason, message });
                }
                Err(e) => {
                    // The payment may not have arrived: it waits on the lane again (a
                    // payment sent twice is recorded once).
                    if let Some(p) = paying {
                        self.wait_on_lane(taken.channel, peer, p);
                    }
                    return Err(AttemptError::Unreachable(e));
                }
            }
            let wait = Duration::from_millis(spec.limits.wall_time_ms)
                + Duration::from_secs(self.config.result_slack_secs);
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(ResultMessage::Done(r))) => Ok(*r),
                // It will not come: on to the next provider now. The ticket is marked as
                // for a job never delivered, should the provider claim it all the same.
                Ok(Ok(ResultMessage::Failed(f))) => Err(AttemptError::FailedAfterAccepting {
                    reason: f.reason,
                    message: sietch_market::printable(&f.message),
                }),
                // Accepted and never answered: its ticket may still be claimed.
                _ => Err(AttemptError::NoResult {
                    secs: wait.as_secs(),
                }),
            }
        }
        .await;
        lock(&self.waiting).remove(&(id, peer));
        let result = match outcome {
            Ok(r) => r,
            Err(why) => {
                let retire = why.undelivered();
                self.release_lane(&taken, retire);
                if retire {
                    // Accepted and never answered: if the provider claims the ticket, the
                    // dispute makes it hand the result over, or refunds this buyer.
                    let ticket = sietch_market::ticket_id(&taken.channel, &id);
                    self.mark_disputable(
                        ticket,
                        Disputable {
                            job: id,
                            channel: taken.channel,
                            check: None,
                            undelivered: true,
                        },
                    )
                    .await;
                    self.dispute_if_claimed(ticket).await;
                }
                return Err(why);
            }
        };
        let delivered = Delivered {
            peer,
            taken,
            ticket: EvmSigned::new(ticket, signature),
            secret,
            result,
        };
        let held = hold_to_commitment(
            &self.domain,
            spec,
            &delivered.ticket.message,
            &delivered.result,
            offer,
            self.chain.as_ref(),
        )
        .await;
        if let Err(why) = held {
            let why = AttemptError::Result(why);
            self.withhold(&delivered, &why.to_string(), None).await;
            self.count_reputation(Count::Event(
                offer.provider,
                sietch_verifier::Event::CheckFailed,
            ))
            .await;
            return Err(why);
        }
        Ok(delivered)
    }

    /// Routes a result (or a failure) from the network to the job waiting for it.
    pub(crate) fn on_result(&self, peer: PeerId, result: ResultMessage) -> ResultAck {
        let waiter = lock(&self.waiting).remove(&(result.job_id(), peer));
        match waiter {
            Some(tx) => {
                // The job gave up waiting just now: nothing to hand it.
                let _ = tx.send(result);
                ResultAck::Received
            }
            None => ResultAck::UnknownJob,
        }
    }

    /// Keeps a job's outputs in the store. Called before the job's last state change, so
    /// that whoever sees it end (`GET /jobs/{id}`, the SDK's `wait`) finds them.
    pub(super) async fn keep_outputs(&self, id: B256, result: &JobResult) {
        let bytes = result.to_bytes();
        let kept = off_async(&self.store, move |s| s.put_job_outputs(&id, &bytes)).await;
        super::warn_unrecorded(kept, || format!("the outputs of {id}"));
    }
}

/// The verifier's executor over the node's network: a re-run is a job like any other, on
/// the re-run provider's own lane, with the original's job id; its payment waits for the
/// check's decision.
pub(super) struct NetExecutor(pub(super) Arc<Buyer>);

#[async_trait]
impl Executor for NetExecutor {
    async fn rerun(&self, r: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        let b = &self.0;
        // Inputs only the check holds (a rescoring job's claimed completions) go into the
        // blob store first: the re-run provider fetches them by hash like any input.
        if !r.blobs.is_empty() {
            let blobs = r.blobs.to_vec();
            off_async(&b.store, move |s| {
                blobs
                    .iter()
                    .try_for_each(|bytes| s.blobs().put(bytes).map(drop))
            })
            .await
            .ok_or_else(|| RerunError::Failed("storing the re-run's inputs stopped".into()))?
            .map_err(|e| RerunError::Failed(format!("storing the re-run's inputs: {e}")))?;
        }
        let d = b
            .attempt(
                r.spec,
                r.job_id,
                r.provider,
                jobs::max_cost(r.spec, &r.provider.prices),
                true,
            )
            .await
            .map_err(|e| RerunError::Failed(e.to_string()))?;
        let out = RunResult {
            commitment: d.result.commitment,
            signature: d.result.signature,
            outputs: r.with_outputs.then(|| d.result.outputs()),
        };
        lock(&b.reruns).insert((r.job_id, r.provider.evm_address), d);
        Ok(out)
    }
}
