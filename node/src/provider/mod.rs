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
//!   and post its own signed result commitment as its verdict; a generation checked by
//!   rescoring is voted on by re-scoring its delivered completions (`verifier_rescore`).

mod admission;
pub(crate) mod adversary;
mod events;
#[cfg(test)]
mod fixtures;
mod offer;
mod payment;
mod serve;
mod settle;
mod verifier;
mod verifier_rescore;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use sietch_market::eip712::Domain;
use sietch_market::{B256, Offer, U256};
use tokio::sync::{Notify, Semaphore};

use crate::chain::{Chain, ChannelView};
use crate::config::NodeConfig;
use crate::delivery::Results;
use crate::events::{Events, NodeEvent};
use crate::net::{self, Network};
use crate::store::{EvmSigned, JobState, Side, Store};
use crate::sync::lock;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unpaid {
    /// When its result was delivered (or its payment withheld).
    since: u64,
    /// The buyer withheld payment: claim at once.
    withheld: bool,
}

/// The provider role, shared by the service's tasks: each module adds its part of the
/// methods ([`offer`], [`admission`], [`serve`], [`payment`], [`settle`], [`events`],
/// [`verifier`]).
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
    lanes: admission::Lanes,
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
    channel_views: Mutex<HashMap<B256, ChannelView>>,
    /// What the latest voucher of each channel owes beyond what the chain paid, as far as
    /// this node knows; emptied by a claim.
    owed: Mutex<HashMap<B256, U256>>,
    /// Blobs in memory, one copy shared by the jobs that read them (a model).
    shared: crate::shared_blobs::SharedBlobs,
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
            lanes: admission::Lanes::new(MAX_UNPAID),
            unpaid: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
            voted: Mutex::new(HashSet::new()),
            results: Results::new(KEPT_RESULTS.0, KEPT_RESULTS.1),
            deliveries: Results::new(HELD_DELIVERIES.0, HELD_DELIVERIES.1),
            settle_now: Notify::new(),
            channel_views: Mutex::new(HashMap::new()),
            owed: Mutex::new(HashMap::new()),
            shared: crate::shared_blobs::SharedBlobs::new(crate::shared_blobs::DEFAULT_KEPT_BYTES),
        });
        me.recover_unpaid();
        me
    }

    /// After a restart: jobs whose result was made but not paid wait for payment again.
    fn recover_unpaid(&self) {
        let mut after = None;
        loop {
            let page = match self.store.jobs(Side::Provider, after.as_ref(), 1000) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(
                        "cannot read the jobs to recover after {after:?}: their unpaid results \
                         wait for no payment until the next restart: {e}"
                    );
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some(last.job_id);
            let mut unpaid = lock(&self.unpaid);
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

    fn emit(&self, e: NodeEvent) {
        self.events.emit(e);
    }

    /// A job is no longer waiting for payment.
    fn forget_unpaid(&self, job: &B256) {
        lock(&self.unpaid).remove(job);
    }

    /// A job waits for payment from now (`withheld`: the buyer said it will not pay).
    fn note_unpaid(&self, job: B256, withheld: bool) {
        lock(&self.unpaid).insert(
            job,
            Unpaid {
                since: now(),
                withheld,
            },
        );
    }
}
