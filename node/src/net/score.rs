//! Each peer's misbehaviour, in strikes that fade: a peer reaching `strikes_before_ban` is
//! cut off once, for `ban`.
//!
//! Provably bad input costs a whole strike; input that an honest peer may send now and then
//! (an offer of a provider that has just unregistered, a budget that happened to be full)
//! costs a fraction, so a flood of it is cut off while a trickle never is. Strikes halve
//! every `score_half_life` (60 s by default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// What a peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offence {
    /// A gossip message that is malformed, forged, oversized or otherwise provably bad.
    InvalidGossip,
    /// A well-formed offer signed by a key not registered on chain (an honest relay may
    /// forward one from a provider that has just unregistered): a quarter strike.
    UnregisteredOffer,
    /// Another gossip stream on the same connection: what a peer must do to go on after
    /// this node dropped its stream for a frame over the limit. A whole strike (an honest
    /// gossipsub peer reopens its stream only after an error, and gossipsub itself takes
    /// no more than five on a connection).
    GossipStreamReopened,
    /// A result nobody asked of that peer, or longer than its job may produce; half a
    /// strike (an honest provider may deliver late, after the job's wait has ended).
    UnsolicitedResult,
    /// A message over the peer's or the node's inbound budget, or over the streams a peer
    /// may have in flight: a quarter strike.
    OverBudget,
    /// A blob whose bytes do not hash to the hash asked, or whose size changed between
    /// requests: a whole strike (an honest peer serves a blob by its hash).
    CorruptBlob,
}

impl Offence {
    /// Its cost, in strikes.
    pub(crate) fn cost(self) -> f64 {
        match self {
            Self::InvalidGossip | Self::GossipStreamReopened | Self::CorruptBlob => 1.0,
            Self::UnsolicitedResult => 0.5,
            Self::UnregisteredOffer | Self::OverBudget => 0.25,
        }
    }
}

/// Most peers whose strikes are remembered; beyond that the lightest are forgotten.
const MAX_SCORED_PEERS: usize = 4096;

/// Strikes per peer, fading with time.
#[derive(Debug)]
pub(crate) struct Score {
    half_life: Duration,
    peers: HashMap<PeerId, (f64, Instant)>,
}

impl Score {
    pub(crate) fn new(half_life: Duration) -> Self {
        Self {
            half_life,
            peers: HashMap::new(),
        }
    }

    fn faded(&self, strikes: f64, since: Instant, now: Instant) -> f64 {
        if self.half_life.is_zero() {
            return strikes;
        }
        let halves =
            now.saturating_duration_since(since).as_secs_f64() / self.half_life.as_secs_f64();
        strikes * 0.5f64.powf(halves)
    }

    /// A peer's strikes now.
    pub(crate) fn strikes(&self, peer: &PeerId, now: Instant) -> f64 {
        self.peers
            .get(peer)
            .map_or(0.0, |&(s, at)| self.faded(s, at, now))
    }

    /// Counts an offence of `peer`; true when its strikes reach `limit`.
    pub(crate) fn charge(&mut self, peer: PeerId, what: Offence, limit: u32, now: Instant) -> bool {
        if self.peers.len() >= MAX_SCORED_PEERS && !self.peers.contains_key(&peer) {
            self.peers.retain(|_, &mut (s, at)| {
                let faded = if self.half_life.is_zero() {
                    s
                } else {
                    s * 0.5f64.powf(
                        now.saturating_duration_since(at).as_secs_f64()
                            / self.half_life.as_secs_f64(),
                    )
                };
                faded >= 0.1
            });
            if self.peers.len() >= MAX_SCORED_PEERS {
                let lightest = self
                    .peers
                    .iter()
                    .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                    .map(|(p, _)| *p);
                if let Some(p) = lightest {
                    self.peers.remove(&p);
                }
            }
        }
        let s = self.strikes(&peer, now) + what.cost();
        self.peers.insert(peer, (s, now));
        // A hair under the limit counts: fractions of a strike add up in floating point.
        s + 1e-9 >= f64::from(limit)
    }

    /// Forgets a peer (after it was cut off).
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_reach_the_limit() {
        let mut s = Score::new(Duration::from_secs(60));
        let p = PeerId::random();
        let t = Instant::now();
        assert!(!s.charge(p, Offence::InvalidGossip, 3, t));
        assert!(!s.charge(p, Offence::InvalidGossip, 3, t));
        assert!(s.charge(p, Offence::InvalidGossip, 3, t));
        s.forget(&p);
        assert!(!s.charge(p, Offence::InvalidGossip, 3, t));
    }

    #[test]
    fn unregistered_offers_cost_a_quarter_each_and_fade() {
        let mut s = Score::new(Duration::from_secs(60));
        let p = PeerId::random();
        let t = Instant::now();
        for _ in 0..31 {
            assert!(!s.charge(p, Offence::UnregisteredOffer, 8, t));
        }
        assert!(s.charge(p, Offence::UnregisteredOffer, 8, t), "the 32nd");
        // A trickle never adds up: one a minute stays well under a strike.
        let q = PeerId::random();
        for i in 0..100u64 {
            let at = t + Duration::from_secs(60 * i);
            assert!(!s.charge(q, Offence::UnregisteredOffer, 8, at));
        }
        assert!(s.strikes(&q, t + Duration::from_secs(6000)) < 1.0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut s = Score::new(Duration::from_secs(60));
        let t = Instant::now();
        for _ in 0..MAX_SCORED_PEERS + 10 {
            s.charge(PeerId::random(), Offence::OverBudget, 8, t);
        }
        assert!(s.peers.len() <= MAX_SCORED_PEERS);
    }
}
