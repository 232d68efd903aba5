//! An in-process simulation of many Sietch nodes over libp2p's memory transport, shared by
//! the node's `gossip_sim` and `gossip_ingest` benches and its quick `tests/sim.rs`.
//!
//! Every node is a full network actor (gossipsub, Kademlia, identify, ping, AutoNAT, relay
//! client, DCUtR, request-response) with its own Noise and Yamux connections. Links are
//! slowed by each node's `forward_delay` (drawn per node from a range, so hops differ), and
//! a chosen fraction of nodes never forwards anything (`drop_forwarding`). Deliveries are
//! observed from a separate OS thread that polls every node's order book every 5 ms, so the clock
//! that measures propagation does not wait on the runtime that is being measured.

#![allow(dead_code, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ed25519_dalek::SigningKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sietch_market::book::OrderBook;
use sietch_market::{Address, Hardware, Offer, Prices, PublicKey, Signed};
use sietch_node::net::{self, NetConfig, NetStats, Network, TransportKind};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes in the network.
    pub nodes: usize,
    /// Fraction of nodes that never forward (silent droppers).
    pub dropping: f64,
    /// Offers published once the mesh has formed, each by a different honest node.
    pub offers: usize,
    /// Gap between two publications (offers overlap in flight when it is short).
    pub publish_every: Duration,
    /// Per-hop latency range; each node draws its own delay uniformly from it.
    pub delay: (Duration, Duration),
    /// Earlier nodes each node is given as bootstrap peers.
    pub bootstrap_peers: usize,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// How long to wait, after the last publication, for stragglers.
    pub tail: Duration,
    /// Longest wait for every node to have connections.
    pub mesh_timeout: Duration,
    /// Longest wait for discovery to settle after the connections have.
    pub discovery_timeout: Duration,
    /// Discovery has settled below this many Kademlia requests per node per second.
    pub quiet_discovery: f64,
    /// Each node refreshes its routing table this often, at its own moment, from the
    /// end of discovery to the end of the scenario (`None`: no refresh).
    pub refresh_every: Option<Duration>,
    /// Refreshes run this long before the first offer.
    pub refresh_warmup: Duration,
    /// First `/memory/<port>` used (scenarios in one process must not overlap).
    pub port_base: u64,
    /// Seed of the topology, the delays, the droppers and the publishers.
    pub seed: u64,
    /// Connections each node opens at most (it accepts four times as many): the node's
    /// default unless a scenario says otherwise.
    pub max_outgoing: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 100,
            dropping: 0.0,
            offers: 40,
            publish_every: Duration::from_millis(250),
            delay: (Duration::from_millis(20), Duration::from_millis(50)),
            bootstrap_peers: 3,
            heartbeat: Duration::from_millis(700),
            tail: Duration::from_secs(15),
            mesh_timeout: Duration::from_secs(120),
            discovery_timeout: Duration::from_secs(120),
            quiet_discovery: 0.5,
            refresh_every: Some(Duration::from_secs(300)),
            refresh_warmup: Duration::from_secs(20),
            port_base: 1_000_000,
            seed: 7,
            max_outgoing: NetConfig::default().max_outgoing,
        }
    }
}

/// What a simulation measured.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The configuration run.
    pub config: SimConfig,
    /// Honest (forwarding) nodes.
    pub honest: usize,
    /// Time to start every node and see each with connections.
    pub setup: Duration,
    /// Connections per node when publishing started: min, mean, max.
    pub peers: (usize, f64, usize),
    /// Per offer: time from publication until 95% of honest nodes held it (`None`: never).
    pub to_95: Vec<Option<Duration>>,
    /// Per offer: time until every honest node held it (`None`: never).
    pub to_all: Vec<Option<Duration>>,
    /// Fraction of (offer, honest node) pairs delivered by the end.
    pub delivery_honest: f64,
    /// Fraction of (offer, dropping node) pairs delivered by the end.
    pub delivery_dropping: f64,
    /// Gossip messages that passed gossipsub's duplicate filter and reached this node's
    /// validation (accepted + ignored + rejected), per node per offer, over the publishing
    /// phase. Duplicates that gossipsub drops on arrival are not counted.
    pub validated_per_node_per_offer: f64,
    /// Wall time of the publishing phase.
    pub publishing: Duration,
    /// How long discovery took to settle after the connections did (`None`: it had not
    /// within `discovery_timeout`, and the offers were published while it ran).
    pub discovery: Option<Duration>,
    /// Kademlia requests answered per node per second while publishing.
    pub discovery_rate: f64,
    /// Routing-table refreshes started (the steady state's; see `refresh_every`).
    pub refreshes: u64,
}

impl SimReport {
    /// The `q`-quantile (nearest rank) of the time to 95%, counting offers that never got
    /// there as slower than every other.
    pub fn quantile_95(&self, q: f64) -> Option<Duration> {
        quantile(&self.to_95, q)
    }

