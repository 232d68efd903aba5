//! [`Network`], the handle the rest of the node holds on the network actor: it spawns the
//! actor, and turns each call into a [`Command`] with a oneshot reply.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, identity};
use sietch_market::book::OrderBook;
use sietch_market::{B256, Offer, Signed, Withdrawal};
use tokio::sync::{mpsc, oneshot};

use super::{
    BlobReply, BlobRequest, Command, JobFailure, JobReply, JobRequest, JobResult, NetConfig,
    NetError, NetEvent, NetStats, OfferClass, Payment, PaymentAck, ResultAck, ResultMessage,
    VerifyReply, VerifyRequest, actor, blob_stream, budget, rpc,
};

/// Commands queued to the actor.
const COMMAND_QUEUE: usize = 256;
/// Events queued to the node.
const EVENT_QUEUE: usize = 1024;

/// A handle on the network actor. Cheap to clone; the actor stops when every handle is
/// dropped or [`Network::shutdown`] is called.
#[derive(Clone)]
pub struct Network {
    pub(super) tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    book: Arc<Mutex<OrderBook>>,
    pub(super) config: Arc<NetConfig>,
    pub(super) guard: Arc<budget::Guard>,
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
        let mut actor = actor::Actor::new(
            key,
            config.clone(),
            book.clone(),
            rx,
            events_tx,
            (guard.clone(), denials),
        )?;
        if let Some(incoming) = actor.take_blob_streams() {
            tokio::spawn(blob_stream::serve::run(
                incoming,
                config.clone(),
                guard.clone(),
            ));
        }
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

    /// Stops the actor (also when every handle is dropped).
    pub async fn shutdown(self) {
        drop(self);
    }
}
