//! The buyer role: submit jobs, check them, pay for them.
//!
//! For each job: match offers in the book (requirements, price, stake against the job's
//! value, reputation and latency; never a provider the job avoids), take a **lane** to the
//! chosen provider (a payment channel with no other job in flight: each ticket's range on
//! the channel's cumulative line then
//! starts where the last voucher ended, so a ticket claimed on chain never pays a job twice
//! nor one too little), sign a ticket committing to a fresh check secret, send the request,
//! wait for the result, hold it to the provider's signed commitment (signature, job, spec,
//! output hash recomputed from the outputs), reveal the secret and, when the job is sampled,
//! have it re-run elsewhere by the verifier ([`sietch_verifier`]). An accepted job is paid by
//! a new cumulative voucher; a provider found wrong is not paid, and its ticket, if it claims
//! it, is disputed on chain. A provider that refuses, vanishes, answers garbage or fails its
//! check is left for the next offer.
//!
//! Lanes are opened on chain on demand (`openChannel`, a deposit of `channel_deposit` or
//! what the job needs) and topped up when they run low; without a chain (tests, private
//! networks) a lane is a local channel id and vouchers are signed all the same.
//!
//! The role's parts, each a module: [`lanes`] (the lane table and its rules, no network),
//! [`channels`] (lanes on chain: open, top up, close), [`attempt`] (one provider: request,
//! wait, result), [`result_check`] (a result held to its commitment), [`payment`]
//! (vouchers, payments carried on lanes, withholding), [`spot_check`] (the verifier's
//! re-runs), [`chain_events`] (disputes and reputation from the escrow's events),
//! [`reputation`] (the reputation table, kept in the store), [`restore`] (what a
//! restarted buyer takes back: lanes, tickets to dispute) and [`sent`] (the providers each
//! recent job was sent to). This file holds the [`Buyer`]
//! handle and the run of one job across its attempts.

mod attempt;
mod chain_events;
mod channels;
mod lanes;
mod payment;
mod reputation;
mod restore;
mod result_check;
mod sent;
mod spot_check;

pub use attempt::AttemptError;
pub use channels::LaneError;
pub use payment::PayError;
pub use restore::RestoreError;
pub use result_check::ResultRefused;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use libp2p::PeerId;
use rand::{Rng, SeedableRng};
use sietch_market::eip712::Domain;
use sietch_market::{Address, B256, JobSpec, Offer, U256, job_id};
use sietch_verifier::{Decision, ReputationTable};
use tokio::sync::{Notify, oneshot};

use crate::chain::{Chain, ChainError};
use crate::config::NodeConfig;
use crate::events::{Events, JobEnd, NodeEvent};
use crate::jobs;
use crate::net::{self, JobResult, Network, ResultMessage};
use crate::store::{EvmSigned, JobRecord, JobState, Side, Store, StoreError, off_async};
use crate::sync::lock;
use attempt::Delivered;
use chain_events::Disputable;
use lanes::{Lanes, PerProvider};
use payment::Paying;

/// Providers tried for one job before giving up.
const MAX_ATTEMPTS: usize = 5;
/// Offers considered per job.
const CANDIDATES: usize = 32;
/// Jobs waiting for a result, at most (each holds a lane).
const MAX_IN_FLIGHT: usize = 4096;
/// How long a ticket lets the provider claim it, beyond the job's deadline.
const TICKET_TTL_SECS: u64 = 3600;
/// How long a payment waits on its lane for the next job's request to carry it before it is
/// sent alone on `/sietch/pay/1`.
pub const PAYMENT_CARRY_WAIT: Duration = Duration::from_millis(20);

fn now() -> u64 {
    (net::system_clock())()
}

