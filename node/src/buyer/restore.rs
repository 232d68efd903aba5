//! What a restarted buyer takes back from its store and the chain, so that it goes on where
//! it stopped: its tickets to dispute (the store's `disputable_tickets`) and its lanes.
//!
//! Lanes are rebuilt from the chain and the store ([`Buyer::restore_lanes`]): every channel
//! this buyer opened (the escrow's `ChannelOpened` events naming it) that is not closed
//! becomes a lane again, its line at the latest voucher signed on it (the store's
//! `vouchers`) or what the chain paid, whichever is greater, so that the buyer never signs a
//! voucher below one it signed before, and its next job to that provider takes the channel
//! instead of opening another. A channel that may still pay a ticket this buyer did not pay
//! by voucher (a ticket to dispute on it, a job of it delivered and not paid, money reserved
//! for a claimed ticket) or that is closing comes back retired: it takes no more tickets
//! and is closed. The reputation table comes back too ([`super::reputation::load`]).
//!
//! A lane's latest voucher above what the chain paid may never have reached its provider:
//! an accepted job's payment waits on its lane for the next job's request to carry it
//! ([`super::payment`]), and the buyer may have stopped meanwhile. The provider takes no
//! ticket whose range starts past the latest voucher it holds, so that payment is sent
//! again: the job it pays is found in the store's job records (the paid job on the
//! channel whose ticket's range ends at the voucher, with the check secret kept with its
//! payment, [`find_payments`]), and its payment waits on the restored lane, carried by the
//! next job to the provider or sent alone once the provider's offer is in the book
//! ([`Buyer::deliver_restored`]). A provider that already had it records it once. A lane
//! whose voucher pays no job found there (a spot check's re-run, whose ticket and secret
//! are not kept) comes back retired, and says so in the log: the provider claims what it
//! is owed on chain when the channel closes.
//!
//! What does not come back: a job in flight when the node stopped (its ticket was not
//! recorded before its delivery; the provider may still claim it, and that claim is not
//! disputed), the evidence of a check (the API's withheld tickets list no check after a
//! restart) and, without a chain, lanes (a local channel id holds no money).

use std::collections::{HashMap, HashSet};

use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_market::{Address, B256, U256, Voucher};

use super::Buyer;
use super::chain_events::{Disputable, MAX_DISPUTABLE};
use super::lanes::Restored;
use crate::chain::{Chain, ChainError};
use crate::net::Payment;
use crate::store::{EvmSigned, JobRecord, JobState, Side, Store, StoreError, off_async};
use crate::sync::lock;

/// Blocks asked per `eth_getLogs` call when looking for the buyer's channels.
const LOG_RANGE: u64 = 2_000;
/// Buyer jobs read per store read when looking for unpaid tickets.
const JOB_PAGE: usize = 1_000;

/// Why the lanes could not be rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// The chain could not be read.
    #[error("reading the chain: {0}")]
    Chain(#[from] ChainError),
    /// A task of the node stopped.
    #[error("the store's task stopped")]
    Stopped,
}

/// The tickets to dispute the store keeps (at most [`MAX_DISPUTABLE`]).
pub(super) fn disputable(store: &Store) -> Result<HashMap<B256, Disputable>, StoreError> {
    Ok(store
        .disputable(MAX_DISPUTABLE)?
        .into_iter()
        .map(|(ticket, d)| {
            (
                ticket,
                Disputable {
                    job: d.job_id,
                    channel: d.channel_id,
                    check: None,
                    undelivered: d.undelivered,
                },
            )
        })
        .collect())
}

/// What the buyer's job records say of its lanes.
#[derive(Debug, Default)]
struct Found {
    /// Channels with a ticket of a buyer job that was delivered and never paid by voucher
    /// (the provider may claim it).
    unpaid: HashSet<B256>,
    /// By channel: the payment of the job that channel's latest voucher pays (see
    /// [`find_payments`]).
    payments: HashMap<B256, Payment>,
}

