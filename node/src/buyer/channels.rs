//! The buyer's channels on chain: taking a lane for a job (opening one on demand, a
//! `openChannel` with a deposit of `channel_deposit` or what the job needs, or topping one
//! up), topping lanes up ahead of need, and closing retired lanes. What a lane is and the
//! rules for taking one are [`super::lanes`]'; this is where they meet the chain. Without a
//! chain (tests, private networks) a lane is a local channel id and vouchers are signed all
//! the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sietch_market::{Address, B256, U256};

use super::lanes::{Room, Take, Taken};
use super::{BuyError, Buyer, now};
use crate::chain::ChainError;
use crate::events::NodeEvent;
use crate::store::off_async;
use crate::sync::lock;

/// How long a channel missing after a reorganization is looked for again before its lane is
/// forgotten.
const VANISHED_RECHECK: Duration = Duration::from_secs(2);

/// Why no lane could be had for a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaneError {
    /// The buyer is stopping.
    #[error("the buyer is shutting down")]
    ShuttingDown,
    /// Every lane to the provider stayed busy, and no more may be opened.
    #[error("every lane to this provider stayed busy")]
    AllBusy,
    /// The task opening the lane stopped.
    #[error("the channel open: {0}")]
    OpenStopped(tokio::task::JoinError),
    /// The escrow's minimum deposit could not be read.
    #[error("{0}")]
    MinDeposit(ChainError),
    /// An amount does not fit the escrow's 128 bits.
    #[error("{what} over 128 bits")]
    Over128Bits {
        /// Which amount.
        what: &'static str,
    },
    /// The channel could not be opened.
    #[error("cannot open a channel: {0}")]
    Open(ChainError),
    /// The channel could not be topped up.
    #[error("cannot top up the channel: {0}")]
    TopUp(ChainError),
    /// The lane left the table.
    #[error("lane vanished")]
    Vanished,
}

