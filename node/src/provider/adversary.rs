//! Test-only misbehaviours, all in one place, driven by the `test_*` settings of
//! [`NodeConfig`] (all off by default): a provider that cheats, withholds its result,
//! overbills GPU time, or names an output file against the rule. The tests of disputes and
//! hostile providers turn them on; nothing else should.

use sietch_market::B256;
use sietch_sandbox::JobReport;

use crate::config::NodeConfig;

/// `test_cheat_ppm`: whether this job gets a wrong answer (a fixed draw per job id, so a
/// re-run of the same job cheats alike).
pub(super) fn cheats_on(config: &NodeConfig, job: &B256) -> bool {
    let ppm = config.test_cheat_ppm;
    if ppm == 0 {
        return false;
    }
    let h = blake3::hash(job.as_slice());
    let mut x = [0u8; 4];
    x.copy_from_slice(&h.as_bytes()[..4]);
    u32::from_le_bytes(x) % 1_000_000 < ppm
}

/// Alters a run's report as the settings ask, its output hash recomputed so that the
/// provider commits to the altered result as if it were true: a wrong answer that still
/// looks like one (`test_cheat_ppm`), an output name of the provider's choosing
/// (`test_output_name`).
pub(super) fn tamper(config: &NodeConfig, job: &B256, report: &mut JobReport) {
    if cheats_on(config, job) {
        report.stdout.extend_from_slice(b" (cheat)");
        rehash(report);
    }
    if !config.test_output_name.is_empty() {
        let data = report
            .outputs
            .pop_first()
            .map(|(_, d)| d)
            .unwrap_or_default();
        report.outputs.insert(config.test_output_name.clone(), data);
        rehash(report);
    }
}

fn rehash(report: &mut JobReport) {
    report.output_hash =
        sietch_sandbox::output_hash(report.outcome, &report.stdout, &report.outputs);
}

/// The GPU time billed for a run that used `gpu_time_ns`: what it used, plus
/// `test_overbill_gpu_millis` it did not.
pub(super) fn billed_gpu_millis(config: &NodeConfig, gpu_time_ns: u64) -> u64 {
    (gpu_time_ns / 1_000_000).saturating_add(config.test_overbill_gpu_millis)
}

/// `test_undeliver` 1 or 2: results are kept, and claimed for, but never sent to the buyer.
pub(super) fn keeps_results(config: &NodeConfig) -> bool {
    config.test_undeliver > 0
}

/// `test_undeliver` 2: not even to the verifiers of a dispute.
pub(super) fn keeps_results_from_verifiers(config: &NodeConfig) -> bool {
    config.test_undeliver == 2
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sietch_sandbox::Outcome;

    use super::*;

    fn report() -> JobReport {
        let outputs = BTreeMap::from([("out.txt".to_owned(), b"42".to_vec())]);
        let outcome = Outcome::Exited { code: 0 };
        JobReport {
            outcome,
            fuel_used: 10,
            output_hash: sietch_sandbox::output_hash(outcome, b"hello", &outputs),
            stdout: b"hello".to_vec(),
            stderr: Vec::new(),
            outputs,
            gpu_time_ns: 2_500_000,
            wall_time: Duration::ZERO,
        }
    }

    #[test]
    fn an_honest_configuration_changes_nothing() {
        let config = NodeConfig::default();
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r, report());
        assert_eq!(billed_gpu_millis(&config, r.gpu_time_ns), 2);
        assert!(!keeps_results(&config));
        assert!(!keeps_results_from_verifiers(&config));
    }

    #[test]
    fn a_cheat_commits_to_a_wrong_answer_that_looks_right() {
        let config = NodeConfig {
            test_cheat_ppm: 1_000_000,
            ..NodeConfig::default()
        };
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r.stdout, b"hello (cheat)");
        assert_ne!(r.output_hash, report().output_hash);
        assert_eq!(
            r.output_hash,
            sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs)
        );
        let none = NodeConfig::default();
        assert!(!cheats_on(&none, &B256::repeat_byte(1)));
    }

    #[test]
    fn the_other_misbehaviours_do_what_their_settings_say() {
        let config = NodeConfig {
            test_output_name: "../evil".into(),
            test_overbill_gpu_millis: 1_000,
            test_undeliver: 2,
            ..NodeConfig::default()
        };
        let mut r = report();
        tamper(&config, &B256::repeat_byte(1), &mut r);
        assert_eq!(r.outputs.keys().collect::<Vec<_>>(), ["../evil"]);
        assert_eq!(r.outputs["../evil"], b"42");
        assert_eq!(
            r.output_hash,
            sietch_sandbox::output_hash(r.outcome, &r.stdout, &r.outputs)
        );
        assert_eq!(billed_gpu_millis(&config, 2_500_000), 1_002);
        assert!(keeps_results(&config));
        assert!(keeps_results_from_verifiers(&config));
        let to_verifiers = NodeConfig {
            test_undeliver: 1,
            ..NodeConfig::default()
        };
        assert!(keeps_results(&to_verifiers));
        assert!(!keeps_results_from_verifiers(&to_verifiers));
    }
}