/// Reads one page of buyer job records into `found`: channels with a ticket not paid by
/// voucher, and for each channel of `latest` (the lanes whose latest voucher the chain has
/// not paid) the payment of the job that voucher pays: the paid job on the channel whose
/// ticket's range ends at the voucher, with its result and the check secret kept with its
/// payment. Pure: what [`find_payments`] does page by page.
fn read_page(page: &[JobRecord], latest: &HashMap<B256, EvmSigned<Voucher>>, found: &mut Found) {
    for j in page {
        let Some(t) = &j.ticket else { continue };
        let channel = t.message.channel_id;
        if j.state != JobState::Paid {
            found.unpaid.insert(channel);
            continue;
        }
        if let (Some(r), Some(secret), Some(v)) = (&j.result, j.check_secret, latest.get(&channel))
            && t.message.cumulative_before.saturating_add(r.message.amount)
                == v.message.cumulative_amount
            && !found.payments.contains_key(&channel)
        {
            found.payments.insert(
                channel,
                Payment {
                    job_id: j.job_id,
                    secret,
                    voucher: Some((v.message, v.signature)),
                    note: String::new(),
                },
            );
        }
    }
}

/// [`read_page`] over every buyer job record, [`JOB_PAGE`] at a time.
fn find_payments(
    store: &Store,
    latest: &HashMap<B256, EvmSigned<Voucher>>,
) -> Result<Found, StoreError> {
    let mut found = Found::default();
    let mut after = None;
    loop {
        let page = store.jobs(Side::Buyer, after.as_ref(), JOB_PAGE)?;
        read_page(&page, latest, &mut found);
        match page.last() {
            Some(j) if page.len() == JOB_PAGE => after = Some(j.job_id),
            _ => return Ok(found),
        }
    }
}

/// What the chain says of the channels `buyer` opened from block `from` on: (channel,
/// provider), in the order they were opened.
async fn opened_by(
    chain: &Chain,
    buyer: Address,
    from: u64,
) -> Result<Vec<(B256, Address)>, ChainError> {
    let head = chain.block_number().await?;
    let mut out = Vec::new();
    let mut next = from;
    while next <= head {
        let to = head.min(next.saturating_add(LOG_RANGE - 1));
        for ev in chain.events(next, to).await? {
            if let SietchEscrowEvents::ChannelOpened(e) = ev.event
                && e.buyer == buyer
            {
                out.push((e.channelId, e.provider));
            }
        }
        next = to + 1;
    }
    Ok(out)
}

