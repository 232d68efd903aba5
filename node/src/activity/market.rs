//! The market as this node saw it, for `GET /api/v1/market`: totals, and totals over time,
//! of the escrow's events it read (voucher claims, tickets, what providers were paid,
//! disputes, slashes) and of its own finished jobs; what each provider was paid, disputed and
//! slashed; and the prices of the offers in its order book over time, by GPU model.
//!
//! Everything is bounded: a series keeps at most [`MAX_POINTS`] buckets and, past that, its
//! buckets double in width (neighbours merge), so it spans the whole time since the node
//! started at a coarser grain instead of dropping its start; maps stop taking new keys when
//! full (tickets forget their oldest, GPU models the one offered longest ago).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::{Address, B256, U256};

use crate::events::{JobEnd, NodeEvent};

/// Most buckets of a series; past it the buckets double in width.
pub const MAX_POINTS: usize = 240;
/// A series' first bucket width, seconds.
pub const FIRST_WIDTH: u64 = 10;
/// Providers whose totals are kept.
const MAX_PROVIDERS: usize = 10_000;
/// Channels whose provider is remembered (to name a ticket's provider).
const MAX_CHANNELS: usize = 10_000;
/// Tickets whose channel is remembered, the newest.
const MAX_TICKETS: usize = 10_000;
/// GPU models whose prices are followed (CPU-only offers are one more).
pub const MAX_MODELS: usize = 32;
/// Characters of a GPU model's name kept (it comes from gossip).
const MAX_MODEL_CHARS: usize = 64;

/// Base units, saturating at `u128::MAX`.
fn units(v: U256) -> u128 {
    v.saturating_to()
}

/// How a bucket takes a later one when two merge.
pub trait Merge: Default {
    /// Merges `later`, the bucket right after this one, into it.
    fn merge(&mut self, later: Self);
}

/// Buckets of `width` seconds, oldest first, at most [`MAX_POINTS`].
#[derive(Debug, Clone)]
pub struct Series<B> {
    width: u64,
    points: VecDeque<(u64, B)>,
}

impl<B> Default for Series<B> {
    fn default() -> Self {
        Self {
            width: FIRST_WIDTH,
            points: VecDeque::new(),
        }
    }
}

impl<B: Merge> Series<B> {
    /// The bucket of unix time `now` (the last one, should the clock have gone back).
    pub fn at(&mut self, now: u64) -> Option<&mut B> {
        let start = now - now % self.width;
        if self.points.back().is_none_or(|(s, _)| *s < start) {
            self.points.push_back((start, B::default()));
            while self.points.len() > MAX_POINTS {
                self.coarsen();
            }
        }
        self.points.back_mut().map(|(_, b)| b)
    }

    /// Doubles the width: each bucket merges into the one its new start names.
    fn coarsen(&mut self) {
        self.width = self.width.saturating_mul(2);
        let mut out: VecDeque<(u64, B)> = VecDeque::with_capacity(self.points.len());
        for (s, b) in self.points.drain(..) {
            let start = s - s % self.width;
            match out.back_mut() {
                Some((last, acc)) if *last == start => acc.merge(b),
                Some(_) | None => out.push_back((start, b)),
            }
        }
        self.points = out;
    }

    /// The bucket width, seconds.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// The buckets, oldest first: `(start, bucket)`.
    pub fn points(&self) -> impl Iterator<Item = &(u64, B)> {
        self.points.iter()
    }

    fn last_start(&self) -> Option<u64> {
        self.points.back().map(|(s, _)| *s)
    }
}

fn decimal<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn opt_decimal<S: serde::Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&v.to_string()),
        None => s.serialize_none(),
    }
}

/// What the escrow's events said, of the whole market or of one provider (chain).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Escrow {
    /// Vouchers claimed: one claim pays every job its voucher covers.
    pub claims: u64,
    /// Tickets claimed, one job each (a provider's: on channels whose opening the node read).
    pub tickets: u64,
    /// Paid to providers: what voucher claims moved and settled tickets credited (a
    /// provider's tickets: on channels whose opening the node read).
    #[serde(serialize_with = "decimal")]
    pub volume: u128,
    /// Tickets disputed (a provider's: on channels whose opening the node read).
    pub disputes: u64,
    /// Slashes.
    pub slashes: u64,
    /// Stake slashed.
    #[serde(serialize_with = "decimal")]
    pub slashed: u128,
}

