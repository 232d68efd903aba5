//! Paying and withholding. An accepted job is paid by a new cumulative voucher on its lane,
//! recorded first (the voucher is money); the payment then waits on the lane for the next
//! job's request to carry it, or goes alone after [`PAYMENT_CARRY_WAIT`]; its check secret is
//! kept with the voucher, so that a restarted buyer can send it again ([`super::restore`],
//! [`Buyer::deliver_restored`]). A withheld job is told so, its lane retired and its ticket
//! disputed if claimed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use sietch_market::Eip712Error;
use sietch_market::eip712::TypedData;
use sietch_market::{Address, B256, U256, Voucher};
use sietch_verifier::Check;

use super::attempt::Delivered;
use super::chain_events::Disputable;
use super::{Buyer, PAYMENT_CARRY_WAIT, now};
use crate::net::{self, Payment, PaymentAck};
use crate::store::{Delivery, EvmSigned, StoreError};
use crate::sync::lock;

/// How long a restarted buyer looks for the provider of a payment it sends again (see
/// [`Buyer::deliver_restored`]).
const RESTORED_PAYMENT_WAIT: Duration = Duration::from_secs(600);

/// Times a payment sent alone is tried before the buyer gives up on it (the provider then
/// claims the job's ticket on chain), [`PAYMENT_RETRY`] apart, doubling.
const PAYMENT_TRIES: u8 = 5;
const PAYMENT_RETRY: Duration = Duration::from_millis(500);

/// Logs a provider's refusal of a payment (recorded or not, the buyer signed it: a refusal
/// is the provider's view of it, worth a look).
fn payment_answered(job: &B256, ack: PaymentAck) {
    if let PaymentAck::Refused { message } = ack {
        tracing::warn!("the provider refused the payment of {job}: {message}");
    }
}

/// What a payment settles in the buyer's records.
#[derive(Debug, Clone, Copy)]
pub(super) enum Paying {
    /// Its own job, whose delivery and check are recorded.
    Job(B256),
    /// Its own job, delivered and not sampled: recorded with the payment, in one commit.
    Delivered(B256),
    /// A spot check's re-run: only the voucher.
    Rerun,
}

