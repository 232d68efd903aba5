//! What a buyer asks to run: the inputs of a job and the limits it runs under.

use std::collections::BTreeMap;
use std::time::Duration;

/// The limits a job runs under. Every one is enforced by the sandbox and reaching it ends the
/// job with an [`crate::Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel the job may burn (the billing unit: roughly one per WebAssembly instruction, plus
    /// a charge per host call and per byte a host call moves).
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// Largest table, in elements.
    pub table_elements: u32,
    /// Wall-clock deadline, measured with epochs (granularity: the sandbox's epoch tick).
    pub deadline: Duration,
    /// Most bytes the job may write to stdout; more ends it with `OutputTooLarge`.
    pub stdout_bytes: usize,
    /// Most bytes of stderr kept; the rest is dropped (stderr is diagnostics, not output).
    pub stderr_bytes: usize,
    /// Most bytes the job may hold in `/output` files, all together.
    pub output_bytes: usize,
    /// Most files the job may create in `/output`.
    pub output_files: usize,
    /// GPU memory the job may allocate through `sietch_gpu`, in bytes.
    pub gpu_memory_bytes: u64,
    /// Whether the job may use the GPU. When `false` every `sietch_gpu` call answers "no
    /// device", as on a node without one, so that a job that did not ask for a GPU runs the
    /// same everywhere (a provider with a GPU and a verifier without one agree).
    pub gpu: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            deadline: Duration::from_secs(60),
            stdout_bytes: 16 << 20,
            stderr_bytes: 1 << 20,
            output_bytes: 64 << 20,
            output_files: 64,
            gpu_memory_bytes: 1 << 30,
            gpu: true,
        }
    }
}

/// Everything a job sees. Two runs of the same module with equal specs give the same output
/// hash and the same fuel (unless the deadline is what ends them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// Seeds `random_get`; in the market it is the job's id.
    pub job_id: [u8; 32],
    /// Arguments after the program name (the guest sees `argv[0] == "job"`).
    pub args: Vec<String>,
    /// Environment variables, in the order given.
    pub env: Vec<(String, String)>,
    /// What the guest reads from fd 0.
    pub stdin: Vec<u8>,
    /// Files of the read-only `/input` directory, by name (flat: no `/` in names).
    pub inputs: BTreeMap<String, Vec<u8>>,
    /// The limits.
    pub limits: Limits,
}

/// A name that may appear in `/input` or `/output`: the protocol's one rule
/// ([`sietch_market::check_file_name`]: flat, at most 255 bytes, printable), so a provider's
/// sandbox never creates an output that a buyer would refuse.
pub(crate) fn is_flat_name(name: &str) -> bool {
    sietch_market::check_file_name(name).is_ok()
}
