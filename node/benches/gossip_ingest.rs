//! Offers ingested and validated by one node through the real gossip path:
//! `cargo bench -p sietch-node --bench gossip_ingest`.
//!
//! One receiving node listens on loopback TCP (Noise, Yamux). `INGEST_PUBLISHERS` peers
//! (default 4) connect to it and publish a stream of distinct, validly signed offers, each
//! its own (sequence 1, 2, ...): gossipsub sends each message in an anonymous envelope
//! (the offer's own signature is its authentication), and the receiver's actor decodes,
//! checks and batch-verifies each offer and inserts it into the book. The figure is offers accepted
//! into the receiver's book per second of wall time (the receiver's `accepted` counter).
//!
//! Publishers send with `publish_raw`, which skips putting each offer in the publisher's own
//! book: that step is a one-at-a-time signature check on the sending side, and with every
//! node sharing the same two cores it would halve what the receiver is given. Publishers
//! subscribe to no topic, so the receiver forwards nothing back. A window of offers in
//! flight (`INGEST_WINDOW`, default 2,048, under the receiver's 4,096-message validation
//! queue) keeps the receiver from being overrun.
//!
//! Baselines measured in the same run, on the same bytes in the same order, on one thread:
//! `OrderBook::ingest_batch` in batches of 128 (what the actor calls), and `OrderBook::ingest`
//! one offer at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "shared/measure.rs"]
mod measure;
use measure::num;

use sietch_testkit::sim;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use libp2p::multiaddr::Protocol;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sietch_market::book::OrderBook;
use sietch_node::net::{self, NetConfig, NetStats, Network, OfferClass};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User plus system CPU time of this process, from `/proc/self/stat` (Linux; `None`
/// elsewhere).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn handled(s: &NetStats) -> u64 {
    s.accepted + s.ignored + s.rejected
}