    /// The `q`-quantile of the time to reach every honest node.
    pub fn quantile_all(&self, q: f64) -> Option<Duration> {
        quantile(&self.to_all, q)
    }
}

fn quantile(xs: &[Option<Duration>], q: f64) -> Option<Duration> {
    let mut v: Vec<Option<Duration>> = xs.to_vec();
    // `None` sorts first for Option; put it last.
    v.sort_by_key(|d| (d.is_none(), *d));
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied().flatten()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A CPU offer of `key` with `sequence`.
pub fn offer(key: &SigningKey, i: usize, sequence: u64) -> Signed<Offer> {
    let o = Offer {
        provider: PublicKey::of(key),
        evm_address: Address::repeat_byte(i as u8),
        hardware: Hardware {
            cpu_cores: 8,
            memory_bytes: 16 << 30,
            gpus: vec![],
        },
        features: vec!["simd".into()],
        prices: Prices {
            per_gfuel: 1_000 + i as u128,
            per_gpu_second: 0,
        },
        stake: 1_000_000_000,
        addresses: vec![],
        sequence,
        expires_at: now_unix() + 600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    };
    Signed::sign(o, key)
}

/// A running node of the simulation.
pub struct SimNode {
    /// Its network handle.
    pub net: Network,
    /// Its signing key (its offers' provider key).
    pub key: SigningKey,
    /// Whether it never forwards.
    pub dropping: bool,
    /// Its memory address, with `/p2p/<id>`.
    pub addr: Multiaddr,
}

/// Starts `cfg.nodes` nodes, each bootstrapping to a few random earlier ones, with events
/// drained so that no queue fills.
pub fn start_nodes(cfg: &SimConfig, rng: &mut StdRng) -> anyhow::Result<Vec<SimNode>> {
    let n = cfg.nodes;
    let mut droppers: Vec<bool> = (0..n)
        .map(|i| (i as f64) < cfg.dropping * n as f64)
        .collect();
    droppers.shuffle(rng);
    let mut nodes: Vec<SimNode> = Vec::with_capacity(n);
    for (i, &dropping) in droppers.iter().enumerate() {
        let key = SigningKey::from_bytes(&rng.r#gen::<[u8; 32]>());
        let keypair = net::keypair(&key);
        let peer = PeerId::from(keypair.public());
        let listen: Multiaddr = format!("/memory/{}", cfg.port_base + i as u64).parse()?;
        let mut earlier: Vec<usize> = (0..i).collect();
        earlier.shuffle(rng);
        let bootstrap = earlier
            .iter()
            .take(cfg.bootstrap_peers)
            .filter_map(|&j| nodes.get(j).map(|n| n.addr.clone()))
            .collect();
        let (lo, hi) = cfg.delay;
        let delay = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
        let config = NetConfig {
            transport: TransportKind::Memory,
            listen: vec![listen.clone()],
            bootstrap,
            mdns: false,
            autonat_only_global: true,
            gossip_heartbeat: cfg.heartbeat,
            drop_forwarding: dropping,
            forward_delay: delay,
            max_outgoing: cfg.max_outgoing,
            max_incoming: cfg.max_outgoing * 4,
            ..NetConfig::default()
        };
        let (net, mut events) =
            Network::spawn(keypair, config).with_context(|| format!("node {i}"))?;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        nodes.push(SimNode {
            net,
            key,
            dropping,
            addr: listen.with(Protocol::P2p(peer)),
        });
    }
    Ok(nodes)
}

/// Connections per node: min, mean, max.
pub async fn peer_counts(nodes: &[SimNode]) -> anyhow::Result<(usize, f64, usize)> {
    // All at once: one at a time, each answer waits its turn behind every busy task of a
    // loaded runtime, and 500 such waits in a row take minutes.
    let counts: Vec<usize> = futures::future::try_join_all(nodes.iter().map(|n| n.net.peers()))
        .await?
        .iter()
        .map(Vec::len)
        .collect();
    let min = counts.iter().copied().min().unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(0);
    let mean = counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64;
    Ok((min, mean, max))
}

/// Every node's counters, asked of all at once (as in `peer_counts`).
async fn all_stats(nodes: &[SimNode]) -> anyhow::Result<Vec<NetStats>> {
    Ok(futures::future::try_join_all(nodes.iter().map(|n| n.net.stats())).await?)
}

/// One counter summed over the network.
fn total(stats: &[NetStats], counter: impl Fn(&NetStats) -> u64) -> u64 {
    stats.iter().map(counter).sum()
}

/// Gossip messages that reached validation (accepted, ignored or rejected).
fn validated(s: &NetStats) -> u64 {
    s.accepted + s.ignored + s.rejected
}

/// Kademlia requests answered.
fn discovery_requests(s: &NetStats) -> u64 {
    s.discovery_requests_served
}

/// Prints where set-up stands (stderr): connections per node and, over all nodes, the
/// connections opened and failed so far (a high churn shows here as opened ≫ held).
async fn setup_progress(
    nodes: &[SimNode],
    started: Instant,
    phase: &str,
    min: usize,
    mean: f64,
) -> anyhow::Result<()> {
    let stats = all_stats(nodes).await?;
    let opened = total(&stats, |s| s.connections_opened);
    let failed = total(&stats, |s| s.connections_failed);
    eprintln!(
        "  set-up {:.0} s: {phase}; connections per node min {min}, mean {mean:.1}; \
         opened {opened}, failed {failed} in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one scenario and measures it.
pub async fn run(cfg: SimConfig) -> anyhow::Result<SimReport> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let started = Instant::now();
    let nodes = start_nodes(&cfg, &mut rng)?;
    eprintln!(
        "  set-up: {} nodes started in {:.1} s",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    let honest_idx: Vec<usize> = (0..nodes.len()).filter(|&i| !nodes[i].dropping).collect();
    anyhow::ensure!(!honest_idx.is_empty(), "no honest node");

    // The mesh has formed when every node has a few connections; gossipsub then needs a
    // few heartbeats to graft its meshes.
    let want = cfg
        .bootstrap_peers
        .min(nodes.len().saturating_sub(1))
        .max(1);
    let deadline = Instant::now() + cfg.mesh_timeout;
    let mut progress = Instant::now();
    loop {
        let (min, mean, _) = peer_counts(&nodes).await?;
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            setup_progress(&nodes, started, "waiting for 3 connections each", min, mean).await?;
        }
        if min >= want || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Discovery (Kademlia, identify) keeps opening connections for a while after every node
    // has its first few; measuring during that churn measures the churn. Wait until the
    // connection count holds still for 3 s (or the mesh timeout).
    let mut last = (peer_counts(&nodes).await?.1, Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (min, mean, _) = peer_counts(&nodes).await?;
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            setup_progress(
                &nodes,
                started,
                "waiting for connections to settle",
                min,
                mean,
            )
            .await?;
        }
        if (mean - last.0).abs() > 0.05 {
            last = (mean, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    // Kademlia's bootstrap queries (every node's, all started within seconds of each
    // other) go on well after the connections hold still, and while they do they take
    // most of the CPU. A running network has them spread out (one per node every 5
    // minutes); measure that one: wait until the network answers fewer than
    // `quiet_discovery` Kademlia requests per node per second, 3 s in a row.
    let discovery = Instant::now();
    let mut served = total(&all_stats(&nodes).await?, discovery_requests);
    let mut quiet = 0;
    while discovery.elapsed() < cfg.discovery_timeout && quiet < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total(&all_stats(&nodes).await?, discovery_requests);
        let rate = now.saturating_sub(served) as f64 / nodes.len() as f64;
        served = now;
        quiet = if rate < cfg.quiet_discovery {
            quiet + 1
        } else {
            0
        };
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "  set-up {:.0} s: waiting for discovery to settle; {rate:.2} Kademlia \
                 requests per node per second",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let discovery = (quiet >= 3).then(|| discovery.elapsed());

    // The steady state's discovery: each node refreshes its routing table every
    // `refresh_every` (Kademlia's periodic bootstrap, 5 minutes), at its own moment. Those
    // refreshes start now, spread evenly over the nodes, and run for `refresh_warmup`
    // before publishing so that as many are in flight as in a running network.
    let refreshing = Arc::new(AtomicBool::new(true));
    let refresher = cfg.refresh_every.map(|every| {
        let nets: Vec<Network> = nodes.iter().map(|n| n.net.clone()).collect();
        let refreshing = refreshing.clone();
        let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
        let gap = every.div_f64(nets.len().max(1) as f64);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(gap);
            let mut n = 0u64;
            while refreshing.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(net) = nets.choose(&mut rng) {
                    let _ = net.bootstrap().await;
                    n += 1;
                }
            }
            n
        })
    });
    if refresher.is_some() {
        tokio::time::sleep(cfg.refresh_warmup).await;
    }
    tokio::time::sleep(cfg.heartbeat * 4).await;
    let setup = started.elapsed();
    let peers = peer_counts(&nodes).await?;

    // Offers, signed before the clock starts; publishers are distinct honest nodes while
    // there are enough, and each republication carries a higher sequence.
    let mut publishers = honest_idx.clone();
    publishers.shuffle(&mut rng);
    let plan: Vec<(usize, Signed<Offer>)> = (0..cfg.offers)
        .map(|j| {
            let p = publishers[j % publishers.len()];
            let node = &nodes[p];
            (p, offer(&node.key, p, 1 + j as u64))
        })
        .collect();

    let books: Vec<Arc<Mutex<OrderBook>>> = nodes.iter().map(|n| n.net.book()).collect();
    let dropping: Vec<bool> = nodes.iter().map(|n| n.dropping).collect();
    let wanted: Vec<(PublicKey, u64)> = plan
        .iter()
        .map(|(_, o)| (o.payload.provider, o.payload.sequence))
        .collect();
    let published: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; cfg.offers]));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let published = published.clone();
        let stop = stop.clone();
        std::thread::spawn(move || watch(&books, &wanted, &published, &stop))
    };

    let before = all_stats(&nodes).await?;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(cfg.publish_every);
    for (j, (p, o)) in plan.iter().enumerate() {
        tick.tick().await;
        if let Ok(mut v) = published.lock()
            && let Some(slot) = v.get_mut(j)
        {
            *slot = Some(Instant::now());
        }
        nodes[*p].net.publish_offer(o).await?;
    }
    // Wait for every honest node, or the tail.
    let tail_end = Instant::now() + cfg.tail;
    let mut arrived = Vec::new();
    while Instant::now() < tail_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if watcher.is_finished() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Ok(a) = watcher.join() {
        arrived = a;
    }
    let publishing = t0.elapsed();
    let after = all_stats(&nodes).await?;
    refreshing.store(false, Ordering::Relaxed);
    let refreshes = match refresher {
        Some(task) => task.await.unwrap_or(0),
        None => 0,
    };

    let honest = honest_idx.len();
    let droppers = nodes.len() - honest;
    let mut to_95 = Vec::new();
    let mut to_all = Vec::new();
    let mut delivered_honest = 0usize;
    let mut delivered_dropping = 0usize;
    let need = ((honest as f64) * 0.95).ceil() as usize;
    let pubs = published.lock().map(|v| v.clone()).unwrap_or_default();
    for (j, per_node) in arrived.iter().enumerate() {
        let Some(Some(at)) = pubs.get(j) else {
            continue;
        };
        let mut times: Vec<Duration> = Vec::new();
        for (i, t) in per_node.iter().enumerate() {
            match (dropping[i], t) {
                (false, Some(t)) => times.push(t.saturating_duration_since(*at)),
                (true, Some(_)) => delivered_dropping += 1,
                _ => {}
            }
        }
        delivered_honest += times.len();
        times.sort();
        to_95.push(times.get(need.max(1) - 1).copied());
        to_all.push(if times.len() == honest {
            times.last().copied()
        } else {
            None
        });
    }
    let offers = cfg.offers.max(1) as f64;
    let report = SimReport {
        honest,
        setup,
        peers,
        to_95,
        to_all,
        delivery_honest: delivered_honest as f64 / (offers * honest as f64),
        delivery_dropping: if droppers == 0 {
            1.0
        } else {
            delivered_dropping as f64 / (offers * droppers as f64)
        },
        validated_per_node_per_offer: total(&after, validated)
            .saturating_sub(total(&before, validated)) as f64
            / (nodes.len() as f64 * offers),
        publishing,
        discovery,
        discovery_rate: total(&after, discovery_requests)
            .saturating_sub(total(&before, discovery_requests)) as f64
            / (nodes.len() as f64 * publishing.as_secs_f64().max(1e-3)),
        refreshes,
        config: cfg,
    };
    for n in nodes {
        n.net.shutdown().await;
    }
    // Let the actors see their handles dropped and close their listeners.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(report)
}

