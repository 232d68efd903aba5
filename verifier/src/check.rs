//! The spot check of one job: sample, re-run, compare, escalate, decide.
//!
//! 1. The revealed secret must open the ticket's commit; the job is checked iff
//!    `keccak256(secret ‖ jobId) < q · 2^256` ([`crate::sampling`]). Unchecked jobs end here,
//!    at the cost of two hashes.
//! 2. The provider's result must be signed by its offer's EVM account (or the operator that
//!    account named in the escrow, as the verifier's [`Signers`] say) and name the ticket's
//!    job and spec (in tolerance mode, its outputs must hash to the signed output hash).
//! 3. `k` re-run providers (the spec's `reruns`, at least 1 and at most
//!    [`VerifierConfig::max_reruns`]) are drawn ([`crate::select`](mod@crate::select)) and
//!    run concurrently through the [`Executor`]. One that fails to deliver a valid result is
//!    recorded as a [`Fault`] and replaced, up to [`VerifierConfig::spare_attempts`]
//!    replacements per phase.
//! 4. Every re-run is compared with the original ([`crate::compare`](mod@crate::compare)).
//!    All agree: **passed**.
//! 5. Any mismatch: two more independent re-runs (excluding everyone so far, their owners and
//!    blocks). With `m = k + 2` re-runs of which `d` differ from the original: `2d > m`, the
//!    **provider is wrong** (the evidence is bundled); `2(m − d) > m`, the **provider is
//!    right** (the re-runs that differ are wrong); otherwise undecided. At `k = 1` this is the
//!    escrow's rule: two of three verifiers decide.
//!
//! Whenever fewer re-runs than a phase needs can be made, the check is **undecided**: it
//! accuses no one on less evidence than the rule asks for.

use futures::future::join_all;
use rand::Rng;
use sietch_market::eip712::Domain;
use sietch_market::{
    Address, B256, Expected, JobSpec, Offer, PublicKey, ResultCommitment, Ticket, check_result,
};

use crate::compare::{Agreement, compare, with_outputs};
use crate::error::{CheckError, Fault, FaultKind, ResultError};
use crate::evidence::{
    AccountOnly, Evidence, MAX_VOTES, SignedCommitment, Signers, Vote, operator_signer,
};
use crate::exec::{Executor, RerunRequest, RunResult};
use crate::reputation::Event;
use crate::rescore::{RerunPlan, rerun_plan};
use crate::sampling::reveal;
use crate::select::{Exclusions, SelectConfig, select};

/// Re-runs added on a mismatch (`docs/protocol.md` §2.6).
pub const ESCALATION_RERUNS: usize = 2;

/// How the verifier runs checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierConfig {
    /// How re-run providers are chosen.
    pub select: SelectConfig,
    /// Most re-runs in the first phase, whatever the spec asks (bounds the work of one check;
    /// never more than [`crate::evidence::MAX_VOTES`] − 2).
    pub max_reruns: u8,
    /// Providers tried in a phase beyond those it needs, to replace ones that fail to deliver.
    pub spare_attempts: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            select: SelectConfig::default(),
            max_reruns: 8,
            spare_attempts: 4,
        }
    }
}

/// A job to check: the buyer's records of it.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Its spec.
    pub spec: &'a JobSpec,
    /// The ticket the buyer signed for it.
    pub ticket: &'a Ticket,
    /// The buyer's EIP-712 signature on the ticket, carried into the evidence so that it holds
    /// all that `claimTicket` takes (which only the provider may send); `None` if the node
    /// keeps it elsewhere.
    pub ticket_signature: Option<[u8; 65]>,
    /// The revealed spot-check secret.
    pub secret: B256,
    /// The offer of the provider that ran it.
    pub provider: &'a Offer,
    /// The provider's signed result.
    pub result: &'a RunResult,
}

/// Which phase of a check a re-run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The `k` re-runs of a sampled job.
    Sample,
    /// The two re-runs after a mismatch.
    Escalation,
}

