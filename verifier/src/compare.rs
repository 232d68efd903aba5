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
mod tests {
    use super::*;
    use sietch_market::{B256, U256};
    use sietch_market::{Outcome, TrapKind};

    fn commitment(hash: u8, fuel: u64) -> ResultCommitment {
        ResultCommitment {
            job_id: B256::ZERO,
            spec_hash: B256::ZERO,
            channel_id: B256::ZERO,
            output_hash: B256::repeat_byte(hash),
            fuel_used: fuel,
            gpu_millis: 0,
            amount: U256::ZERO,
        }
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn outputs(files: &[(&str, Vec<u8>)]) -> Outputs {
        Outputs {
            outcome: Outcome::Exited { code: 0 },
            stdout: b"done".to_vec(),
            files: files
                .iter()
                .map(|(n, d)| ((*n).to_owned(), d.clone()))
                .collect(),
        }
    }

    fn tolerance(relative: f64, absolute: f64, kind: FloatKind) -> Comparison {
        Comparison::Tolerance {
            relative,
            absolute,
            outputs: vec![FloatOutput {
                path: "y".into(),
                kind,
            }],
        }
    }

    fn tol(cmp: &Comparison, a: &Outputs, b: &Outputs) -> Agreement {
        compare(cmp, &commitment(1, 5), Some(a), &commitment(2, 6), Some(b))
    }

    #[test]
    fn exact_compares_hash_then_fuel() {
        let e = Comparison::Exact;
        assert!(compare(&e, &commitment(1, 5), None, &commitment(1, 5), None).agrees());
        assert_eq!(
            compare(&e, &commitment(1, 5), None, &commitment(2, 5), None),
            Agreement::Differs(Difference::OutputHash)
        );
        assert_eq!(
            compare(&e, &commitment(1, 5), None, &commitment(1, 6), None),
            Agreement::Differs(Difference::Fuel {
                original: 5,
                rerun: 6
            })
        );
    }

    #[test]
    fn bound_is_absolute_plus_relative_of_the_larger_magnitude() {
        let cmp = tolerance(1e-3, 1e-6, FloatKind::F64);
        let a = outputs(&[("y", f64s(&[1000.0, 0.0, -2.0]))]);
        // 1000.999 is within 1e-6 + 1e-3 · 1000.999; 1e-6 away from 0 is within the absolute bound.
        let ok = outputs(&[("y", f64s(&[1000.999, 1e-6, -2.001]))]);
        assert!(tol(&cmp, &a, &ok).agrees());
        assert!(tol(&cmp, &ok, &a).agrees(), "symmetric");
        let far = outputs(&[("y", f64s(&[1000.0, 3e-6, -2.0]))]);
        assert_eq!(
            tol(&cmp, &a, &far),
            Agreement::Differs(Difference::Value {
                name: "y".into(),
                index: 1,
                original: 0.0,
                rerun: 3e-6
            })
        );
    }

    #[test]
    fn last_bit_differences_in_f32_pass_tolerance() {
        let xs: Vec<f32> = (1..100).map(|i| i as f32 * 0.37).collect();
        let ys: Vec<f32> = xs.iter().map(|x| f32::from_bits(x.to_bits() ^ 1)).collect();
        let a = outputs(&[("y", f32s(&xs))]);
        let b = outputs(&[("y", f32s(&ys))]);
        assert!(tol(&tolerance(1e-6, 0.0, FloatKind::F32), &a, &b).agrees());
        assert!(!tol(&tolerance(0.0, 0.0, FloatKind::F32), &a, &b).agrees());
    }

    #[test]
    fn nan_infinity_and_zero_signs() {
        let cmp = tolerance(1e-3, 1e-3, FloatKind::F32);
        let odd_nan = f32::from_bits(0x7fa0_0001);
        let a = outputs(&[("y", f32s(&[f32::NAN, f32::INFINITY, 0.0]))]);
        let b = outputs(&[("y", f32s(&[odd_nan, f32::INFINITY, -0.0]))]);
        assert!(tol(&cmp, &a, &b).agrees());
        let nan_vs_number = outputs(&[("y", f32s(&[1.0, f32::INFINITY, 0.0]))]);
        assert!(!tol(&cmp, &a, &nan_vs_number).agrees());
        let neg_inf = outputs(&[("y", f32s(&[f32::NAN, f32::NEG_INFINITY, 0.0]))]);
        assert!(!tol(&cmp, &a, &neg_inf).agrees());
        let big = outputs(&[("y", f32s(&[f32::NAN, f32::MAX, 0.0]))]);
        assert!(!tol(&cmp, &a, &big).agrees());
    }

    #[test]
    fn lengths_shapes_and_other_files() {
        let cmp = tolerance(1e-3, 0.0, FloatKind::F32);
        let a = outputs(&[("y", f32s(&[1.0, 2.0])), ("log", b"x".to_vec())]);
        let short = outputs(&[("y", f32s(&[1.0])), ("log", b"x".to_vec())]);
        assert!(matches!(
            tol(&cmp, &a, &short),
            Agreement::Differs(Difference::Length {
                original: 2,
                rerun: 1,
                ..
            })
        ));
        let ragged = outputs(&[("y", vec![0; 7]), ("log", b"x".to_vec())]);
        assert!(matches!(
            tol(&cmp, &a, &ragged),
            Agreement::Differs(Difference::Malformed { bytes: 7, .. })
        ));
        let other_log = outputs(&[("y", f32s(&[1.0, 2.0])), ("log", b"z".to_vec())]);
        assert_eq!(
            tol(&cmp, &a, &other_log),
            Agreement::Differs(Difference::File { name: "log".into() })
        );
        let extra = outputs(&[
            ("y", f32s(&[1.0, 2.0])),
            ("log", b"x".to_vec()),
            ("more", vec![]),
        ]);
        assert_eq!(
            tol(&cmp, &a, &extra),
            Agreement::Differs(Difference::File {
                name: "more".into()
            })
        );
        let mut other_stdout = a.clone();
        other_stdout.stdout = b"other".to_vec();
        assert_eq!(
            tol(&cmp, &a, &other_stdout),
            Agreement::Differs(Difference::Stdout)
        );
        let mut trapped = a.clone();
        trapped.outcome = Outcome::Trapped {
            trap: TrapKind::Unreachable,
        };
        assert_eq!(
            tol(&cmp, &a, &trapped),
            Agreement::Differs(Difference::Outcome)
        );
        assert_eq!(
            compare(&cmp, &commitment(1, 5), Some(&a), &commitment(2, 5), None),
            Agreement::Differs(Difference::MissingOutputs)
        );
        // Equal hashes agree without reading outputs.
        assert!(compare(&cmp, &commitment(1, 5), None, &commitment(1, 9), None).agrees());
    }

    #[test]
    fn insane_bounds_count_as_zero() {
        let a = outputs(&[("y", f64s(&[1.0]))]);
        let b = outputs(&[("y", f64s(&[1.0 + 1e-12]))]);
        assert!(!tol(&tolerance(f64::NAN, -1.0, FloatKind::F64), &a, &b).agrees());
        assert!(tol(&tolerance(f64::NAN, -1.0, FloatKind::F64), &a, &a).agrees());
    }

    #[test]
    fn a_verifier_repeats_the_provider_only_when_it_agrees() {
        let cmp = tolerance(1e-6, 0.0, FloatKind::F32);
        let a = outputs(&[("y", f32s(&[1.0]))]);
        let near = outputs(&[("y", f32s(&[f32::from_bits(1.0f32.to_bits() + 1)]))]);
        let far = outputs(&[("y", f32s(&[2.0]))]);
        let (disputed, own) = (commitment(1, 5), commitment(2, 6));
        let v = verdict_commitment(&cmp, &disputed, Some(&a), &own, Some(&near));
        assert_eq!((v.output_hash, v.fuel_used), (disputed.output_hash, 5));
        let v = verdict_commitment(&cmp, &disputed, Some(&a), &own, Some(&far));
        assert_eq!(v, own);
    }
}