fn main() -> anyhow::Result<()> {
    let publishers = num("INGEST_PUBLISHERS", 4) as usize;
    let per_publisher = num("INGEST_OFFERS", 10_000) as usize;
    let warmup = num("INGEST_WARMUP", 500) as usize;
    let window = num("INGEST_WINDOW", 2_048);
    let seed = num("INGEST_SEED", 7);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Offers, signed before any clock starts: per publisher, warm-up then measured ones,
    // with increasing sequences.
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<SigningKey> = (0..publishers)
        .map(|_| SigningKey::from_bytes(&rng.r#gen::<[u8; 32]>()))
        .collect();
    let signing = Instant::now();
    let streams: Vec<Vec<Vec<u8>>> = keys
        .iter()
        .enumerate()
        .map(|(p, k)| {
            (0..warmup + per_publisher)
                .map(|s| sim::offer(k, p, 1 + s as u64).encode())
                .collect()
        })
        .collect();
    let signing = signing.elapsed();
    let measured = (publishers * per_publisher) as u64;
    println!(
        "gossip_ingest: {publishers} publishers x {per_publisher} offers (+{warmup} warm-up \
         each), window {window}, seed {seed}, {workers} runtime threads; signing took {:.1} s",
        signing.as_secs_f64()
    );

    // Baselines: the same bytes, interleaved as the receiver sees them, one thread.
    let now = sim_now();
    let order: Vec<&[u8]> = (0..warmup + per_publisher)
        .flat_map(|s| streams.iter().map(move |st| st[s].as_slice()))
        .collect();
    let mut book = OrderBook::default();
    let t = Instant::now();
    let mut ok_batch = 0usize;
    for chunk in order.chunks(128) {
        ok_batch += book
            .ingest_batch(chunk, now)
            .iter()
            .filter(|r| r.is_ok())
            .count();
    }
    let batch_rate = ok_batch as f64 / t.elapsed().as_secs_f64();
    let mut book = OrderBook::default();
    let t = Instant::now();
    let mut ok_one = 0usize;
    for b in &order {
        ok_one += usize::from(book.ingest(b, now).is_ok());
    }
    let one_rate = ok_one as f64 / t.elapsed().as_secs_f64();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let (rate, cpu_per_offer, accepted, refused, elapsed) = rt.block_on(async {
        let rkey = SigningKey::from_bytes(&rng.r#gen::<[u8; 32]>());
        let (receiver, mut ev) = Network::spawn(net::keypair(&rkey), tcp_only())?;
        tokio::spawn(async move { while ev.recv().await.is_some() {} });
        let addr = receiver
            .wait_listening(1, Duration::from_secs(10))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("receiver not listening"))?
            .with(Protocol::P2p(receiver.peer_id()));
        let mut pubs = Vec::new();
        for k in &keys {
            let (n, mut ev) = Network::spawn(
                net::keypair(k),
                NetConfig {
                    bootstrap: vec![addr.clone()],
                    offer_classes: vec![],
                    ..tcp_only()
                },
            )?;
            tokio::spawn(async move { while ev.recv().await.is_some() {} });
            pubs.push(n);
        }
        // Each publisher waits until the receiver's subscription reached it.
        for (p, n) in pubs.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while n
                .publish_raw(OfferClass::Cpu, streams[p][0].clone())
                .await
                .is_err()
            {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "publisher {p} never saw the receiver"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let handled_now = Arc::new(AtomicU64::new(0));
        let sent_total = Arc::new(AtomicU64::new(publishers as u64));
        // Warm-up then the measured stream, as one stream per publisher; the clock starts
        // when the receiver has handled every warm-up offer.
        let mut tasks = Vec::new();
        for (p, n) in pubs.iter().enumerate() {
            let n = n.clone();
            let stream = streams[p].clone();
            let handled_now = handled_now.clone();
            let sent_total = sent_total.clone();
            tasks.push(tokio::spawn(async move {
                for bytes in stream.into_iter().skip(1) {
                    while sent_total.load(Ordering::Relaxed)
                        > handled_now.load(Ordering::Relaxed) + window
                    {
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                    while n.publish_raw(OfferClass::Cpu, bytes.clone()).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    sent_total.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let warm_total = (publishers * warmup) as u64;
        let total = warm_total + measured;
        let mut start: Option<(Instant, NetStats, Option<Duration>)> = None;
        let mut last_progress = (Instant::now(), 0u64);
        loop {
            let s = receiver.stats().await?;
            let h = handled(&s);
            handled_now.store(h, Ordering::Relaxed);
            if start.is_none() && h >= warm_total {
                start = Some((Instant::now(), s, cpu_time()));
            }
            if h >= total {
                break;
            }
            if h > last_progress.1 {
                last_progress = (Instant::now(), h);
            } else if last_progress.0.elapsed() > Duration::from_secs(10) {
                println!("receiver stalled at {h} of {total} messages");
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let end = Instant::now();
        let end_cpu = cpu_time();
        let s = receiver.stats().await?;
        for t in tasks {
            t.abort();
        }
        let (t0, s0, cpu0) = start.ok_or_else(|| anyhow::anyhow!("warm-up never finished"))?;
        let elapsed = end - t0;
        let accepted = s.accepted - s0.accepted;
        let refused = (s.ignored + s.rejected) - (s0.ignored + s0.rejected);
        let cpu = match (cpu0, end_cpu) {
            (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / accepted.max(1) as f64),
            _ => None,
        };
        Ok::<_, anyhow::Error>((
            accepted as f64 / elapsed.as_secs_f64(),
            cpu,
            accepted,
            refused,
            elapsed,
        ))
    })?;

    println!("| path | offers/s | vs gossip path |");
    println!("| --- | ---: | ---: |");
    println!(
        "| gossip: {publishers} peers -> one node over TCP, accepted into its book | {rate:.0} | 1.00 |"
    );
    println!(
        "| `OrderBook::ingest_batch` (128 per batch), one thread | {batch_rate:.0} | {:.2} |",
        batch_rate / rate
    );
    println!(
        "| `OrderBook::ingest` one at a time, one thread | {one_rate:.0} | {:.2} |",
        one_rate / rate
    );
    println!(
        "gossip path: {accepted} of {measured} offers accepted in {:.2} s ({refused} refused: stale \
         or queue full); whole-process CPU (publishers and receiver, {workers} threads) {} µs per \
         accepted offer",
        elapsed.as_secs_f64(),
        cpu_per_offer.map_or("n/a".into(), |c| format!("{c:.0}"))
    );
    Ok(())
}

fn sim_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loopback TCP only: QUIC is not what this measures.
fn tcp_only() -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")],
        ..NetConfig::loopback()
    }
}
