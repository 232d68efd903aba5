//! Incoming connections per address, and room for newcomers when the node is full.
//!
//! `connection_limits` bounds connections in total; it cannot tell one address from many,
//! so 128 idle sockets from one host held every pending slot for the handshake timeout.
//! This behaviour:
//!
//! - refuses an incoming connection, before its handshake, when its IP already has
//!   `max_pending_per_ip` connections in handshake, and after the handshake when the IP
//!   has `max_incoming_per_ip` established incoming connections;
//! - when `max_incoming` incoming connections are established, makes room for a new one by
//!   closing the least useful incoming connection older than [`GRACE`]: the one whose peer
//!   has been useful (an accepted offer, a request or an answer, as the actor reports with
//!   [`Doorman::useful`]) least recently, a peer never useful first, the oldest
//!   connection among equals. With none old enough, the newcomer is refused.
//!
//! Addresses without an IP (the memory transport, relayed circuits) are not limited per
//! address.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::core::{ConnectedPoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, ToSwarm, dummy,
};

use super::delegate::no_handler;

/// How long a new incoming connection is safe from eviction: time to identify itself and
/// be useful.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Why an incoming connection was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{ip} has {n} connections in handshake, the most one address may")]
    Pending { ip: IpAddr, n: u32 },
    #[error("{ip} has {n} incoming connections, the most one address may")]
    Established { ip: IpAddr, n: u32 },
    #[error("{0} incoming connections are open and none may be evicted yet")]
    Full(usize),
}

/// The limits of the doorman.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_incoming: u32,
    pub(crate) max_pending_per_ip: u32,
    pub(crate) max_incoming_per_ip: u32,
}

struct Incoming {
    peer: PeerId,
    ip: Option<IpAddr>,
    since: Instant,
}

/// Per-address limits and eviction of incoming connections.
pub(crate) struct Doorman {
    limits: Limits,
    pending: HashMap<ConnectionId, IpAddr>,
    pending_per_ip: HashMap<IpAddr, u32>,
    incoming: HashMap<ConnectionId, Incoming>,
    incoming_per_ip: HashMap<IpAddr, u32>,
    /// Peers with a connection, and when each was last useful; an entry goes with the
    /// peer's last connection.
    useful: HashMap<PeerId, Option<Instant>>,
    connections_of: HashMap<PeerId, u32>,
    /// Connections to close, not yet asked of the swarm (bounded by those established).
    to_close: VecDeque<(PeerId, ConnectionId)>,
    /// Connections asked to close, until they have.
    closing: HashSet<ConnectionId>,
    waker: Option<Waker>,
    refused: u64,
    evicted: u64,
}

/// The IP of an address, unless it is relayed.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn dec(map: &mut HashMap<IpAddr, u32>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

impl Doorman {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            pending: HashMap::new(),
            pending_per_ip: HashMap::new(),
            incoming: HashMap::new(),
            incoming_per_ip: HashMap::new(),
            useful: HashMap::new(),
            connections_of: HashMap::new(),
            to_close: VecDeque::new(),
            closing: HashSet::new(),
            waker: None,
            refused: 0,
            evicted: 0,
        }
    }

    /// Records that a connected peer was useful now.
    pub(crate) fn useful(&mut self, peer: &PeerId) {
        if let Some(at) = self.useful.get_mut(peer) {
            *at = Some(Instant::now());
        }
    }

    /// Incoming connections refused by these limits since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// Incoming connections closed to make room since start.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    fn deny(&mut self, why: Refused) -> ConnectionDenied {
        self.refused += 1;
        tracing::debug!("incoming connection refused: {why}");
        ConnectionDenied::new(why)
    }

    /// The incoming connection to close for a newcomer, if any is past its grace.
    fn victim(&self, now: Instant) -> Option<(PeerId, ConnectionId)> {
        self.incoming
            .iter()
            .filter(|(id, c)| {
                now.saturating_duration_since(c.since) >= GRACE && !self.closing.contains(id)
            })
            .min_by_key(|(_, c)| (self.useful.get(&c.peer).copied().flatten(), c.since))
            .map(|(id, c)| (c.peer, *id))
    }
}

