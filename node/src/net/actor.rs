//! The event loop that owns the swarm: it runs the node's commands, hears the swarm's
//! events and hands the node what it must act on. Gossip validation and the discipline of
//! peers are in `validation`, request-response in `serving`, the swarm's making in `swarm`.

mod refused;
mod serving;
mod swarm;
mod validation;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{SwarmEvent, dial_opts::DialOpts};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, identity, kad, mdns};
use sietch_market::book::OrderBook;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::blob_stream::streams::OpenError;
use super::budget::{Denied, Guard};
use super::config::NetConfig;
use super::gossip::{self, Gossiped};
use super::gossip_streams::GossipEvent;
use super::rpc::{Answer, Waiters};
use super::score::{Offence, Score};
use super::version::{self, Foreign};
use super::{Command, NetError, NetEvent, NetStats};
use validation::{GOSSIP_BATCH, MAX_PENDING_GOSSIP, PendingGossip};

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
    /// Peers refused for their protocol version, blocked for a doubling backoff.
    refusals: refused::Refusals,
    stats: NetStats,
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
        let mut swarm = swarm::build(key, &config, &guard)?;
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
        let version_backoff = config.version_backoff;
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
            refusals: refused::Refusals::new(version_backoff),
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
            Command::OpenBlobStream(peer, reply) => {
                match self.swarm.behaviour_mut().blob_stream.as_mut() {
                    Some(streams) => streams.open(peer, reply),
                    None => {
                        let _ = reply.send(Err(OpenError::Unsupported));
                    }
                }
            }
            Command::Charge(peer, what) => self.charge(peer, what),
        }
    }

    /// The inbound blob streams, for the serving task (once; none when the protocol is off).
    pub(crate) fn take_blob_streams(&mut self) -> Option<mpsc::Receiver<(PeerId, libp2p::Stream)>> {
        self.swarm
            .behaviour_mut()
            .blob_stream
            .as_mut()
            .and_then(|s| s.take_incoming())
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
                if let Err(why) = version::judge(self.config.version, &info.protocol_version) {
                    self.refuse(peer_id, &why);
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
                    if !self.swarm.is_connected(&peer) && !self.refusals.is_blocked(&peer) {
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
                self.stats.reachability = match new {
                    libp2p::autonat::NatStatus::Public(_) => super::Reachability::Public,
                    libp2p::autonat::NatStatus::Private => super::Reachability::Private,
                    libp2p::autonat::NatStatus::Unknown => super::Reachability::Unknown,
                };
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

    fn housekeeping(&mut self) {
        let now = Instant::now();
        while let Some((until, peer)) = self.bans.front().copied() {
            if until > now {
                break;
            }
            self.bans.pop_front();
            self.banned.remove(&peer);
            let refused = self.refusals.is_blocked(&peer);
            let b = self.swarm.behaviour_mut();
            if !refused {
                b.blocked.unblock_peer(peer);
            }
            b.gossipsub.remove_blacklisted_peer(&peer);
        }
        for peer in self.refusals.expire(now) {
            if !self.banned.contains(&peer) {
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
        }
        if let Ok(mut book) = self.book.lock() {
            book.expire((self.config.clock)());
        }
    }
}

impl Actor {
    /// Refuses a peer of another major version or another program, once per backoff: it is
    /// disconnected, forgotten by Kademlia, and neither dialed nor let in until the backoff
    /// (which doubles with each refusal) is over.
    fn refuse(&mut self, peer: PeerId, why: &Foreign) {
        let b = self.swarm.behaviour_mut();
        b.kad.remove_peer(&peer);
        if self.refusals.is_blocked(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        let (backoff, forgotten) = self.refusals.refuse(peer, Instant::now());
        if let Some(p) = forgotten
            && !self.banned.contains(&p)
        {
            b.blocked.unblock_peer(p);
        }
        b.blocked.block_peer(peer);
        self.stats.peers_refused += 1;
        tracing::info!(
            %peer,
            "refusing a peer: {why}; not dialed or let in for {} s",
            backoff.as_secs()
        );
        let _ = self.swarm.disconnect_peer_id(peer);
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
