//! What a restarted buyer takes back from its store and the chain, so that it goes on where
//! it stopped: its tickets to dispute (the store's `disputable_tickets`) and its lanes.
//!
//! Lanes are rebuilt from the chain and the store ([`Buyer::restore_lanes`]): every channel
//! this buyer opened (the escrow's `ChannelOpened` events naming it) that is not closed
//! becomes a lane again, its line at the latest voucher signed on it (the store's
//! `vouchers`) or what the chain paid, whichever is greater, so that the buyer never signs a
//! voucher below one it signed before, and its next job to that provider takes the channel
//! instead of opening another. A channel that may still pay a ticket this buyer did not pay
//! by voucher (a ticket to dispute on it, a job of it delivered and not paid, money reserved
//! for a claimed ticket) or that is closing comes back retired: it takes no more tickets
//! and is closed. The reputation table comes back too ([`super::reputation::load`]).
//!
//! What does not come back: a job in flight when the node stopped (its ticket was not
//! recorded before its delivery; the provider may still claim it, and that claim is not
//! disputed), the evidence of a check (the API's withheld tickets list no check after a
//! restart) and, without a chain, lanes (a local channel id holds no money).

use std::collections::{HashMap, HashSet};

use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::{Address, B256, U256};

use super::Buyer;
use super::chain_events::{Disputable, MAX_DISPUTABLE};
use super::lanes::Restored;
use crate::chain::{Chain, ChainError};
use crate::store::{JobState, Side, Store, StoreError, off_async};
use crate::sync::lock;

/// Blocks asked per `eth_getLogs` call when looking for the buyer's channels.
const LOG_RANGE: u64 = 2_000;
/// Buyer jobs read per store read when looking for unpaid tickets.
const JOB_PAGE: usize = 1_000;

/// Why the lanes could not be rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// The chain could not be read.
    #[error("reading the chain: {0}")]
    Chain(#[from] ChainError),
    /// A task of the node stopped.
    #[error("the store's task stopped")]
    Stopped,
}

/// The tickets to dispute the store keeps (at most [`MAX_DISPUTABLE`]).
pub(super) fn disputable(store: &Store) -> Result<HashMap<B256, Disputable>, StoreError> {
    Ok(store
        .disputable(MAX_DISPUTABLE)?
        .into_iter()
        .map(|(ticket, d)| {
            (
                ticket,
                Disputable {
                    job: d.job_id,
                    channel: d.channel_id,
                    check: None,
                    undelivered: d.undelivered,
                },
            )
        })
        .collect())
}

/// Channels with a ticket of a buyer job that was delivered and never paid by voucher (the
/// provider may claim it), read from the store's job records.
fn unpaid_ticket_channels(store: &Store) -> Result<HashSet<B256>, StoreError> {
    let mut out = HashSet::new();
    let mut after = None;
    loop {
        let page = store.jobs(Side::Buyer, after.as_ref(), JOB_PAGE)?;
        for j in &page {
            if j.state != JobState::Paid
                && let Some(t) = &j.ticket
            {
                out.insert(t.message.channel_id);
            }
        }
        match page.last() {
            Some(j) if page.len() == JOB_PAGE => after = Some(j.job_id),
            _ => return Ok(out),
        }
    }
}

/// What the chain says of the channels `buyer` opened from block `from` on: (channel,
/// provider), in the order they were opened.
async fn opened_by(
    chain: &Chain,
    buyer: Address,
    from: u64,
) -> Result<Vec<(B256, Address)>, ChainError> {
    let head = chain.block_number().await?;
    let mut out = Vec::new();
    let mut next = from;
    while next <= head {
        let to = head.min(next.saturating_add(LOG_RANGE - 1));
        for ev in chain.events(next, to).await? {
            if let SietchEscrowEvents::ChannelOpened(e) = ev.event
                && e.buyer == buyer
            {
                out.push((e.channelId, e.provider));
            }
        }
        next = to + 1;
    }
    Ok(out)
}

impl Buyer {
    /// Rebuilds the lanes from the chain and the store (see the module docs), then disputes
    /// the kept tickets their providers claimed while the buyer was down. Returns how many
    /// lanes came back. Without a chain, nothing to do.
    pub(crate) async fn restore_lanes(&self) -> Result<usize, RestoreError> {
        let Some(chain) = &self.chain else {
            return Ok(0);
        };
        let opened = opened_by(chain, self.address(), self.config.chain_from_block).await?;
        let unpaid = off_async(&self.store, unpaid_ticket_channels)
            .await
            .ok_or(RestoreError::Stopped)??;
        let to_dispute: HashSet<B256> =
            lock(&self.disputable).values().map(|d| d.channel).collect();
        let mut restored = Vec::new();
        for (channel, provider) in opened {
            let view = chain.channel(channel).await?;
            // 0: none; 3: closed, its money back with the buyer.
            if view.state == 0 || view.state == 3 {
                continue;
            }
            let voucher = off_async(&self.store, move |s| s.voucher(&channel))
                .await
                .ok_or(RestoreError::Stopped)??;
            let signed = voucher.map_or(U256::ZERO, |v| v.message.cumulative_amount);
            let cumulative = signed.max(U256::from(view.paid));
            let retired = !view.is_open()
                || view.reserved > 0
                || unpaid.contains(&channel)
                || to_dispute.contains(&channel);
            restored.push(Restored {
                channel,
                provider,
                cumulative,
                deposit: U256::from(view.deposit),
                retired,
                closes_at: (!view.is_open()).then_some(view.closes_at),
            });
        }
        let n = restored.len();
        {
            let mut lanes = lock(&self.lanes);
            for r in restored {
                lanes.restore(r);
            }
        }
        self.lane_freed.notify_waiters();
        // Claimed while the buyer was down, before the chain cursor's block or after: the
        // claim's event may never reach it. On a task of its own: start does not wait.
        let tickets: Vec<B256> = lock(&self.disputable).keys().copied().collect();
        if !tickets.is_empty()
            && let Some(me) = self.me.upgrade()
        {
            tokio::spawn(async move {
                for t in tickets {
                    me.dispute_if_claimed(t).await;
                }
            });
        }
        Ok(n)
    }
}
