//! Admission: whether a job request is taken. The checks are pure functions of what they
//! look at: [`check_request`] the request against the offer, [`check_channel_view`] the
//! ticket against its channel as last read from the chain; [`Lanes`] hands out one job at a
//! time per channel. The [`Provider`] methods here read the chain and the store around them.

use std::collections::HashMap;
use std::sync::Mutex;

use sietch_market::Eip712Error;
use sietch_market::eip712::{Domain, TypedData, recover};
use sietch_market::{Address, B256, Offer, Prices, Ticket, U256};
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

use super::serve::RecordError;
use super::{MAX_UNPAID, Provider, TICKET_MARGIN_SECS, now};
use crate::chain::{Chain, ChainError, ChannelView};
use crate::events::NodeEvent;
use crate::jobs;
use crate::net::{self, JobReply, JobRequest, RefuseReason};
use crate::sync::lock;

/// Why a job request is refused. The buyer is told [`Refusal::reason`] and this error's
/// text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The ticket is for another spec.
    #[error("the ticket's spec hash is not the spec's")]
    SpecMismatch,
    /// The ticket's deadline leaves no time to claim it should the buyer not pay.
    #[error(
        "the ticket's deadline {deadline} leaves no time to claim it (now {now}; at least \
         {TICKET_MARGIN_SECS} s are needed)"
    )]
    DeadlineTooNear { deadline: u64, now: u64 },
    /// More memory than the offer's.
    #[error("the job asks for {asked} bytes of memory; this provider allows {allowed}")]
    TooMuchMemory { asked: u64, allowed: u64 },
    /// More output than a result message carries.
    #[error("the job may write {asked} bytes of output; results carry at most {most}")]
    TooMuchOutput { asked: u64, most: u64 },
    /// A GPU job, and this provider has none.
    #[error("the job needs a GPU; this provider has none")]
    NoGpu,
    /// A GPU job whose needs the offer's GPUs do not meet.
    #[error("the job needs {count} GPU(s) it accepts; this provider offers {offered}")]
    GpusDoNotFit { count: u8, offered: String },
    /// More cores than the offer's.
    #[error("the job needs {asked} cores; this provider has {has}")]
    TooFewCores { asked: u16, has: u16 },
    /// The ticket's prices are not the offer's (for this job).
    #[error(
        "the ticket's prices are {} per 10^9 fuel and {} per GPU-second; this offer's are {} \
         and {} (no GPU price for a job without a GPU)",
        .ticket.per_gfuel, .ticket.per_gpu_second, .offer.per_gfuel, .offer.per_gpu_second
    )]
    WrongPrices { ticket: Prices, offer: Prices },
    /// A job worth less than claiming its ticket costs.
    #[error(
        "the ticket allows {allows}; this provider takes jobs worth at least {min} (what \
         claiming a ticket costs)"
    )]
    UnderMinPrice { allows: U256, min: u128 },
    /// The job's limits could cost more than the ticket pays.
    #[error(
        "the job's limits cost up to {worst} at {} per 10^9 fuel and {} per GPU-second; the \
         ticket allows {allows}",
        .prices.per_gfuel, .prices.per_gpu_second
    )]
    LimitsCostMore {
        worst: u128,
        prices: Prices,
        allows: U256,
    },
    /// The ticket's signature does not recover.
    #[error("the ticket's signature: {0}")]
    BadSignature(Eip712Error),
    /// The ticket's channel could not be read from the chain.
    #[error("cannot read the channel: {0}")]
    ChannelUnread(ChainError),
    /// The channel pays another provider.
    #[error("channel {channel} is not a channel to this provider ({me})")]
    NotOurChannel { channel: B256, me: Address },
    /// The ticket's signer is not the channel's buyer.
    #[error("the ticket is signed by {signer}, the channel's buyer is {buyer}")]
    NotTheChannelsBuyer { signer: Address, buyer: Address },
    /// The channel is closing or closed.
    #[error("channel {0} is closing or closed")]
    ChannelNotOpen(B256),
    /// The channel's deposit does not reach the end of the ticket's range.
    #[error("the channel holds {deposit} in all; the ticket's range ends at {end}: top it up")]
    Underfunded { deposit: u128, end: U256 },
    /// The deposit that would pay the ticket's range is not `[finality] confirmations` deep
    /// yet (beyond what this provider risks on an unconfirmed deposit): try again later.
    #[error(
        "the channel holds {at_head}, of which {servable} may be served against until its \
         deposit is {confirmations} blocks deep; the ticket's range ends at {end}: try again \
         after {confirmations} blocks"
    )]
    Unconfirmed {
        servable: u128,
        at_head: u128,
        confirmations: u64,
        end: U256,
    },
    /// The ticket's range does not start at the channel's latest voucher.
    #[error("the ticket's range starts at {start} but the channel's latest voucher is at {latest}")]
    OffTheLatestVoucher { start: U256, latest: U256 },
    /// As many channels have a job in flight as this node keeps.
    #[error("too many unpaid jobs")]
    TooManyUnpaid,
    /// The ticket's channel has another job in flight.
    #[error("channel {channel} has job {other} in flight; one job at a time per channel")]
    LaneBusy { channel: B256, other: B256 },
    /// Every job slot is taken.
    #[error("all {0} job slots are in use; try again or pick another offer")]
    SlotsFull(u32),
    /// The job could not be recorded, so it could neither be paid nor claimed.
    #[error(transparent)]
    NotRecorded(#[from] RecordError),
}

