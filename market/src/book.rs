//! The order book: every live offer a node knows, and the matching of jobs against them.
//!
//! One offer per provider key. A newer sequence number replaces an older one; a
//! withdrawal removes it and keeps a tombstone so that a late copy of an older offer is
//! not taken back in. Offers expire at their `expires_at`, and may not claim to live
//! longer than [`BookConfig::max_ttl_secs`].
//!
//! **Bound and eviction.** The book holds at most [`BookConfig::capacity`] offers. When it
//! is full, expired offers go first; if none has expired, the offer that expires soonest
//! is evicted for the newcomer, unless the newcomer expires sooner still, in which case
//! the newcomer is refused ([`OfferError::BookFull`]). Offers that keep re-announcing
//! therefore stay, and a flood of short-lived offers cannot push out long-lived ones.
//!
//! **Matching** (see [`OrderBook::find`]) filters on requirements first, then ranks what
//! is left by price, reputation and latency; at equal price, offers that already hold more
//! of the job's large inputs go first. When nothing matches it says why.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::Address;
use crate::error::OfferError;
use crate::job::{BlobRef, GpuNeeds, JobSpec};
use crate::offer::{LARGE_BLOB_BYTES, Offer, Withdrawal};
use crate::settlement::{self, min_stake_for};
use crate::signed::{PublicKey, Signed, Verified};

/// Sizing and policy of an order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookConfig {
    /// Most offers held at once.
    pub capacity: usize,
    /// Longest remaining life an offer may claim, in seconds.
    pub max_ttl_secs: u64,
}

impl Default for BookConfig {
    fn default() -> Self {
        Self {
            capacity: 200_000,
            max_ttl_secs: 3_600,
        }
    }
}

/// What an insertion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// A provider the book did not hold.
    New,
    /// A newer offer of a provider replaced its older one.
    Replaced {
        /// Sequence of the offer replaced.
        previous_sequence: u64,
    },
    /// A new provider went in and the offer closest to expiry was evicted to make room.
    Evicted {
        /// Provider whose offer was evicted.
        evicted: PublicKey,
    },
}

/// What a node has observed of a provider, used in ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerStats {
    /// Reputation in `[0, 1]` (see the verifier's formula); unknown providers rank as 0.5.
    pub reputation: f64,
    /// Round-trip latency in milliseconds; unknown providers rank as 100 ms.
    pub latency_ms: u32,
}

/// Reputation and latency of providers, as the node knows them.
pub trait Observations {
    /// What is known of `provider`, if anything.
    fn stats(&self, provider: &PublicKey) -> Option<PeerStats>;
}

impl Observations for () {
    fn stats(&self, _: &PublicKey) -> Option<PeerStats> {
        None
    }
}

impl Observations for HashMap<PublicKey, PeerStats> {
    fn stats(&self, provider: &PublicKey) -> Option<PeerStats> {
        self.get(provider).copied()
    }
}

/// Reputation assumed for a provider never observed.
pub const DEFAULT_REPUTATION: f64 = 0.5;
/// Latency assumed for a provider never observed, in milliseconds.
pub const DEFAULT_LATENCY_MS: u32 = 100;

/// An offer that fits a job, with its rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The provider.
    pub provider: PublicKey,
    /// The most the job can cost at this offer's prices (all its fuel, and its wall time
    /// on every GPU it asks for), in token base units, rounded up.
    pub max_cost: u128,
    /// `max_cost × (2 − reputation) × (1 + latency_ms / 1000)`: lower ranks first, except
    /// that among offers of the same cost those holding more of the job's inputs take that
    /// cost's places first (see [`OrderBook::find`]).
    pub score: f64,
    /// Bytes of the job's large inputs (stdin and input files of at least 16 MiB) that the
    /// offer names as held, which the buyer need not send.
    pub held_bytes: u64,
}

/// The filters a job's requirements apply, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Stage {
    /// Not expired.
    Live = 0,
    /// Has the GPUs the job needs.
    Gpu = 1,
    /// Has the CPU cores.
    Cores = 2,
    /// Has the memory.
    Memory = 3,
    /// Takes the job's largest input (its offer's `max_input_bytes`, when it states one).
    Inputs = 4,
    /// Lists the runtime features.
    Features = 5,
    /// Its most expensive run fits the job's price cap.
    Price = 6,
    /// Its stake covers the job's value at the job's sampling rate.
    Stake = 7,
    /// Not on the job's list of providers to avoid ([`OrderBook::find_avoiding`]).
    Avoid = 8,
}

const STAGES: usize = 9;

impl Stage {
    /// Every stage, in the order the filters apply.
    pub const ALL: [Stage; STAGES] = STAGE_ORDER;

    /// Its name in the API and the SDKs (`live`, `gpu`, `cores`, `memory`, `inputs`,
    /// `features`, `price`, `stake`, `avoid`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Gpu => "gpu",
            Self::Cores => "cores",
            Self::Memory => "memory",
            Self::Inputs => "inputs",
            Self::Features => "features",
            Self::Price => "price",
            Self::Stake => "stake",
            Self::Avoid => "avoid",
        }
    }
}

/// How many offers passed each filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Funnel([usize; STAGES]);

impl Funnel {
    /// Offers that passed `stage` (and every stage before it).
    pub fn passed(&self, stage: Stage) -> usize {
        self.0.get(stage as usize).copied().unwrap_or(0)
    }

    fn bump(&mut self, stage: Stage) {
        if let Some(n) = self.0.get_mut(stage as usize) {
            *n += 1;
        }
    }

    /// The first stage no offer passed.
    fn blocker(&self) -> Stage {
        STAGE_ORDER
            .into_iter()
            .find(|s| self.passed(*s) == 0)
            .unwrap_or(Stage::Avoid)
    }
}

