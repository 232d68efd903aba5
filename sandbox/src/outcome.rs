//! How a job ended, and what it produced.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// How a job ended. Every ending is an outcome the buyer reads, not an error of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// `_start` returned (code 0) or the guest called `proc_exit(code)`.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The job burned all its fuel.
    OutOfFuel,
    /// The wall-clock deadline passed.
    DeadlineExceeded,
    /// The job tried to grow its memory or a table past its limit.
    MemoryLimitExceeded,
    /// The job wrote more than its stdout or `/output` allowance.
    OutputTooLarge,
    /// The guest trapped.
    Trapped {
        /// Why.
        trap: TrapKind,
    },
}

impl Outcome {
    /// The outcome's stable tag and value in the output hash's encoding ([`crate::encode_output`],
    /// `sandbox/README.md`): what a result message carries so that the buyer can recompute the
    /// hash.
    pub fn tag(self) -> (u8, i32) {
        match self {
            Self::Exited { code } => (0, code),
            Self::OutOfFuel => (1, 0),
            Self::DeadlineExceeded => (2, 0),
            Self::MemoryLimitExceeded => (3, 0),
            Self::OutputTooLarge => (4, 0),
            Self::Trapped { trap } => (5, trap.code()),
        }
    }
}

impl Outcome {
    /// The outcome of a tag and value from [`Outcome::tag`]; `None` for a pair no run gives.
    pub fn from_tag(tag: u8, value: i32) -> Option<Self> {
        let o = match tag {
            0 => Self::Exited { code: value },
            1 => Self::OutOfFuel,
            2 => Self::DeadlineExceeded,
            3 => Self::MemoryLimitExceeded,
            4 => Self::OutputTooLarge,
            5 => Self::Trapped {
                trap: TrapKind::from_code(value)?,
            },
            _ => return None,
        };
        (o.tag() == (tag, value)).then_some(o)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "exited with code {code}"),
            Self::OutOfFuel => f.write_str("out of fuel"),
            Self::DeadlineExceeded => f.write_str("past the deadline"),
            Self::MemoryLimitExceeded => f.write_str("over the memory limit"),
            Self::OutputTooLarge => f.write_str("output too large"),
            Self::Trapped { trap } => write!(f, "trapped: {trap}"),
        }
    }
}

/// Why a guest trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrapKind {
    /// Call stack exhausted (deep recursion).
    StackOverflow,
    /// Out-of-bounds memory access.
    MemoryOutOfBounds,
    /// Misaligned atomic access.
    HeapMisaligned,
    /// Out-of-bounds table access.
    TableOutOfBounds,
    /// Indirect call to a null table entry.
    IndirectCallToNull,
    /// Indirect call with the wrong signature.
    BadSignature,
    /// Integer overflow (e.g. `i32.div_s` of `MIN` by -1).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Float to int conversion out of range or NaN.
    BadConversionToInteger,
    /// `unreachable` executed (e.g. `abort()`).
    Unreachable,
    /// Null reference or another trap wasmtime reports.
    Other,
}

impl TrapKind {
    pub(crate) fn from_trap(trap: wasmtime::Trap) -> Self {
        use wasmtime::Trap;
        match trap {
            Trap::StackOverflow => Self::StackOverflow,
            Trap::MemoryOutOfBounds => Self::MemoryOutOfBounds,
            Trap::HeapMisaligned => Self::HeapMisaligned,
            Trap::TableOutOfBounds => Self::TableOutOfBounds,
            Trap::IndirectCallToNull => Self::IndirectCallToNull,
            Trap::BadSignature => Self::BadSignature,
            Trap::IntegerOverflow => Self::IntegerOverflow,
            Trap::IntegerDivisionByZero => Self::IntegerDivisionByZero,
            Trap::BadConversionToInteger => Self::BadConversionToInteger,
            Trap::UnreachableCodeReached => Self::Unreachable,
            _ => Self::Other,
        }
    }

    fn from_code(code: i32) -> Option<Self> {
        [
            Self::StackOverflow,
            Self::MemoryOutOfBounds,
            Self::HeapMisaligned,
            Self::TableOutOfBounds,
            Self::IndirectCallToNull,
            Self::BadSignature,
            Self::IntegerOverflow,
            Self::IntegerDivisionByZero,
            Self::BadConversionToInteger,
            Self::Unreachable,
            Self::Other,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }

    fn code(self) -> i32 {
        match self {
            Self::StackOverflow => 1,
            Self::MemoryOutOfBounds => 2,
            Self::HeapMisaligned => 3,
            Self::TableOutOfBounds => 4,
            Self::IndirectCallToNull => 5,
            Self::BadSignature => 6,
            Self::IntegerOverflow => 7,
            Self::IntegerDivisionByZero => 8,
            Self::BadConversionToInteger => 9,
            Self::Unreachable => 10,
            Self::Other => 255,
        }
    }
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::StackOverflow => "stack overflow",
            Self::MemoryOutOfBounds => "memory access out of bounds",
            Self::HeapMisaligned => "misaligned memory access",
            Self::TableOutOfBounds => "table access out of bounds",
            Self::IndirectCallToNull => "indirect call to null",
            Self::BadSignature => "indirect call with bad signature",
            Self::IntegerOverflow => "integer overflow",
            Self::IntegerDivisionByZero => "integer division by zero",
            Self::BadConversionToInteger => "invalid conversion to integer",
            Self::Unreachable => "unreachable executed",
            Self::Other => "other trap",
        };
        f.write_str(s)
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
    /// [`crate::encode_output`]).
    pub output_hash: [u8; 32],
    /// Captured stdout (at most `Limits::stdout_bytes`).
    pub stdout: Vec<u8>,
    /// Captured stderr (truncated at `Limits::stderr_bytes`).
    pub stderr: Vec<u8>,
    /// Files the job left in `/output`.
    pub outputs: BTreeMap<String, Vec<u8>>,
    /// GPU time measured with CUDA events, in nanoseconds (0 without GPU work).
    pub gpu_time_ns: u64,
    /// Wall-clock time of instantiate and run.
    pub wall_time: Duration,
}
