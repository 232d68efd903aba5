//! Choosing the providers that re-run a checked job, and the value cap.
//!
//! A re-run provider is drawn uniformly at random (from the RNG the caller passes) among the
//! candidates that are
//!
//! - live (not expired), staked, and within the **value cap**: the job's value (its price
//!   cap) is at most `stake · q / (1 − q)` ([`check_value_cap`], `docs/protocol.md` §4.4);
//! - **independent** of the original and of every provider already chosen for the same
//!   check: another ed25519 key, another EVM owner, and no address in the same network block
//!   (the same /24 for IPv4, the same /48 for IPv6).
//!
//! Blocks come from the offer's listen addresses, multiaddr strings whose `/ip4/a.b.c.d` and
//! `/ip6/…` components are read (every such component, so a relayed address counts its relay's
//! block too: excluding more is the safe side). Loopback, private (RFC 1918), shared
//! (100.64/10), link-local, unique-local, unspecified, multicast and reserved addresses are no
//! location another party can check, so they define no block. Host names (`/dns4/…`) are not
//! resolved here. An offer that lists no public address at all has no block to compare; with
//! [`SelectConfig::require_public_address`] (the default) it is never chosen, so that hiding
//! one's addresses cannot dodge the /24 rule. Local clusters, where every node listens on
//! loopback, turn it off ([`SelectConfig::local`]).
//!
//! Candidates are expected to match the job's requirements already: [`candidates`] takes them
//! from the order book's matching (hardware, features, price cap and stake), bounded.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::Rng;
use rand::seq::SliceRandom;
use sietch_market::{Address, JobSpec, Offer, OrderBook, PublicKey, max_job_value};

use crate::error::ValueCapError;

/// Most candidates taken from the order book for one selection.
pub const MAX_CANDIDATES: usize = 1024;

/// A network block: the first 24 bits of a public IPv4 address, or the first 48 of a public
/// IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetBlock {
    /// An IPv4 /24.
    V4([u8; 3]),
    /// An IPv6 /48.
    V6([u8; 6]),
}

impl std::fmt::Display for NetBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Self::V6(p) => {
                let w = |i: usize| {
                    u16::from_be_bytes([
                        p.get(i).copied().unwrap_or(0),
                        p.get(i + 1).copied().unwrap_or(0),
                    ])
                };
                write!(f, "{:x}:{:x}:{:x}::/48", w(0), w(2), w(4))
            }
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)))
}

fn v4_block(ip: Ipv4Addr) -> Option<NetBlock> {
    let [a, b, c, _] = ip.octets();
    public_v4(ip).then_some(NetBlock::V4([a, b, c]))
}

fn v6_block(ip: Ipv6Addr) -> Option<NetBlock> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_block(v4);
    }
    let s = ip.segments();
    let first = s.first().copied().unwrap_or(0);
    let local = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80;
    if local {
        return None;
    }
    let o = ip.octets();
    let mut p = [0u8; 6];
    p.copy_from_slice(o.get(..6)?);
    Some(NetBlock::V6(p))
}

/// The public network blocks of listen addresses (multiaddr strings), without repeats.
pub fn blocks<S: AsRef<str>>(addresses: &[S]) -> Vec<NetBlock> {
    let mut out = Vec::new();
    for a in addresses {
        let mut parts = a.as_ref().split('/');
        while let Some(p) = parts.next() {
            let block = match p {
                "ip4" => parts.next().and_then(|v| v.parse().ok()).and_then(v4_block),
                "ip6" => parts.next().and_then(|v| v.parse().ok()).and_then(v6_block),
                _ => None,
            };
            if let Some(b) = block
                && !out.contains(&b)
            {
                out.push(b);
            }
        }
    }
    out
}

/// Keys, owners and blocks a re-run may not come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    keys: HashSet<PublicKey>,
    owners: HashSet<Address>,
    blocks: HashSet<NetBlock>,
}

impl Exclusions {
    /// Excludes `offer`'s key, owner and blocks.
    pub fn of(offer: &Offer) -> Self {
        let mut e = Self::default();
        e.add(offer);
        e
    }

    /// Adds `offer`'s key, EVM owner and blocks.
    pub fn add(&mut self, offer: &Offer) {
        self.keys.insert(offer.provider);
        self.owners.insert(offer.evm_address);
        self.blocks.extend(blocks(&offer.addresses));
    }

    /// Adds a key alone.
    pub fn add_key(&mut self, key: PublicKey) {
        self.keys.insert(key);
    }

