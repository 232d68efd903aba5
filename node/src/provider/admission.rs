//! Admission: whether a job request is taken, and the channel's lane for it.

use super::*;

impl Provider {
    /// Checks a request against the offer; `Err` is the refusal to send. Returns the buyer.
    pub(super) fn check(&self, req: &JobRequest) -> Result<Address, (RefuseReason, String)> {
        let spec = &req.spec;
        let t = &req.ticket;
        if spec.hash() != t.spec_hash {
            return Err((
                RefuseReason::Other,
                "the ticket's spec hash is not the spec's".into(),
            ));
        }
        let n = now();
        if t.deadline <= n + TICKET_MARGIN_SECS {
            return Err((
                RefuseReason::Other,
                format!(
                    "the ticket's deadline {} leaves no time to claim it (now {n}; at least \
                     {TICKET_MARGIN_SECS} s are needed)",
                    t.deadline
                ),
            ));
        }
        if spec.limits.memory_bytes > self.offer.hardware.memory_bytes {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job asks for {} bytes of memory; this provider allows {}",
                    spec.limits.memory_bytes, self.offer.hardware.memory_bytes
                ),
            ));
        }
        // stdout and `/output` may each reach the bound, and the result travels in one
        // message.
        let most_output = (net::MAX_RESULT / 2 - 64 * 1024) as u64;
        if spec.limits.output_bytes > most_output {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job may write {} bytes of output; results carry at most {most_output}",
                    spec.limits.output_bytes
                ),
            ));
        }
        if let Some(need) = spec.requirements.gpu.as_ref().filter(|g| g.count > 0)
            && !need.fits(&self.offer.hardware.gpus)
        {
            return Err((
                RefuseReason::TooBig,
                if self.offer.hardware.gpus.is_empty() {
                    "the job needs a GPU; this provider has none".into()
                } else {
                    format!(
                        "the job needs {} GPU(s) it accepts; this provider offers {}",
                        need.count,
                        self.offer
                            .hardware
                            .gpus
                            .iter()
                            .map(|g| format!("{} ({} MiB)", g.model, g.memory_bytes >> 20))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ));
        }
        if spec.requirements.min_cpu_cores > self.offer.hardware.cpu_cores {
            return Err((
                RefuseReason::TooBig,
                format!(
                    "the job needs {} cores; this provider has {}",
                    spec.requirements.min_cpu_cores, self.offer.hardware.cpu_cores
                ),
            ));
        }
        // The ticket carries the prices the escrow will hold the charge to: this offer's, and
        // no GPU price for a job that asks for no GPU (`jobs::ticket_prices`).
        let want = jobs::ticket_prices(spec, &self.offer.prices);
        if (t.per_gfuel, t.per_gpu_second) != (want.per_gfuel, want.per_gpu_second) {
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the ticket's prices are {} per 10^9 fuel and {} per GPU-second; this \
                     offer's are {} and {} (no GPU price for a job without a GPU)",
                    t.per_gfuel, t.per_gpu_second, want.per_gfuel, want.per_gpu_second
                ),
            ));
        }
        // A job worth less than claiming its ticket costs in gas would leave nothing to
        // claim if its voucher were withheld.
        if t.max_amount < U256::from(self.config.min_job_price) {
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the ticket allows {}; this provider takes jobs worth at least {} (what \
                     claiming a ticket costs)",
                    t.max_amount, self.config.min_job_price
                ),
            ));
        }
        // The provider is paid at most the ticket's maximum: it refuses jobs whose fuel
        // and GPU time could cost more than that, rather than run them at a loss.
        let worst = jobs::max_cost(spec, &self.offer.prices);
        if t.max_amount < U256::from(worst) {
            let p = &self.offer.prices;
            return Err((
                RefuseReason::PriceTooLow,
                format!(
                    "the job's limits cost up to {worst} at {} per 10^9 fuel and {} per \
                     GPU-second; the ticket allows {}",
                    p.per_gfuel, p.per_gpu_second, t.max_amount
                ),
            ));
        }
        recover(&t.digest(&self.domain), &req.ticket_signature).map_err(|e| {
            (
                RefuseReason::BadSignature,
                format!("the ticket's signature: {e}"),
            )
        })
    }

    /// With a chain: the ticket's channel is this provider's, opened by the signer, open,
    /// able to pay the ticket's whole range, and the range starts exactly at the channel's
    /// latest voucher (`carried`: one that came with this request and is not stored yet).
    pub(super) async fn check_channel(
        &self,
        req: &JobRequest,
        buyer: Address,
        carried: Option<U256>,
    ) -> Result<(), (RefuseReason, String)> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let t = &req.ticket;
        let end = t.cumulative_before.saturating_add(t.max_amount);
        let cached = self
            .channel_views
            .lock()
            .ok()
            .and_then(|v| v.get(&t.channel_id).copied())
            .filter(|c| c.is_open() && U256::from(c.deposit) >= end);
        let c = match cached {
            Some(c) => c,
            None => {
                let c = chain
                    .channel(t.channel_id)
                    .await
                    .map_err(|e| (RefuseReason::Other, format!("cannot read the channel: {e}")))?;
                if let Ok(mut v) = self.channel_views.lock()
                    && (v.len() < MAX_UNPAID || v.contains_key(&t.channel_id))
                {
                    v.insert(t.channel_id, c);
                }
                c
            }
        };
        if c.provider != chain.me() {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!(
                    "channel {} is not a channel to this provider ({})",
                    t.channel_id,
                    chain.me()
                ),
            ));
        }
        if c.buyer != buyer {
            return Err((
                RefuseReason::BadSignature,
                format!(
                    "the ticket is signed by {buyer}, the channel's buyer is {}",
                    c.buyer
                ),
            ));
        }
        if !c.is_open() {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!("channel {} is closing or closed", t.channel_id),
            ));
        }
        if U256::from(c.deposit) < end {
            return Err((
                RefuseReason::ChannelUnderfunded,
                format!(
                    "the channel holds {} in all; the ticket's range ends at {end}: top it up",
                    c.deposit
                ),
            ));
        }
        let latest = self
            .store
            .voucher(&t.channel_id)
            .ok()
            .flatten()
            .map_or(U256::from(c.paid), |v| {
                v.message.cumulative_amount.max(U256::from(c.paid))
            })
            .max(carried.unwrap_or_default());
        // Exactly: below, the job would overlap jobs already paid; above, the escrow would
        // never let the ticket be claimed (its vouchers cannot reach `cumulativeBefore`), so
        // the buyer would have the job for free.
        if t.cumulative_before != latest {
            return Err((
                RefuseReason::Other,
                format!(
                    "the ticket's range starts at {} but the channel's latest voucher is at \
                     {latest}",
                    t.cumulative_before
                ),
            ));
        }
        Ok(())
    }

    /// Takes the ticket's channel for this job, if it has no other job in flight.
    pub(super) fn take_lane(&self, req: &JobRequest) -> Result<(), (RefuseReason, String)> {
        if self.chain.is_none() {
            return Ok(());
        }
        let mut lanes = self
            .lanes
            .lock()
            .map_err(|_| (RefuseReason::Other, "provider state unavailable".to_owned()))?;
        if lanes.len() >= MAX_UNPAID {
            return Err((RefuseReason::Busy, "too many unpaid jobs".into()));
        }
        match lanes.get(&req.ticket.channel_id) {
            // The same job again too: it is stored only once it has run.
            Some(other) => Err((
                RefuseReason::Busy,
                format!(
                    "channel {} has job {other} in flight; one job at a time per channel",
                    req.ticket.channel_id
                ),
            )),
            None => {
                lanes.insert(req.ticket.channel_id, req.ticket.job_id);
                Ok(())
            }
        }
    }

    pub(super) fn free_lane(&self, channel: &B256, job: &B256) {
        if let Ok(mut lanes) = self.lanes.lock()
            && lanes.get(channel) == Some(job)
        {
            lanes.remove(channel);
        }
    }

    pub(super) fn refuse(
        &self,
        reply: oneshot::Sender<JobReply>,
        job: B256,
        r: (RefuseReason, String),
    ) {
        self.emit(NodeEvent::Refused {
            job: job.to_string(),
            reason: r.1.clone(),
        });
        let _ = reply.send(JobReply::Refused {
            reason: r.0,
            message: r.1,
        });
    }
}