impl Refusal {
    /// The reason on the wire.
    pub(crate) fn reason(&self) -> RefuseReason {
        match self {
            Self::TooMuchMemory { .. }
            | Self::TooMuchOutput { .. }
            | Self::NoGpu
            | Self::GpusDoNotFit { .. }
            | Self::TooFewCores { .. } => RefuseReason::TooBig,
            Self::WrongPrices { .. } | Self::UnderMinPrice { .. } | Self::LimitsCostMore { .. } => {
                RefuseReason::PriceTooLow
            }
            Self::BadSignature(_) | Self::NotTheChannelsBuyer { .. } => RefuseReason::BadSignature,
            Self::NotOurChannel { .. } | Self::ChannelNotOpen(_) | Self::Underfunded { .. } => {
                RefuseReason::ChannelUnderfunded
            }
            Self::TooManyUnpaid | Self::LaneBusy { .. } | Self::SlotsFull(_) => RefuseReason::Busy,
            Self::SpecMismatch
            | Self::DeadlineTooNear { .. }
            | Self::ChannelUnread(_)
            | Self::Unconfirmed { .. }
            | Self::OffTheLatestVoucher { .. }
            | Self::NotRecorded(_) => RefuseReason::Other,
        }
    }
}

/// What a provider sells, as admission holds a request to it.
pub(crate) struct Terms<'a> {
    /// The offer: hardware and prices.
    pub(crate) offer: &'a Offer,
    /// The least a ticket may allow (what claiming one costs).
    pub(crate) min_job_price: u128,
    /// The escrow's EIP-712 domain, which tickets are signed in.
    pub(crate) domain: &'a Domain,
}

