//! A reorg-safe view of the chain (`docs/finality.md`): the watcher follows block hashes,
//! holds each escrow event until it is `confirmations` deep, and only then hands it to the
//! roles and to the account index. A reorganization above that depth drops events nobody
//! acted on; one past it is reported loudly, and the node reads the chain again from the
//! common ancestor (rebuilding the account index, moving the stored cursor back).
//!
//! Also here: a channel as a provider may serve against it, its deposit counted only as far
//! as it is confirmed (plus what the provider risks on an unconfirmed one).

use std::collections::{HashSet, VecDeque};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::keccak256;
use alloy::rpc::types::Log;

use super::*;

/// Block hashes kept beyond the confirmation depth: how deep a reorganization past the
/// depth can be and still have its common ancestor found.
const WINDOW_MARGIN: u64 = 64;
/// Delivered events remembered per block, so that an event a deep reorganization moved to
/// another block is not handed to the roles twice.
const KEYS_PER_BLOCK: usize = 4_096;
/// Events retracted by deep reorganizations remembered at most, until the new branch is
/// read past them.
const MAX_RETRACTED: usize = 65_536;

/// A reorganization of blocks the watcher had read.
#[derive(Debug, Clone)]
pub struct Reorg {
    /// The newest block both branches share; `None` when it is older than every block hash
    /// kept.
    pub ancestor: Option<u64>,
    /// The newest block of the dropped branch.
    pub old_tip: u64,
    /// The escrow events of the dropped blocks, in order (delivered ones too when `deep`).
    pub retracted: Vec<ChainEvent>,
    /// Blocks the roles had seen were dropped: past the confirmation depth.
    pub deep: bool,
    /// The block the watcher reads again from.
    pub resync_from: u64,
}

/// What one [`Follower::poll`] found.
#[derive(Debug, Default)]
pub struct Step {
    /// Events now `confirmations` deep, in chain order, not handed out before: for the roles.
    pub confirmed: Vec<ChainEvent>,
    /// A reorganization, if one was seen.
    pub reorg: Option<Reorg>,
    /// The chain's head at this poll.
    pub head: u64,
    /// Blocks remain to read up to the head (a catch-up reads [`LOG_RANGE`] at a time).
    pub behind: bool,
}

/// An event and what identifies it across branches: its transaction and content (a
/// reorganization may move a transaction to another block, never change its logs).
#[derive(Debug, Clone)]
struct Held {
    key: B256,
    event: ChainEvent,
}

/// A block read near the head.
#[derive(Debug)]
struct Seen {
    number: u64,
    hash: B256,
    events: Vec<Held>,
    /// Its events went to the roles (it was `confirmations` deep).
    delivered: bool,
}

/// The chain as the watcher follows it: block hashes near the head, events held until
/// deep enough, the cursor of what the roles have seen.
#[derive(Debug)]
pub struct Follower {
    chain: Chain,
    store: Arc<Store>,
    confirmations: u64,
    index_from: u64,
    /// Every event up to this block went to the roles (the stored chain cursor).
    cursor: Option<u64>,
    /// The next block to read.
    next: u64,
    /// Blocks read within `window` of the head, oldest first.
    blocks: VecDeque<Seen>,
    /// Delivered events that a deep reorganization dropped: not delivered again when the
    /// new branch holds them too (bounded by [`MAX_RETRACTED`]).
    retracted: HashSet<B256>,
    /// Past this block, what is still in `retracted` is forgotten.
    retracted_until: u64,
    /// Events deep enough, to hand out at the end of the poll.
    ready: Vec<ChainEvent>,
}

impl Follower {
    /// Follows `chain` from `index_from` (the account index is rebuilt from there), handing
    /// out events after the cursor stored in `store`, once `confirmations` deep.
    pub fn new(
        chain: Chain,
        store: Arc<Store>,
        index_from: u64,
        confirmations: u64,
    ) -> Result<Self, ChainError> {
        let cursor = store
            .chain_cursor(chain.chain_id())
            .map_err(|e| ChainError::Rpc(format!("reading the chain cursor: {e}")))?;
        Ok(Self {
            chain,
            store,
            confirmations,
            index_from,
            cursor,
            next: index_from,
            blocks: VecDeque::new(),
            retracted: HashSet::new(),
            retracted_until: 0,
            ready: Vec::new(),
        })
    }

    /// Blocks whose hashes are kept: the confirmation depth and a margin.
    fn window(&self) -> u64 {
        self.confirmations.saturating_add(WINDOW_MARGIN)
    }

