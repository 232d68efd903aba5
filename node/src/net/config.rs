//! Settings of the network actor.

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use sietch_market::book::BookConfig;
use sietch_market::{Address, B256, Offer};

use super::gossip::OfferClass;
use super::version::Version;

/// Whether this build has the QUIC transport (the `quic` feature, on by default; the demo's
/// build leaves it out, `docs/benchmarks.md` "A first run"). Without it a node runs TCP only.
pub const QUIC: bool = cfg!(feature = "quic");

/// Whether `addr` is a QUIC address (`/udp/…/quic-v1`).
pub fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
}

/// `addrs` less its QUIC addresses where this build has no QUIC.
pub fn with_quic<A: AsRef<str>>(addrs: Vec<A>) -> Vec<A> {
    addrs
        .into_iter()
        .filter(|a| QUIC || !AsRef::<str>::as_ref(a).contains("/quic"))
        .collect()
}

/// Which transports the swarm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP (Noise, Yamux) and QUIC: a real node.
    Real,
    /// libp2p's in-process memory transport (Noise, Yamux): simulations of many nodes.
    Memory,
}

/// Unix seconds now; injected so tests and simulations can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Where the actor reads blobs it serves to peers.
pub trait BlobSource: Send + Sync {
    /// Up to `max_len` bytes of the blob `hash` from `offset`, with the blob's total size;
    /// `None` when the blob is not held.
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)>;
}

/// A chain-backed check that an offer's key is registered and staked, when a chain is
/// configured. Answers from a local index so that gossip validation never waits on RPC.
pub trait Registry: Send + Sync {
    /// `Ok` when the offer's provider is registered with its key and stakes at least what
    /// the offer states; otherwise why not.
    fn check(&self, offer: &Offer) -> Result<(), RegistryError>;
}

/// Why a [`Registry`] refuses an offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry's index cannot be read.
    #[error("registry unavailable")]
    Unavailable,
    /// The offer's EVM address has no account.
    #[error("{0} is not registered")]
    NotRegistered(Address),
    /// The account registered a node key other than the offer's.
    #[error("{0} registered another node key")]
    OtherKey(Address),
    /// The account stakes less than the escrow's minimum.
    #[error("{account} stakes {stake}, below the escrow's minimum of {min}")]
    BelowMinimum {
        /// The offer's EVM address.
        account: Address,
        /// What it stakes.
        stake: u128,
        /// The escrow's `minStake`.
        min: u128,
    },
    /// The account stakes less than the offer states.
    #[error("{account} stakes {stake}, the offer states {stated}")]
    BelowOffer {
        /// The offer's EVM address.
        account: Address,
        /// What it stakes.
        stake: u128,
        /// What the offer states.
        stated: u128,
    },
}

