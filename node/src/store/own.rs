//! The node's own records: its keys, its config and its own offers.

use redb::{ReadableDatabase, ReadableTable};
use sietch_market::{Offer, PublicKey, Signed};

use super::records::Record;
use super::schema::{CONFIG, NODE_KEYS, OWN_OFFERS};
use super::{
    MAX_CONFIG_KEY, MAX_CONFIG_VALUE, NodeKeys, OwnOffer, Store, StoreError, check_len, decode,
};

/// Key of the node's keys in the `node_keys` table.
const NODE_KEY: &str = "node";
const NODE_KEYS_NAME: &str = "node_keys";
const OWN_OFFERS_NAME: &str = "own_offers";

impl Store {
    // ---- node keys ----

    /// The node's keys, if they were ever stored.
    pub fn node_keys(&self) -> Result<Option<NodeKeys>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(NODE_KEYS)?;
        table
            .get(NODE_KEY)?
            .map(|v| decode(NODE_KEYS_NAME, NODE_KEY, v.value()))
            .transpose()
    }

    /// Stores `keys` unless the node already has keys, and returns the keys the node has
    /// now. A node's identity is created once: this never replaces it (see
    /// [`Store::replace_node_keys`]).
    pub fn init_node_keys(&self, keys: &NodeKeys) -> Result<NodeKeys, StoreError> {
        let tx = self.db().begin_write()?;
        let kept = {
            let mut table = tx.open_table(NODE_KEYS)?;
            let existing = table
                .get(NODE_KEY)?
                .map(|v| decode::<NodeKeys>(NODE_KEYS_NAME, NODE_KEY, v.value()))
                .transpose()?;
            match existing {
                Some(k) => k,
                None => {
                    table.insert(NODE_KEY, keys.to_bytes().as_slice())?;
                    keys.clone()
                }
            }
        };
        tx.commit()?;
        Ok(kept)
    }

    /// Replaces the node's keys (key rotation). Offers and registrations signed with the old
    /// keys become the caller's problem.
    pub fn replace_node_keys(&self, keys: &NodeKeys) -> Result<(), StoreError> {
        let tx = self.db().begin_write()?;
        tx.open_table(NODE_KEYS)?
            .insert(NODE_KEY, keys.to_bytes().as_slice())?;
        tx.commit()?;
        Ok(())
    }

    // ---- config ----

    /// A config value.
    pub fn config(&self, key: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(CONFIG)?;
        Ok(table.get(key)?.map(|v| v.value().to_owned()))
    }

    /// Sets a config value.
    pub fn set_config(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_len("config key", key.len(), MAX_CONFIG_KEY)?;
        check_len("config value", value.len(), MAX_CONFIG_VALUE)?;
        let tx = self.db().begin_write()?;
        tx.open_table(CONFIG)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a config value; returns whether it was there.
    pub fn remove_config(&self, key: &str) -> Result<bool, StoreError> {
        let tx = self.db().begin_write()?;
        let was = tx.open_table(CONFIG)?.remove(key)?.is_some();
        tx.commit()?;
        Ok(was)
    }

    /// Every config entry, in key order.
    pub fn config_entries(&self) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(CONFIG)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }

    // ---- own offers ----

    /// This node's offer and last sequence number for one of its keys.
    pub fn own_offer(&self, provider: &PublicKey) -> Result<Option<OwnOffer>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(OWN_OFFERS)?;
        table
            .get(&provider.0)?
            .map(|v| decode(OWN_OFFERS_NAME, provider, v.value()))
            .transpose()
    }

    /// Every own offer, by key.
    pub fn own_offers(&self) -> Result<Vec<(PublicKey, OwnOffer)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(OWN_OFFERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = PublicKey(*k.value());
            out.push((key, decode(OWN_OFFERS_NAME, key, v.value())?));
        }
        Ok(out)
    }

    /// Records a newly signed offer as the node's latest. Its sequence must be above every
    /// sequence this key used before ([`StoreError::StaleOfferSequence`]), so a node never
    /// gossips an offer that peers would drop as old.
    pub fn put_own_offer(&self, offer: &Signed<Offer>) -> Result<(), StoreError> {
        let key = offer.payload.provider;
        let sequence = offer.payload.sequence;
        self.update_own_offer(&key, sequence, Some(offer.clone()))
    }

    /// Records that the offer of `provider` was withdrawn with `sequence`: the offer is
    /// dropped, the sequence kept.
    pub fn withdraw_own_offer(
        &self,
        provider: &PublicKey,
        sequence: u64,
    ) -> Result<(), StoreError> {
        self.update_own_offer(provider, sequence, None)
    }

    fn update_own_offer(
        &self,
        key: &PublicKey,
        sequence: u64,
        offer: Option<Signed<Offer>>,
    ) -> Result<(), StoreError> {
        let record = OwnOffer { sequence, offer };
        let bytes = record.to_bytes();
        // Refuse what a read would refuse, so the table never holds an unreadable row.
        check_len("own offer", bytes.len(), OwnOffer::MAX_SIZE)?;
        let tx = self.db().begin_write()?;
        {
            let mut table = tx.open_table(OWN_OFFERS)?;
            if let Some(v) = table.get(&key.0)? {
                let stored: OwnOffer = decode(OWN_OFFERS_NAME, key, v.value())?;
                if sequence <= stored.sequence {
                    return Err(StoreError::StaleOfferSequence {
                        sequence,
                        stored: stored.sequence,
                    });
                }
            }
            table.insert(&key.0, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}
