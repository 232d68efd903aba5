//! The node's network: one actor owns the libp2p swarm; the rest of the node talks to it
//! through a cloneable [`Network`] handle whose commands carry a oneshot reply, and hears
//! from it through a bounded stream of [`NetEvent`]s.
//!
//! - Transports: TCP with Noise and Yamux, and QUIC ([`TransportKind::Real`]); libp2p's
//!   memory transport for simulations ([`TransportKind::Memory`]).
//! - Discovery: identify, Kademlia (seeded by bootstrap peers), mDNS on a LAN.
//! - Reachability: AutoNAT, circuit relay v2 (client always; server by configuration) and
//!   DCUtR hole punching over relayed connections.
//! - Offers: gossipsub with a topic per [`OfferClass`]; every message is decoded, checked
//!   (size, kind, registration when a chain is configured), batch-verified
//!   and inserted into the order book before it is forwarded. Misbehaviour costs strikes
//!   that fade (`score`): a peer is cut off, once, at `strikes_before_ban` or when gossipsub
//!   graylists it (three invalid offers); a peer reopening gossip streams after frames over
//!   the limit is charged too (`gossip_streams`).
//! - Doors (docs/doors.md): every inbound request-response message takes its announced
//!   length from a per-peer and a node budget before its body is read, and a result is read
//!   only from the peer its job was sent to, within the job's bound (`budget`, `guarded`);
//!   incoming connections are limited per IP, and a full node evicts its least useful
//!   incoming connection for a newcomer (`doorman`).
//! - Request-response: job requests ([`wire::JobRequest`] → [`wire::JobReply`]), results
//!   ([`wire::JobResult`] → [`wire::ResultAck`]), payments ([`wire::Payment`] →
//!   [`wire::PaymentAck`]), dispute re-runs ([`wire::VerifyRequest`] →
//!   [`wire::VerifyReply`]) and blob chunks by blake3 hash.
//! - Blobs: a whole blob streamed over one stream (`/sietch/blob-stream/1`, `blob_stream`),
//!   written to a [`BlobSink`] as it arrives, resumed after a broken stream, checked against
//!   its hash; chunk by chunk (`blob_fetch`) from a peer without that protocol.
//!
//! Every queue is bounded: commands (256), events (1,024: an inbound request that finds the
//! event queue full is refused as busy), pending gossip (4,096), concurrent streams per
//! protocol and per peer, every message by its type's size limit, and the bytes held of
//! inbound messages by the budgets.

mod actor;
mod behaviour;
mod blob_fetch;
mod blob_sink;
pub mod blob_stream;
pub mod budget;
pub mod config;
mod delegate;
mod dial_cap;
mod doorman;
pub mod gossip;
mod gossip_streams;
mod guarded;
mod handle;
mod rpc;
mod score;
pub mod version;
pub mod wire;

use libp2p::{Multiaddr, PeerId, identity};
use sietch_market::B256;
use tokio::sync::oneshot;

pub use blob_fetch::{Fetched, FetchedBlob};
pub use blob_sink::{BlobSink, MemorySink};
pub use config::{
    BlobSource, Clock, NetConfig, QUIC, Registry, RegistryError, TransportKind, is_quic,
    system_clock, with_quic,
};
pub use gossip::{OfferClass, peer_id_of};
pub use handle::Network;
pub use wire::{
    BlobReply, BlobRequest, JobFailure, JobReply, JobRequest, JobResult, MAX_RESULT, Payment,
    PaymentAck, RefuseReason, ResultAck, ResultMessage, VerifyReply, VerifyRequest,
};

/// What can go wrong talking to the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The actor has stopped (the node is shutting down).
    #[error("the network has stopped")]
    Stopped,
    /// The swarm could not be built or could not listen.
    #[error("network set-up failed: {0}")]
    Setup(String),
    /// A dial failed at once (bad address, blocked peer).
    #[error("cannot dial: {0}")]
    Dial(String),
    /// A request got no answer (unreachable peer, timeout, unsupported protocol).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer asked.
        peer: PeerId,
        /// What happened.
        reason: String,
    },
    /// An offer could not be published.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The peer does not hold the blob.
    #[error("peer {peer} does not have blob {hash}")]
    BlobNotFound {
        /// The peer asked.
        peer: PeerId,
        /// The blob.
        hash: B256,
    },
    /// The blob is bigger than this node accepts.
    #[error("blob {hash} is {size} bytes, over the {max}-byte limit")]
    BlobTooLarge {
        /// The blob.
        hash: B256,
        /// Its size as announced.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes received do not hash to what was asked, or the chunks disagree.
    #[error("blob from {peer} is corrupt: {why}")]
    BlobCorrupt {
        /// The peer that sent it.
        peer: PeerId,
        /// What was wrong, naming the blob.
        why: String,
    },
    /// The sink refused the blob or could not write it (too large for it, no room, disk).
    #[error("cannot keep blob {hash}: {why}")]
    BlobWrite {
        /// The blob.
        hash: B256,
        /// The sink's error.
        why: String,
    },
}