/// Checks a request against the offer at time `now`; returns the ticket's signer (the
/// buyer).
pub(crate) fn check_request(
    req: &JobRequest,
    terms: &Terms<'_>,
    now: u64,
) -> Result<Address, Refusal> {
    let spec = &req.spec;
    let t = &req.ticket;
    let offer = terms.offer;
    if spec.hash() != t.spec_hash {
        return Err(Refusal::SpecMismatch);
    }
    if t.deadline <= now + TICKET_MARGIN_SECS {
        return Err(Refusal::DeadlineTooNear {
            deadline: t.deadline,
            now,
        });
    }
    if spec.limits.memory_bytes > offer.hardware.memory_bytes {
        return Err(Refusal::TooMuchMemory {
            asked: spec.limits.memory_bytes,
            allowed: offer.hardware.memory_bytes,
        });
    }
    // stdout and `/output` may each reach the bound, and the result travels in one message.
    let most = (net::MAX_RESULT / 2 - 64 * 1024) as u64;
    if spec.limits.output_bytes > most {
        return Err(Refusal::TooMuchOutput {
            asked: spec.limits.output_bytes,
            most,
        });
    }
    if let Some(need) = spec.requirements.gpu.as_ref().filter(|g| g.count > 0)
        && !need.fits(&offer.hardware.gpus)
    {
        return Err(if offer.hardware.gpus.is_empty() {
            Refusal::NoGpu
        } else {
            Refusal::GpusDoNotFit {
                count: need.count,
                offered: offer
                    .hardware
                    .gpus
                    .iter()
                    .map(|g| format!("{} ({} MiB)", g.model, g.memory_bytes >> 20))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        });
    }
    if spec.requirements.min_cpu_cores > offer.hardware.cpu_cores {
        return Err(Refusal::TooFewCores {
            asked: spec.requirements.min_cpu_cores,
            has: offer.hardware.cpu_cores,
        });
    }
    // The ticket carries the prices the escrow will hold the charge to: this offer's, and no
    // GPU price for a job that asks for no GPU (`jobs::ticket_prices`).
    let want = jobs::ticket_prices(spec, &offer.prices);
    if (t.per_gfuel, t.per_gpu_second) != (want.per_gfuel, want.per_gpu_second) {
        return Err(Refusal::WrongPrices {
            ticket: Prices {
                per_gfuel: t.per_gfuel,
                per_gpu_second: t.per_gpu_second,
            },
            offer: want,
        });
    }
    // A job worth less than claiming its ticket costs in gas would leave nothing to claim
    // if its voucher were withheld.
    if t.max_amount < U256::from(terms.min_job_price) {
        return Err(Refusal::UnderMinPrice {
            allows: t.max_amount,
            min: terms.min_job_price,
        });
    }
    // The provider is paid at most the ticket's maximum: it refuses jobs whose fuel and GPU
    // time could cost more than that, rather than run them at a loss.
    let worst = jobs::max_cost(spec, &offer.prices);
    if t.max_amount < U256::from(worst) {
        return Err(Refusal::LimitsCostMore {
            worst,
            prices: offer.prices,
            allows: t.max_amount,
        });
    }
    recover(&t.digest(terms.domain), &req.ticket_signature).map_err(Refusal::BadSignature)
}

/// Checks a ticket signed by `buyer` against its channel `c` as the chain holds it: the
/// channel is `me`'s, opened by the signer, open, able to pay the ticket's whole range, and
/// the range starts exactly at the channel's latest voucher: the greatest of what the chain
/// paid and `known`, the latest voucher this node holds (zero for none).
pub(crate) fn check_channel_view(
    t: &Ticket,
    buyer: Address,
    c: &ChannelView,
    me: Address,
    known: U256,
) -> Result<(), Refusal> {
    if c.provider != me {
        return Err(Refusal::NotOurChannel {
            channel: t.channel_id,
            me,
        });
    }
    if c.buyer != buyer {
        return Err(Refusal::NotTheChannelsBuyer {
            signer: buyer,
            buyer: c.buyer,
        });
    }
    if !c.is_open() {
        return Err(Refusal::ChannelNotOpen(t.channel_id));
    }
    let end = t.cumulative_before.saturating_add(t.max_amount);
    if U256::from(c.deposit) < end {
        return Err(Refusal::Underfunded {
            deposit: c.deposit,
            end,
        });
    }
    let latest = known.max(U256::from(c.paid));
    // Exactly: below, the job would overlap jobs already paid; above, the escrow would never
    // let the ticket be claimed (its vouchers cannot reach `cumulativeBefore`), so the buyer
    // would have the job for free.
    if t.cumulative_before != latest {
        return Err(Refusal::OffTheLatestVoucher {
            start: t.cumulative_before,
            latest,
        });
    }
    Ok(())
}

/// Takes one of the job slots, if one is free.
pub(crate) fn take_slot(slots: &Semaphore, count: u32) -> Result<SemaphorePermit<'_>, Refusal> {
    slots.try_acquire().map_err(|_| Refusal::SlotsFull(count))
}

/// The channels with a job in flight (accepted, not yet paid or claimed), and the job: the
/// buyer's channels are lanes, one job at a time, so that every ticket's range on the
/// channel's cumulative line starts where the last voucher ended. At most `max` channels.
pub(crate) struct Lanes {
    jobs: Mutex<HashMap<B256, B256>>,
    max: usize,
}

impl Lanes {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// Takes `channel` for `job`, if it has no job in flight (the same job again too: it is
    /// stored only once it has run).
    pub(crate) fn take(&self, channel: B256, job: B256) -> Result<(), Refusal> {
        let mut lanes = lock(&self.jobs);
        if lanes.len() >= self.max {
            return Err(Refusal::TooManyUnpaid);
        }
        match lanes.get(&channel) {
            Some(other) => Err(Refusal::LaneBusy {
                channel,
                other: *other,
            }),
            None => {
                lanes.insert(channel, job);
                Ok(())
            }
        }
    }

