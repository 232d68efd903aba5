//! Jobs on both sides: their specs, tickets, results and states, and the updates that touch
//! several tables at once (a payment and the channel's voucher; a delivery, its payment and
//! its outputs), each in one transaction. Reputation is not counted here: the buyer's
//! reputation table counts it and the store keeps its counters ([`Store::put_reputations`]).

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use sietch_market::{Address, B256, Canonical, JobSpec, ResultCommitment, Ticket, Voucher};

use super::Store;
use super::chain::upsert_voucher;
use super::error::StoreError;
use super::records::{EvmSigned, JobRecord, JobState, MAX_NOTE, Record, Side, VoucherUpdate};
use super::schema::{BUYER_JOBS, JOB_OUTPUTS, JOB_SPECS, PROVIDER_JOBS, VOUCHERS};

type JobTable<'a> = redb::Table<'a, &'static [u8; 32], &'static [u8]>;

/// What a provider delivered, recorded with the job's payment ([`Store::pay_job`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who ran the job.
    pub provider: Address,
    /// The ticket it ran under.
    pub ticket: EvmSigned<Ticket>,
    /// Its signed result commitment.
    pub result: EvmSigned<ResultCommitment>,
    /// The result message's bytes (see [`Store::put_job_outputs`]).
    pub outputs: Vec<u8>,
}

fn table_of(side: Side) -> TableDefinition<'static, &'static [u8; 32], &'static [u8]> {
    match side {
        Side::Buyer => BUYER_JOBS,
        Side::Provider => PROVIDER_JOBS,
    }
}

fn table_name(side: Side) -> &'static str {
    match side {
        Side::Buyer => "buyer_jobs",
        Side::Provider => "provider_jobs",
    }
}

fn decode_job(side: Side, job_id: &B256, bytes: &[u8]) -> Result<JobRecord, StoreError> {
    JobRecord::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        table: table_name(side),
        key: job_id.to_string(),
        source,
    })
}

fn load(table: &JobTable<'_>, side: Side, job_id: &B256) -> Result<JobRecord, StoreError> {
    match table.get(&job_id.0)? {
        Some(v) => decode_job(side, job_id, v.value()),
        None => Err(StoreError::NoSuchJob {
            side,
            job_id: *job_id,
        }),
    }
}

fn save(table: &mut JobTable<'_>, record: &JobRecord) -> Result<(), StoreError> {
    table.insert(&record.job_id.0, record.to_bytes().as_slice())?;
    Ok(())
}

fn move_to(side: Side, record: &mut JobRecord, to: JobState, now: u64) -> Result<(), StoreError> {
    if !record.state.can_become(to) {
        return Err(StoreError::StateTransition {
            side,
            job_id: record.job_id,
            from: record.state,
            to,
        });
    }
    record.state = to;
    record.updated_at = now;
    Ok(())
}

fn same(what: &'static str, expected: B256, found: B256) -> Result<(), StoreError> {
    if expected == found {
        Ok(())
    } else {
        Err(StoreError::Mismatch {
            what,
            expected,
            found,
        })
    }
}

fn check_ticket(record: &JobRecord, ticket: &Ticket) -> Result<(), StoreError> {
    same("ticket's job id", record.job_id, ticket.job_id)?;
    same("ticket's spec hash", record.spec_hash, ticket.spec_hash)
}

fn check_result(record: &JobRecord, result: &ResultCommitment) -> Result<(), StoreError> {
    same("result's job id", record.job_id, result.job_id)?;
    same("result's spec hash", record.spec_hash, result.spec_hash)?;
    match &record.ticket {
        Some(t) => same("result's channel", t.message.channel_id, result.channel_id),
        None => Ok(()),
    }
}

fn check_note(note: &str) -> Result<(), StoreError> {
    if note.len() > MAX_NOTE {
        return Err(StoreError::Invalid {
            what: "job note",
            why: format!("{} bytes, over the limit of {MAX_NOTE}", note.len()),
        });
    }
    Ok(())
}

/// A buyer's record of a delivery: who ran the job, its ticket and result; moves it to
/// [`JobState::Done`].
fn deliver(
    record: &mut JobRecord,
    provider: Address,
    ticket: &EvmSigned<Ticket>,
    result: &EvmSigned<ResultCommitment>,
    now: u64,
) -> Result<(), StoreError> {
    check_ticket(record, &ticket.message)?;
    record.counterparty = provider;
    record.ticket = Some(*ticket);
    check_result(record, &result.message)?;
    move_to(Side::Buyer, record, JobState::Done, now)?;
    record.result = Some(*result);
    Ok(())
}

