//! The buyer's lanes: its payment channels, each with where its cumulative line stands and
//! whether a job holds it. [`Lanes`] is the table and its rules, with no network and no
//! chain inside: opening and topping up a channel on chain is the buyer's
//! ([`super::channels`]), which asks the table what to do and tells it what was done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use sietch_market::{Address, B256, U256};

use crate::net::Payment;
use crate::sync::lock;

mod pending;
pub(super) use pending::Pending;

/// One lane: a channel to a provider and where its cumulative line stands.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    pub(super) channel: B256,
    pub(super) provider: Address,
    /// Latest voucher signed (the next ticket's range starts here).
    pub(super) cumulative: U256,
    /// What the channel holds in all (deposits).
    pub(super) deposit: U256,
    pub(super) busy: bool,
    /// A job on it ended without a voucher: its ticket may still be claimed, so the lane
    /// takes no more tickets; it is closed.
    pub(super) retired: bool,
    /// When a started close may be finalized.
    pub(super) closes_at: Option<u64>,
    /// Closed on chain: what was left went back to the buyer.
    pub(super) closed: bool,
    /// The payment of the lane's last job, signed and stored, waiting for the next job's
    /// request to carry it (or [`super::PAYMENT_CARRY_WAIT`], then sent alone). The
    /// provider takes no new ticket on the channel before it has it.
    pub(super) pending: Option<Pending>,
    /// A top-up ahead of need is on its way to the chain.
    pub(super) topping: bool,
}

/// A lane as a restarted buyer rebuilds it (see [`super::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Restored {
    pub(super) channel: B256,
    pub(super) provider: Address,
    /// The latest voucher signed on it, or what the chain paid, whichever is greater.
    pub(super) cumulative: U256,
    pub(super) deposit: U256,
    /// It may still pay a ticket not paid by voucher, or it is closing: no more tickets.
    pub(super) retired: bool,
    /// When its started close may be finalized.
    pub(super) closes_at: Option<u64>,
    /// The payment of the job its latest voucher pays, sent again: the buyer may have
    /// stopped before its provider had it, and the provider takes no ticket whose range
    /// starts past the latest voucher it holds. A payment it already holds is recorded once.
    pub(super) payment: Option<Payment>,
}

/// A lane taken for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Taken {
    pub(super) channel: B256,
    pub(super) provider: Address,
    pub(super) cumulative_before: U256,
}

/// What a job looking for a lane should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Take {
    /// A free lane that can pay the job: taken.
    Ready(Taken),
    /// A free lane that cannot pay it: taken, to be topped up to `end` first.
    TopUp { channel: B256, end: U256 },
    /// No free lane, and one may be opened.
    Open,
    /// Every lane is busy and none may be opened now: wait for one to free up.
    Wait,
}

/// How many lanes a job may count on to a provider when it looks for one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    /// Lanes being opened to the provider.
    pub(super) opening: usize,
    /// The most lanes to one provider; `None`: open beyond it rather than wait (re-runs).
    pub(super) max_lanes: Option<usize>,
    /// Whether this job may start an open (it has none of its own running).
    pub(super) may_open: bool,
}

/// The buyer's lanes.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    lanes: Vec<Lane>,
}

impl Lanes {
    fn get_mut(&mut self, channel: B256) -> Option<&mut Lane> {
        self.lanes.iter_mut().find(|l| l.channel == channel)
    }

    fn live(&self, provider: Address) -> impl Iterator<Item = &Lane> + Clone {
        self.lanes
            .iter()
            .filter(move |l| l.provider == provider && !l.retired)
    }

    /// A lane to `provider` that can pay `need` more: a free funded one is taken at once; a
    /// free one short of money is taken to be topped up; else one may be opened (one at a
    /// time to a provider, within `max_lanes`), or the job waits.
    pub(super) fn take(&mut self, provider: Address, need: U256, room: Room) -> Take {
        let count = self.live(provider).count() + room.opening;
        if let Some(l) = self.lanes.iter_mut().find(|l| {
            l.provider == provider && !l.retired && !l.busy && l.deposit >= l.cumulative + need
        }) {
            l.busy = true;
            return Take::Ready(Taken {
                channel: l.channel,
                provider,
                cumulative_before: l.cumulative,
            });
        }
        if let Some(l) = self
            .lanes
            .iter_mut()
            .find(|l| l.provider == provider && !l.retired && !l.busy)
        {
            l.busy = true;
            return Take::TopUp {
                channel: l.channel,
                end: l.cumulative + need,
            };
        }
        // One lane opens to a provider at a time: a job that finds every lane busy while
        // one is opening waits for that one or for a lane to free (milliseconds), rather
        // than queue a channel open of its own on the chain (a transaction a block).
        let within = room.max_lanes.is_none_or(|max| count < max);
        if room.may_open && room.opening == 0 && within {
            Take::Open
        } else {
            Take::Wait
        }
    }