/// Why no offer matches a job: how many offers passed each filter, and the details of the
/// filter that stopped the last of them. Its `Display` is the explanation for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch {
    /// Offers that passed each [`Stage`].
    pub funnel: Funnel,
    /// The filter that no offer passed.
    pub blocker: Stage,
    /// The job's needs, for the explanation.
    needs: Box<Needs>,
    /// Closest misses at the blocking filter.
    closest: Box<Closest>,
}

impl std::error::Error for NoMatch {}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Needs {
    gpu: Option<GpuNeeds>,
    cores: u16,
    memory: u64,
    /// The largest of the job's stdin and input files, in bytes.
    largest_input: u64,
    features: Vec<String>,
    price_cap: u128,
    sampling_ppm: u32,
    min_stake: Option<u128>,
    /// Providers the job avoids.
    avoided: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Closest {
    most_cores: u16,
    most_memory: u64,
    /// The largest `max_input_bytes` of the offers the input filter stopped.
    most_input: u64,
    cheapest: Option<(u128, PublicKey)>,
    largest_stake: Option<(u128, PublicKey)>,
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A size for people: GiB with one decimal from 1 GiB, else whole MiB, KiB or bytes.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        gib(bytes)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn describe_gpu(g: &GpuNeeds) -> String {
    let models = if g.models.is_empty() {
        "any model".to_owned()
    } else {
        g.models.join(" or ")
    };
    format!(
        "{}× {models}, ≥ {} each, compute capability ≥ {}",
        g.count,
        gib(g.min_memory_bytes),
        g.min_compute_capability
    )
}

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.funnel.passed(Stage::Live);
        if live == 0 {
            return f.write_str("no offer matches: the order book holds no live offer");
        }
        let n = |s: Stage| self.funnel.passed(s);
        let needs = &self.needs;
        let mut parts = vec![format!("{live} live offers")];
        let blocker = self.blocker as usize;
        let before = STAGE_ORDER
            .get(blocker.wrapping_sub(1))
            .map_or(0, |s| self.funnel.passed(*s));
        let applies = |s: Stage| match s {
            Stage::Live | Stage::Price | Stage::Stake => true,
            Stage::Avoid => needs.avoided > 0,
            Stage::Gpu => needs.gpu.is_some(),
            Stage::Cores => needs.cores > 0,
            Stage::Memory => needs.memory > 0,
            Stage::Inputs => needs.largest_input > 0,
            Stage::Features => !needs.features.is_empty(),
        };
        for s in [
            Stage::Gpu,
            Stage::Cores,
            Stage::Memory,
            Stage::Inputs,
            Stage::Features,
            Stage::Price,
            Stage::Stake,
        ] {
            if (s as usize) >= blocker || !applies(s) {
                continue;
            }
            parts.push(match s {
                Stage::Gpu => format!(
                    "{} have the GPU ({})",
                    n(s),
                    needs.gpu.as_ref().map(describe_gpu).unwrap_or_default()
                ),
                Stage::Cores => format!("{} have {} CPU cores", n(s), needs.cores),
                Stage::Memory => format!("{} have {} of memory", n(s), size(needs.memory)),
                Stage::Inputs => format!("{} take an input of {}", n(s), size(needs.largest_input)),
                Stage::Features => {
                    format!("{} list the features {}", n(s), needs.features.join(", "))
                }
                Stage::Stake => format!("{} have the stake for it", n(s)),
                _ => format!("{} fit your price cap of {}", n(s), needs.price_cap),
            });
        }
        let all = if before == 1 {
            "it".to_owned()
        } else {
            format!("all {before}")
        };
        let c = &self.closest;
        let why = match self.blocker {
            Stage::Live => "none is live".to_owned(),
            Stage::Gpu => format!(
                "none has the GPU you need ({})",
                needs.gpu.as_ref().map(describe_gpu).unwrap_or_default()
            ),
            Stage::Cores => format!(
                "none has {} CPU cores; the most offered is {}",
                needs.cores, c.most_cores
            ),
            Stage::Memory => format!(
                "the job asks for {} of memory; the most any offer has is {}",
                size(needs.memory),
                size(c.most_memory)
            ),
            Stage::Inputs => format!(
                "the job's largest input is {}; the largest any offer takes is {}",
                size(needs.largest_input),
                size(c.most_input)
            ),
            Stage::Features => {
                format!(
                    "none lists all of the features {}",
                    needs.features.join(", ")
                )
            }
            Stage::Price => match c.cheapest {
                Some((cost, p)) => format!(
                    "{all} cost more than your cap of {}; the cheapest is {cost} from provider {}",
                    needs.price_cap,
                    p.short()
                ),
                None => format!("{all} cost more than your cap of {}", needs.price_cap),
            },
            Stage::Stake => {
                let pct = f64::from(needs.sampling_ppm) / 10_000.0;
                match (needs.min_stake, c.largest_stake) {
                    (None, _) => "a job that is never checked (sampling rate 0%) is covered by \
                                  no stake; raise the sampling rate or lower the price cap to 0"
                        .to_owned(),
                    (Some(min), Some((stake, p))) => format!(
                        "{all} have too little stake for a job worth {} at a {pct}% sampling rate \
                         (it needs {min}); the largest is {stake} from provider {}",
                        needs.price_cap,
                        p.short()
                    ),
                    (Some(min), None) => format!(
                        "{all} have too little stake for a job worth {} (it needs {min})",
                        needs.price_cap
                    ),
                }
            }
            Stage::Avoid => format!(
                "{} on the job's list of {} providers to avoid; submit it without them to take \
                 any",
                if before == 1 {
                    "the one that fits is".to_owned()
                } else {
                    format!("all {before} that fit are")
                },
                needs.avoided
            ),
        };
        write!(f, "no offer matches: {}; {why}", parts.join(", of those "))
    }
}