/// Reads, changes and writes back one job inside a caller's transaction. `f` may refuse;
/// then nothing is written. The job's id and spec hash cannot change.
fn change_job(
    tx: &redb::WriteTransaction,
    side: Side,
    job_id: &B256,
    f: impl FnOnce(&mut JobRecord) -> Result<(), StoreError>,
) -> Result<JobRecord, StoreError> {
    let mut jobs = tx.open_table(table_of(side))?;
    let mut record = load(&jobs, side, job_id)?;
    let (id, spec) = (record.job_id, record.spec_hash);
    f(&mut record)?;
    same("job id", id, record.job_id)?;
    same("spec hash", spec, record.spec_hash)?;
    save(&mut jobs, &record)?;
    Ok(record)
}

/// The payment of a job inside a caller's transaction: `before` first changes the record
/// (or refuses, and nothing is written), then the job moves to [`JobState::Paid`], the
/// voucher becomes its channel's latest if newer. Settling a paid job again only offers the
/// voucher.
fn settle_in(
    tx: &redb::WriteTransaction,
    side: Side,
    job_id: &B256,
    voucher: &EvmSigned<Voucher>,
    now: u64,
    before: impl FnOnce(&mut JobRecord) -> Result<(), StoreError>,
) -> Result<(JobRecord, VoucherUpdate), StoreError> {
    let record = change_job(tx, side, job_id, |record| {
        before(record)?;
        if let Some(t) = &record.ticket {
            same(
                "voucher's channel",
                t.message.channel_id,
                voucher.message.channel_id,
            )?;
        }
        if record.state != JobState::Paid {
            move_to(side, record, JobState::Paid, now)?;
        }
        Ok(())
    })?;
    let update = upsert_voucher(&mut tx.open_table(VOUCHERS)?, voucher)?;
    Ok((record, update))
}

impl Store {
    /// Stores a new job and its spec in one transaction. The record's spec hash must be the
    /// spec's, and its ticket and result (if any) must name the job and spec. The spec is
    /// kept once per spec hash, shared by every job that runs it.
    pub fn insert_job(
        &self,
        side: Side,
        spec: &JobSpec,
        record: &JobRecord,
    ) -> Result<(), StoreError> {
        self.insert_job_with(side, spec, record, false)
    }

    /// [`Store::insert_job`] committed durably: for a job stored only once it has ended, its
    /// result already in the record (a provider's job that ran at once: the result is what
    /// it claims the ticket with). Everything committed before becomes durable with it.
    pub fn insert_ended_job(
        &self,
        side: Side,
        spec: &JobSpec,
        record: &JobRecord,
    ) -> Result<(), StoreError> {
        self.insert_job_with(side, spec, record, true)
    }

    fn insert_job_with(
        &self,
        side: Side,
        spec: &JobSpec,
        record: &JobRecord,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.insert_job_paying(side, spec, record, durable, None)
            .map(|_| ())
    }

    /// [`Store::insert_job`] (durably when `durable`) and, in the same transaction, the
    /// payment of an earlier job (`paid`: its id, the voucher and the time), as
    /// [`Store::settle_job`] records it: a provider writes the voucher a job request carried
    /// with that job, in one commit. Either both are written or neither.
    pub fn insert_job_paying(
        &self,
        side: Side,
        spec: &JobSpec,
        record: &JobRecord,
        durable: bool,
        paid: Option<(&B256, &EvmSigned<Voucher>, u64)>,
    ) -> Result<Option<(JobRecord, VoucherUpdate)>, StoreError> {
        let spec_bytes = spec.encode();
        // A spec that would not decode (over its bounds, a NaN bound) is refused now rather
        // than stored unreadable.
        JobSpec::decode(&spec_bytes).map_err(|e| StoreError::Invalid {
            what: "job spec",
            why: e.to_string(),
        })?;
        let spec_hash = B256::from(*blake3::hash(&spec_bytes).as_bytes());
        same("record's spec hash", spec_hash, record.spec_hash)?;
        if let Some(t) = &record.ticket {
            check_ticket(record, &t.message)?;
        }
        if let Some(r) = &record.result {
            check_result(record, &r.message)?;
        }
        check_note(&record.note)?;

        let record = record.clone();
        let paid = paid.map(|(job, voucher, now)| (*job, *voucher, now));
        self.batched(durable, move |tx| {
            let settled = match &paid {
                Some((job, voucher, now)) => {
                    Some(settle_in(tx, side, job, voucher, *now, |_| Ok(()))?)
                }
                None => None,
            };
            let mut jobs = tx.open_table(table_of(side))?;
            if jobs.get(&record.job_id.0)?.is_some() {
                return Err(StoreError::JobExists {
                    side,
                    job_id: record.job_id,
                });
            }
            let mut specs = tx.open_table(JOB_SPECS)?;
            if specs.get(&spec_hash.0)?.is_none() {
                specs.insert(&spec_hash.0, spec_bytes.as_slice())?;
            }
            save(&mut jobs, &record)?;
            Ok(settled)
        })
    }