/// Logs a store write that failed (or whose task stopped), naming what was not recorded.
fn warn_unrecorded<T, E: std::fmt::Display>(
    written: Option<Result<T, E>>,
    what: impl FnOnce() -> String,
) {
    match written {
        Some(Ok(_)) => {}
        Some(Err(e)) => tracing::warn!("{} was not recorded: {e}", what()),
        None => tracing::warn!("{} was not recorded: the store's task stopped", what()),
    }
}

/// Why a job could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuyError {
    /// No offer in the book can run the spec: the market's explanation (how many offers
    /// passed each filter, the one that stopped them, the closest misses).
    #[error("no offer matches: {0}")]
    NoMatch(Box<sietch_market::NoMatch>),
    /// Every provider tried refused, vanished or failed.
    #[error("no provider delivered after {attempts} attempts; last: {last}")]
    Exhausted {
        /// Providers tried.
        attempts: usize,
        /// The last reason.
        last: Box<AttemptError>,
    },
    /// The spec's module or inputs are not in the node's blob store.
    #[error("blob {0} is not in the node's store: upload it first")]
    MissingBlob(B256),
    /// The node's store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The chain refused or could not be reached.
    #[error("{0}")]
    Chain(ChainError),
    /// No lane could be had.
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// A delivered result could not be paid.
    #[error(transparent)]
    Pay(#[from] PayError),
    /// A task of the node stopped.
    #[error("{0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// How a job ended, for the submitter.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The job.
    pub job_id: B256,
    /// The provider whose result stands.
    pub provider: Address,
    /// Its result (outputs and signed commitment).
    pub result: JobResult,
    /// Paid: the amount of the voucher for it. Zero when payment was withheld.
    pub paid: U256,
    /// The spot check, if the job was sampled.
    pub check: Option<Decision>,
    /// Time from submission to the verified result.
    pub elapsed: Duration,
}

/// The buyer.
pub struct Buyer {
    /// Itself, for the tasks it starts.
    me: std::sync::Weak<Buyer>,
    config: NodeConfig,
    store: Arc<Store>,
    net: Network,
    events: Events,
    evm: PrivateKeySigner,
    domain: Domain,
    chain: Option<Chain>,
    lanes: Mutex<Lanes>,
    /// Lanes being opened on chain, by provider (counted against `max_lanes`).
    opening: PerProvider,
    /// Jobs that chose a provider and wait for a lane to it, by provider: matching sends a
    /// job elsewhere rather than queue it behind them.
    heading: PerProvider,
    lane_freed: Notify,
    /// Rung when a payment starts waiting on its lane.
    payment_waits: Notify,
    /// Jobs waiting for their result (or the word that none will come), by (job, provider's
    /// peer).
    waiting: Mutex<HashMap<(B256, PeerId), oneshot::Sender<ResultMessage>>>,
    /// Re-run results waiting for the check's decision, by (job, provider).
    reruns: Mutex<HashMap<(B256, Address), Delivered>>,
    /// Tickets whose payment was withheld (a result that broke its commitment, a provider
    /// found wrong, a re-run against the majority, a test-only withholding, a result that
    /// never came), with their job and the check that found them wrong: disputed if claimed
    /// on chain.
    disputable: Mutex<HashMap<B256, Disputable>>,
    reputation: Mutex<ReputationTable>,
    rng: Mutex<rand::rngs::StdRng>,
    /// The providers each recent job was sent to (the API's `sent_to`).
    sent: Mutex<sent::SentTo>,
}

/// The buyer's parts, from the service.
pub(crate) struct BuyerParts {
    pub(crate) config: NodeConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) net: Network,
    pub(crate) events: Events,
    pub(crate) evm: PrivateKeySigner,
    pub(crate) domain: Domain,
    pub(crate) chain: Option<Chain>,
}

