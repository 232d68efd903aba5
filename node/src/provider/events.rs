//! Escrow events, and the provider's side of a dispute over its own ticket.

use super::*;

impl Provider {
    /// What the provider does about an escrow event.
    pub(crate) async fn on_chain_event(&self, ev: &SietchEscrowEvents) {
        let Some(chain) = &self.chain else { return };
        let touched = match ev {
            SietchEscrowEvents::CloseStarted(e) => Some(e.channelId),
            SietchEscrowEvents::ChannelClosed(e) => Some(e.channelId),
            SietchEscrowEvents::ChannelToppedUp(e) => Some(e.channelId),
            SietchEscrowEvents::VoucherClaimed(e) => Some(e.channelId),
            SietchEscrowEvents::TicketClaimed(e) => Some(e.channelId),
            _ => None,
        };
        if let Some(c) = touched
            && let Ok(mut v) = self.channel_views.lock()
        {
            v.remove(&c);
        }
        match ev {
            SietchEscrowEvents::CloseStarted(e) => {
                if let Ok(c) = chain.channel(e.channelId).await
                    && c.provider == chain.me()
                {
                    self.settle_now.notify_one();
                }
            }
            SietchEscrowEvents::TicketSettled(e) => {
                let mine = self
                    .claimed
                    .lock()
                    .ok()
                    .and_then(|mut c| c.remove(&e.ticketId));
                if mine.is_some() {
                    self.emit(NodeEvent::TicketSettled {
                        ticket: e.ticketId.to_string(),
                        outcome: crate::dispute::outcome_name(e.outcome).into(),
                    });
                }
            }
            SietchEscrowEvents::VerifiersDrawn(e) => {
                let mine = self
                    .claimed
                    .lock()
                    .ok()
                    .and_then(|c| c.get(&e.ticketId).copied());
                if let Some(job) = mine {
                    // Our ticket is disputed: make sure the verifiers can run the job.
                    self.ask_verifiers(
                        chain,
                        e.ticketId,
                        job,
                        crate::chain::drawn(&e.verifiers, e.drawn),
                    )
                    .await;
                }
            }
            _ => {}
        }
    }

    /// Sends the disputed job to each drawn verifier (the other party does the same).
    pub(super) async fn ask_verifiers(
        &self,
        chain: &Chain,
        ticket: B256,
        job: B256,
        verifiers: &[Address],
    ) {
        let Ok(Some(record)) = self.store.job(Side::Provider, &job) else {
            return;
        };
        let Ok(Some(spec)) = self.store.job_spec(&record.spec_hash) else {
            return;
        };
        let delivery = match self.config.test_undeliver {
            // Test-only: not even to the verifiers.
            2 => None,
            _ => self.kept_result(&job),
        };
        crate::dispute::ask_verifiers(&self.net, chain, ticket, job, &spec, delivery, verifiers)
            .await;
    }

    /// The result of an unpaid job, from memory or, once its ticket was claimed, the store.
    pub(super) fn kept_result(&self, job: &B256) -> Option<JobResult> {
        self.results.get(job).or_else(|| {
            let bytes = self.store.job_outputs(job).ok()??;
            JobResult::from_bytes(&bytes).ok()
        })
    }

    /// Writes an unpaid job's result to the store, so that it outlives a restart; whether
    /// this node holds it (in memory or already on disk).
    pub(super) async fn keep_for_dispute(&self, job: &B256) -> bool {
        if let Ok(Some(_)) = self.store.job_outputs(job) {
            return true;
        }
        let Some(result) = self.results.get(job) else {
            return false;
        };
        let (id, bytes) = (*job, result.to_bytes());
        matches!(
            off_async(&self.store, move |s| s.put_job_outputs(&id, &bytes)).await,
            Some(Ok(()))
        )
    }
}
