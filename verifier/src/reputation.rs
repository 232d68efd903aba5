//! Reputation: what a node has seen of each provider, on chain and in its own checks, and
//! the score the order book ranks with.
//!
//! # The formula
//!
//! Per provider, five counters: `S` jobs settled (paid: vouchers and tickets, from the node's
//! records and the chain), `P` checks passed and `F` checks failed (local: this node's spot
//! checks, where the provider was the original or a re-run provider; see
//! [`crate::Check::observations`]), `Z` slashes and `D` disputes raised over its jobs (chain
//! events). Then
//!
//! ```text
//! good = P + S / 10
//! bad  = 10·F + 50·Z + D
//! reputation = (1 + good) / (2 + good + bad)        in (0, 1)
//! ```
//!
//! It is the mean of a Beta(1 + good, 1 + bad) belief that the provider's next job is
//! honest: a provider never seen scores 0.5 (the order book's default), evidence moves it
//! towards 0 or 1 and no amount of it reaches either. The weights say how much each event
//! tells: a passed check is direct evidence (1); a settled job is weak evidence, since most
//! are never checked (1/10); a failed check is direct evidence of cheating, and at the
//! default sampling rate of 10% it stands for about ten unchecked jobs that went the same way
//! (10 = 1/q); a slash is the majority of three verifiers drawn on chain (50); a dispute,
//! which a buyer can raise at the cost of a bond, is a weak signal until it resolves (1; its
//! slash, if any, is counted on its own).
//!
//! For example, 100 settled jobs and 10 checks passed score 21/22 = 0.95; one failed check
//! brings that to 21/32 = 0.66; a dispute that ends in a slash on top (`D` and `Z`), to
//! 21/83 = 0.25.
//!
//! The order book ranks by `max_cost × (2 − reputation) × (1 + latency / 1 s)`, so a
//! provider's reputation can at most double its effective price.
//!
//! # Keys and owners
//!
//! The book ranks ed25519 keys; the chain knows EVM accounts. [`ReputationTable`] keeps
//! counters by key and maps accounts to keys from the chain's `Registered` events
//! ([`ChainEvent::Registered`]); a chain event for an account it has not seen registered is
//! dropped (in-order indexing always sees the registration first) and counted in
//! [`ReputationTable::dropped`]. Local checks are filed under the key that ran the job.

use std::collections::HashMap;

use sietch_market::book::{DEFAULT_LATENCY_MS, DEFAULT_REPUTATION};
use sietch_market::{Address, B256, Observations, PeerStats, PublicKey};

use crate::check::Check;

/// Default bound on the providers a table holds.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// What a node has counted of one provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reputation {
    /// `S`: jobs paid for.
    pub settled_jobs: u64,
    /// `P`: spot checks it passed.
    pub checks_passed: u64,
    /// `F`: spot checks it failed.
    pub checks_failed: u64,
    /// `Z`: times it was slashed.
    pub slashes: u64,
    /// `D`: disputes raised over its jobs.
    pub disputes: u64,
}

/// One thing that happened to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// `n` of its jobs were paid.
    Settled(u64),
    /// It passed a spot check.
    CheckPassed,
    /// It failed one.
    CheckFailed,
    /// It was slashed.
    Slashed,
    /// A dispute was raised over one of its jobs.
    Disputed,
}

impl Reputation {
    /// Counts `event` (saturating).
    pub fn count(&mut self, event: Event) {
        let (counter, n) = match event {
            Event::Settled(n) => (&mut self.settled_jobs, n),
            Event::CheckPassed => (&mut self.checks_passed, 1),
            Event::CheckFailed => (&mut self.checks_failed, 1),
            Event::Slashed => (&mut self.slashes, 1),
            Event::Disputed => (&mut self.disputes, 1),
        };
        *counter = counter.saturating_add(n);
    }

    /// The score in `(0, 1)`: see the module docs for the formula.
    pub fn score(&self) -> f64 {
        let f = |n: u64| n as f64;
        let good = f(self.checks_passed) + f(self.settled_jobs) / 10.0;
        let bad = 10.0 * f(self.checks_failed) + 50.0 * f(self.slashes) + f(self.disputes);
        (1.0 + good) / (2.0 + good + bad)
    }

    /// All counters together: how much is known.
    fn weight(&self) -> u128 {
        [
            self.settled_jobs,
            self.checks_passed,
            self.checks_failed,
            self.slashes,
            self.disputes,
        ]
        .iter()
        .map(|n| u128::from(*n))
        .sum()
    }
}

