//! The request-response protocols with their inbound budgets (see `budget.rs`): a codec that
//! asks the [`Guard`] before it reads a message's body, and a wrapper of libp2p's behaviour
//! that tells each connection's codec whose connection it is.
//!
//! libp2p's request-response codec is not told the peer: the behaviour clones its codec
//! once for each connection's handler (in `handle_established_*_connection`) and the handler
//! clones that one for each stream. [`Peered`] names the peer to the [`Guard`] just around
//! the behaviour's own call, so the handler's clone takes it, and every stream's clone
//! keeps it.

use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite};
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::request_response::{self, Codec};
use libp2p::swarm::{ConnectionDenied, ConnectionId, NetworkBehaviour, THandler};
use libp2p::{PeerId, StreamProtocol};
use sietch_market::B256;

use super::budget::{Denied, Guard, Lease};
use super::delegate::forward_to_inner;
use super::wire::{
    BlobReply, BlobRequest, JobReply, JobRequest, Payment, PaymentAck, ResultAck, ResultMessage,
    VerifyReply, VerifyRequest, WireMessage, write_frame,
};

/// A message with the budget it holds while the node works on it (`None` for messages this
/// node sends).
#[derive(Debug)]
pub(crate) struct Leased<M> {
    pub(crate) msg: M,
    pub(crate) lease: Option<Lease>,
}

impl<M> Leased<M> {
    pub(crate) fn outbound(msg: M) -> Self {
        Self { msg, lease: None }
    }
}

/// What is checked of an inbound message before its body is read.
pub(crate) trait Admit: WireMessage {
    /// Bytes of the body read before the check (at most 64).
    const HEAD: usize = 0;
    /// Whether a message of `len` bytes starting with `head` may be read from `peer`.
    fn admit(_guard: &Guard, _peer: PeerId, _head: &[u8], _len: u64) -> Result<(), Denied> {
        Ok(())
    }
}

/// The check of a result's stream (`/sietch/result/1`): every message on it starts with the
/// version and tag bytes and then the job id, which is all that is read before
/// [`Guard::admit_result`] says whether that peer was asked for that job and within what
/// bound. A message type carried on that protocol implements [`Admit`] with it.
pub(crate) const RESULT_HEAD: usize = 2 + 32;

/// [`Admit::admit`] for a message of the result protocol (see [`RESULT_HEAD`]).
pub(crate) fn admit_result(
    guard: &Guard,
    peer: PeerId,
    head: &[u8],
    len: u64,
) -> Result<(), Denied> {
    let job = head
        .get(2..RESULT_HEAD)
        .map_or(B256::ZERO, B256::from_slice);
    guard.admit_result(peer, job, len)
}

impl Admit for ResultMessage {
    const HEAD: usize = RESULT_HEAD;
    fn admit(guard: &Guard, peer: PeerId, head: &[u8], len: u64) -> Result<(), Denied> {
        admit_result(guard, peer, head, len)
    }
}

impl Admit for JobRequest {}
impl Admit for JobReply {}
impl Admit for ResultAck {}
impl Admit for BlobRequest {}
impl Admit for BlobReply {}
impl Admit for Payment {}
impl Admit for PaymentAck {}
impl Admit for VerifyRequest {}
impl Admit for VerifyReply {}

fn refused(d: Denied) -> io::Error {
    io::Error::other(d)
}

/// Reads one length-prefixed message, asking the guard for a stream slot first and for the
/// announced length before the body. The body grows as bytes arrive (a peer announcing
/// more than it sends makes the node reserve, not touch, the rest).
async fn read_guarded<M: Admit, T: AsyncRead + Unpin + Send>(
    io: &mut T,
    guard: &Arc<Guard>,
    peer: Option<PeerId>,
) -> io::Result<(M, Lease)> {
    let peer = peer.ok_or_else(|| refused(Denied::NoPeer))?;
    let mut lease = guard.open(peer).map_err(refused)?;
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > M::MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {}-byte limit", M::MAX),
        ));
    }
    let mut head = [0u8; 64];
    let head_len = M::HEAD.min(len).min(head.len());
    let head = head.get_mut(..head_len).unwrap_or_default();
    io.read_exact(head).await?;
    M::admit(guard, peer, head, len as u64).map_err(refused)?;
    lease.grow(len as u64).map_err(refused)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    buf.extend_from_slice(head);
    let rest = (len - head_len) as u64;
    AsyncReadExt::take(&mut *io, rest)
        .read_to_end(&mut buf)
        .await?;
    if buf.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let msg = M::from_bytes(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((msg, lease))
}

/// A request-response codec for a pair of wire messages, reading within the guard's budgets.
pub(crate) struct GuardedCodec<Req, Resp> {
    guard: Arc<Guard>,
    peer: Option<PeerId>,
    _m: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> GuardedCodec<Req, Resp> {
    pub(crate) fn new(guard: Arc<Guard>) -> Self {
        Self {
            guard,
            peer: None,
            _m: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for GuardedCodec<Req, Resp> {
    /// A connection's codec takes the peer the [`Peered`] wrapper named; a stream's keeps
    /// its connection's.
    fn clone(&self) -> Self {
        Self {
            guard: self.guard.clone(),
            peer: self.peer.or_else(|| self.guard.next_peer()),
            _m: PhantomData,
        }
    }
}

impl<Req: Admit + 'static, Resp: Admit + 'static> Codec for GuardedCodec<Req, Resp> {
    type Protocol = StreamProtocol;
    type Request = Leased<Req>;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Leased<Req>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let (msg, lease) = read_guarded(io, &self.guard, self.peer).await?;
        Ok(Leased {
            msg,
            lease: Some(lease),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        // A reply to this node's own request: held while it is read and decoded, then its
        // caller's.
        let (msg, _lease) = read_guarded(io, &self.guard, self.peer).await?;
        Ok(msg)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Leased<Req>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.msg.to_bytes()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.to_bytes()).await
    }
}

/// libp2p's request-response behaviour, naming each connection's peer to its codec.
pub(crate) struct Peered<C: Codec + Clone + Send + 'static> {
    inner: request_response::Behaviour<C>,
    guard: Arc<Guard>,
}

impl<C: Codec + Clone + Send + 'static> Peered<C> {
    pub(crate) fn new(inner: request_response::Behaviour<C>, guard: Arc<Guard>) -> Self {
        Self { inner, guard }
    }
}

impl<C: Codec + Clone + Send + 'static> Deref for Peered<C> {
    type Target = request_response::Behaviour<C>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<C: Codec + Clone + Send + 'static> DerefMut for Peered<C> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl<C> NetworkBehaviour for Peered<C>
where
    C: Codec + Clone + Send + 'static,
{
    type ConnectionHandler =
        <request_response::Behaviour<C> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = <request_response::Behaviour<C> as NetworkBehaviour>::ToSwarm;

    forward_to_inner!(
        handle_pending_inbound_connection,
        handle_pending_outbound_connection,
        on_swarm_event,
        on_connection_handler_event,
        poll,
    );

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.guard.set_next_peer(Some(peer));
        let r = self
            .inner
            .handle_established_inbound_connection(id, peer, local, remote);
        self.guard.set_next_peer(None);
        r
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.guard.set_next_peer(Some(peer));
        let r = self
            .inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use);
        self.guard.set_next_peer(None);
        r
    }
}
