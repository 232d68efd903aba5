//! The rescoring comparison of generation jobs ([`Comparison::Rescore`], docs/ai.md,
//! "Re-scoring a generation").
//!
//! A re-run of a generation job does not generate again: it runs the **rescoring job**, derived
//! from the original spec by [`rerun_plan`]: the same module (the inference guest), model,
//! prompts, limits and requirements, with the args `mode=rescore margin=M` (and `partial=1`
//! when the original did not exit 0, so that the completions it finished before running out
//! of fuel are checked and the missing rest is not held against it), and the claimed
//! completions (the original's `/output/completions.jsonl`) added as the input
//! [`CLAIMED_INPUT`]. The guest re-scores each claimed completion with one teacher-forced pass
//! and writes `/output/verdict.json`; the re-run agrees when the job exited 0 and its verdict
//! passes ([`verdict_agreement`]). An original without completions (a model the guest refused,
//! say) has nothing to re-score: it is re-run as it is and compared by output hash.
//!
//! The rescoring job keeps the original's job id (as every re-run does), so the guest's
//! `random_get`, which the sandbox derives from the job id, replays the seeds of unseeded
//! sampled requests.

use sietch_market::{BlobRef, Comparison, Input, JobSpec, Outcome, Outputs};

use crate::compare::{Agreement, Difference};

/// The generation's output the re-run re-scores, in `/output`.
pub const COMPLETIONS: &str = "completions.jsonl";
/// The name of the claimed completions in the rescoring job's `/input`.
pub const CLAIMED_INPUT: &str = "claimed.jsonl";
/// The rescoring job's verdict, in `/output`.
pub const VERDICT: &str = "verdict.json";
/// The largest margin the guest takes; a spec's larger margin is passed as this.
pub const MAX_MARGIN: f64 = 1000.0;
/// Memory the rescoring job gets beyond the original's (its batch of logits: 32 positions of
/// the vocabulary, about 6 MiB for SmolLM2).
pub const EXTRA_MEMORY: u64 = 16 << 20;
/// Most bytes of a failing verdict kept in a [`Difference`].
const MAX_VERDICT_TEXT: usize = 1024;
/// How a passing verdict begins (the guest writes it so, `sandbox/guests/llm/rescore.c`).
const PASS: &[u8] = b"{\"pass\":true,";

/// What a check re-runs: a spec, and the bytes of the inputs it names that the verifier
/// derived (the claimed completions), which the executor must make available.
#[derive(Debug, Clone, PartialEq)]
pub struct RerunPlan {
    /// The spec each re-run runs.
    pub spec: JobSpec,
    /// Bytes of inputs of `spec` that only the verifier holds.
    pub blobs: Vec<Vec<u8>>,
}

/// The re-run of `spec` under its comparison: `spec` itself, or for
/// [`Comparison::Rescore`] with the original's `outputs` holding completions, its rescoring job.
pub fn rerun_plan(spec: &JobSpec, outputs: Option<&Outputs>) -> RerunPlan {
    let claimed = outputs.and_then(|o| o.files.get(COMPLETIONS).map(|c| (o, c)));
    match (&spec.verification.comparison, claimed) {
        (Comparison::Rescore { margin }, Some((o, claimed))) => RerunPlan {
            spec: rescore_spec(
                spec,
                *margin,
                claimed,
                o.outcome != Outcome::Exited { code: 0 },
            ),
            blobs: vec![claimed.clone()],
        },
        _ => RerunPlan {
            spec: spec.clone(),
            blobs: Vec::new(),
        },
    }
}

/// The rescoring job of the generation job `spec` for the completions `claimed` (`partial`:
/// the original did not finish its batch). Its own verification policy keeps the comparison
/// (so that a re-run's outputs come back with its commitment) and is never sampled.
pub fn rescore_spec(spec: &JobSpec, margin: f64, claimed: &[u8], partial: bool) -> JobSpec {
    let margin = if margin.is_finite() && margin >= 0.0 {
        margin.min(MAX_MARGIN)
    } else {
        0.0
    };
    let mut args = vec!["mode=rescore".to_owned(), format!("margin={margin}")];
    if partial {
        args.push("partial=1".to_owned());
    }
    let mut inputs: Vec<Input> = spec
        .inputs
        .iter()
        .filter(|i| i.name != CLAIMED_INPUT)
        .cloned()
        .collect();
    inputs.push(Input {
        name: CLAIMED_INPUT.to_owned(),
        blob: BlobRef::of(claimed),
    });
    let mut out = spec.clone();
    out.args = args;
    out.inputs = inputs;
    out.limits.memory_bytes = spec.limits.memory_bytes.saturating_add(EXTRA_MEMORY);
    out.verification.sampling_ppm = 0;
    out.verification.reruns = 0;
    out.verification.comparison = Comparison::Rescore { margin };
    out
}

