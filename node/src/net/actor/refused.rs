//! Peers refused for their protocol version (another major, or not a Sietch node), each
//! blocked for a backoff that doubles with every refusal: refused once, logged once, not
//! redialed in a loop. Bounded: past [`MAX_REFUSED`] peers, the one whose block ends first
//! is forgotten.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// Peers remembered at most.
pub(super) const MAX_REFUSED: usize = 4096;
/// A refusal is forgotten this long after its block ended (the next one starts over).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The backoff stops doubling at this many times the first one.
const MAX_FACTOR: u32 = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Refusals so far.
    times: u32,
    /// When the block ends.
    until: Instant,
    /// Blocked now (the block list holds it).
    blocked: bool,
}

/// The refused peers and their backoffs.
#[derive(Debug)]
pub(super) struct Refusals {
    first: Duration,
    entries: HashMap<PeerId, Entry>,
}

impl Refusals {
    /// Refusals whose first backoff is `first`.
    pub(super) fn new(first: Duration) -> Self {
        Self {
            first,
            entries: HashMap::new(),
        }
    }

    /// Whether `peer` is blocked now.
    pub(super) fn is_blocked(&self, peer: &PeerId) -> bool {
        self.entries.get(peer).is_some_and(|e| e.blocked)
    }

    /// Refuses `peer` at `now`: how long it stays blocked, and the peer forgotten to make
    /// room (to unblock), if any.
    pub(super) fn refuse(&mut self, peer: PeerId, now: Instant) -> (Duration, Option<PeerId>) {
        let mut evicted = None;
        if !self.entries.contains_key(&peer) && self.entries.len() >= MAX_REFUSED {
            let first_done = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(p, e)| (*p, e.blocked));
            if let Some((p, blocked)) = first_done {
                self.entries.remove(&p);
                evicted = blocked.then_some(p);
            }
        }
        let e = self.entries.entry(peer).or_insert(Entry {
            times: 0,
            until: now,
            blocked: false,
        });
        e.times = e.times.saturating_add(1);
        let factor = 1u32
            .checked_shl(e.times.saturating_sub(1))
            .unwrap_or(MAX_FACTOR)
            .min(MAX_FACTOR);
        let backoff = self.first.saturating_mul(factor);
        e.until = now + backoff;
        e.blocked = true;
        (backoff, evicted)
    }

    /// The peers whose block is over at `now` (to unblock); forgets refusals long past.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let mut over = Vec::new();
        self.entries.retain(|peer, e| {
            if e.blocked && e.until <= now {
                e.blocked = false;
                over.push(*peer);
            }
            e.blocked || now.saturating_duration_since(e.until) < FORGET_AFTER
        });
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_doubles_the_block_up_to_its_cap() {
        let mut r = Refusals::new(Duration::from_secs(60));
        let p = PeerId::random();
        let t0 = Instant::now();
        let mut backoffs = Vec::new();
        let mut now = t0;
        for _ in 0..9 {
            let (b, evicted) = r.refuse(p, now);
            assert_eq!(evicted, None);
            assert!(r.is_blocked(&p));
            assert!(r.expire(now + b - Duration::from_millis(1)).is_empty());
            assert_eq!(r.expire(now + b), vec![p]);
            assert!(!r.is_blocked(&p));
            backoffs.push(b.as_secs());
            now += b;
        }
        assert_eq!(backoffs, [60, 120, 240, 480, 960, 1920, 3840, 3840, 3840]);
        // Long after its last block, a refusal starts over.
        assert!(r.expire(now + FORGET_AFTER).is_empty());
        assert_eq!(r.refuse(p, now + FORGET_AFTER).0.as_secs(), 60);
    }

    #[test]
    fn the_list_is_bounded_and_a_forgotten_peer_is_unblocked() {
        let mut r = Refusals::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let first = PeerId::random();
        assert_eq!(r.refuse(first, t0).1, None);
        for i in 1..MAX_REFUSED {
            let at = t0 + Duration::from_millis(u64::try_from(i).unwrap_or(0));
            assert_eq!(r.refuse(PeerId::random(), at).1, None);
        }
        let (_, evicted) = r.refuse(PeerId::random(), t0 + Duration::from_secs(1));
        assert_eq!(evicted, Some(first), "the block ending first goes");
        assert!(!r.is_blocked(&first));
        assert_eq!(r.entries.len(), MAX_REFUSED);
    }
}