impl Merge for Escrow {
    fn merge(&mut self, later: Self) {
        self.claims = self.claims.saturating_add(later.claims);
        self.tickets = self.tickets.saturating_add(later.tickets);
        self.volume = self.volume.saturating_add(later.volume);
        self.disputes = self.disputes.saturating_add(later.disputes);
        self.slashes = self.slashes.saturating_add(later.slashes);
        self.slashed = self.slashed.saturating_add(later.slashed);
    }
}

/// The market's counts over some time: the escrow's events read, and this node's own jobs.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// This node's jobs finished, paid or withheld (this node).
    pub jobs: u64,
    /// Channels opened (chain).
    pub channels: u64,
    /// The escrow's events (chain).
    #[serde(flatten)]
    pub escrow: Escrow,
}

impl Merge for Counts {
    fn merge(&mut self, later: Self) {
        self.jobs = self.jobs.saturating_add(later.jobs);
        self.channels = self.channels.saturating_add(later.channels);
        self.escrow.merge(later.escrow);
    }
}

/// The offers of one GPU model (or the CPU-only ones) in the order book at one sample.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PricePoint {
    /// Offers with the model.
    pub offers: u64,
    /// GPUs of the model they offer (0 for CPU-only offers).
    pub gpus: u64,
    /// Cheapest price per GPU-hour (base units; null for CPU-only offers).
    #[serde(serialize_with = "opt_decimal")]
    pub min_gpu_hour: Option<u128>,
    /// Median price per GPU-hour (the upper median).
    #[serde(serialize_with = "opt_decimal")]
    pub median_gpu_hour: Option<u128>,
    /// Cheapest price per 10^9 fuel.
    #[serde(serialize_with = "opt_decimal")]
    pub min_gfuel: Option<u128>,
    /// Median price per 10^9 fuel (the upper median).
    #[serde(serialize_with = "opt_decimal")]
    pub median_gfuel: Option<u128>,
}

impl Merge for PricePoint {
    /// A point is the book at its bucket's last sample.
    fn merge(&mut self, later: Self) {
        *self = later;
    }
}

/// What one offer of the book sells, as the price series reads it.
#[derive(Debug, Clone, Default)]
pub struct OfferPrices {
    /// Each GPU's model name.
    pub gpus: Vec<String>,
    /// Price per 10^9 fuel.
    pub per_gfuel: u128,
    /// Price per GPU-second.
    pub per_gpu_second: u128,
}

/// A GPU model's name as kept: at most [`MAX_MODEL_CHARS`] characters.
fn model_name(m: &str) -> String {
    m.chars().take(MAX_MODEL_CHARS).collect()
}

/// The cheapest and the (upper) median of `v`; `None` when empty.
fn min_median(mut v: Vec<u128>) -> (Option<u128>, Option<u128>) {
    v.sort_unstable();
    (v.first().copied(), v.get(v.len() / 2).copied())
}

/// The market as this node saw it.
#[derive(Debug, Default)]
pub struct Market {
    since: Option<u64>,
    blocks: Option<(u64, u64)>,
    totals: Counts,
    series: Series<Counts>,
    providers: HashMap<Address, Escrow>,
    channels: HashMap<B256, Address>,
    tickets: HashMap<B256, B256>,
    ticket_order: VecDeque<B256>,
    /// By GPU model; `None` for the CPU-only offers.
    prices: HashMap<Option<String>, Series<PricePoint>>,
}

/// A copy of what [`Market`] holds, to answer with.
#[derive(Debug, Clone, Serialize)]
pub struct MarketView {
    /// Unix time of the first thing recorded; null before any.
    pub since: Option<u64>,
    /// First and last block of the escrow events read; null before any.
    pub blocks: Option<(u64, u64)>,
    /// Totals since `since`.
    pub totals: Counts,
    /// The width of `buckets`, seconds.
    pub bucket_secs: u64,
    /// Totals by time, oldest first.
    pub buckets: Vec<BucketView>,
    /// Each provider the escrow's events named, by address.
    pub providers: Vec<ProviderView>,
    /// The price series, one per GPU model (`model` null: CPU-only offers), most offered first.
    pub prices: Vec<ModelPrices>,
}

