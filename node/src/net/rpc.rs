//! The request-response protocols, generically. Each request type names its reply, its
//! behaviour and the table of callers waiting for replies to it; a protocol whose requests
//! the node answers (all but blobs, which the actor serves from its `BlobSource`) also names
//! the event that hands a request to the node and the reply sent when the node cannot take
//! it. The actor then handles every protocol with the same two functions.

use std::collections::HashMap;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId};
use tokio::sync::oneshot;

use super::behaviour::Behaviour;
use super::guarded::{Admit, GuardedCodec, Leased, Peered};
use super::wire::{
    BlobReply, BlobRequest, JobReply, JobRequest, Payment, PaymentAck, RefuseReason, ResultAck,
    ResultMessage, VerifyReply, VerifyRequest,
};
use super::{NetError, NetEvent};

/// Where the reply to an outbound request goes.
pub(crate) type Waiter<T> = oneshot::Sender<Result<T, NetError>>;

/// The behaviour of a request type: libp2p's, reading within the inbound budgets.
pub(crate) type Rr<R> = Peered<GuardedCodec<R, <R as Rpc>::Reply>>;

/// An answer the node has made, to be sent on the behaviour.
pub(crate) type Answer = Box<dyn FnOnce(&mut Behaviour) + Send>;

/// A queued outbound request: sends itself and records its waiter.
pub(crate) type Outbound = Box<dyn FnOnce(&mut Behaviour, &mut Waiters) + Send>;

/// Callers waiting for replies, per protocol. Bounded by the command queue and each
/// behaviour's stream limit: every entry is removed by its reply or its failure.
#[derive(Default)]
pub(crate) struct Waiters {
    job: HashMap<OutboundRequestId, Waiter<JobReply>>,
    result: HashMap<OutboundRequestId, Waiter<ResultAck>>,
    blob: HashMap<OutboundRequestId, Waiter<BlobReply>>,
    pay: HashMap<OutboundRequestId, Waiter<PaymentAck>>,
    verify: HashMap<OutboundRequestId, Waiter<VerifyReply>>,
}

/// A request type of one of the node's protocols.
pub(crate) trait Rpc: Admit + Send + 'static {
    /// Its reply.
    type Reply: Admit + Send + 'static;
    /// Its behaviour in the swarm.
    fn behaviour(b: &mut Behaviour) -> &mut Rr<Self>;
    /// Its waiting callers.
    fn waiters(w: &mut Waiters) -> &mut HashMap<OutboundRequestId, Waiter<Self::Reply>>;
}

/// A request type the node answers itself.
pub(crate) trait Served: Rpc {
    /// The event that hands the request to the node.
    fn event(peer: PeerId, request: Self, reply: oneshot::Sender<Self::Reply>) -> NetEvent;
    /// The reply when the node cannot take the request (its queue is full, or it dropped
    /// the reply).
    fn unavailable() -> Self::Reply;
}

/// A request to send: the closure the actor runs.
pub(crate) fn outbound<R: Rpc>(peer: PeerId, request: R, reply: Waiter<R::Reply>) -> Outbound {
    Box::new(move |b: &mut Behaviour, w: &mut Waiters| {
        let id = R::behaviour(b).send_request(&peer, Leased::outbound(request));
        R::waiters(w).insert(id, reply);
    })
}

/// What an event of a request-response protocol leaves for the actor.
pub(crate) enum Handled<R: Rpc> {
    /// A request for the node, with the budget it holds until it is answered.
    Request(
        PeerId,
        Leased<R>,
        request_response::ResponseChannel<R::Reply>,
    ),
    /// A peer answered one of this node's requests.
    Answered(PeerId),
    /// Nothing more to do.
    Done,
}

/// Hands a reply or a failure to its waiter; returns an inbound request for the caller to
/// handle. (A message the guard refused never gets here: libp2p reports a failed read to
/// no one, so the guard reports it to the actor itself.)
pub(crate) fn on_outbound<R: Rpc>(
    waiters: &mut Waiters,
    ev: request_response::Event<Leased<R>, R::Reply>,
) -> Handled<R> {
    match ev {
        request_response::Event::Message { peer, message, .. } => match message {
            request_response::Message::Request {
                request, channel, ..
            } => Handled::Request(peer, request, channel),
            request_response::Message::Response {
                request_id,
                response,
            } => {
                if let Some(w) = R::waiters(waiters).remove(&request_id) {
                    let _ = w.send(Ok(response));
                }
                Handled::Answered(peer)
            }
        },
        request_response::Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } => {
            // A reply refused by the guard fails its request like any other failure; it
            // costs the peer nothing (this node asked, and the budget may be full of
            // others' messages).
            if let Some(w) = R::waiters(waiters).remove(&request_id) {
                let _ = w.send(Err(NetError::Request {
                    peer,
                    reason: error.to_string(),
                }));
            }
            Handled::Done
        }
        _ => Handled::Done,
    }
}

macro_rules! rpc {
    ($req:ty => $reply:ty, $field:ident) => {
        impl Rpc for $req {
            type Reply = $reply;
            fn behaviour(b: &mut Behaviour) -> &mut Rr<Self> {
                &mut b.$field
            }
            fn waiters(w: &mut Waiters) -> &mut HashMap<OutboundRequestId, Waiter<Self::Reply>> {
                &mut w.$field
            }
        }
    };
}

rpc!(JobRequest => JobReply, job);
rpc!(ResultMessage => ResultAck, result);
rpc!(BlobRequest => BlobReply, blob);
rpc!(Payment => PaymentAck, pay);
rpc!(VerifyRequest => VerifyReply, verify);

impl Served for JobRequest {
    fn event(peer: PeerId, request: Self, reply: oneshot::Sender<JobReply>) -> NetEvent {
        NetEvent::JobRequested {
            peer,
            request: Box::new(request),
            reply,
        }
    }
    fn unavailable() -> JobReply {
        JobReply::Refused {
            reason: RefuseReason::Busy,
            message: "the provider's queue is full; try again or pick another offer".into(),
        }
    }
}

impl Served for ResultMessage {
    fn event(peer: PeerId, message: Self, reply: oneshot::Sender<ResultAck>) -> NetEvent {
        match message {
            ResultMessage::Done(result) => NetEvent::ResultReceived {
                peer,
                result,
                reply,
            },
            ResultMessage::Failed(failure) => NetEvent::FailureReceived {
                peer,
                failure,
                reply,
            },
        }
    }
    // The provider retries: a result is never dropped silently.
    fn unavailable() -> ResultAck {
        ResultAck::UnknownJob
    }
}

impl Served for Payment {
    fn event(peer: PeerId, payment: Self, reply: oneshot::Sender<PaymentAck>) -> NetEvent {
        NetEvent::PaymentReceived {
            peer,
            payment: Box::new(payment),
            reply,
        }
    }
    fn unavailable() -> PaymentAck {
        PaymentAck::Refused {
            message: "the provider is busy; send the payment again".into(),
        }
    }
}

impl Served for VerifyRequest {
    fn event(peer: PeerId, request: Self, reply: oneshot::Sender<VerifyReply>) -> NetEvent {
        NetEvent::VerifyRequested {
            peer,
            request: Box::new(request),
            reply,
        }
    }
    fn unavailable() -> VerifyReply {
        VerifyReply::Refused {
            message: "the verifier is busy; ask again".into(),
        }
    }
}