impl Buyer {
    /// A buyer with what its store keeps: the reputation table and the tickets to dispute
    /// (its lanes come back with [`Buyer::restore_lanes`], which needs the chain).
    pub(crate) fn new(p: BuyerParts) -> Result<Arc<Self>, StoreError> {
        let seed = p
            .config
            .test_seed
            .unwrap_or_else(|| rand::rngs::OsRng.r#gen());
        let reputation = reputation::load(&p.store)?;
        let disputable = restore::disputable(&p.store)?;
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config: p.config,
            store: p.store,
            net: p.net,
            events: p.events,
            evm: p.evm,
            domain: p.domain,
            chain: p.chain,
            lanes: Mutex::new(Lanes::default()),
            opening: PerProvider::default(),
            heading: PerProvider::default(),
            lane_freed: Notify::new(),
            payment_waits: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            reruns: Mutex::new(HashMap::new()),
            disputable: Mutex::new(disputable),
            reputation: Mutex::new(reputation),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            sent: Mutex::new(sent::SentTo::default()),
        }))
    }

    /// The node's EVM address (the buyer of its jobs).
    pub fn address(&self) -> Address {
        self.evm.address()
    }

    /// The providers job `id` was sent to, in order (in memory since start, for the last
    /// 10,000 jobs): what a client re-submitting it elsewhere avoids.
    pub fn sent_to(&self, id: &B256) -> Vec<Address> {
        lock(&self.sent).of(id)
    }

    fn emit(&self, e: NodeEvent) {
        self.events.emit(e);
    }

    /// The test-only withholding switch: whether this job's voucher is refused.
    fn withholds(&self, job: &B256) -> bool {
        let ppm = self.config.test_withhold_ppm;
        ppm > 0 && {
            let h = blake3::hash(&[job.as_slice(), b"withhold"].concat());
            let mut x = [0u8; 4];
            x.copy_from_slice(&h.as_bytes()[..4]);
            u32::from_le_bytes(x) % 1_000_000 < ppm
        }
    }

    /// 32 random bytes: check secrets, channel salts, re-run draws. Never zeros: a lock
    /// poisoned by a panic elsewhere still holds a usable generator.
    fn random_b256(&self) -> B256 {
        let mut b = [0u8; 32];
        crate::sync::lock(&self.rng).fill(&mut b);
        B256::from(b)
    }

    // ---------------------------------------------------------------- submit

    /// Runs `spec` on the network: the module and inputs must be in the node's blob store.
    /// Returns when the result is verified (where sampled) and paid.
    pub async fn submit(self: &Arc<Self>, spec: JobSpec) -> Result<Finished, BuyError> {
        self.submit_avoiding(spec, &[]).await
    }

    /// [`Buyer::submit`], never to the providers whose EVM addresses are in `avoid` (a job
    /// submitted again after one of them failed or was slow).
    pub async fn submit_avoiding(
        self: &Arc<Self>,
        spec: JobSpec,
        avoid: &[Address],
    ) -> Result<Finished, BuyError> {
        let (me, s) = (self.clone(), spec.clone());
        let id = tokio::task::spawn_blocking(move || me.prepare(&s)).await??;
        self.run_prepared(&spec, id, avoid).await
    }

    /// Whether some offer other than those of `avoid` can run `spec` now; `Err` is the
    /// market's explanation ([`BuyError::NoMatch`]).
    pub fn can_match(&self, spec: &JobSpec, avoid: &[Address]) -> Result<(), BuyError> {
        self.candidates(spec, avoid).map(|_| ())
    }

    /// Records a new job for `spec` and returns its id; [`Buyer::run_prepared`] runs it.
    pub fn prepare(&self, spec: &JobSpec) -> Result<B256, BuyError> {
        for hash in jobs::blob_hashes(spec) {
            if !self.store.blobs().has(&hash) {
                return Err(BuyError::MissingBlob(hash));
            }
        }
        let nonce: u64 = lock(&self.rng).r#gen();
        let id = job_id(self.address(), nonce, spec.hash());
        let record = JobRecord::new(id, spec.hash(), Address::ZERO, now());
        self.store.insert_job(Side::Buyer, spec, &record)?;
        self.emit(NodeEvent::Submitted { job: id });
        Ok(id)
    }

    /// Runs a job [`Buyer::prepare`] recorded, never on the providers of `avoid`; keeps its
    /// outputs in the store.
    pub async fn run_prepared(
        self: &Arc<Self>,
        spec: &JobSpec,
        id: B256,
        avoid: &[Address],
    ) -> Result<Finished, BuyError> {
        let started = Instant::now();
        let r = self.run(spec, id, avoid, started).await;
        match &r {
            Ok(_) => {}
            Err(e) => {
                let note: String = e.to_string().chars().take(200).collect();
                let failed = off_async(&self.store, move |s| {
                    s.set_job_state(Side::Buyer, &id, JobState::Failed, &note, now())
                })
                .await;
                warn_unrecorded(failed, || format!("the failure of job {id} ({e})"));
                self.emit(NodeEvent::Finished {
                    job: id,
                    state: JobEnd::Failed,
                    millis: started.elapsed().as_millis() as u64,
                });
            }
        }
        r
    }

    async fn run(
        self: &Arc<Self>,
        spec: &JobSpec,
        id: B256,
        avoid: &[Address],
        started: Instant,
    ) -> Result<Finished, BuyError> {
        let mut offers = self.candidates(spec, avoid)?;
        // Providers with a lane free (or room for a new one) first, in rank order: a busy
        // provider is not waited for while another can start at once.
        offers.sort_by_key(|(o, _)| !self.has_room(o.evm_address));
        let mut last = AttemptError::NotTried;
        for (attempt, (offer, max_cost)) in offers.iter().take(MAX_ATTEMPTS).enumerate() {
            lock(&self.sent).record(id, offer.evm_address);
            self.emit(NodeEvent::Sent {
                job: id,
                provider: offer.evm_address,
                attempt: attempt as u32 + 1,
            });
            let delivered = match self.attempt(spec, id, offer, *max_cost, false).await {
                Ok(d) => d,
                Err(why) => {
                    self.emit(NodeEvent::Retrying {
                        job: id,
                        provider: offer.evm_address,
                        reason: why.to_string(),
                    });
                    last = why;
                    continue;
                }
            };
            // Not sampled (most jobs): the delivery, the outputs and the payment are
            // recorded in one commit when the job is paid.
            let sampled =
                sietch_market::is_checked(&delivered.secret, &id, spec.verification.sampling_ppm);
            let at_once = !sampled && !self.withholds(&id);
            if !at_once {
                let (provider, ticket, result) = (
                    offer.evm_address,
                    delivered.ticket,
                    EvmSigned::new(delivered.result.commitment, delivered.result.signature),
                );
                let recorded = off_async(&self.store, move |s| {
                    s.record_delivery(&id, provider, &ticket, &result, now())
                })
                .await;
                warn_unrecorded(recorded, || {
                    format!("the delivery of job {id} by {provider}")
                });
            }
            self.emit(NodeEvent::ResultIn {
                job: id,
                outcome: delivered.result.outcome,
                amount: delivered.result.commitment.amount,
                fuel: delivered.result.commitment.fuel_used,
            });
            if at_once {
                let paid = self.pay(&delivered, Paying::Delivered(id)).await?;
                self.emit(NodeEvent::Finished {
                    job: id,
                    state: JobEnd::Paid,
                    millis: started.elapsed().as_millis() as u64,
                });
                return Ok(Finished {
                    job_id: id,
                    provider: offer.evm_address,
                    result: delivered.result,
                    paid,
                    check: None,
                    elapsed: started.elapsed(),
                });
            }
            let (check, majority) = match self.check(spec, offer, &delivered).await {
                Some((c, m)) => (Some(c), m),
                None => (None, None),
            };
            let decision = check.as_ref().map(|c| c.decision);
            if let Some(c) = &check {
                self.record_check(c).await;
            }
            return match check {
                Some(c) if c.decision == Decision::ProviderWrong => {
                    // Withhold, keep the evidence for the dispute, and take the result the
                    // majority computed: its outputs are kept before the job ends, so a
                    // client that sees the end finds them.
                    if let Some((_, result)) = &majority {
                        self.keep_outputs(id, result).await;
                    }
                    self.withhold(
                        &delivered,
                        "spot check failed: the majority of re-runs differ",
                        Some(c),
                    )
                    .await;
                    let recorded =
                        off_async(&self.store, move |s| s.record_check(&id, false, now())).await;
                    warn_unrecorded(recorded, || format!("the failed check of job {id}"));
                    self.emit(NodeEvent::Finished {
                        job: id,
                        state: JobEnd::Withheld,
                        millis: started.elapsed().as_millis() as u64,
                    });
                    match majority {
                        Some((provider, result)) => Ok(Finished {
                            job_id: id,
                            provider,
                            result,
                            paid: U256::ZERO,
                            check: decision,
                            elapsed: started.elapsed(),
                        }),
                        None => Err(BuyError::Exhausted {
                            attempts: attempt + 1,
                            last: Box::new(AttemptError::FoundWrong),
                        }),
                    }
                }
                other if self.withholds(&id) => {
                    self.keep_outputs(id, &delivered.result).await;
                    if other.is_some() {
                        let recorded =
                            off_async(&self.store, move |s| s.record_check(&id, true, now())).await;
                        warn_unrecorded(recorded, || format!("the passed check of job {id}"));
                    }
                    // Test-only: a buyer that keeps an honest result and refuses to pay.
                    self.withhold(&delivered, "test: withholding an honest result", None)
                        .await;
                    self.emit(NodeEvent::Finished {
                        job: id,
                        state: JobEnd::Withheld,
                        millis: started.elapsed().as_millis() as u64,
                    });
                    Ok(Finished {
                        job_id: id,
                        provider: offer.evm_address,
                        result: delivered.result,
                        paid: U256::ZERO,
                        check: decision,
                        elapsed: started.elapsed(),
                    })
                }
                other => {
                    self.keep_outputs(id, &delivered.result).await;
                    if other.is_some() {
                        let recorded =
                            off_async(&self.store, move |s| s.record_check(&id, true, now())).await;
                        warn_unrecorded(recorded, || format!("the passed check of job {id}"));
                    }
                    let paid = self.pay(&delivered, Paying::Job(id)).await?;
                    self.emit(NodeEvent::Finished {
                        job: id,
                        state: JobEnd::Paid,
                        millis: started.elapsed().as_millis() as u64,
                    });
                    Ok(Finished {
                        job_id: id,
                        provider: offer.evm_address,
                        result: delivered.result,
                        paid,
                        check: decision,
                        elapsed: started.elapsed(),
                    })
                }
            };
        }
        Err(BuyError::Exhausted {
            attempts: offers.len().min(MAX_ATTEMPTS),
            last: Box::new(last),
        })
    }

    /// Offers that can run `spec`, best first, none of a provider in `avoid`, each with the
    /// most the job can cost at its prices (the book's `max_cost`, which the ticket allows).
    fn candidates(
        &self,
        spec: &JobSpec,
        avoid: &[Address],
    ) -> Result<Vec<(Offer, u128)>, BuyError> {
        let book = self.net.book();
        let book = lock(&book);
        let reputation = lock(&self.reputation);
        let found = book
            .find_avoiding(spec, now(), &*reputation, CANDIDATES, avoid)
            .map_err(|e| BuyError::NoMatch(Box::new(e)))?;
        Ok(found
            .iter()
            .filter_map(|m| {
                book.get(&m.provider)
                    .map(|s| (s.payload.clone(), m.max_cost))
            })
            .filter(|(o, _)| o.evm_address != self.address())
            .collect())
    }
}
