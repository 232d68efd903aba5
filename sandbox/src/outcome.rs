//! What a run produced. How it ended ([`Outcome`]) and its output hash are the market's
//! one contract for a job's result (`sietch_market::result`).

use std::time::Duration;

use sietch_market::OutputFiles;

pub use sietch_market::result::{Outcome, TrapKind};

/// The trap kind of a wasmtime trap.
pub(crate) fn trap_kind(trap: wasmtime::Trap) -> TrapKind {
    use wasmtime::Trap;
    match trap {
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        Trap::HeapMisaligned => TrapKind::HeapMisaligned,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        _ => TrapKind::Other,
    }
}

/// What a run produced. `output_hash` and `fuel_used` are deterministic for a spec (unless the
/// outcome is [`Outcome::DeadlineExceeded`]); `stderr`, `wall_time` and `gpu_time_ns` are not
/// part of the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// How the job ended.
    pub outcome: Outcome,
    /// Fuel burned: what the buyer pays for.
    pub fuel_used: u64,
    /// blake3 over the canonical encoding of outcome, stdout and `/output` (see
    /// [`sietch_market::encode_output`]).
    pub output_hash: [u8; 32],
    /// Captured stdout (at most `Limits::stdout_bytes`).
    pub stdout: Vec<u8>,
    /// Captured stderr (truncated at `Limits::stderr_bytes`).
    pub stderr: Vec<u8>,
    /// Files the job left in `/output`.
    pub outputs: OutputFiles,
    /// GPU time measured with CUDA events, in nanoseconds (0 without GPU work).
    pub gpu_time_ns: u64,
    /// Wall-clock time of instantiate and run.
    pub wall_time: Duration,
}
