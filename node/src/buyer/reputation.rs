//! The buyer's reputation table ([`sietch_verifier::ReputationTable`], the one model: its
//! formula and counters), kept in the store as it changes and loaded back at start, so that
//! a restarted node ranks its providers as it did before.
//!
//! Every count goes through [`Buyer::count_reputation`]: the table counts, then the counters
//! of the providers it touched are written to the store (`provider_reputation`, by node key;
//! a proven registration to `provider_keys`, by account). Counters only grow and the store
//! keeps the greater of each, so two writes landing out of order lose nothing.

use sietch_market::{Address, PublicKey};
use sietch_verifier::{ChainEvent, Check, Event, Reputation, ReputationTable};

use super::{Buyer, warn_unrecorded};
use crate::store::{Store, StoreError, off_async};
use crate::sync::lock;

/// The table as the store has it: every stored provider's counters and every account's
/// registered key.
pub(super) fn load(store: &Store) -> Result<ReputationTable, StoreError> {
    let mut table = ReputationTable::default();
    for (account, key) in store.provider_keys()? {
        table.apply(ChainEvent::Registered {
            account,
            node_key: key.0.into(),
        });
    }
    for (key, counters) in store.reputations()? {
        table.restore(key, counters);
    }
    Ok(table)
}

/// One change to the table.
#[derive(Debug, Clone, Copy)]
pub(super) enum Count<'a> {
    /// An event of a provider.
    Event(PublicKey, Event),
    /// What a check observed.
    Check(&'a Check),
    /// An escrow event.
    Chain(ChainEvent),
}

impl Buyer {
    /// Counts in the reputation table and keeps what changed in the store.
    pub(super) async fn count_reputation(&self, what: Count<'_>) {
        let (rows, registered) = {
            let mut table = lock(&self.reputation);
            let (keys, registered): (Vec<PublicKey>, Option<(Address, PublicKey)>) = match what {
                Count::Event(key, event) => {
                    table.count(key, event);
                    (vec![key], None)
                }
                Count::Check(check) => {
                    table.record_check(check);
                    (
                        check.observations().into_iter().map(|(k, _)| k).collect(),
                        None,
                    )
                }
                Count::Chain(ChainEvent::Registered { account, node_key }) => {
                    table.apply(ChainEvent::Registered { account, node_key });
                    (Vec::new(), Some((account, PublicKey(node_key.0))))
                }
                Count::Chain(e) => {
                    let account = match e {
                        ChainEvent::Settled { provider, .. }
                        | ChainEvent::Disputed { provider }
                        | ChainEvent::Slashed { provider } => Some(provider),
                        _ => None,
                    };
                    table.apply(e);
                    (
                        account.and_then(|a| table.key_of(&a)).into_iter().collect(),
                        None,
                    )
                }
            };
            let rows: Vec<(PublicKey, Reputation)> = keys
                .into_iter()
                .filter_map(|k| table.get(&k).map(|r| (k, *r)))
                .collect();
            (rows, registered)
        };
        if let Some((account, key)) = registered {
            let written = off_async(&self.store, move |s| s.put_provider_key(&account, &key)).await;
            warn_unrecorded(written, || format!("the node key registered by {account}"));
        }
        if !rows.is_empty() {
            let n = rows.len();
            let written = off_async(&self.store, move |s| s.put_reputations(&rows)).await;
            warn_unrecorded(written, || format!("the reputation of {n} providers"));
        }
    }

    /// What the buyer has counted of a provider, and its score (0.5 when nothing is known).
    pub fn reputation_of(&self, provider: &PublicKey) -> (Reputation, f64) {
        let r = lock(&self.reputation)
            .get(provider)
            .copied()
            .unwrap_or_default();
        let score = if r == Reputation::default() {
            0.5
        } else {
            r.score()
        };
        (r, score)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sietch_market::{Address, B256, Observations, PublicKey};
    use sietch_verifier::{ChainEvent, Event, ReputationTable};

    use super::load;
    use crate::store::Store;

    fn key(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    /// The counters, the registered keys and so the book's view of every provider are the
    /// same after the store is closed and opened again.
    #[test]
    fn the_table_comes_back_from_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = ReputationTable::default();
        let account = Address::repeat_byte(7);
        {
            let store = Store::open(dir.path()).unwrap();
            table.apply(ChainEvent::Registered {
                account,
                node_key: B256::repeat_byte(1),
            });
            store.put_provider_key(&account, &key(1)).unwrap();
            table.apply(ChainEvent::Settled {
                provider: account,
                jobs: 12,
            });
            table.count(key(1), Event::CheckPassed);
            table.count(key(2), Event::CheckFailed);
            table.count(key(3), Event::CheckPassed);
            let rows: Vec<_> = table.iter().collect();
            store.put_reputations(&rows).unwrap();
            // An older write landing late keeps the later counts.
            store
                .put_reputations(&[(key(1), Default::default())])
                .unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut back = load(&store).unwrap();
        for k in [key(1), key(2), key(3), key(4)] {
            assert_eq!(back.get(&k), table.get(&k), "{k:?}");
            assert_eq!(back.stats(&k), table.stats(&k), "{k:?}");
        }
        // The account's later chain events still count for its key.
        back.apply(ChainEvent::Slashed { provider: account });
        assert_eq!(back.get(&key(1)).map(|r| r.slashes), Some(1));
        assert_eq!(back.dropped(), 0);
    }
}