    /// Whether a job to `provider` could start now: a lane is free for it (more free lanes
    /// than `waiting` jobs already waiting for one), or one may be opened (none is opening
    /// to it and no job waits: a job would wait behind those).
    pub(super) fn has_room(
        &self,
        provider: Address,
        opening: usize,
        waiting: usize,
        max_lanes: usize,
    ) -> bool {
        let mine = self.live(provider);
        let count = mine.clone().count();
        let free = mine.filter(|l| !l.busy).count();
        free > waiting || (waiting == 0 && opening == 0 && count < max_lanes)
    }

    /// A lane just opened on `channel` with `deposit`: it joins the table held by the job
    /// that opened it, its line at `signed` (the latest voucher signed on that id before: an
    /// open a reorganization dropped had it; zero for a new id).
    pub(super) fn opened(
        &mut self,
        channel: B256,
        provider: Address,
        deposit: U256,
        signed: U256,
    ) -> Taken {
        self.lanes.push(Lane {
            channel,
            provider,
            cumulative: signed,
            deposit,
            busy: true,
            retired: false,
            closes_at: None,
            closed: false,
            pending: None,
            topping: false,
        });
        Taken {
            channel,
            provider,
            cumulative_before: signed,
        }
    }

    /// A lane of a restarted buyer joins the table free, with the payment it sends again
    /// waiting on it ([`Pending`], its peer not known yet; `at`: since when). A lane already
    /// there keeps the greater line and deposit (a voucher is never signed below one signed
    /// before) and stays retired if it was; it takes the payment only when it has none
    /// waiting and its line is still where that payment ends it.
    pub(super) fn restore(&mut self, r: Restored, at: Instant) {
        let pending = r.payment.map(|payment| Pending {
            payment,
            peer: None,
            since: at,
            tries: 0,
        });
        if let Some(l) = self.get_mut(r.channel) {
            let same_line = l.cumulative == r.cumulative;
            l.cumulative = l.cumulative.max(r.cumulative);
            l.deposit = l.deposit.max(r.deposit);
            l.retired |= r.retired;
            l.closes_at = l.closes_at.or(r.closes_at);
            if l.pending.is_none() && same_line {
                l.pending = pending;
            }
            return;
        }
        self.lanes.push(Lane {
            channel: r.channel,
            provider: r.provider,
            cumulative: r.cumulative,
            deposit: r.deposit,
            busy: false,
            retired: r.retired,
            closes_at: r.closes_at,
            closed: false,
            pending,
            topping: false,
        });
    }

    /// Frees a lane; `retire`: it takes no more tickets (a job on it ended unpaid).
    pub(super) fn release(&mut self, channel: B256, retire: bool) {
        if let Some(l) = self.get_mut(channel) {
            l.busy = false;
            l.retired |= retire;
        }
    }

    /// A voucher up to `cumulative` was signed on the lane: its line moves on (never back)
    /// and it is free. `low`: with a chain, the room under which the lane is topped up ahead
    /// of need; returns whether that top-up should start now (one at a time, never on a
    /// retired lane).
    pub(super) fn advance(&mut self, channel: B256, cumulative: U256, low: Option<U256>) -> bool {
        let Some(l) = self.get_mut(channel) else {
            return false;
        };
        l.cumulative = l.cumulative.max(cumulative);
        l.busy = false;
        let short = low.is_some_and(|low| l.deposit.saturating_sub(l.cumulative) < low);
        if short && !l.retired && !l.topping {
            l.topping = true;
            return true;
        }
        false
    }

    /// A top-up ahead of need ended, adding `added` (none when it failed).
    pub(super) fn topped_up(&mut self, channel: B256, added: Option<U256>) {
        if let Some(l) = self.get_mut(channel) {
            l.topping = false;
            if let Some(a) = added {
                l.deposit += a;
            }
        }
    }

