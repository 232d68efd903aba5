//! Offers: registering and staking on chain, announcing the signed offer, withdrawing it.

use std::sync::Arc;
use std::time::Duration;

use sietch_market::offer::{LARGE_BLOB_BYTES, MAX_CACHED_BLOBS};
use sietch_market::{BlobRef, Offer, Signed, U256, Withdrawal};

use super::{Provider, now};
use crate::chain::{ChainError, OperatorError};
use crate::events::NodeEvent;
use crate::store::{BlobEntry, Store};

/// Most blobs of the store looked at, most recently used first, for the offer's held blobs.
const BLOBS_LOOKED_AT: usize = 4_096;

/// The blobs an offer names as held: of `entries` (most recently used first), those of at
/// least 16 MiB, the first 8.
pub(crate) fn held_blobs(entries: &[BlobEntry]) -> Vec<BlobRef> {
    entries
        .iter()
        .filter(|e| e.bytes >= LARGE_BLOB_BYTES)
        .take(MAX_CACHED_BLOBS)
        .map(|e| BlobRef {
            hash: e.hash,
            size: e.bytes,
        })
        .collect()
}

/// The large blobs `store` holds now, for the offer; none if the store cannot be read.
async fn held_now(store: Arc<Store>) -> Vec<BlobRef> {
    let listed = tokio::task::spawn_blocking(move || store.blobs().entries(BLOBS_LOOKED_AT)).await;
    match listed {
        Ok(Ok(entries)) => held_blobs(&entries),
        Ok(Err(e)) => {
            tracing::warn!("cannot list the blob store for the offer: {e}");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!("cannot list the blob store for the offer: {e}");
            Vec::new()
        }
    }
}

/// Why the provider could not register or stake on chain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    /// The account could not be read.
    #[error(transparent)]
    Read(ChainError),
    /// The node key could not be registered.
    #[error("registering the node key on chain (does the EVM account have gas?): {0}")]
    Register(ChainError),
    /// The stake could not be topped up.
    #[error("staking (does the EVM account hold enough tokens?): {0}")]
    Stake(ChainError),
    /// The node operates for a cold owner (`[chain] owner`) that has not named it, or that
    /// must stake more itself.
    #[error(transparent)]
    Owner(OperatorError),
}

