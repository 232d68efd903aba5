//! Verifier duty: re-running a disputed job this node was drawn for, and posting a verdict.

use super::*;

impl Provider {
    /// This node was drawn as a verifier: re-run the job and post a verdict.
    pub(crate) async fn on_verify(
        self: Arc<Self>,
        peer: PeerId,
        req: VerifyRequest,
        reply: oneshot::Sender<VerifyReply>,
    ) {
        let refuse = |m: String| VerifyReply::Refused { message: m };
        let Some(chain) = self.chain.clone() else {
            let _ = reply.send(refuse("this node follows no chain".into()));
            return;
        };
        let rec = match chain.ticket(req.ticket_id).await {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(refuse(format!("cannot read the ticket: {e}")));
                return;
            }
        };
        let drawn = crate::chain::drawn(&rec.verifiers, rec.drawn);
        let problem = if rec.state != crate::chain::TICKET_DRAWN {
            Some("the ticket is not waiting for verdicts".to_owned())
        } else if !drawn.contains(&chain.me()) {
            Some("this node was not drawn for the ticket".into())
        } else if Chain::ticket_id(rec.channelId, req.job_id) != req.ticket_id {
            Some("the job is not the ticket's".into())
        } else if req.spec.hash() != rec.specHash {
            Some("the spec is not the ticket's".into())
        } else {
            None
        };
        if let Some(p) = problem {
            let _ = reply.send(refuse(p));
            return;
        }
        // The provider's result, if this request brings it: kept when its outputs are the
        // claimed ones (whoever sends it, they prove themselves by their hash).
        if let Some(d) = req.delivery
            && delivery::is_the_claimed(&d, req.job_id, rec.outputHash, rec.fuelUsed)
        {
            self.deliveries.put(req.ticket_id, *d);
        }
        let held = self.deliveries.get(&req.ticket_id);
        // One vote per round: a round without a majority is drawn again, maybe with us.
        let round_key = alloy::primitives::keccak256([req.ticket_id.0, [rec.round; 32]].concat());
        let fresh = self
            .voted
            .lock()
            .map(|mut v| v.len() < MAX_UNPAID && v.insert(round_key))
            .unwrap_or(false);
        // A party without the result (the buyer) gets it as soon as this node holds it.
        let _ = reply.send(match held {
            Some(r) => VerifyReply::Delivered(Box::new(r)),
            None => VerifyReply::Accepted,
        });
        if !fresh {
            return;
        }
        let report = match self.run(peer, &req.spec, req.job_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("verifying ticket {}: {e:#}", req.ticket_id);
                if let Ok(mut v) = self.voted.lock() {
                    v.remove(&round_key);
                }
                return;
            }
        };
        let mut commitment = ResultCommitment {
            job_id: req.job_id,
            spec_hash: rec.specHash,
            // The vote counts on this ticket only: its channel and job make the ticket id.
            channel_id: rec.channelId,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis: report.gpu_time_ns / 1_000_000,
            amount: U256::ZERO,
        };
        let right =
            commitment.output_hash == rec.outputHash && commitment.fuel_used == rec.fuelUsed;
        // A right result counts only if it was delivered: wait for the provider's until a
        // quarter of the verdict window is left (at least 5 s), then vote "not delivered".
        if right
            && !self
                .wait_for_delivery(&chain, req.ticket_id, rec.deadline)
                .await
        {
            commitment.output_hash = delivery::NOT_DELIVERED;
        }
        let agrees = right && commitment.output_hash == rec.outputHash;
        let signature = match commitment.sign(&self.domain, &self.evm) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("signing a verdict: {e}");
                return;
            }
        };
        match chain
            .submit_verdict(req.ticket_id, &EvmSigned::new(commitment, signature))
            .await
        {
            Ok(()) => self.emit(NodeEvent::Verdict {
                ticket: req.ticket_id.to_string(),
                agrees,
            }),
            Err(e) => tracing::warn!("posting the verdict on {}: {e}", req.ticket_id),
        }
        // Settle as soon as a majority exists (anyone may).
        let _ = chain.resolve(req.ticket_id).await;
    }

    /// Waits until this node holds the provider's result for `ticket`, or until a quarter
    /// of the time to `deadline` (at least 5 s) is left; whether it holds it.
    pub(super) async fn wait_for_delivery(
        &self,
        chain: &Chain,
        ticket: B256,
        deadline: u64,
    ) -> bool {
        let Ok(now) = chain.now().await else {
            return self.deliveries.get(&ticket).is_some();
        };
        let left = deadline.saturating_sub(now);
        let wait = left.saturating_sub((left / 4).max(5));
        let until = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            if self.deliveries.get(&ticket).is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
