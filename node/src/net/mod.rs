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
//!
//! Every queue is bounded: commands (256), events (1,024: an inbound request that finds the
//! event queue full is refused as busy), pending gossip (4,096), concurrent streams per
//! protocol and per peer, every message by its type's size limit, and the bytes held of
//! inbound messages by the budgets.

mod actor;
mod behaviour;
pub mod budget;
pub mod config;
mod dial_cap;
mod doorman;
pub mod gossip;
mod gossip_streams;
mod guarded;
mod rpc;
mod score;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, identity};
use sietch_market::book::OrderBook;
use sietch_market::{B256, Offer, Signed, Withdrawal};
use tokio::sync::{mpsc, oneshot};

pub use config::{BlobSource, Clock, NetConfig, Registry, TransportKind, system_clock};
pub use gossip::{OfferClass, peer_id_of};
pub use wire::{
    BlobReply, BlobRequest, JobFailure, JobReply, JobRequest, JobResult, MAX_RESULT, Payment,
    PaymentAck, RefuseReason, ResultAck, ResultMessage, VerifyReply, VerifyRequest,
};

/// Commands queued to the actor.
const COMMAND_QUEUE: usize = 256;
/// Events queued to the node.
const EVENT_QUEUE: usize = 1024;
/// Times a blob transfer resumes after a failed chunk before giving up.
const BLOB_RETRIES: u32 = 8;

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

/// A blob fetched from a peer, checked against its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBlob {
    /// The blob.
    pub bytes: Vec<u8>,
    /// How many times the transfer resumed after a failed chunk.
    pub resumes: u32,
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