/// Polls every book until every published offer is everywhere or `stop`; returns, per
/// offer and node, when the node was first seen holding the offer.
fn watch(
    books: &[Arc<Mutex<OrderBook>>],
    wanted: &[(PublicKey, u64)],
    published: &Mutex<Vec<Option<Instant>>>,
    stop: &AtomicBool,
) -> Vec<Vec<Option<Instant>>> {
    let mut arrived: Vec<Vec<Option<Instant>>> = vec![vec![None; books.len()]; wanted.len()];
    let mut missing: Vec<usize> = vec![books.len(); wanted.len()];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let live: Vec<bool> = match published.lock() {
            Ok(p) => p.iter().map(Option::is_some).collect(),
            Err(_) => break,
        };
        for (j, (provider, seq)) in wanted.iter().enumerate() {
            if !live[j] || missing[j] == 0 {
                continue;
            }
            for (i, book) in books.iter().enumerate() {
                if arrived[j][i].is_some() {
                    continue;
                }
                let held = book
                    .lock()
                    .map(|b| b.get(provider).is_some_and(|o| o.payload.sequence >= *seq))
                    .unwrap_or(false);
                if held {
                    arrived[j][i] = Some(now);
                    missing[j] -= 1;
                }
            }
        }
        if live.iter().all(|&l| l) && missing.iter().all(|&m| m == 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    arrived
}
