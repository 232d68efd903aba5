//! What a job is to the node, shared by its roles: the sandbox run of a spec (provider,
//! spot-check re-runs and dispute verifiers all run the same thing), the price of a run, and
//! the buyer's check that a result's outputs are the ones its commitment names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sietch_market::{B256, JobSpec, Prices, U256};
use sietch_sandbox::{JobReport, Sandbox};

pub use sietch_market::settlement::{FUEL_PER_GFUEL, gpus_needed, max_cost, max_gpu_millis};

/// GPU memory a GPU job may allocate when its needs name no minimum (1 GiB).
pub const DEFAULT_GPU_MEMORY: u64 = 1 << 30;

/// What a run that used `fuel` and `gpu_millis` costs at `prices`: the market's one price
/// formula ([`sietch_market::settlement::cost`]), which the order book ranks offers by.
pub fn cost(fuel: u64, gpu_millis: u64, prices: &Prices) -> u128 {
    sietch_market::settlement::cost(fuel, gpu_millis, prices.per_gfuel, prices.per_gpu_second)
}

/// The prices a ticket for `spec` carries at an offer's `prices`: the offer's, with no GPU
/// price for a job that asks for no GPU (so that no GPU time can be billed for it).
pub fn ticket_prices(spec: &JobSpec, prices: &Prices) -> Prices {
    Prices {
        per_gfuel: prices.per_gfuel,
        per_gpu_second: if gpus_needed(spec) > 0 {
            prices.per_gpu_second
        } else {
            0
        },
    }
}

/// What a provider charges for a run: its metered fuel and GPU time at its prices, capped
/// by the ticket.
pub fn charge(fuel_used: u64, gpu_millis: u64, prices: &Prices, max_amount: U256) -> U256 {
    U256::from(cost(fuel_used, gpu_millis, prices)).min(max_amount)
}

/// The sandbox's form of a job: what every honest provider (and every verifier re-running
/// it) runs for this spec and job id, so that all of them get the same output hash and fuel.
/// `seed` is the job whose id seeds `random_get`: the job itself, or the job a spot check
/// re-runs. The spec's output bound caps stdout and the `/output` files alike. A job that
/// asks for no GPU is told "no device" even on a provider that has one (it must run the same
/// on a verifier without one); a GPU job may allocate its needs' minimum memory, or
/// [`DEFAULT_GPU_MEMORY`] when they name none.
pub fn sandbox_job(
    spec: &JobSpec,
    seed: &B256,
    stdin: Vec<u8>,
    inputs: BTreeMap<String, Arc<[u8]>>,
) -> sietch_sandbox::JobSpec {
    let output = usize::try_from(spec.limits.output_bytes).unwrap_or(usize::MAX);
    let defaults = sietch_sandbox::Limits::default();
    sietch_sandbox::JobSpec {
        job_id: seed.0,
        args: spec.args.clone(),
        env: spec.env.clone(),
        stdin,
        inputs: inputs.into_iter().collect(),
        limits: sietch_sandbox::Limits {
            fuel: spec.limits.fuel,
            memory_bytes: spec.limits.memory_bytes,
            deadline: Duration::from_millis(spec.limits.wall_time_ms),
            stdout_bytes: output,
            output_bytes: output,
            gpu: gpus_needed(spec) > 0,
            gpu_memory_bytes: spec
                .requirements
                .gpu
                .as_ref()
                .map(|g| g.min_memory_bytes)
                .filter(|m| *m > 0)
                .unwrap_or(DEFAULT_GPU_MEMORY),
            ..defaults
        },
    }
}

/// The module, stdin and inputs of a spec, by name.
#[derive(Debug, Clone, Default)]
pub struct JobBlobs {
    /// The WebAssembly module.
    pub module: Vec<u8>,
    /// Standard input.
    pub stdin: Vec<u8>,
    /// `/input` files, shared: jobs reading the same blob hold one copy
    /// ([`crate::shared_blobs`]).
    pub inputs: BTreeMap<String, Arc<[u8]>>,
}