    /// Whether `offer` shares a key, an owner or a block with what is excluded.
    pub fn excludes(&self, offer: &Offer) -> bool {
        self.keys.contains(&offer.provider)
            || self.owners.contains(&offer.evm_address)
            || blocks(&offer.addresses)
                .iter()
                .any(|b| self.blocks.contains(b))
    }
}

/// How re-run providers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectConfig {
    /// Never choose an offer that lists no public address (see the module docs).
    pub require_public_address: bool,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            require_public_address: true,
        }
    }
}

impl SelectConfig {
    /// For clusters on one machine or LAN: offers without a public address may be chosen.
    pub const fn local() -> Self {
        Self {
            require_public_address: false,
        }
    }
}

/// The most a job may be worth to be sent to `offer` at `sampling_ppm`: `stake · q / (1 − q)`.
/// `None` means no bound (every job is checked).
pub fn value_cap(offer: &Offer, sampling_ppm: u32) -> Option<u128> {
    max_job_value(offer.stake, sampling_ppm)
}

/// Refuses to send `spec` to `offer` if the job's value (its price cap) is over the value cap
/// of the offer's stake. The node calls it before sending any job, originals and re-runs alike.
pub fn check_value_cap(spec: &JobSpec, offer: &Offer) -> Result<(), ValueCapError> {
    let ppm = spec.verification.sampling_ppm;
    match value_cap(offer, ppm) {
        Some(cap) if spec.price_cap > cap => Err(ValueCapError::OverCap {
            value: spec.price_cap,
            cap,
            stake: offer.stake,
            ppm,
        }),
        _ => Ok(()),
    }
}

