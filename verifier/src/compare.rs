//! Comparing a re-run's result with the original's.
//!
//! - **`exact`**: the signed output hashes and fuel counts are equal. Nothing else is read.
//! - **`tolerance`** (GPU floats): equal output hashes agree at once. Otherwise the outcome
//!   code, stdout and every `/output` file must be byte-equal, except the files the spec
//!   declares as float arrays ([`FloatOutput`]). A declared file is read as a little-endian
//!   IEEE-754 array of its [`FloatKind`]: its length must be a multiple of 4 (f32) or 8 (f64),
//!   and both sides must hold the same number of elements. Elements `a` (original) and `b`
//!   (re-run) agree when
//!
//!   ```text
//!   |a − b| ≤ absolute + relative · max(|a|, |b|)       (computed in f64)
//!   ```
//!
//!   which is symmetric, so the order of the two runs never matters. NaN agrees with NaN
//!   (whatever its payload: GPUs do not canonicalize NaNs) and with nothing else; an infinity
//!   agrees only with the same infinity; `+0` and `−0` agree. A bound that is negative or NaN
//!   counts as 0 (the spec decoder refuses both). A declared file missing on both sides agrees;
//!   missing on one side is a difference. Fuel is not compared in tolerance mode: a guest may
//!   branch on GPU floats and so legitimately burn different fuel. A [`crate::RunRecord`] keeps
//!   both commitments, so a node can still see a provider that bills far more fuel than its
//!   re-runs.
//! - **`rescore`** (generation jobs on GPUs, [`crate::rescore`]): the re-run is the rescoring
//!   job of the original's claimed completions, and agrees when it exited 0 with a passing
//!   verdict (every claimed token within the spec's margin of the model's choice, every
//!   completion ended by the stop rule). Where the original wrote no completions, the re-run
//!   is the original spec and the output hashes must be equal (not fuel: a GPU run and a CPU
//!   run bill differently).

use sietch_market::{Comparison, FloatKind, FloatOutput, ResultCommitment};

use sietch_market::Outputs;

/// How a re-run compares with the original.
#[derive(Debug, Clone, PartialEq)]
pub enum Agreement {
    /// They agree.
    Agrees,
    /// They differ, first at this point.
    Differs(Difference),
}

impl Agreement {
    /// Whether they agree.
    pub fn agrees(&self) -> bool {
        matches!(self, Self::Agrees)
    }
}

/// Where two results first differ.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Difference {
    /// Exact mode: the output hashes differ.
    OutputHash,
    /// Exact mode: the fuel counts differ.
    Fuel {
        /// The original's fuel.
        original: u64,
        /// The re-run's fuel.
        rerun: u64,
    },
    /// Tolerance mode needs both sides' outputs, and one is missing.
    MissingOutputs,
    /// The jobs ended differently (exit code, trap, limit).
    Outcome,
    /// Stdout differs.
    Stdout,
    /// A file that is not a declared float array differs, or exists on one side only.
    File {
        /// Its name in `/output`.
        name: String,
    },
    /// A declared float array is not a whole number of elements.
    Malformed {
        /// Its name in `/output`.
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// Two declared float arrays have different lengths.
    Length {
        /// Its name in `/output`.
        name: String,
        /// Elements in the original's.
        original: usize,
        /// Elements in the re-run's.
        rerun: usize,
    },
    /// Rescore mode: the rescoring job wrote no verdict (it did not exit 0).
    NoVerdict,
    /// Rescore mode: the rescoring job's verdict fails the claimed completions.
    Rescored {
        /// The verdict as the guest wrote it (its first KiB): the first failing completion,
        /// token and why.
        verdict: String,
    },
    /// Two elements are out of bounds.
    Value {
        /// Its name in `/output`.
        name: String,
        /// The first element out of bounds.
        index: usize,
        /// The original's value.
        original: f64,
        /// The re-run's value.
        rerun: f64,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutputHash => f.write_str("the output hashes differ"),
            Self::Fuel { original, rerun } => {
                write!(f, "fuel differs: {original} against {rerun}")
            }
            Self::MissingOutputs => f.write_str("the outputs needed for tolerance are missing"),
            Self::Outcome => f.write_str("the jobs ended differently"),
            Self::Stdout => f.write_str("stdout differs"),
            Self::NoVerdict => f.write_str("the rescoring job wrote no verdict"),
            Self::Rescored { verdict } => write!(f, "the rescoring fails the claim: {verdict}"),
            Self::File { name } => write!(f, "/output/{name} differs"),
            Self::Malformed { name, bytes } => {
                write!(
                    f,
                    "/output/{name} ({bytes} bytes) is not a whole float array"
                )
            }
            Self::Length {
                name,
                original,
                rerun,
            } => write!(f, "/output/{name} has {original} elements against {rerun}"),
            Self::Value {
                name,
                index,
                original,
                rerun,
            } => write!(
                f,
                "/output/{name}[{index}] is {original:e} against {rerun:e}, out of bounds"
            ),
        }
    }
}

/// Whether a check needs the outputs with the commitments under `comparison` (tolerance and
/// rescore read them; exact reads only the commitments).
pub fn with_outputs(comparison: &Comparison) -> bool {
    !matches!(comparison, Comparison::Exact)
}

