//! Offer propagation over many in-process nodes (libp2p memory transport, per-hop delay,
//! silent droppers): `cargo bench -p sietch-node --bench gossip_sim`.
//!
//! Scenarios are chosen with environment variables (or `--nodes`, `--drop`, `--offers`,
//! `--seed` after `--`):
//!
//! - `SIM_NODES` node counts, comma-separated (default `100`);
//! - `SIM_DROP` fractions of nodes that never forward, comma-separated (default `0,0.2`);
//! - `SIM_OFFERS` offers published per scenario (default 40), `SIM_EVERY_MS` the gap
//!   between publications (default 250);
//! - `SIM_DELAY_MS` per-hop delay range `lo-hi` (default `20-50`), `SIM_HEARTBEAT_MS`
//!   gossipsub's heartbeat (default 700), `SIM_BOOTSTRAP` bootstrap peers per node
//!   (default 3), `SIM_SEED` (default 7), `SIM_MAX_OUT` connections each node opens at
//!   most (default: the node's, 8; each accepts four times as many);
//! - `SIM_DISCOVERY_WAIT_S` how long to wait, at most, after the connections hold still,
//!   for Kademlia's start-up bootstraps to finish (the network answering fewer than 0.5
//!   Kademlia requests per node per second, 3 s in a row) before publishing (default 120;
//!   0 measures a network that is still discovering itself); `SIM_REFRESH_S` each node's
//!   routing-table refresh period in the steady state that follows (default 300, the
//!   node's; 0: none), refreshes spread over the nodes and running 20 s before the first
//!   offer.
//!
//! Each row prints the time until 95% of honest nodes hold an offer (p50, p95 and the
//! slowest over the offers), the same in mean per-hop delays, the time until every honest
//! node holds it, the delivery ratio, and gossip messages validated per node per offer.
//! The baseline in the same run is the scenario of the same size without droppers: its
//! p95 is the denominator of the last column.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use sietch_testkit::sim;

use std::collections::HashMap;
use std::time::Duration;

use sim::{SimConfig, SimReport};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, args: &[String], flag: &str) -> Option<String> {
    if let Some(i) = args.iter().position(|a| a == flag)
        && let Some(v) = args.get(i + 1)
    {
        return Some(v.clone());
    }
    std::env::var(name).ok()
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.0}", d.as_secs_f64() * 1e3),
        None => "never".into(),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let nodes: Vec<usize> = list(&env_or("SIM_NODES", &args, "--nodes").unwrap_or("100".into()));
    let drops: Vec<f64> = list(&env_or("SIM_DROP", &args, "--drop").unwrap_or("0,0.2".into()));
    let num = |name: &str, flag: &str, default: u64| -> u64 {
        env_or(name, &args, flag)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let offers = num("SIM_OFFERS", "--offers", 40) as usize;
    let seed = num("SIM_SEED", "--seed", 7);
    let every = Duration::from_millis(num("SIM_EVERY_MS", "--every", 250));
    let heartbeat = Duration::from_millis(num("SIM_HEARTBEAT_MS", "--heartbeat", 700));
    let bootstrap = num("SIM_BOOTSTRAP", "--bootstrap", 3) as usize;
    let max_out = num(
        "SIM_MAX_OUT",
        "--max-out",
        u64::from(SimConfig::default().max_outgoing),
    ) as u32;
    let discovery_wait = Duration::from_secs(num("SIM_DISCOVERY_WAIT_S", "--discovery-wait", 120));
    let refresh = num("SIM_REFRESH_S", "--refresh", 300);
    let delay = env_or("SIM_DELAY_MS", &args, "--delay").unwrap_or("20-50".into());
    let (lo, hi) = match delay.split_once('-') {
        Some((a, b)) => (a.parse::<u64>()?, b.parse::<u64>()?),
        None => (delay.parse::<u64>()?, delay.parse::<u64>()?),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;

    println!(
        "gossip_sim: seed {seed}, {offers} offers per scenario one every {} ms, per-hop delay \
         {lo}-{hi} ms (per node), heartbeat {} ms, {bootstrap} bootstrap peers, {workers} \
         runtime threads, at most {max_out} connections out per node",
        every.as_millis(),
        heartbeat.as_millis()
    );
    println!(
        "| nodes | dropping | setup s (discovery) | peers min/mean/max | to 95% p50 ms | p95 ms | max ms \
         | p95 in hops | to 100% p95 ms | delivery honest | delivery droppers | validated msgs \
         / node / offer | Kademlia req / node / s (refreshes) | p95 vs no droppers |"
    );
    println!(
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut baselines: HashMap<usize, Duration> = HashMap::new();
    let mut port_base = 1_000_000u64;
    for &n in &nodes {
        for &d in &drops {
            let cfg = SimConfig {
                nodes: n,
                dropping: d,
                offers,
                publish_every: every,
                delay: (Duration::from_millis(lo), Duration::from_millis(hi)),
                bootstrap_peers: bootstrap,
                heartbeat,
                port_base,
                seed,
                max_outgoing: max_out,
                discovery_timeout: discovery_wait,
                refresh_every: (refresh > 0).then(|| Duration::from_secs(refresh)),
                ..SimConfig::default()
            };
            port_base += 100_000;
            let r: SimReport = rt.block_on(sim::run(cfg))?;
            let p95 = r.quantile_95(0.95);
            if d == 0.0
                && let Some(p) = p95
            {
                baselines.insert(n, p);
            }
            let hop = (lo + hi) as f64 / 2.0;
            let ratio = match (p95, baselines.get(&n)) {
                (Some(p), Some(b)) if d > 0.0 => {
                    format!("{:.2}", p.as_secs_f64() / b.as_secs_f64())
                }
                (Some(_), Some(_)) => "1.00 (baseline)".into(),
                _ => "-".into(),
            };
            println!(
                "| {n} | {:.0}% | {:.1} ({}) | {}/{:.1}/{} | {} | {} | {} | {} | {} | {:.4}% | {:.2}% | {:.2} | {:.2} ({}) | {ratio} |",
                d * 100.0,
                r.setup.as_secs_f64(),
                r.discovery.map_or("still running".into(), |d| format!(
                    "settled in {:.0} s",
                    d.as_secs_f64()
                )),
                r.peers.0,
                r.peers.1,
                r.peers.2,
                ms(r.quantile_95(0.5)),
                ms(p95),
                ms(r.quantile_95(1.0)),
                p95.map_or("-".into(), |p| format!(
                    "{:.1}",
                    p.as_secs_f64() * 1e3 / hop
                )),
                ms(r.quantile_all(0.95)),
                r.delivery_honest * 100.0,
                r.delivery_dropping * 100.0,
                r.validated_per_node_per_offer,
                r.discovery_rate,
                r.refreshes,
            );
        }
    }
    Ok(())
}
