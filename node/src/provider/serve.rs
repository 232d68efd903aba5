//! Serving an accepted job: running it, recording it, and answering with its result or
//! its failure.

use super::*;

impl Provider {
    /// Answers a job request and runs the job. A job that ends within
    /// [`INLINE_RESULT_WAIT`] is answered with its result; a longer one is answered
    /// "accepted" and its result delivered on the result protocol when it ends.
    ///
    /// A payment the request carries is checked first, as if it had come alone (it frees
    /// the ticket's channel), and written in the job's own commit (one commit where there
    /// were two); alone and durably when the job is refused before it is stored.
    pub(crate) async fn on_job(
        self: Arc<Self>,
        peer: PeerId,
        mut req: JobRequest,
        reply: oneshot::Sender<JobReply>,
    ) {
        // A payment for the lane's previous job: checked now (it frees the lane for this
        // one) and written with this job's record, in its commit; alone, durably, when this
        // job is refused before it is stored.
        let mut paid = None;
        if let Some(p) = req.paying.take() {
            let me = self.clone();
            let checked = tokio::task::spawn_blocking(move || {
                me.check_payment(peer, &p).map(|v| v.map(|v| (p.job_id, v)))
            })
            .await;
            match checked {
                Ok(Ok(Some((job, voucher)))) => {
                    self.free_lane(&voucher.message.channel_id, &job);
                    paid = Some(Deferred { job, voucher });
                }
                Ok(Err(PaymentAck::Refused { message })) => {
                    tracing::warn!(%peer, "a payment carried by a job request: {message}");
                }
                _ => {}
            }
        }
        self.serve(peer, req, reply, &mut paid).await;
        if let Some(d) = paid {
            let me = self.clone();
            let job = d.job;
            let recorded =
                tokio::task::spawn_blocking(move || me.record_payment(&d.job, &d.voucher, true))
                    .await;
            match recorded {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("cannot record the payment of {job}: {e}"),
                Err(e) => tracing::warn!("recording the payment of {job}: {e}"),
            }
        }
    }

