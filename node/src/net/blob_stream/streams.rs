//! A libp2p behaviour that opens and accepts raw streams of one protocol, handed to tasks
//! outside the swarm (libp2p 0.57 has no `libp2p-stream` of its version): an open asked of
//! the actor is sent to one of the peer's connections (dialing it first if needed), and each
//! inbound stream goes to a bounded queue the serving task reads.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll, Waker};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, DialError,
    FromSwarm, NetworkBehaviour, NotifyHandler, Stream, StreamProtocol, StreamUpgradeError,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use tokio::sync::{mpsc, oneshot};

/// Inbound streams queued for the serving task; more are reset.
const INBOUND_QUEUE: usize = 64;
/// Opens waiting for a connection to their peer, over all peers; more fail at once.
const MAX_WAITING: usize = 64;

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// The peer (or this node) does not speak the protocol.
    #[error("the peer does not speak the protocol")]
    Unsupported,
    /// No connection, or the stream failed before it was negotiated.
    #[error("{0}")]
    Failed(String),
}

/// Where an opened stream goes.
pub(crate) type Opened = oneshot::Sender<Result<Stream, OpenError>>;

/// The behaviour: opens streams on request, accepts them for the serving task.
pub(crate) struct Streams {
    protocol: StreamProtocol,
    inbound: mpsc::Sender<(PeerId, Stream)>,
    incoming: Option<mpsc::Receiver<(PeerId, Stream)>>,
    connections: HashMap<PeerId, usize>,
    waiting: HashMap<PeerId, Vec<Opened>>,
    waiting_len: usize,
    out: VecDeque<ToSwarm<Infallible, Opened>>,
    waker: Option<Waker>,
}

impl Streams {
    pub(crate) fn new(protocol: StreamProtocol) -> Self {
        let (inbound, incoming) = mpsc::channel(INBOUND_QUEUE);
        Self {
            protocol,
            inbound,
            incoming: Some(incoming),
            connections: HashMap::new(),
            waiting: HashMap::new(),
            waiting_len: 0,
            out: VecDeque::new(),
            waker: None,
        }
    }

    /// The inbound streams, once (for the serving task).
    pub(crate) fn take_incoming(&mut self) -> Option<mpsc::Receiver<(PeerId, Stream)>> {
        self.incoming.take()
    }

    /// Opens a stream to `peer`, dialing it if it is not connected.
    pub(crate) fn open(&mut self, peer: PeerId, reply: Opened) {
        if self.connections.get(&peer).is_some_and(|n| *n > 0) {
            self.out.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::Any,
                event: reply,
            });
        } else if self.waiting_len >= MAX_WAITING {
            let _ = reply.send(Err(OpenError::Failed(
                "too many streams waiting for a connection".into(),
            )));
            return;
        } else {
            self.waiting.entry(peer).or_default().push(reply);
            self.waiting_len += 1;
            self.out.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer).build(),
            });
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            protocol: self.protocol.clone(),
            pending: VecDeque::new(),
            inbound: self.inbound.clone(),
            waker: None,
        }
    }

    fn fail_waiting(&mut self, peer: &PeerId, why: &str) {
        if let Some(list) = self.waiting.remove(peer) {
            self.waiting_len = self.waiting_len.saturating_sub(list.len());
            for reply in list {
                let _ = reply.send(Err(OpenError::Failed(why.to_owned())));
            }
        }
    }
}

impl NetworkBehaviour for Streams {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                *self.connections.entry(e.peer_id).or_default() += 1;
                if let Some(list) = self.waiting.remove(&e.peer_id) {
                    self.waiting_len = self.waiting_len.saturating_sub(list.len());
                    for reply in list {
                        self.out.push_back(ToSwarm::NotifyHandler {
                            peer_id: e.peer_id,
                            handler: NotifyHandler::One(e.connection_id),
                            event: reply,
                        });
                    }
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(n) = self.connections.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.connections.remove(&e.peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(e) => {
                // A dial not made because another is under way waits for that one.
                if let Some(peer) = e.peer_id
                    && !self.connections.contains_key(&peer)
                    && !matches!(e.error, DialError::DialPeerConditionFalse(_))
                {
                    self.fail_waiting(&peer, &format!("cannot dial the peer: {}", e.error));
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.out.pop_front() {
            Some(e) => Poll::Ready(e),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// One connection's side: requests outbound streams, hands inbound ones over.
pub(crate) struct Handler {
    peer: PeerId,
    protocol: StreamProtocol,
    pending: VecDeque<Opened>,
    inbound: mpsc::Sender<(PeerId, Stream)>,
    waker: Option<Waker>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Opened;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Opened;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Opened, Infallible>> {
        match self.pending.pop_front() {
            Some(reply) => Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), reply),
            }),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn on_behaviour_event(&mut self, reply: Opened) {
        self.pending.push_back(reply);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol, (), Opened>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => {
                // A full queue drops (resets) the stream: the fetcher retries.
                let queued = self.inbound.try_send((self.peer, stream));
                if queued.is_err() {
                    tracing::debug!(peer = %self.peer, "inbound blob stream dropped: queue full");
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: reply,
            }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                let e = match error {
                    StreamUpgradeError::NegotiationFailed => OpenError::Unsupported,
                    other => OpenError::Failed(other.to_string()),
                };
                let _ = reply.send(Err(e));
            }
            _ => {}
        }
    }
}
