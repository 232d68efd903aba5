//! The node's dispatcher: network and chain events handed to the roles.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::buyer::Buyer;
use crate::chain::ChainEvent;
use crate::events::{Events, NodeEvent};
use crate::net::{self, JobReply, NetEvent, RefuseReason, ResultMessage};
use crate::provider::Provider;

/// Hands network and chain events to the roles.
pub(super) async fn dispatch(
    mut net_events: mpsc::Receiver<NetEvent>,
    mut chain_events: mpsc::Receiver<ChainEvent>,
    credited: Arc<tokio::sync::Notify>,
    events: Events,
    activity: crate::activity::Activity,
    buyer: Arc<Buyer>,
    provider: Option<Arc<Provider>>,
) {
    loop {
        tokio::select! {
            ev = net_events.recv() => match ev {
                None => return,
                Some(ev) => on_net_event(ev, &events, &buyer, provider.as_ref()),
            },
            Some(ev) = chain_events.recv() => {
                if let Some(r) = activity.chain_event(ev.block, (net::system_clock())(), &ev.event) {
                    events.emit(NodeEvent::Escrow {
                        name: r.kind.to_owned(),
                        block: r.block,
                        seen_at: r.seen_at,
                        fields: r.fields,
                    });
                }
                if let sietch_contracts::SietchEscrow::SietchEscrowEvents::Credited(e) = &ev.event
                    && buyer.address() == e.account
                {
                    credited.notify_one();
                }
                let (b, p) = (buyer.clone(), provider.clone());
                tokio::spawn(async move {
                    b.on_chain_event(&ev.event).await;
                    if let Some(p) = p {
                        p.on_chain_event(&ev.event).await;
                    }
                });
            }
        }
    }
}

fn on_net_event(
    ev: NetEvent,
    events: &Events,
    buyer: &Arc<Buyer>,
    provider: Option<&Arc<Provider>>,
) {
    let no_provider = "this node does not provide compute (start it with --provide)";
    match ev {
        NetEvent::Connected { peer, address } => {
            events.emit(NodeEvent::Connected { peer, address })
        }
        NetEvent::Disconnected { peer } => events.emit(NodeEvent::Disconnected { peer }),
        NetEvent::HolePunch { peer, ok, detail } => {
            events.emit(NodeEvent::HolePunch { peer, ok, detail })
        }
        NetEvent::PeerBanned { peer } => events.emit(NodeEvent::Banned { peer }),
        NetEvent::JobRequested {
            peer,
            request,
            reply,
        } => match provider {
            None => {
                let _ = reply.send(JobReply::Refused {
                    reason: RefuseReason::Other,
                    message: no_provider.into(),
                });
            }
            Some(p) => {
                let p = p.clone();
                tokio::spawn(async move { p.on_job(peer, *request, reply).await });
            }
        },
        NetEvent::ResultReceived {
            peer,
            result,
            reply,
        } => {
            let _ = reply.send(buyer.on_result(peer, ResultMessage::Done(result)));
        }
        NetEvent::FailureReceived {
            peer,
            failure,
            reply,
        } => {
            let _ = reply.send(buyer.on_result(peer, ResultMessage::Failed(failure)));
        }
        NetEvent::PaymentReceived {
            peer,
            payment,
            reply,
        } => {
            match provider {
                // Off the dispatch loop: a payment is a signature check and a durable write.
                Some(p) => {
                    let p = p.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = reply.send(p.on_payment(peer, &payment));
                    });
                }
                None => {
                    let _ = reply.send(net::PaymentAck::Refused {
                        message: no_provider.into(),
                    });
                }
            }
        }
        NetEvent::VerifyRequested {
            peer,
            request,
            reply,
        } => match provider {
            None => {
                let _ = reply.send(net::VerifyReply::Refused {
                    message: no_provider.into(),
                });
            }
            Some(p) => {
                let p = p.clone();
                tokio::spawn(async move { p.on_verify(peer, *request, reply).await });
            }
        },
    }
}
