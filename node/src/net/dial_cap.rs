//! Refuses to start a dial once the node holds its most outgoing connections.
//!
//! `connection_limits` checks the number of established outgoing connections only when a
//! new one is established, that is after its Noise handshake: a node at its limit that keeps
//! dialing (Kademlia's queries do) pays a full handshake on both sides for every connection it
//! then drops, and the other side sees a connection open and close. In a 500-node simulation
//! that churn was about a thousand handshakes a second and starved everything else. This
//! behaviour makes the same decision before the dial starts, where it costs nothing;
//! `connection_limits` still catches dials that were in flight together.

use std::collections::HashSet;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent,
    ToSwarm, dummy,
};

use super::delegate::no_handler;

/// Denies new dials while `max` outgoing connections are established.
pub(crate) struct DialCap {
    max: usize,
    outgoing: HashSet<ConnectionId>,
    refused: u64,
}

/// Why a dial was not started.
#[derive(Debug, thiserror::Error)]
#[error("{0} outgoing connections are open, the most this node opens")]
pub(crate) struct AtOutgoingLimit(usize);

impl DialCap {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            outgoing: HashSet::new(),
            refused: 0,
        }
    }

    /// Dials refused since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}

impl NetworkBehaviour for DialCap {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    no_handler!(
        handle_established_inbound_connection,
        handle_established_outbound_connection,
        on_connection_handler_event,
    );

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if self.outgoing.len() >= self.max {
            self.refused += 1;
            return Err(ConnectionDenied::new(AtOutgoingLimit(self.outgoing.len())));
        }
        Ok(vec![])
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Dialer { .. },
                ..
            }) => {
                self.outgoing.insert(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.outgoing.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