/// One re-run that delivered a valid result.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Who ran it.
    pub provider: PublicKey,
    /// Its EVM account (the commitment's signer, or the account its operator signed for).
    pub owner: Address,
    /// The phase.
    pub phase: Phase,
    /// Its signed commitment.
    pub commitment: ResultCommitment,
    /// The signature.
    pub signature: [u8; 65],
    /// How it compares with the original.
    pub agreement: Agreement,
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The job was not sampled: accept it.
    NotSampled,
    /// Every re-run agreed with the provider.
    Passed,
    /// A re-run differed, and the majority after escalation agreed with the provider: the
    /// re-runs that differed are wrong.
    ProviderRight,
    /// The majority after escalation differed from the provider: it is wrong. Withhold
    /// payment; the evidence can open a dispute.
    ProviderWrong,
    /// Fewer re-runs could be made than the rule needs, or no majority: nothing is proven.
    Undecided {
        /// Re-runs the rule needed.
        wanted: usize,
        /// Re-runs made.
        got: usize,
    },
}

/// The record of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The job.
    pub job_id: B256,
    /// The provider checked.
    pub provider: PublicKey,
    /// Its EVM account.
    pub owner: Address,
    /// What was decided.
    pub decision: Decision,
    /// Every re-run that delivered a valid result, in the order they were made.
    pub runs: Vec<RunRecord>,
    /// Re-run providers that did not.
    pub faults: Vec<Fault>,
    /// For [`Decision::ProviderWrong`]: the signed commitments, bundled.
    pub evidence: Option<Evidence>,
}

impl Check {
    /// Whether the buyer should pay for the job: always, unless the provider was found wrong.
    pub fn pays(&self) -> bool {
        self.decision != Decision::ProviderWrong
    }

    /// Re-runs attempted (delivered or not): the compute this check cost beyond the job.
    pub fn reruns_attempted(&self) -> usize {
        self.runs.len() + self.faults.len()
    }

    /// What the check says about each provider it involved, for reputation: the provider and
    /// every re-run provider on the majority's side passed, those against it failed; a re-run
    /// provider that delivered an invalid result failed. Undecided checks say nothing of the
    /// runs, and a re-run provider that could not be reached is not blamed (its latency is).
    pub fn observations(&self) -> Vec<(PublicKey, Event)> {
        let mut out = Vec::new();
        let provider_right = match self.decision {
            Decision::Passed | Decision::ProviderRight => Some(true),
            Decision::ProviderWrong => Some(false),
            Decision::NotSampled | Decision::Undecided { .. } => None,
        };
        if let Some(right) = provider_right {
            out.push((self.provider, event(right)));
            for r in &self.runs {
                out.push((r.provider, event(r.agreement.agrees() == right)));
            }
        }
        for f in &self.faults {
            if matches!(f.kind, FaultKind::BadResult(_)) {
                out.push((f.provider, Event::CheckFailed));
            }
        }
        out
    }
}

fn event(passed: bool) -> Event {
    if passed {
        Event::CheckPassed
    } else {
        Event::CheckFailed
    }
}

/// Runs spot checks through an [`Executor`].
#[derive(Debug)]
pub struct Verifier<E> {
    executor: E,
    domain: Domain,
    config: VerifierConfig,
    /// Who signs for whom (operators); [`AccountOnly`] unless [`Verifier::with_signers`].
    signers: std::sync::Arc<dyn Signers>,
}

/// What one phase gathers.
struct Gathered<'a> {
    runs: Vec<RunRecord>,
    faults: Vec<Fault>,
    exclusions: Exclusions,
    job: &'a Job<'a>,
    /// What each re-run runs ([`crate::rescore::rerun_plan`]) and its spec's hash.
    plan: RerunPlan,
    spec_hash: B256,
}

impl<E: Executor> Verifier<E> {
    /// A verifier that checks signatures in `domain` (the escrow's chain and address).
    pub fn new(executor: E, domain: Domain, config: VerifierConfig) -> Self {
        Self {
            executor,
            domain,
            config,
            signers: std::sync::Arc::new(AccountOnly),
        }
    }