/// An escrow event, with the provider it concerns already resolved by the node's indexer
/// (a `TicketDisputed` or `Slashed` names the ticket; its channel names the provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainEvent {
    /// `Registered(account, nodeKey, proof)` whose proof verified (the node checks it):
    /// `account`'s node key is now `node_key`.
    Registered {
        /// The EVM account.
        account: Address,
        /// Its ed25519 node key.
        node_key: B256,
    },
    /// Jobs of `provider` were paid (a voucher claim: as many jobs as the node's records say
    /// it covers; a settled ticket: one).
    Settled {
        /// The provider's account.
        provider: Address,
        /// How many jobs.
        jobs: u64,
    },
    /// `TicketDisputed` over one of `provider`'s tickets.
    Disputed {
        /// The provider's account.
        provider: Address,
    },
    /// `Slashed(provider, …)`.
    Slashed {
        /// The provider's account.
        provider: Address,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    reputation: Reputation,
    latency_ms: Option<u32>,
}

/// Reputation of many providers, bounded, as the order book reads it ([`Observations`]).
#[derive(Debug, Clone)]
pub struct ReputationTable {
    capacity: usize,
    entries: HashMap<PublicKey, Entry>,
    keys: HashMap<Address, PublicKey>,
    dropped: u64,
}

impl Default for ReputationTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ReputationTable {
    /// An empty table holding at most `capacity` providers (at least 1). When full, a new
    /// provider takes the place of the one with the least counted about it.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            keys: HashMap::new(),
            dropped: 0,
        }
    }

    /// Providers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no provider.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Chain events dropped because their account was not registered.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The counters of `provider`, if any.
    pub fn get(&self, provider: &PublicKey) -> Option<&Reputation> {
        self.entries.get(provider).map(|e| &e.reputation)
    }

    /// The key registered for `account`, if seen.
    pub fn key_of(&self, account: &Address) -> Option<PublicKey> {
        self.keys.get(account).copied()
    }

    fn entry(&mut self, provider: PublicKey) -> &mut Entry {
        // A linear scan, only when a new provider arrives at a full table: rare, and bounded by
        // the capacity.
        if !self.entries.contains_key(&provider) && self.entries.len() >= self.capacity {
            let lightest = self
                .entries
                .iter()
                .min_by_key(|(k, e)| (e.reputation.weight(), **k))
                .map(|(k, _)| *k);
            if let Some(k) = lightest {
                self.entries.remove(&k);
                self.keys.retain(|_, v| *v != k);
            }
        }
        self.entries.entry(provider).or_default()
    }

    /// Counts `event` for `provider`.
    pub fn count(&mut self, provider: PublicKey, event: Event) {
        self.entry(provider).reputation.count(event);
    }

    /// Files what a check observed (see [`Check::observations`]).
    pub fn record_check(&mut self, check: &Check) {
        for (provider, event) in check.observations() {
            self.count(provider, event);
        }
    }

    /// Applies an escrow event.
    pub fn apply(&mut self, event: ChainEvent) {
        let (account, what) = match event {
            ChainEvent::Registered { account, node_key } => {
                // The account's events count for its new key from now on; histories are never
                // moved or merged: the old key keeps its own, the new key starts from its own
                // (an account that rotated onto another's key must not overwrite that key's
                // history, nor hand it its own).
                self.keys.insert(account, PublicKey(node_key.0));
                return;
            }
            ChainEvent::Settled { provider, jobs } => (provider, Event::Settled(jobs)),
            ChainEvent::Disputed { provider } => (provider, Event::Disputed),
            ChainEvent::Slashed { provider } => (provider, Event::Slashed),
        };
        match self.keys.get(&account).copied() {
            Some(key) => self.count(key, what),
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }

    /// Puts back what was counted of `provider` before a restart (its stored counters),
    /// replacing what the table holds of it. A node's store keeps these counters; a node
    /// loads them at start so the book ranks as it did before.
    pub fn restore(&mut self, provider: PublicKey, counters: Reputation) {
        self.entry(provider).reputation = counters;
    }

    /// Every provider held and its counters, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (PublicKey, Reputation)> + '_ {
        self.entries.iter().map(|(k, e)| (*k, e.reputation))
    }

    /// Records a measured round trip to `provider`.
    pub fn set_latency(&mut self, provider: PublicKey, latency_ms: u32) {
        self.entry(provider).latency_ms = Some(latency_ms);
    }
}

