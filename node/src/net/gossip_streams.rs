//! Gossipsub with a count of the streams each connection opens to it.
//!
//! A gossipsub peer opens one stream per connection and keeps it. A frame over the frame
//! limit (or any frame gossipsub cannot decode) makes gossipsub drop that stream, and it
//! does so silently: it tells no one which peer sent it. The peer can only go on sending by
//! opening another stream, so each inbound gossip stream after a connection's first is
//! reported here ([`GossipEvent::StreamReopened`]), and the actor counts it against the
//! peer's score: frames over the limit cost their sender, one dropped stream at a time.
//! Gossipsub itself stops taking gossip streams on a connection after its fifth, leaving
//! the connection open but mute; this closes it instead, so that a peer that goes on
//! must reconnect (and is cut off after a second connection's worth of strikes).

use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

use super::delegate::forward_to_inner;

/// Gossipsub's events, and the streams reopened to it.
#[derive(Debug)]
pub(crate) enum GossipEvent {
    /// An event of gossipsub.
    Gossip(gossipsub::Event),
    /// A peer opened another inbound gossip stream on a connection that had one.
    StreamReopened {
        /// The peer.
        peer: PeerId,
    },
}

/// Gossipsub's behaviour, counting inbound streams per connection.
pub(crate) struct Gossip {
    inner: gossipsub::Behaviour,
    reopened: std::collections::VecDeque<PeerId>,
    close: std::collections::VecDeque<(PeerId, ConnectionId)>,
}

/// Inbound gossip streams on one connection after which it is closed: gossipsub's own
/// limit (`MAX_SUBSTREAM_ATTEMPTS`), after which it would take no more gossip on it.
const MAX_INBOUND_STREAMS: u32 = 5;

/// Reports of reopened streams waiting for the actor, at most (more are merged: the
/// actor would ban the peer long before).
const MAX_REPORTS: usize = 1024;

impl Gossip {
    pub(crate) fn new(inner: gossipsub::Behaviour) -> Self {
        Self {
            inner,
            reopened: std::collections::VecDeque::new(),
            close: std::collections::VecDeque::new(),
        }
    }
}

impl Deref for Gossip {
    type Target = gossipsub::Behaviour;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Gossip {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

type Inner = <gossipsub::Behaviour as NetworkBehaviour>::ConnectionHandler;

/// Out of a [`Counting`] handler: the inner handler's event, or a reopened stream.
#[derive(Debug)]
pub(crate) enum Out<E> {
    Inner(E),
    /// Another inbound stream, the connection's `n`th.
    Reopened(u32),
}

/// A connection handler that passes everything to gossipsub's and counts inbound streams.
pub(crate) struct Counting {
    inner: Inner,
    inbound: u32,
    unreported: std::collections::VecDeque<u32>,
}

impl ConnectionHandler for Counting {
    type FromBehaviour = <Inner as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = Out<<Inner as ConnectionHandler>::ToBehaviour>;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if let Some(n) = self.unreported.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Out::Reopened(n)));
        }
        self.inner.poll(cx).map(|e| e.map_custom(Out::Inner))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx).map(|e| e.map(Out::Inner))
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            '_,
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(_) = &event {
            self.inbound = self.inbound.saturating_add(1);
            // Bounded: the connection is closed at MAX_INBOUND_STREAMS.
            if self.inbound > 1 && self.unreported.len() < MAX_INBOUND_STREAMS as usize {
                self.unreported.push_back(self.inbound);
            }
        }
        self.inner.on_connection_event(event);
    }
}

impl NetworkBehaviour for Gossip {
    type ConnectionHandler = Counting;
    type ToSwarm = GossipEvent;

    forward_to_inner!(
        handle_pending_inbound_connection,
        handle_pending_outbound_connection,
        on_swarm_event,
    );

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self
            .inner
            .handle_established_inbound_connection(id, peer, local, remote)?;
        Ok(Counting {
            inner,
            inbound: 0,
            unreported: std::collections::VecDeque::new(),
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self
            .inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)?;
        Ok(Counting {
            inner,
            inbound: 0,
            unreported: std::collections::VecDeque::new(),
        })
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Out::Inner(e) => self.inner.on_connection_handler_event(peer, id, e),
            Out::Reopened(n) => {
                if self.reopened.len() < MAX_REPORTS {
                    self.reopened.push_back(peer);
                }
                if n >= MAX_INBOUND_STREAMS && self.close.len() < MAX_REPORTS {
                    self.close.push_back((peer, id));
                }
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            });
        }
        if let Some(peer) = self.reopened.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(GossipEvent::StreamReopened { peer }));
        }
        self.inner.poll(cx).map(|e| e.map_out(GossipEvent::Gossip))
    }
}
