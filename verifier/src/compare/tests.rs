//! Tests of exact, tolerance and rescore comparison.
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

#[test]
fn rescore_reads_the_verdict_or_compares_a_plain_rerun_by_hash() {
    let cmp = Comparison::Rescore { margin: 0.1 };
    let original = commitment(1, 5);
    // A plain re-run of the original spec (nothing to re-score): the hash, not the fuel.
    assert!(compare(&cmp, &original, None, &commitment(1, 9), None).agrees());
    assert_eq!(
        compare(&cmp, &original, None, &commitment(2, 5), None),
        Agreement::Differs(Difference::OutputHash)
    );
    // A rescoring job (another spec): its verdict decides.
    let mut rescoring = commitment(3, 7);
    rescoring.spec_hash = B256::repeat_byte(9);
    assert_eq!(
        compare(&cmp, &original, None, &rescoring, None),
        Agreement::Differs(Difference::MissingOutputs)
    );
    let pass = outputs(&[("verdict.json", br#"{"pass":true,"margin":0.1}"#.to_vec())]);
    assert!(compare(&cmp, &original, None, &rescoring, Some(&pass)).agrees());
    let fail = outputs(&[("verdict.json", br#"{"pass":false,"margin":0.1}"#.to_vec())]);
    assert!(matches!(
        compare(&cmp, &original, None, &rescoring, Some(&fail)),
        Agreement::Differs(Difference::Rescored { .. })
    ));
    assert!(with_outputs(&cmp) && !with_outputs(&Comparison::Exact));
}
