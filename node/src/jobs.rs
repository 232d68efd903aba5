//! What a job is to the node, shared by its roles: the sandbox run of a spec (provider,
//! spot-check re-runs and dispute verifiers all run the same thing), the price of a run, and
//! the buyer's check that a result's outputs are the ones its commitment names.

use std::collections::BTreeMap;
use std::time::Duration;

use sietch_market::{B256, JobSpec, U256};
use sietch_sandbox::{JobReport, Outcome, Sandbox};

use crate::net::JobResult;

/// Fuel per billing unit of an offer's price: prices are per 10^9 fuel ("gfuel").
pub const FUEL_PER_GFUEL: u128 = 1_000_000_000;

/// What `fuel` costs at `per_gfuel`, rounded up.
pub fn fuel_cost(fuel: u64, per_gfuel: u128) -> u128 {
    (u128::from(fuel).saturating_mul(per_gfuel)).div_ceil(FUEL_PER_GFUEL)
}

/// The most a job can cost at these prices: all its fuel.
pub fn max_cost(spec: &JobSpec, per_gfuel: u128) -> u128 {
    fuel_cost(spec.limits.fuel, per_gfuel)
}

/// What a provider charges for a run: its metered fuel at its price, capped by the ticket.
pub fn charge(fuel_used: u64, per_gfuel: u128, max_amount: U256) -> U256 {
    U256::from(fuel_cost(fuel_used, per_gfuel)).min(max_amount)
}

/// The sandbox's form of a job: what every honest provider (and every verifier re-running
/// it) runs for this spec and job id, so that all of them get the same output hash and fuel.
/// `seed` is the job whose id seeds `random_get`: the job itself, or the job a spot check
/// re-runs. The spec's output bound caps stdout and the `/output` files alike.
pub fn sandbox_job(
    spec: &JobSpec,
    seed: &B256,
    stdin: Vec<u8>,
    inputs: BTreeMap<String, Vec<u8>>,
) -> sietch_sandbox::JobSpec {
    let output = usize::try_from(spec.limits.output_bytes).unwrap_or(usize::MAX);
    let defaults = sietch_sandbox::Limits::default();
    sietch_sandbox::JobSpec {
        job_id: seed.0,
        args: spec.args.clone(),
        env: spec.env.clone(),
        stdin,
        inputs,
        limits: sietch_sandbox::Limits {
            fuel: spec.limits.fuel,
            memory_bytes: spec.limits.memory_bytes,
            deadline: Duration::from_millis(spec.limits.wall_time_ms),
            stdout_bytes: output,
            output_bytes: output,
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
    /// `/input` files.
    pub inputs: BTreeMap<String, Vec<u8>>,
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

/// The output hash of a result's outputs, as the provider should have committed to; `None`
/// when the outcome is not one a run can give.
pub fn output_hash_of(result: &JobResult) -> Option<B256> {
    let outcome = Outcome::from_tag(result.outcome.0, result.outcome.1)?;
    let files: BTreeMap<String, Vec<u8>> = result.files.iter().cloned().collect();
    if files.len() != result.files.len() {
        return None;
    }
    Some(B256::from(sietch_sandbox::output_hash(
        outcome,
        &result.stdout,
        &files,
    )))
}

/// How a result ended, in words.
pub fn outcome_text(result: &JobResult) -> String {
    Outcome::from_tag(result.outcome.0, result.outcome.1).map_or_else(
        || format!("unknown outcome {:?}", result.outcome),
        |o| o.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_and_charges_are_capped() {
        assert_eq!(fuel_cost(0, 1_000), 0);
        assert_eq!(fuel_cost(1, 1_000), 1);
        assert_eq!(fuel_cost(1_000_000_000, 1_000), 1_000);
        assert_eq!(
            fuel_cost(u64::MAX, u128::MAX),
            u128::MAX / FUEL_PER_GFUEL + 1
        );
        assert_eq!(
            charge(2_000_000_000, 1_000, U256::from(1_500)),
            U256::from(1_500)
        );
        assert_eq!(
            charge(1_000_000_000, 1_000, U256::from(1_500)),
            U256::from(1_000)
        );
    }
}