impl Buyer {
    /// A lane to `provider` that can pay `need` more: a free one, a new one, or a topped-up
    /// one; waits for a lane to free up when `max_lanes` are busy.
    /// `extra`: open a lane beyond `max_lanes` rather than wait. Re-runs take extra lanes:
    /// a job holds its own lane until its check decides, and a check waiting for lanes held
    /// by other jobs in their checks would wait in a circle.
    ///
    /// A lane opened because every lane was busy is opened in the background: the job that
    /// asked for it takes the first lane to come free, that one or another (a busy lane
    /// frees in milliseconds, a channel opens in a block or more). It waits for its open
    /// only while nothing else frees, and an open that fails fails that job.
    pub(super) async fn take_lane(
        &self,
        provider: Address,
        need: U256,
        extra: bool,
    ) -> Result<Taken, LaneError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut my_open: Option<tokio::task::JoinHandle<Result<(), LaneError>>> = None;
        loop {
            // Listening before looking: a lane freed in between is not missed.
            let freed = self.lane_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let room = Room {
                opening: self.opening.of(provider),
                max_lanes: (!extra).then_some(self.config.max_lanes as usize),
                may_open: my_open.is_none(),
            };
            // An open of this job's still running when it takes a lane goes on: its lane
            // joins the pool.
            let take = lock(&self.lanes).take(provider, need, room);
            match take {
                Take::Ready(t) => return Ok(t),
                Take::TopUp { channel, end } => return self.top_up(channel, provider, end).await,
                Take::Open => {
                    my_open = Some(self.open_in_background(provider, need)?);
                    continue;
                }
                Take::Wait => {}
            }
            if Instant::now() >= deadline {
                return Err(LaneError::AllBusy);
            }
            let wait = Duration::from_millis(500);
            match my_open.as_mut() {
                Some(opened) => {
                    tokio::select! {
                        r = opened => {
                            my_open = None;
                            r.map_err(LaneError::OpenStopped)??;
                        }
                        _ = tokio::time::timeout(wait, freed) => {}
                    }
                }
                None => {
                    // Woken by a freed lane or after `wait`: either way, look again.
                    let _ = tokio::time::timeout(wait, freed).await;
                }
            }
        }
    }

    /// Opens a lane to `provider` able to pay `need`, on a task of its own; the lane joins
    /// the pool free when it is open. Counted in `opening` until then.
    fn open_in_background(
        &self,
        provider: Address,
        need: U256,
    ) -> Result<tokio::task::JoinHandle<Result<(), LaneError>>, LaneError> {
        let me = self.me.upgrade().ok_or(LaneError::ShuttingDown)?;
        // Counted before it is spawned: the next job to look sees it.
        self.opening.add(provider);
        Ok(tokio::spawn(async move {
            let r = me.open_lane(provider, need).await;
            me.opening.sub(provider);
            match r {
                Ok(t) => {
                    me.release_lane(&t, false);
                    Ok(())
                }
                Err(e) => {
                    // The job waiting on it learns why (if it still waits); others find the
                    // count back down.
                    tracing::warn!("opening a lane to {provider}: {e}");
                    me.lane_freed.notify_waiters();
                    Err(e)
                }
            }
        }))
    }

    /// Channel opens sent and not yet landed: their channels join [`Buyer::channels`] when
    /// they do.
    pub fn channels_opening(&self) -> usize {
        self.opening.total()
    }

    /// Waits, at most `max`, for the channel opens in flight to land (or fail), so that
    /// [`Buyer::channels`] holds every channel the buyer's money went into; whether none is
    /// left.
    pub async fn opens_settled(&self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        loop {
            let freed = self.lane_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.channels_opening() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), freed).await;
        }
    }

    /// Whether a job to `provider` could start now (see [`super::lanes::Lanes::has_room`]).
    pub(super) fn has_room(&self, provider: Address) -> bool {
        let opening = self.opening.of(provider);
        let waiting = self.heading.of(provider);
        lock(&self.lanes).has_room(provider, opening, waiting, self.config.max_lanes as usize)
    }

    fn deposit_for(&self, need: U256) -> U256 {
        U256::from(self.config.channel_deposit).max(need)
    }

    async fn open_lane(&self, provider: Address, need: U256) -> Result<Taken, LaneError> {
        self.open_lane_with(provider, self.deposit_for(need)).await
    }

    async fn open_lane_with(&self, provider: Address, deposit: U256) -> Result<Taken, LaneError> {
        let mut deposit = deposit;
        let channel = match &self.chain {
            Some(chain) => {
                let min = chain.min_deposit().await.map_err(LaneError::MinDeposit)?;
                deposit = deposit.max(U256::from(min));
                let amount: u128 = deposit
                    .try_into()
                    .map_err(|_| LaneError::Over128Bits { what: "deposit" })?;
                let id = chain
                    .open_channel(provider, amount)
                    .await
                    .map_err(LaneError::Open)?;
                // A provider counts a deposit only this deep, beyond what it risks
                // (`docs/finality.md`): jobs sent before would be refused.
                chain.wait_deep(self.config.finality.confirmations).await;
                self.emit(NodeEvent::ChannelOpened {
                    channel: id,
                    provider,
                    deposit,
                });
                id
            }
            None => self.random_b256(),
        };
        // Channel ids count the buyer's opens to a provider, so an open a reorganization
        // dropped is followed by one with the same id: the line goes on from the latest
        // voucher signed on that id, which its provider holds (for work it did) and may
        // claim from this deposit. A voucher is never signed below one signed before.
        let signed = off_async(&self.store, move |s| s.voucher(&channel))
            .await
            .and_then(Result::ok)
            .flatten()
            .map_or(U256::ZERO, |v| v.message.cumulative_amount);
        Ok(lock(&self.lanes).opened(channel, provider, deposit, signed))
    }

    async fn top_up(
        &self,
        channel: B256,
        provider: Address,
        end: U256,
    ) -> Result<Taken, LaneError> {
        let (cumulative, deposit) = lock(&self.lanes).line(channel).ok_or(LaneError::Vanished)?;
        let taken = Taken {
            channel,
            provider,
            cumulative_before: cumulative,
        };
        let add = self.deposit_for(end.saturating_sub(deposit));
        if let Some(chain) = &self.chain {
            let amount: u128 = match add.try_into() {
                Ok(a) => a,
                Err(_) => {
                    self.release_lane(&taken, false);
                    return Err(LaneError::Over128Bits { what: "top-up" });
                }
            };
            if let Err(e) = chain.top_up(channel, amount).await {
                self.release_lane(&taken, false);
                return Err(LaneError::TopUp(e));
            }
            chain.wait_deep(self.config.finality.confirmations).await;
            // Deep enough, unless a reorganization went deeper: the chain's word counts.
            let on_chain = chain.channel(channel).await.map(|v| U256::from(v.deposit));
            let mut lanes = lock(&self.lanes);
            lanes.add_deposit(channel, add);
            if let Ok(d) = on_chain {
                lanes.lower_deposit(channel, d);
            }
            return Ok(taken);
        }
        lock(&self.lanes).add_deposit(channel, add);
        Ok(taken)
    }

    /// Puts `amount` more into a channel to `provider`: tops up its first open lane, or
    /// opens one. Returns the channel. (Jobs fund their lanes by themselves; this is for a
    /// buyer that wants the money in place before it submits.)
    pub async fn fund(&self, provider: Address, amount: U256) -> Result<B256, BuyError> {
        let existing = lock(&self.lanes).first_live(provider);
        match existing {
            Some(channel) => {
                if let Some(chain) = &self.chain {
                    let a: u128 = amount
                        .try_into()
                        .map_err(|_| LaneError::Over128Bits { what: "amount" })?;
                    chain.top_up(channel, a).await.map_err(BuyError::Chain)?;
                }
                lock(&self.lanes).add_deposit(channel, amount);
                Ok(channel)
            }
            None => {
                let t = self.open_lane_with(provider, amount).await?;
                self.release_lane(&t, false);
                Ok(t.channel)
            }
        }
    }

    pub(super) fn release_lane(&self, t: &Taken, retire: bool) {
        lock(&self.lanes).release(t.channel, retire);
        self.lane_freed.notify_waiters();
    }

    /// Moves a lane's line to `cumulative` and frees it. A quarter of a deposit left: topped
    /// up now, while the lane works on, rather than when a job finds it dry. Lanes opened
    /// together run dry together, and their top-ups, one transaction each, would queue on
    /// the chain.
    pub(super) fn advance_lane(&self, t: &Taken, cumulative: U256) {
        let low = self
            .chain
            .is_some()
            .then(|| U256::from(self.config.channel_deposit / 4));
        let top_up = lock(&self.lanes).advance(t.channel, cumulative, low);
        self.lane_freed.notify_waiters();
        if top_up && let Some(me) = self.me.upgrade() {
            let channel = t.channel;
            tokio::spawn(async move { me.top_up_ahead(channel).await });
        }
    }

    /// Adds a deposit to a lane that runs low (see [`Buyer::advance_lane`]).
    async fn top_up_ahead(&self, channel: B256) {
        let Some(chain) = &self.chain else { return };
        let amount = self.config.channel_deposit;
        let added = chain.top_up(channel, amount).await;
        if let Err(e) = &added {
            tracing::warn!("topping up channel {channel}: {e}");
        }
        lock(&self.lanes).topped_up(channel, added.is_ok().then(|| U256::from(amount)));
        self.lane_freed.notify_waiters();
    }

    /// After a reorganization: forgets the lanes whose channel the chain no longer has (its
    /// open was in the dropped blocks and did not come back: a mined open is not sent again),
    /// so the buyer neither lists their deposits, which never left its wallet, nor offers
    /// their tickets; and brings down to the chain's the deposit of a lane a dropped top-up
    /// had raised (its nonce may go to another transaction: it is not sent again either), so
    /// that no ticket counts on money the channel lacks. Read twice, [`VANISHED_RECHECK`]
    /// apart, so that a transaction mined again meanwhile (or an endpoint that lags) keeps
    /// its lane as it is. A deposit is only ever lowered here: one mined again later is
    /// money the lane does not use, and that closing refunds.
    pub(super) async fn forget_vanished_lanes(&self) {
        let Some(chain) = &self.chain else { return };
        let lanes: Vec<(B256, U256)> = lock(&self.lanes)
            .summary()
            .iter()
            .map(|l| (l.0, l.3))
            .collect();
        let mut gone = Vec::new();
        let mut short = Vec::new();
        for (c, listed) in lanes {
            match chain.channel(c).await {
                Ok(v) if v.state == 0 => gone.push(c),
                Ok(v) if U256::from(v.deposit) < listed => short.push(c),
                _ => {}
            }
        }
        if gone.is_empty() && short.is_empty() {
            return;
        }
        tokio::time::sleep(VANISHED_RECHECK).await;
        for c in gone {
            if !chain.channel(c).await.is_ok_and(|v| v.state == 0) {
                continue;
            }
            self.warn(format!(
                "channel {c}: its open was reorganized out and is not on chain; its lane is \
                 forgotten (the deposit never left this wallet)"
            ));
            lock(&self.lanes).forget(c);
            self.lane_freed.notify_waiters();
        }
        for c in short {
            let Ok(v) = chain.channel(c).await else {
                continue;
            };
            let on_chain = U256::from(v.deposit);
            let lowered = lock(&self.lanes).lower_deposit(c, on_chain);
            if let Some(was) = lowered {
                self.warn(format!(
                    "channel {c}: a top-up was reorganized out and is not on chain; its lane's \
                     deposit is back to {on_chain} from {was} (the rest never left this wallet)"
                ));
            }
        }
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(NodeEvent::Warning { message });
    }

    /// The buyer's channels and what is owed on each, for the API and the devnet.
    pub fn channels(&self) -> Vec<(B256, Address, U256, U256)> {
        lock(&self.lanes).summary()
    }

    /// Closes retired lanes until the node stops: starts the close (the provider has the
    /// close delay to claim what it is owed, tickets included), then finalizes it, which
    /// returns the rest to the buyer.
    pub(crate) async fn sweep(self: Arc<Self>) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let every = Duration::from_secs(self.config.settle_every_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            let (to_close, to_finalize) = {
                let lanes = lock(&self.lanes);
                (lanes.to_close(), lanes.to_finalize(now()))
            };
            for c in to_close {
                let started = chain.start_close(c).await;
                let closes_at = match chain.channel(c).await {
                    Ok(v) if v.state >= 2 => Some(v.closes_at),
                    _ => None,
                };
                if let Err(e) = started
                    && closes_at.is_none()
                {
                    tracing::warn!("closing channel {c}: {e}");
                }
                lock(&self.lanes).set_closes_at(c, closes_at);
            }
            for c in to_finalize {
                let done = match chain.finalize_close(c).await {
                    Ok(()) => true,
                    Err(_) => chain.channel(c).await.is_ok_and(|v| v.state == 3),
                };
                if done {
                    lock(&self.lanes).mark_closed(c);
                }
            }
        }
    }

    /// Starts closing every channel (the provider then has the close delay to claim).
    pub async fn close_all(&self) -> Vec<B256> {
        let Some(chain) = &self.chain else {
            return Vec::new();
        };
        // The provider claims what it has when it sees the close: it must have everything.
        self.send_payments_now().await;
        let channels: Vec<B256> = self.channels().iter().map(|c| c.0).collect();
        for c in &channels {
            if let Err(e) = chain.start_close(*c).await {
                tracing::warn!("closing channel {c}: {e}");
            }
            lock(&self.lanes).retire(*c);
        }
        channels
    }
}
