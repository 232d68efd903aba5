//! The escrow's events: read by block range, indexed (accounts for gossip validation), and
//! followed from the cursor kept in the store.

use super::*;

impl Chain {
    /// The escrow's events in blocks `from..=to`, in order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<ChainEvent>, ChainError> {
        let filter = Filter::new()
            .address(self.escrow())
            .from_block(from)
            .to_block(to);
        let logs = self.inner.provider.get_logs(&filter).await.map_err(rpc)?;
        Ok(logs
            .iter()
            .filter_map(|l| {
                let block = l.block_number?;
                let event = SietchEscrowEvents::decode_log(&l.inner).ok()?.data;
                Some(ChainEvent { block, event })
            })
            .collect())
    }

    /// Keeps the account index current from an event.
    fn index(&self, event: &SietchEscrowEvents) {
        let Ok(mut accounts) = self.inner.accounts.write() else {
            return;
        };
        match event {
            SietchEscrowEvents::Registered(e) => {
                // An unproven key binds nothing: the account counts as unregistered.
                accounts.entry(e.account).or_default().node_key =
                    if self.proven(e) { e.nodeKey.0 } else { [0; 32] };
            }
            SietchEscrowEvents::Staked(e) => {
                accounts.entry(e.account).or_default().stake = e.total.saturating_to();
            }
            SietchEscrowEvents::UnstakeRequested(e) => {
                let a = accounts.entry(e.account).or_default();
                a.stake = a.stake.saturating_sub(e.amount.saturating_to());
                a.unstaking = e.unstaking.saturating_to();
            }
            SietchEscrowEvents::Unstaked(e) => {
                accounts.entry(e.account).or_default().unstaking = 0;
            }
            SietchEscrowEvents::Slashed(e) => {
                // What stays is held for the provider's other open tickets' disputes.
                let a = accounts.entry(e.provider).or_default();
                a.stake = 0;
                a.unstaking = e.kept.saturating_to();
            }
            SietchEscrowEvents::VerifierPenalized(e) => {
                // Taken from the active stake first (the escrow's order).
                let a = accounts.entry(e.verifier).or_default();
                let amount: u128 = e.amount.saturating_to();
                let from_stake = amount.min(a.stake);
                a.stake -= from_stake;
                a.unstaking = a.unstaking.saturating_sub(amount - from_stake);
            }
            _ => {}
        }
    }

    /// Follows the escrow's events until `stop`: rebuilds the account index from
    /// `index_from`, then sends every event after the stored chain cursor to `out`, moving
    /// the cursor past a block once all its events were taken. Polls every `poll`.
    pub async fn watch(
        self,
        store: Arc<Store>,
        index_from: u64,
        poll: Duration,
        out: mpsc::Sender<ChainEvent>,
    ) -> Result<(), ChainError> {
        let chain_id = self.inner.chain_id;
        let cursor = store
            .chain_cursor(chain_id)
            .map_err(|e| ChainError::Rpc(format!("reading the chain cursor: {e}")))?;
        // Blocks up to the cursor: index only (their events were handled before a restart).
        let mut next = index_from;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let head = match self.inner.provider.get_block_number().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!("chain: cannot read the head: {e}");
                    continue;
                }
            };
            while next <= head {
                let to = head.min(next + LOG_RANGE - 1);
                let events = match self.events(next, to).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("chain: cannot read events {next}..={to}: {e}");
                        break;
                    }
                };
                for ev in events {
                    self.index(&ev.event);
                    if cursor.is_none_or(|c| ev.block > c) && out.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                if cursor.is_none_or(|c| to > c)
                    && let Err(e) = store.set_chain_cursor(chain_id, to)
                {
                    tracing::warn!("chain: cannot store the cursor: {e}");
                }
                next = to + 1;
            }
        }
    }
}
