//! A drawn verifier's vote on a job checked by re-scoring ([`Comparison::Rescore`], docs/ai.md,
//! "Re-scoring a generation"): it waits for the provider's delivery, runs the rescoring job
//! on the delivered completions ([`sietch_verifier::rerun_plan`]: the claimed completions
//! put in this node's blob store as the input `claimed.jsonl`), and repeats the provider's
//! output hash and fuel when the verdict passes ([`sietch_verifier::verdict_commitment`]),
//! signing its own run's otherwise. Without a delivery within the wait it votes "not
//! delivered" and runs nothing: there is nothing to re-score. [`rescore_verdict`] is the pure
//! part.

use libp2p::PeerId;
use sietch_contracts::SietchEscrow;
use sietch_market::{Comparison, JobSpec, Outputs, ResultCommitment};
use sietch_sandbox::JobReport;

use super::Provider;
use super::serve::RunError;
use super::verifier::{disputed, own_commitment};
use crate::chain::Chain;
use crate::delivery;
use crate::net::VerifyRequest;

/// The vote of a verifier whose run of `rescoring` (the rescoring job of the disputed job,
/// or the job itself when its delivered outputs had no completions) gave `report`:
/// `disputed`'s output hash and fuel when it agrees under `comparison` with the delivered
/// `outputs`, this run's own otherwise; always on `disputed`'s ticket (its job, spec and
/// channel), as the escrow counts votes.
pub(crate) fn rescore_verdict(
    comparison: &Comparison,
    disputed: &ResultCommitment,
    outputs: &Outputs,
    rescoring: &JobSpec,
    report: JobReport,
) -> ResultCommitment {
    // The run's commitment names the spec it ran: the rescoring job's is judged by its
    // verdict, the job's own by its output hash.
    let own = ResultCommitment {
        spec_hash: rescoring.hash(),
        ..own_commitment(disputed, &report)
    };
    let own_outputs = Outputs {
        outcome: report.outcome,
        stdout: report.stdout,
        files: report.outputs,
    };
    let vote = sietch_verifier::verdict_commitment(
        comparison,
        disputed,
        Some(outputs),
        &own,
        Some(&own_outputs),
    );
    ResultCommitment {
        spec_hash: disputed.spec_hash,
        ..vote
    }
}

