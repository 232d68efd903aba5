//! The provider role: sell this machine's compute.
//!
//! - **Offers:** announce a signed offer on every heartbeat with a higher sequence, and
//!   withdraw it on shutdown.
//! - **Jobs:** check a request against the offer and, when a chain is configured, against the
//!   ticket's channel on chain (the provider's, opened by the ticket's signer, able to pay
//!   the ticket's whole range, and not below the channel's latest voucher); refuse with a
//!   reason or accept; fetch the module and inputs by hash from the buyer; run in the
//!   sandbox; sign a result commitment (fuel × price, capped by the ticket) and deliver it.
//!   One job at a time per channel: the buyer's channels are lanes, so that every ticket's
//!   range on the channel's cumulative line starts where the last voucher ended.
//! - **Pay:** keep the latest voucher per channel (a voucher must pay the whole job); claim
//!   them on chain in one batch when what is owed passes the threshold, periodically, and
//!   at once when a channel starts closing. When a buyer withholds a voucher, or sends none
//!   within the timeout, or a ticket's deadline nears, claim the ticket on chain with the
//!   result commitment, and finalize it after the challenge window.
//! - **Verify:** when the escrow draws this node for a dispute, re-run the job on request
//!   and post its own signed result commitment as its verdict.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use libp2p::PeerId;
use sietch_contracts::SietchEscrow::{SietchEscrowErrors, SietchEscrowEvents};
use sietch_market::eip712::{Domain, TypedData, recover};
use sietch_market::{Address, B256, Offer, Prices, ResultCommitment, Signed, U256, Withdrawal};
use tokio::sync::{Notify, Semaphore, oneshot};

use crate::chain::{Chain, ChainError};
use crate::config::NodeConfig;
use crate::delivery::{self, Results};
use crate::events::{Events, NodeEvent};
use crate::jobs::{self, JobBlobs};
use crate::net::wire::WireMessage;
use crate::net::{
    self, JobFailure, JobReply, JobRequest, JobResult, Network, Payment, PaymentAck, RefuseReason,
    VerifyReply, VerifyRequest,
};
use crate::store::{
    EvmSigned, JobRecord, JobState, Side, Store, StoreError, VoucherUpdate, off_async,
};

/// Times a provider tries to deliver a result.
const RESULT_ATTEMPTS: u32 = 5;
/// How long a provider holds its answer to a job request for the job to end, so that the
/// answer carries the result ([`JobReply::Done`]); a job still running then is answered
/// "accepted" and its result goes on `/sietch/result/1`. Well under the request timeout.
const INLINE_RESULT_WAIT: Duration = Duration::from_millis(500);
/// Claim a ticket when its deadline is this close.
const TICKET_MARGIN_SECS: u64 = 60;
/// Most jobs waiting for payment, tickets being watched, and verdicts remembered; beyond,
/// new jobs are refused as busy (a buyer that never pays cannot grow them).
const MAX_UNPAID: usize = 10_000;
/// Unpaid results kept in memory, for the verifiers of a dispute over one (count, bytes).
const KEPT_RESULTS: (usize, usize) = (4_096, 64 << 20);
/// Results of disputed jobs a verifier holds for their buyers (count, bytes).
const HELD_DELIVERIES: (usize, usize) = (256, 64 << 20);

fn now() -> u64 {
    (net::system_clock())()
}

/// A voucher a job request carried, checked and not yet written: it is written with that
/// job's record, in the same commit.
struct Deferred {
    job: B256,
    voucher: EvmSigned<sietch_market::Voucher>,
}

/// A job whose result was delivered and which is not paid yet.
#[derive(Debug, Clone, Copy)]
struct Unpaid {
    /// When its result was delivered (or its payment withheld).
    since: u64,
    /// The buyer withheld payment: claim at once.
    withheld: bool,
}

pub(crate) struct Provider {
    pub(crate) config: NodeConfig,
    store: Arc<Store>,
    net: Network,
    events: Events,
    sandbox: Arc<sietch_sandbox::Sandbox>,
    evm: PrivateKeySigner,
    domain: Domain,
    pub(crate) offer: Offer,
    key: ed25519_dalek::SigningKey,
    slots: Semaphore,
    chain: Option<Chain>,
    /// Channels with a job in flight (accepted, not yet paid or claimed).
    lanes: Mutex<HashMap<B256, B256>>,
    /// Delivered, unpaid jobs.
    unpaid: Mutex<HashMap<B256, Unpaid>>,
    /// Claimed tickets being watched until they settle: ticket id → job id.
    claimed: Mutex<HashMap<B256, B256>>,
    /// Dispute rounds (ticket and round) this node has voted in as a verifier.
    voted: Mutex<HashSet<B256>>,
    /// Results delivered and not paid yet, by job: handed to a dispute's verifiers.
    results: Results,
    /// As a verifier: the provider's result of a disputed job, by ticket, outputs checked
    /// against the claim; handed to the buyer.
    deliveries: Results,
    /// Wakes the settlement loop (a close started, a voucher crossed the threshold).
    settle_now: Notify,
    /// Channels as last read from the chain: a deposit only grows and a channel only closes
    /// with an event, so a view that can pay a ticket saves a read per job; any event about
    /// the channel drops it.
    channel_views: Mutex<HashMap<B256, crate::chain::ChannelView>>,
    /// What the latest voucher of each channel owes beyond what the chain paid, as far as
    /// this node knows; emptied by a claim.
    owed: Mutex<HashMap<B256, U256>>,
}

