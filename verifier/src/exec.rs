//! The execution trait: how the verifier gets a job re-run on another provider.
//!
//! The node implements [`Executor`] over its network: open or top up a channel to the chosen
//! provider, sign a ticket for the same job id (with a fresh check secret of its own), send
//! the spec, module and inputs, wait for the signed result. Re-runs are paid through that
//! provider's channel like any job. Tests implement it with real sandboxes and cheating
//! wrappers; the simulation with an in-memory stand-in.

use async_trait::async_trait;
use sietch_market::{B256, JobSpec, Offer, Outputs, ResultCommitment};

use crate::error::RerunError;

/// A signed result: what a provider answers for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// The result commitment.
    pub commitment: ResultCommitment,
    /// Its EIP-712 signature by the provider's EVM account (65 bytes `r ‖ s ‖ v`).
    pub signature: [u8; 65],
    /// The outputs, which tolerance mode compares; exact mode reads only the commitment.
    pub outputs: Option<Outputs>,
}

/// One re-run to make.
#[derive(Debug, Clone, Copy)]
pub struct RerunRequest<'a> {
    /// The job's id: re-runs use the original's, so that the sandbox's seeded `random_get`
    /// gives the same bytes. (Their commitments name the re-run's own channel, so they are
    /// evidence off chain, never verdicts on chain: `docs/protocol.md` §2.6.)
    pub job_id: B256,
    /// The spec to run (the module and inputs are the blobs it names).
    pub spec: &'a JobSpec,
    /// The provider chosen to run it.
    pub provider: &'a Offer,
    /// Whether the outputs must come back with the commitment (tolerance and rescore modes).
    pub with_outputs: bool,
    /// Bytes of inputs `spec` names that the verifier derived and only it holds (a rescoring
    /// job's claimed completions, [`crate::rescore`]): the executor makes them available to
    /// the provider (the node puts them in its blob store). Empty for a plain re-run.
    pub blobs: &'a [Vec<u8>],
}

/// Runs jobs on other providers. Calls for one check run concurrently; the implementation
/// bounds their time (a slow provider should end in [`RerunError::TimedOut`]) and the size of
/// what comes back (the spec's output limit).
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs `request.spec` as job `request.job_id` on `request.provider` and returns its
    /// signed result, as the provider sent it: the verifier checks it.
    async fn rerun(&self, request: RerunRequest<'_>) -> Result<RunResult, RerunError>;
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for std::sync::Arc<E> {
    async fn rerun(&self, request: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        (**self).rerun(request).await
    }
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for &E {
    async fn rerun(&self, request: RerunRequest<'_>) -> Result<RunResult, RerunError> {
        (**self).rerun(request).await
    }
}
