//! What a buyer has counted of each provider (its reputation table, persisted), and the node
//! key each provider account registered.

use redb::{ReadableDatabase, ReadableTable};
use sietch_market::{Address, PublicKey};

use super::records::Record;
use super::schema::{PROVIDER_KEYS, PROVIDER_REPUTATION};
use super::{Reputation, Store, StoreError, decode};

const REPUTATION_NAME: &str = "provider_reputation";

impl Store {
    /// What this node has counted of a provider, by its node key (all zero if nothing).
    pub fn reputation(&self, provider: &PublicKey) -> Result<Reputation, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_REPUTATION)?;
        Ok(table
            .get(&provider.0)?
            .map(|v| decode(REPUTATION_NAME, provider, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every provider this node has counted something of, by node key.
    pub fn reputations(&self) -> Result<Vec<(PublicKey, Reputation)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_REPUTATION)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = PublicKey(*k.value());
            out.push((key, decode(REPUTATION_NAME, key, v.value())?));
        }
        Ok(out)
    }

    /// Keeps the counters of providers as the buyer's reputation table has them now. Counters
    /// only grow, so each stored counter becomes the greater of the stored and the given one:
    /// two writes that land out of order keep the later counts. Bookkeeping: durable with
    /// the next durable commit.
    pub fn put_reputations(&self, rows: &[(PublicKey, Reputation)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.bookkeeping()?;
        {
            let mut table = tx.open_table(PROVIDER_REPUTATION)?;
            for (key, rep) in rows {
                let stored: Reputation = match table.get(&key.0)? {
                    Some(v) => decode(REPUTATION_NAME, key, v.value())?,
                    None => Reputation::default(),
                };
                let merged = Reputation {
                    settled_jobs: stored.settled_jobs.max(rep.settled_jobs),
                    checks_passed: stored.checks_passed.max(rep.checks_passed),
                    checks_failed: stored.checks_failed.max(rep.checks_failed),
                    slashes: stored.slashes.max(rep.slashes),
                    disputes: stored.disputes.max(rep.disputes),
                };
                table.insert(&key.0, merged.to_bytes().as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The node key each account registered with a proof, as the reputation table files
    /// the chain's events.
    pub fn provider_keys(&self) -> Result<Vec<(Address, PublicKey)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PROVIDER_KEYS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((Address::from(*k.value()), PublicKey(*v.value())));
        }
        Ok(out)
    }

    /// Records that `account` registered `key` (replacing an earlier key: a rotation).
    /// Bookkeeping: durable with the next durable commit.
    pub fn put_provider_key(&self, account: &Address, key: &PublicKey) -> Result<(), StoreError> {
        let tx = self.bookkeeping()?;
        tx.open_table(PROVIDER_KEYS)?.insert(&account.0.0, &key.0)?;
        tx.commit()?;
        Ok(())
    }
}
