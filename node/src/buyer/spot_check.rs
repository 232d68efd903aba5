//! Spot checks: the buyer reveals the check secret, and when the job is sampled the
//! verifier ([`sietch_verifier`]) has it re-run by other providers, each re-run an attempt
//! on its own lane. The re-runs on the check's side are paid; those against it are withheld.

use std::sync::Arc;

use rand::SeedableRng;
use sietch_market::{Address, B256, JobSpec, Offer};
use sietch_verifier::{Check, Decision, Job, RunResult, Verifier, VerifierConfig};

use super::attempt::{Delivered, NetExecutor};
use super::payment::Paying;
use super::{Buyer, CANDIDATES, now};
use crate::events::NodeEvent;
use crate::net::JobResult;
use crate::sync::lock;

impl Buyer {
    /// Reveals the secret and, when the job is sampled, has the verifier re-run it; pays or
    /// withholds the re-runs by the decision. When the provider is found wrong, also returns
    /// the result of a re-run on the majority's side: the one the buyer keeps.
    pub(super) async fn check(
        self: &Arc<Self>,
        spec: &JobSpec,
        offer: &Offer,
        d: &Delivered,
    ) -> Option<(Check, Option<(Address, JobResult)>)> {
        let sampled = sietch_market::is_checked(
            &d.secret,
            &d.ticket.message.job_id,
            spec.verification.sampling_ppm,
        );
        if !sampled {
            return None;
        }
        self.emit(NodeEvent::Checking {
            job: d.ticket.message.job_id,
            reruns: u32::from(spec.verification.reruns.max(1)),
        });
        let select = if self.config.verify_local_network {
            sietch_verifier::SelectConfig::local()
        } else {
            sietch_verifier::SelectConfig::default()
        };
        let mut verifier = Verifier::new(
            NetExecutor(self.clone()),
            self.domain,
            VerifierConfig {
                select,
                ..VerifierConfig::default()
            },
        );
        // Results an account's operator signed count as the account's (`chain::signers`).
        if let Some(c) = &self.chain {
            verifier = verifier.with_signers(Arc::new(c.clone()));
        }
        let candidates: Vec<Offer> = {
            let book = self.net.book();
            let book = lock(&book);
            sietch_verifier::candidates(&book, spec, now(), CANDIDATES)
                .into_iter()
                .filter(|o| o.evm_address != self.address())
                .cloned()
                .collect()
        };
        let refs: Vec<&Offer> = candidates.iter().collect();
        let run = RunResult {
            commitment: d.result.commitment,
            signature: d.result.signature,
            outputs: Some(d.result.outputs()),
        };
        let job = Job {
            spec,
            ticket: &d.ticket.message,
            ticket_signature: Some(d.ticket.signature),
            secret: d.secret,
            provider: offer,
            result: &run,
        };
        let mut rng = rand::rngs::StdRng::from_seed(self.random_b256().0);
        let check = verifier.check(&job, &refs, now(), &mut rng).await;
        let id = d.ticket.message.job_id;
        let check = match check {
            Ok(c) => c,
            Err(e) => {
                self.emit(NodeEvent::Warning {
                    message: format!("the check of job {id} could not run: {e}"),
                });
                self.settle_reruns(id, None).await;
                return None;
            }
        };
        let majority = (check.decision == Decision::ProviderWrong)
            .then(|| {
                let owner = check.runs.iter().find(|r| !r.agreement.agrees())?.owner;
                lock(&self.reruns)
                    .get(&(id, owner))
                    .map(|d| (owner, d.result.clone()))
            })
            .flatten();
        self.settle_reruns(id, Some(&check)).await;
        self.emit(NodeEvent::Checked {
            job: id,
            passed: check.pays(),
            decision: format!("{:?}", check.decision),
            reruns: check.reruns_attempted() as u32,
        });
        Some((check, majority))
    }

    /// Counts a check's findings in the reputation table (and the store).
    pub(super) async fn record_check(&self, check: &Check) {
        self.count_reputation(super::reputation::Count::Check(check))
            .await;
    }

