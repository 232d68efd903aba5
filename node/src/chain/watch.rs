//! The escrow's events: read by block range, indexed (accounts for gossip validation), and
//! followed from the cursor kept in the store, by block hashes and only once deep enough
//! (`finality`, `docs/finality.md`).

use super::finality::{Follower, Reorg};
use super::*;
use crate::events::{Events, NodeEvent};

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
    pub(super) fn index(&self, event: &SietchEscrowEvents) {
        // An owner named another operator or revoked it: read it again (`signers`).
        if let SietchEscrowEvents::OperatorSet(e) = event {
            self.operator_changed(e.owner);
        }
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

    /// Follows the escrow's events until `out` closes: rebuilds the account index from
    /// `index_from`, then sends every event after the stored chain cursor to `out` once it
    /// is `confirmations` deep, moving the cursor past it. Polls every `poll`. A
    /// reorganization is logged and told on `events` ([`NodeEvent::Reorg`]); one past the
    /// depth as an error, and the chain is read again from the common ancestor.
    pub async fn watch(
        self,
        store: Arc<Store>,
        index_from: u64,
        poll: Duration,
        confirmations: u64,
        events: Events,
        out: mpsc::Sender<ChainEvent>,
    ) -> Result<(), ChainError> {
        let mut follower = Follower::new(self, store, index_from, confirmations)?;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A catch-up reads range after range without waiting for the next tick.
            loop {
                let step = match follower.poll().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("chain: cannot follow the chain: {e}");
                        break;
                    }
                };
                if let Some(r) = &step.reorg {
                    report(r, confirmations, &events);
                }
                for ev in step.confirmed {
                    if out.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                if !step.behind {
                    break;
                }
            }
        }
    }
}

/// Logs a reorganization (an error past the confirmation depth) and tells it on the
/// node's event stream.
pub(super) fn report(r: &Reorg, confirmations: u64, events: &Events) {
    let dropped = r.old_tip.saturating_sub(r.ancestor.unwrap_or(0));
    if r.deep {
        tracing::error!(
            ancestor = ?r.ancestor,
            dropped,
            retracted = r.retracted.len(),
            resync_from = r.resync_from,
            "chain: a reorganization deeper than the {confirmations} confirmations this node \
             waits for dropped blocks whose escrow events it had acted on; reading the chain \
             again from block {}",
            r.resync_from
        );
    } else {
        tracing::warn!(
            ancestor = ?r.ancestor,
            dropped,
            retracted = r.retracted.len(),
            "chain: reorganization within the confirmation depth; unconfirmed events dropped"
        );
    }
    events.emit(NodeEvent::Reorg {
        ancestor: r.ancestor,
        dropped,
        retracted: r.retracted.len(),
        deep: r.deep,
        resync_from: r.resync_from,
    });
}
