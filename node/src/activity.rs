//! What a node has seen happen, kept for the API and the explorer: recent escrow events
//! (settlements, tickets, disputes, slashes), and the node's market activity over time
//! (jobs finished, money paid, fuel, in fixed time buckets). Everything is bounded: the
//! oldest entries go first. `market` is the whole market as the node saw it (escrow events'
//! totals over time and by provider, the order book's prices by GPU model).

pub mod market;

pub use market::{MarketView, OfferPrices};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::{Address, B256, U256};

use crate::events::{JobEnd, NodeEvent};
use crate::store::{JobRecord, JobState};

/// Escrow events kept.
const MAX_CHAIN_EVENTS: usize = 10_000;
/// Width of a time bucket, in seconds.
pub const BUCKET_SECS: u64 = 10;
/// Buckets kept (one hour).
const MAX_BUCKETS: usize = 360;
/// Jobs whose check and outcome are remembered.
const MAX_JOB_NOTES: usize = 10_000;
/// Channels whose claimed amount is remembered.
const MAX_CLAIMED_CHANNELS: usize = 10_000;

/// What the node saw of one job it bought: how it ended and its spot check.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct JobNote {
    /// How the job ended, in words.
    pub outcome: Option<String>,
    /// Whether it was sampled for a spot check.
    pub sampled: bool,
    /// Re-runs the check made.
    pub reruns: u32,
    /// Whether the provider's result held (`None` until the check ends, or not sampled).
    pub passed: Option<bool>,
    /// The check's decision.
    pub decision: Option<String>,
}

/// An escrow event as the explorer shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChainRecord {
    /// Block number.
    pub block: u64,
    /// Unix time this node saw it (within the chain poll period of the block's time).
    pub seen_at: u64,
    /// Event name (`VoucherClaimed`, `TicketClaimed`, ...).
    pub kind: &'static str,
    /// The event's fields, as JSON (amounts as decimal strings).
    pub fields: serde_json::Value,
}

/// One time bucket of activity.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// Unix time the bucket starts.
    pub start: u64,
    /// Jobs finished (paid or withheld).
    pub jobs: u64,
    /// Jobs that failed.
    pub failed: u64,
    /// Spot checks completed.
    pub checks: u64,
    /// Charged for the jobs finished, token base units (a decimal string in JSON).
    #[serde(serialize_with = "decimal")]
    pub paid: u128,
    /// Fuel of the jobs finished.
    pub fuel: u64,
}

/// The node's activity record. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    chain: VecDeque<ChainRecord>,
    buckets: VecDeque<Bucket>,
    notes: HashMap<String, JobNote>,
    note_order: VecDeque<String>,
    /// Each channel's provider and the most its `VoucherClaimed` events paid (cumulative).
    claimed: HashMap<B256, (Address, U256)>,
    /// Provider side, since start: results its buyers refused to pay (a failed spot check).
    withheld: u64,
    /// The market as this node saw it.
    market: market::Market,
}

impl Inner {
    fn note(&mut self, job: &str) -> &mut JobNote {
        if !self.notes.contains_key(job) {
            if self.note_order.len() >= MAX_JOB_NOTES
                && let Some(old) = self.note_order.pop_front()
            {
                self.notes.remove(&old);
            }
            self.note_order.push_back(job.to_owned());
        }
        self.notes.entry(job.to_owned()).or_default()
    }
}

fn decimal<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn s<T: ToString>(v: T) -> serde_json::Value {
    serde_json::Value::String(v.to_string())
}

