//! The buyer role: submit jobs, check them, pay for them.
//!
//! For each job: match offers in the book (requirements, price, stake against the job's
//! value, reputation and latency), take a **lane** to the chosen provider (a payment channel
//! with no other job in flight: each ticket's range on the channel's cumulative line then
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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use libp2p::PeerId;
use rand::{Rng, SeedableRng};
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::eip712::{Domain, TypedData};
use sietch_market::{Address, B256, JobSpec, Offer, Ticket, U256, Voucher, check_commit, job_id};
use sietch_verifier::{
    Check, Decision, Executor, Job, OutcomeCode, Outputs, ReputationTable, RerunError,
    RerunRequest, RunResult, Verifier, VerifierConfig,
};
use tokio::sync::{Notify, oneshot};

use crate::chain::Chain;
use crate::config::NodeConfig;
use crate::events::{Events, NodeEvent};
use crate::jobs;
use crate::net::{
    self, JobReply, JobRequest, JobResult, Network, Payment, ResultAck, ResultMessage,
};
use crate::store::{EvmSigned, JobRecord, JobState, ReputationEvent, Side, Store, off_async};

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

/// Why a job could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuyError {
    /// No offer in the book can run the spec.
    #[error("no offer matches: {0}")]
    NoMatch(String),
    /// Every provider tried refused, vanished or failed.
    #[error("no provider delivered after {attempts} attempts; last: {last}")]
    Exhausted {
        /// Providers tried.
        attempts: usize,
        /// The last reason.
        last: String,
    },
    /// The spec's module or inputs are not in the node's blob store.
    #[error("blob {0} is not in the node's store: upload it first")]
    MissingBlob(B256),
    /// The node's store or chain failed.
    #[error("{0}")]
    Node(String),
}