/// One bucket of [`MarketView::buckets`].
#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    /// Unix time it starts.
    pub start: u64,
    /// What it counted.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One provider of [`MarketView::providers`].
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    /// Its EVM account.
    pub evm_address: String,
    /// What the escrow's events said of it.
    #[serde(flatten)]
    pub counts: Escrow,
}

/// One GPU model's prices over time.
#[derive(Debug, Clone, Serialize)]
pub struct ModelPrices {
    /// The model as offered; null for the CPU-only offers.
    pub model: Option<String>,
    /// Bucket width, seconds.
    pub bucket_secs: u64,
    /// The samples, oldest first.
    pub points: Vec<PricePointView>,
}

/// One sample of [`ModelPrices::points`].
#[derive(Debug, Clone, Serialize)]
pub struct PricePointView {
    /// Unix time its bucket starts.
    pub start: u64,
    /// The book at the bucket's last sample.
    #[serde(flatten)]
    pub point: PricePoint,
}

impl Market {
    fn seen(&mut self, now: u64) {
        self.since.get_or_insert(now);
    }

    fn provider(&mut self, a: Address) -> Option<&mut Escrow> {
        if !self.providers.contains_key(&a) && self.providers.len() >= MAX_PROVIDERS {
            return None;
        }
        Some(self.providers.entry(a).or_default())
    }

    /// The provider of a ticket whose claim and channel's opening were read.
    fn ticket_provider(&self, ticket: &B256) -> Option<Address> {
        self.tickets
            .get(ticket)
            .and_then(|c| self.channels.get(c))
            .copied()
    }

    fn count(&mut self, now: u64, f: impl Fn(&mut Counts)) {
        self.seen(now);
        f(&mut self.totals);
        if let Some(b) = self.series.at(now) {
            f(b);
        }
    }

    /// Counts an escrow event of `block`, read at unix time `now`.
    pub fn chain_event(&mut self, block: u64, now: u64, e: &SietchEscrowEvents) {
        use SietchEscrowEvents as E;
        // What the event adds, and the provider it is of (when known).
        let (delta, provider) = match e {
            E::ChannelOpened(e) => {
                if self.channels.len() < MAX_CHANNELS || self.channels.contains_key(&e.channelId) {
                    self.channels.insert(e.channelId, e.provider);
                }
                (Escrow::default(), None)
            }
            E::VoucherClaimed(e) => (
                Escrow {
                    claims: 1,
                    volume: units(e.amount),
                    ..Escrow::default()
                },
                Some(e.provider),
            ),
            E::TicketClaimed(e) => {
                if !self.tickets.contains_key(&e.ticketId) {
                    if self.ticket_order.len() >= MAX_TICKETS
                        && let Some(old) = self.ticket_order.pop_front()
                    {
                        self.tickets.remove(&old);
                    }
                    self.ticket_order.push_back(e.ticketId);
                }
                self.tickets.insert(e.ticketId, e.channelId);
                let d = Escrow {
                    tickets: 1,
                    ..Escrow::default()
                };
                (d, self.ticket_provider(&e.ticketId))
            }
            E::TicketDisputed(e) => {
                let d = Escrow {
                    disputes: 1,
                    ..Escrow::default()
                };
                (d, self.ticket_provider(&e.ticketId))
            }
            E::TicketSettled(e) => {
                let d = Escrow {
                    volume: units(e.toProvider),
                    ..Escrow::default()
                };
                (d, self.ticket_provider(&e.ticketId))
            }
            E::Slashed(e) => (
                Escrow {
                    slashes: 1,
                    slashed: units(e.amount),
                    ..Escrow::default()
                },
                Some(e.provider),
            ),
            _ => return,
        };
        self.blocks = Some(self.blocks.map_or((block, block), |(first, last)| {
            (first.min(block), last.max(block))
        }));
        let channel = u64::from(matches!(e, E::ChannelOpened(_)));
        self.count(now, |c| {
            c.channels += channel;
            c.escrow.merge(delta);
        });
        if let Some(a) = provider
            && let Some(p) = self.provider(a)
        {
            p.merge(delta);
        }
    }