/// Up to `max` (at most [`MAX_CANDIDATES`]) offers of `book` that can run `spec` at `now`:
/// the book's matching, which filters on hardware, features, price cap and stake.
pub fn candidates<'a>(book: &'a OrderBook, spec: &JobSpec, now: u64, max: usize) -> Vec<&'a Offer> {
    let max = max.min(MAX_CANDIDATES);
    match book.find(spec, now, &(), max) {
        Ok(found) => found
            .iter()
            .filter_map(|m| book.get(&m.provider).map(|s| &s.payload))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Draws up to `count` re-run providers for `spec` from `candidates`, at random, each
/// independent of `exclusions` and of the others drawn (see the module docs).
pub fn select<'a, R: Rng + ?Sized>(
    candidates: &[&'a Offer],
    spec: &JobSpec,
    now: u64,
    exclusions: &Exclusions,
    count: usize,
    config: &SelectConfig,
    rng: &mut R,
) -> Vec<&'a Offer> {
    let mut eligible: Vec<&'a Offer> = candidates
        .iter()
        .take(MAX_CANDIDATES)
        .copied()
        .filter(|o| {
            o.expires_at > now
                && o.stake > 0
                && check_value_cap(spec, o).is_ok()
                && !(config.require_public_address && blocks(&o.addresses).is_empty())
                && !exclusions.excludes(o)
        })
        .collect();
    eligible.shuffle(rng);
    let mut taken = exclusions.clone();
    let mut out = Vec::with_capacity(count.min(eligible.len()));
    for o in eligible {
        if out.len() >= count {
            break;
        }
        if !taken.excludes(o) {
            taken.add(o);
            out.push(o);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use sietch_market::{Hardware, Prices, VerificationPolicy};

    fn offer(n: u8, owner: u8, addresses: &[&str]) -> Offer {
        Offer {
            provider: PublicKey([n; 32]),
            evm_address: Address::repeat_byte(owner),
            hardware: Hardware::default(),
            features: vec![],
            prices: Prices::default(),
            stake: 1_000,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            sequence: 1,
            expires_at: 100,
            max_input_bytes: 0,
            cached_blobs: vec![],
        }
    }

    fn spec(value: u128) -> JobSpec {
        JobSpec {
            module: Default::default(),
            args: vec![],
            env: vec![],
            stdin: None,
            inputs: vec![],
            limits: sietch_market::Limits {
                fuel: 1,
                memory_bytes: 1,
                wall_time_ms: 1,
                output_bytes: 1,
            },
            requirements: Default::default(),
            verification: VerificationPolicy::default(),
            price_cap: value,
            deadline: 100,
        }
    }

    #[test]
    fn blocks_from_multiaddrs() {
        let b = blocks(&[
            "/ip4/203.0.113.7/tcp/4001",
            "/ip4/203.0.113.9/udp/4001/quic-v1",
            "/ip4/198.51.100.1/tcp/4001/p2p/12D3KooW/p2p-circuit",
            "/ip6/2001:db8:1:2::5/tcp/4001",
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/::ffff:192.0.2.4/tcp/1",
            "/dns4/example.com/tcp/1",
            "/ip4/not-an-ip/tcp/1",
            "garbage",
            "",
        ]);
        assert_eq!(
            b,
            vec![
                NetBlock::V4([203, 0, 113]),
                NetBlock::V4([198, 51, 100]),
                NetBlock::V6([0x20, 0x01, 0x0d, 0xb8, 0, 1]),
                NetBlock::V4([192, 0, 2]),
            ]
        );
        assert_eq!(b[2].to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn never_the_original_its_owner_or_its_block() {
        let original = offer(1, 1, &["/ip4/203.0.113.7/tcp/4001"]);
        let same_key = Offer {
            evm_address: Address::repeat_byte(9),
            addresses: vec!["/ip4/192.0.2.1/tcp/1".into()],
            ..original.clone()
        };
        let same_owner = offer(2, 1, &["/ip4/192.0.2.2/tcp/1"]);
        let same_block = offer(3, 3, &["/ip4/203.0.113.200/tcp/1"]);
        let no_address = offer(4, 4, &["/ip4/127.0.0.1/tcp/1"]);
        let fine = offer(5, 5, &["/ip4/198.51.100.1/tcp/1"]);
        let all = [&same_key, &same_owner, &same_block, &no_address, &fine];
        let ex = Exclusions::of(&original);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let got = select(
                &all,
                &spec(10),
                0,
                &ex,
                5,
                &SelectConfig::default(),
                &mut rng,
            );
            assert_eq!(got, vec![&fine]);
        }
        let local = select(&all, &spec(10), 0, &ex, 5, &SelectConfig::local(), &mut rng);
        assert_eq!(local.len(), 2);
        assert!(local.contains(&&no_address));
    }

    #[test]
    fn picks_are_independent_of_each_other() {
        // Ten offers in two /24s and, across them, owners that repeat: at most one per block.
        let offers: Vec<Offer> = (0..10u8)
            .map(|i| {
                let addr = format!("/ip4/192.0.{}.{}/tcp/1", i % 2, 10 + i);
                offer(10 + i, 10 + i % 3, &[addr.as_str()])
            })
            .collect();
        let refs: Vec<&Offer> = offers.iter().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..50 {
            let got = select(
                &refs,
                &spec(10),
                0,
                &Exclusions::default(),
                10,
                &SelectConfig::default(),
                &mut rng,
            );
            assert_eq!(got.len(), 2, "one per /24");
            assert_ne!(got[0].evm_address, got[1].evm_address);
        }
    }

    #[test]
    fn uniform_among_the_eligible() {
        let offers: Vec<Offer> = (0..4u8)
            .map(|i| offer(i, i, &[format!("/ip4/192.0.{i}.1/tcp/1").as_str()]))
            .collect();
        let refs: Vec<&Offer> = offers.iter().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut counts = [0u32; 4];
        for _ in 0..4_000 {
            let got = select(
                &refs,
                &spec(10),
                0,
                &Exclusions::default(),
                1,
                &SelectConfig::default(),
                &mut rng,
            );
            counts[usize::from(got[0].provider.0[0])] += 1;
        }
        // Each is Binomial(4000, 1/4): mean 1000, sd 27.4; 5 sd either side.
        assert!(
            counts.iter().all(|c| (863..=1137).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn value_cap_and_liveness() {
        // q = 10%: a stake of 1,000 covers jobs worth up to 1,000 · 0.1 / 0.9 = 111.
        let o = offer(1, 1, &["/ip4/192.0.2.1/tcp/1"]);
        assert_eq!(value_cap(&o, 100_000), Some(111));
        assert!(check_value_cap(&spec(111), &o).is_ok());
        assert_eq!(
            check_value_cap(&spec(112), &o),
            Err(ValueCapError::OverCap {
                value: 112,
                cap: 111,
                stake: 1_000,
                ppm: 100_000
            })
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let cfg = SelectConfig::default();
        let none = Exclusions::default();
        assert!(select(&[&o], &spec(112), 0, &none, 1, &cfg, &mut rng).is_empty());
        assert!(
            select(&[&o], &spec(10), 100, &none, 1, &cfg, &mut rng).is_empty(),
            "expired"
        );
        let unstaked = Offer {
            stake: 0,
            ..o.clone()
        };
        assert!(select(&[&unstaked], &spec(0), 0, &none, 1, &cfg, &mut rng).is_empty());
        // Every job checked (q = 100%): no cap.
        let mut all = spec(u128::MAX);
        all.verification.sampling_ppm = 1_000_000;
        assert!(check_value_cap(&all, &o).is_ok());
    }
}