    /// The last block whose events went to the roles.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Reads the chain once: checks that the newest block read is still the chain's (else
    /// rolls back to the common ancestor), reads up to [`LOG_RANGE`] new blocks, and hands
    /// out the events now deep enough.
    pub async fn poll(&mut self) -> Result<Step, ChainError> {
        let head = self.header(BlockNumberOrTag::Latest).await?;
        let (head_number, head_hash) = head.ok_or_else(|| rpc("no latest block"))?;
        let mut step = Step {
            head: head_number,
            ..Step::default()
        };
        if let Some(tip) = self.blocks.back() {
            let (number, hash) = (tip.number, tip.hash);
            let kept_at_head = self
                .blocks
                .iter()
                .rev()
                .find(|b| b.number == head_number)
                .map(|b| b.hash);
            if head_number < number && kept_at_head == Some(head_hash) {
                // A head below the newest block read, on the branch read: an endpoint behind
                // the others (a fallback, a load balancer), not a reorganization. A chain
                // that really got shorter shows at the next block.
                return Ok(step);
            }
            let canonical = if number == head_number {
                Some(head_hash)
            } else {
                self.hash_of(number).await?
            };
            if canonical != Some(hash) {
                let ancestor = self.ancestor().await?;
                step.reorg = Some(self.roll_back(ancestor, number));
            }
        }
        if self.next <= head_number {
            let to = head_number.min(self.next.saturating_add(LOG_RANGE - 1));
            if !self.read(self.next, to, head_number).await? {
                // The chain moved under the read: the next poll sees the reorganization.
                return Ok(step);
            }
            self.next = to + 1;
            step.behind = to < head_number;
        }
        step.confirmed = self.confirm(head_number);
        self.prune(head_number);
        Ok(step)
    }

    /// The newest kept block still on the chain, walking back from the tip.
    async fn ancestor(&self) -> Result<Option<u64>, ChainError> {
        for b in self.blocks.iter().rev() {
            if self.hash_of(b.number).await? == Some(b.hash) {
                return Ok(Some(b.number));
            }
        }
        Ok(None)
    }

