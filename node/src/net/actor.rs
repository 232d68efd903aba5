//! The event loop that owns the swarm.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::{SwarmEvent, dial_opts::DialOpts};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport, gossipsub, identify, identity, kad, mdns, noise, tcp,
    yamux,
};
use sietch_market::book::OrderBook;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::behaviour::{Behaviour, BehaviourEvent, PROTOCOL_VERSION};
use super::budget::{Denied, Guard};
use super::config::{NetConfig, TransportKind};
use super::gossip::{self, Gossiped, Refusal};
use super::gossip_streams::GossipEvent;
use super::guarded::Leased;
use super::rpc::{self, Answer, Handled, Served, Waiters};
use super::score::{Offence, Score};
use super::wire::{BlobReply, BlobRequest, MAX_CHUNK};
use super::{Command, NetError, NetEvent, NetStats};

/// Gossip messages waiting for validation, at most.
const MAX_PENDING_GOSSIP: usize = 4096;
/// Validate as soon as this many messages wait (one signature batch).
const GOSSIP_BATCH: usize = 128;
/// Shortest gap between two validation rounds: messages arriving within it wait for the
/// next round and are verified in one signature batch.
const FLUSH_GAP: Duration = Duration::from_millis(5);

struct PendingGossip {
    from: PeerId,
    id: gossipsub::MessageId,
    data: Vec<u8>,
    arrived: Instant,
}

