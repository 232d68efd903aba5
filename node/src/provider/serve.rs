//! Serving a job: admitting it, running it, recording it, and answering with its result or
//! its failure.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use sietch_market::Eip712Error;
use sietch_market::eip712::TypedData;
use sietch_market::{B256, Prices, ResultCommitment};
use tokio::sync::oneshot;

use super::admission::take_slot;
use super::{Deferred, INLINE_RESULT_WAIT, Provider, RESULT_ATTEMPTS, adversary, now};
use crate::events::NodeEvent;
use crate::jobs::{self, JobBlobs, RunFailure};
use crate::net::{JobFailure, JobReply, JobRequest, JobResult, NetError, RefuseReason};
use crate::store::{BlobError, EvmSigned, JobRecord, JobState, Side, StoreError, off_async};

/// Why a job could not be run (its outcome, whatever it is, is not an error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// A blob could not be read from or written to the store.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A blob could not be fetched from the peer that sent the job.
    #[error("fetching blob {hash} from {peer}: {error}")]
    Fetch {
        hash: B256,
        peer: PeerId,
        error: NetError,
    },
    /// The sandbox's task ended without an answer.
    #[error("the sandbox task: {0}")]
    Task(tokio::task::JoinError),
    /// The sandbox refused the module or could not run it.
    #[error(transparent)]
    Sandbox(#[from] RunFailure),
    /// The result commitment could not be signed.
    #[error("signing the result: {0}")]
    Sign(Eip712Error),
}

/// Why a job or its result could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The job's record.
    #[error("cannot record the job: {0}")]
    Job(StoreError),
    /// The result of a job recorded when accepted.
    #[error("cannot record the result: {0}")]
    Result(StoreError),
    /// The write's task ended without an answer.
    #[error("the write was cancelled")]
    Cancelled,
}