/// The explorer's form of an escrow event; `None` for events it does not show.
fn record(block: u64, seen_at: u64, e: &SietchEscrowEvents) -> Option<ChainRecord> {
    use serde_json::json;
    let (kind, fields) = match e {
        SietchEscrowEvents::Registered(e) => (
            "Registered",
            json!({"account": s(e.account), "node_key": s(e.nodeKey)}),
        ),
        SietchEscrowEvents::Staked(e) => (
            "Staked",
            json!({"account": s(e.account), "amount": s(e.amount), "total": s(e.total)}),
        ),
        SietchEscrowEvents::ChannelOpened(e) => (
            "ChannelOpened",
            json!({"channel": s(e.channelId), "buyer": s(e.buyer), "provider": s(e.provider), "deposit": s(e.amount)}),
        ),
        SietchEscrowEvents::ChannelToppedUp(e) => (
            "ChannelToppedUp",
            json!({"channel": s(e.channelId), "amount": s(e.amount), "deposit": s(e.amount)}),
        ),
        SietchEscrowEvents::VoucherClaimed(e) => (
            "VoucherClaimed",
            json!({"channel": s(e.channelId), "provider": s(e.provider), "cumulative": s(e.cumulativeAmount), "amount": s(e.amount), "paid": s(e.paid)}),
        ),
        SietchEscrowEvents::CloseStarted(e) => (
            "CloseStarted",
            json!({"channel": s(e.channelId), "by": s(e.by), "closes_at": e.closesAt}),
        ),
        SietchEscrowEvents::ChannelClosed(e) => (
            "ChannelClosed",
            json!({"channel": s(e.channelId), "refund": s(e.refund)}),
        ),
        SietchEscrowEvents::TicketClaimed(e) => (
            "TicketClaimed",
            json!({"ticket": s(e.ticketId), "channel": s(e.channelId), "job": s(e.jobId), "amount": s(e.amount), "output_hash": s(e.outputHash), "fuel_used": e.fuelUsed, "challenge_ends": e.challengeEnds, "reserved": s(e.reserved), "cumulative_end": s(e.cumulativeEnd)}),
        ),
        SietchEscrowEvents::TicketDisputed(e) => (
            "TicketDisputed",
            json!({"ticket": s(e.ticketId), "buyer": s(e.buyer), "bond": s(e.bond), "draw_block": e.drawBlock}),
        ),
        SietchEscrowEvents::VerifiersDrawn(e) => (
            "VerifiersDrawn",
            json!({"ticket": s(e.ticketId), "verifiers": crate::chain::drawn(&e.verifiers, e.drawn).iter().map(s).collect::<Vec<_>>(), "verdict_deadline": e.verdictDeadline}),
        ),
        SietchEscrowEvents::VerdictSubmitted(e) => (
            "VerdictSubmitted",
            json!({"ticket": s(e.ticketId), "verifier": s(e.verifier), "agrees": e.agrees, "output_hash": s(e.outputHash)}),
        ),
        SietchEscrowEvents::TicketSettled(e) => (
            "TicketSettled",
            json!({"ticket": s(e.ticketId), "outcome": crate::events::TicketOutcome::from_code(e.outcome).name(), "to_provider": s(e.toProvider), "refund": s(e.refund), "bond_to_buyer": s(e.bondToBuyer), "bond_to_provider": s(e.bondToProvider)}),
        ),
        SietchEscrowEvents::Slashed(e) => (
            "Slashed",
            json!({"provider": s(e.provider), "ticket": s(e.ticketId), "amount": s(e.amount), "verifiers": s(e.verifiers), "compensation": s(e.compensation), "burned": s(e.burned), "kept": s(e.kept)}),
        ),
        SietchEscrowEvents::VerifierPaid(e) => (
            "VerifierPaid",
            json!({"ticket": s(e.ticketId), "verifier": s(e.verifier), "amount": s(e.amount)}),
        ),
        SietchEscrowEvents::VerifierPenalized(e) => (
            "VerifierPenalized",
            json!({"ticket": s(e.ticketId), "verifier": s(e.verifier), "amount": s(e.amount)}),
        ),
        SietchEscrowEvents::DrawRearmed(e) => (
            "DrawRearmed",
            json!({"ticket": s(e.ticketId), "draw_block": e.drawBlock, "waiting_for_verifiers": e.waiting}),
        ),
        SietchEscrowEvents::Redrawn(e) => (
            "Redrawn",
            json!({"ticket": s(e.ticketId), "round": e.round, "draw_block": e.drawBlock}),
        ),
        SietchEscrowEvents::Credited(e) => (
            "Credited",
            json!({"account": s(e.account), "amount": s(e.amount), "balance": s(e.balance)}),
        ),
        SietchEscrowEvents::Withdrawn(e) => (
            "Withdrawn",
            json!({"account": s(e.account), "amount": s(e.amount)}),
        ),
        SietchEscrowEvents::PoolRefused(e) => (
            "PoolRefused",
            json!({"account": s(e.account), "stake": s(e.weight), "smallest": s(e.smallest)}),
        ),
        SietchEscrowEvents::PoolEvicted(e) => (
            "PoolEvicted",
            json!({"evicted": s(e.evicted), "account": s(e.account), "epoch": e.epoch}),
        ),
        _ => return None,
    };
    Some(ChainRecord {
        block,
        seen_at,
        kind,
        fields,
    })
}