/// Why a job could not be paid. Nothing was sent: the lane stays held.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// The voucher could not be signed.
    #[error("cannot sign the voucher: {0}")]
    Sign(#[from] Eip712Error),
    /// The voucher could not be recorded.
    #[error("cannot record the voucher: {0}")]
    Store(#[from] StoreError),
    /// The store's task stopped.
    #[error("the store's task stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

impl Buyer {
    /// Signs the voucher that pays `d`, records it, leaves it on the lane for the provider
    /// (see [`super::lanes::Lane::pending`]) and frees the lane.
    pub(super) async fn pay(&self, d: &Delivered, paying: Paying) -> Result<U256, PayError> {
        let amount = d.result.commitment.amount;
        let voucher = Voucher {
            channel_id: d.taken.channel,
            cumulative_amount: d.taken.cumulative_before + amount,
        };
        let sig = voucher.sign(&self.domain, &self.evm)?;
        let signed = EvmSigned::new(voucher, sig);
        // A durable write (the voucher is money): off the async threads. A job's own payment
        // keeps its secret with the voucher, so that a restarted buyer can send it again.
        let store = self.store.clone();
        let secret = d.secret;
        let delivered = matches!(paying, Paying::Delivered(_)).then(|| Delivery {
            provider: d.taken.provider,
            ticket: d.ticket,
            result: EvmSigned::new(d.result.commitment, d.result.signature),
            outputs: net::wire::WireMessage::to_bytes(&d.result),
        });
        tokio::task::spawn_blocking(move || match paying {
            Paying::Job(id) | Paying::Delivered(id) => store
                .pay_job(&id, &signed, &secret, delivered, now())
                .map(|_| ()),
            Paying::Rerun => store.put_voucher(&signed).map(|_| ()),
        })
        .await??;
        let payment = Payment {
            job_id: d.ticket.message.job_id,
            secret: d.secret,
            voucher: Some((voucher, sig)),
            note: String::new(),
        };
        // The payment waits on the lane for the next job's request, which the provider
        // takes only with the voucher that ends this job's range; a lane left idle sends it
        // alone. The provider keeps the ticket either way; a lost payment is claimed on
        // chain.
        self.wait_on_lane(d.taken.channel, d.peer, payment);
        self.advance_lane(&d.taken, voucher.cumulative_amount);
        Ok(amount)
    }

    /// Takes the payment waiting on a lane, to carry it in a job request.
    pub(super) fn take_pending(&self, channel: B256) -> Option<Payment> {
        lock(&self.lanes).take_pending(channel)
    }

    /// Leaves a payment on its lane (see [`super::lanes::Lane::pending`]). A lane holds one:
    /// a job takes the lane's payment with the lane, and pays before it frees it.
    pub(super) fn wait_on_lane(&self, channel: B256, peer: PeerId, payment: Payment) {
        let alone = lock(&self.lanes).leave_payment(channel, peer, payment, Instant::now());
        // Never silently replaced: an older payment still waiting goes out alone.
        if let Some((p, peer)) = alone {
            let net = self.net.clone();
            tokio::spawn(async move {
                let job = p.job_id;
                match net.send_payment(peer, p).await {
                    Ok(ack) => payment_answered(&job, ack),
                    Err(e) => tracing::warn!("sending the payment of {job}: {e}"),
                }
            });
        }
        self.payment_waits.notify_one();
    }

    /// Sends the payments that waited [`PAYMENT_CARRY_WAIT`] on an idle lane, until the node
    /// stops.
    pub(crate) async fn carry_payments(self: Arc<Self>) {
        loop {
            self.payment_waits.notified().await;
            loop {
                tokio::time::sleep(PAYMENT_CARRY_WAIT).await;
                if !self.send_waiting_payments(PAYMENT_CARRY_WAIT).await {
                    break;
                }
            }
        }
    }

    /// Sends alone every payment that has waited `at_least` on a lane no job holds; returns
    /// whether payments still wait. The lane is held while its payment is on the way, so
    /// that no job's request overtakes it.
    async fn send_waiting_payments(&self, at_least: Duration) -> bool {
        let (due, mut left) = lock(&self.lanes).due_payments(at_least, Instant::now());
        let sends = due.into_iter().map(|(channel, peer, p, tries)| async move {
            let job = p.job_id;
            let again = match self.net.send_payment(peer, p.clone()).await {
                Ok(ack) => {
                    payment_answered(&job, ack);
                    false
                }
                // Not delivered: it waits on the lane again, a while later, a few times.
                Err(e) if tries + 1 < PAYMENT_TRIES => {
                    tracing::warn!("sending the payment of {job} (try {}): {e}", tries + 1);
                    let at = Instant::now() + PAYMENT_RETRY * 2u32.pow(u32::from(tries));
                    lock(&self.lanes).send_again(channel, peer, p, tries + 1, at)
                }
                Err(e) => {
                    tracing::warn!(
                        "the payment of {job} did not reach its provider in {PAYMENT_TRIES} \
                         tries ({e}): the provider may claim the job's ticket on chain"
                    );
                    false
                }
            };
            lock(&self.lanes).release(channel, false);
            again
        });
        for again in futures::future::join_all(sends).await {
            left |= again;
        }
        self.lane_freed.notify_waiters();
        left
    }

    /// Gives the payments a restarted buyer sends again (see [`super::restore`]) their
    /// provider's peer once its offer is in the book, so that they go alone (a job to the
    /// provider carries its lane's payment before that); gives up, retiring their lanes,
    /// those whose provider has not come back within [`RESTORED_PAYMENT_WAIT`].
    pub(super) async fn deliver_restored(self: Arc<Self>) {
        let started = Instant::now();
        let mut every = Duration::from_millis(100);
        loop {
            let peerless = lock(&self.lanes).peerless();
            if peerless.is_empty() {
                return;
            }
            if started.elapsed() >= RESTORED_PAYMENT_WAIT {
                for channel in lock(&self.lanes).give_up_peerless() {
                    tracing::warn!(
                        %channel,
                        "the provider of a restored lane did not come back: its payment is \
                         not sent again, the lane is retired and closed, and the provider \
                         claims what it is owed on chain"
                    );
                }
                self.lane_freed.notify_waiters();
                return;
            }
            let mut found = false;
            for (channel, provider) in peerless {
                let Some((peer, addresses)) = self.offered_peer(provider) else {
                    continue;
                };
                for a in addresses {
                    if let Err(e) = self.net.add_address(peer, a).await {
                        tracing::debug!("adding an address of {peer}: {e}");
                    }
                }
                found |= lock(&self.lanes).found_peer(channel, peer);
            }
            if found {
                self.payment_waits.notify_one();
            }
            tokio::time::sleep(every).await;
            every = (every * 2).min(Duration::from_secs(5));
        }
    }

    /// The peer of the provider at `provider`, and its addresses, from its offer in the book.
    fn offered_peer(&self, provider: Address) -> Option<(PeerId, Vec<Multiaddr>)> {
        let book = self.net.book();
        let book = lock(&book);
        let offer = &book
            .iter()
            .find(|o| o.payload.evm_address == provider)?
            .payload;
        let peer = net::peer_id_of(&offer.provider)?;
        let addresses = offer.addresses.iter().filter_map(|a| a.parse().ok());
        Some((peer, addresses.collect()))
    }

    /// Sends every payment still waiting on a lane (on the way out, before closes).
    pub async fn send_payments_now(&self) {
        // Lanes held by a job pay when it ends; a few rounds let those finish.
        for _ in 0..50 {
            if !self.send_waiting_payments(Duration::ZERO).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the provider it is not paid, and why; the lane takes no more tickets, and the
    /// ticket is disputed if the provider claims it.
    pub(super) async fn withhold(&self, d: &Delivered, why: &str, check: Option<Check>) {
        self.release_lane(&d.taken, true);
        let job = d.ticket.message.job_id;
        let ticket = sietch_market::ticket_id(&d.taken.channel, &job);
        self.mark_disputable(
            ticket,
            Disputable {
                job,
                channel: d.taken.channel,
                check,
                undelivered: false,
            },
        )
        .await;
        self.dispute_if_claimed(ticket).await;
        let payment = Payment {
            job_id: job,
            secret: d.secret,
            voucher: None,
            note: why.to_owned(),
        };
        // Unheard, it claims the ticket on chain all the same, and the claim is disputed.
        if let Err(e) = self.net.send_payment(d.peer, payment).await {
            tracing::debug!("telling {} that job {job} is not paid: {e}", d.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use sietch_market::U256;

    use super::super::lanes::tests::{P, ch, with_lane};
    use super::super::lanes::{Room, Take};
    use super::*;

    fn payment(job: u8, cumulative: u64) -> Payment {
        Payment {
            job_id: B256::repeat_byte(job),
            secret: B256::repeat_byte(job + 100),
            voucher: Some((
                Voucher {
                    channel_id: ch(1),
                    cumulative_amount: U256::from(cumulative),
                },
                [0; 65],
            )),
            note: String::new(),
        }
    }

    fn room() -> Room {
        Room {
            opening: 0,
            max_lanes: Some(1),
            may_open: true,
        }
    }

    #[test]
    fn a_payment_waits_on_its_lane_and_rides_with_the_next_job() {
        let mut lanes = with_lane(1, 100);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert!(
            lanes
                .leave_payment(ch(1), peer, payment(1, 10), t0)
                .is_none()
        );
        // Not due before its wait is over: nothing goes alone.
        let (due, left) = lanes.due_payments(PAYMENT_CARRY_WAIT, t0);
        assert!(due.is_empty() && left);
        // The next job takes the lane, then the payment to carry in its request.
        assert!(matches!(
            lanes.take(P, U256::from(1), room()),
            Take::Ready(_)
        ));
        assert_eq!(lanes.take_pending(ch(1)), Some(payment(1, 10)));
        assert_eq!(lanes.take_pending(ch(1)), None, "carried once");
        let (due, left) = lanes.due_payments(Duration::ZERO, t0 + PAYMENT_CARRY_WAIT);
        assert!(due.is_empty() && !left, "nothing left to send alone");
    }

    #[test]
    fn a_payment_on_an_idle_lane_goes_alone_and_holds_the_lane_meanwhile() {
        let mut lanes = with_lane(1, 100);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert!(
            lanes
                .leave_payment(ch(1), peer, payment(1, 10), t0)
                .is_none()
        );
        let (due, left) = lanes.due_payments(PAYMENT_CARRY_WAIT, t0 + PAYMENT_CARRY_WAIT);
        assert_eq!(due, vec![(ch(1), peer, payment(1, 10), 0)]);
        assert!(!left);
        // While it is on its way no job's request may overtake it.
        assert_eq!(lanes.take(P, U256::from(1), room()), Take::Wait);
        lanes.release(ch(1), false);
        assert!(matches!(
            lanes.take(P, U256::from(1), room()),
            Take::Ready(_)
        ));
    }

    #[test]
    fn a_payment_on_a_held_lane_is_not_sent_alone() {
        let mut lanes = with_lane(1, 100);
        let peer = PeerId::random();
        assert!(matches!(
            lanes.take(P, U256::from(1), room()),
            Take::Ready(_)
        ));
        let t0 = Instant::now();
        lanes.leave_payment(ch(1), peer, payment(1, 10), t0);
        let (due, left) = lanes.due_payments(Duration::ZERO, t0 + Duration::from_secs(1));
        assert!(due.is_empty(), "the job holding the lane carries it");
        assert!(left);
    }

    #[test]
    fn a_waiting_payment_is_never_silently_replaced() {
        let mut lanes = with_lane(1, 100);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert!(
            lanes
                .leave_payment(ch(1), peer, payment(1, 10), t0)
                .is_none()
        );
        // A second payment on the lane hands the first back, to go out alone.
        assert_eq!(
            lanes.leave_payment(ch(1), peer, payment(2, 20), t0),
            Some((payment(1, 10), peer))
        );
        assert_eq!(lanes.take_pending(ch(1)), Some(payment(2, 20)));
        // A payment for a lane the table does not hold comes back too.
        assert_eq!(
            lanes.leave_payment(ch(9), peer, payment(3, 30), t0),
            Some((payment(3, 30), peer))
        );
    }

    #[test]
    fn a_retired_lane_with_a_payment_waits_for_it_before_closing() {
        let mut lanes = with_lane(1, 100);
        let peer = PeerId::random();
        let t0 = Instant::now();
        lanes.leave_payment(ch(1), peer, payment(1, 10), t0);
        lanes.retire(ch(1));
        assert!(
            lanes.to_close().is_empty(),
            "the provider must have it first"
        );
        let (due, _) = lanes.due_payments(Duration::ZERO, t0);
        assert_eq!(due.len(), 1);
        lanes.release(ch(1), false);
        assert_eq!(lanes.to_close(), vec![ch(1)]);
    }
}