/// The fields matching reads, kept apart from the offers so that the scan over every
/// live offer touches little memory.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    /// 0 for an empty slot, which is never live.
    expires_at: u64,
    memory_bytes: u64,
    /// Bit i set when the offer lists feature i of the book's feature index.
    features: u64,
    // Prices and stake as u64 keep a summary at 56 bytes (the scan is bound by memory
    // bandwidth); an offer with a larger value sets `wide` and is read from the offer.
    per_gfuel: u64,
    per_gpu_second: u64,
    stake: u64,
    /// The offer's `max_input_bytes` in whole MiB (rounded down), or [`INPUT_UNSTATED`] /
    /// [`INPUT_EXACT`]: see [`OrderBook::input_fits`].
    max_input_mib: u16,
    cpu_cores: u16,
    gpu_count: u8,
    /// The offer names held blobs: read them when the job has large inputs.
    cached: bool,
    /// The offer lists features the index has no bit for; check them by name.
    unindexed: bool,
    /// A price or the stake does not fit in 64 bits: read them from the offer.
    wide: bool,
}

/// [`Summary::max_input_mib`] of an offer that states no input limit (takes any size).
const INPUT_UNSTATED: u16 = u16::MAX;
/// [`Summary::max_input_mib`] of an offer whose limit has too many MiB: read the offer.
const INPUT_EXACT: u16 = u16::MAX - 1;

fn input_mib(max_input_bytes: u64) -> u16 {
    if max_input_bytes == 0 {
        return INPUT_UNSTATED;
    }
    u16::try_from(max_input_bytes >> 20)
        .ok()
        .filter(|m| *m < INPUT_EXACT)
        .unwrap_or(INPUT_EXACT)
}

/// Most offers holding some of a job's inputs that one match keeps beside the ranking,
/// cheapest first, to give them their price's places ([`OrderBook::find`]).
const HOLDERS_KEPT: usize = 256;

/// A GPU as matching reads it, in 8 bytes: the model interned in [`ModelIndex`], the
/// compute capability and the memory in MiB (rounded down).
#[derive(Debug, Clone, Copy, Default)]
struct CompactGpu {
    model: u16,
    cc_major: u8,
    cc_minor: u8,
    memory_mib: u32,
}

/// GPUs kept inline per offer; offers with more are matched from the full offer.
const INLINE_GPUS: usize = 4;

/// Interned GPU model names (lowercased), so that a job's model filter is evaluated once
/// per distinct model rather than once per GPU of every offer.
#[derive(Debug, Default)]
struct ModelIndex {
    names: Vec<String>,
    ids: HashMap<String, u16>,
}

/// Model id of GPUs whose model did not fit in the index; matched by name.
const UNINDEXED_MODEL: u16 = u16::MAX;

impl ModelIndex {
    fn intern(&mut self, model: &str) -> u16 {
        let lower = model.to_ascii_lowercase();
        if let Some(id) = self.ids.get(&lower) {
            return *id;
        }
        match u16::try_from(self.names.len()) {
            Ok(id) if id < UNINDEXED_MODEL => {
                self.names.push(lower.clone());
                self.ids.insert(lower, id);
                id
            }
            _ => UNINDEXED_MODEL,
        }
    }

    /// For each interned model, whether `need` accepts it.
    fn accepted(&self, need: &GpuNeeds) -> Vec<bool> {
        let needles: Vec<String> = need.models.iter().map(|m| m.to_ascii_lowercase()).collect();
        self.names
            .iter()
            .map(|n| needles.is_empty() || needles.iter().any(|m| n.contains(m.as_str())))
            .collect()
    }
}

/// Models that get a slot bitset in [`GpuSlots`]; GPUs of later models are found through
/// the `other` bitset.
const INDEXED_MODELS: usize = 256;

/// Which slots hold a GPU of each model, so that a GPU job visits only offers that have a
/// GPU of a model it accepts. Bitsets over slots: one per indexed model, plus `other` for
/// offers the inline column cannot answer (a model past the index, or many GPUs).
#[derive(Debug, Default)]
struct GpuSlots {
    by_model: Vec<Vec<u64>>,
    other: Vec<u64>,
}

fn set_bit(bits: &mut Vec<u64>, slot: usize, on: bool) {
    let (w, b) = (slot / 64, slot % 64);
    if bits.len() <= w {
        if !on {
            return;
        }
        bits.resize(w + 1, 0);
    }
    if let Some(word) = bits.get_mut(w) {
        if on {
            *word |= 1 << b;
        } else {
            *word &= !(1 << b);
        }
    }
}

impl GpuSlots {
    fn mark(&mut self, slot: usize, gpus: &[CompactGpu], count: u8, on: bool) {
        let mut other = usize::from(count) > INLINE_GPUS;
        for g in gpus.iter().take(usize::from(count)) {
            let m = usize::from(g.model);
            if m < INDEXED_MODELS {
                if self.by_model.len() <= m {
                    self.by_model.resize(m + 1, Vec::new());
                }
                if let Some(bits) = self.by_model.get_mut(m) {
                    set_bit(bits, slot, on);
                }
            } else {
                other = true;
            }
        }
        if other || !on {
            set_bit(&mut self.other, slot, on);
        }
    }