impl Activity {
    /// Records an escrow event seen at unix time `now`; returns its record when it is one
    /// the explorer shows.
    pub fn chain_event(&self, block: u64, now: u64, e: &SietchEscrowEvents) -> Option<ChainRecord> {
        let r = record(block, now, e)?;
        if let Ok(mut i) = self.inner.lock() {
            if let SietchEscrowEvents::VoucherClaimed(v) = e {
                let full = i.claimed.len() >= MAX_CLAIMED_CHANNELS;
                match i.claimed.get_mut(&v.channelId) {
                    Some(c) => c.1 = c.1.max(v.cumulativeAmount),
                    None if !full => {
                        i.claimed
                            .insert(v.channelId, (v.provider, v.cumulativeAmount));
                    }
                    None => {}
                }
            }
            i.market.chain_event(block, now, e);
            if i.chain.len() >= MAX_CHAIN_EVENTS {
                i.chain.pop_front();
            }
            i.chain.push_back(r.clone());
        }
        Some(r)
    }

    /// What the node saw of a job it bought.
    pub fn job_note(&self, job: &str) -> Option<JobNote> {
        self.inner.lock().ok()?.notes.get(job).cloned()
    }

    /// Records a node event at unix time `now`.
    pub fn node_event(&self, e: &NodeEvent, now: u64) {
        let Ok(mut i) = self.inner.lock() else { return };
        i.market.node_event(now, e);
        match e {
            NodeEvent::ResultIn { job, outcome, .. } => {
                i.note(&job.to_string()).outcome = Some(outcome.to_string());
            }
            NodeEvent::Checking { job, .. } => i.note(&job.to_string()).sampled = true,
            NodeEvent::Withheld { .. } => i.withheld = i.withheld.saturating_add(1),
            NodeEvent::Checked {
                job,
                passed,
                decision,
                reruns,
            } => {
                let n = i.note(&job.to_string());
                n.sampled = true;
                n.passed = Some(*passed);
                n.decision = Some(decision.clone());
                n.reruns = *reruns;
            }
            _ => {}
        }
        let start = now - now % BUCKET_SECS;
        if i.buckets.back().is_none_or(|b| b.start < start) {
            if i.buckets.len() >= MAX_BUCKETS {
                i.buckets.pop_front();
            }
            i.buckets.push_back(Bucket {
                start,
                ..Bucket::default()
            });
        }
        let Some(b) = i.buckets.back_mut() else {
            return;
        };
        match e {
            NodeEvent::Finished {
                state: JobEnd::Failed,
                ..
            } => b.failed += 1,
            NodeEvent::Finished { .. } => b.jobs += 1,
            NodeEvent::Checked { .. } => b.checks += 1,
            NodeEvent::ResultIn { amount, fuel, .. } => {
                b.paid = b
                    .paid
                    .saturating_add(u128::try_from(*amount).unwrap_or(u128::MAX));
                b.fuel = b.fuel.saturating_add(*fuel);
            }
            _ => {}
        }
    }