    /// A job, if stored on that side.
    pub fn job(&self, side: Side, job_id: &B256) -> Result<Option<JobRecord>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(table_of(side))?;
        table
            .get(&job_id.0)?
            .map(|v| decode_job(side, job_id, v.value()))
            .transpose()
    }

    /// A spec by its hash.
    pub fn job_spec(&self, spec_hash: &B256) -> Result<Option<JobSpec>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(JOB_SPECS)?;
        table
            .get(&spec_hash.0)?
            .map(|v| {
                JobSpec::decode(v.value()).map_err(|source| StoreError::Corrupt {
                    table: "job_specs",
                    key: spec_hash.to_string(),
                    source,
                })
            })
            .transpose()
    }

    /// Up to `limit` jobs of one side in job-id order, starting after `after` (for paging).
    pub fn jobs(
        &self,
        side: Side,
        after: Option<&B256>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(table_of(side))?;
        let range = match after {
            Some(a) => table.range::<&[u8; 32]>((
                std::ops::Bound::Excluded(&a.0),
                std::ops::Bound::Unbounded,
            ))?,
            None => table.iter()?,
        };
        let mut out = Vec::new();
        for entry in range.take(limit) {
            let (k, v) = entry?;
            out.push(decode_job(side, &B256::from(*k.value()), v.value())?);
        }
        Ok(out)
    }

    /// How many jobs one side holds.
    pub fn job_count(&self, side: Side) -> Result<u64, StoreError> {
        let tx = self.db().begin_read()?;
        Ok(tx.open_table(table_of(side))?.len()?)
    }

    /// Moves a job to `state` with a note (why it was refused or failed; may be empty), and
    /// returns the updated record. States only move forward ([`JobState::can_become`]).
    pub fn set_job_state(
        &self,
        side: Side,
        job_id: &B256,
        state: JobState,
        note: &str,
        now: u64,
    ) -> Result<JobRecord, StoreError> {
        check_note(note)?;
        let note = note.to_owned();
        self.update_job(side, job_id, false, move |record| {
            move_to(side, record, state, now)?;
            if !note.is_empty() {
                note.clone_into(&mut record.note);
            }
            Ok(())
        })
    }

    /// Records the provider's signed result commitment and moves the job to
    /// [`JobState::Done`], together.
    pub fn record_result(
        &self,
        side: Side,
        job_id: &B256,
        result: &EvmSigned<ResultCommitment>,
        now: u64,
    ) -> Result<JobRecord, StoreError> {
        // A provider's result is what it claims a ticket with: durable. A buyer's is
        // bookkeeping until its payment.
        let result = *result;
        self.update_job(side, job_id, side == Side::Provider, move |record| {
            check_result(record, &result.message)?;
            move_to(side, record, JobState::Done, now)?;
            record.result = Some(result);
            Ok(())
        })
    }

    /// Buyer side: records what a provider delivered, in one commit: who ran the job, the
    /// ticket it ran under and its signed result commitment; the job moves to
    /// [`JobState::Done`]. Bookkeeping until its payment, like [`Store::record_result`].
    pub fn record_delivery(
        &self,
        job_id: &B256,
        provider: Address,
        ticket: &EvmSigned<Ticket>,
        result: &EvmSigned<ResultCommitment>,
        now: u64,
    ) -> Result<JobRecord, StoreError> {
        let (ticket, result) = (*ticket, *result);
        self.update_job(Side::Buyer, job_id, false, move |record| {
            deliver(record, provider, &ticket, &result, now)
        })
    }

    /// Buyer side: records the outcome of a spot check of a job, moving it to
    /// [`JobState::Checked`] or [`JobState::Failed`] (the check's count in the provider's
    /// reputation is the buyer's reputation table's). Recording the same outcome again
    /// changes nothing.
    pub fn record_check(
        &self,
        job_id: &B256,
        passed: bool,
        now: u64,
    ) -> Result<JobRecord, StoreError> {
        let side = Side::Buyer;
        let to = if passed {
            JobState::Checked
        } else {
            JobState::Failed
        };
        let tx = self.bookkeeping()?;
        let record = {
            let mut jobs = tx.open_table(table_of(side))?;
            let mut record = load(&jobs, side, job_id)?;
            if record.state != to {
                move_to(side, &mut record, to, now)?;
                if !passed {
                    "spot check failed".clone_into(&mut record.note);
                }
                save(&mut jobs, &record)?;
            }
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Records that a job was paid by `voucher`: the job moves to [`JobState::Paid`], the
    /// voucher becomes its channel's latest if it is newer (the rule of
    /// [`Store::put_voucher`]), in one transaction. The voucher must be for the job's ticket's channel.
    /// Settling a paid job again only offers the voucher.
    pub fn settle_job(
        &self,
        side: Side,
        job_id: &B256,
        voucher: &EvmSigned<Voucher>,
        now: u64,
    ) -> Result<(JobRecord, VoucherUpdate), StoreError> {
        let (job_id, voucher) = (*job_id, *voucher);
        self.batched(true, move |tx| {
            settle_in(tx, side, &job_id, &voucher, now, |_| Ok(()))
        })
    }

    /// A write transaction, committed with an fsync when `durable`, else as
    /// [`Store::bookkeeping`].
    pub(super) fn write_tx(&self, durable: bool) -> Result<redb::WriteTransaction, StoreError> {
        if durable {
            Ok(self.db().begin_write()?)
        } else {
            self.bookkeeping()
        }
    }

    /// Buyer side: a job delivered, accepted and paid at once (not sampled), in one durable
    /// commit: what [`Store::record_delivery`], [`Store::put_job_outputs`] and
    /// [`Store::settle_job`] do one after another.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_job(
        &self,
        job_id: &B256,
        provider: Address,
        ticket: &EvmSigned<Ticket>,
        result: &EvmSigned<ResultCommitment>,
        outputs: &[u8],
        voucher: &EvmSigned<Voucher>,
        now: u64,
    ) -> Result<(JobRecord, VoucherUpdate), StoreError> {
        let side = Side::Buyer;
        let (job_id, ticket, result, voucher) = (*job_id, *ticket, *result, *voucher);
        let outputs = outputs.to_vec();
        self.batched(true, move |tx| {
            let out = settle_in(tx, side, &job_id, &voucher, now, |record| {
                deliver(record, provider, &ticket, &result, now)
            })?;
            tx.open_table(JOB_OUTPUTS)?
                .insert(&job_id.0, outputs.as_slice())?;
            Ok(out)
        })
    }

    /// Buyer side: a job's payment as [`Store::settle_job`] records it (or, with
    /// `delivered`, as [`Store::finish_job`] does: the delivery, its outputs and the
    /// payment), and in the same durable commit the check secret the payment reveals: what a
    /// restarted buyer needs to send that payment again (the voucher alone does not pay a
    /// job to its provider).
    pub fn pay_job(
        &self,
        job_id: &B256,
        voucher: &EvmSigned<Voucher>,
        secret: &B256,
        delivered: Option<Delivery>,
        now: u64,
    ) -> Result<(JobRecord, VoucherUpdate), StoreError> {
        let (job_id, voucher, secret) = (*job_id, *voucher, *secret);
        self.batched(true, move |tx| {
            let out = settle_in(tx, Side::Buyer, &job_id, &voucher, now, |record| {
                if let Some(d) = &delivered {
                    deliver(record, d.provider, &d.ticket, &d.result, now)?;
                }
                record.check_secret = Some(secret);
                Ok(())
            })?;
            if let Some(d) = &delivered {
                tx.open_table(JOB_OUTPUTS)?
                    .insert(&job_id.0, d.outputs.as_slice())?;
            }
            Ok(out)
        })
    }

    /// Commits nothing, durably: everything committed before is on disk when it returns.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db().begin_write()?.commit()?;
        Ok(())
    }

    /// Reads, changes and writes back one job in one transaction. `f` may refuse; then
    /// nothing is written. The job's id and spec hash cannot change.
    fn update_job(
        &self,
        side: Side,
        job_id: &B256,
        durable: bool,
        f: impl Fn(&mut JobRecord) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<JobRecord, StoreError> {
        let job_id = *job_id;
        self.batched(durable, move |tx| change_job(tx, side, &job_id, &f))
    }

    /// Keeps a job's outputs (the result message's bytes, at most 16 MiB).
    pub fn put_job_outputs(&self, job_id: &B256, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.bookkeeping()?;
        tx.open_table(JOB_OUTPUTS)?.insert(&job_id.0, bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// A job's outputs, if kept.
    pub fn job_outputs(&self, job_id: &B256) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(JOB_OUTPUTS)?;
        Ok(table.get(&job_id.0)?.map(|v| v.value().to_vec()))
    }
}
