//! Blob streams (`/sietch/blob-stream/1`) between real libp2p nodes on loopback that
//! break: a transfer resumes from where it stopped after the serving node is killed
//! mid-stream and restarted on the same address, and after a stream stalls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod blob_source;

use std::sync::Arc;
use std::time::Duration;

use blob_source::{Source, blob, connect, serving};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use sietch_node::net::{self, NetConfig, Network};
use sietch_node::store::Blobs;
use sietch_testkit::net::{eventually, key, start, test_config};
use tokio::sync::mpsc;

/// The TCP address a node listens on (`/p2p/` not included).
fn tcp_only(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_after_the_serving_node_is_killed_and_restarted() {
    let (hash, bytes) = blob(12 << 20, 2);
    let cut_at = 5 << 20;
    let (cut_tx, mut cut_rx) = mpsc::channel(1);
    let first_life = Arc::new(Source::of([(hash, bytes.clone())]).pausing(
        cut_at,
        Duration::from_millis(400),
        Some(cut_tx),
    ));
    let server = serving(43, first_life.clone(), test_config()).await;
    let server_peer = server.net.peer_id();
    let listen = tcp_only(&server.addr);
    let client = start(44, test_config()).await;
    connect(&client.net, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Blobs::open(dir.path().join("blobs"), 256 << 20).unwrap();

    // Kill the server while it serves the chunk at `cut_at`, and start it again on the same
    // address with the same key.
    let second_life = Arc::new(Source::of([(hash, bytes.clone())]));
    let restarter = {
        let second_life = second_life.clone();
        let client = client.net.clone();
        tokio::spawn(async move {
            cut_rx.recv().await.unwrap();
            drop(server);
            eventually(
                "the client sees the server gone",
                Duration::from_secs(10),
                || {
                    let client = client.clone();
                    async move { !client.peers().await.unwrap().contains(&server_peer) }
                },
            )
            .await;
            let (net, events) = Network::spawn(
                net::keypair(&key(43)),
                NetConfig {
                    listen: vec![listen],
                    blobs: Some(second_life),
                    ..test_config()
                },
            )
            .unwrap();
            net.wait_listening(1, Duration::from_secs(10))
                .await
                .unwrap();
            (net, events)
        })
    };
    let fetched = client
        .net
        .fetch_blob_into(server_peer, hash, store.writer(&hash), |_, _| {})
        .await
        .unwrap();
    let _restarted = restarter.await.unwrap();
    assert!(fetched.streamed);
    assert!(fetched.resumes >= 1, "the transfer never broke");
    store.commit(fetched.sink).unwrap();
    assert!(
        store.get(&hash).unwrap().unwrap() == bytes,
        "stored altered"
    );
    // The restarted node was asked from where the first stopped, not from the start.
    let asked = second_life.asked();
    assert!(
        asked.first().is_some_and(|o| *o > 0 && *o <= cut_at),
        "the second life was asked {asked:?}"
    );
    assert!(first_life.asked().iter().all(|o| *o <= cut_at + (1 << 20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_given_up_and_resumed() {
    let (hash, bytes) = blob(6 << 20, 3);
    let source = Arc::new(Source::of([(hash, bytes.clone())]).pausing(
        3 << 20,
        Duration::from_millis(2500),
        None,
    ));
    let server = serving(45, source.clone(), test_config()).await;
    let client = start(
        46,
        NetConfig {
            blob_stall: Duration::from_millis(700),
            ..test_config()
        },
    )
    .await;
    connect(&client.net, &server).await;
    let started = tokio::time::Instant::now();
    let fetched = client
        .net
        .fetch_blob(server.net.peer_id(), hash, |_, _| {})
        .await
        .unwrap();
    assert!(fetched.bytes == bytes);
    assert!(fetched.resumes >= 1, "the stall went unnoticed");
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "the client waited out the stall: {:?}",
        started.elapsed()
    );
    // The second stream asked from where the first stalled.
    let asked = source.asked();
    assert!(asked.iter().filter(|o| **o == 0).count() == 1, "{asked:?}");
}