    /// Pays the re-runs of a check that sided with its decision (or every one when the
    /// check could not decide), and withholds from those against it.
    async fn settle_reruns(&self, id: B256, check: Option<&Check>) {
        let pending: Vec<Delivered> = {
            let mut r = lock(&self.reruns);
            let keys: Vec<_> = r.keys().filter(|(j, _)| *j == id).copied().collect();
            keys.into_iter().filter_map(|k| r.remove(&k)).collect()
        };
        for d in pending {
            if against_the_check(check, d.taken.provider) {
                self.withhold(&d, "this re-run is against the check's majority", None)
                    .await;
            } else if let Err(e) = self.pay(&d, Paying::Rerun).await {
                tracing::warn!("paying a re-run of {id}: {e}");
            }
        }
    }
}

/// Whether the re-run by `rerun_owner` went against a decided check: a re-run that agreed
/// with a provider found wrong, or disagreed with one found right. Only a decided check
/// says who was wrong; an undecided one (or none) pays every re-run.
fn against_the_check(check: Option<&Check>, rerun_owner: Address) -> bool {
    check.is_some_and(|c| {
        let right = match c.decision {
            Decision::Passed | Decision::ProviderRight => true,
            Decision::ProviderWrong => false,
            Decision::NotSampled | Decision::Undecided { .. } => return false,
        };
        c.runs
            .iter()
            .find(|r| r.owner == rerun_owner)
            .is_some_and(|r| r.agreement.agrees() != right)
    })
}

#[cfg(test)]
mod tests {
    use sietch_market::settlement::ResultCommitment;
    use sietch_market::{PublicKey, U256};
    use sietch_verifier::{Agreement, Difference, Phase, RunRecord};

    use super::*;

    const AGREES: Address = Address::repeat_byte(1);
    const DIFFERS: Address = Address::repeat_byte(2);
    const ABSENT: Address = Address::repeat_byte(3);

    fn run(owner: Address, agreement: Agreement) -> RunRecord {
        RunRecord {
            provider: PublicKey([owner.0[0]; 32]),
            owner,
            phase: Phase::Sample,
            commitment: ResultCommitment {
                job_id: B256::ZERO,
                spec_hash: B256::ZERO,
                channel_id: B256::ZERO,
                output_hash: B256::ZERO,
                fuel_used: 0,
                gpu_millis: 0,
                amount: U256::ZERO,
            },
            signature: [0; 65],
            agreement,
        }
    }

    fn check(decision: Decision) -> Check {
        Check {
            job_id: B256::ZERO,
            provider: PublicKey([9; 32]),
            owner: Address::repeat_byte(9),
            decision,
            runs: vec![
                run(AGREES, Agreement::Agrees),
                run(DIFFERS, Agreement::Differs(Difference::OutputHash)),
            ],
            faults: vec![],
            evidence: None,
        }
    }

    #[test]
    fn a_rerun_against_a_provider_found_right_is_withheld() {
        for d in [Decision::Passed, Decision::ProviderRight] {
            let c = check(d);
            assert!(!against_the_check(Some(&c), AGREES), "{d:?}");
            assert!(against_the_check(Some(&c), DIFFERS), "{d:?}");
        }
    }

    #[test]
    fn a_rerun_siding_with_a_provider_found_wrong_is_withheld() {
        let c = check(Decision::ProviderWrong);
        assert!(against_the_check(Some(&c), AGREES));
        assert!(!against_the_check(Some(&c), DIFFERS));
    }

    #[test]
    fn an_undecided_check_or_none_pays_every_rerun() {
        let c = check(Decision::Undecided { wanted: 3, got: 2 });
        for who in [AGREES, DIFFERS, ABSENT] {
            assert!(!against_the_check(Some(&c), who));
            assert!(!against_the_check(None, who));
        }
        // A re-run the check did not count is never held against it.
        assert!(!against_the_check(
            Some(&check(Decision::ProviderWrong)),
            ABSENT
        ));
    }
}