impl Observations for ReputationTable {
    fn stats(&self, provider: &PublicKey) -> Option<PeerStats> {
        let e = self.entries.get(provider)?;
        Some(PeerStats {
            reputation: if e.reputation == Reputation::default() {
                DEFAULT_REPUTATION
            } else {
                e.reputation.score()
            },
            latency_ms: e.latency_ms.unwrap_or(DEFAULT_LATENCY_MS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    #[test]
    fn the_stated_examples() {
        let mut r = Reputation::default();
        assert_eq!(r.score(), 0.5);
        r.count(Event::Settled(100));
        for _ in 0..10 {
            r.count(Event::CheckPassed);
        }
        assert!((r.score() - 21.0 / 22.0).abs() < 1e-12);
        r.count(Event::CheckFailed);
        assert!((r.score() - 21.0 / 32.0).abs() < 1e-12);
        r.count(Event::Slashed);
        assert!((r.score() - 21.0 / 82.0).abs() < 1e-12);
        r.count(Event::Disputed);
        assert!((r.score() - 21.0 / 83.0).abs() < 1e-12);
    }

    #[test]
    fn score_stays_inside_the_unit_interval() {
        let max = Reputation {
            settled_jobs: u64::MAX,
            checks_passed: u64::MAX,
            ..Reputation::default()
        };
        assert!(max.score() <= 1.0 && max.score() > 0.99);
        let min = Reputation {
            checks_failed: u64::MAX,
            slashes: u64::MAX,
            ..Reputation::default()
        };
        assert!(min.score() >= 0.0 && min.score() < 0.01);
        let mut r = max;
        r.count(Event::Settled(5));
        assert_eq!(r.settled_jobs, u64::MAX, "saturates");
    }

    #[test]
    fn chain_events_follow_registration_and_rotation_without_moving_histories() {
        let mut t = ReputationTable::default();
        let account = Address::repeat_byte(7);
        t.apply(ChainEvent::Slashed { provider: account });
        assert_eq!((t.dropped(), t.len()), (1, 0));
        t.apply(ChainEvent::Registered {
            account,
            node_key: B256::repeat_byte(1),
        });
        t.apply(ChainEvent::Settled {
            provider: account,
            jobs: 30,
        });
        t.count(key(1), Event::CheckPassed);
        assert_eq!(t.get(&key(1)).map(|r| r.settled_jobs), Some(30));
        // Rotated: the old key keeps its history, the new one starts from its own.
        t.apply(ChainEvent::Registered {
            account,
            node_key: B256::repeat_byte(2),
        });
        assert_eq!(
            t.get(&key(1)).map(|r| (r.settled_jobs, r.checks_passed)),
            Some((30, 1))
        );
        assert!(t.get(&key(2)).is_none());
        t.apply(ChainEvent::Disputed { provider: account });
        assert_eq!(t.get(&key(2)).map(|r| r.disputes), Some(1));
        assert_eq!(t.get(&key(1)).map(|r| r.disputes), Some(0));
    }

    /// An attacker's account that ends up on a victim's key (a registration the node let
    /// through) neither overwrites the victim's history nor hands it its own past.
    #[test]
    fn an_account_rotating_onto_a_victims_key_does_not_overwrite_its_history() {
        let mut t = ReputationTable::default();
        let (victim, attacker) = (Address::repeat_byte(1), Address::repeat_byte(2));
        t.apply(ChainEvent::Registered {
            account: victim,
            node_key: B256::repeat_byte(1),
        });
        t.apply(ChainEvent::Settled {
            provider: victim,
            jobs: 100,
        });
        t.apply(ChainEvent::Registered {
            account: attacker,
            node_key: B256::repeat_byte(9),
        });
        t.apply(ChainEvent::Slashed { provider: attacker });
        t.apply(ChainEvent::Registered {
            account: attacker,
            node_key: B256::repeat_byte(1),
        });
        let v = t.get(&key(1)).unwrap();
        assert_eq!((v.settled_jobs, v.slashes), (100, 0), "{v:?}");
        assert_eq!(t.get(&key(9)).map(|r| r.slashes), Some(1));
    }

    #[test]
    fn bounded_and_evicts_the_least_known() {
        let mut t = ReputationTable::new(3);
        t.count(key(1), Event::Settled(10));
        t.count(key(2), Event::Settled(1));
        t.count(key(3), Event::Settled(5));
        t.count(key(4), Event::CheckPassed);
        assert_eq!(t.len(), 3);
        assert!(t.get(&key(2)).is_none());
        assert!(t.get(&key(4)).is_some());
    }

    #[test]
    fn restored_counters_score_as_before() {
        let mut t = ReputationTable::default();
        t.count(key(1), Event::Settled(30));
        t.count(key(1), Event::CheckFailed);
        t.count(key(2), Event::CheckPassed);
        let mut back = ReputationTable::default();
        for (k, r) in t.iter() {
            back.restore(k, r);
        }
        for k in [key(1), key(2), key(3)] {
            assert_eq!(back.stats(&k), t.stats(&k));
            assert_eq!(back.get(&k), t.get(&k));
        }
    }

    #[test]
    fn feeds_the_order_book_ranking() {
        let mut t = ReputationTable::default();
        t.set_latency(key(1), 20);
        assert_eq!(
            t.stats(&key(1)),
            Some(PeerStats {
                reputation: DEFAULT_REPUTATION,
                latency_ms: 20
            })
        );
        t.count(key(2), Event::CheckFailed);
        let s = t.stats(&key(2)).map(|s| (s.reputation, s.latency_ms));
        assert_eq!(s, Some((1.0 / 12.0, DEFAULT_LATENCY_MS)));
        assert_eq!(t.stats(&key(3)), None);
    }
}