/// Everything a provider needs, from the service.
pub(crate) struct ProviderParts {
    pub(crate) config: NodeConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) net: Network,
    pub(crate) events: Events,
    pub(crate) sandbox: Arc<sietch_sandbox::Sandbox>,
    pub(crate) evm: PrivateKeySigner,
    pub(crate) key: ed25519_dalek::SigningKey,
    pub(crate) domain: Domain,
    pub(crate) offer: Offer,
    pub(crate) chain: Option<Chain>,
}

impl Provider {
    pub(crate) fn new(p: ProviderParts) -> Arc<Self> {
        let me = Arc::new(Self {
            slots: Semaphore::new(p.config.max_concurrent_jobs as usize),
            config: p.config,
            store: p.store,
            net: p.net,
            events: p.events,
            sandbox: p.sandbox,
            evm: p.evm,
            domain: p.domain,
            offer: p.offer,
            key: p.key,
            chain: p.chain,
            lanes: Mutex::new(HashMap::new()),
            unpaid: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
            voted: Mutex::new(HashSet::new()),
            results: Results::new(KEPT_RESULTS.0, KEPT_RESULTS.1),
            deliveries: Results::new(HELD_DELIVERIES.0, HELD_DELIVERIES.1),
            settle_now: Notify::new(),
            channel_views: Mutex::new(HashMap::new()),
            owed: Mutex::new(HashMap::new()),
        });
        me.recover_unpaid();
        me
    }

    /// After a restart: jobs whose result was made but not paid wait for payment again.
    fn recover_unpaid(&self) {
        let mut after = None;
        loop {
            let Ok(page) = self.store.jobs(Side::Provider, after.as_ref(), 1000) else {
                return;
            };
            let Some(last) = page.last() else { return };
            after = Some(last.job_id);
            if let Ok(mut unpaid) = self.unpaid.lock() {
                for j in page.iter().filter(|j| j.state == JobState::Done) {
                    unpaid.insert(
                        j.job_id,
                        Unpaid {
                            since: j.updated_at,
                            withheld: false,
                        },
                    );
                }
            }
        }
    }

    fn emit(&self, e: NodeEvent) {
        self.events.emit(e);
    }

    // ---------------------------------------------------------------- offers