/// Something the node must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A buyer asks this node to run a job; answer through `reply` (dropping it refuses).
    JobRequested {
        /// The buyer's node.
        peer: PeerId,
        /// The request.
        request: Box<JobRequest>,
        /// Where the answer goes.
        reply: oneshot::Sender<JobReply>,
    },
    /// A provider sends the result of a job this node asked for.
    ResultReceived {
        /// The provider's node.
        peer: PeerId,
        /// The result.
        result: Box<JobResult>,
        /// Where the acknowledgement goes.
        reply: oneshot::Sender<ResultAck>,
    },
    /// A provider says a job this node asked for ended without a result.
    FailureReceived {
        /// The provider's node.
        peer: PeerId,
        /// What happened.
        failure: JobFailure,
        /// Where the acknowledgement goes.
        reply: oneshot::Sender<ResultAck>,
    },
    /// A buyer pays (or withholds payment for) a job this node ran.
    PaymentReceived {
        /// The buyer's node.
        peer: PeerId,
        /// The payment.
        payment: Box<Payment>,
        /// Where the acknowledgement goes.
        reply: oneshot::Sender<PaymentAck>,
    },
    /// A party of a dispute asks this node, drawn as a verifier, to re-run the job.
    VerifyRequested {
        /// The asking node.
        peer: PeerId,
        /// The request.
        request: Box<VerifyRequest>,
        /// Where the answer goes.
        reply: oneshot::Sender<VerifyReply>,
    },
    /// A connection to a peer opened (`address` holds `/p2p-circuit` when relayed).
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its address on this connection.
        address: Multiaddr,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A hole punch (DCUtR) over a relayed connection ended.
    HolePunch {
        /// The peer.
        peer: PeerId,
        /// Whether a direct connection was made.
        ok: bool,
        /// What happened, in words.
        detail: String,
    },
    /// A peer was cut off for forwarding invalid offers.
    PeerBanned {
        /// The peer.
        peer: PeerId,
    },
}

/// Counters of the gossip validation, for the API, the explorer and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Offers and withdrawals accepted and forwarded.
    pub accepted: u64,
    /// Messages refused as invalid (the forwarder was penalized).
    pub rejected: u64,
    /// Messages dropped without penalty (stale, late, unregistered).
    pub ignored: u64,
    /// Peers cut off.
    pub banned: u64,
    /// Peers connected now.
    pub connected: usize,
    /// Connections established since start (both directions).
    pub connections_opened: u64,
    /// Connections that failed before they were established, both directions: unreachable
    /// addresses, failed handshakes and connections denied by the limits.
    pub connections_failed: u64,
    /// Dials this node did not start because it held its most outgoing connections
    /// (`max_outgoing`): Kademlia's queries keep asking for dials at the limit.
    pub dials_refused: u64,
    /// Kademlia requests from other nodes answered since start: it keeps rising while
    /// nodes near this one are discovering the network, and nearly stops once they have.
    pub discovery_requests_served: u64,
    /// Bytes of inbound request-response messages held now (being read, or waiting for
    /// this node's answer), within `inbound_budget_total`.
    pub inbound_bytes_held: u64,
    /// The most such bytes held at once since start.
    pub inbound_bytes_peak: u64,
    /// Inbound messages refused before their body was read since start: over a budget,
    /// over the streams a peer may have in flight, or results nobody asked of that peer.
    pub inbound_refused: u64,
    /// Gossip messages from peers already cut off, dropped before any check.
    pub dropped_from_banned: u64,
    /// Incoming connections refused by the per-address limits, or because the node was
    /// full and no connection could be evicted yet.
    pub connections_refused_per_ip: u64,
    /// Incoming connections closed to make room for a newcomer.
    pub connections_evicted: u64,
    /// Peers refused for their protocol version (another major version, or not a Sietch
    /// node), counted once per backoff: while blocked, a peer is neither dialed nor let in.
    pub peers_refused: u64,
    /// Whether peers can dial this node, as AutoNAT last judged it.
    pub reachability: Reachability,
}

/// Whether other peers can reach this node directly, as AutoNAT judges it from their dial-backs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reachability {
    /// Not judged yet (too few peers asked, or AutoNAT still probing).
    #[default]
    Unknown,
    /// Peers dialed this node back: it is reachable from outside.
    Public,
    /// Peers could not dial it back: behind a NAT or a firewall.
    Private,
}

pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    DialPeer(PeerId),
    AddAddress(PeerId, Multiaddr),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Stats(oneshot::Sender<NetStats>),
    Publish {
        class: OfferClass,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Request(rpc::Outbound),
    OpenBlobStream(PeerId, blob_stream::streams::Opened),
    Charge(PeerId, score::Offence),
    Disconnect(PeerId),
    Bootstrap,
    PublishRaw {
        class: OfferClass,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
}

/// The libp2p identity of a node: the same ed25519 key that signs its offers.
pub fn keypair(key: &ed25519_dalek::SigningKey) -> identity::Keypair {
    let mut secret = key.to_bytes();
    match identity::Keypair::ed25519_from_bytes(&mut secret) {
        Ok(k) => k,
        // 32 bytes are always a valid ed25519 secret; this arm is never taken.
        Err(_) => identity::Keypair::generate_ed25519(),
    }
}