    /// Slots that may hold a GPU of an accepted model, in increasing order. (Collected
    /// rather than streamed: the plain loop is measurably faster than a flat-mapped iterator.)
    fn candidates(&self, accepted: &[bool]) -> Vec<usize> {
        let chosen: Vec<&Vec<u64>> = self
            .by_model
            .iter()
            .zip(accepted)
            .filter(|(_, ok)| **ok)
            .map(|(bits, _)| bits)
            .chain(std::iter::once(&self.other))
            .collect();
        let words = chosen.iter().map(|b| b.len()).max().unwrap_or(0);
        let mut out = Vec::with_capacity(words * 16);
        for w in 0..words {
            let mut word = chosen
                .iter()
                .fold(0u64, |acc, b| acc | b.get(w).copied().unwrap_or(0));
            while word != 0 {
                out.push(w * 64 + word.trailing_zeros() as usize);
                word &= word - 1;
            }
        }
        out
    }
}

/// Interned feature names: up to 64 get a bit.
#[derive(Debug, Default)]
struct FeatureIndex {
    bits: HashMap<String, u8>,
}

impl FeatureIndex {
    fn mask(&mut self, features: &[String]) -> (u64, bool) {
        let mut mask = 0u64;
        let mut unindexed = false;
        for f in features {
            let next = self.bits.len();
            let bit = match self.bits.get(f) {
                Some(b) => Some(*b),
                None if next < 64 => {
                    let b = next as u8;
                    self.bits.insert(f.clone(), b);
                    Some(b)
                }
                None => None,
            };
            match bit {
                Some(b) => mask |= 1 << b,
                None => unindexed = true,
            }
        }
        (mask, unindexed)
    }

    /// The mask of required features, and whether some have no bit.
    fn lookup(&self, features: &[String]) -> (u64, bool) {
        let mut mask = 0u64;
        let mut unknown = false;
        for f in features {
            match self.bits.get(f) {
                Some(b) => mask |= 1 << b,
                None => unknown = true,
            }
        }
        (mask, unknown)
    }
}

#[derive(Debug, Clone, Copy)]
struct Tombstone {
    sequence: u64,
    until: u64,
}

/// The order book. Time is passed in (unix seconds), never read from the clock, so that
/// tests and simulations control it.
#[derive(Debug)]
pub struct OrderBook {
    config: BookConfig,
    offers: Vec<Option<Signed<Offer>>>,
    summaries: Vec<Summary>,
    free: Vec<usize>,
    by_provider: HashMap<PublicKey, usize>,
    by_expiry: BTreeSet<(u64, usize)>,
    tombstones: HashMap<PublicKey, Tombstone>,
    features: FeatureIndex,
    /// A column beside `summaries`: scanning it is sequential, with no pointer to chase.
    gpus: Vec<[CompactGpu; INLINE_GPUS]>,
    models: ModelIndex,
    gpu_slots: GpuSlots,
}

impl Default for OrderBook {
    fn default() -> Self {
        Self::new(BookConfig::default())
    }
}

impl OrderBook {
    /// An empty book.
    pub fn new(config: BookConfig) -> Self {
        Self {
            config,
            offers: Vec::new(),
            summaries: Vec::new(),
            free: Vec::new(),
            by_provider: HashMap::new(),
            by_expiry: BTreeSet::new(),
            tombstones: HashMap::new(),
            features: FeatureIndex::default(),
            gpus: Vec::new(),
            models: ModelIndex::default(),
            gpu_slots: GpuSlots::default(),
        }
    }

    /// The book's configuration.
    pub fn config(&self) -> &BookConfig {
        &self.config
    }

    /// Offers held (some may have expired since the last [`OrderBook::expire`]).
    pub fn len(&self) -> usize {
        self.by_provider.len()
    }

    /// Whether the book holds no offer.
    pub fn is_empty(&self) -> bool {
        self.by_provider.is_empty()
    }

    /// The offer of `provider`, if held.
    pub fn get(&self, provider: &PublicKey) -> Option<&Signed<Offer>> {
        let slot = *self.by_provider.get(provider)?;
        self.offers.get(slot)?.as_ref()
    }