    /// Frees `channel`, if `job` holds it.
    pub(crate) fn free(&self, channel: &B256, job: &B256) {
        let mut lanes = lock(&self.jobs);
        if lanes.get(channel) == Some(job) {
            lanes.remove(channel);
        }
    }
}

impl Provider {
    /// Checks a request against the offer; `Err` is the refusal to send. Returns the buyer.
    pub(super) fn check(&self, req: &JobRequest) -> Result<Address, Refusal> {
        let terms = Terms {
            offer: &self.offer,
            min_job_price: self.config.min_job_price,
            domain: &self.domain,
        };
        check_request(req, &terms, now())
    }

    /// With a chain: [`check_channel_view`] on the ticket's channel, the latest voucher
    /// being the stored one or `carried` (one that came with this request and is not stored
    /// yet).
    pub(super) async fn check_channel(
        &self,
        req: &JobRequest,
        buyer: Address,
        carried: Option<U256>,
    ) -> Result<(), Refusal> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let t = &req.ticket;
        let (c, at_head) = self.channel_view(chain, t).await?;
        let stored = match self.store.voucher(&t.channel_id) {
            Ok(v) => v.map(|v| v.message.cumulative_amount),
            Err(e) => {
                tracing::warn!(
                    "cannot read the latest voucher of channel {}: checking the ticket against \
                     what the chain paid: {e}",
                    t.channel_id
                );
                None
            }
        };
        let known = stored.unwrap_or_default().max(carried.unwrap_or_default());
        match check_channel_view(t, buyer, &c, chain.me(), known) {
            // Enough at the head, not yet deep enough: a refusal for now, not a top-up.
            Err(Refusal::Underfunded { deposit, end }) if U256::from(at_head) >= end => {
                Err(Refusal::Unconfirmed {
                    servable: deposit,
                    at_head,
                    confirmations: self.config.finality.confirmations,
                    end,
                })
            }
            r => r,
        }
    }

    /// The ticket's channel as it may be served against (its deposit counted as far as it is
    /// `[finality] confirmations` deep, plus `unconfirmed_risk`: `docs/finality.md`), and its
    /// deposit at the head: as last read, when that view can pay the ticket's range; else
    /// read from the chain, and kept once its whole deposit is deep enough.
    async fn channel_view(
        &self,
        chain: &Chain,
        t: &Ticket,
    ) -> Result<(ChannelView, u128), Refusal> {
        let end = t.cumulative_before.saturating_add(t.max_amount);
        let cached = lock(&self.channel_views)
            .get(&t.channel_id)
            .copied()
            .filter(|c| c.is_open() && U256::from(c.deposit) >= end);
        if let Some(c) = cached {
            return Ok((c, c.deposit));
        }
        let finality = &self.config.finality;
        let (c, at_head) = chain
            .servable_channel(
                t.channel_id,
                finality.confirmations,
                finality.unconfirmed_risk,
            )
            .await
            .map_err(Refusal::ChannelUnread)?;
        if c.deposit == at_head {
            let mut views = lock(&self.channel_views);
            if views.len() < MAX_UNPAID || views.contains_key(&t.channel_id) {
                views.insert(t.channel_id, c);
            }
        }
        Ok((c, at_head))
    }

    /// Takes the ticket's channel for this job, if it has no other job in flight (without a
    /// chain there are no channels to keep in order).
    pub(super) fn take_lane(&self, req: &JobRequest) -> Result<(), Refusal> {
        if self.chain.is_none() {
            return Ok(());
        }
        self.lanes.take(req.ticket.channel_id, req.ticket.job_id)
    }

    pub(super) fn free_lane(&self, channel: &B256, job: &B256) {
        self.lanes.free(channel, job);
    }

    /// Sends the refusal, and says so on the event stream.
    pub(super) fn refuse(&self, reply: oneshot::Sender<JobReply>, job: B256, r: Refusal) {
        let message = r.to_string();
        self.emit(NodeEvent::Refused {
            job,
            reason: message.clone(),
        });
        // The buyer may have given up waiting: nothing is lost with the answer.
        let _ = reply.send(JobReply::Refused {
            reason: r.reason(),
            message,
        });
    }
}

#[cfg(test)]
mod tests;