impl Buyer {
    /// Rebuilds the lanes from the chain and the store (see the module docs), then disputes
    /// the kept tickets their providers claimed while the buyer was down. Returns how many
    /// lanes came back. Without a chain, nothing to do.
    pub(crate) async fn restore_lanes(&self) -> Result<usize, RestoreError> {
        let Some(chain) = &self.chain else {
            return Ok(0);
        };
        let opened = opened_by(chain, self.address(), self.config.chain_from_block).await?;
        // Each channel not closed, with what the chain says of it and its latest voucher.
        let mut lanes = Vec::new();
        let mut latest = HashMap::new();
        for (channel, provider) in opened {
            let view = chain.channel(channel).await?;
            // 0: none; 3: closed, its money back with the buyer.
            if view.state == 0 || view.state == 3 {
                continue;
            }
            let voucher = off_async(&self.store, move |s| s.voucher(&channel))
                .await
                .ok_or(RestoreError::Stopped)??;
            if let Some(v) = voucher
                && v.message.cumulative_amount > U256::from(view.paid)
            {
                latest.insert(channel, v);
            }
            let signed = voucher.map_or(U256::ZERO, |v| v.message.cumulative_amount);
            lanes.push((channel, provider, view, signed));
        }
        let wanted = latest.clone();
        let mut found = off_async(&self.store, move |s| find_payments(s, &wanted))
            .await
            .ok_or(RestoreError::Stopped)??;
        let to_dispute: HashSet<B256> =
            lock(&self.disputable).values().map(|d| d.channel).collect();
        let mut restored = Vec::new();
        for (channel, provider, view, signed) in lanes {
            let payment = found.payments.remove(&channel);
            let unsent = latest.contains_key(&channel) && payment.is_none();
            if unsent {
                tracing::warn!(
                    %channel,
                    %provider,
                    "the channel's latest voucher ({signed}) pays no job this buyer's store \
                     holds (a spot check's re-run?): it cannot be sent again, so the lane comes \
                     back retired and is closed; the provider claims what it is owed on chain"
                );
            }
            let retired = !view.is_open()
                || view.reserved > 0
                || unsent
                || found.unpaid.contains(&channel)
                || to_dispute.contains(&channel);
            restored.push(Restored {
                channel,
                provider,
                cumulative: signed.max(U256::from(view.paid)),
                deposit: U256::from(view.deposit),
                retired,
                closes_at: (!view.is_open()).then_some(view.closes_at),
                payment,
            });
        }
        let n = restored.len();
        let resent = restored.iter().filter(|r| r.payment.is_some()).count();
        {
            let mut lanes = lock(&self.lanes);
            let at = std::time::Instant::now();
            for r in restored {
                lanes.restore(r, at);
            }
        }
        self.lane_freed.notify_waiters();
        if resent > 0
            && let Some(me) = self.me.upgrade()
        {
            tracing::info!("{resent} payments of this buyer's lanes sent again after a restart");
            tokio::spawn(me.deliver_restored());
        }
        // Claimed while the buyer was down, before the chain cursor's block or after: the
        // claim's event may never reach it. On a task of its own: start does not wait.
        let tickets: Vec<B256> = lock(&self.disputable).keys().copied().collect();
        if !tickets.is_empty()
            && let Some(me) = self.me.upgrade()
        {
            tokio::spawn(async move {
                for t in tickets {
                    me.dispute_if_claimed(t).await;
                }
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use sietch_market::{ResultCommitment, Ticket};

    use super::*;

    fn ch(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    /// The signed ticket and result of job `job` of spec `spec_hash` on channel `n`, its
    /// range from `before` charging `amount`.
    fn delivered(
        job: u8,
        spec_hash: B256,
        n: u8,
        before: u64,
        amount: u64,
    ) -> (EvmSigned<Ticket>, EvmSigned<ResultCommitment>) {
        let id = B256::repeat_byte(job);
        let ticket = Ticket {
            job_id: id,
            spec_hash,
            channel_id: ch(n),
            cumulative_before: U256::from(before),
            max_amount: U256::from(1_000u64),
            deadline: 10,
            check_commit: sietch_market::check_commit(&secret(job)),
            per_gfuel: 1,
            per_gpu_second: 0,
        };
        let result = ResultCommitment {
            job_id: id,
            spec_hash,
            channel_id: ch(n),
            output_hash: B256::repeat_byte(4),
            fuel_used: 1,
            gpu_millis: 0,
            amount: U256::from(amount),
        };
        (
            EvmSigned::new(ticket, [1; 65]),
            EvmSigned::new(result, [2; 65]),
        )
    }

    fn secret(job: u8) -> B256 {
        B256::repeat_byte(job ^ 0x55)
    }

    /// Buyer job `job` on channel `n`, its range from `before` charging `amount`, in
    /// `state`, with its check secret kept or not.
    fn job(job: u8, n: u8, before: u64, amount: u64, state: JobState, kept: bool) -> JobRecord {
        let spec_hash = B256::repeat_byte(0xee);
        let mut r = JobRecord::new(B256::repeat_byte(job), spec_hash, Address::ZERO, 1);
        let (ticket, result) = delivered(job, spec_hash, n, before, amount);
        r.state = state;
        r.ticket = Some(ticket);
        r.result = Some(result);
        r.check_secret = kept.then(|| secret(job));
        r
    }

    fn voucher(n: u8, cumulative: u64) -> EvmSigned<Voucher> {
        EvmSigned::new(
            Voucher {
                channel_id: ch(n),
                cumulative_amount: U256::from(cumulative),
            },
            [3; 65],
        )
    }

    fn latest(vs: &[EvmSigned<Voucher>]) -> HashMap<B256, EvmSigned<Voucher>> {
        vs.iter().map(|v| (v.message.channel_id, *v)).collect()
    }

    #[test]
    fn the_latest_voucher_is_sent_again_with_the_job_it_pays() {
        let latest = latest(&[voucher(1, 30)]);
        let mut found = Found::default();
        // Job 1 paid [0, 10), job 2 [10, 30): the voucher at 30 is job 2's, found on any page.
        read_page(
            &[job(2, 1, 10, 20, JobState::Paid, true)],
            &latest,
            &mut found,
        );
        read_page(
            &[job(1, 1, 0, 10, JobState::Paid, true)],
            &latest,
            &mut found,
        );
        let p = found.payments.get(&ch(1)).expect("job 2's payment");
        assert_eq!(p.job_id, B256::repeat_byte(2));
        // What the provider holds the payment to: the ticket's commit and the voucher.
        assert_eq!(p.secret, secret(2));
        assert_eq!(p.voucher, Some((voucher(1, 30).message, [3; 65])));
        assert!(p.note.is_empty());
        assert!(found.unpaid.is_empty());
    }

    #[test]
    fn a_voucher_that_pays_no_job_found_is_not_sent_again() {
        // A re-run's voucher on channel 2 (no buyer job holds its ticket), a voucher whose
        // job's secret was not kept (paid before secrets were), one ending elsewhere.
        let latest = latest(&[voucher(1, 30), voucher(2, 5), voucher(3, 40)]);
        let mut found = Found::default();
        let page = [
            job(1, 1, 10, 20, JobState::Paid, false),
            job(3, 3, 10, 20, JobState::Paid, true),
            // Not in `latest`: the chain paid its channel's latest voucher already.
            job(4, 4, 0, 20, JobState::Paid, true),
        ];
        read_page(&page, &latest, &mut found);
        assert!(found.payments.is_empty(), "{:?}", found.payments);
    }

    #[test]
    fn a_ticket_not_paid_by_voucher_marks_its_channel_unsure() {
        let latest = latest(&[voucher(1, 30)]);
        let mut found = Found::default();
        let mut requested = JobRecord::new(B256::repeat_byte(9), B256::ZERO, Address::ZERO, 1);
        requested.state = JobState::Requested;
        let page = [
            requested,
            job(5, 5, 0, 10, JobState::Done, true),
            job(6, 6, 0, 10, JobState::Checked, false),
            // Delivered at 30 but not paid: not the payment of the voucher at 30.
            job(7, 1, 10, 20, JobState::Done, true),
        ];
        read_page(&page, &latest, &mut found);
        assert_eq!(found.unpaid, HashSet::from([ch(5), ch(6), ch(1)]));
        assert!(found.payments.is_empty());
    }

    /// A job's payment keeps its secret with its voucher in the store, and a store opened
    /// again (a restarted buyer) gives the payment back whole.
    #[test]
    fn a_paid_jobs_payment_comes_back_from_a_reopened_store() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sietch_market::JobSpec {
            module: B256::repeat_byte(9),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            inputs: Vec::new(),
            limits: sietch_market::Limits {
                fuel: 1_000_000,
                memory_bytes: 1 << 20,
                wall_time_ms: 1_000,
                output_bytes: 1 << 10,
            },
            requirements: Default::default(),
            verification: Default::default(),
            price_cap: 0,
            deadline: 0,
        };
        let provider = Address::repeat_byte(0xaa);
        {
            let store = Store::open(dir.path()).unwrap();
            // Job 1 delivered and paid at once; job 2 delivered, checked, then paid.
            for (job, before, amount) in [(1u8, 0u64, 10u64), (2, 10, 20)] {
                let id = B256::repeat_byte(job);
                let record = JobRecord::new(id, spec.hash(), Address::ZERO, 1);
                store.insert_job(Side::Buyer, &spec, &record).unwrap();
                let (ticket, result) = delivered(job, spec.hash(), 1, before, amount);
                let paying = voucher(1, before + amount);
                let delivery = crate::store::Delivery {
                    provider,
                    ticket,
                    result,
                    outputs: vec![job],
                };
                let delivery = if job == 1 {
                    Some(delivery)
                } else {
                    store
                        .record_delivery(&id, provider, &ticket, &result, 2)
                        .unwrap();
                    None
                };
                store
                    .pay_job(&id, &paying, &secret(job), delivery, 3)
                    .unwrap();
            }
            assert_eq!(
                store.job_outputs(&B256::repeat_byte(1)).unwrap(),
                Some(vec![1])
            );
        }
        let store = Store::open(dir.path()).unwrap();
        let v = store.voucher(&ch(1)).unwrap().unwrap();
        assert_eq!(v, voucher(1, 30));
        let found = find_payments(&store, &latest(&[v])).unwrap();
        let p = &found.payments[&ch(1)];
        assert_eq!((p.job_id, p.secret), (B256::repeat_byte(2), secret(2)));
        assert_eq!(p.voucher, Some((v.message, v.signature)));
        assert!(found.unpaid.is_empty());
    }
}