/// Settings of the network actor.
#[derive(Clone)]
pub struct NetConfig {
    /// Transports.
    pub transport: TransportKind,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start and to seed Kademlia (each ends in `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Act as a circuit relay (v2) for other nodes: for nodes with a public address.
    pub relay_server: bool,
    /// Relays to listen through, for a node that cannot be reached directly (each ends in
    /// `/p2p/<relay id>`).
    pub relays: Vec<Multiaddr>,
    /// AutoNAT only trusts and serves global addresses (off in tests on private addresses).
    pub autonat_only_global: bool,
    /// Offer classes followed.
    pub offer_classes: Vec<OfferClass>,
    /// Order book sizing.
    pub book: BookConfig,
    /// Gossipsub heartbeat.
    pub gossip_heartbeat: Duration,
    /// Strikes a peer may reach before it is cut off (once, for `ban`): an invalid offer
    /// costs one, and so does a reopened gossip stream (after a frame over the limit); an
    /// offer of an unregistered key a quarter, a result nobody asked of the peer a half, a
    /// message over the peer's budget a quarter; strikes halve every `score_half_life`.
    pub strikes_before_ban: u32,
    /// How long a cut-off peer stays blocked.
    pub ban: Duration,
    /// Timeout of a request (job, result, blob chunk).
    pub request_timeout: Duration,
    /// Concurrent inbound and outbound streams per request-response protocol.
    pub max_concurrent_streams: usize,
    /// Largest blob fetched from a peer.
    pub max_blob_bytes: u64,
    /// Bytes asked per blob request (the chunked way, `/sietch/blob/1`).
    pub blob_chunk: u32,
    /// Serve and fetch whole blobs over one stream (`/sietch/blob-stream/1`); off, the node
    /// is one without the protocol (peers fetch from it chunk by chunk, and it fetches so).
    pub blob_stream: bool,
    /// A blob stream that moves no byte for this long (either way) is given up; the
    /// fetcher resumes from where it stopped.
    pub blob_stall: Duration,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Most connections this node opens and keeps (discovery dials beyond it are refused
    /// locally), so that a node's connection count, and the network's, stays bounded
    /// however large the network grows. 8, as Bitcoin's full-relay outbound count: with
    /// the connections others open, a node holds ~15, above gossipsub's mesh degree of 6.
    /// At 500 simulated nodes on two cores, 8 spread an offer to 95% of nodes in p95 0.30 s
    /// against 1.5–2.2 s at 32: every connection costs pings, identify, Kademlia and
    /// gossip on every heartbeat (docs/benchmarks.md).
    pub max_outgoing: u32,
    /// Most connections other nodes may open to this one (higher than `max_outgoing`, so
    /// that newcomers find room).
    pub max_incoming: u32,
    /// Most connections to one peer (a relayed one and a direct one after hole punching,
    /// TCP and QUIC).
    pub max_per_peer: u32,
    /// Most connections from one IP address in handshake at once (before the node knows
    /// who is calling): one host cannot hold the node's pending slots.
    pub max_pending_per_ip: u32,
    /// Most established incoming connections from one IP address (several nodes behind
    /// one NAT share an address, so this is above `max_per_peer`).
    pub max_incoming_per_ip: u32,
    /// Bytes of inbound request-response messages one peer may have this node hold at
    /// once (being read or waiting for the node's answer), over all its connections and
    /// protocols. Above two of the largest messages (a 16 MiB result or verify request).
    pub inbound_budget_per_peer: u64,
    /// Bytes of inbound request-response messages all peers together may have this node
    /// hold at once.
    pub inbound_budget_total: u64,
    /// Inbound request-response messages one peer may have in flight at once, over all
    /// its connections and protocols.
    pub max_inbound_streams_per_peer: u32,
    /// Results expected at once (job requests sent and not yet expired); the oldest go
    /// first when full.
    pub max_expected_results: usize,
    /// How long a result is expected beyond its job's wall time (the provider's queue, its
    /// input fetch and the transfer).
    pub result_wait: Duration,
    /// Strikes halve every this long (see `strikes_before_ban`).
    pub score_half_life: Duration,
    /// Unix time.
    pub clock: Clock,
    /// Blobs served to peers.
    pub blobs: Option<Arc<dyn BlobSource>>,
    /// Registration check of offers, when a chain is configured.
    pub registry: Option<Arc<dyn Registry>>,
    /// The protocol version this node speaks and announces (`super::version::CURRENT`;
    /// tests set another to run a network of mixed versions).
    pub version: Version,
    /// Tests only: announce this in identify instead of `version` (a program that is not a
    /// Sietch node).
    pub identify_as: Option<String>,
    /// How long a peer of another major version, or not a Sietch node, is first kept out;
    /// each refusal of the same peer doubles it (up to 64 times this).
    pub version_backoff: Duration,
    /// Simulation only: forward nothing (a node that silently drops messages).
    pub drop_forwarding: bool,
    /// Simulation only: hold each gossip message this long before forwarding it (link latency).
    pub forward_delay: Duration,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("transport", &self.transport)
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("mdns", &self.mdns)
            .field("relay_server", &self.relay_server)
            .field("relays", &self.relays)
            .field("offer_classes", &self.offer_classes)
            .finish_non_exhaustive()
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            transport: TransportKind::Real,
            listen: with_quic(vec!["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"])
                .into_iter()
                .map(|a| a.parse().unwrap_or_else(|_| Multiaddr::empty()))
                .collect(),
            bootstrap: Vec::new(),
            mdns: true,
            relay_server: false,
            relays: Vec::new(),
            autonat_only_global: true,
            offer_classes: OfferClass::ALL.to_vec(),
            book: BookConfig::default(),
            gossip_heartbeat: Duration::from_millis(700),
            strikes_before_ban: 8,
            ban: Duration::from_secs(600),
            request_timeout: Duration::from_secs(30),
            max_concurrent_streams: 64,
            max_blob_bytes: 256 * 1024 * 1024,
            blob_chunk: 256 * 1024,
            blob_stream: true,
            blob_stall: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            max_outgoing: 8,
            max_incoming: 128,
            max_per_peer: 4,
            max_pending_per_ip: 8,
            max_incoming_per_ip: 24,
            inbound_budget_per_peer: 40 * 1024 * 1024,
            inbound_budget_total: 256 * 1024 * 1024,
            max_inbound_streams_per_peer: 32,
            max_expected_results: 4096,
            result_wait: Duration::from_secs(120),
            score_half_life: Duration::from_secs(60),
            clock: system_clock(),
            blobs: None,
            registry: None,
            version: super::version::CURRENT,
            identify_as: None,
            version_backoff: Duration::from_secs(60),
            drop_forwarding: false,
            forward_delay: Duration::ZERO,
        }
    }
}

impl NetConfig {
    /// What identify announces: the version, or what a test says instead.
    pub(crate) fn identify_version(&self) -> String {
        self.identify_as
            .clone()
            .unwrap_or_else(|| self.version.identify())
    }

    /// A configuration for tests on loopback: TCP and QUIC on 127.0.0.1 ports chosen by
    /// the system, no mDNS, AutoNAT accepting private addresses.
    pub fn loopback() -> Self {
        Self {
            listen: with_quic(vec!["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"])
                .into_iter()
                .map(|a| a.parse().unwrap_or_else(|_| Multiaddr::empty()))
                .collect(),
            mdns: false,
            autonat_only_global: false,
            ..Self::default()
        }
    }
}
