//! Payments waiting on lanes: the one a lane holds for the next job's request to carry, or
//! to go alone once its lane is idle; a restarted buyer's, until its provider's peer is
//! known; one that did not reach its provider, until it goes again.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use sietch_market::{Address, B256};

use super::Lanes;
use crate::net::Payment;

/// A payment waiting on its lane.
#[derive(Debug, Clone)]
pub(in crate::buyer) struct Pending {
    pub(in crate::buyer) payment: Payment,
    /// The provider's peer; `None` for a payment a restarted buyer sends again before it
    /// knows the provider's peer (see [`Lanes::restore`]): carried by the next job's request,
    /// or sent alone once [`Lanes::found_peer`] gives it one.
    pub(in crate::buyer) peer: Option<PeerId>,
    /// When it began to wait (or, sent and not delivered, when it may go again).
    pub(in crate::buyer) since: Instant,
    /// Times it was sent and did not reach the provider.
    pub(in crate::buyer) tries: u8,
}

impl Lanes {
    /// Takes the payment waiting on a lane, to carry it in a job request.
    pub(in crate::buyer) fn take_pending(&mut self, channel: B256) -> Option<Payment> {
        self.get_mut(channel)?.pending.take().map(|p| p.payment)
    }

    /// Leaves `payment` waiting on its lane since `at`. A lane holds one: returns a payment
    /// that must go out alone now, never dropped: the older one still waiting (to the same
    /// provider, `peer`, when its own peer was not known), or this one when the lane is not
    /// in the table.
    pub(in crate::buyer) fn leave_payment(
        &mut self,
        channel: B256,
        peer: PeerId,
        payment: Payment,
        at: Instant,
    ) -> Option<(Payment, PeerId)> {
        match self.get_mut(channel) {
            Some(l) => l
                .pending
                .replace(Pending {
                    payment,
                    peer: Some(peer),
                    since: at,
                    tries: 0,
                })
                .map(|older| (older.payment, older.peer.unwrap_or(peer))),
            None => Some((payment, peer)),
        }
    }

    /// A payment sent `tries` times that did not reach the provider waits on its lane again,
    /// to go at `at`, unless a newer one waits there already (its voucher pays this one's
    /// money too) or the lane is gone. Whether it waits again.
    pub(in crate::buyer) fn send_again(
        &mut self,
        channel: B256,
        peer: PeerId,
        payment: Payment,
        tries: u8,
        at: Instant,
    ) -> bool {
        match self.get_mut(channel) {
            Some(l) if l.pending.is_none() => {
                l.pending = Some(Pending {
                    payment,
                    peer: Some(peer),
                    since: at,
                    tries,
                });
                true
            }
            _ => false,
        }
    }

    /// Takes every payment that has waited `at_least` (by `now`) on a lane no job holds, and
    /// holds those lanes (free them with [`Lanes::release`] once the payment is sent), so
    /// that no job's request overtakes it. Also returns whether payments still wait. A
    /// payment whose peer is not known yet is neither due nor counted (see [`Pending`]).
    pub(in crate::buyer) fn due_payments(
        &mut self,
        at_least: Duration,
        now: Instant,
    ) -> (Vec<(B256, PeerId, Payment, u8)>, bool) {
        let mut due = Vec::new();
        for l in self.lanes.iter_mut().filter(|l| !l.busy) {
            if let Some(p) = &l.pending
                && let Some(peer) = p.peer
                && now >= p.since
                && now.saturating_duration_since(p.since) >= at_least
                && let Some(p) = l.pending.take()
            {
                l.busy = true;
                due.push((l.channel, peer, p.payment, p.tries));
            }
        }
        let left = self
            .lanes
            .iter()
            .any(|l| l.pending.as_ref().is_some_and(|p| p.peer.is_some()));
        (due, left)
    }

    /// Lanes with a payment of a restarted buyer whose provider's peer is not known yet:
    /// (channel, provider).
    pub(in crate::buyer) fn peerless(&self) -> Vec<(B256, Address)> {
        self.lanes
            .iter()
            .filter(|l| l.pending.as_ref().is_some_and(|p| p.peer.is_none()))
            .map(|l| (l.channel, l.provider))
            .collect()
    }

    /// The provider of a lane whose payment waits without a peer was found at `peer`: the
    /// payment may go alone now. Returns whether such a payment was waiting.
    pub(in crate::buyer) fn found_peer(&mut self, channel: B256, peer: PeerId) -> bool {
        match self.get_mut(channel).and_then(|l| l.pending.as_mut()) {
            Some(p) if p.peer.is_none() => {
                p.peer = Some(peer);
                true
            }
            _ => false,
        }
    }

    /// Gives up the payments still waiting without a peer on lanes no job holds: those lanes take no more
    /// tickets (their provider refuses a ticket past the voucher it lacks; it claims its
    /// job's ticket on chain instead) and are closed. Returns those lanes.
    pub(in crate::buyer) fn give_up_peerless(&mut self) -> Vec<B256> {
        let mut out = Vec::new();
        for l in self.lanes.iter_mut().filter(|l| !l.busy) {
            if l.pending.as_ref().is_some_and(|p| p.peer.is_none()) {
                l.pending = None;
                l.retired = true;
                out.push(l.channel);
            }
        }
        out
    }
}