    /// Registers and stakes on chain what the configuration asks, if not done already.
    pub(crate) async fn register(&self) -> anyhow::Result<()> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let me = chain.me();
        let account = chain.account(me).await?;
        if account.node_key != self.offer.provider.0 {
            chain
                .register(&self.key)
                .await
                .context("registering the node key on chain (does the EVM account have gas?)")?;
        }
        let want = self.config.stake;
        if account.stake < want {
            chain
                .stake(want - account.stake)
                .await
                .context("staking (does the EVM account hold enough tokens?)")?;
        }
        self.emit(NodeEvent::Registered {
            account: me.to_string(),
            stake: want.max(account.stake).to_string(),
        });
        Ok(())
    }

    /// Announces the offer now and on every heartbeat, each time with a higher sequence
    /// number and a fresh expiry.
    pub(crate) async fn announce(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.announce_every());
        loop {
            tick.tick().await;
            let t = now();
            let previous = self
                .store
                .own_offer(&self.offer.provider)
                .ok()
                .flatten()
                .map_or(0, |o| o.sequence);
            let offer = Offer {
                sequence: previous.max(t.saturating_sub(1)) + 1,
                expires_at: t + self.config.offer_ttl_secs,
                addresses: self
                    .net
                    .listen_addrs()
                    .await
                    .unwrap_or_default()
                    .iter()
                    .take(sietch_market::offer::MAX_ADDRESSES)
                    .map(ToString::to_string)
                    .collect(),
                ..self.offer.clone()
            };
            let signed = Signed::sign(offer, &self.key);
            if let Err(e) = self.store.put_own_offer(&signed) {
                tracing::warn!("cannot store the offer: {e}");
            }
            match self.net.publish_offer(&signed).await {
                Ok(()) => self.emit(NodeEvent::Announced {
                    sequence: signed.payload.sequence,
                }),
                Err(e) => tracing::warn!("cannot announce the offer: {e}"),
            }
        }
    }

    /// Withdraws the offer on shutdown, so buyers stop picking this node at once.
    pub(crate) async fn withdraw(&self) {
        let Ok(Some(own)) = self.store.own_offer(&self.offer.provider) else {
            return;
        };
        if own.offer.is_none() {
            return;
        }
        // Above the live offer's sequence, so it removes it (and is newer in the store).
        let sequence = own.sequence + 1;
        let w = Signed::sign(
            Withdrawal {
                provider: self.offer.provider,
                sequence,
            },
            &self.key,
        );
        if let Err(e) = self.net.publish_withdrawal(&w).await {
            tracing::warn!("cannot withdraw the offer: {e}");
        }
        if let Err(e) = self
            .store
            .withdraw_own_offer(&self.offer.provider, sequence)
        {
            tracing::warn!("cannot record the withdrawal: {e}");
        }
        // Let gossipsub send it before the swarm goes away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.emit(NodeEvent::Withdrew { sequence });
    }

    // ---------------------------------------------------------------- jobs

    /// Checks a request against the offer; `Err` is the refusal to send. Returns the buyer.
    fn check(&self, req: &JobRequest) -> Result<Address, (RefuseReason, String)> {
        let spec = &req.spec;
        let t = &req.ticket;
        if spec.hash() != t.spec_hash {
            return Err((
                RefuseReason::Other,
                "the ticket's spec hash is not the spec's".into(),
            ));
        }
        let n = now();
        if t.deadline <= n + TICKET_MARGIN_SECS {
            return Err((
                RefuseReason::Other,
                format!(
                    "the ticket's deadline {} leaves no time to claim it (now {n}; at least \
                     {TICKET_MARGIN_SECS} s are needed)",
                    t.deadline
                ),
            ));
        }
        if spec.limits.memory_bytes > self.offer.hardware.memory_bytes {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job asks for {} bytes of memory; this provider allows {}",
                    spec.limits.memory_bytes, self.offer.hardware.memory_bytes
                ),
            ));
        }
        // stdout and `/output` may each reach the bound, and the result travels in one
        // message.
        let most_output = (net::MAX_RESULT / 2 - 64 * 1024) as u64;
        if spec.limits.output_bytes > most_output {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job may write {} bytes of output; results carry at most {most_output}",
                    spec.limits.output_bytes
                ),
            ));
        }
        if let Some(need) = spec.requirements.gpu.as_ref().filter(|g| g.count > 0)
            && !need.fits(&self.offer.hardware.gpus)
        {
            return Err((
                RefuseReason::TooBig,
                if self.offer.hardware.gpus.is_empty() {
                    "the job needs a GPU; this provider has none".into()
                } else {
                    format!(
                        "the job needs {} GPU(s) it accepts; this provider offers {}",
                        need.count,
                        self.offer
                            .hardware
                            .gpus
                            .iter()
                            .map(|g| format!("{} ({} MiB)", g.model, g.memory_bytes >> 20))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ));
        }
        if spec.requirements.min_cpu_cores > self.offer.hardware.cpu_cores {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job needs {} cores; this provider has {}",
                    spec.requirements.min_cpu_cores, self.offer.hardware.cpu_cores
                ),
            ));
        }
        // The ticket carries the prices the escrow will hold the charge to: this offer's, and
        // no GPU price for a job that asks for no GPU (`jobs::ticket_prices`).
        let want = jobs::ticket_prices(spec, &self.offer.prices);
        if (t.per_gfuel, t.per_gpu_second) != (want.per_gfuel, want.per_gpu_second) {
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the ticket's prices are {} per 10^9 fuel and {} per GPU-second; this \
                     offer's are {} and {} (no GPU price for a job without a GPU)",
                    t.per_gfuel, t.per_gpu_second, want.per_gfuel, want.per_gpu_second
                ),
            ));
        }
        // A job worth less than claiming its ticket costs in gas would leave nothing to
        // claim if its voucher were withheld.
        if t.max_amount < U256::from(self.config.min_job_price) {
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the ticket allows {}; this provider takes jobs worth at least {} (what \
                     claiming a ticket costs)",
                    t.max_amount, self.config.min_job_price
                ),
            ));
        }
        // The provider is paid at most the ticket's maximum: it refuses jobs whose fuel
        // and GPU time could cost more than that, rather than run them at a loss.
        let worst = jobs::max_cost(spec, &self.offer.prices);
        if t.max_amount < U256::from(worst) {
            let p = &self.offer.prices;
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the job's limits cost up to {worst} at {} per 10^9 fuel and {} per \
                     GPU-second; the ticket allows {}",
                    p.per_gfuel, p.per_gpu_second, t.max_amount
                ),
            ));
        }
        recover(&t.digest(&self.domain), &req.ticket_signature).map_err(|e| {
            (
                RefuseReason::BadSignature,
                format!("the ticket's signature: {e}"),
            )
        })
    }

    /// With a chain: the ticket's channel is this provider's, opened by the signer, open,
    /// able to pay the ticket's whole range, and the range starts exactly at the channel's
    /// latest voucher (`carried`: one that came with this request and is not stored yet).
    async fn check_channel(
        &self,
        req: &JobRequest,
        buyer: Address,
        carried: Option<U256>,
    ) -> Result<(), (RefuseReason, String)> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let t = &req.ticket;
        let end = t.cumulative_before.saturating_add(t.max_amount);
        let cached = self
            .channel_views
            .lock()
            .ok()
            .and_then(|v| v.get(&t.channel_id).copied())
            .filter(|c| c.is_open() && U256::from(c.deposit) >= end);
        let c = match cached {
            Some(c) => c,
            None => {
                let c = chain
                    .channel(t.channel_id)
                    .await
                    .map_err(|e| (RefuseReason::Other, format!("cannot read the channel: {e}")))?;
                if let Ok(mut v) = self.channel_views.lock()
                    && (v.len() < MAX_UNPAID || v.contains_key(&t.channel_id))
                {
                    v.insert(t.channel_id, c);
                }
                c
            }
        };
        if c.provider != chain.me() {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!(
                    "channel {} is not a channel to this provider ({})",
                    t.channel_id,
                    chain.me()
                ),
            ));
        }
        if c.buyer != buyer {
            return Err((
                RefuseReason::BadSignature,
                format!(
                    "the ticket is signed by {buyer}, the channel's buyer is {}",
                    c.buyer
                ),
            ));
        }
        if !c.is_open() {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!("channel {} is closing or closed", t.channel_id),
            ));
        }
        if U256::from(c.deposit) < end {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!(
                    "the channel holds {} in all; the ticket's range ends at {end}: top it up",
                    c.deposit
                ),
            ));
        }
        let latest = self
            .store
            .voucher(&t.channel_id)
            .ok()
            .flatten()
            .map_or(U256::from(c.paid), |v| {
                v.message.cumulative_amount.max(U256::from(c.paid))
            })
            .max(carried.unwrap_or_default());
        // Exactly: below, the job would overlap jobs already paid; above, the escrow would
        // never let the ticket be claimed (its vouchers cannot reach `cumulativeBefore`), so
        // the buyer would have the job for free.
        if t.cumulative_before != latest {
            return Err((
                RefuseReason::Other,
                format!(
                    "the ticket's range starts at {} but the channel's latest voucher is at \
                     {latest}",
                    t.cumulative_before
                ),
            ));
        }
        Ok(())
    }

    /// Takes the ticket's channel for this job, if it has no other job in flight.
    fn take_lane(&self, req: &JobRequest) -> Result<(), (RefuseReason, String)> {
        if self.chain.is_none() {
            return Ok(());
        }
        let mut lanes = self
            .lanes
            .lock()
            .map_err(|_| (RefuseReason::Other, "provider state unavailable".to_owned()))?;
        if lanes.len() >= MAX_UNPAID {
            return Err((RefuseReason::Busy, "too many unpaid jobs".into()));
        }
        match lanes.get(&req.ticket.channel_id) {
            // The same job again too: it is stored only once it has run.
            Some(other) => Err((
                RefuseReason::Busy,
                format!(
                    "channel {} has job {other} in flight; one job at a time per channel",
                    req.ticket.channel_id
                ),
            )),
            None => {
                lanes.insert(req.ticket.channel_id, req.ticket.job_id);
                Ok(())
            }
        }
    }

    fn free_lane(&self, channel: &B256, job: &B256) {
        if let Ok(mut lanes) = self.lanes.lock()
            && lanes.get(channel) == Some(job)
        {
            lanes.remove(channel);
        }
    }

    fn refuse(&self, reply: oneshot::Sender<JobReply>, job: B256, r: (RefuseReason, String)) {
        self.emit(NodeEvent::Refused {
            job: job.to_string(),
            reason: r.1.clone(),
        });
        let _ = reply.send(JobReply::Refused {
            reason: r.0,
            message: r.1,
        });
    }

    /// Answers a job request and runs the job. A job that ends within
    /// [`INLINE_RESULT_WAIT`] is answered with its result; a longer one is answered
    /// "accepted" and its result delivered on the result protocol when it ends.
    ///
    /// A payment the request carries is checked first, as if it had come alone (it frees
    /// the ticket's channel), and written in the job's own commit (one commit where there
    /// were two); alone and durably when the job is refused before it is stored.
    pub(crate) async fn on_job(
        self: Arc<Self>,
        peer: PeerId,
        mut req: JobRequest,
        reply: oneshot::Sender<JobReply>,
    ) {
        // A payment for the lane's previous job: checked now (it frees the lane for this
        // one) and written with this job's record, in its commit; alone, durably, when this
        // job is refused before it is stored.
        let mut paid = None;
        if let Some(p) = req.paying.take() {
            let me = self.clone();
            let checked = tokio::task::spawn_blocking(move || {
                me.check_payment(peer, &p).map(|v| v.map(|v| (p.job_id, v)))
            })
            .await;
            match checked {
                Ok(Ok(Some((job, voucher)))) => {
                    self.free_lane(&voucher.message.channel_id, &job);
                    paid = Some(Deferred { job, voucher });
                }
                Ok(Err(PaymentAck::Refused { message })) => {
                    tracing::warn!(%peer, "a payment carried by a job request: {message}");
                }
                _ => {}
            }
        }
        self.serve(peer, req, reply, &mut paid).await;
        if let Some(d) = paid {
            let me = self.clone();
            let job = d.job;
            let recorded =
                tokio::task::spawn_blocking(move || me.record_payment(&d.job, &d.voucher, true))
                    .await;
            match recorded {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("cannot record the payment of {job}: {e}"),
                Err(e) => tracing::warn!("recording the payment of {job}: {e}"),
            }
        }
    }

    /// [`Provider::on_job`] after the carried payment was checked: `paid`, taken when it
    /// is written with this job's record.
    async fn serve(
        &self,
        peer: PeerId,
        req: JobRequest,
        reply: oneshot::Sender<JobReply>,
        paid: &mut Option<Deferred>,
    ) {
        let job_id = req.ticket.job_id;
        let buyer = match self.check(&req) {
            Ok(b) => b,
            Err(r) => {
                self.refuse(reply, job_id, r);
                return;
            }
        };
        // The voucher this request carried counts as the channel's latest: it is written
        // only with this job's record.
        let carried = paid
            .as_ref()
            .map(|d| &d.voucher.message)
            .filter(|v| v.channel_id == req.ticket.channel_id)
            .map(|v| v.cumulative_amount);
        if let Err(r) = self.check_channel(&req, buyer, carried).await {
            self.refuse(reply, job_id, r);
            return;
        }
        let Ok(_slot) = self.slots.try_acquire() else {
            let r = (
                RefuseReason::Busy,
                format!(
                    "all {} job slots are in use; try again or pick another offer",
                    self.config.max_concurrent_jobs
                ),
            );
            self.refuse(reply, job_id, r);
            return;
        };
        if let Err(r) = self.take_lane(&req) {
            self.refuse(reply, job_id, r);
            return;
        }
        let channel = req.ticket.channel_id;
        let mut record = JobRecord::new(job_id, req.ticket.spec_hash, buyer, now());
        record.ticket = Some(EvmSigned::new(req.ticket, req.ticket_signature));
        self.emit(NodeEvent::Accepted {
            job: job_id.to_string(),
            peer: peer.to_string(),
        });

        // Only a job whose module and inputs are here can end at once: one that fetches
        // them from the buyer is answered before the transfer, which must not hold an
        // answer open (a transfer cut and resumed would lose it).
        let wait = if jobs::blob_hashes(&req.spec)
            .iter()
            .all(|h| self.store.blobs().has(h))
        {
            INLINE_RESULT_WAIT
        } else {
            Duration::ZERO
        };
        let run = self.execute(peer, &req);
        tokio::pin!(run);
        // A job that ends at once is stored once, with its result; a longer one when it is
        // answered "accepted" (a duplicate job id is refused there), durably when a payment
        // came with it: the job may run for long, and the payment must not wait for it.
        let (ran, reply) = match tokio::time::timeout(wait, &mut run).await {
            Ok(ran) => (ran, Some(reply)),
            Err(_) => {
                record.state = JobState::Accepted;
                let durable = paid.is_some();
                if let Err(e) = self.insert_job(&req.spec, &record, durable, paid).await {
                    self.free_lane(&channel, &job_id);
                    self.refuse(reply, job_id, (RefuseReason::Other, e));
                    return;
                }
                let _ = reply.send(JobReply::Accepted { job_id });
                (run.await, None)
            }
        };
        let result = match ran {
            Ok(r) => r,
            Err(e) => {
                let why: String = format!("{e:#}").chars().take(200).collect();
                self.emit(NodeEvent::JobFailed {
                    job: job_id.to_string(),
                    reason: why.clone(),
                });
                self.free_lane(&channel, &job_id);
                match reply {
                    Some(reply) => {
                        record.state = JobState::Failed;
                        record.note.clone_from(&why);
                        let durable = paid.is_some();
                        let _ = self.insert_job(&req.spec, &record, durable, paid).await;
                        let _ = reply.send(JobReply::Refused {
                            reason: RefuseReason::Other,
                            message: format!("the job could not run: {why}"),
                        });
                    }
                    None => {
                        let note = why.clone();
                        let _ = off_async(&self.store, move |s| {
                            s.set_job_state(Side::Provider, &job_id, JobState::Failed, &note, now())
                        })
                        .await;
                        // Accepted, so the buyer waits: tell it at once that no result comes.
                        let failure = JobFailure {
                            job_id,
                            reason: RefuseReason::Other,
                            message: format!("the job could not run: {why}"),
                        };
                        if let Err(e) = self.net.send_failure(peer, failure).await {
                            tracing::warn!("telling the buyer that {job_id} failed: {e}");
                        }
                    }
                }
                return;
            }
        };
        // A durable write, before the result leaves: what the ticket is claimed with.
        let signed = EvmSigned::new(result.commitment, result.signature);
        let synced = match &reply {
            Some(_) => {
                record.state = JobState::Done;
                record.result = Some(signed);
                self.insert_job(&req.spec, &record, true, paid).await
            }
            None => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    store.record_result(Side::Provider, &job_id, &signed, now())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            }
        };
        if let Err(e) = &synced {
            tracing::warn!("cannot record the result of {job_id}: {e}");
            // Without a record it could neither be paid nor claimed: not delivered.
            if let Some(reply) = reply {
                self.free_lane(&channel, &job_id);
                self.refuse(reply, job_id, (RefuseReason::Other, e.clone()));
                return;
            }
        }
        if let Ok(mut u) = self.unpaid.lock() {
            u.insert(
                job_id,
                Unpaid {
                    since: now(),
                    withheld: false,
                },
            );
        }
        self.results.put(job_id, result.clone());
        if self.config.test_undeliver > 0 {
            // Test-only: the result is kept, and claimed for, but never sent.
            if let Some(reply) = reply {
                let _ = reply.send(JobReply::Accepted { job_id });
            }
            return;
        }
        if let Some(reply) = reply {
            if reply.send(JobReply::Done(Box::new(result))).is_ok() {
                self.emit(NodeEvent::Delivered {
                    job: job_id.to_string(),
                    in_reply: true,
                });
            }
            return;
        }
        for attempt in 1..=RESULT_ATTEMPTS {
            match self.net.send_result(peer, result.clone()).await {
                Ok(_) => {
                    self.emit(NodeEvent::Delivered {
                        job: job_id.to_string(),
                        in_reply: false,
                    });
                    break;
                }
                Err(e) => {
                    tracing::warn!("result of {job_id}, attempt {attempt}: {e}");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// Stores a job this node took (durably: one that has ended, with its result), and in
    /// the same commit the payment `paid` of the lane's previous job, which it then takes.
    /// When the two cannot be written together, the job is written alone and `paid` left
    /// for the caller.
    async fn insert_job(
        &self,
        spec: &sietch_market::JobSpec,
        record: &JobRecord,
        durable: bool,
        paid: &mut Option<Deferred>,
    ) -> Result<(), String> {
        let (spec, record) = (spec.clone(), record.clone());
        let with = paid.as_ref().map(|d| (d.job, d.voucher));
        let settled = off_async(&self.store, move |s| {
            let both = with.as_ref().map(|(job, v)| (job, v, now()));
            match s.insert_job_paying(Side::Provider, &spec, &record, durable, both) {
                Err(e) if with.is_some() && !matches!(e, StoreError::JobExists { .. }) => {
                    tracing::warn!("a job and the payment it carried, together: {e}");
                    s.insert_job_paying(Side::Provider, &spec, &record, durable, None)
                }
                r => r,
            }
            .map_err(|e| format!("cannot record the job: {e}"))
        })
        .await
        .unwrap_or_else(|| Err("the write was cancelled".into()))?;
        if let Some((_, update)) = settled
            && let Some(d) = paid.take()
        {
            self.paid(&d.job, &d.voucher.message, update, true);
        }
        Ok(())
    }

    /// The spec's blobs, from the store or fetched from `peer`.
    async fn blobs(&self, peer: PeerId, spec: &sietch_market::JobSpec) -> anyhow::Result<JobBlobs> {
        let mut b = JobBlobs {
            module: self.blob(peer, spec.module).await?,
            ..JobBlobs::default()
        };
        if let Some(s) = &spec.stdin {
            b.stdin = self.blob(peer, s.hash).await?;
        }
        for i in &spec.inputs {
            b.inputs
                .insert(i.name.clone(), self.blob(peer, i.blob.hash).await?);
        }
        Ok(b)
    }

    async fn blob(&self, peer: PeerId, hash: B256) -> anyhow::Result<Vec<u8>> {
        if let Some(b) = self.store.blobs().get(&hash)? {
            return Ok(b);
        }
        let fetched = self
            .net
            .fetch_blob(peer, hash, |_, _| {})
            .await
            .with_context(|| format!("fetching blob {hash} from {peer}"))?;
        self.store.blobs().put_expecting(&hash, &fetched.bytes)?;
        Ok(fetched.bytes)
    }

    /// Runs `spec` seeded with `seed` and returns the report (off the async threads).
    async fn run(
        &self,
        peer: PeerId,
        spec: &sietch_market::JobSpec,
        seed: B256,
    ) -> anyhow::Result<sietch_sandbox::JobReport> {
        let blobs = self.blobs(peer, spec).await?;
        let sandbox = self.sandbox.clone();
        let spec = spec.clone();
        Ok(
            tokio::task::spawn_blocking(move || jobs::run(&sandbox, &spec, &seed, blobs))
                .await
                .context("the sandbox task")??,
        )
    }

    async fn execute(&self, peer: PeerId, req: &JobRequest) -> anyhow::Result<JobResult> {
        let t = &req.ticket;
        // A spot check's re-run carries the original's job id: the same seed, the same output.
        let mut report = self.run(peer, &req.spec, t.job_id).await?;
        if self.cheats_on(&t.job_id) {
            // Test-only: a wrong answer that still looks like one, committed to as if true.
            report.stdout.extend_from_slice(b" (cheat)");
            report.output_hash =
                sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
        }
        if !self.config.test_output_name.is_empty() {
            // Test-only: an output name of the provider's choosing, committed to.
            let data = report
                .outputs
                .pop_first()
                .map(|(_, d)| d)
                .unwrap_or_default();
            report
                .outputs
                .insert(self.config.test_output_name.clone(), data);
            report.output_hash =
                sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
        }
        // Test-only: GPU time billed that the run did not use.
        let gpu_millis = report.gpu_time_ns / 1_000_000 + self.config.test_overbill_gpu_millis;
        let commitment = ResultCommitment {
            job_id: t.job_id,
            spec_hash: t.spec_hash,
            channel_id: t.channel_id,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis,
            // At the ticket's prices (this offer's, checked on arrival): what the escrow
            // holds the charge to.
            amount: jobs::charge(
                report.fuel_used,
                gpu_millis,
                &Prices {
                    per_gfuel: t.per_gfuel,
                    per_gpu_second: t.per_gpu_second,
                },
                t.max_amount,
            ),
        };
        let signature = commitment.sign(&self.domain, &self.evm)?;
        self.emit(NodeEvent::Ran {
            job: t.job_id.to_string(),
            outcome: report.outcome.to_string(),
            fuel: report.fuel_used,
            amount: commitment.amount.to_string(),
        });
        Ok(JobResult {
            job_id: t.job_id,
            outcome: report.outcome.tag(),
            stdout: report.stdout,
            files: report.outputs.into_iter().collect(),
            commitment,
            signature,
        })
    }

    /// The test-only cheat switch: whether this job gets a wrong answer.
    fn cheats_on(&self, job: &B256) -> bool {
        let ppm = self.config.test_cheat_ppm;
        if ppm == 0 {
            return false;
        }
        let h = blake3::hash(job.as_slice());
        let mut x = [0u8; 4];
        x.copy_from_slice(&h.as_bytes()[..4]);
        u32::from_le_bytes(x) % 1_000_000 < ppm
    }

    // ---------------------------------------------------------------- payment

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
    fn record_payment(
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
    fn check_payment(
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
    fn paid(
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
    fn note_owed(&self, voucher: &sietch_market::Voucher) {
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

    // ---------------------------------------------------------------- settlement

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
    async fn claim_tickets(&self, chain: &Chain) -> anyhow::Result<()> {
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
    async fn finalize_tickets(&self, chain: &Chain) -> anyhow::Result<()> {
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

    // ---------------------------------------------------------------- chain events

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
        if let Some(c) = touched
            && let Ok(mut v) = self.channel_views.lock()
        {
            v.remove(&c);
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
                let mine = self
                    .claimed
                    .lock()
                    .ok()
                    .and_then(|mut c| c.remove(&e.ticketId));
                if mine.is_some() {
                    self.emit(NodeEvent::TicketSettled {
                        ticket: e.ticketId.to_string(),
                        outcome: crate::dispute::outcome_name(e.outcome).into(),
                    });
                }
            }
            SietchEscrowEvents::VerifiersDrawn(e) => {
                let mine = self
                    .claimed
                    .lock()
                    .ok()
                    .and_then(|c| c.get(&e.ticketId).copied());
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

    /// Sends the disputed job to each drawn verifier (the other party does the same).
    async fn ask_verifiers(&self, chain: &Chain, ticket: B256, job: B256, verifiers: &[Address]) {
        let Ok(Some(record)) = self.store.job(Side::Provider, &job) else {
            return;
        };
        let Ok(Some(spec)) = self.store.job_spec(&record.spec_hash) else {
            return;
        };
        let delivery = match self.config.test_undeliver {
            // Test-only: not even to the verifiers.
            2 => None,
            _ => self.kept_result(&job),
        };
        crate::dispute::ask_verifiers(&self.net, chain, ticket, job, &spec, delivery, verifiers)
            .await;
    }

    /// The result of an unpaid job, from memory or, once its ticket was claimed, the store.
    fn kept_result(&self, job: &B256) -> Option<JobResult> {
        self.results.get(job).or_else(|| {
            let bytes = self.store.job_outputs(job).ok()??;
            JobResult::from_bytes(&bytes).ok()
        })
    }

    /// Writes an unpaid job's result to the store, so that it outlives a restart; whether
    /// this node holds it (in memory or already on disk).
    async fn keep_for_dispute(&self, job: &B256) -> bool {
        if let Ok(Some(_)) = self.store.job_outputs(job) {
            return true;
        }
        let Some(result) = self.results.get(job) else {
            return false;
        };
        let (id, bytes) = (*job, result.to_bytes());
        matches!(
            off_async(&self.store, move |s| s.put_job_outputs(&id, &bytes)).await,
            Some(Ok(()))
        )
    }

    /// This node was drawn as a verifier: re-run the job and post a verdict.
    pub(crate) async fn on_verify(
        self: Arc<Self>,
        peer: PeerId,
        req: VerifyRequest,
        reply: oneshot::Sender<VerifyReply>,
    ) {
        let refuse = |m: String| VerifyReply::Refused { message: m };
        let Some(chain) = self.chain.clone() else {
            let _ = reply.send(refuse("this node follows no chain".into()));
            return;
        };
        let rec = match chain.ticket(req.ticket_id).await {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(refuse(format!("cannot read the ticket: {e}")));
                return;
            }
        };
        let drawn = crate::chain::drawn(&rec.verifiers, rec.drawn);
        let problem = if rec.state != crate::chain::TICKET_DRAWN {
            Some("the ticket is not waiting for verdicts".to_owned())
        } else if !drawn.contains(&chain.me()) {
            Some("this node was not drawn for the ticket".into())
        } else if Chain::ticket_id(rec.channelId, req.job_id) != req.ticket_id {
            Some("the job is not the ticket's".into())
        } else if req.spec.hash() != rec.specHash {
            Some("the spec is not the ticket's".into())
        } else {
            None
        };
        if let Some(p) = problem {
            let _ = reply.send(refuse(p));
            return;
        }
        // The provider's result, if this request brings it: kept when its outputs are the
        // claimed ones (whoever sends it, they prove themselves by their hash).
        if let Some(d) = req.delivery
            && delivery::is_the_claimed(&d, req.job_id, rec.outputHash, rec.fuelUsed)
        {
            self.deliveries.put(req.ticket_id, *d);
        }
        let held = self.deliveries.get(&req.ticket_id);
        // One vote per round: a round without a majority is drawn again, maybe with us.
        let round_key = alloy::primitives::keccak256([req.ticket_id.0, [rec.round; 32]].concat());
        let fresh = self
            .voted
            .lock()
            .map(|mut v| v.len() < MAX_UNPAID && v.insert(round_key))
            .unwrap_or(false);
        // A party without the result (the buyer) gets it as soon as this node holds it.
        let _ = reply.send(match held {
            Some(r) => VerifyReply::Delivered(Box::new(r)),
            None => VerifyReply::Accepted,
        });
        if !fresh {
            return;
        }
        let report = match self.run(peer, &req.spec, req.job_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("verifying ticket {}: {e:#}", req.ticket_id);
                if let Ok(mut v) = self.voted.lock() {
                    v.remove(&round_key);
                }
                return;
            }
        };
        let mut commitment = ResultCommitment {
            job_id: req.job_id,
            spec_hash: rec.specHash,
            // The vote counts on this ticket only: its channel and job make the ticket id.
            channel_id: rec.channelId,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis: report.gpu_time_ns / 1_000_000,
            amount: U256::ZERO,
        };
        let right =
            commitment.output_hash == rec.outputHash && commitment.fuel_used == rec.fuelUsed;
        // A right result counts only if it was delivered: wait for the provider's until a
        // quarter of the verdict window is left (at least 5 s), then vote "not delivered".
        if right
            && !self
                .wait_for_delivery(&chain, req.ticket_id, rec.deadline)
                .await
        {
            commitment.output_hash = delivery::NOT_DELIVERED;
        }
        let agrees = right && commitment.output_hash == rec.outputHash;
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
                ticket: req.ticket_id.to_string(),
                agrees,
            }),
            Err(e) => tracing::warn!("posting the verdict on {}: {e}", req.ticket_id),
        }
        // Settle as soon as a majority exists (anyone may).
        let _ = chain.resolve(req.ticket_id).await;
    }

    /// Waits until this node holds the provider's result for `ticket`, or until a quarter
    /// of the time to `deadline` (at least 5 s) is left; whether it holds it.
    async fn wait_for_delivery(&self, chain: &Chain, ticket: B256, deadline: u64) -> bool {
        let Ok(now) = chain.now().await else {
            return self.deliveries.get(&ticket).is_some();
        };
        let left = deadline.saturating_sub(now);
        let wait = left.saturating_sub((left / 4).max(5));
        let until = tokio::time::Instant::now() + Duration::from_secs(wait);
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

/// The escrow's custom error in a chain error, if that is what it is.
pub(crate) fn reverted(e: &ChainError) -> Option<&SietchEscrowErrors> {
    match e {
        ChainError::Escrow(e) => e.reverted(),
        _ => None,
    }
}