/// How a rescoring job's outputs judge the original: it agrees when the job exited 0 and its
/// verdict passes.
pub fn verdict_agreement(rescoring: &Outputs) -> Agreement {
    if rescoring.outcome != (Outcome::Exited { code: 0 }) {
        return Agreement::Differs(Difference::NoVerdict);
    }
    match rescoring.files.get(VERDICT) {
        None => Agreement::Differs(Difference::NoVerdict),
        Some(v) if v.starts_with(PASS) => Agreement::Agrees,
        Some(v) => {
            let text = String::from_utf8_lossy(v.get(..MAX_VERDICT_TEXT).unwrap_or(v));
            Agreement::Differs(Difference::Rescored {
                verdict: text.trim_end().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sietch_market::{B256, Limits, Requirements, VerificationPolicy};

    fn spec(comparison: Comparison) -> JobSpec {
        JobSpec {
            module: B256::repeat_byte(1),
            args: vec!["x".into()],
            env: vec![],
            stdin: None,
            inputs: vec![
                Input {
                    name: "model.gguf".into(),
                    blob: BlobRef::of(b"model"),
                },
                Input {
                    name: CLAIMED_INPUT.into(),
                    blob: BlobRef::of(b"old"),
                },
            ],
            limits: Limits {
                fuel: 10,
                memory_bytes: 100,
                wall_time_ms: 1,
                output_bytes: 1,
            },
            requirements: Requirements::default(),
            verification: VerificationPolicy {
                sampling_ppm: 1000,
                reruns: 1,
                comparison,
            },
            price_cap: 5,
            deadline: 7,
        }
    }

    fn outputs(outcome: Outcome, files: &[(&str, &[u8])]) -> Outputs {
        Outputs {
            outcome,
            stdout: vec![],
            files: files
                .iter()
                .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn the_rescoring_job_adds_the_claim_and_keeps_the_rest() {
        let original = spec(Comparison::Rescore { margin: 0.1 });
        let done = outputs(Outcome::Exited { code: 0 }, &[(COMPLETIONS, b"line\n")]);
        let plan = rerun_plan(&original, Some(&done));
        assert_eq!(plan.blobs, vec![b"line\n".to_vec()]);
        let s = &plan.spec;
        assert_eq!(s.args, ["mode=rescore", "margin=0.1"]);
        assert_eq!(s.inputs.len(), 2, "the claim replaces an input of its name");
        assert_eq!(s.inputs[1].blob, BlobRef::of(b"line\n"));
        assert_eq!(s.inputs[0], original.inputs[0]);
        assert_eq!((s.module, s.price_cap, s.deadline), (original.module, 5, 7));
        assert_eq!(s.limits.fuel, 10);
        assert_eq!(s.limits.memory_bytes, 100 + EXTRA_MEMORY);
        assert_eq!(s.verification.sampling_ppm, 0);
        // A batch cut short is checked as far as it went.
        let cut = outputs(Outcome::OutOfFuel, &[(COMPLETIONS, b"line\n")]);
        assert_eq!(
            rerun_plan(&original, Some(&cut)).spec.args,
            ["mode=rescore", "margin=0.1", "partial=1"]
        );
        // Nothing to re-score, or another comparison: the spec itself.
        let none = outputs(Outcome::Exited { code: 2 }, &[]);
        assert_eq!(rerun_plan(&original, Some(&none)).spec, original);
        let exact = spec(Comparison::Exact);
        assert_eq!(rerun_plan(&exact, Some(&done)).spec, exact);
        let huge = rescore_spec(&original, 1e9, b"", false);
        assert_eq!(huge.args[1], "margin=1000");
    }

    /// The spec's encoding: tag 2 and the margin's bits where an exact spec has tag 0, the
    /// rest unchanged; decoded back; a negative margin refused.
    #[test]
    fn a_rescore_spec_encodes_as_tag_2_and_its_margin() {
        use sietch_market::Canonical;
        let exact = spec(Comparison::Exact).encode();
        let rescore = spec(Comparison::Rescore { margin: 0.1 });
        let bytes = rescore.encode();
        // The comparison is followed by price_cap (u128) and deadline (u64).
        let tail = 16 + 8;
        let at = exact.len() - tail - 1;
        assert_eq!(exact[at], 0);
        assert_eq!(bytes[..at], exact[..at]);
        assert_eq!(bytes[at], 2);
        assert_eq!(bytes[at + 1..at + 9], 0.1f64.to_bits().to_be_bytes());
        assert_eq!(bytes[at + 9..], exact[at + 1..]);
        assert_eq!(JobSpec::decode(&bytes), Ok(rescore));
        let mut negative = bytes.clone();
        negative[at + 1..at + 9].copy_from_slice(&(-0.1f64).to_bits().to_be_bytes());
        assert!(JobSpec::decode(&negative).is_err());
    }

    #[test]
    fn only_a_passing_verdict_of_a_finished_run_agrees() {
        let ok = Outcome::Exited { code: 0 };
        let pass = br#"{"pass":true,"margin":0.1,"failure":null}"#;
        assert!(verdict_agreement(&outputs(ok, &[(VERDICT, pass)])).agrees());
        let fail = br#"{"pass":false,"margin":0.1,"failure":{"index":0,"token":3}}"#;
        match verdict_agreement(&outputs(ok, &[(VERDICT, fail)])) {
            Agreement::Differs(Difference::Rescored { verdict }) => {
                assert!(verdict.contains("\"token\":3"), "{verdict}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            verdict_agreement(&outputs(ok, &[])),
            Agreement::Differs(Difference::NoVerdict)
        );
        assert_eq!(
            verdict_agreement(&outputs(Outcome::OutOfFuel, &[(VERDICT, pass)])),
            Agreement::Differs(Difference::NoVerdict)
        );
    }
}