/// Why a spec could not be run (its outcome, whatever it is, is not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunFailure {
    /// The module was refused at load (malformed, too large, a forbidden import).
    #[error("the module: {0}")]
    Load(#[from] sietch_sandbox::LoadError),
    /// The sandbox could not run it (an invalid spec, no free instance).
    #[error("the sandbox: {0}")]
    Run(#[from] sietch_sandbox::RunError),
}

/// Runs a spec in `sandbox` (blocking: call from a blocking context).
pub fn run(
    sandbox: &Sandbox,
    spec: &JobSpec,
    seed: &B256,
    blobs: JobBlobs,
) -> Result<JobReport, RunFailure> {
    let module = sandbox.load(&blobs.module)?;
    Ok(sandbox.run(&module, &sandbox_job(spec, seed, blobs.stdin, blobs.inputs))?)
}

/// The blobs a spec names.
pub fn blob_hashes(spec: &JobSpec) -> Vec<B256> {
    let mut v = vec![spec.module];
    v.extend(spec.stdin.iter().map(|b| b.hash));
    v.extend(spec.inputs.iter().map(|i| i.blob.hash));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(per_gfuel: u128, per_gpu_second: u128) -> Prices {
        Prices {
            per_gfuel,
            per_gpu_second,
        }
    }

    #[test]
    fn costs_round_up_and_charges_are_capped() {
        let p = prices(1_000, 0);
        assert_eq!(cost(0, 0, &p), 0);
        assert_eq!(cost(1, 0, &p), 1);
        assert_eq!(cost(1_000_000_000, 0, &p), 1_000);
        assert_eq!(
            cost(u64::MAX, 0, &prices(u128::MAX, 0)),
            u128::MAX / FUEL_PER_GFUEL + 1
        );
        assert_eq!(
            charge(2_000_000_000, 0, &p, U256::from(1_500)),
            U256::from(1_500)
        );
        assert_eq!(
            charge(1_000_000_000, 0, &p, U256::from(1_500)),
            U256::from(1_000)
        );
    }

    #[test]
    fn gpu_time_is_billed_per_millisecond_and_rounded_once() {
        // 10,000 per GPU-second: 10 per GPU-millisecond.
        let p = prices(1_000, 10_000);
        assert_eq!(cost(0, 1, &p), 10);
        assert_eq!(cost(0, 1_500, &p), 15_000);
        // Half a unit of fuel and a GPU-millisecond at 1 per GPU-second (0.001 each) round
        // up together to 1, not to 2.
        assert_eq!(cost(500_000, 1, &prices(1, 1)), 1);
        assert_eq!(
            charge(1_000_000_000, 100, &p, U256::MAX),
            U256::from(1_000 + 1_000)
        );
        assert_eq!(charge(1_000_000_000, 100, &p, U256::from(7)), U256::from(7));
    }

    fn gpu_spec(count: u8, min_memory_bytes: u64) -> JobSpec {
        let mut spec = JobSpec {
            module: B256::ZERO,
            stdin: None,
            inputs: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            limits: sietch_market::Limits {
                fuel: 2_000_000_000,
                memory_bytes: 1 << 20,
                wall_time_ms: 3_000,
                output_bytes: 1 << 10,
            },
            requirements: sietch_market::Requirements::default(),
            verification: sietch_market::VerificationPolicy::default(),
            price_cap: 0,
            deadline: 0,
        };
        if count > 0 {
            spec.requirements.gpu = Some(sietch_market::GpuNeeds {
                count,
                models: Vec::new(),
                min_memory_bytes,
                min_compute_capability: sietch_market::ComputeCapability { major: 0, minor: 0 },
            });
        }
        spec
    }

    #[test]
    fn the_worst_case_counts_wall_time_on_every_gpu_asked_for() {
        let p = prices(1_000, 10_000);
        assert_eq!(max_cost(&gpu_spec(0, 0), &p), 2_000);
        // 3 s on 2 GPUs at 10,000 per GPU-second.
        assert_eq!(max_gpu_millis(&gpu_spec(2, 0)), 6_000);
        assert_eq!(max_cost(&gpu_spec(2, 0), &p), 2_000 + 60_000);
    }

    #[test]
    fn only_a_gpu_job_is_given_the_gpu_with_its_memory() {
        let cpu = sandbox_job(&gpu_spec(0, 0), &B256::ZERO, Vec::new(), BTreeMap::new());
        assert!(!cpu.limits.gpu);
        let gpu = sandbox_job(&gpu_spec(1, 0), &B256::ZERO, Vec::new(), BTreeMap::new());
        assert!(gpu.limits.gpu);
        assert_eq!(gpu.limits.gpu_memory_bytes, DEFAULT_GPU_MEMORY);
        let big = sandbox_job(
            &gpu_spec(1, 40 << 30),
            &B256::ZERO,
            Vec::new(),
            BTreeMap::new(),
        );
        assert_eq!(big.limits.gpu_memory_bytes, 40 << 30);
    }
}
