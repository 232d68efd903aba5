//! The actor's side of request-response: a request the node answers through a
//! [`NetEvent`](crate::net::NetEvent), answered off the event loop; replies to this node's
//! own requests; blob chunks served from the node's `BlobSource`.

use libp2p::request_response;
use tokio::sync::oneshot;

use super::Actor;
use crate::net::behaviour::Behaviour;
use crate::net::guarded::Leased;
use crate::net::rpc::{self, Answer, Handled, Served};
use crate::net::wire::{BlobReply, BlobRequest, MAX_CHUNK};

impl Actor {
    /// A request the node answers through an event, a reply to one of its own requests, or
    /// a failure of one.
    pub(super) fn on_served<R: Served>(
        &mut self,
        ev: request_response::Event<Leased<R>, R::Reply>,
    ) {
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
    pub(super) fn on_handled<R: rpc::Rpc>(&mut self, h: Handled<R>) {
        match h {
            Handled::Answered(peer) => self.swarm.behaviour_mut().doorman.useful(&peer),
            Handled::Request(..) | Handled::Done => {}
        }
    }

    /// A blob chunk asked of this node (served from its `BlobSource` off the event loop), or
    /// a reply to one it asked for.
    pub(super) fn on_blob_event(
        &mut self,
        ev: request_response::Event<Leased<BlobRequest>, BlobReply>,
    ) {
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