    /// Escrow events, newest last, at most `limit`, optionally of one kind.
    pub fn chain(&self, kind: Option<&str>, limit: usize) -> Vec<ChainRecord> {
        let Ok(i) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<ChainRecord> = i
            .chain
            .iter()
            .rev()
            .filter(|r| kind.is_none_or(|k| r.kind == k))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// What the escrow's `VoucherClaimed` events seen since start paid on each channel
    /// (cumulative), for [`jobs_settled`].
    pub fn claimed(&self) -> HashMap<B256, U256> {
        self.inner
            .lock()
            .map(|i| {
                i.claimed
                    .iter()
                    .map(|(c, (_, amount))| (*c, *amount))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Provider side: results whose payment a buyer withheld since start.
    pub fn withheld(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.withheld)
    }

    /// Records the order book's prices at unix time `now` (the API samples it).
    pub fn sample_offers(&self, now: u64, offers: &[OfferPrices]) {
        if let Ok(mut i) = self.inner.lock() {
            i.market.sample_offers(now, offers);
        }
    }

    /// The market as this node saw it; `None` if the record is unavailable (a panic held its lock).
    pub fn market(&self) -> Option<MarketView> {
        self.inner.lock().ok().map(|i| i.market.view())
    }

    /// The time buckets, oldest first.
    pub fn buckets(&self) -> Vec<Bucket> {
        self.inner
            .lock()
            .map(|i| i.buckets.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Jobs settled on chain through vouchers, by provider, counted by job (a claim pays a
/// channel's whole voucher, which may cover many jobs): each paid job of `jobs` whose range on
/// its channel's cumulative line, `[cumulative_before, cumulative_before + amount]`, ends at
/// or below what the channel has paid (`paid`: by channel, from the chain or the claims seen).
/// `provider` names a job's provider: the counterparty of a bought job, or this node.
pub fn jobs_settled(
    jobs: &[JobRecord],
    paid: &HashMap<B256, U256>,
    provider: impl Fn(&JobRecord) -> Address,
) -> HashMap<Address, u64> {
    let mut out: HashMap<Address, u64> = HashMap::new();
    for j in jobs.iter().filter(|j| j.state == JobState::Paid) {
        let (Some(t), Some(r)) = (&j.ticket, &j.result) else {
            continue;
        };
        let Some(claimed) = paid.get(&t.message.channel_id) else {
            continue;
        };
        let end = t.message.cumulative_before.saturating_add(r.message.amount);
        if end <= *claimed {
            let n = out.entry(provider(j)).or_default();
            *n = n.saturating_add(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fill_by_time_and_stay_bounded() {
        let a = Activity::default();
        let done = NodeEvent::Finished {
            job: B256::repeat_byte(1),
            state: JobEnd::Paid,
            millis: 3,
        };
        a.node_event(&done, 1_000);
        a.node_event(&done, 1_005);
        a.node_event(&done, 1_010);
        let b = a.buckets();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start, b[0].jobs), (1_000, 2));
        assert_eq!((b[1].start, b[1].jobs), (1_010, 1));
        for t in 0..(MAX_BUCKETS as u64 + 10) {
            a.node_event(&done, 2_000 + t * BUCKET_SECS);
        }
        assert_eq!(a.buckets().len(), MAX_BUCKETS);
    }
}

#[cfg(test)]
mod settled_tests {
    use sietch_market::{ResultCommitment, Ticket};

    use super::*;
    use crate::store::EvmSigned;

    /// A paid job on `channel` whose range is `[before, before + amount]`.
    fn job(n: u8, channel: B256, before: u64, amount: u64, state: JobState) -> JobRecord {
        let mut j = JobRecord::new(B256::repeat_byte(n), B256::ZERO, Address::repeat_byte(9), 1);
        j.state = state;
        j.ticket = Some(EvmSigned::new(
            Ticket {
                job_id: j.job_id,
                spec_hash: B256::ZERO,
                channel_id: channel,
                cumulative_before: U256::from(before),
                max_amount: U256::from(amount),
                deadline: 10,
                check_commit: B256::ZERO,
                per_gfuel: 1,
                per_gpu_second: 1,
            },
            [0; 65],
        ));
        j.result = Some(EvmSigned::new(
            ResultCommitment {
                job_id: j.job_id,
                spec_hash: B256::ZERO,
                channel_id: channel,
                output_hash: B256::ZERO,
                fuel_used: 1,
                gpu_millis: 0,
                amount: U256::from(amount),
            },
            [0; 65],
        ));
        j
    }

    #[test]
    fn one_claim_settles_every_job_its_voucher_covers() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let jobs = vec![
            job(1, a, 0, 10, JobState::Paid),
            job(2, a, 10, 10, JobState::Paid),
            job(3, a, 20, 10, JobState::Paid),
            // Past the claim: paid by a later voucher, not claimed yet.
            job(4, a, 30, 10, JobState::Paid),
            // Not paid: never counted.
            job(5, a, 0, 5, JobState::Failed),
            // A channel with no claim seen.
            job(6, b, 0, 10, JobState::Paid),
        ];
        // One VoucherClaimed event of 30 on `a`: three jobs, not one claim.
        let activity = Activity::default();
        activity.chain_event(
            7,
            100,
            &SietchEscrowEvents::VoucherClaimed(sietch_contracts::SietchEscrow::VoucherClaimed {
                channelId: a,
                provider: Address::repeat_byte(9),
                cumulativeAmount: U256::from(30),
                amount: U256::from(30),
                paid: U256::from(30),
            }),
        );
        let settled = jobs_settled(&jobs, &activity.claimed(), |j| j.counterparty);
        assert_eq!(settled.get(&Address::repeat_byte(9)), Some(&3));
        let paid = HashMap::from([(a, U256::from(40)), (b, U256::from(9))]);
        let settled = jobs_settled(&jobs, &paid, |_| Address::ZERO);
        assert_eq!(settled.get(&Address::ZERO), Some(&4), "b's job ends past 9");
    }
}