/// Compares a re-run with the original under `comparison`. `outputs` are only read in
/// tolerance and rescore modes, where both must be given. In rescore mode the re-run is the
/// one [`crate::rescore::rerun_plan`] makes: the rescoring job, or the original spec when there
/// was nothing to re-score (a commitment for the original's spec).
pub fn compare(
    comparison: &Comparison,
    original: &ResultCommitment,
    original_outputs: Option<&Outputs>,
    rerun: &ResultCommitment,
    rerun_outputs: Option<&Outputs>,
) -> Agreement {
    match comparison {
        Comparison::Exact => {
            if original.output_hash != rerun.output_hash {
                Agreement::Differs(Difference::OutputHash)
            } else if original.fuel_used != rerun.fuel_used {
                Agreement::Differs(Difference::Fuel {
                    original: original.fuel_used,
                    rerun: rerun.fuel_used,
                })
            } else {
                Agreement::Agrees
            }
        }
        Comparison::Tolerance {
            relative,
            absolute,
            outputs,
        } => {
            if original.output_hash == rerun.output_hash {
                return Agreement::Agrees;
            }
            match (original_outputs, rerun_outputs) {
                (Some(a), Some(b)) => {
                    let bounds = Bounds::new(*relative, *absolute);
                    match compare_outputs(&bounds, outputs, a, b) {
                        Some(d) => Agreement::Differs(d),
                        None => Agreement::Agrees,
                    }
                }
                _ => Agreement::Differs(Difference::MissingOutputs),
            }
        }
        Comparison::Rescore { .. } if rerun.spec_hash == original.spec_hash => {
            if original.output_hash == rerun.output_hash {
                Agreement::Agrees
            } else {
                Agreement::Differs(Difference::OutputHash)
            }
        }
        Comparison::Rescore { .. } => match rerun_outputs {
            Some(o) => crate::rescore::verdict_agreement(o),
            None => Agreement::Differs(Difference::MissingOutputs),
        },
    }
}

/// The tolerance bounds, made safe: a negative or NaN bound counts as 0.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    relative: f64,
    absolute: f64,
}

impl Bounds {
    fn new(relative: f64, absolute: f64) -> Self {
        let sane = |v: f64| if v >= 0.0 { v } else { 0.0 };
        Self {
            relative: sane(relative),
            absolute: sane(absolute),
        }
    }

    fn agree(&self, a: f64, b: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if a.is_infinite() || b.is_infinite() {
            return a == b;
        }
        (a - b).abs() <= self.absolute + self.relative * a.abs().max(b.abs())
    }
}

fn compare_outputs(
    bounds: &Bounds,
    declared: &[FloatOutput],
    a: &Outputs,
    b: &Outputs,
) -> Option<Difference> {
    if a.outcome != b.outcome {
        return Some(Difference::Outcome);
    }
    if a.stdout != b.stdout {
        return Some(Difference::Stdout);
    }
    // The first declaration of a path decides its element type.
    let kind_of = |name: &str| declared.iter().find(|d| d.path == name).map(|d| d.kind);
    let names = a
        .files
        .keys()
        .chain(b.files.keys().filter(|n| !a.files.contains_key(*n)));
    for name in names {
        let (x, y) = match (a.files.get(name), b.files.get(name)) {
            (Some(x), Some(y)) => (x, y),
            _ => return Some(Difference::File { name: name.clone() }),
        };
        let diff = match kind_of(name) {
            None if x == y => None,
            None => Some(Difference::File { name: name.clone() }),
            Some(kind) => compare_floats(bounds, name, kind, x, y),
        };
        if diff.is_some() {
            return diff;
        }
    }
    None
}

fn compare_floats(
    bounds: &Bounds,
    name: &str,
    kind: FloatKind,
    a: &[u8],
    b: &[u8],
) -> Option<Difference> {
    let width = match kind {
        FloatKind::F32 => 4,
        FloatKind::F64 => 8,
    };
    for side in [a, b] {
        if side.len() % width != 0 {
            return Some(Difference::Malformed {
                name: name.to_owned(),
                bytes: side.len(),
            });
        }
    }
    if a.len() != b.len() {
        return Some(Difference::Length {
            name: name.to_owned(),
            original: a.len() / width,
            rerun: b.len() / width,
        });
    }
    let read = |c: &[u8]| -> f64 {
        match kind {
            FloatKind::F32 => c
                .try_into()
                .map(|w: [u8; 4]| f64::from(f32::from_le_bytes(w)))
                .unwrap_or(f64::NAN),
            FloatKind::F64 => c.try_into().map(f64::from_le_bytes).unwrap_or(f64::NAN),
        }
    };
    a.chunks_exact(width)
        .zip(b.chunks_exact(width))
        .map(|(x, y)| (read(x), read(y)))
        .enumerate()
        .find(|(_, (x, y))| !bounds.agree(*x, *y))
        .map(|(index, (original, rerun))| Difference::Value {
            name: name.to_owned(),
            index,
            original,
            rerun,
        })
}

/// The commitment a drawn verifier signs for an on-chain dispute, from its own run of the job.
/// The escrow counts a verdict as agreeing iff its output hash and fuel equal the provider's,
/// so a verifier whose run agrees under `comparison` (exact: the same hash and fuel; tolerance:
/// within bounds, which needs the provider's outputs from the buyer) repeats the provider's
/// output hash and fuel; otherwise it signs its own. Either way the job, spec, GPU time and
/// amount are its own.
pub fn verdict_commitment(
    comparison: &Comparison,
    disputed: &ResultCommitment,
    disputed_outputs: Option<&Outputs>,
    own: &ResultCommitment,
    own_outputs: Option<&Outputs>,
) -> ResultCommitment {
    if compare(comparison, disputed, disputed_outputs, own, own_outputs).agrees() {
        ResultCommitment {
            output_hash: disputed.output_hash,
            fuel_used: disputed.fuel_used,
            ..*own
        }
    } else {
        *own
    }
}

#[cfg(test)]
mod tests;