    /// The lane's channel holds only `deposit` (a top-up was reorganized out): its deposit
    /// comes down to it, never up. What it was, if it came down.
    pub(super) fn lower_deposit(&mut self, channel: B256, deposit: U256) -> Option<U256> {
        let l = self.get_mut(channel)?;
        (l.deposit > deposit).then(|| std::mem::replace(&mut l.deposit, deposit))
    }

    /// `amount` more was deposited into the lane's channel.
    pub(super) fn add_deposit(&mut self, channel: B256, amount: U256) {
        if let Some(l) = self.get_mut(channel) {
            l.deposit += amount;
        }
    }

    /// Where a lane's line stands: (cumulative, deposit).
    pub(super) fn line(&self, channel: B256) -> Option<(U256, U256)> {
        self.lanes
            .iter()
            .find(|l| l.channel == channel)
            .map(|l| (l.cumulative, l.deposit))
    }

    /// The first lane to `provider` still taking tickets.
    pub(super) fn first_live(&self, provider: Address) -> Option<B256> {
        self.live(provider).next().map(|l| l.channel)
    }

    /// The lane takes no more tickets (its channel is closing).
    pub(super) fn retire(&mut self, channel: B256) {
        if let Some(l) = self.get_mut(channel) {
            l.retired = true;
        }
    }

    /// Forgets the lane of a channel the chain does not have (its open was reorganized out
    /// for good). A job that holds it fails at its provider (no ticket on a channel that is
    /// not open) and finds no lane to release; a voucher it signs stays in the store, where a
    /// later open of the same id takes its line from.
    pub(super) fn forget(&mut self, channel: B256) {
        self.lanes.retain(|l| l.channel != channel);
    }

    /// Whether `channel` is one of the buyer's.
    pub(super) fn owns(&self, channel: &B256) -> bool {
        self.lanes.iter().any(|l| l.channel == *channel)
    }

    /// Every channel: (channel, provider, cumulative, deposit).
    pub(super) fn summary(&self) -> Vec<(B256, Address, U256, U256)> {
        self.lanes
            .iter()
            .map(|l| (l.channel, l.provider, l.cumulative, l.deposit))
            .collect()
    }

    /// Retired lanes no job holds, with no payment waiting and no close started.
    pub(super) fn to_close(&self) -> Vec<B256> {
        self.lanes
            .iter()
            .filter(|l| l.retired && !l.busy && l.pending.is_none() && l.closes_at.is_none())
            .map(|l| l.channel)
            .collect()
    }

    /// Lanes whose close may be finalized at `now` (unix seconds).
    pub(super) fn to_finalize(&self, now: u64) -> Vec<B256> {
        self.lanes
            .iter()
            .filter(|l| !l.closed && l.closes_at.is_some_and(|c| c < now))
            .map(|l| l.channel)
            .collect()
    }

    /// A close was started (or not: `None`) on the lane's channel.
    pub(super) fn set_closes_at(&mut self, channel: B256, closes_at: Option<u64>) {
        if let Some(l) = self.get_mut(channel) {
            l.closes_at = closes_at;
        }
    }

    /// The lane's channel is closed on chain.
    pub(super) fn mark_closed(&mut self, channel: B256) {
        if let Some(l) = self.get_mut(channel) {
            l.closed = true;
        }
    }
}

/// A count per provider: channel opens in flight, jobs waiting for a lane.
#[derive(Debug, Default)]
pub(super) struct PerProvider(Mutex<HashMap<Address, usize>>);

impl PerProvider {
    pub(super) fn of(&self, provider: Address) -> usize {
        lock(&self.0).get(&provider).copied().unwrap_or(0)
    }

    pub(super) fn total(&self) -> usize {
        lock(&self.0).values().sum()
    }

    pub(super) fn add(&self, provider: Address) {
        *lock(&self.0).entry(provider).or_default() += 1;
    }

    pub(super) fn sub(&self, provider: Address) {
        let mut m = lock(&self.0);
        if let Some(n) = m.get_mut(&provider) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&provider);
            }
        }
    }

    /// Counts one for `provider` until the guard is dropped.
    pub(super) fn hold(&self, provider: Address) -> Held<'_> {
        self.add(provider);
        Held {
            counts: self,
            provider,
        }
    }
}

/// One counted in a [`PerProvider`] until dropped.
pub(super) struct Held<'a> {
    counts: &'a PerProvider,
    provider: Address,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.counts.sub(self.provider);
    }
}

#[cfg(test)]
pub(super) mod tests;