    /// Counts this node's finished jobs (paid or withheld), as `/stats` does.
    pub fn node_event(&mut self, now: u64, e: &NodeEvent) {
        if let NodeEvent::Finished { state, .. } = e
            && !matches!(state, JobEnd::Failed)
        {
            self.count(now, |c| c.jobs += 1);
        }
    }

    /// Records the order book's prices at unix time `now`, by GPU model.
    pub fn sample_offers(&mut self, now: u64, offers: &[OfferPrices]) {
        /// One model's offers at this sample.
        #[derive(Default)]
        struct Group {
            offers: u64,
            gpus: u64,
            gpu_hour: Vec<u128>,
            gfuel: Vec<u128>,
        }
        let mut by_model: HashMap<Option<String>, Group> = HashMap::new();
        for o in offers {
            if o.gpus.is_empty() {
                let e = by_model.entry(None).or_default();
                e.offers += 1;
                e.gfuel.push(o.per_gfuel);
                continue;
            }
            let mut models: Vec<String> = o.gpus.iter().map(|m| model_name(m)).collect();
            models.sort();
            for m in &models {
                let e = by_model.entry(Some(m.clone())).or_default();
                e.gpus += 1;
            }
            models.dedup();
            for m in models {
                let e = by_model.entry(Some(m)).or_default();
                e.offers += 1;
                e.gpu_hour.push(o.per_gpu_second.saturating_mul(3600));
                e.gfuel.push(o.per_gfuel);
            }
        }
        if !by_model.is_empty() {
            self.seen(now);
        }
        for (model, g) in by_model {
            let Group {
                offers,
                gpus,
                gpu_hour,
                gfuel,
            } = g;
            if !self.prices.contains_key(&model) && self.prices.len() > MAX_MODELS {
                // Full: the model offered longest ago gives way, if one was before now.
                let oldest = self
                    .prices
                    .iter()
                    .filter_map(|(m, s)| Some((s.last_start()?, m.clone())))
                    .min();
                match oldest {
                    Some((at, m)) if at < now => {
                        self.prices.remove(&m);
                    }
                    _ => continue,
                }
            }
            let (min_gpu_hour, median_gpu_hour) = min_median(gpu_hour);
            let (min_gfuel, median_gfuel) = min_median(gfuel);
            if let Some(p) = self.prices.entry(model).or_default().at(now) {
                *p = PricePoint {
                    offers,
                    gpus,
                    min_gpu_hour,
                    median_gpu_hour,
                    min_gfuel,
                    median_gfuel,
                };
            }
        }
    }

    /// A copy to answer with.
    pub fn view(&self) -> MarketView {
        let mut providers: Vec<ProviderView> = self
            .providers
            .iter()
            .map(|(a, c)| ProviderView {
                evm_address: a.to_string(),
                counts: *c,
            })
            .collect();
        providers.sort_by(|a, b| a.evm_address.cmp(&b.evm_address));
        let mut prices: Vec<ModelPrices> = self
            .prices
            .iter()
            .map(|(model, s)| ModelPrices {
                model: model.clone(),
                bucket_secs: s.width(),
                points: s
                    .points()
                    .map(|(start, p)| PricePointView {
                        start: *start,
                        point: p.clone(),
                    })
                    .collect(),
            })
            .collect();
        let offered = |m: &ModelPrices| m.points.last().map_or(0, |p| p.point.offers);
        prices.sort_by(|a, b| offered(b).cmp(&offered(a)).then(a.model.cmp(&b.model)));
        MarketView {
            since: self.since,
            blocks: self.blocks,
            totals: self.totals,
            bucket_secs: self.series.width(),
            buckets: self
                .series
                .points()
                .map(|(start, c)| BucketView {
                    start: *start,
                    counts: *c,
                })
                .collect(),
            providers,
            prices,
        }
    }
}

#[cfg(test)]
mod tests;
