//! Gossip validation and the discipline of peers: offers and withdrawals wait a moment to be
//! checked together (cheap checks one by one, signatures as one batch), then are accepted,
//! ignored or rejected; a rejected message, like any offence, costs its forwarder strikes,
//! and a peer over its strikes or graylisted by gossipsub is cut off for a while.

use std::time::Duration;

use libp2p::{PeerId, gossipsub};
use tokio::time::Instant;

use super::Actor;
use crate::net::NetEvent;
use crate::net::gossip::{self, Gossiped, Refusal};
use crate::net::score::Offence;

/// Gossip messages waiting for validation, at most.
pub(super) const MAX_PENDING_GOSSIP: usize = 4096;
/// Validate as soon as this many messages wait (one signature batch).
pub(super) const GOSSIP_BATCH: usize = 128;
/// Shortest gap between two validation rounds: messages arriving within it wait for the
/// next round and are verified in one signature batch.
const FLUSH_GAP: Duration = Duration::from_millis(5);

pub(super) struct PendingGossip {
    pub(super) from: PeerId,
    pub(super) id: gossipsub::MessageId,
    pub(super) data: Vec<u8>,
    pub(super) arrived: Instant,
}

impl Actor {
    /// Drop a message without forwarding it (`invalid`: and penalize its forwarder).
    pub(super) fn report(
        &mut self,
        id: &gossipsub::MessageId,
        from: &PeerId,
        invalid: bool,
        why: &str,
    ) {
        let acceptance = if invalid {
            self.stats.rejected += 1;
            gossipsub::MessageAcceptance::Reject
        } else {
            self.stats.ignored += 1;
            gossipsub::MessageAcceptance::Ignore
        };
        tracing::debug!(peer = %from, invalid, "gossip refused: {why}");
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
        if invalid {
            self.charge(*from, Offence::InvalidGossip);
        }
    }

    /// Drops a message from a peer already cut off, before anything is checked of it.
    pub(super) fn drop_banned(&mut self, id: &gossipsub::MessageId, from: &PeerId) {
        self.stats.dropped_from_banned += 1;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, gossipsub::MessageAcceptance::Ignore);
    }

    /// Counts an offence against a peer, and cuts it off when its strikes reach the limit
    /// or gossipsub's own score has graylisted it (gossipsub then stops delivering its
    /// messages, so its score, not only our count, decides).
    pub(super) fn charge(&mut self, peer: PeerId, what: Offence) {
        if self.banned.contains(&peer) {
            return;
        }
        let graylisted = self
            .swarm
            .behaviour()
            .gossipsub
            .peer_score(&peer)
            .is_some_and(|s| s < gossip::thresholds().graylist_threshold);
        let over = self.score.charge(
            peer,
            what,
            self.config.strikes_before_ban,
            Instant::now().into_std(),
        );
        if over || graylisted {
            self.ban(peer);
        }
    }

    pub(super) fn accept(&mut self, id: &gossipsub::MessageId, from: &PeerId) {
        self.stats.accepted += 1;
        self.swarm.behaviour_mut().doorman.useful(from);
        let acceptance = if self.config.drop_forwarding {
            gossipsub::MessageAcceptance::Ignore
        } else {
            gossipsub::MessageAcceptance::Accept
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
    }

    /// Cuts a peer off, once: a peer already cut off is not banned again for the messages
    /// it had queued.
    pub(super) fn ban(&mut self, peer: PeerId) {
        if !self.banned.insert(peer) {
            return;
        }
        tracing::warn!(%peer, "cutting off a misbehaving peer");
        self.score.forget(&peer);
        self.stats.banned += 1;
        let b = self.swarm.behaviour_mut();
        b.blocked.block_peer(peer);
        b.gossipsub.blacklist_peer(&peer);
        self.bans
            .push_back((Instant::now() + self.config.ban, peer));
        let _ = self.events.try_send(NetEvent::PeerBanned { peer });
    }

    /// When the pending gossip should next be validated: once its oldest message has been
    /// held for the forwarding delay, and no sooner than [`FLUSH_GAP`] after the last round
    /// (so that a burst is verified in batches while a lone message goes at once). `None`
    /// while nothing waits.
    pub(super) fn flush_due(&self, last_flush: Instant) -> Option<Instant> {
        let oldest = self.pending.front()?;
        Some((oldest.arrived + self.config.forward_delay).max(last_flush + FLUSH_GAP))
    }

    /// Validates waiting gossip: cheap checks one by one, signatures as one batch.
    pub(super) fn validate_gossip(&mut self) {
        let now = (self.config.clock)();
        let ready_before = Instant::now()
            .checked_sub(self.config.forward_delay)
            .unwrap_or_else(Instant::now);
        let mut offers: Vec<PendingGossip> = Vec::new();
        while let Some(p) = self.pending.front() {
            if p.arrived > ready_before {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if self.banned.contains(&p.from) {
                self.drop_banned(&p.id, &p.from);
                continue;
            }
            match gossip::decode(&p.data) {
                Err(Refusal::Invalid(why)) => self.report(&p.id, &p.from, true, &why),
                Err(Refusal::Ignore(why)) => self.report(&p.id, &p.from, false, &why),
                Ok(Gossiped::Withdrawal(w)) => match w.verify() {
                    Ok(v) => {
                        if let Ok(mut book) = self.book.lock() {
                            book.withdraw(&v, now);
                        }
                        self.accept(&p.id, &p.from);
                    }
                    Err(e) => self.report(&p.id, &p.from, true, &e.to_string()),
                },
                Ok(Gossiped::Offer(o)) => {
                    let registered = match &self.config.registry {
                        Some(r) => r.check(&o.payload),
                        None => Ok(()),
                    };
                    match registered {
                        Ok(()) => offers.push(p),
                        Err(why) => {
                            self.report(&p.id, &p.from, false, &why.to_string());
                            self.charge(p.from, Offence::UnregisteredOffer);
                        }
                    }
                }
            }
        }
        if offers.is_empty() {
            return;
        }
        let results = {
            let items: Vec<&[u8]> = offers.iter().map(|p| p.data.as_slice()).collect();
            match self.book.lock() {
                Ok(mut book) => book.ingest_batch(&items, now),
                Err(_) => return,
            }
        };
        for (p, r) in offers.iter().zip(results) {
            if self.banned.contains(&p.from) {
                // Cut off while its batch was being checked: nothing of it is kept.
                self.drop_banned(&p.id, &p.from);
                continue;
            }
            match r {
                Ok(_) => self.accept(&p.id, &p.from),
                Err(e) => match gossip::judge(&e, now) {
                    Refusal::Invalid(why) => self.report(&p.id, &p.from, true, &why),
                    Refusal::Ignore(why) => self.report(&p.id, &p.from, false, &why),
                },
            }
        }
    }
}