    /// [`Provider::on_job`] after the carried payment was checked: `paid`, taken when it
    /// is written with this job's record.
    pub(super) async fn serve(
        &self,
        peer: PeerId,
        req: JobRequest,
        reply: oneshot::Sender<JobReply>,
        paid: &mut Option<Deferred>,
    ) {
        let job_id = req.ticket.job_id;
        let buyer = match self.check(&req) {
            Ok(b) => b,
            Err(r) => {
                self.refuse(reply, job_id, r);
                return;
            }
        };
        // The voucher this request carried counts as the channel's latest: it is written
        // only with this job's record.
        let carried = paid
            .as_ref()
            .map(|d| &d.voucher.message)
            .filter(|v| v.channel_id == req.ticket.channel_id)
            .map(|v| v.cumulative_amount);
        if let Err(r) = self.check_channel(&req, buyer, carried).await {
            self.refuse(reply, job_id, r);
            return;
        }
        let Ok(_slot) = self.slots.try_acquire() else {
            let r = (
                RefuseReason::Busy,
                format!(
                    "all {} job slots are in use; try again or pick another offer",
                    self.config.max_concurrent_jobs
                ),
            );
            self.refuse(reply, job_id, r);
            return;
        };
        if let Err(r) = self.take_lane(&req) {
            self.refuse(reply, job_id, r);
            return;
        }
        let channel = req.ticket.channel_id;
        let mut record = JobRecord::new(job_id, req.ticket.spec_hash, buyer, now());
        record.ticket = Some(EvmSigned::new(req.ticket, req.ticket_signature));
        self.emit(NodeEvent::Accepted {
            job: job_id.to_string(),
            peer: peer.to_string(),
        });

        // Only a job whose module and inputs are here can end at once: one that fetches
        // them from the buyer is answered before the transfer, which must not hold an
        // answer open (a transfer cut and resumed would lose it).
        let wait = if jobs::blob_hashes(&req.spec)
            .iter()
            .all(|h| self.store.blobs().has(h))
        {
            INLINE_RESULT_WAIT
        } else {
            Duration::ZERO
        };
        let run = self.execute(peer, &req);
        tokio::pin!(run);
        // A job that ends at once is stored once, with its result; a longer one when it is
        // answered "accepted" (a duplicate job id is refused there), durably when a payment
        // came with it: the job may run for long, and the payment must not wait for it.
        let (ran, reply) = match tokio::time::timeout(wait, &mut run).await {
            Ok(ran) => (ran, Some(reply)),
            Err(_) => {
                record.state = JobState::Accepted;
                let durable = paid.is_some();
                if let Err(e) = self.insert_job(&req.spec, &record, durable, paid).await {
                    self.free_lane(&channel, &job_id);
                    self.refuse(reply, job_id, (RefuseReason::Other, e));
                    return;
                }
                let _ = reply.send(JobReply::Accepted { job_id });
                (run.await, None)
            }
        };
        let result = match ran {
            Ok(r) => r,
            Err(e) => {
                let why: String = format!("{e:#}").chars().take(200).collect();
                self.emit(NodeEvent::JobFailed {
                    job: job_id.to_string(),
                    reason: why.clone(),
                });
                self.free_lane(&channel, &job_id);
                match reply {
                    Some(reply) => {
                        record.state = JobState::Failed;
                        record.note.clone_from(&why);
                        let durable = paid.is_some();
                        let _ = self.insert_job(&req.spec, &record, durable, paid).await;
                        let _ = reply.send(JobReply::Refused {
                            reason: RefuseReason::Other,
                            message: format!("the job could not run: {why}"),
                        });
                    }
                    None => {
                        let note = why.clone();
                        let _ = off_async(&self.store, move |s| {
                            s.set_job_state(Side::Provider, &job_id, JobState::Failed, &note, now())
                        })
                        .await;
                        // Accepted, so the buyer waits: tell it at once that no result comes.
                        let failure = JobFailure {
                            job_id,
                            reason: RefuseReason::Other,
                            message: format!("the job could not run: {why}"),
                        };
                        if let Err(e) = self.net.send_failure(peer, failure).await {
                            tracing::warn!("telling the buyer that {job_id} failed: {e}");
                        }
                    }
                }
                return;
            }
        };
        // A durable write, before the result leaves: what the ticket is claimed with.
        let signed = EvmSigned::new(result.commitment, result.signature);
        let synced = match &reply {
            Some(_) => {
                record.state = JobState::Done;
                record.result = Some(signed);
                self.insert_job(&req.spec, &record, true, paid).await
            }
            None => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    store.record_result(Side::Provider, &job_id, &signed, now())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            }
        };
        if let Err(e) = &synced {
            tracing::warn!("cannot record the result of {job_id}: {e}");
            // Without a record it could neither be paid nor claimed: not delivered.
            if let Some(reply) = reply {
                self.free_lane(&channel, &job_id);
                self.refuse(reply, job_id, (RefuseReason::Other, e.clone()));
                return;
            }
        }
        if let Ok(mut u) = self.unpaid.lock() {
            u.insert(
                job_id,
                Unpaid {
                    since: now(),
                    withheld: false,
                },
            );
        }
        self.results.put(job_id, result.clone());
        if self.config.test_undeliver > 0 {
            // Test-only: the result is kept, and claimed for, but never sent.
            if let Some(reply) = reply {
                let _ = reply.send(JobReply::Accepted { job_id });
            }
            return;
        }
        if let Some(reply) = reply {
            if reply.send(JobReply::Done(Box::new(result))).is_ok() {
                self.emit(NodeEvent::Delivered {
                    job: job_id.to_string(),
                    in_reply: true,
                });
            }
            return;
        }
        for attempt in 1..=RESULT_ATTEMPTS {
            match self.net.send_result(peer, result.clone()).await {
                Ok(_) => {
                    self.emit(NodeEvent::Delivered {
                        job: job_id.to_string(),
                        in_reply: false,
                    });
                    break;
                }
                Err(e) => {
                    tracing::warn!("result of {job_id}, attempt {attempt}: {e}");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// Stores a job this node took (durably: one that has ended, with its result), and in
    /// the same commit the payment `paid` of the lane's previous job, which it then takes.
    /// When the two cannot be written together, the job is written alone and `paid` left
    /// for the caller.
    pub(super) async fn insert_job(
        &self,
        spec: &sietch_market::JobSpec,
        record: &JobRecord,
        durable: bool,
        paid: &mut Option<Deferred>,
    ) -> Result<(), String> {
        let (spec, record) = (spec.clone(), record.clone());
        let with = paid.as_ref().map(|d| (d.job, d.voucher));
        let settled = off_async(&self.store, move |s| {
            let both = with.as_ref().map(|(job, v)| (job, v, now()));
            match s.insert_job_paying(Side::Provider, &spec, &record, durable, both) {
                Err(e) if with.is_some() && !matches!(e, StoreError::JobExists { .. }) => {
                    tracing::warn!("a job and the payment it carried, together: {e}");
                    s.insert_job_paying(Side::Provider, &spec, &record, durable, None)
                }
                r => r,
            }
            .map_err(|e| format!("cannot record the job: {e}"))
        })
        .await
        .unwrap_or_else(|| Err("the write was cancelled".into()))?;
        if let Some((_, update)) = settled
            && let Some(d) = paid.take()
        {
            self.paid(&d.job, &d.voucher.message, update, true);
        }
        Ok(())
    }

    /// The spec's blobs, from the store or fetched from `peer`.
    pub(super) async fn blobs(
        &self,
        peer: PeerId,
        spec: &sietch_market::JobSpec,
    ) -> anyhow::Result<JobBlobs> {
        let mut b = JobBlobs {
            module: self.blob(peer, spec.module).await?,
            ..JobBlobs::default()
        };
        if let Some(s) = &spec.stdin {
            b.stdin = self.blob(peer, s.hash).await?;
        }
        for i in &spec.inputs {
            b.inputs
                .insert(i.name.clone(), self.blob(peer, i.blob.hash).await?);
        }
        Ok(b)
    }

    pub(super) async fn blob(&self, peer: PeerId, hash: B256) -> anyhow::Result<Vec<u8>> {
        if let Some(b) = self.store.blobs().get(&hash)? {
            return Ok(b);
        }
        let fetched = self
            .net
            .fetch_blob(peer, hash, |_, _| {})
            .await
            .with_context(|| format!("fetching blob {hash} from {peer}"))?;
        self.store.blobs().put_expecting(&hash, &fetched.bytes)?;
        Ok(fetched.bytes)
    }

    /// Runs `spec` seeded with `seed` and returns the report (off the async threads).
    pub(super) async fn run(
        &self,
        peer: PeerId,
        spec: &sietch_market::JobSpec,
        seed: B256,
    ) -> anyhow::Result<sietch_sandbox::JobReport> {
        let blobs = self.blobs(peer, spec).await?;
        let sandbox = self.sandbox.clone();
        let spec = spec.clone();
        Ok(
            tokio::task::spawn_blocking(move || jobs::run(&sandbox, &spec, &seed, blobs))
                .await
                .context("the sandbox task")??,
        )
    }

    pub(super) async fn execute(
        &self,
        peer: PeerId,
        req: &JobRequest,
    ) -> anyhow::Result<JobResult> {
        let t = &req.ticket;
        // A spot check's re-run carries the original's job id: the same seed, the same output.
        let mut report = self.run(peer, &req.spec, t.job_id).await?;
        if self.cheats_on(&t.job_id) {
            // Test-only: a wrong answer that still looks like one, committed to as if true.
            report.stdout.extend_from_slice(b" (cheat)");
            report.output_hash =
                sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
        }
        if !self.config.test_output_name.is_empty() {
            // Test-only: an output name of the provider's choosing, committed to.
            let data = report
                .outputs
                .pop_first()
                .map(|(_, d)| d)
                .unwrap_or_default();
            report
                .outputs
                .insert(self.config.test_output_name.clone(), data);
            report.output_hash =
                sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
        }
        // Test-only: GPU time billed that the run did not use.
        let gpu_millis = report.gpu_time_ns / 1_000_000 + self.config.test_overbill_gpu_millis;
        let commitment = ResultCommitment {
            job_id: t.job_id,
            spec_hash: t.spec_hash,
            channel_id: t.channel_id,
            output_hash: B256::from(report.output_hash),
            fuel_used: report.fuel_used,
            gpu_millis,
            // At the ticket's prices (this offer's, checked on arrival): what the escrow
            // holds the charge to.
            amount: jobs::charge(
                report.fuel_used,
                gpu_millis,
                &Prices {
                    per_gfuel: t.per_gfuel,
                    per_gpu_second: t.per_gpu_second,
                },
                t.max_amount,
            ),
        };
        let signature = commitment.sign(&self.domain, &self.evm)?;
        self.emit(NodeEvent::Ran {
            job: t.job_id.to_string(),
            outcome: report.outcome.to_string(),
            fuel: report.fuel_used,
            amount: commitment.amount.to_string(),
        });
        Ok(JobResult {
            job_id: t.job_id,
            outcome: report.outcome.tag(),
            stdout: report.stdout,
            files: report.outputs.into_iter().collect(),
            commitment,
            signature,
        })
    }
}