    /// Drops the blocks above `ancestor`. Above the cursor nothing was handed out: the
    /// events are forgotten. At or below it (a deep reorganization) the roles acted on
    /// events that may be gone: the account index, built from them, is rebuilt from
    /// `index_from`, the cursor moves back to the ancestor, and the delivered events are
    /// remembered so that those the new branch holds too are not handed out twice.
    fn roll_back(&mut self, ancestor: Option<u64>, old_tip: u64) -> Reorg {
        let keep = |n: u64| ancestor.is_some_and(|a| n <= a);
        let mut dropped = Vec::new();
        while self.blocks.back().is_some_and(|b| !keep(b.number)) {
            dropped.extend(self.blocks.pop_back());
        }
        dropped.reverse();
        let mut retracted = Vec::new();
        let mut delivered_dropped = false;
        for b in dropped {
            delivered_dropped |= b.delivered;
            for h in b.events {
                if b.delivered && self.retracted.len() < MAX_RETRACTED {
                    self.retracted.insert(h.key);
                }
                retracted.push(h.event);
            }
        }
        let below_cursor = match (ancestor, self.cursor) {
            (Some(a), Some(c)) => a < c,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let deep = delivered_dropped || below_cursor;
        if deep {
            self.retracted_until = old_tip.saturating_add(self.window());
        }
        let resync_from = if deep {
            // Unknown ancestor: older than every hash kept; read again from a window before
            // the oldest one dropped.
            let back_to = ancestor.unwrap_or_else(|| {
                self.next
                    .saturating_sub(2 * self.window())
                    .max(self.index_from)
            });
            let cursor = back_to.max(self.index_from.saturating_sub(1));
            self.cursor = self.cursor.map(|c| c.min(cursor));
            if let Err(e) = self
                .store
                .set_chain_cursor(self.chain.chain_id(), self.cursor.unwrap_or(cursor))
            {
                tracing::warn!("chain: cannot move the cursor back: {e}");
            }
            // The index holds events of dropped blocks: built again from the start.
            if let Ok(mut accounts) = self.chain.inner.accounts.write() {
                accounts.clear();
            }
            self.blocks.clear();
            self.next = self.index_from;
            cursor.saturating_add(1).max(self.index_from)
        } else {
            self.next = ancestor.map_or(self.index_from, |a| a + 1);
            self.next
        };
        Reorg {
            ancestor,
            old_tip,
            retracted,
            deep,
            resync_from,
        }
    }

    /// Reads blocks `from..=to`: their hashes where they are within the window of `head`,
    /// and their events. `false` when the chain moved under the read (a header does not
    /// chain to the one before, or a log's block is not the header read): nothing is kept.
    async fn read(&mut self, from: u64, to: u64, head: u64) -> Result<bool, ChainError> {
        let tracked_from = from.max(head.saturating_sub(self.window()).saturating_add(1));
        let mut seen = Vec::new();
        let mut parent = self.blocks.back().map(|b| (b.number, b.hash));
        for n in tracked_from..=to {
            let Some((number, hash, parent_hash)) = self.full_header(n).await? else {
                return Ok(false);
            };
            if let Some((pn, ph)) = parent
                && pn + 1 == number
                && ph != parent_hash
            {
                return Ok(false);
            }
            parent = Some((number, hash));
            seen.push(Seen {
                number,
                hash,
                events: Vec::new(),
                delivered: false,
            });
        }
        let logs = self
            .chain
            .provider()
            .get_logs(
                &Filter::new()
                    .address(self.chain.escrow())
                    .from_block(from)
                    .to_block(to),
            )
            .await
            .map_err(rpc)?;
        let mut old = Vec::new();
        for l in &logs {
            let Some(held) = held(l) else { continue };
            match seen.iter_mut().find(|s| s.number == held.event.block) {
                Some(s) => {
                    if l.block_hash != Some(s.hash) {
                        return Ok(false);
                    }
                    s.events.push(held);
                }
                None => old.push(held),
            }
        }
        // Blocks below the window are past any depth the node waits for: confirmed now.
        for h in old {
            self.take(h);
        }
        self.blocks.extend(seen);
        Ok(true)
    }

    /// Hands out an event that is deep enough: into the account index always; to the roles
    /// when it is past the cursor and was not handed out before a deep reorganization.
    fn take(&mut self, h: Held) {
        self.chain.index(&h.event.event);
        if self.cursor.is_some_and(|c| h.event.block <= c) || self.retracted.remove(&h.key) {
            return;
        }
        self.ready.push(h.event);
    }

    /// The events of kept blocks now `confirmations` deep under `head`, handed out once; the
    /// cursor moves past them.
    fn confirm(&mut self, head: u64) -> Vec<ChainEvent> {
        if let Some(deep_enough) = head.checked_sub(self.confirmations) {
            let mut ready = Vec::new();
            for b in self.blocks.iter_mut() {
                if b.delivered || b.number > deep_enough {
                    continue;
                }
                b.delivered = true;
                ready.extend(b.events.iter().cloned());
                // Kept only to recognize them after a deep reorganization (bounded).
                b.events.truncate(KEYS_PER_BLOCK);
            }
            for h in ready {
                self.take(h);
            }
            let done = deep_enough.min(self.next.saturating_sub(1));
            if self.next > self.index_from && self.cursor.is_none_or(|c| done > c) {
                self.cursor = Some(done);
                if let Err(e) = self.store.set_chain_cursor(self.chain.chain_id(), done) {
                    tracing::warn!("chain: cannot store the cursor: {e}");
                }
            }
            if self.cursor.is_some_and(|c| c > self.retracted_until) {
                // What a deep reorganization retracted and the new branch does not hold by
                // now is gone for good.
                self.retracted.clear();
            }
        }
        std::mem::take(&mut self.ready)
    }

    /// Forgets the hashes of blocks older than the window (the newest is always kept).
    fn prune(&mut self, head: u64) {
        let oldest = head.saturating_sub(self.window());
        while self.blocks.len() > 1
            && self
                .blocks
                .front()
                .is_some_and(|b| b.delivered && b.number <= oldest)
        {
            self.blocks.pop_front();
        }
    }

    /// A block's hash, `None` when the chain has no such block (it got shorter).
    async fn hash_of(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self.full_header(number).await?.map(|(_, hash, _)| hash))
    }

    /// A block's number and hash.
    async fn header(&self, at: BlockNumberOrTag) -> Result<Option<(u64, B256)>, ChainError> {
        let b = self
            .chain
            .provider()
            .get_block_by_number(at)
            .await
            .map_err(rpc)?;
        Ok(b.map(|b| (b.header.number, b.header.hash)))
    }

    /// A block's number, hash and parent's hash.
    async fn full_header(&self, number: u64) -> Result<Option<(u64, B256, B256)>, ChainError> {
        let b = self
            .chain
            .provider()
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc)?;
        Ok(b.map(|b| (b.header.number, b.header.hash, b.header.parent_hash)))
    }
}

/// An escrow log as an event, with its identity; `None` for a log that is not one.
fn held(l: &Log) -> Option<Held> {
    let block = l.block_number?;
    let event = SietchEscrowEvents::decode_log(&l.inner).ok()?.data;
    let mut id = Vec::with_capacity(64 + l.inner.data.data.len() + 32 * 4);
    id.extend_from_slice(l.transaction_hash.unwrap_or_default().as_slice());
    id.extend_from_slice(l.inner.address.as_slice());
    for t in l.inner.data.topics() {
        id.extend_from_slice(t.as_slice());
    }
    id.extend_from_slice(&l.inner.data.data);
    Some(Held {
        key: keccak256(&id),
        event: ChainEvent { block, event },
    })
}