    /// Every offer held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Signed<Offer>> {
        self.offers.iter().flatten()
    }

    /// Decodes, verifies and inserts a gossiped offer.
    pub fn ingest(&mut self, bytes: &[u8], now: u64) -> Result<Insertion, OfferError> {
        let signed = Signed::<Offer>::decode(bytes)?;
        self.insert(signed.verify()?, now)
    }

    /// Decodes and inserts many offers, verifying their signatures as one batch (about
    /// twice as fast per signature as one at a time, see `docs/benchmarks.md`). If the
    /// batch fails, each signature is checked alone so that only bad offers are refused.
    pub fn ingest_batch(
        &mut self,
        items: &[&[u8]],
        now: u64,
    ) -> Vec<Result<Insertion, OfferError>> {
        let mut decoded: Vec<Result<Signed<Offer>, OfferError>> = items
            .iter()
            .map(|b| Signed::<Offer>::decode(b).map_err(OfferError::from))
            .collect();
        let mut keys = Vec::new();
        let mut sigs = Vec::new();
        let mut msgs = Vec::new();
        for d in decoded.iter_mut() {
            if let Ok(s) = d {
                match s.parts() {
                    Ok((k, sig, m)) => {
                        keys.push(k);
                        sigs.push(sig);
                        msgs.push(m);
                    }
                    Err(e) => *d = Err(e.into()),
                }
            }
        }
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let batch_ok = ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok();
        decoded
            .into_iter()
            .map(|d| {
                let signed = d?;
                let verified = if batch_ok {
                    signed.assume_verified()
                } else {
                    signed.verify()?
                };
                self.insert(verified, now)
            })
            .collect()
    }

    /// Inserts a verified offer, replacing an older one of the same provider.
    pub fn insert(&mut self, offer: Verified<Offer>, now: u64) -> Result<Insertion, OfferError> {
        let o = offer.payload();
        if o.expires_at <= now {
            return Err(OfferError::Expired {
                expires_at: o.expires_at,
                now,
            });
        }
        let ttl = o.expires_at - now;
        if ttl > self.config.max_ttl_secs {
            return Err(OfferError::TtlTooLong {
                ttl,
                max: self.config.max_ttl_secs,
            });
        }
        if let Some(t) = self.tombstones.get(&o.provider)
            && t.until > now
            && o.sequence <= t.sequence
        {
            return Err(OfferError::StaleSequence {
                got: o.sequence,
                have: t.sequence,
            });
        }
        let provider = o.provider;
        if let Some(&slot) = self.by_provider.get(&provider) {
            let have = self
                .offers
                .get(slot)
                .and_then(|x| x.as_ref())
                .map(|x| x.payload.sequence);
            let have = have.unwrap_or(0);
            if o.sequence <= have {
                return Err(OfferError::StaleSequence {
                    got: o.sequence,
                    have,
                });
            }
            self.put(slot, offer.into_signed());
            return Ok(Insertion::Replaced {
                previous_sequence: have,
            });
        }
        let mut evicted = None;
        if self.by_provider.len() >= self.config.capacity {
            self.expire(now);
        }
        if self.by_provider.len() >= self.config.capacity {
            match self.by_expiry.first().copied() {
                Some((soonest, slot)) if soonest < o.expires_at => {
                    evicted = self.remove_slot(slot);
                }
                _ => {
                    return Err(OfferError::BookFull {
                        capacity: self.config.capacity,
                    });
                }
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.offers.push(None);
                self.summaries.push(Summary::default());
                self.gpus.push([CompactGpu::default(); INLINE_GPUS]);
                self.offers.len() - 1
            }
        };
        self.by_provider.insert(provider, slot);
        self.put(slot, offer.into_signed());
        Ok(match evicted {
            Some(evicted) => Insertion::Evicted { evicted },
            None => Insertion::New,
        })
    }

    fn put(&mut self, slot: usize, signed: Signed<Offer>) {
        let o = &signed.payload;
        if let Some(old) = self.summaries.get(slot) {
            self.by_expiry.remove(&(old.expires_at, slot));
        }
        let (features, unindexed) = self.features.mask(&o.features);
        let narrow = |v: u128| u64::try_from(v).ok();
        let (pg, pgs, stake) = (
            narrow(o.prices.per_gfuel),
            narrow(o.prices.per_gpu_second),
            narrow(o.stake),
        );
        let summary = Summary {
            expires_at: o.expires_at,
            memory_bytes: o.hardware.memory_bytes,
            features,
            per_gfuel: pg.unwrap_or(u64::MAX),
            per_gpu_second: pgs.unwrap_or(u64::MAX),
            stake: stake.unwrap_or(u64::MAX),
            max_input_mib: input_mib(o.max_input_bytes),
            cached: !o.cached_blobs.is_empty(),
            wide: pg.is_none() || pgs.is_none() || stake.is_none(),
            cpu_cores: o.hardware.cpu_cores,
            gpu_count: u8::try_from(o.hardware.gpus.len()).unwrap_or(u8::MAX),
            unindexed,
        };
        let mut gpus = [CompactGpu::default(); INLINE_GPUS];
        for (c, g) in gpus.iter_mut().zip(&o.hardware.gpus) {
            *c = CompactGpu {
                model: self.models.intern(&g.model),
                cc_major: g.compute_capability.major,
                cc_minor: g.compute_capability.minor,
                memory_mib: u32::try_from(g.memory_bytes >> 20).unwrap_or(u32::MAX),
            };
        }
        if let (Some(old), Some(s)) = (self.gpus.get(slot), self.summaries.get(slot)) {
            self.gpu_slots.mark(slot, old, s.gpu_count, false);
        }
        let count = u8::try_from(o.hardware.gpus.len()).unwrap_or(u8::MAX);
        self.gpu_slots.mark(slot, &gpus, count, true);
        if let Some(x) = self.gpus.get_mut(slot) {
            *x = gpus;
        }
        self.by_expiry.insert((o.expires_at, slot));
        if let (Some(s), Some(x)) = (self.summaries.get_mut(slot), self.offers.get_mut(slot)) {
            *s = summary;
            *x = Some(signed);
        }
    }

    fn remove_slot(&mut self, slot: usize) -> Option<PublicKey> {
        let signed = self.offers.get_mut(slot)?.take()?;
        if let (Some(s), Some(g)) = (self.summaries.get_mut(slot), self.gpus.get(slot)) {
            self.by_expiry.remove(&(s.expires_at, slot));
            self.gpu_slots.mark(slot, g, s.gpu_count, false);
            *s = Summary::default();
        }
        self.by_provider.remove(&signed.payload.provider);
        self.free.push(slot);
        Some(signed.payload.provider)
    }

    /// Applies a verified withdrawal: removes the provider's offer if it is not newer than
    /// the withdrawal, and refuses older offers for the book's maximum TTL. Returns whether
    /// an offer was removed.
    pub fn withdraw(&mut self, w: &Verified<Withdrawal>, now: u64) -> bool {
        let w = w.payload();
        let Some(&slot) = self.by_provider.get(&w.provider) else {
            return false;
        };
        let seq = self
            .offers
            .get(slot)
            .and_then(|x| x.as_ref())
            .map(|x| x.payload.sequence);
        if seq.is_none_or(|s| s > w.sequence) {
            return false;
        }
        self.remove_slot(slot);
        // At most one tombstone per removed offer, and they expire: bounded by capacity.
        if self.tombstones.len() >= self.config.capacity {
            self.tombstones.retain(|_, t| t.until > now);
        }
        if self.tombstones.len() < self.config.capacity {
            let until = now.saturating_add(self.config.max_ttl_secs);
            self.tombstones.insert(
                w.provider,
                Tombstone {
                    sequence: w.sequence,
                    until,
                },
            );
        }
        true
    }

    /// Removes every offer expired at `now`. Returns how many were removed.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&(at, slot)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            if self.remove_slot(slot).is_some() {
                n += 1;
            }
        }
        if !self.tombstones.is_empty() {
            self.tombstones.retain(|_, t| t.until > now);
        }
        n
    }

    /// The best `limit` offers for `spec` at time `now`, best first; or why none fits.
    ///
    /// Filters, in order: live, GPUs (count, model, memory, compute capability), CPU
    /// cores, memory (the job's memory limit), runtime features, price (the job's most
    /// expensive run — all its fuel, and its wall time on each GPU it asks for — within
    /// its price cap) and stake (at least `value · (1 − q) / q`, `docs/protocol.md` §4.4, the
    /// value being the price cap). The input filter (after memory) applies to offers that
    /// state a `max_input_bytes`: the job's largest stdin or input file must fit it.
    ///
    /// Ranking: lowest `max_cost × (2 − reputation) × (1 + latency_ms / 1000)` first, ties by
    /// key. Then, among offers of the same cost for the job (the same prices), those holding
    /// more bytes of the job's large inputs ([`Offer::cached_blobs`], stdin and input files
    /// of at least 16 MiB, each counted once) take that cost's places first, the transfer they
    /// save; the score orders them within equal holdings. Places of one cost are never
    /// given to another, so a holder never outranks a cheaper offer it did not outrank
    /// already, nor takes more places than its price had. Of the offers holding some input
    /// but outside the first `limit`, the 256 cheapest are considered.
    pub fn find(
        &self,
        spec: &JobSpec,
        now: u64,
        observations: &dyn Observations,
        limit: usize,
    ) -> Result<Vec<Match>, NoMatch> {
        self.find_avoiding(spec, now, observations, limit, &[])
    }

    /// [`OrderBook::find`], without the offers of the providers whose EVM addresses are in
    /// `avoid` (the last filter, [`Stage::Avoid`]: a buyer re-submitting a job that a
    /// provider failed or was slow to run). When only avoided offers fit, the explanation
    /// says so.
    pub fn find_avoiding(
        &self,
        spec: &JobSpec,
        now: u64,
        observations: &dyn Observations,
        limit: usize,
        avoid: &[Address],
    ) -> Result<Vec<Match>, NoMatch> {
        // A GPU job visits only the offers that hold an accepted model. If none fits, the
        // full scan runs to count every filter for the explanation.
        if let Some(g) = spec.requirements.gpu.as_ref().filter(|g| g.count > 0) {
            let slots = self.gpu_slots.candidates(&self.models.accepted(g));
            let visits = slots
                .into_iter()
                .filter_map(|slot| self.summaries.get(slot).map(|s| (slot, s)));
            let q = Query {
                spec,
                now,
                observations,
                limit,
                avoid,
            };
            if let Ok(found) = self.scan(&q, visits, true) {
                return Ok(found);
            }
        }
        let q = Query {
            spec,
            now,
            observations,
            limit,
            avoid,
        };
        self.scan(&q, self.summaries.iter().enumerate(), false)
    }

    fn scan<'a>(
        &'a self,
        q: &Query<'_>,
        visits: impl Iterator<Item = (usize, &'a Summary)>,
        gpus_last: bool,
    ) -> Result<Vec<Match>, NoMatch> {
        let Query {
            spec,
            now,
            observations,
            limit,
            avoid,
        } = *q;
        let limit = limit.max(1);
        let req = &spec.requirements;
        let gpu = req.gpu.as_ref().filter(|g| g.count > 0);
        let (feature_mask, unknown_feature) = self.features.lookup(&req.features);
        let min_stake = min_stake_for(spec.price_cap, spec.verification.sampling_ppm);
        // The worst case a ticket allows: all the fuel, the wall time on every GPU.
        let fuel = spec.limits.fuel;
        let gpu_millis = settlement::max_gpu_millis(spec);
        // Costs are compared in 10^-9 token units to avoid a division per offer.
        let cap_nano = spec.price_cap.saturating_mul(NANO);
        let accepted_models = gpu.map(|g| self.models.accepted(g)).unwrap_or_default();
        let largest_input = spec
            .stdin
            .iter()
            .chain(spec.inputs.iter().map(|i| &i.blob))
            .map(|b| b.size)
            .max()
            .unwrap_or(0);
        // The inputs an offer may name as held, each once.
        let mut wanted: Vec<BlobRef> = Vec::new();
        for b in spec.stdin.iter().chain(spec.inputs.iter().map(|i| &i.blob)) {
            if b.size >= LARGE_BLOB_BYTES && !wanted.contains(b) {
                wanted.push(*b);
            }
        }
        let mut holders: Vec<Ranked> = Vec::new();

        let mut passed = Funnel::default();
        let mut closest = Closest::default();
        let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(limit.saturating_add(1));
        let mut prune_above = u128::MAX;
        let mut cheapest_nano = u128::MAX;

        for (slot, s) in visits {
            if s.expires_at <= now {
                continue;
            }
            passed.bump(Stage::Live);
            // The filters are a conjunction, so their order changes only the funnel. When
            // the funnel will be thrown away (the indexed pass: if it finds nothing, the full
            // scan explains why), the GPU check, the dearest, goes after the cheap ones.
            let gpus_fit = |g: &GpuNeeds| {
                s.gpu_count >= g.count && self.gpus_fit(slot, s, g, &accepted_models)
            };
            if let Some(g) = gpu
                && !gpus_last
                && !gpus_fit(g)
            {
                continue;
            }
            passed.bump(Stage::Gpu);
            closest.most_cores = closest.most_cores.max(s.cpu_cores);
            if s.cpu_cores < req.min_cpu_cores {
                continue;
            }
            passed.bump(Stage::Cores);
            closest.most_memory = closest.most_memory.max(s.memory_bytes);
            if s.memory_bytes < spec.limits.memory_bytes {
                continue;
            }
            passed.bump(Stage::Memory);
            if largest_input > 0 && !self.input_fits(slot, s, largest_input) {
                let most = self.offer_at(slot).map_or(0, |o| o.max_input_bytes);
                closest.most_input = closest.most_input.max(most);
                continue;
            }
            passed.bump(Stage::Inputs);
            if s.features & feature_mask != feature_mask
                || (unknown_feature && !self.features_fit(slot, s, &req.features))
            {
                continue;
            }
            if let Some(g) = gpu
                && gpus_last
                && !gpus_fit(g)
            {
                continue;
            }
            passed.bump(Stage::Features);
            let (per_gfuel, per_gpu_second, stake) = if s.wide {
                self.wide_values(slot)
            } else {
                (
                    u128::from(s.per_gfuel),
                    u128::from(s.per_gpu_second),
                    u128::from(s.stake),
                )
            };
            let cost_nano = settlement::cost_nano(fuel, gpu_millis, per_gfuel, per_gpu_second);
            // The provider's key sits in the full offer: read it only when needed.
            if cost_nano > cap_nano {
                if cost_nano < cheapest_nano {
                    cheapest_nano = cost_nano;
                    closest.cheapest = Some((ceil_units(cost_nano), self.provider_at(slot)));
                }
                continue;
            }
            passed.bump(Stage::Price);
            if closest.largest_stake.is_none_or(|(st, _)| stake > st) {
                closest.largest_stake = Some((stake, self.provider_at(slot)));
            }
            if min_stake.is_none_or(|m| stake < m) {
                continue;
            }
            passed.bump(Stage::Stake);
            if !avoid.is_empty()
                && self
                    .offer_at(slot)
                    .is_some_and(|o| avoid.contains(&o.evm_address))
            {
                continue;
            }
            passed.bump(Stage::Avoid);

            // The score is at least the cost, so an offer dearer than the worst kept one
            // cannot enter: skip the lookup of its reputation and latency. The bound is an
            // integer (a u128-to-float conversion per offer is slow), set a hair above the
            // worst score so that rounding never prunes an offer that could enter.
            if cost_nano > prune_above {
                continue;
            }
            let cost = cost_nano as f64 / NANO as f64;
            let provider = self.provider_at(slot);
            let stats = observations.stats(&provider);
            let rep = stats.map_or(DEFAULT_REPUTATION, |x| x.reputation.clamp(0.0, 1.0));
            let lat = stats.map_or(DEFAULT_LATENCY_MS, |x| x.latency_ms);
            let score = cost * (2.0 - rep) * (1.0 + f64::from(lat) / 1000.0);
            let held_bytes = if s.cached && !wanted.is_empty() {
                self.offer_at(slot).map_or(0, |o| o.held_bytes(&wanted))
            } else {
                0
            };
            let ranked = Ranked {
                score,
                provider,
                max_cost: ceil_units(cost_nano),
                cost_nano,
                held_bytes,
            };
            if held_bytes > 0 {
                keep_holder(&mut holders, ranked.clone());
            }
            heap.push(ranked);
            if heap.len() > limit {
                heap.pop();
            }
            if heap.len() >= limit
                && let Some(w) = heap.peek()
            {
                prune_above = (w.score * NANO as f64 * (1.0 + 1e-9)) as u128 + 1;
            }
        }

        if heap.is_empty() {
            return Err(NoMatch {
                funnel: passed,
                blocker: passed.blocker(),
                needs: Box::new(Needs {
                    gpu: gpu.cloned(),
                    cores: req.min_cpu_cores,
                    memory: spec.limits.memory_bytes,
                    largest_input,
                    features: req.features.clone(),
                    price_cap: spec.price_cap,
                    sampling_ppm: spec.verification.sampling_ppm,
                    min_stake,
                    avoided: avoid.len(),
                }),
                closest: Box::new(closest),
            });
        }
        // Ascending by (score, key): the places, best first.
        let places = heap.into_sorted_vec();
        let ranked = if holders.is_empty() {
            places
        } else {
            give_places_to_holders(places, holders)
        };
        Ok(ranked
            .into_iter()
            .map(|r| Match {
                provider: r.provider,
                max_cost: r.max_cost,
                score: r.score,
                held_bytes: r.held_bytes,
            })
            .collect())
    }

    fn offer_at(&self, slot: usize) -> Option<&Offer> {
        self.offers
            .get(slot)
            .and_then(|o| o.as_ref())
            .map(|o| &o.payload)
    }

    /// Whether the offer takes an input of `need` bytes: from the summary's MiB when they
    /// decide it, else from the offer.
    fn input_fits(&self, slot: usize, s: &Summary, need: u64) -> bool {
        let exact = || {
            self.offer_at(slot)
                .is_some_and(|o| o.max_input_bytes == 0 || need <= o.max_input_bytes)
        };
        match s.max_input_mib {
            INPUT_UNSTATED => true,
            INPUT_EXACT => exact(),
            mib => {
                // The offer's limit lies in [floor, floor + 1 MiB).
                let floor = u64::from(mib) << 20;
                if need <= floor {
                    true
                } else if need >= floor + (1 << 20) {
                    false
                } else {
                    exact()
                }
            }
        }
    }

    /// Prices and stake of an offer whose values do not fit the summary.
    fn wide_values(&self, slot: usize) -> (u128, u128, u128) {
        self.offers
            .get(slot)
            .and_then(|o| o.as_ref())
            .map_or((u128::MAX, u128::MAX, 0), |o| {
                let o = &o.payload;
                (o.prices.per_gfuel, o.prices.per_gpu_second, o.stake)
            })
    }

    fn provider_at(&self, slot: usize) -> PublicKey {
        self.offers
            .get(slot)
            .and_then(|o| o.as_ref())
            .map(|o| o.payload.provider)
            .unwrap_or_default()
    }

    fn gpus_fit(&self, slot: usize, s: &Summary, need: &GpuNeeds, accepted: &[bool]) -> bool {
        let n = usize::from(s.gpu_count);
        // The inline column answers exactly when the offer's GPUs all fit in it with their
        // models interned, and the memory need is whole MiB (then floor(bytes / MiB) ≥
        // need / MiB exactly when bytes ≥ need).
        if n > INLINE_GPUS || !need.min_memory_bytes.is_multiple_of(1 << 20) {
            return self.gpus_fit_by_name(slot, need);
        }
        let Some(gs) = self.gpus.get(slot) else {
            return false;
        };
        let need_mib = need.min_memory_bytes >> 20;
        let cc = (
            need.min_compute_capability.major,
            need.min_compute_capability.minor,
        );
        let mut fits = 0u8;
        for g in gs.iter().take(n) {
            if g.model == UNINDEXED_MODEL || g.memory_mib == u32::MAX {
                return self.gpus_fit_by_name(slot, need);
            }
            if u64::from(g.memory_mib) >= need_mib
                && (g.cc_major, g.cc_minor) >= cc
                && accepted.get(usize::from(g.model)).copied().unwrap_or(false)
            {
                fits += 1;
            }
        }
        fits >= need.count
    }

    /// The slow path, from the full offer: offers with many GPUs or models past the index.
    fn gpus_fit_by_name(&self, slot: usize, need: &GpuNeeds) -> bool {
        let Some(Some(o)) = self.offers.get(slot) else {
            return false;
        };
        need.fits(&o.payload.hardware.gpus)
    }

    fn features_fit(&self, slot: usize, s: &Summary, required: &[String]) -> bool {
        if !s.unindexed {
            return false;
        }
        let Some(Some(o)) = self.offers.get(slot) else {
            return false;
        };
        required.iter().all(|r| o.payload.features.contains(r))
    }
}