impl Provider {
    /// The vote on a disputed rescore job: see the module's documentation.
    pub(super) async fn rescore_vote(
        &self,
        peer: PeerId,
        chain: &Chain,
        req: &VerifyRequest,
        rec: &SietchEscrow::TicketRecord,
    ) -> Result<ResultCommitment, RunError> {
        let disputed = disputed(req, rec);
        let not_delivered = ResultCommitment {
            output_hash: delivery::NOT_DELIVERED,
            fuel_used: 0,
            ..disputed
        };
        if !self
            .wait_for_delivery(chain, req.ticket_id, rec.deadline)
            .await
        {
            return Ok(not_delivered);
        }
        // Held since the wait (checked against the claim when it came), unless dropped for
        // newer ones since.
        let Some(delivered) = self.deliveries.get(&req.ticket_id) else {
            return Ok(not_delivered);
        };
        let outputs = delivered.outputs();
        let plan = sietch_verifier::rerun_plan(&req.spec, Some(&outputs));
        // The claimed completions: only the delivery holds them, the run reads them as an
        // input from the store.
        let store = self.store.clone();
        let blobs = plan.blobs;
        tokio::task::spawn_blocking(move || {
            blobs
                .iter()
                .try_for_each(|bytes| store.blobs().put(bytes).map(drop))
        })
        .await
        .map_err(RunError::Task)??;
        let report = self.run(peer, &plan.spec, req.job_id).await?;
        Ok(rescore_verdict(
            &req.spec.verification.comparison,
            &disputed,
            &outputs,
            &plan.spec,
            report,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sietch_market::{B256, Outcome, U256};
    use sietch_verifier::rescore::{COMPLETIONS, VERDICT};

    use super::*;
    use crate::provider::fixtures::spec;

    fn rescore_spec() -> JobSpec {
        let mut s = spec();
        s.verification.comparison = Comparison::Rescore { margin: 0.1 };
        s
    }

    fn disputed_of(s: &JobSpec) -> ResultCommitment {
        ResultCommitment {
            job_id: B256::repeat_byte(1),
            spec_hash: s.hash(),
            channel_id: B256::repeat_byte(2),
            output_hash: B256::repeat_byte(3),
            fuel_used: 1_000,
            gpu_millis: 0,
            amount: U256::ZERO,
        }
    }

    fn run(outcome: Outcome, files: &[(&str, &[u8])]) -> JobReport {
        let outputs: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
            .collect();
        JobReport {
            outcome,
            fuel_used: 77,
            output_hash: sietch_sandbox::output_hash(outcome, b"", &outputs),
            stdout: Vec::new(),
            stderr: Vec::new(),
            outputs,
            gpu_time_ns: 3_000_000,
            wall_time: Duration::ZERO,
        }
    }

    fn delivered() -> Outputs {
        Outputs {
            outcome: Outcome::Exited { code: 0 },
            stdout: Vec::new(),
            files: BTreeMap::from([(COMPLETIONS.to_owned(), b"{}\n".to_vec())]),
        }
    }

    #[test]
    fn a_passing_verdict_repeats_the_providers_hash_and_fuel_on_the_ticket() {
        let original = rescore_spec();
        let disputed = disputed_of(&original);
        let plan = sietch_verifier::rerun_plan(&original, Some(&delivered()));
        assert_ne!(plan.spec.hash(), original.hash(), "a rescoring job");
        let ok = Outcome::Exited { code: 0 };
        let pass = run(ok, &[(VERDICT, br#"{"pass":true,"margin":0.1}"#)]);
        let vote = rescore_verdict(
            &original.verification.comparison,
            &disputed,
            &delivered(),
            &plan.spec,
            pass,
        );
        assert_eq!(
            (vote.output_hash, vote.fuel_used),
            (disputed.output_hash, disputed.fuel_used),
            "agrees on chain"
        );
        assert_eq!(vote.spec_hash, original.hash(), "the ticket's spec");
        assert_eq!(
            (vote.job_id, vote.channel_id),
            (disputed.job_id, disputed.channel_id)
        );
        assert_eq!(vote.gpu_millis, 3, "its own GPU time");
    }

    #[test]
    fn a_failing_or_missing_verdict_signs_the_verifiers_own_run() {
        let original = rescore_spec();
        let disputed = disputed_of(&original);
        let plan = sietch_verifier::rerun_plan(&original, Some(&delivered()));
        let ok = Outcome::Exited { code: 0 };
        let fail = br#"{"pass":false,"margin":0.1,"failure":{"index":0,"token":2}}"#;
        for report in [
            run(ok, &[(VERDICT, fail)]),
            run(ok, &[]),
            run(Outcome::OutOfFuel, &[(VERDICT, br#"{"pass":true,"#)]),
        ] {
            let own = B256::from(report.output_hash);
            let vote = rescore_verdict(
                &original.verification.comparison,
                &disputed,
                &delivered(),
                &plan.spec,
                report,
            );
            assert_eq!((vote.output_hash, vote.fuel_used), (own, 77));
            assert_eq!(vote.spec_hash, original.hash(), "still on the ticket");
        }
    }

    /// Outputs without completions (a model the guest refused): the job itself was re-run,
    /// judged by its output hash alone (fuel is not compared in rescore mode).
    #[test]
    fn without_completions_the_rerun_is_judged_by_its_output_hash() {
        let original = rescore_spec();
        let refused = Outputs {
            outcome: Outcome::Exited { code: 2 },
            stdout: Vec::new(),
            files: BTreeMap::new(),
        };
        let plan = sietch_verifier::rerun_plan(&original, Some(&refused));
        assert_eq!(plan.spec, original);
        assert!(plan.blobs.is_empty());
        let report = run(Outcome::Exited { code: 2 }, &[]);
        let same = ResultCommitment {
            output_hash: B256::from(report.output_hash),
            ..disputed_of(&original)
        };
        let vote = rescore_verdict(
            &original.verification.comparison,
            &same,
            &refused,
            &plan.spec,
            report.clone(),
        );
        assert_eq!(
            (vote.output_hash, vote.fuel_used),
            (same.output_hash, 1_000)
        );
        let other = disputed_of(&original);
        let vote = rescore_verdict(
            &original.verification.comparison,
            &other,
            &refused,
            &plan.spec,
            report,
        );
        assert_ne!(vote.output_hash, other.output_hash);
    }
}