/// A channel as a provider may serve against it: `latest` as the head holds it, with its
/// deposit counted only up to the deposit `confirmed` deep enough (`None`: no such channel
/// then) plus `risk`, what the provider accepts to lose should the rest be reorganized out.
pub fn servable(latest: ChannelView, confirmed: Option<&ChannelView>, risk: u128) -> ChannelView {
    let confirmed_deposit = confirmed
        .filter(|c| c.buyer == latest.buyer && c.provider == latest.provider)
        .map_or(0, |c| c.deposit);
    ChannelView {
        deposit: latest.deposit.min(confirmed_deposit.saturating_add(risk)),
        ..latest
    }
}

impl Chain {
    /// A channel as the escrow held it at block `number`.
    pub async fn channel_at(&self, id: B256, number: u64) -> Result<ChannelView, ChainError> {
        let c = self
            .inner
            .escrow
            .channels(id)
            .call()
            .block(BlockId::number(number))
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(ChannelView {
            buyer: c.buyer,
            provider: c.provider,
            state: c.state,
            closes_at: c.closesAt,
            deposit: c.deposit,
            paid: c.paid,
            reserved: c.reserved.to::<u128>(),
        })
    }

    /// An account of the registry as the escrow held it at block `number`.
    pub async fn account_at(&self, who: Address, number: u64) -> Result<AccountView, ChainError> {
        let a = self
            .inner
            .escrow
            .accounts(who)
            .call()
            .block(BlockId::number(number))
            .await
            .map_err(EscrowError::from_contract)?;
        Ok(AccountView {
            node_key: a.nodeKey.0,
            stake: a.stake,
            unstaking: a.unstaking,
        })
    }

    /// Waits until what this node's last transaction did (mined at the head or below when it
    /// returned) is `confirmations` deep: the head `confirmations` blocks past the head now.
    /// Gives up after `confirmations` × 30 s (a stalled chain), saying so.
    pub async fn wait_deep(&self, confirmations: u64) {
        if confirmations == 0 {
            return;
        }
        let Ok(now) = self.block_number().await else {
            return;
        };
        let want = now.saturating_add(confirmations);
        let until = tokio::time::Instant::now()
            + Duration::from_secs(confirmations.saturating_mul(30).saturating_add(10));
        while tokio::time::Instant::now() < until {
            if self.block_number().await.is_ok_and(|h| h >= want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::warn!("block {want} did not come in time: going on without the confirmations");
    }

    /// A channel as a provider may serve against it ([`servable`]): its deposit counted as
    /// far as it is `confirmations` deep, plus `risk`. Also returns the deposit at the head,
    /// to tell a refusal for an unconfirmed deposit from an underfunded channel.
    pub async fn servable_channel(
        &self,
        id: B256,
        confirmations: u64,
        risk: u128,
    ) -> Result<(ChannelView, u128), ChainError> {
        let head = self.block_number().await?;
        let latest = self.channel_at(id, head).await?;
        if confirmations == 0 {
            return Ok((latest, latest.deposit));
        }
        let confirmed = match head.checked_sub(confirmations) {
            Some(n) => Some(self.channel_at(id, n).await?),
            None => None,
        };
        Ok((servable(latest, confirmed.as_ref(), risk), latest.deposit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(deposit: u128) -> ChannelView {
        ChannelView {
            buyer: Address::repeat_byte(0xb),
            provider: Address::repeat_byte(0xa),
            state: 1,
            closes_at: 0,
            deposit,
            paid: 0,
            reserved: 0,
        }
    }

    #[test]
    fn an_unconfirmed_deposit_counts_up_to_the_risk() {
        // Opened in the last blocks: only the risk counts.
        assert_eq!(servable(channel(1_000), None, 0).deposit, 0);
        assert_eq!(servable(channel(1_000), None, 300).deposit, 300);
        assert_eq!(servable(channel(1_000), None, 5_000).deposit, 1_000);
        // Topped up in the last blocks: the confirmed part and the risk.
        let before = channel(400);
        assert_eq!(servable(channel(1_000), Some(&before), 100).deposit, 500);
        assert_eq!(
            servable(channel(1_000), Some(&channel(1_000)), 0).deposit,
            1_000
        );
        // A channel that was another's at the confirmed block counts nothing confirmed.
        let other = ChannelView {
            buyer: Address::repeat_byte(0xc),
            ..channel(1_000)
        };
        assert_eq!(servable(channel(1_000), Some(&other), 0).deposit, 0);
    }
}