const NANO: u128 = 1_000_000_000;

/// What one match asks of the book: [`OrderBook::find_avoiding`]'s arguments.
#[derive(Clone, Copy)]
struct Query<'q> {
    spec: &'q JobSpec,
    now: u64,
    observations: &'q dyn Observations,
    limit: usize,
    avoid: &'q [Address],
}
const STAGE_ORDER: [Stage; STAGES] = [
    Stage::Live,
    Stage::Gpu,
    Stage::Cores,
    Stage::Memory,
    Stage::Inputs,
    Stage::Features,
    Stage::Price,
    Stage::Stake,
    Stage::Avoid,
];

/// [`settlement::cost`]'s rounding of a [`settlement::cost_nano`].
fn ceil_units(nano: u128) -> u128 {
    nano.div_ceil(NANO)
}

/// A candidate in the ranking heap; the heap's top is the worst kept.
#[derive(Debug, Clone)]
struct Ranked {
    score: f64,
    provider: PublicKey,
    max_cost: u128,
    /// The cost before rounding: offers with equal prices have equal costs.
    cost_nano: u128,
    held_bytes: u64,
}

/// The order in which offers of one cost take that cost's places: more held bytes first,
/// then the ranking's own order.
fn holder_order(a: &Ranked, b: &Ranked) -> Ordering {
    a.cost_nano
        .cmp(&b.cost_nano)
        .then(b.held_bytes.cmp(&a.held_bytes))
        .then(a.cmp(b))
}

