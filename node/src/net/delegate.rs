//! `NetworkBehaviour` methods written once. The node's own behaviours either wrap one of
//! libp2p's (`gossip_streams`, `guarded`) and hand most calls to it unchanged, or hold no
//! connection handler of their own (`doorman`, `dial_cap`). libp2p's trait is foreign, so a
//! helper trait with a blanket `impl NetworkBehaviour` is not allowed (orphan rule), and a
//! generic wrapper would need a hook for every method the wrappers do change; these macros
//! write the plain methods inside an `impl NetworkBehaviour` instead, each named where used.

/// Writes the named `NetworkBehaviour` methods as the same call on `self.inner`.
macro_rules! forward_to_inner {
    ($($method:ident),+ $(,)?) => { $( crate::net::delegate::forward_to_inner!(@ $method); )+ };
    (@ handle_pending_inbound_connection) => {
        fn handle_pending_inbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            local: &libp2p::Multiaddr,
            remote: &libp2p::Multiaddr,
        ) -> Result<(), libp2p::swarm::ConnectionDenied> {
            self.inner.handle_pending_inbound_connection(id, local, remote)
        }
    };
    (@ handle_pending_outbound_connection) => {
        fn handle_pending_outbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            peer: Option<libp2p::PeerId>,
            addresses: &[libp2p::Multiaddr],
            role: libp2p::core::Endpoint,
        ) -> Result<Vec<libp2p::Multiaddr>, libp2p::swarm::ConnectionDenied> {
            self.inner.handle_pending_outbound_connection(id, peer, addresses, role)
        }
    };
    (@ on_swarm_event) => {
        fn on_swarm_event(&mut self, event: libp2p::swarm::FromSwarm<'_>) {
            self.inner.on_swarm_event(event);
        }
    };
    (@ on_connection_handler_event) => {
        fn on_connection_handler_event(
            &mut self,
            peer: libp2p::PeerId,
            id: libp2p::swarm::ConnectionId,
            event: libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            self.inner.on_connection_handler_event(peer, id, event);
        }
    };
    (@ poll) => {
        fn poll(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<
            libp2p::swarm::ToSwarm<Self::ToSwarm, libp2p::swarm::THandlerInEvent<Self>>,
        > {
            self.inner.poll(cx)
        }
    };
}

/// Writes the named `NetworkBehaviour` methods of a behaviour whose connections get
/// libp2p's `dummy` handler: it lets every connection be established and hears nothing
/// from its handlers.
macro_rules! no_handler {
    ($($method:ident),+ $(,)?) => { $( crate::net::delegate::no_handler!(@ $method); )+ };
    (@ handle_established_inbound_connection) => {
        fn handle_established_inbound_connection(
            &mut self,
            _: libp2p::swarm::ConnectionId,
            _: libp2p::PeerId,
            _: &libp2p::Multiaddr,
            _: &libp2p::Multiaddr,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            Ok(libp2p::swarm::dummy::ConnectionHandler)
        }
    };
    (@ handle_established_outbound_connection) => {
        fn handle_established_outbound_connection(
            &mut self,
            _: libp2p::swarm::ConnectionId,
            _: libp2p::PeerId,
            _: &libp2p::Multiaddr,
            _: libp2p::core::Endpoint,
            _: libp2p::core::transport::PortUse,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            Ok(libp2p::swarm::dummy::ConnectionHandler)
        }
    };
    (@ on_connection_handler_event) => {
        fn on_connection_handler_event(
            &mut self,
            _: libp2p::PeerId,
            _: libp2p::swarm::ConnectionId,
            event: libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            match event {}
        }
    };
}

pub(crate) use {forward_to_inner, no_handler};
