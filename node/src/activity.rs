//! What a node has seen happen, kept for the API and the explorer: recent escrow events
//! (settlements, tickets, disputes, slashes), and the node's market activity over time
//! (jobs finished, money paid, fuel, in fixed time buckets). Everything is bounded: the
//! oldest entries go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;

use crate::events::{JobEnd, NodeEvent};

/// Escrow events kept.
const MAX_CHAIN_EVENTS: usize = 10_000;
/// Width of a time bucket, in seconds.
pub const BUCKET_SECS: u64 = 10;
/// Buckets kept (one hour).
const MAX_BUCKETS: usize = 360;
/// Jobs whose check and outcome are remembered.
const MAX_JOB_NOTES: usize = 10_000;

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
    notes: std::collections::HashMap<String, JobNote>,
    note_order: VecDeque<String>,
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
        match e {
            NodeEvent::ResultIn { job, outcome, .. } => {
                i.note(&job.to_string()).outcome = Some(outcome.to_string());
            }
            NodeEvent::Checking { job, .. } => i.note(&job.to_string()).sampled = true,
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

    /// The time buckets, oldest first.
    pub fn buckets(&self) -> Vec<Bucket> {
        self.inner
            .lock()
            .map(|i| i.buckets.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sietch_market::B256;

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