    /// The same verifier, accepting the commitments an account's operator signed as
    /// `signers` say (the node's: from the escrow's `operatorOf`).
    pub fn with_signers(mut self, signers: std::sync::Arc<dyn Signers>) -> Self {
        self.signers = signers;
        self
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.executor
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Checks `job`, drawing re-run providers from `candidates` (offers that can run its spec:
    /// see [`crate::candidates`]) with `rng`, at time `now` (unix seconds, for offer expiry).
    pub async fn check<R: Rng + ?Sized>(
        &self,
        job: &Job<'_>,
        candidates: &[&Offer],
        now: u64,
        rng: &mut R,
    ) -> Result<Check, CheckError> {
        let spec_hash = job.spec.hash();
        let commitment = &job.result.commitment;
        if job.ticket.job_id != commitment.job_id {
            return Err(CheckError::Ticket("its job id is not the result's"));
        }
        if job.ticket.channel_id != commitment.channel_id {
            return Err(CheckError::Ticket("its channel is not the result's"));
        }
        if job.ticket.spec_hash != spec_hash {
            return Err(CheckError::Ticket("its spec hash is not the spec's"));
        }
        let policy = &job.spec.verification;
        let mut check = Check {
            job_id: job.ticket.job_id,
            provider: job.provider.provider,
            owner: job.provider.evm_address,
            decision: Decision::NotSampled,
            runs: Vec::new(),
            faults: Vec::new(),
            evidence: None,
        };
        if !reveal(job.ticket, &job.secret, policy.sampling_ppm)? {
            return Ok(check);
        }
        let signer = self
            .validate(
                job.spec,
                spec_hash,
                job.ticket.job_id,
                job.provider,
                job.result,
            )
            .await
            .map_err(CheckError::Original)?;

        let plan = rerun_plan(job.spec, job.result.outputs.as_ref());
        // At most what one evidence bundle holds once the escalation is added.
        let k = usize::from(policy.reruns.clamp(1, self.config.max_reruns.max(1)))
            .min(MAX_VOTES - ESCALATION_RERUNS);
        let mut g = Gathered {
            runs: Vec::new(),
            faults: Vec::new(),
            exclusions: Exclusions::of(job.provider),
            job,
            spec_hash: plan.spec.hash(),
            plan,
        };
        self.gather(&mut g, candidates, now, k, Phase::Sample, rng)
            .await;
        let mut decision = if g.runs.len() < k {
            Decision::Undecided {
                wanted: k,
                got: g.runs.len(),
            }
        } else if g.runs.iter().all(|r| r.agreement.agrees()) {
            Decision::Passed
        } else {
            self.gather(
                &mut g,
                candidates,
                now,
                ESCALATION_RERUNS,
                Phase::Escalation,
                rng,
            )
            .await;
            majority(&g.runs, k + ESCALATION_RERUNS)
        };
        if decision == Decision::ProviderWrong {
            match self.evidence(job, signer, &g.runs) {
                Some(e) => check.evidence = Some(e),
                // Unreachable in practice (every run was validated); never accuse without it.
                None => {
                    decision = Decision::Undecided {
                        wanted: k + ESCALATION_RERUNS,
                        got: g.runs.len(),
                    }
                }
            }
        }
        check.decision = decision;
        check.runs = g.runs;
        check.faults = g.faults;
        Ok(check)
    }

    /// Makes `need` more valid re-runs if it can, replacing providers that fail.
    async fn gather<R: Rng + ?Sized>(
        &self,
        g: &mut Gathered<'_>,
        candidates: &[&Offer],
        now: u64,
        need: usize,
        phase: Phase,
        rng: &mut R,
    ) {
        let job = g.job;
        let spec = &g.plan.spec;
        let outputs = with_outputs(&spec.verification.comparison);
        let mut missing = need;
        let mut budget = need.saturating_add(self.config.spare_attempts);
        while missing > 0 && budget > 0 {
            let n = missing.min(budget);
            let picks = select(
                candidates,
                job.spec,
                now,
                &g.exclusions,
                n,
                &self.config.select,
                rng,
            );
            if picks.is_empty() {
                return;
            }
            budget = budget.saturating_sub(picks.len());
            for p in &picks {
                g.exclusions.add(p);
            }
            let answers = join_all(picks.iter().map(|p| {
                self.executor.rerun(RerunRequest {
                    job_id: job.ticket.job_id,
                    spec,
                    provider: p,
                    with_outputs: outputs,
                    blobs: &g.plan.blobs,
                })
            }))
            .await;
            for (p, answer) in picks.iter().zip(answers) {
                let valid = match answer {
                    Ok(r) => self
                        .validate(spec, g.spec_hash, job.ticket.job_id, p, &r)
                        .await
                        .map(|_| r)
                        .map_err(FaultKind::from),
                    Err(e) => Err(FaultKind::from(e)),
                };
                match valid {
                    Ok(r) => {
                        let agreement = compare(
                            &spec.verification.comparison,
                            &job.result.commitment,
                            job.result.outputs.as_ref(),
                            &r.commitment,
                            r.outputs.as_ref(),
                        );
                        g.runs.push(RunRecord {
                            provider: p.provider,
                            owner: p.evm_address,
                            phase,
                            commitment: r.commitment,
                            signature: r.signature,
                            agreement,
                        });
                        missing = missing.saturating_sub(1);
                    }
                    Err(kind) => g.faults.push(Fault {
                        provider: p.provider,
                        owner: p.evm_address,
                        kind,
                    }),
                }
            }
        }
    }

    /// Checks that `result` is `offer`'s signed result for this job and spec (the market's
    /// one check, [`check_result`]: signed by the offer's account or its operator), and in
    /// tolerance mode that its outputs came, within the job's output limit, and are the ones
    /// it signed. Returns who signed.
    async fn validate(
        &self,
        spec: &JobSpec,
        spec_hash: B256,
        job_id: B256,
        offer: &Offer,
        result: &RunResult,
    ) -> Result<Address, ResultError> {
        let outputs = if with_outputs(&spec.verification.comparison) {
            let out = result.outputs.as_ref().ok_or(ResultError::MissingOutputs)?;
            let size = out.largest_part();
            if size > spec.limits.output_bytes {
                return Err(ResultError::OutputsTooLarge {
                    size,
                    limit: spec.limits.output_bytes,
                });
            }
            Some(out)
        } else {
            None
        };
        // A re-run's commitment names its own channel: any channel will do.
        let mut expected = Expected {
            job_id,
            spec_hash,
            channel_id: None,
            signer: offer.evm_address,
        };
        let check = |e: &Expected| {
            check_result(
                &self.domain,
                e,
                &result.commitment,
                &result.signature,
                outputs,
            )
        };
        if let Err(refused) = check(&expected) {
            // Signed by another key: the account's operator, if the signers say so.
            expected.signer = operator_signer(&*self.signers, &refused, offer.evm_address)
                .await
                .ok_or(refused)?;
            check(&expected)?;
        }
        Ok(expected.signer)
    }

    /// The bundle of a check that found `job`'s provider wrong: its result (signed by
    /// `signer`, validated for its account) and the re-runs' (validated likewise).
    fn evidence(&self, job: &Job<'_>, signer: Address, runs: &[RunRecord]) -> Option<Evidence> {
        let e = Evidence {
            domain: self.domain,
            tolerance: with_outputs(&job.spec.verification.comparison),
            ticket: *job.ticket,
            ticket_signature: job.ticket_signature,
            provider: job.provider.provider,
            original: SignedCommitment {
                signer,
                account: job.provider.evm_address,
                commitment: job.result.commitment,
                signature: job.result.signature,
            },
            votes: runs
                .iter()
                .map(|r| Vote {
                    provider: r.provider,
                    result: SignedCommitment {
                        // Validated: the re-run's account or the operator it named.
                        signer: crate::evidence::commitment_signer(
                            &self.domain,
                            &r.commitment,
                            &r.signature,
                        )
                        .unwrap_or(r.owner),
                        account: r.owner,
                        commitment: r.commitment,
                        signature: r.signature,
                    },
                    agrees: r.agreement.agrees(),
                })
                .collect(),
        };
        e.verify().ok().map(|()| e)
    }
}

/// The majority rule over `m` re-runs (the escrow's at `m = 3`).
fn majority(runs: &[RunRecord], m: usize) -> Decision {
    if runs.len() < m {
        return Decision::Undecided {
            wanted: m,
            got: runs.len(),
        };
    }
    let differ = runs.iter().filter(|r| !r.agreement.agrees()).count();
    let agree = runs.len() - differ;
    if 2 * differ > runs.len() {
        Decision::ProviderWrong
    } else if 2 * agree > runs.len() {
        Decision::ProviderRight
    } else {
        Decision::Undecided {
            wanted: m,
            got: runs.len(),
        }
    }
}