pub(crate) struct Actor {
    swarm: Swarm<Behaviour>,
    config: Arc<NetConfig>,
    book: Arc<Mutex<OrderBook>>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    pending: VecDeque<PendingGossip>,
    /// Responses the node is working on; bounded by each protocol's inbound stream limit.
    answers: FuturesUnordered<BoxFuture<'static, Answer>>,
    waiters: Waiters,
    score: Score,
    /// Peers cut off now, each once, with when they are let back in; bounded by the ban
    /// list itself (a peer is banned only while connected).
    bans: VecDeque<(Instant, PeerId)>,
    banned: HashSet<PeerId>,
    guard: Arc<Guard>,
    /// Inbound messages the guard refused, to count against their peers.
    denials: mpsc::Receiver<(PeerId, Denied)>,
    stats: NetStats,
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> NetError {
    move |e| NetError::Setup(format!("{what}: {e}"))
}

fn build_swarm(
    key: identity::Keypair,
    cfg: &NetConfig,
    guard: &Arc<Guard>,
) -> Result<Swarm<Behaviour>, NetError> {
    let idle = cfg.idle_timeout;
    match cfg.transport {
        TransportKind::Real => Ok(libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(setup("tcp"))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(setup("relay client"))?
            .with_behaviour(|key, relay| {
                Behaviour::new(key, relay, cfg, guard)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(setup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()),
        TransportKind::Memory => Ok(libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|key| {
                Ok(MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            })
            .map_err(setup("memory transport"))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(setup("relay client"))?
            .with_behaviour(|key, relay| {
                Behaviour::new(key, relay, cfg, guard)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(setup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()),
    }
}

impl Actor {
    pub(crate) fn new(
        key: identity::Keypair,
        config: Arc<NetConfig>,
        book: Arc<Mutex<OrderBook>>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        (guard, denials): (Arc<Guard>, mpsc::Receiver<(PeerId, Denied)>),
    ) -> Result<Self, NetError> {
        let mut swarm = build_swarm(key, &config, &guard)?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Setup(format!("listen on {addr}: {e}")))?;
        }
        for relay in &config.relays {
            swarm
                .listen_on(relay.clone().with(Protocol::P2pCircuit))
                .map_err(|e| NetError::Setup(format!("listen through relay {relay}: {e}")))?;
        }
        for addr in &config.bootstrap {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap peer: {e}");
            }
        }
        if !config.bootstrap.is_empty() {
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        let half_life = config.score_half_life;
        Ok(Self {
            swarm,
            config,
            book,
            commands,
            events,
            pending: VecDeque::new(),
            answers: FuturesUnordered::new(),
            waiters: Waiters::default(),
            score: Score::new(half_life),
            bans: VecDeque::new(),
            banned: HashSet::new(),
            guard,
            denials,
            stats: NetStats::default(),
        })
    }

    pub(crate) async fn run(mut self) {
        // One timer for the pending gossip, set to when its oldest message is due (a
        // ticking interval woke every node every 5 ms while anything waited). Kademlia
        // re-bootstraps itself (every 5 minutes, and while its table is small).
        let flush = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush);
        let mut last_flush = Instant::now();
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            let due = self.flush_due(last_flush);
            if let Some(at) = due
                && flush.deadline() != at
            {
                flush.as_mut().reset(at);
            }
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                Some(answer) = self.answers.next(), if !self.answers.is_empty() => {
                    answer(self.swarm.behaviour_mut());
                }
                () = &mut flush, if due.is_some() => {
                    last_flush = Instant::now();
                    self.validate_gossip();
                }
                Some((peer, denied)) = self.denials.recv() => {
                    tracing::debug!(%peer, "inbound message refused: {denied}");
                    if let Some(what) = denied.offence() {
                        self.charge(peer, what);
                    }
                }
                _ = housekeeping.tick() => self.housekeeping(),
            }
            if self.pending.len() >= GOSSIP_BATCH && self.config.forward_delay.is_zero() {
                last_flush = Instant::now();
                self.validate_gossip();
            }
        }
        tracing::debug!("network actor stopped");
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr, reply) => {
                let r = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| NetError::Dial(format!("{addr}: {}", error_chain(&e))));
                let _ = reply.send(r);
            }
            Command::DialPeer(peer) => {
                if !self.swarm.is_connected(&peer) {
                    let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
                }
            }
            Command::AddAddress(peer, addr) => {
                self.swarm.add_peer_address(peer, addr.clone());
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Bootstrap => {
                // Fails only with no known peer, which a later connection fixes.
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Stats(reply) => {
                let mut s = self.stats;
                s.connected = self.swarm.connected_peers().count();
                s.dials_refused = self.swarm.behaviour().dial_cap.refused();
                let doorman = &self.swarm.behaviour().doorman;
                s.connections_refused_per_ip = doorman.refused();
                s.connections_evicted = doorman.evicted();
                let g = self.guard.stats();
                s.inbound_bytes_held = g.held;
                s.inbound_bytes_peak = g.peak;
                s.inbound_refused = g.refused;
                let _ = reply.send(s);
            }
            Command::Publish {
                class,
                bytes,
                reply,
            } => {
                let _ = reply.send(self.publish(class, bytes));
            }
            Command::PublishRaw {
                class,
                bytes,
                reply,
            } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(class.topic(), bytes)
                    .map(|_| ())
                    .map_err(|e| NetError::Publish(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Request(send) => send(self.swarm.behaviour_mut(), &mut self.waiters),
        }
    }

    fn publish(&mut self, class: gossip::OfferClass, bytes: Vec<u8>) -> Result<(), NetError> {
        // Our own offer goes into our own book as well: a provider is a buyer's peer too.
        let now = (self.config.clock)();
        if let Ok(msg) = gossip::decode(&bytes) {
            let mut book = self.book.lock().map_err(|_| NetError::Stopped)?;
            match msg {
                Gossiped::Offer(_) => {
                    let _ = book.ingest(&bytes, now);
                }
                Gossiped::Withdrawal(w) => {
                    if let Ok(v) = w.verify() {
                        book.withdraw(&v, now);
                    }
                }
            }
        }
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(class.topic(), bytes)
        {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
            Err(gossipsub::PublishError::Duplicate) => Ok(()),
            Err(e) => Err(NetError::Publish(e.to_string())),
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                self.stats.connections_opened += 1;
                let address = endpoint.get_remote_address().clone();
                tracing::debug!(%peer_id, %address, "connected");
                let _ = self.events.try_send(NetEvent::Connected {
                    peer: peer_id,
                    address,
                });
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let _ = self
                    .events
                    .try_send(NetEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.stats.connections_failed += 1;
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                self.stats.connections_failed += 1;
                tracing::debug!("incoming connection failed: {error}");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != PROTOCOL_VERSION {
                    tracing::debug!(%peer_id, version = %info.protocol_version, "not a sietch peer");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Kad(kad::Event::InboundRequest { .. }) => {
                self.stats.discovery_requests_served += 1;
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Gossipsub(GossipEvent::StreamReopened { peer }) => {
                tracing::debug!(%peer, "another gossip stream on a connection that had one");
                self.charge(peer, Offence::GossipStreamReopened);
            }
            BehaviourEvent::Gossipsub(GossipEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                if self.banned.contains(&propagation_source) {
                    self.drop_banned(&message_id, &propagation_source);
                    return;
                }
                if self.pending.len() >= MAX_PENDING_GOSSIP {
                    self.report(
                        &message_id,
                        &propagation_source,
                        false,
                        "validation queue full",
                    );
                    return;
                }
                self.pending.push_back(PendingGossip {
                    from: propagation_source,
                    id: message_id,
                    data: message.data,
                    arrived: Instant::now(),
                });
            }
            BehaviourEvent::Job(ev) => self.on_served(ev),
            BehaviourEvent::Result(ev) => self.on_served(ev),
            BehaviourEvent::Pay(ev) => self.on_served(ev),
            BehaviourEvent::Verify(ev) => self.on_served(ev),
            BehaviourEvent::Blob(ev) => self.on_blob_event(ev),
            BehaviourEvent::Autonat(libp2p::autonat::Event::StatusChanged { old, new }) => {
                tracing::info!(?old, ?new, "NAT status");
            }
            BehaviourEvent::Dcutr(ev) => {
                let (ok, detail) = match &ev.result {
                    Ok(conn) => (true, format!("direct connection {conn:?}")),
                    Err(e) => (false, e.to_string()),
                };
                tracing::info!(peer = %ev.remote_peer_id, ok, "hole punch: {detail}");
                let _ = self.events.try_send(NetEvent::HolePunch {
                    peer: ev.remote_peer_id,
                    ok,
                    detail,
                });
            }
            _ => {}
        }
    }

    /// Drop a message without forwarding it (`invalid`: and penalize its forwarder).
    fn report(&mut self, id: &gossipsub::MessageId, from: &PeerId, invalid: bool, why: &str) {
        let acceptance = if invalid {
            self.stats.rejected += 1;
            gossipsub::MessageAcceptance::Reject
        } else {
            self.stats.ignored += 1;
            gossipsub::MessageAcceptance::Ignore
        };
        tracing::debug!(peer = %from, invalid, "gossip refused: {why}");
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
        if invalid {
            self.charge(*from, Offence::InvalidGossip);
        }
    }

    /// Drops a message from a peer already cut off, before anything is checked of it.
    fn drop_banned(&mut self, id: &gossipsub::MessageId, from: &PeerId) {
        self.stats.dropped_from_banned += 1;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, gossipsub::MessageAcceptance::Ignore);
    }

    /// Counts an offence against a peer, and cuts it off when its strikes reach the limit
    /// or gossipsub's own score has graylisted it (gossipsub then stops delivering its
    /// messages, so its score, not only our count, decides).
    fn charge(&mut self, peer: PeerId, what: Offence) {
        if self.banned.contains(&peer) {
            return;
        }
        let graylisted = self
            .swarm
            .behaviour()
            .gossipsub
            .peer_score(&peer)
            .is_some_and(|s| s < gossip::thresholds().graylist_threshold);
        let over = self.score.charge(
            peer,
            what,
            self.config.strikes_before_ban,
            Instant::now().into_std(),
        );
        if over || graylisted {
            self.ban(peer);
        }
    }

    fn accept(&mut self, id: &gossipsub::MessageId, from: &PeerId) {
        self.stats.accepted += 1;
        self.swarm.behaviour_mut().doorman.useful(from);
        let acceptance = if self.config.drop_forwarding {
            gossipsub::MessageAcceptance::Ignore
        } else {
            gossipsub::MessageAcceptance::Accept
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
    }

    /// Cuts a peer off, once: a peer already cut off is not banned again for the messages
    /// it had queued.
    fn ban(&mut self, peer: PeerId) {
        if !self.banned.insert(peer) {
            return;
        }
        tracing::warn!(%peer, "cutting off a misbehaving peer");
        self.score.forget(&peer);
        self.stats.banned += 1;
        let b = self.swarm.behaviour_mut();
        b.blocked.block_peer(peer);
        b.gossipsub.blacklist_peer(&peer);
        self.bans
            .push_back((Instant::now() + self.config.ban, peer));
        let _ = self.events.try_send(NetEvent::PeerBanned { peer });
    }

    /// When the pending gossip should next be validated: once its oldest message has been
    /// held for the forwarding delay, and no sooner than [`FLUSH_GAP`] after the last round
    /// (so that a burst is verified in batches while a lone message goes at once). `None`
    /// while nothing waits.
    fn flush_due(&self, last_flush: Instant) -> Option<Instant> {
        let oldest = self.pending.front()?;
        Some((oldest.arrived + self.config.forward_delay).max(last_flush + FLUSH_GAP))
    }

    /// Validates waiting gossip: cheap checks one by one, signatures as one batch.
    fn validate_gossip(&mut self) {
        let now = (self.config.clock)();
        let ready_before = Instant::now()
            .checked_sub(self.config.forward_delay)
            .unwrap_or_else(Instant::now);
        let mut offers: Vec<PendingGossip> = Vec::new();
        while let Some(p) = self.pending.front() {
            if p.arrived > ready_before {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if self.banned.contains(&p.from) {
                self.drop_banned(&p.id, &p.from);
                continue;
            }
            match gossip::decode(&p.data) {
                Err(Refusal::Invalid(why)) => self.report(&p.id, &p.from, true, &why),
                Err(Refusal::Ignore(why)) => self.report(&p.id, &p.from, false, &why),
                Ok(Gossiped::Withdrawal(w)) => match w.verify() {
                    Ok(v) => {
                        if let Ok(mut book) = self.book.lock() {
                            book.withdraw(&v, now);
                        }
                        self.accept(&p.id, &p.from);
                    }
                    Err(e) => self.report(&p.id, &p.from, true, &e.to_string()),
                },
                Ok(Gossiped::Offer(o)) => {
                    let registered = match &self.config.registry {
                        Some(r) => r.check(&o.payload),
                        None => Ok(()),
                    };
                    match registered {
                        Ok(()) => offers.push(p),
                        Err(why) => {
                            self.report(&p.id, &p.from, false, &why);
                            self.charge(p.from, Offence::UnregisteredOffer);
                        }
                    }
                }
            }
        }
        if offers.is_empty() {
            return;
        }
        let results = {
            let items: Vec<&[u8]> = offers.iter().map(|p| p.data.as_slice()).collect();
            match self.book.lock() {
                Ok(mut book) => book.ingest_batch(&items, now),
                Err(_) => return,
            }
        };
        for (p, r) in offers.iter().zip(results) {
            if self.banned.contains(&p.from) {
                // Cut off while its batch was being checked: nothing of it is kept.
                self.drop_banned(&p.id, &p.from);
                continue;
            }
            match r {
                Ok(_) => self.accept(&p.id, &p.from),
                Err(e) => match gossip::judge(&e, now) {
                    Refusal::Invalid(why) => self.report(&p.id, &p.from, true, &why),
                    Refusal::Ignore(why) => self.report(&p.id, &p.from, false, &why),
                },
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        while let Some((until, peer)) = self.bans.front().copied() {
            if until > now {
                break;
            }
            self.bans.pop_front();
            self.banned.remove(&peer);
            let b = self.swarm.behaviour_mut();
            b.blocked.unblock_peer(peer);
            b.gossipsub.remove_blacklisted_peer(&peer);
        }
        if let Ok(mut book) = self.book.lock() {
            book.expire((self.config.clock)());
        }
    }

    /// A request the node answers through an event, a reply to one of its own requests, or
    /// a failure of one.
    fn on_served<R: Served>(&mut self, ev: request_response::Event<Leased<R>, R::Reply>) {
        let (peer, request, channel) = match rpc::on_outbound(&mut self.waiters, ev) {
            Handled::Request(peer, request, channel) => (peer, request, channel),
            other => return self.on_handled(other),
        };
        self.swarm.behaviour_mut().doorman.useful(&peer);
        let Leased { msg, lease } = request;
        let (tx, rx) = oneshot::channel();
        if self.events.try_send(R::event(peer, msg, tx)).is_err() {
            let _ =
                R::behaviour(self.swarm.behaviour_mut()).send_response(channel, R::unavailable());
            return;
        }
        self.answers.push(Box::pin(async move {
            let reply = rx.await.unwrap_or_else(|_| R::unavailable());
            // The request's bytes stay counted until the node has answered it.
            drop(lease);
            Box::new(move |b: &mut Behaviour| {
                // A failed send means the requester went away; nothing is left to do.
                let _ = R::behaviour(b).send_response(channel, reply);
            }) as Answer
        }));
    }

    /// What a request-response event left that is not a request: an answer marks its peer
    /// useful.
    fn on_handled<R: rpc::Rpc>(&mut self, h: Handled<R>) {
        match h {
            Handled::Answered(peer) => self.swarm.behaviour_mut().doorman.useful(&peer),
            Handled::Request(..) | Handled::Done => {}
        }
    }

    /// A blob chunk asked of this node (served from its `BlobSource` off the event loop), or
    /// a reply to one it asked for.
    fn on_blob_event(&mut self, ev: request_response::Event<Leased<BlobRequest>, BlobReply>) {
        let (request, channel) = match rpc::on_outbound(&mut self.waiters, ev) {
            Handled::Request(_, Leased { msg, lease }, channel) => {
                drop(lease);
                (msg, channel)
            }
            other => return self.on_handled(other),
        };
        let source = self.config.blobs.clone();
        self.answers.push(Box::pin(async move {
            let len = (request.max_len as usize).min(MAX_CHUNK);
            let reply = tokio::task::spawn_blocking(move || {
                source
                    .and_then(|s| s.read(&request.hash, request.offset, len))
                    .map_or(BlobReply::NotFound, |(total, data)| BlobReply::Chunk {
                        total,
                        data,
                    })
            })
            .await
            .unwrap_or(BlobReply::NotFound);
            Box::new(move |b: &mut Behaviour| {
                let _ = b.blob.send_response(channel, reply);
            }) as Answer
        }));
    }
}

/// The peer id at the end of an address, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().last().and_then(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// An error and its sources, `: `-separated: libp2p's dial errors say only "Dial error" and
/// keep the reason (a limit, a behaviour's refusal) in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
