//! The job sandbox: runs WebAssembly jobs deterministically, with fuel billing, and
//! gives them metered access to the GPU through the `sietch_gpu` host module.
//!
//! A job is a WASI preview 1 command module (`_start`). [`Sandbox::load`] checks and compiles
//! it once per module hash (blake3), with an in-memory and an optional on-disk cache;
//! [`Sandbox::run`] runs it against a [`JobSpec`] and returns a [`JobReport`] whose
//! [`Outcome`] says how the job ended. Every ending of a job — exit, out of fuel, past the
//! deadline, over a limit, a trap — is an outcome the buyer reads, never a host error.
//!
//! The guest sees no ambient authority: its arguments, environment and stdin come from the
//! spec, `/input` and `/output` are held in memory, the clock is virtual and `random_get` is a
//! PRNG seeded from the job id (see [`wasi`]). The same spec gives the same
//! [`JobReport::output_hash`] and [`JobReport::fuel_used`] on every honest provider.

mod cache;
mod error;
pub mod gpu;
mod host;
pub mod kernels;
mod outcome;
mod runner;
mod spec;
mod state;
pub mod wasi;

pub use cache::CacheStats;
pub use error::{LoadError, RunError, SandboxError};
pub use outcome::{JobReport, Outcome, TrapKind};
pub use runner::{JobModule, MAX_INPUT_FILES, MAX_TABLE_ELEMENTS, Sandbox, SandboxConfig};
pub use sietch_market::result::{OUTPUT_HASH_DOMAIN, encode_output, output_hash};
pub use spec::{Inputs, JobSpec, Limits};