/// A handle on the network actor. Cheap to clone; the actor stops when every handle is
/// dropped or [`Network::shutdown`] is called.
#[derive(Clone)]
pub struct Network {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    book: Arc<Mutex<OrderBook>>,
    config: Arc<NetConfig>,
    guard: Arc<budget::Guard>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Builds the swarm, starts listening and spawns the actor on the current tokio runtime.
    pub fn spawn(
        key: identity::Keypair,
        config: NetConfig,
    ) -> Result<(Self, mpsc::Receiver<NetEvent>), NetError> {
        let peer_id = key.public().to_peer_id();
        let book = Arc::new(Mutex::new(OrderBook::new(config.book)));
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (guard, denials) = budget::Guard::new(budget::Limits {
            per_peer: config.inbound_budget_per_peer,
            total: config.inbound_budget_total,
            streams_per_peer: config.max_inbound_streams_per_peer,
            max_expected: config.max_expected_results,
        });
        let config = Arc::new(config);
        let actor = actor::Actor::new(
            key,
            config.clone(),
            book.clone(),
            rx,
            events_tx,
            (guard.clone(), denials),
        )?;
        tokio::spawn(actor.run());
        Ok((
            Self {
                tx,
                peer_id,
                book,
                config,
                guard,
            },
            events,
        ))
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The order book this node keeps from gossip (shared with the actor; hold the lock
    /// briefly).
    pub fn book(&self) -> Arc<Mutex<OrderBook>> {
        self.book.clone()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Addresses the node listens on (once listening has started).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Waits until the node listens on at least `n` addresses, for up to `timeout`.
    pub async fn wait_listening(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Multiaddr>, NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let addrs = self.listen_addrs().await?;
            if addrs.len() >= n || tokio::time::Instant::now() >= deadline {
                return Ok(addrs);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Dials an address (ending in `/p2p/<peer id>` to check whom it reaches).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Records an address of a peer, for requests and discovery.
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.tx
            .send(Command::AddAddress(peer, addr))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Closes every connection to a peer.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.tx
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Refreshes the routing table now (a Kademlia bootstrap: a lookup of this node's own
    /// id, then of one random id per bucket), as the node does by itself every 5 minutes.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.tx
            .send(Command::Bootstrap)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Gossip validation counters.
    pub async fn stats(&self) -> Result<NetStats, NetError> {
        self.ask(Command::Stats).await
    }

    /// Announces an offer on its class's topic (and keeps it in this node's own book).
    /// With no peer on the topic yet this is not an error: the provider re-announces.
    pub async fn publish_offer(&self, offer: &Signed<Offer>) -> Result<(), NetError> {
        let class = OfferClass::of(&offer.payload);
        let bytes = offer.encode();
        self.ask(|reply| Command::Publish {
            class,
            bytes,
            reply,
        })
        .await?
    }

    /// Publishes bytes as they are, without checking them: only for adversarial tests that
    /// play a peer sending malformed or forged offers.
    #[doc(hidden)]
    pub async fn publish_raw(&self, class: OfferClass, bytes: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::PublishRaw {
            class,
            bytes,
            reply,
        })
        .await?
    }

    /// Withdraws this node's offers on every topic.
    pub async fn publish_withdrawal(&self, w: &Signed<Withdrawal>) -> Result<(), NetError> {
        let bytes = w.encode();
        for class in OfferClass::ALL {
            self.ask(|reply| Command::Publish {
                class,
                bytes: bytes.clone(),
                reply,
            })
            .await??;
        }
        Ok(())
    }

    async fn request<R: rpc::Rpc>(&self, peer: PeerId, request: R) -> Result<R::Reply, NetError> {
        self.ask(|reply| Command::Request(rpc::outbound(peer, request, reply)))
            .await?
    }

    /// Sends a job request and waits for the provider's answer. From now on this node
    /// reads a result for the job from that peer (and from no other), up to the job's
    /// output limit plus framing, for its wall time plus `result_wait`.
    pub async fn request_job(
        &self,
        peer: PeerId,
        request: JobRequest,
    ) -> Result<JobReply, NetError> {
        let limits = request.spec.limits;
        self.expect_result(
            request.ticket.job_id,
            peer,
            limits.output_bytes,
            Duration::from_millis(limits.wall_time_ms),
        );
        self.request(peer, request).await
    }

    /// Lets `peer` deliver the result of `job` on `/sietch/result/1`: up to `output_bytes`
    /// of outputs plus framing, for `wall_time` plus `result_wait`. [`Network::request_job`]
    /// does this itself; a result nobody expects is refused before its body is read, and
    /// costs its sender.
    pub fn expect_result(&self, job: B256, peer: PeerId, output_bytes: u64, wall_time: Duration) {
        self.guard.expect(
            job,
            peer,
            output_bytes,
            wall_time.saturating_add(self.config.result_wait),
        );
    }

    /// Sends a job's result to the buyer's node.
    pub async fn send_result(
        &self,
        peer: PeerId,
        result: JobResult,
    ) -> Result<ResultAck, NetError> {
        self.request(peer, ResultMessage::Done(Box::new(result)))
            .await
    }

    /// Tells the buyer's node that a job it accepted ended without a result.
    pub async fn send_failure(
        &self,
        peer: PeerId,
        failure: JobFailure,
    ) -> Result<ResultAck, NetError> {
        self.request(peer, ResultMessage::Failed(failure)).await
    }

    /// Sends a payment (check secret and voucher) to the provider's node.
    pub async fn send_payment(
        &self,
        peer: PeerId,
        payment: Payment,
    ) -> Result<PaymentAck, NetError> {
        self.request(peer, payment).await
    }

    /// Asks a drawn verifier to re-run a disputed job.
    pub async fn request_verify(
        &self,
        peer: PeerId,
        request: VerifyRequest,
    ) -> Result<VerifyReply, NetError> {
        self.request(peer, request).await
    }

    /// Asks a peer for one chunk of a blob.
    pub async fn blob_chunk(
        &self,
        peer: PeerId,
        request: BlobRequest,
    ) -> Result<BlobReply, NetError> {
        self.request(peer, request).await
    }

    /// Fetches a whole blob from a peer, chunk by chunk, and checks it against its hash. A
    /// failed chunk (dropped connection, timeout) is retried from where the transfer
    /// stopped after re-dialing the peer, up to 8 times in a row. `progress` is called
    /// with the bytes received so far and the total.
    pub async fn fetch_blob(
        &self,
        peer: PeerId,
        hash: B256,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<FetchedBlob, NetError> {
        let max = self.config.max_blob_bytes;
        let mut resumes = 0u32;
        let mut buf: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        let mut failures = 0u32;
        loop {
            let request = BlobRequest {
                hash,
                offset: buf.len() as u64,
                max_len: self.config.blob_chunk,
            };
            match self.blob_chunk(peer, request).await {
                Ok(BlobReply::NotFound) => return Err(NetError::BlobNotFound { peer, hash }),
                Ok(BlobReply::Chunk { total: t, data }) => {
                    failures = 0;
                    let corrupt = |why: &str| NetError::BlobCorrupt {
                        peer,
                        why: format!("blob {hash}: {why}"),
                    };
                    if t > max {
                        return Err(NetError::BlobTooLarge { hash, size: t, max });
                    }
                    if total.is_some_and(|old| old != t) {
                        return Err(corrupt("the blob's size changed between chunks"));
                    }
                    total = Some(t);
                    let remaining = t.saturating_sub(buf.len() as u64);
                    if data.len() as u64 > remaining.min(u64::from(request.max_len)) {
                        return Err(corrupt("a chunk is longer than asked"));
                    }
                    if data.is_empty() && remaining > 0 {
                        return Err(corrupt("an empty chunk before the end"));
                    }
                    buf.extend_from_slice(&data);
                    progress(buf.len() as u64, t);
                    if buf.len() as u64 == t {
                        if blake3::hash(&buf).as_bytes() != hash.as_slice() {
                            return Err(corrupt("the bytes do not hash to the blob's hash"));
                        }
                        return Ok(FetchedBlob {
                            bytes: buf,
                            resumes,
                        });
                    }
                }
                Err(NetError::Stopped) => return Err(NetError::Stopped),
                Err(e) => {
                    failures += 1;
                    resumes += 1;
                    if failures > BLOB_RETRIES {
                        return Err(e);
                    }
                    tracing::debug!(%peer, %hash, offset = buf.len(), "blob chunk failed, resuming: {e}");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
                    let _ = self.tx.send(Command::DialPeer(peer)).await;
                }
            }
        }
    }

    /// Stops the actor (also when every handle is dropped).
    pub async fn shutdown(self) {
        drop(self);
    }
}
