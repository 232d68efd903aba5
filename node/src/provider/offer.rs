//! Offers: registering and staking on chain, announcing the signed offer, withdrawing it.

use super::*;

impl Provider {
    /// Registers and stakes on chain what the configuration asks, if not done already.
    pub(crate) async fn register(&self) -> anyhow::Result<()> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let me = chain.me();
        let account = chain.account(me).await?;
        if account.node_key != self.offer.provider.0 {
            chain
                .register(&self.key)
                .await
                .context("registering the node key on chain (does the EVM account have gas?)")?;
        }
        let want = self.config.stake;
        if account.stake < want {
            chain
                .stake(want - account.stake)
                .await
                .context("staking (does the EVM account hold enough tokens?)")?;
        }
        self.emit(NodeEvent::Registered {
            account: me.to_string(),
            stake: want.max(account.stake).to_string(),
        });
        Ok(())
    }

    /// Announces the offer now and on every heartbeat, each time with a higher sequence
    /// number and a fresh expiry.
    pub(crate) async fn announce(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.announce_every());
        loop {
            tick.tick().await;
            let t = now();
            let previous = self
                .store
                .own_offer(&self.offer.provider)
                .ok()
                .flatten()
                .map_or(0, |o| o.sequence);
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
                ..self.offer.clone()
            };
            let signed = Signed::sign(offer, &self.key);
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
        let Ok(Some(own)) = self.store.own_offer(&self.offer.provider) else {
            return;
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
