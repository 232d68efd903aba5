//! Connect plus first request on loopback, over TCP (Noise, Yamux) and over QUIC, in round
//! trips: `cargo bench -p sietch-node --bench connect_rtt`.
//!
//! For each trial a fresh client node (new key, so no connection or session is reused)
//! dials the server and at once asks it for a blob chunk it does not hold; the time from
//! the dial to the `NotFound` answer is "connect + first request". Then the client asks
//! `CONNECT_RTT_SAMPLES` more times on the established connection; their median is the
//! round trip of one request (the baseline of the same run), and the first figure divided
//! by it is the connect cost in round trips. `CONNECT_TRIALS` (default 30) trials per
//! transport; medians and p90 are printed.
//!
//! On loopback a network round trip costs microseconds, so a request's "round trip" here is
//! mostly the two nodes' processing (stream open, protocol negotiation, codec, actor hops),
//! and the connect figure is dominated by the handshake's cryptography, not by the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "shared/measure.rs"]
mod measure;
use measure::num;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sietch_market::B256;
use sietch_node::net::{self, BlobReply, BlobRequest, NetConfig, Network};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn config(listen: &str) -> NetConfig {
    NetConfig {
        listen: vec![listen.parse().expect("address")],
        ..NetConfig::loopback()
    }
}

async fn spawn(key: &SigningKey, listen: &str) -> anyhow::Result<(Network, Multiaddr)> {
    let (n, mut ev) = Network::spawn(net::keypair(key), config(listen))?;
    tokio::spawn(async move { while ev.recv().await.is_some() {} });
    let addr = n
        .wait_listening(1, Duration::from_secs(10))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("not listening"))?;
    let addr = addr.with(Protocol::P2p(n.peer_id()));
    Ok((n, addr))
}

fn ask() -> BlobRequest {
    BlobRequest {
        hash: B256::repeat_byte(0x5a),
        offset: 0,
        max_len: 1024,
    }
}

struct Row {
    connect: Vec<Duration>,
    rtt: Vec<Duration>,
    ratio: Vec<f64>,
}

async fn measure(
    rng: &mut StdRng,
    listen: &str,
    trials: usize,
    samples: usize,
) -> anyhow::Result<Row> {
    let (server, addr) = spawn(&SigningKey::from_bytes(&rng.r#gen()), listen).await?;
    let mut row = Row {
        connect: vec![],
        rtt: vec![],
        ratio: vec![],
    };
    // One untimed trial first, so that lazily built state (allocators, thread pools) does
    // not count.
    for trial in 0..=trials {
        let (client, _) = spawn(&SigningKey::from_bytes(&rng.r#gen()), listen).await?;
        let t = Instant::now();
        client.dial(addr.clone()).await?;
        let first = client.blob_chunk(server.peer_id(), ask()).await?;
        let connect = t.elapsed();
        anyhow::ensure!(first == BlobReply::NotFound, "unexpected reply {first:?}");
        let mut rtts = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            client.blob_chunk(server.peer_id(), ask()).await?;
            rtts.push(t.elapsed());
        }
        let rtt = quantile(&mut rtts, 0.5);
        if trial > 0 {
            row.connect.push(connect);
            row.rtt.push(rtt);
            row.ratio
                .push(connect.as_secs_f64() / rtt.as_secs_f64().max(1e-9));
        }
        client.shutdown().await;
    }
    server.shutdown().await;
    Ok(row)
}

fn main() -> anyhow::Result<()> {
    let trials = num("CONNECT_TRIALS", 30) as usize;
    let samples = num("CONNECT_RTT_SAMPLES", 9) as usize;
    let seed = num("CONNECT_SEED", 7);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let mut rng = StdRng::seed_from_u64(seed);
    println!(
        "connect_rtt: {trials} trials per transport, round trip = median of {samples} requests \
         on the established connection, seed {seed}, {workers} runtime threads"
    );
    println!(
        "| transport | connect + first request p50 µs | p90 µs | request on open connection p50 µs \
         | connect in round trips p50 | p90 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, listen) in [
        ("TCP + Noise + Yamux", "/ip4/127.0.0.1/tcp/0"),
        ("QUIC v1", "/ip4/127.0.0.1/udp/0/quic-v1"),
    ] {
        let mut r = rt.block_on(measure(&mut rng, listen, trials, samples))?;
        let mut ratio: Vec<Duration> = r
            .ratio
            .iter()
            .map(|x| Duration::from_secs_f64(*x))
            .collect();
        let r50 = quantile(&mut ratio, 0.5).as_secs_f64();
        let r90 = quantile(&mut ratio, 0.9).as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {r50:.1} | {r90:.1} |",
            us(quantile(&mut r.connect, 0.5)),
            us(quantile(&mut r.connect, 0.9)),
            us(quantile(&mut r.rtt, 0.5)),
        );
    }
    Ok(())
}