impl NetworkBehaviour for Doorman {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    no_handler!(
        handle_established_outbound_connection,
        on_connection_handler_event,
    );

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        let n = self.pending_per_ip.get(&ip).copied().unwrap_or(0);
        if n >= self.limits.max_pending_per_ip {
            return Err(self.deny(Refused::Pending { ip, n }));
        }
        self.pending_per_ip.insert(ip, n + 1);
        self.pending.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = self.pending.remove(&id) {
            dec(&mut self.pending_per_ip, ip);
        }
        if let Some(ip) = ip_of(remote) {
            let n = self.incoming_per_ip.get(&ip).copied().unwrap_or(0);
            if n >= self.limits.max_incoming_per_ip {
                return Err(self.deny(Refused::Established { ip, n }));
            }
        }
        let open = self.incoming.len().saturating_sub(self.closing.len());
        if open >= self.limits.max_incoming as usize {
            match self.victim(Instant::now()) {
                Some(v) => {
                    tracing::debug!(peer = %v.0, "closing the least useful incoming connection for a newcomer");
                    self.closing.insert(v.1);
                    self.to_close.push_back(v);
                    self.evicted += 1;
                    if let Some(w) = self.waker.take() {
                        w.wake();
                    }
                }
                None => return Err(self.deny(Refused::Full(open))),
            }
        }
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                if let Some(ip) = self.pending.remove(&connection_id) {
                    dec(&mut self.pending_per_ip, ip);
                }
            }
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                *self.connections_of.entry(peer_id).or_default() += 1;
                self.useful.entry(peer_id).or_insert(None);
                if let ConnectedPoint::Listener { send_back_addr, .. } = endpoint {
                    let ip = ip_of(send_back_addr);
                    if let Some(ip) = ip {
                        *self.incoming_per_ip.entry(ip).or_default() += 1;
                    }
                    self.incoming.insert(
                        connection_id,
                        Incoming {
                            peer: peer_id,
                            ip,
                            since: Instant::now(),
                        },
                    );
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                if let Some(c) = self.incoming.remove(&connection_id)
                    && let Some(ip) = c.ip
                {
                    dec(&mut self.incoming_per_ip, ip);
                }
                self.closing.remove(&connection_id);
                self.to_close.retain(|(_, c)| *c != connection_id);
                if let Some(n) = self.connections_of.get_mut(&peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.connections_of.remove(&peer_id);
                        self.useful.remove(&peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doorman() -> Doorman {
        Doorman::new(Limits {
            max_incoming: 3,
            max_pending_per_ip: 2,
            max_incoming_per_ip: 2,
        })
    }

    fn addr(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/4000").parse().unwrap()
    }

    fn local() -> Multiaddr {
        addr("127.0.0.1")
    }

    /// A connection from `ip` through the pending and established checks, as the swarm
    /// makes it.
    fn connect(d: &mut Doorman, id: usize, peer: PeerId, ip: &str) -> Result<(), ConnectionDenied> {
        let id = ConnectionId::new_unchecked(id);
        let remote = addr(ip);
        d.handle_pending_inbound_connection(id, &local(), &remote)?;
        d.handle_established_inbound_connection(id, peer, &local(), &remote)?;
        let endpoint = ConnectedPoint::Listener {
            local_addr: local(),
            send_back_addr: remote,
        };
        d.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        Ok(())
    }

    #[test]
    fn pending_connections_per_ip_are_bounded_and_given_back() {
        let mut d = doorman();
        let a = addr("10.0.0.1");
        for i in 0..2 {
            d.handle_pending_inbound_connection(ConnectionId::new_unchecked(i), &local(), &a)
                .unwrap();
        }
        let third = ConnectionId::new_unchecked(2);
        assert!(
            d.handle_pending_inbound_connection(third, &local(), &a)
                .is_err()
        );
        // Another address is not held up.
        d.handle_pending_inbound_connection(third, &local(), &addr("10.0.0.2"))
            .unwrap();
        // A failed handshake gives its slot back.
        let error = libp2p::swarm::ListenError::Aborted;
        d.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local(),
            send_back_addr: &a,
            error: &error,
            connection_id: ConnectionId::new_unchecked(0),
            peer_id: None,
        }));
        d.handle_pending_inbound_connection(ConnectionId::new_unchecked(9), &local(), &a)
            .unwrap();
        assert_eq!(d.refused(), 1);
    }

    #[test]
    fn established_connections_per_ip_are_bounded() {
        let mut d = doorman();
        connect(&mut d, 1, PeerId::random(), "10.0.0.1").unwrap();
        connect(&mut d, 2, PeerId::random(), "10.0.0.1").unwrap();
        assert!(connect(&mut d, 3, PeerId::random(), "10.0.0.1").is_err());
        connect(&mut d, 4, PeerId::random(), "10.0.0.2").unwrap();
    }

    #[test]
    fn when_full_the_least_useful_connection_past_its_grace_makes_room() {
        let mut d = doorman();
        let (useful, idle, other) = (PeerId::random(), PeerId::random(), PeerId::random());
        connect(&mut d, 1, useful, "10.0.0.1").unwrap();
        connect(&mut d, 2, idle, "10.0.0.2").unwrap();
        connect(&mut d, 3, other, "10.0.0.3").unwrap();
        d.useful(&useful);
        d.useful(&other);
        // All three are within their grace: a newcomer is refused.
        assert!(connect(&mut d, 4, PeerId::random(), "10.0.0.4").is_err());
        // Past it, the peer never useful goes first.
        let later = Instant::now() + GRACE;
        assert_eq!(
            d.victim(later),
            Some((idle, ConnectionId::new_unchecked(2)))
        );
        for c in d.incoming.values_mut() {
            c.since -= GRACE;
        }
        connect(&mut d, 5, PeerId::random(), "10.0.0.5").unwrap();
        assert_eq!(d.evicted(), 1);
        assert_eq!(
            d.to_close.front().copied(),
            Some((idle, ConnectionId::new_unchecked(2)))
        );
    }

    #[test]
    fn the_ip_of_an_address() {
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/5".parse().unwrap();
        assert_eq!(ip_of(&a), Some("10.0.0.1".parse().unwrap()));
        let r: Multiaddr = "/ip4/10.0.0.1/tcp/5/p2p-circuit".parse().unwrap();
        assert_eq!(ip_of(&r), None);
        let m: Multiaddr = "/memory/5".parse().unwrap();
        assert_eq!(ip_of(&m), None);
    }
}