fn node_err(e: impl std::fmt::Display) -> BuyError {
    BuyError::Node(e.to_string())
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

/// One lane: a channel to a provider and where its cumulative line stands.
#[derive(Debug, Clone)]
struct Lane {
    channel: B256,
    provider: Address,
    /// Latest voucher signed (the next ticket's range starts here).
    cumulative: U256,
    /// What the channel holds in all (deposits).
    deposit: U256,
    busy: bool,
    /// A job on it ended without a voucher: its ticket may still be claimed, so the lane
    /// takes no more tickets; it is closed.
    retired: bool,
    /// When a started close may be finalized.
    closes_at: Option<u64>,
    /// Closed on chain: what was left went back to the buyer.
    closed: bool,
    /// The payment of the lane's last job, signed and stored, waiting for the next job's
    /// request to carry it (or [`PAYMENT_CARRY_WAIT`], then sent alone), with when it
    /// began to wait. The provider takes no new ticket on the channel before it has it.
    pending: Option<(Payment, PeerId, Instant)>,
    /// A top-up ahead of need is on its way to the chain.
    topping: bool,
}

/// What a payment settles in the buyer's records.
#[derive(Debug, Clone, Copy)]
enum Paying {
    /// Its own job, whose delivery and check are recorded.
    Job(B256),
    /// Its own job, delivered and not sampled: recorded with the payment, in one commit.
    Delivered(B256),
    /// A spot check's re-run: only the voucher.
    Rerun,
}

/// A lane taken for one job.
#[derive(Debug, Clone, Copy)]
struct Taken {
    channel: B256,
    provider: Address,
    cumulative_before: U256,
}

/// A ticket the buyer disputes if its provider claims it.
#[derive(Debug, Clone)]
struct Disputable {
    job: B256,
    /// The check that found the provider wrong (the evidence), if one did.
    check: Option<Check>,
    /// The result never arrived: disputed as undelivered, so the verifiers hand it over.
    undelivered: bool,
}

/// A result delivered for a ticket, waiting for the buyer's decision.
#[derive(Debug, Clone)]
struct Delivered {
    peer: PeerId,
    taken: Taken,
    ticket: EvmSigned<Ticket>,
    secret: B256,
    result: JobResult,
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
    lanes: Mutex<Vec<Lane>>,
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
    pub(crate) fn new(p: BuyerParts) -> Arc<Self> {
        let seed = p
            .config
            .test_seed
            .unwrap_or_else(|| rand::rngs::OsRng.r#gen());
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config: p.config,
            store: p.store,
            net: p.net,
            events: p.events,
            evm: p.evm,
            domain: p.domain,
            chain: p.chain,
            lanes: Mutex::new(Vec::new()),
            opening: PerProvider::default(),
            heading: PerProvider::default(),
            lane_freed: Notify::new(),
            payment_waits: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            reruns: Mutex::new(HashMap::new()),
            disputable: Mutex::new(HashMap::new()),
            reputation: Mutex::new(ReputationTable::default()),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        })
    }

    /// The node's EVM address (the buyer of its jobs).
    pub fn address(&self) -> Address {
        self.evm.address()
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
        let (me, s) = (self.clone(), spec.clone());
        let id = tokio::task::spawn_blocking(move || me.prepare(&s))
            .await
            .map_err(node_err)??;
        self.run_prepared(&spec, id).await
    }

    /// Records a new job for `spec` and returns its id; [`Buyer::run_prepared`] runs it.
    pub fn prepare(&self, spec: &JobSpec) -> Result<B256, BuyError> {
        for hash in jobs::blob_hashes(spec) {
            if !self.store.blobs().has(&hash) {
                return Err(BuyError::MissingBlob(hash));
            }
        }
        let nonce: u64 = self.rng.lock().map(|mut r| r.r#gen()).unwrap_or(0);
        let id = job_id(self.address(), nonce, spec.hash());
        let record = JobRecord::new(id, spec.hash(), Address::ZERO, now());
        self.store
            .insert_job(Side::Buyer, spec, &record)
            .map_err(node_err)?;
        self.emit(NodeEvent::Submitted {
            job: id.to_string(),
        });
        Ok(id)
    }

    /// Runs a job [`Buyer::prepare`] recorded; keeps its outputs in the store.
    pub async fn run_prepared(
        self: &Arc<Self>,
        spec: &JobSpec,
        id: B256,
    ) -> Result<Finished, BuyError> {
        let started = Instant::now();
        let r = self.run(spec, id, started).await;
        match &r {
            Ok(_) => {}
            Err(e) => {
                let note: String = e.to_string().chars().take(200).collect();
                let _ = off_async(&self.store, move |s| {
                    s.set_job_state(Side::Buyer, &id, JobState::Failed, &note, now())
                })
                .await;
                self.emit(NodeEvent::Finished {
                    job: id.to_string(),
                    state: "failed".into(),
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
        started: Instant,
    ) -> Result<Finished, BuyError> {
        let mut offers = self.candidates(spec)?;
        // Providers with a lane free (or room for a new one) first, in rank order: a busy
        // provider is not waited for while another can start at once.
        offers.sort_by_key(|o| !self.has_room(o.evm_address));
        let mut last = String::from("no provider tried");
        for (attempt, offer) in offers.iter().take(MAX_ATTEMPTS).enumerate() {
            self.emit(NodeEvent::Sent {
                job: id.to_string(),
                provider: offer.evm_address.to_string(),
                attempt: attempt as u32 + 1,
            });
            let delivered = match self.attempt(spec, id, offer, false).await {
                Ok(d) => d,
                Err(why) => {
                    self.emit(NodeEvent::Retrying {
                        job: id.to_string(),
                        provider: offer.evm_address.to_string(),
                        reason: why.clone(),
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
                let _ = off_async(&self.store, move |s| {
                    s.record_delivery(&id, provider, &ticket, &result, now())
                })
                .await;
            }
            self.emit(NodeEvent::ResultIn {
                job: id.to_string(),
                outcome: jobs::outcome_text(&delivered.result),
                amount: delivered.result.commitment.amount.to_string(),
                fuel: delivered.result.commitment.fuel_used,
            });
            if at_once {
                let paid = self.pay(&delivered, Paying::Delivered(id)).await?;
                self.emit(NodeEvent::Finished {
                    job: id.to_string(),
                    state: "paid".into(),
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
                self.record_check(c);
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
                    let _ =
                        off_async(&self.store, move |s| s.record_check(&id, false, now())).await;
                    self.emit(NodeEvent::Finished {
                        job: id.to_string(),
                        state: "withheld".into(),
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
                            last: "the provider was found wrong".into(),
                        }),
                    }
                }
                other if self.withholds(&id) => {
                    self.keep_outputs(id, &delivered.result).await;
                    if other.is_some() {
                        let _ =
                            off_async(&self.store, move |s| s.record_check(&id, true, now())).await;
                    }
                    // Test-only: a buyer that keeps an honest result and refuses to pay.
                    self.withhold(&delivered, "test: withholding an honest result", None)
                        .await;
                    self.emit(NodeEvent::Finished {
                        job: id.to_string(),
                        state: "withheld".into(),
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
                        let _ =
                            off_async(&self.store, move |s| s.record_check(&id, true, now())).await;
                    }
                    let paid = self.pay(&delivered, Paying::Job(id)).await?;
                    self.emit(NodeEvent::Finished {
                        job: id.to_string(),
                        state: "paid".into(),
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
            last,
        })
    }

    /// Keeps a job's outputs in the store. Called before the job's last state change, so
    /// that whoever sees it end (`GET /jobs/{id}`, the SDK's `wait`) finds them.
    async fn keep_outputs(self: &Arc<Self>, id: B256, result: &JobResult) {
        use crate::net::wire::WireMessage;
        let bytes = result.to_bytes();
        if let Some(Err(e)) = off_async(&self.store, move |s| s.put_job_outputs(&id, &bytes)).await
        {
            tracing::warn!("keeping the outputs of {id}: {e}");
        }
    }

    /// Offers that can run `spec`, best first.
    fn candidates(&self, spec: &JobSpec) -> Result<Vec<Offer>, BuyError> {
        let book = self.net.book();
        let book = book.lock().map_err(node_err)?;
        let reputation = self.reputation.lock().map_err(node_err)?;
        let found = book
            .find(spec, now(), &*reputation, CANDIDATES)
            .map_err(|e| BuyError::NoMatch(e.to_string()))?;
        Ok(found
            .iter()
            .filter_map(|m| book.get(&m.provider).map(|s| s.payload.clone()))
            .filter(|o| o.evm_address != self.address())
            .collect())
    }

    /// Sends the job to one provider and waits for a result that holds to its commitment.
    /// `rerun`: a spot check's re-run, which never waits for a busy lane (see `take_lane`).
    async fn attempt(
        &self,
        spec: &JobSpec,
        id: B256,
        offer: &Offer,
        rerun: bool,
    ) -> Result<Delivered, String> {
        // Counted from the moment of choice (before any wait), so that jobs matched right
        // after this one see it queued for a lane.
        let heading = self.heading.hold(offer.evm_address);
        let peer = net::peer_id_of(&offer.provider).ok_or("the offer's key is not a peer id")?;
        for a in &offer.addresses {
            if let Ok(a) = a.parse() {
                let _ = self.net.add_address(peer, a).await;
            }
        }
        let max_amount = jobs::max_cost(spec, &offer.prices).min(spec.price_cap);
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
                return Err(format!("cannot sign the ticket: {e}"));
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiting.lock().map_err(|_| "buyer state")?;
            if w.len() >= MAX_IN_FLIGHT {
                self.release_lane(&taken, false);
                return Err("too many jobs in flight".into());
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
                    return Err((false, format!("refused ({reason:?}): {message}")));
                }
                Err(e) => {
                    // The payment may not have arrived: it waits on the lane again (a
                    // payment sent twice is recorded once).
                    if let Some(p) = paying {
                        self.wait_on_lane(taken.channel, peer, p);
                    }
                    return Err((false, format!("unreachable: {e}")));
                }
            }
            let wait = Duration::from_millis(spec.limits.wall_time_ms)
                + Duration::from_secs(self.config.result_slack_secs);
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(ResultMessage::Done(r))) => Ok(*r),
                // It will not come: on to the next provider now. The ticket is marked as
                // for a job never delivered, should the provider claim it all the same.
                Ok(Ok(ResultMessage::Failed(f))) => Err((
                    true,
                    format!(
                        "failed after accepting ({:?}): {}",
                        f.reason,
                        sietch_market::printable(&f.message)
                    ),
                )),
                // Accepted and never answered: its ticket may still be claimed.
                _ => Err((true, format!("no result within {} s", wait.as_secs()))),
            }
        }
        .await;
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&(id, peer));
        }
        let result = match outcome {
            Ok(r) => r,
            Err((retire, why)) => {
                self.release_lane(&taken, retire);
                if retire {
                    // Accepted and never answered: if the provider claims the ticket, the
                    // dispute makes it hand the result over, or refunds this buyer.
                    let ticket = Chain::ticket_id(taken.channel, id);
                    self.mark_disputable(
                        ticket,
                        Disputable {
                            job: id,
                            check: None,
                            undelivered: true,
                        },
                    );
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
        if let Err(why) = self.hold_to_commitment(spec, &delivered, offer) {
            self.withhold(&delivered, &why, None).await;
            if let Ok(mut r) = self.reputation.lock() {
                r.count(offer.provider, sietch_verifier::Event::CheckFailed);
            }
            let _ = self
                .store
                .record_reputation(&offer.evm_address, ReputationEvent::CheckFailed);
            return Err(why);
        }
        Ok(delivered)
    }

    /// A result must be signed by the offer's account, for this job and ticket, within the
    /// ticket's maximum, and its outputs must hash to what the commitment says.
    fn hold_to_commitment(
        &self,
        spec: &JobSpec,
        d: &Delivered,
        offer: &Offer,
    ) -> Result<(), String> {
        let c = &d.result.commitment;
        let t = &d.ticket.message;
        if c.job_id != t.job_id || d.result.job_id != t.job_id {
            return Err("the result is for another job".into());
        }
        if c.spec_hash != t.spec_hash {
            return Err("the result's spec hash is not the job's".into());
        }
        if c.channel_id != t.channel_id {
            return Err("the result is signed for another channel's ticket".into());
        }
        if c.amount > t.max_amount {
            return Err(format!(
                "the result charges {} over the ticket's {}",
                c.amount, t.max_amount
            ));
        }
        // GPU time is the provider's own measure, but no more than the job's wall time on
        // each GPU it asked for; the charge is no more than the usage at the offer's prices.
        if c.gpu_millis > jobs::max_gpu_millis(spec) {
            return Err(format!(
                "the result bills {} GPU-ms; the job allows at most {}",
                c.gpu_millis,
                jobs::max_gpu_millis(spec)
            ));
        }
        let metered = jobs::charge(c.fuel_used, c.gpu_millis, &offer.prices, t.max_amount);
        if c.amount > metered {
            return Err(format!(
                "the result charges {} for usage that costs {metered} at the offer's prices",
                c.amount
            ));
        }
        c.verify(&self.domain, &d.result.signature, offer.evm_address)
            .map_err(|e| format!("the result's signature: {e}"))?;
        // The provider names files on this machine's disk: one rule (`market::names`), and
        // each name once.
        let mut names = std::collections::HashSet::new();
        for (name, _) in &d.result.files {
            sietch_market::check_file_name(name).map_err(|e| {
                format!(
                    "the result has an output named \"{}\": {e}",
                    sietch_market::printable(name)
                )
            })?;
            if !names.insert(name.as_str()) {
                return Err(format!(
                    "the result has two outputs named \"{}\"",
                    sietch_market::printable(name)
                ));
            }
        }
        match jobs::output_hash_of(&d.result) {
            Some(h) if h == c.output_hash => Ok(()),
            _ => Err("the outputs do not hash to the committed output hash".into()),
        }
    }

    /// Routes a result (or a failure) from the network to the job waiting for it.
    pub(crate) fn on_result(&self, peer: PeerId, result: ResultMessage) -> ResultAck {
        let waiter = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&(result.job_id(), peer)));
        match waiter {
            Some(tx) => {
                let _ = tx.send(result);
                ResultAck::Received
            }
            None => ResultAck::UnknownJob,
        }
    }

    // ---------------------------------------------------------------- checks

    /// Reveals the secret and, when the job is sampled, has the verifier re-run it; pays or
    /// withholds the re-runs by the decision. When the provider is found wrong, also returns
    /// the result of a re-run on the majority's side: the one the buyer keeps.
    async fn check(
        self: &Arc<Self>,
        spec: &JobSpec,
        offer: &Offer,
        d: &Delivered,
    ) -> Option<(Check, Option<(Address, JobResult)>)> {
        let sampled = sietch_market::is_checked(
            &d.secret,
            &d.ticket.message.job_id,
            spec.verification.sampling_ppm,
        );
        if !sampled {
            return None;
        }
        self.emit(NodeEvent::Checking {
            job: d.ticket.message.job_id.to_string(),
            reruns: u32::from(spec.verification.reruns.max(1)),
        });
        let select = if self.config.verify_local_network {
            sietch_verifier::SelectConfig::local()
        } else {
            sietch_verifier::SelectConfig::default()
        };
        let verifier = Verifier::new(
            NetExecutor(self.clone()),
            self.domain,
            VerifierConfig {
                select,
                ..VerifierConfig::default()
            },
        );
        let candidates: Vec<Offer> = {
            let book = self.net.book();
            let Ok(book) = book.lock() else { return None };
            sietch_verifier::candidates(&book, spec, now(), CANDIDATES)
                .into_iter()
                .filter(|o| o.evm_address != self.address())
                .cloned()
                .collect()
        };
        let refs: Vec<&Offer> = candidates.iter().collect();
        let run = RunResult {
            commitment: d.result.commitment,
            signature: d.result.signature,
            outputs: Some(outputs_of(&d.result)),
        };
        let job = Job {
            spec,
            ticket: &d.ticket.message,
            ticket_signature: Some(d.ticket.signature),
            secret: d.secret,
            provider: offer,
            result: &run,
        };
        let mut rng = rand::rngs::StdRng::from_seed(self.random_b256().0);
        let check = verifier.check(&job, &refs, now(), &mut rng).await;
        let id = d.ticket.message.job_id;
        let check = match check {
            Ok(c) => c,
            Err(e) => {
                self.emit(NodeEvent::Warning {
                    message: format!("the check of job {id} could not run: {e}"),
                });
                self.settle_reruns(id, None).await;
                return None;
            }
        };
        let majority = (check.decision == Decision::ProviderWrong)
            .then(|| {
                let owner = check.runs.iter().find(|r| !r.agreement.agrees())?.owner;
                let r = self.reruns.lock().ok()?;
                r.get(&(id, owner)).map(|d| (owner, d.result.clone()))
            })
            .flatten();
        self.settle_reruns(id, Some(&check)).await;
        self.emit(NodeEvent::Checked {
            job: id.to_string(),
            passed: check.pays(),
            decision: format!("{:?}", check.decision),
            reruns: check.reruns_attempted() as u32,
        });
        Some((check, majority))
    }

    fn record_check(&self, check: &Check) {
        if let Ok(mut r) = self.reputation.lock() {
            r.record_check(check);
        }
    }

    /// Pays the re-runs of a check that sided with its decision (or every one when the
    /// check could not decide), and withholds from those against it.
    async fn settle_reruns(&self, id: B256, check: Option<&Check>) {
        let pending: Vec<Delivered> = match self.reruns.lock() {
            Ok(mut r) => {
                let keys: Vec<_> = r.keys().filter(|(j, _)| *j == id).copied().collect();
                keys.into_iter().filter_map(|k| r.remove(&k)).collect()
            }
            Err(_) => return,
        };
        for d in pending {
            // Only a decided check says who was wrong; an undecided one pays every re-run.
            let against = check.is_some_and(|c| {
                let right = match c.decision {
                    Decision::Passed | Decision::ProviderRight => true,
                    Decision::ProviderWrong => false,
                    Decision::NotSampled | Decision::Undecided { .. } => return false,
                };
                c.runs
                    .iter()
                    .find(|r| r.owner == d.taken.provider)
                    .is_some_and(|r| r.agreement.agrees() != right)
            });
            if against {
                self.withhold(&d, "this re-run is against the check's majority", None)
                    .await;
            } else if let Err(e) = self.pay(&d, Paying::Rerun).await {
                tracing::warn!("paying a re-run of {id}: {e}");
            }
        }
    }

    // ---------------------------------------------------------------- pay

    /// Signs the voucher that pays `d`, records it, leaves it on the lane for the provider
    /// (see [`Lane::pending`]) and frees the lane.
    async fn pay(&self, d: &Delivered, paying: Paying) -> Result<U256, BuyError> {
        let amount = d.result.commitment.amount;
        let voucher = Voucher {
            channel_id: d.taken.channel,
            cumulative_amount: d.taken.cumulative_before + amount,
        };
        let sig = voucher.sign(&self.domain, &self.evm).map_err(node_err)?;
        let signed = EvmSigned::new(voucher, sig);
        // A durable write (the voucher is money): off the async threads.
        let store = self.store.clone();
        let delivered = matches!(paying, Paying::Delivered(_)).then(|| {
            (
                d.taken.provider,
                d.ticket,
                EvmSigned::new(d.result.commitment, d.result.signature),
                net::wire::WireMessage::to_bytes(&d.result),
            )
        });
        tokio::task::spawn_blocking(move || match (paying, delivered) {
            (Paying::Delivered(id), Some((provider, ticket, result, outputs))) => store
                .finish_job(&id, provider, &ticket, &result, &outputs, &signed, now())
                .map(|_| ()),
            (Paying::Job(id) | Paying::Delivered(id), _) => store
                .settle_job(Side::Buyer, &id, &signed, now())
                .map(|_| ()),
            (Paying::Rerun, _) => store.put_voucher(&signed).map(|_| ()),
        })
        .await
        .map_err(node_err)?
        .map_err(node_err)?;
        let payment = Payment {
            job_id: d.ticket.message.job_id,
            secret: d.secret,
            voucher: Some((voucher, sig)),
            note: String::new(),
        };
        // The payment waits on the lane for the next job's request, which the provider
        // takes only with the voucher that ends this job's range; a lane left idle sends it
        // alone. The provider keeps the ticket either way; a lost payment is claimed on
        // chain.
        self.wait_on_lane(d.taken.channel, d.peer, payment);
        self.advance_lane(&d.taken, voucher.cumulative_amount);
        Ok(amount)
    }

    /// Takes the payment waiting on a lane, to carry it in a job request.
    fn take_pending(&self, channel: B256) -> Option<Payment> {
        let mut lanes = self.lanes.lock().ok()?;
        let lane = lanes.iter_mut().find(|l| l.channel == channel)?;
        lane.pending.take().map(|(p, _, _)| p)
    }

    /// Leaves a payment on its lane (see [`Lane::pending`]). A lane holds one: a job takes
    /// the lane's payment with the lane, and pays before it frees it.
    fn wait_on_lane(&self, channel: B256, peer: PeerId, payment: Payment) {
        let mut older = None;
        if let Ok(mut lanes) = self.lanes.lock()
            && let Some(l) = lanes.iter_mut().find(|l| l.channel == channel)
        {
            older = l.pending.replace((payment, peer, Instant::now()));
        }
        // Never silently replaced: an older payment still waiting goes out alone.
        if let Some((older, peer, _)) = older {
            let net = self.net.clone();
            tokio::spawn(async move {
                let _ = net.send_payment(peer, older).await;
            });
        }
        self.payment_waits.notify_one();
    }

    /// Sends the payments that waited [`PAYMENT_CARRY_WAIT`] on an idle lane, until the node
    /// stops.
    pub(crate) async fn carry_payments(self: Arc<Self>) {
        loop {
            self.payment_waits.notified().await;
            loop {
                tokio::time::sleep(PAYMENT_CARRY_WAIT).await;
                if !self.send_waiting_payments(PAYMENT_CARRY_WAIT).await {
                    break;
                }
            }
        }
    }

    /// Sends alone every payment that has waited `at_least` on a lane no job holds; returns
    /// whether payments still wait. The lane is held while its payment is on the way, so
    /// that no job's request overtakes it.
    async fn send_waiting_payments(&self, at_least: Duration) -> bool {
        let (due, left): (Vec<(B256, PeerId, Payment)>, bool) = {
            let Ok(mut lanes) = self.lanes.lock() else {
                return false;
            };
            let mut due = Vec::new();
            for l in lanes.iter_mut() {
                if l.busy {
                    continue;
                }
                if let Some((_, _, since)) = &l.pending
                    && since.elapsed() >= at_least
                    && let Some((p, peer, _)) = l.pending.take()
                {
                    l.busy = true;
                    due.push((l.channel, peer, p));
                }
            }
            (due, lanes.iter().any(|l| l.pending.is_some()))
        };
        let sends = due.into_iter().map(|(channel, peer, p)| async move {
            let job = p.job_id;
            if let Err(e) = self.net.send_payment(peer, p).await {
                tracing::warn!("sending the payment of {job}: {e}");
            }
            if let Ok(mut lanes) = self.lanes.lock()
                && let Some(l) = lanes.iter_mut().find(|l| l.channel == channel)
            {
                l.busy = false;
            }
        });
        futures::future::join_all(sends).await;
        self.lane_freed.notify_waiters();
        left
    }

    /// Sends every payment still waiting on a lane (on the way out, before closes).
    pub async fn send_payments_now(&self) {
        // Lanes held by a job pay when it ends; a few rounds let those finish.
        for _ in 0..50 {
            if !self.send_waiting_payments(Duration::ZERO).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the provider it is not paid, and why; the lane takes no more tickets, and the
    /// ticket is disputed if the provider claims it.
    async fn withhold(&self, d: &Delivered, why: &str, check: Option<Check>) {
        self.release_lane(&d.taken, true);
        let ticket = Chain::ticket_id(d.taken.channel, d.ticket.message.job_id);
        self.mark_disputable(
            ticket,
            Disputable {
                job: d.ticket.message.job_id,
                check,
                undelivered: false,
            },
        );
        self.dispute_if_claimed(ticket).await;
        let payment = Payment {
            job_id: d.ticket.message.job_id,
            secret: d.secret,
            voucher: None,
            note: why.to_owned(),
        };
        let _ = self.net.send_payment(d.peer, payment).await;
    }

    // ---------------------------------------------------------------- lanes

    /// A lane to `provider` that can pay `need` more: a free one, a new one, or a topped-up
    /// one; waits for a lane to free up when `max_lanes` are busy.
    /// `extra`: open a lane beyond `max_lanes` rather than wait. Re-runs take extra lanes:
    /// a job holds its own lane until its check decides, and a check waiting for lanes held
    /// by other jobs in their checks would wait in a circle.
    ///
    /// A lane opened because every lane was busy is opened in the background: the job that
    /// asked for it takes the first lane to come free, that one or another (a busy lane
    /// frees in milliseconds, a channel opens in a block or more). It waits for its open
    /// only while nothing else frees, and an open that fails fails that job.
    async fn take_lane(&self, provider: Address, need: U256, extra: bool) -> Result<Taken, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut my_open: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
        loop {
            // Listening before looking: a lane freed in between is not missed.
            let freed = self.lane_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let mut top_up: Option<(B256, U256)> = None;
            let mut open = false;
            {
                let mut lanes = self.lanes.lock().map_err(|_| "buyer state")?;
                let opening = self.opening.of(provider);
                let count = lanes
                    .iter()
                    .filter(|l| l.provider == provider && !l.retired)
                    .count()
                    + opening;
                let free_funded = lanes.iter_mut().find(|l| {
                    l.provider == provider
                        && !l.retired
                        && !l.busy
                        && l.deposit >= l.cumulative + need
                });
                if let Some(l) = free_funded {
                    l.busy = true;
                    // An open of this job's still running goes on: its lane joins the pool.
                    return Ok(Taken {
                        channel: l.channel,
                        provider,
                        cumulative_before: l.cumulative,
                    });
                }
                if let Some(l) = lanes
                    .iter_mut()
                    .find(|l| l.provider == provider && !l.retired && !l.busy)
                {
                    l.busy = true;
                    top_up = Some((l.channel, l.cumulative + need));
                } else if my_open.is_none()
                    && opening == 0
                    && (extra || count < self.config.max_lanes as usize)
                {
                    // One lane opens to a provider at a time: a job that finds every lane
                    // busy while one is opening waits for that one or for a lane to free
                    // (milliseconds), rather than queue a channel open of its own on the
                    // chain (a transaction a block), behind the others.
                    open = true;
                }
            }
            if let Some((channel, end)) = top_up {
                return self.top_up(channel, provider, end).await;
            }
            if open {
                my_open = Some(self.open_in_background(provider, need)?);
                continue;
            }
            if Instant::now() >= deadline {
                return Err("every lane to this provider stayed busy".into());
            }
            let wait = Duration::from_millis(500);
            match my_open.as_mut() {
                Some(opened) => {
                    tokio::select! {
                        r = opened => {
                            my_open = None;
                            r.map_err(|e| format!("the channel open: {e}"))??;
                        }
                        _ = tokio::time::timeout(wait, freed) => {}
                    }
                }
                None => {
                    let _ = tokio::time::timeout(wait, freed).await;
                }
            }
        }
    }

    /// Opens a lane to `provider` able to pay `need`, on a task of its own; the lane joins
    /// the pool free when it is open. Counted in `opening` until then.
    fn open_in_background(
        &self,
        provider: Address,
        need: U256,
    ) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
        let me = self.me.upgrade().ok_or("the buyer is shutting down")?;
        // Counted before it is spawned: the next job to look sees it.
        self.opening.add(provider);
        Ok(tokio::spawn(async move {
            let r = me.open_lane(provider, need).await;
            me.opening.sub(provider);
            match r {
                Ok(t) => {
                    me.release_lane(&t, false);
                    Ok(())
                }
                Err(e) => {
                    // The job waiting on it learns why (if it still waits); others find the
                    // count back down.
                    tracing::warn!("opening a lane to {provider}: {e}");
                    me.lane_freed.notify_waiters();
                    Err(e)
                }
            }
        }))
    }

    /// Channel opens sent and not yet landed: their channels join [`Buyer::channels`] when
    /// they do.
    pub fn channels_opening(&self) -> usize {
        self.opening.total()
    }

    /// Waits, at most `max`, for the channel opens in flight to land (or fail), so that
    /// [`Buyer::channels`] holds every channel the buyer's money went into; whether none is
    /// left.
    pub async fn opens_settled(&self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        loop {
            let freed = self.lane_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.channels_opening() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), freed).await;
        }
    }

    /// Whether a job to `provider` could start now: a lane is free for it (more free lanes
    /// than jobs already waiting for one), or one may be opened (none is opening to it and
    /// no job waits: a job would wait behind those).
    fn has_room(&self, provider: Address) -> bool {
        let opening = self.opening.of(provider);
        let waiting = self.heading.of(provider);
        self.lanes.lock().is_ok_and(|lanes| {
            let mine = lanes
                .iter()
                .filter(|l| l.provider == provider && !l.retired);
            let count = mine.clone().count();
            let free = mine.clone().filter(|l| !l.busy).count();
            free > waiting
                || (waiting == 0 && opening == 0 && count < self.config.max_lanes as usize)
        })
    }

    fn deposit_for(&self, need: U256) -> U256 {
        U256::from(self.config.channel_deposit).max(need)
    }

    async fn open_lane(&self, provider: Address, need: U256) -> Result<Taken, String> {
        self.open_lane_with(provider, self.deposit_for(need)).await
    }

    async fn open_lane_with(&self, provider: Address, deposit: U256) -> Result<Taken, String> {
        let mut deposit = deposit;
        let channel = match &self.chain {
            Some(chain) => {
                let min = chain.min_deposit().await.map_err(|e| e.to_string())?;
                deposit = deposit.max(U256::from(min));
                let amount: u128 = deposit.try_into().map_err(|_| "deposit over 128 bits")?;
                let id = chain
                    .open_channel(provider, amount)
                    .await
                    .map_err(|e| format!("cannot open a channel: {e}"))?;
                self.emit(NodeEvent::ChannelOpened {
                    channel: id.to_string(),
                    provider: provider.to_string(),
                    deposit: deposit.to_string(),
                });
                id
            }
            None => self.random_b256(),
        };
        let mut lanes = self.lanes.lock().map_err(|_| "buyer state")?;
        lanes.push(Lane {
            channel,
            provider,
            cumulative: U256::ZERO,
            deposit,
            busy: true,
            retired: false,
            closes_at: None,
            closed: false,
            pending: None,
            topping: false,
        });
        Ok(Taken {
            channel,
            provider,
            cumulative_before: U256::ZERO,
        })
    }

    async fn top_up(&self, channel: B256, provider: Address, end: U256) -> Result<Taken, String> {
        let (cumulative, deposit) = self
            .lanes
            .lock()
            .ok()
            .and_then(|l| {
                l.iter()
                    .find(|l| l.channel == channel)
                    .map(|l| (l.cumulative, l.deposit))
            })
            .ok_or("lane vanished")?;
        let add = self.deposit_for(end.saturating_sub(deposit));
        if let Some(chain) = &self.chain {
            let amount: u128 = add.try_into().map_err(|_| "top-up over 128 bits")?;
            if let Err(e) = chain.top_up(channel, amount).await {
                self.release_lane(
                    &Taken {
                        channel,
                        provider,
                        cumulative_before: cumulative,
                    },
                    false,
                );
                return Err(format!("cannot top up the channel: {e}"));
            }
        }
        if let Ok(mut lanes) = self.lanes.lock()
            && let Some(l) = lanes.iter_mut().find(|l| l.channel == channel)
        {
            l.deposit += add;
        }
        Ok(Taken {
            channel,
            provider,
            cumulative_before: cumulative,
        })
    }

    /// Puts `amount` more into a channel to `provider`: tops up its first open lane, or
    /// opens one. Returns the channel. (Jobs fund their lanes by themselves; this is for a
    /// buyer that wants the money in place before it submits.)
    pub async fn fund(&self, provider: Address, amount: U256) -> Result<B256, BuyError> {
        let existing = self
            .lanes
            .lock()
            .map_err(node_err)?
            .iter()
            .find_map(|l| (l.provider == provider && !l.retired).then_some(l.channel));
        match existing {
            Some(channel) => {
                if let Some(chain) = &self.chain {
                    let a: u128 = amount
                        .try_into()
                        .map_err(|_| BuyError::Node("amount over 128 bits".into()))?;
                    chain.top_up(channel, a).await.map_err(node_err)?;
                }
                if let Ok(mut lanes) = self.lanes.lock()
                    && let Some(l) = lanes.iter_mut().find(|l| l.channel == channel)
                {
                    l.deposit += amount;
                }
                Ok(channel)
            }
            None => {
                let t = self
                    .open_lane_with(provider, amount)
                    .await
                    .map_err(BuyError::Node)?;
                self.release_lane(&t, false);
                Ok(t.channel)
            }
        }
    }

    fn release_lane(&self, t: &Taken, retire: bool) {
        if let Ok(mut lanes) = self.lanes.lock()
            && let Some(l) = lanes.iter_mut().find(|l| l.channel == t.channel)
        {
            l.busy = false;
            l.retired |= retire;
        }
        self.lane_freed.notify_waiters();
    }

    fn advance_lane(&self, t: &Taken, cumulative: U256) {
        let mut top_up = false;
        if let Ok(mut lanes) = self.lanes.lock()
            && let Some(l) = lanes.iter_mut().find(|l| l.channel == t.channel)
        {
            l.cumulative = l.cumulative.max(cumulative);
            l.busy = false;
            // A quarter of a deposit left: topped up now, while the lane works on, rather
            // than when a job finds it dry. Lanes opened together run dry together, and
            // their top-ups, one transaction each, would queue on the chain.
            let low = U256::from(self.config.channel_deposit / 4);
            if self.chain.is_some()
                && !l.retired
                && !l.topping
                && l.deposit.saturating_sub(l.cumulative) < low
            {
                l.topping = true;
                top_up = true;
            }
        }
        self.lane_freed.notify_waiters();
        if top_up && let Some(me) = self.me.upgrade() {
            let channel = t.channel;
            tokio::spawn(async move { me.top_up_ahead(channel).await });
        }
    }

    /// Adds a deposit to a lane that runs low (see [`Buyer::advance_lane`]).
    async fn top_up_ahead(&self, channel: B256) {
        let Some(chain) = &self.chain else { return };
        let amount = self.config.channel_deposit;
        let added = chain.top_up(channel, amount).await;
        if let Err(e) = &added {
            tracing::warn!("topping up channel {channel}: {e}");
        }
        if let Ok(mut lanes) = self.lanes.lock()
            && let Some(l) = lanes.iter_mut().find(|l| l.channel == channel)
        {
            l.topping = false;
            if added.is_ok() {
                l.deposit += U256::from(amount);
            }
        }
        self.lane_freed.notify_waiters();
    }

    /// What the buyer has counted of a provider, and its score (0.5 when nothing is known).
    pub fn reputation_of(
        &self,
        provider: &sietch_market::PublicKey,
    ) -> (sietch_verifier::Reputation, f64) {
        let r = self
            .reputation
            .lock()
            .ok()
            .and_then(|t| t.get(provider).copied())
            .unwrap_or_default();
        let score = if r == sietch_verifier::Reputation::default() {
            0.5
        } else {
            r.score()
        };
        (r, score)
    }

    /// Tickets withheld and disputable, with their job and the check that found them wrong
    /// (the evidence), for the API.
    pub fn withheld(&self) -> Vec<(B256, B256, Option<Check>)> {
        self.disputable
            .lock()
            .map(|w| {
                w.iter()
                    .map(|(t, d)| (*t, d.job, d.check.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The buyer's channels and what is owed on each, for the API and the devnet.
    pub fn channels(&self) -> Vec<(B256, Address, U256, U256)> {
        self.lanes
            .lock()
            .map(|l| {
                l.iter()
                    .map(|l| (l.channel, l.provider, l.cumulative, l.deposit))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Closes retired lanes until the node stops: starts the close (the provider has the
    /// close delay to claim what it is owed, tickets included), then finalizes it, which
    /// returns the rest to the buyer.
    pub(crate) async fn sweep(self: Arc<Self>) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let every = Duration::from_secs(self.config.settle_every_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            let (to_close, to_finalize): (Vec<B256>, Vec<B256>) = {
                let Ok(lanes) = self.lanes.lock() else {
                    continue;
                };
                let t = now();
                (
                    lanes
                        .iter()
                        .filter(|l| {
                            l.retired && !l.busy && l.pending.is_none() && l.closes_at.is_none()
                        })
                        .map(|l| l.channel)
                        .collect(),
                    lanes
                        .iter()
                        .filter(|l| !l.closed && l.closes_at.is_some_and(|c| c < t))
                        .map(|l| l.channel)
                        .collect(),
                )
            };
            for c in to_close {
                let started = chain.start_close(c).await;
                let closes_at = match chain.channel(c).await {
                    Ok(v) if v.state >= 2 => Some(v.closes_at),
                    _ => None,
                };
                if let Err(e) = started
                    && closes_at.is_none()
                {
                    tracing::warn!("closing channel {c}: {e}");
                }
                if let Ok(mut lanes) = self.lanes.lock()
                    && let Some(l) = lanes.iter_mut().find(|l| l.channel == c)
                {
                    l.closes_at = closes_at;
                }
            }
            for c in to_finalize {
                let done = match chain.finalize_close(c).await {
                    Ok(()) => true,
                    Err(_) => chain.channel(c).await.is_ok_and(|v| v.state == 3),
                };
                if done
                    && let Ok(mut lanes) = self.lanes.lock()
                    && let Some(l) = lanes.iter_mut().find(|l| l.channel == c)
                {
                    l.closed = true;
                }
            }
        }
    }

    /// Starts closing every channel (the provider then has the close delay to claim).
    pub async fn close_all(&self) -> Vec<B256> {
        let Some(chain) = &self.chain else {
            return Vec::new();
        };
        // The provider claims what it has when it sees the close: it must have everything.
        self.send_payments_now().await;
        let channels: Vec<B256> = self.channels().iter().map(|c| c.0).collect();
        for c in &channels {
            if let Err(e) = chain.start_close(*c).await {
                tracing::warn!("closing channel {c}: {e}");
            }
            if let Ok(mut lanes) = self.lanes.lock()
                && let Some(l) = lanes.iter_mut().find(|l| l.channel == *c)
            {
                l.retired = true;
            }
        }
        channels
    }

    // ---------------------------------------------------------------- disputes

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
                        ticket: e.ticketId.to_string(),
                        outcome: crate::dispute::outcome_name(e.outcome).into(),
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
}

impl Buyer {
    /// Remembers a ticket to dispute if its provider claims it (bounded: the oldest
    /// reasons are not kept past `MAX_IN_FLIGHT * 4`).
    fn mark_disputable(&self, ticket: B256, d: Disputable) {
        if let Ok(mut w) = self.disputable.lock()
            && w.len() < MAX_IN_FLIGHT * 4
        {
            w.insert(ticket, d);
        }
    }

    /// Disputes `ticket` if it is one to dispute (and not disputed yet).
    async fn dispute(&self, chain: &Chain, ticket: B256) {
        let undelivered = self
            .disputable
            .lock()
            .ok()
            .and_then(|w| w.get(&ticket).map(|d| d.undelivered));
        let Some(undelivered) = undelivered else {
            return;
        };
        match chain.dispute(ticket, undelivered).await {
            Ok(()) => self.emit(NodeEvent::Disputed {
                ticket: ticket.to_string(),
            }),
            Err(err) => tracing::warn!("disputing {ticket}: {err}"),
        }
    }

    /// Disputes `ticket` now if its provider claimed it before this buyer knew it would
    /// dispute it (the claim's event has gone by).
    async fn dispute_if_claimed(&self, ticket: B256) {
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
        rec: &sietch_contracts::SietchEscrow::TicketRecord,
        verifiers: &[Address],
    ) {
        let d = self
            .disputable
            .lock()
            .ok()
            .and_then(|w| w.get(&ticket).cloned());
        let Some(d) = d else { return };
        let Ok(Some(spec)) = self.store.job_spec(&rec.specHash) else {
            return;
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
        if let Ok(Some(_)) = self.store.job_outputs(&d.job) {
            return;
        }
        use crate::net::wire::WireMessage;
        let (job, bytes) = (d.job, result.to_bytes());
        if let Some(Ok(())) = off_async(&self.store, move |s| s.put_job_outputs(&job, &bytes)).await
        {
            self.emit(NodeEvent::DeliveredInDispute {
                job: d.job.to_string(),
                ticket: ticket.to_string(),
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
        if let Some(e) = event
            && let Ok(mut r) = self.reputation.lock()
        {
            r.apply(e);
        }
    }

    fn owns_channel(&self, channel: &B256) -> bool {
        self.lanes
            .lock()
            .map(|l| l.iter().any(|l| l.channel == *channel))
            .unwrap_or(false)
    }
}

fn outputs_of(r: &JobResult) -> Outputs {
    Outputs {
        outcome: OutcomeCode {
            tag: r.outcome.0,
            value: r.outcome.1,
        },
        stdout: r.stdout.clone(),
        files: r.files.iter().cloned().collect::<BTreeMap<_, _>>(),
    }
}

/// The verifier's executor over the node's network: a re-run is a job like any other, on
/// the re-run provider's own lane, with the original's job id; its payment waits for the
/// check's decision.
struct NetExecutor(Arc<Buyer>);

#[async_trait]
impl Executor for NetExecutor {
    async fn rerun(&self, r: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        let b = &self.0;
        let d = b
            .attempt(r.spec, r.job_id, r.provider, true)
            .await
            .map_err(RerunError::Failed)?;
        let out = RunResult {
            commitment: d.result.commitment,
            signature: d.result.signature,
            outputs: r.with_outputs.then(|| outputs_of(&d.result)),
        };
        if let Ok(mut p) = b.reruns.lock() {
            p.insert((r.job_id, r.provider.evm_address), d);
        }
        Ok(out)
    }
}

/// A count per provider: channel opens in flight, jobs waiting for a lane.
#[derive(Debug, Default)]
struct PerProvider(Mutex<HashMap<Address, usize>>);

impl PerProvider {
    fn of(&self, provider: Address) -> usize {
        self.0
            .lock()
            .map(|m| m.get(&provider).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn add(&self, provider: Address) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(provider).or_default() += 1;
        }
    }

    fn sub(&self, provider: Address) {
        if let Ok(mut m) = self.0.lock()
            && let Some(n) = m.get_mut(&provider)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&provider);
            }
        }
    }

    /// Counts one for `provider` until the guard is dropped.
    fn hold(&self, provider: Address) -> Held<'_> {
        self.add(provider);
        Held {
            counts: self,
            provider,
        }
    }
}

/// One counted in a [`PerProvider`] until dropped.
struct Held<'a> {
    counts: &'a PerProvider,
    provider: Address,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.counts.sub(self.provider);
    }
}
