//! `sietch train --local`: the training jobs run here, one after another, in a sandbox
//! configured as a provider's (`sietch_node::jobs::run`, as `job run --local` and
//! `generate --local` run theirs): the same spec, so the same updates a provider computes,
//! and what a provider would charge for them.

use std::sync::Arc;

use sietch_market::{B256, BlobRef, Input, JobSpec, Limits, Outcome, Requirements};
use sietch_node::jobs::RunFailure;
use sietch_sandbox::{JobReport, Sandbox};
use sietch_sdk::train::runner::Blob;
use sietch_sdk::train::{
    Attempt, AttemptEnd, SHARD_INPUT, STATS_OUTPUT, ShardJob, ShardRunner, UPDATE_OUTPUT,
    WEIGHTS_INPUT,
};

/// Runs shard jobs in a local sandbox, one at a time (a provider's sandbox runs one).
pub(crate) struct LocalRunner {
    sandbox: Arc<Sandbox>,
    module: Arc<[u8]>,
    price_per_gfuel: u128,
    one_at_a_time: tokio::sync::Semaphore,
}

impl LocalRunner {
    /// The training guest in a provider's sandbox; costs at `price_per_gfuel`.
    pub(crate) fn new(price_per_gfuel: u128) -> anyhow::Result<Self> {
        Ok(Self {
            sandbox: Arc::new(super::job::provider_sandbox(0, None)?),
            module: sietch_guests::TRAIN.into(),
            price_per_gfuel,
            one_at_a_time: tokio::sync::Semaphore::new(1),
        })
    }
}

/// Runs the training guest with `args` and `inputs` (`/input` name, bytes) in `sandbox`,
/// under `limits`, as a provider runs a job (no price, no check: nothing is bought).
pub(super) fn run_guest(
    sandbox: &Sandbox,
    module: &[u8],
    args: Vec<String>,
    inputs: &[(&str, &Arc<[u8]>)],
    limits: Limits,
) -> Result<JobReport, RunFailure> {
    let spec = JobSpec {
        module: BlobRef::of(module).hash,
        args,
        env: Vec::new(),
        stdin: None,
        inputs: inputs
            .iter()
            .map(|(name, bytes)| Input {
                name: (*name).to_owned(),
                blob: BlobRef::of(bytes),
            })
            .collect(),
        limits,
        requirements: Requirements::default(),
        verification: sietch_market::VerificationPolicy::default(),
        price_cap: 0,
        deadline: 0,
    };
    let blobs = sietch_node::jobs::JobBlobs {
        module: module.to_vec(),
        stdin: Vec::new(),
        inputs: inputs
            .iter()
            .map(|(name, bytes)| ((*name).to_owned(), Arc::clone(bytes)))
            .collect(),
    };
    sietch_node::jobs::run(sandbox, &spec, &B256::ZERO, blobs)
}

impl ShardRunner for LocalRunner {
    async fn publish(&self, _: &Blob) -> sietch_sdk::train::Result<()> {
        Ok(())
    }

    async fn run(&self, job: &ShardJob) -> Attempt {
        let Ok(_turn) = self.one_at_a_time.acquire().await else {
            return Attempt::failed("the local sandbox is closed");
        };
        let (sandbox, module) = (self.sandbox.clone(), self.module.clone());
        let (weights, data) = (job.weights.bytes.clone(), job.data.bytes.clone());
        let args = job.args.clone();
        let limits = Limits {
            fuel: job.limits.fuel,
            memory_bytes: job.limits.memory_bytes,
            wall_time_ms: job.limits.wall_time_ms,
            output_bytes: 1 << 20,
        };
        let ran = tokio::task::spawn_blocking(move || {
            let inputs = [(WEIGHTS_INPUT, &weights), (SHARD_INPUT, &data)];
            run_guest(&sandbox, &module, args, &inputs, limits)
        })
        .await;
        let report = match ran {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return Attempt::failed(format!("the sandbox refused the job: {e}")),
            Err(e) => return Attempt::failed(format!("the job's thread: {e}")),
        };
        let cost = sietch_node::jobs::cost(
            report.fuel_used,
            0,
            &sietch_market::Prices {
                per_gfuel: self.price_per_gfuel,
                per_gpu_second: 0,
            },
        );
        let end = if report.outcome == (Outcome::Exited { code: 0 }) {
            AttemptEnd::Delivered {
                update: report.outputs.get(UPDATE_OUTPUT).cloned(),
                stats: report.outputs.get(STATS_OUTPUT).cloned(),
                check: None,
            }
        } else {
            AttemptEnd::Failed {
                reason: format!(
                    "{}: {}",
                    report.outcome,
                    sietch_market::printable(String::from_utf8_lossy(&report.stderr).trim())
                ),
            }
        };
        Attempt {
            job_id: None,
            provider: Some("local".into()),
            paid: cost,
            fuel: report.fuel_used,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use sietch_sdk::train::digits::{Sample, encode_sdg};
    use sietch_sdk::train::{Weights, eval};

    use super::*;

    fn limits() -> Limits {
        Limits {
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 60_000,
            output_bytes: 1 << 20,
        }
    }

    /// The driver's first weights are the guest's `mode=init`, bit for bit, and its forward
    /// pass scores them as the guest's `mode=eval` does (the same accuracy, the loss to
    /// rounding): the driver reports what the jobs compute.
    #[test]
    fn the_drivers_init_and_evaluation_are_the_guests() {
        let sandbox = super::super::job::provider_sandbox(0, None).unwrap();
        let module: Arc<[u8]> = sietch_guests::TRAIN.into();
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let init = run_guest(
            &sandbox,
            &module,
            args(&["mode=init", "dims=64,32,10", "seed=5"]),
            &[],
            limits(),
        )
        .unwrap();
        let ours = Weights::init(&[64, 32, 10], 5).unwrap();
        assert_eq!(
            init.outputs.get(sietch_guests::WEIGHTS_OUTPUT),
            Some(&ours.encode())
        );

        let samples: Vec<Sample> = (0..200u32)
            .map(|i| Sample {
                pixels: std::array::from_fn(|j| ((i * 7 + j as u32 * 3) % 17) as u8),
                label: (i % 10) as u8,
            })
            .collect();
        let weights: Arc<[u8]> = ours.encode().into();
        let shard: Arc<[u8]> = encode_sdg(&samples).into();
        let scored = run_guest(
            &sandbox,
            &module,
            args(&["mode=eval"]),
            &[(WEIGHTS_INPUT, &weights), (SHARD_INPUT, &shard)],
            limits(),
        )
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(scored.outputs.get(sietch_guests::EVAL_OUTPUT).unwrap())
                .unwrap();
        let e = eval::evaluate(&ours, &samples);
        assert_eq!(json["samples"], 200);
        assert_eq!(json["accuracy"].as_f64().unwrap() as f32, e.accuracy);
        let loss = json["loss"].as_f64().unwrap() as f32;
        assert!(
            (loss - e.loss).abs() <= 1e-5 * loss.abs(),
            "{loss} vs {e:?}"
        );
    }
}
