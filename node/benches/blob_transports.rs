//! A model-sized blob streamed between two libp2p nodes over TCP (noise, yamux) and over
//! QUIC (rustls, its own streams), against a plain loopback TCP copy of the same bytes in
//! the same run: `cargo bench -p sietch-node --bench blob_transports` (about 30 s once
//! built; no model needed). docs/benchmarks.md, "Model transfer over QUIC".
//!
//! One serving node holds a blob of `BLOB_MIB` MiB (default 94, the model's size); one client
//! connected to it over TCP only and one over QUIC only each fetch it `BLOB_FETCHES` times
//! (default 3, median) with `Network::fetch_blob` (`/sietch/blob-stream/1`, streamed into
//! memory, hashed on the way). The baseline is the same bytes over one plain loopback TCP
//! connection, median of 3. CPU time of the whole process per fetch says how much work per
//! byte each transport does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub,
    dead_code
)]

#[path = "../tests/blob_source/mod.rs"]
mod blob_source;
#[path = "shared/measure.rs"]
mod measure;

use std::sync::Arc;
use std::time::{Duration, Instant};

use blob_source::{Source, blob, serving};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use measure::{cpu_secs, load_average, mb_s, median, num, tcp_copy};
use sietch_node::net::{Network, is_quic};
use sietch_testkit::net::{TestNode, eventually, start, test_config};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server's listen address of the kind `quic`, with its peer id.
async fn address(server: &TestNode, quic: bool) -> Multiaddr {
    let addrs = server
        .net
        .wait_listening(2, Duration::from_secs(10))
        .await
        .unwrap();
    addrs
        .into_iter()
        .find(|a| is_quic(a) == quic)
        .expect("the server listens on TCP and QUIC")
        .with(Protocol::P2p(server.net.peer_id()))
}

/// A client that knows the server only at `addr`, connected to it.
async fn client(i: u32, server: &TestNode, addr: Multiaddr) -> Network {
    let c = start(i, test_config()).await;
    let peer = server.net.peer_id();
    c.net.add_address(peer, addr.clone()).await.unwrap();
    c.net.dial(addr).await.unwrap();
    let n = c.net.clone();
    eventually("the client connects", Duration::from_secs(20), || {
        let n = n.clone();
        async move { n.peers().await.unwrap().contains(&peer) }
    })
    .await;
    c.net
}

/// Fetches the blob `hash` from `server` `times` times: MB/s of each, and CPU seconds per
/// fetch.
async fn fetches(
    net: &Network,
    server: &TestNode,
    hash: sietch_market::B256,
    len: usize,
    times: u64,
) -> (Vec<f64>, f64) {
    let mut speeds = Vec::new();
    let cpu0 = cpu_secs();
    for _ in 0..times {
        let t = Instant::now();
        let got = net
            .fetch_blob(server.net.peer_id(), hash, |_, _| {})
            .await
            .unwrap();
        let took = t.elapsed();
        assert!(got.streamed && got.bytes.len() == len);
        speeds.push(mb_s(len as u64, took.as_secs_f64()));
    }
    (speeds, (cpu_secs() - cpu0) / times as f64)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let len = usize::try_from(num("BLOB_MIB", 94))? << 20;
        let times = num("BLOB_FETCHES", 3).max(1);
        let (hash, bytes) = blob(len, 7);
        let source = Arc::new(Source::of([(hash, bytes.clone())]));
        let server = serving(70, source, test_config()).await;
        let over_tcp = client(71, &server, address(&server, false).await).await;
        let over_quic = client(72, &server, address(&server, true).await).await;
        // One fetch each first: connections warm, buffers grown.
        fetches(&over_tcp, &server, hash, len, 1).await;
        fetches(&over_quic, &server, hash, len, 1).await;

        let shared: Arc<[u8]> = bytes.into();
        let mut copies = Vec::new();
        let cpu0 = cpu_secs();
        for _ in 0..3 {
            let d = tcp_copy(shared.clone()).await?;
            copies.push(mb_s(len as u64, d.as_secs_f64()));
        }
        let copy_cpu = (cpu_secs() - cpu0) / 3.0;
        let (mut tcp, tcp_cpu) = fetches(&over_tcp, &server, hash, len, times).await;
        let (mut quic, quic_cpu) = fetches(&over_quic, &server, hash, len, times).await;
        let base = median(&mut copies);
        let (t, q) = (median(&mut tcp), median(&mut quic));
        eprintln!(
            "loopback TCP {copies:.0?} MB/s; libp2p TCP {tcp:.0?}; QUIC {quic:.0?}; load average {}",
            load_average()
        );
        println!("| transfer of {} MiB | MB/s (median of {times}) | CPU s per transfer (whole process) | vs. loopback TCP copy |", len >> 20);
        println!("| --- | ---: | ---: | ---: |");
        println!("| plain loopback TCP copy (baseline, median of 3) | {base:.0} | {copy_cpu:.2} | 1.00× |");
        println!("| libp2p over TCP (noise, yamux), `fetch_blob` | {t:.0} | {tcp_cpu:.2} | {:.2}× |", t / base);
        println!("| libp2p over QUIC (rustls), `fetch_blob` | {q:.0} | {quic_cpu:.2} | {:.2}× |", q / base);
        println!("QUIC / TCP (libp2p): {:.2}×", q / t.max(1e-9));
        anyhow::Ok(())
    })
}