/// Longest failure reason told to the buyer, in characters.
const MAX_WHY: usize = 200;

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
                // Withheld: noted by the check.
                Ok(Ok(None)) => {}
                Ok(Err(refused)) => {
                    tracing::warn!(%peer, "a payment carried by a job request: {refused}");
                }
                Err(e) => tracing::warn!(%peer, "checking a payment carried by a job request: {e}"),
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
    async fn serve(
        &self,
        peer: PeerId,
        req: JobRequest,
        reply: oneshot::Sender<JobReply>,
        paid: &mut Option<Deferred>,
    ) {
        let job_id = req.ticket.job_id;
        let buyer = match self.check(&req) {
            Ok(b) => b,
            Err(r) => return self.refuse(reply, job_id, r),
        };
        // The voucher this request carried counts as the channel's latest: it is written
        // only with this job's record.
        let carried = paid
            .as_ref()
            .map(|d| &d.voucher.message)
            .filter(|v| v.channel_id == req.ticket.channel_id)
            .map(|v| v.cumulative_amount);
        if let Err(r) = self.check_channel(&req, buyer, carried).await {
            return self.refuse(reply, job_id, r);
        }
        let _slot = match take_slot(&self.slots, self.config.max_concurrent_jobs) {
            Ok(s) => s,
            Err(r) => return self.refuse(reply, job_id, r),
        };
        if let Err(r) = self.take_lane(&req) {
            return self.refuse(reply, job_id, r);
        }
        let channel = req.ticket.channel_id;
        let mut record = JobRecord::new(job_id, req.ticket.spec_hash, buyer, now());
        record.ticket = Some(EvmSigned::new(req.ticket, req.ticket_signature));
        self.emit(NodeEvent::Accepted { job: job_id, peer });

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
                    return self.refuse(reply, job_id, e.into());
                }
                // The buyer may have given up waiting: the result still goes on its protocol.
                let _ = reply.send(JobReply::Accepted { job_id });
                (run.await, None)
            }
        };
        let result = match ran {
            Ok(r) => r,
            Err(e) => return self.failed(peer, &req, record, e, reply, paid).await,
        };
        // A durable write, before the result leaves: what the ticket is claimed with.
        let signed = EvmSigned::new(result.commitment, result.signature);
        let synced = match &reply {
            Some(_) => {
                record.state = JobState::Done;
                record.result = Some(signed);
                self.insert_job(&req.spec, &record, true, paid).await
            }
            None => match off_async(&self.store, move |s| {
                s.record_result(Side::Provider, &job_id, &signed, now())
            })
            .await
            {
                Some(r) => r.map(|_| ()).map_err(RecordError::Result),
                None => Err(RecordError::Cancelled),
            },
        };
        if let Err(e) = synced {
            tracing::warn!("cannot record the result of {job_id}: {e}");
            // Without a record it could neither be paid nor claimed: not delivered.
            if let Some(reply) = reply {
                self.free_lane(&channel, &job_id);
                return self.refuse(reply, job_id, e.into());
            }
        }
        self.note_unpaid(job_id, false);
        self.results.put(job_id, result.clone());
        self.deliver(peer, result, reply).await;
    }

    /// The job could not run: says so, records it failed, and tells the buyer (in the
    /// answer to its request, or, once accepted, on the result protocol).
    async fn failed(
        &self,
        peer: PeerId,
        req: &JobRequest,
        mut record: JobRecord,
        e: RunError,
        reply: Option<oneshot::Sender<JobReply>>,
        paid: &mut Option<Deferred>,
    ) {
        let job_id = record.job_id;
        let why: String = e.to_string().chars().take(MAX_WHY).collect();
        self.emit(NodeEvent::JobFailed {
            job: job_id,
            reason: why.clone(),
        });
        self.free_lane(&req.ticket.channel_id, &job_id);
        let message = format!("the job could not run: {why}");
        match reply {
            Some(reply) => {
                record.state = JobState::Failed;
                record.note.clone_from(&why);
                let durable = paid.is_some();
                if let Err(e) = self.insert_job(&req.spec, &record, durable, paid).await {
                    tracing::warn!("the failure of {job_id} is not recorded: {e}");
                }
                // The buyer may have given up waiting: nothing is lost with the answer.
                let _ = reply.send(JobReply::Refused {
                    reason: RefuseReason::Other,
                    message,
                });
            }
            None => {
                let note = why.clone();
                let written = off_async(&self.store, move |s| {
                    s.set_job_state(Side::Provider, &job_id, JobState::Failed, &note, now())
                })
                .await;
                match written {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(
                        "the failure of {job_id} is not recorded (it stays accepted): {e}"
                    ),
                    None => tracing::warn!(
                        "the failure of {job_id} is not recorded (it stays accepted): the \
                         write was cancelled"
                    ),
                }
                // Accepted, so the buyer waits: tell it at once that no result comes.
                let failure = JobFailure {
                    job_id,
                    reason: RefuseReason::Other,
                    message,
                };
                if let Err(e) = self.net.send_failure(peer, failure).await {
                    tracing::warn!("telling the buyer that {job_id} failed: {e}");
                }
            }
        }
    }

    /// Hands a recorded result to the buyer: in the answer to its request, or on the result
    /// protocol, tried [`RESULT_ATTEMPTS`] times.
    async fn deliver(
        &self,
        peer: PeerId,
        result: JobResult,
        reply: Option<oneshot::Sender<JobReply>>,
    ) {
        let job_id = result.job_id;
        if adversary::keeps_results(&self.config) {
            if let Some(reply) = reply {
                let _ = reply.send(JobReply::Accepted { job_id });
            }
            return;
        }
        if let Some(reply) = reply {
            if reply.send(JobReply::Done(Box::new(result))).is_ok() {
                self.emit(NodeEvent::Delivered {
                    job: job_id,
                    in_reply: true,
                });
            }
            return;
        }
        for attempt in 1..=RESULT_ATTEMPTS {
            match self.net.send_result(peer, result.clone()).await {
                Ok(_) => {
                    self.emit(NodeEvent::Delivered {
                        job: job_id,
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
    async fn insert_job(
        &self,
        spec: &sietch_market::JobSpec,
        record: &JobRecord,
        durable: bool,
        paid: &mut Option<Deferred>,
    ) -> Result<(), RecordError> {
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
            .map_err(RecordError::Job)
        })
        .await
        .unwrap_or(Err(RecordError::Cancelled))?;
        if let Some((_, update)) = settled
            && let Some(d) = paid.take()
        {
            self.paid(&d.job, &d.voucher.message, update, true);
        }
        Ok(())
    }

    /// The spec's blobs, from the store or fetched from `peer`.
    async fn blobs(
        &self,
        peer: PeerId,
        spec: &sietch_market::JobSpec,
    ) -> Result<JobBlobs, RunError> {
        let mut b = JobBlobs {
            module: self.blob(peer, spec.module).await?.to_vec(),
            ..JobBlobs::default()
        };
        if let Some(s) = &spec.stdin {
            b.stdin = self.blob(peer, s.hash).await?.to_vec();
        }
        for i in &spec.inputs {
            b.inputs
                .insert(i.name.clone(), self.blob(peer, i.blob.hash).await?);
        }
        Ok(b)
    }

    /// Blob `hash`: the copy in memory other jobs use, else from the store (read and checked
    /// once, then shared), else fetched from `peer` and stored.
    async fn blob(&self, peer: PeerId, hash: B256) -> Result<Arc<[u8]>, RunError> {
        if let Some(b) = self.shared.get(&hash) {
            self.store.blobs().touch(&hash);
            return Ok(b);
        }
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.blobs().get(&hash))
            .await
            .map_err(RunError::Task)??;
        if let Some(b) = stored {
            return Ok(self.shared.insert(hash, b));
        }
        // Streamed into the store as it arrives (hashed on the way, published whole), then
        // read once into the memory the jobs share.
        let started = std::time::Instant::now();
        let fetched = self
            .net
            .fetch_blob_into(peer, hash, self.store.blobs().writer(&hash), |_, _| {})
            .await
            .map_err(|error| RunError::Fetch { hash, peer, error })?;
        let store = self.store.clone();
        let size = tokio::task::spawn_blocking(move || store.blobs().commit(fetched.sink))
            .await
            .map_err(RunError::Task)??;
        self.emit(NodeEvent::BlobFetched {
            hash,
            bytes: size,
            millis: started.elapsed().as_millis() as u64,
        });
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.blobs().get(&hash))
            .await
            .map_err(RunError::Task)??;
        let bytes = stored.ok_or(crate::store::BlobError::Corrupt {
            hash,
            found: B256::ZERO,
        })?;
        Ok(self.shared.insert(hash, bytes))
    }

    /// Runs `spec` seeded with `seed` and returns the report (off the async threads).
    pub(super) async fn run(
        &self,
        peer: PeerId,
        spec: &sietch_market::JobSpec,
        seed: B256,
    ) -> Result<sietch_sandbox::JobReport, RunError> {
        let blobs = self.blobs(peer, spec).await?;
        let sandbox = self.sandbox.clone();
        let spec = spec.clone();
        Ok(
            tokio::task::spawn_blocking(move || jobs::run(&sandbox, &spec, &seed, blobs))
                .await
                .map_err(RunError::Task)??,
        )
    }

    /// Runs the job of a request, and signs its result commitment (fuel and GPU time at the
    /// ticket's prices, capped by the ticket).
    async fn execute(&self, peer: PeerId, req: &JobRequest) -> Result<JobResult, RunError> {
        let t = &req.ticket;
        // A spot check's re-run carries the original's job id: the same seed, the same output.
        let mut report = self.run(peer, &req.spec, t.job_id).await?;
        adversary::tamper(&self.config, &t.job_id, &mut report);
        let gpu_millis = adversary::billed_gpu_millis(&self.config, report.gpu_time_ns);
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
        let signature = commitment
            .sign(&self.domain, &self.evm)
            .map_err(RunError::Sign)?;
        self.emit(NodeEvent::Ran {
            job: t.job_id,
            outcome: report.outcome,
            fuel: report.fuel_used,
            amount: commitment.amount,
        });
        Ok(JobResult {
            job_id: t.job_id,
            outcome: report.outcome,
            stdout: report.stdout,
            files: report.outputs,
            commitment,
            signature,
        })
    }
}