/// Keeps `r` among at most [`HOLDERS_KEPT`] holders, dropping the dearest (then the one
/// holding least) when full.
fn keep_holder(holders: &mut Vec<Ranked>, r: Ranked) {
    if holders.len() < HOLDERS_KEPT {
        holders.push(r);
        return;
    }
    let worst = holders
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| holder_order(a, b))
        .map(|(i, _)| i);
    if let Some(i) = worst
        && let Some(w) = holders.get_mut(i)
        && holder_order(&r, w) == Ordering::Less
    {
        *w = r;
    }
}

/// The places (best first) given, cost by cost, to that cost's candidates in
/// [`holder_order`]: the same costs in the same places, holders first within each.
fn give_places_to_holders(places: Vec<Ranked>, holders: Vec<Ranked>) -> Vec<Ranked> {
    let mut all = places.clone();
    for h in holders {
        if !all.iter().any(|p| p.provider == h.provider) {
            all.push(h);
        }
    }
    all.sort_by(holder_order);
    let mut taken: HashMap<u128, usize> = HashMap::new();
    let mut out = Vec::with_capacity(places.len());
    for place in &places {
        let start = all.partition_point(|r| r.cost_nano < place.cost_nano);
        let n = taken.entry(place.cost_nano).or_insert(0);
        // Every place's own offer is in `all`, so each cost has enough candidates.
        let chosen = all
            .get(start + *n)
            .cloned()
            .unwrap_or_else(|| place.clone());
        *n += 1;
        out.push(chosen);
    }
    out
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(self.provider.cmp(&other.provider))
    }
}
