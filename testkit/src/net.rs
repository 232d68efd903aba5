//! Real libp2p nodes on loopback for the node's network tests (`node/tests/net.rs`,
//! `net_doors.rs`, `net_versions.rs`, `net_mixed_versions.rs`): a [`Network`] per test key,
//! started and waited for, the offers they gossip, and the waits those tests share.

#![allow(clippy::panic, clippy::expect_used)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use sietch_market::{Address, Hardware, Offer, Prices, PublicKey};
use sietch_node::net::version::{CURRENT, Version};
use sietch_node::net::{self, NetConfig, NetEvent, Network};
use tokio::sync::mpsc;

/// One network actor under test, with its events and its TCP address (`/p2p/` included).
pub struct TestNode {
    /// The node's handle.
    pub net: Network,
    /// Its events.
    pub events: mpsc::Receiver<NetEvent>,
    /// Where to dial it.
    pub addr: Multiaddr,
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `i`-th test key (also the node's libp2p identity).
pub fn key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(i.to_be_bytes()) {
        *s = b;
    }
    if let Some(last) = seed.last_mut() {
        *last = 0x77;
    }
    SigningKey::from_bytes(&seed)
}

/// An offer of key `i` (CPU only, valid for ten minutes).
pub fn offer(i: u32, sequence: u64) -> Offer {
    Offer {
        provider: PublicKey::of(&key(i)),
        evm_address: Address::repeat_byte(i as u8),
        hardware: Hardware {
            cpu_cores: 8,
            memory_bytes: 16 << 30,
            gpus: vec![],
        },
        features: vec!["simd".into()],
        prices: Prices {
            per_gfuel: 1_000 + u128::from(i),
            per_gpu_second: 0,
        },
        stake: 1_000_000_000,
        addresses: vec![],
        sequence,
        expires_at: now() + 600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    }
}

/// Loopback settings with a fast gossip heartbeat.
pub fn test_config() -> NetConfig {
    NetConfig {
        gossip_heartbeat: Duration::from_millis(200),
        ..NetConfig::loopback()
    }
}

/// [`test_config`] speaking `version`.
pub fn at(version: Version) -> NetConfig {
    NetConfig {
        version,
        ..test_config()
    }
}

/// The version `major.minor.patch`.
pub fn v(major: u32, minor: u32, patch: u32) -> Version {
    Version {
        major,
        minor,
        patch,
    }
}

/// Where to dial `net`: its first TCP listen address with its peer id, once it listens on
/// `n` addresses.
pub async fn tcp_addr(net: &Network, n: usize) -> Multiaddr {
    let addrs = net
        .wait_listening(n, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the node does not listen: {e}"));
    let tcp = addrs
        .into_iter()
        .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
        .expect("a TCP listen address");
    tcp.with(Protocol::P2p(net.peer_id()))
}

/// Starts a node with key `i` and waits until it listens (TCP and QUIC).
pub async fn start(i: u32, cfg: NetConfig) -> TestNode {
    let (net, events) = Network::spawn(net::keypair(&key(i)), cfg)
        .unwrap_or_else(|e| panic!("cannot start node {i}: {e}"));
    let addr = tcp_addr(&net, 2).await;
    TestNode { net, events, addr }
}

/// Waits until `f` holds, failing the test after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next event that is not about connections; `None` once the node stopped.
pub async fn next_request(events: &mut mpsc::Receiver<NetEvent>) -> Option<NetEvent> {
    loop {
        match events.recv().await? {
            NetEvent::Connected { .. } | NetEvent::Disconnected { .. } => {}
            NetEvent::HolePunch { .. } => {}
            other => return Some(other),
        }
    }
}

/// Refusals counted by `net` (`NetStats::peers_refused`).
pub async fn refused(net: &Network) -> u64 {
    net.stats()
        .await
        .unwrap_or_else(|e| panic!("the node stopped: {e}"))
        .peers_refused
}

/// A node of the next major version (key `i`) dials `node` at `addr`: it is refused (by
/// whichever side reads the other's identify first, often both) and disconnected. Returns the
/// other node, to go on with it.
pub async fn another_major_is_refused(node: &Network, addr: Multiaddr, i: u32) -> TestNode {
    let next_major = start(i, at(v(CURRENT.major + 1, 0, 0))).await;
    let before = refused(node).await;
    next_major
        .net
        .dial(addr)
        .await
        .unwrap_or_else(|e| panic!("dialing the node: {e}"));
    let (a, b) = (node.clone(), next_major.net.clone());
    eventually("the other major refused", Duration::from_secs(10), || {
        let (a, b) = (a.clone(), b.clone());
        async move { refused(&a).await + refused(&b).await > before }
    })
    .await;
    let other = next_major.net.peer_id();
    eventually(
        "the other major disconnected",
        Duration::from_secs(10),
        || {
            let a = a.clone();
            async move { a.peers().await.is_ok_and(|p| !p.contains(&other)) }
        },
    )
    .await;
    next_major
}