impl Provider {
    /// Registers and stakes on chain what the configuration asks, if not done already.
    pub(crate) async fn register(&self) -> Result<(), RegisterError> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        // A cold owner: the node's key must be its operator; from here on the owner is the
        // node's account (the registry entry, the offer's address, whom channels pay).
        if let Ok(Some(owner)) = self.config.chain.owner_address() {
            chain
                .operate_for(owner)
                .await
                .map_err(RegisterError::Owner)?;
        }
        let me = chain.me();
        let account = chain.account(me).await.map_err(RegisterError::Read)?;
        if account.node_key != self.offer.provider.0 {
            chain
                .register(&self.key)
                .await
                .map_err(RegisterError::Register)?;
        }
        let want = self.config.stake;
        if let Some(owner) = chain.owner()
            && account.stake < want
        {
            return Err(RegisterError::Owner(OperatorError::OwnerOnly {
                owner,
                what: "stake (the configured stake is more than the owner's)",
                command: chain.stake_commands(owner, want - account.stake),
            }));
        }
        if account.stake < want {
            chain
                .stake(want - account.stake)
                .await
                .map_err(RegisterError::Stake)?;
        }
        self.emit(NodeEvent::Registered {
            account: me,
            stake: U256::from(want.max(account.stake)),
        });
        Ok(())
    }

    /// Waits until this node's registration and stake are `[finality] confirmations` deep:
    /// the nodes that check its offer count only confirmed stakes (`docs/finality.md`), and
    /// charge whoever relays an offer they cannot match to one. Gives up waiting after the
    /// time 4 such depths take at one block every 12 s (the chain may be stalled).
    async fn registration_confirmed(&self) {
        let Some(chain) = &self.chain else { return };
        let depth = self.config.finality.confirmations;
        let until = tokio::time::Instant::now() + Duration::from_secs(depth * 48 + 10);
        while depth > 0 && tokio::time::Instant::now() < until {
            let confirmed = match chain.block_number().await {
                Ok(head) => match head.checked_sub(depth) {
                    Some(at) => chain.account_at(chain.me(), at).await.ok(),
                    None => None,
                },
                Err(_) => None,
            };
            if confirmed.is_some_and(|a| {
                a.node_key == self.offer.provider.0 && a.stake >= self.config.stake
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Announces the offer now and on every heartbeat, each time with a higher sequence
    /// number, a fresh expiry and the large blobs the store holds then (so a cache that
    /// changes shows in the next heartbeat's offer, and never more often).
    pub(crate) async fn announce(self: Arc<Self>) {
        self.registration_confirmed().await;
        let mut tick = tokio::time::interval(self.config.announce_every());
        loop {
            tick.tick().await;
            let t = now();
            let previous = match self.store.own_offer(&self.offer.provider) {
                Ok(own) => own.map_or(0, |o| o.sequence),
                Err(e) => {
                    // The clock still gives a sequence above the last one, unless it went back.
                    tracing::warn!("cannot read the last offer's sequence: {e}");
                    0
                }
            };
            let offer = Offer {
                sequence: previous.max(t.saturating_sub(1)) + 1,
                expires_at: t + self.config.offer_ttl_secs,
                addresses: self
                    .net
                    .listen_addrs()
                    .await
                    .unwrap_or_default()
                    .iter()
                    .take(sietch_market::offer::MAX_ADDRESSES)
                    .map(ToString::to_string)
                    .collect(),
                cached_blobs: held_now(self.store.clone()).await,
                // The chain account: a cold owner's when the node operates for one.
                evm_address: self
                    .chain
                    .as_ref()
                    .map_or(self.offer.evm_address, |c| c.me()),
                ..self.offer.clone()
            };
            // Signed with the extensions this node's protocol version writes (its version,
            // from 1.1 on: docs/protocol/versions.md).
            let speaks = self
                .config
                .protocol_version()
                .unwrap_or(crate::net::version::CURRENT);
            let signed = Signed::sign_extended(offer, speaks.offer_extensions(), &self.key);
            if let Err(e) = self.store.put_own_offer(&signed) {
                tracing::warn!("cannot store the offer: {e}");
            }
            match self.net.publish_offer(&signed).await {
                Ok(()) => self.emit(NodeEvent::Announced {
                    sequence: signed.payload.sequence,
                }),
                Err(e) => tracing::warn!("cannot announce the offer: {e}"),
            }
        }
    }

    /// Withdraws the offer on shutdown, so buyers stop picking this node at once.
    pub(crate) async fn withdraw(&self) {
        let own = match self.store.own_offer(&self.offer.provider) {
            Ok(Some(own)) => own,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read the offer to withdraw it: {e}");
                return;
            }
        };
        if own.offer.is_none() {
            return;
        }
        // Above the live offer's sequence, so it removes it (and is newer in the store).
        let sequence = own.sequence + 1;
        let w = Signed::sign(
            Withdrawal {
                provider: self.offer.provider,
                sequence,
            },
            &self.key,
        );
        if let Err(e) = self.net.publish_withdrawal(&w).await {
            tracing::warn!("cannot withdraw the offer: {e}");
        }
        if let Err(e) = self
            .store
            .withdraw_own_offer(&self.offer.provider, sequence)
        {
            tracing::warn!("cannot record the withdrawal: {e}");
        }
        // Let gossipsub send it before the swarm goes away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.emit(NodeEvent::Withdrew { sequence });
    }
}

#[cfg(test)]
mod tests {
    use sietch_market::B256;

    use super::held_blobs;
    use crate::store::BlobEntry;

    fn entry(n: u8, mib: u64) -> BlobEntry {
        BlobEntry {
            hash: B256::repeat_byte(n),
            bytes: mib << 20,
            last_used: 1_000 - u64::from(n),
        }
    }

    /// The offer names the large blobs only, most recently used first, at most 8.
    #[test]
    fn the_offer_names_the_eight_most_recent_large_blobs() {
        let mut entries = vec![entry(1, 98), entry(2, 1), entry(3, 16)];
        entries.extend((4..20).map(|n| entry(n, 300)));
        let held = held_blobs(&entries);
        assert_eq!(held.len(), 8);
        assert_eq!(held[0].hash, B256::repeat_byte(1));
        assert_eq!(held[0].size, 98 << 20);
        assert_eq!(held[1].hash, B256::repeat_byte(3));
        assert!(held.iter().all(|b| b.size >= 16 << 20));
        assert_eq!(held[7].hash, B256::repeat_byte(9));
        assert!(held_blobs(&[entry(1, 15)]).is_empty());
    }
}
