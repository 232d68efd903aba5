//! Every output bit of the Rust kernels (`matmul` and `matmul_le`) against the C reference `sk_matmul_ref`
//! (`sandbox/guests/llm/kernels_ref.c`) compiled natively with clang `-O2 -ffp-contract=off`
//! (needs clang: `scripts/setup.sh` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use sietch_kernels::WeightType;
use support::Rng;

fn compare(case: &support::Case, dir: &std::path::Path) {
    let (want, _) = case.reference(dir, 0);
    let got = case.rust();
    assert_eq!(got.len(), want.len());
    // The byte form (what the sandbox calls) gives the same bytes as the float form.
    let xb: Vec<u8> = case.x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut yb = vec![0u8; 4 * got.len()];
    sietch_kernels::matmul_le(
        &case.w, case.wtype, case.rows, case.cols, &xb, case.n, &mut yb,
    )
    .unwrap();
    let got_bytes: Vec<u8> = got.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(yb, got_bytes, "matmul_le differs from matmul");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(
            same,
            "{:?} {}x{} n={}: output {i} (vector {}, row {}) is {g:e} ({:#010x}), the C reference {w:e} ({:#010x})",
            case.wtype,
            case.rows,
            case.cols,
            case.n,
            i / case.rows,
            i % case.rows,
            g.to_bits(),
            w.to_bits()
        );
    }
}

#[test]
fn rust_matches_the_c_reference_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let shapes = [
        (1, 32, 1),
        (3, 64, 2),
        (17, 96, 3),
        (64, 576, 1),
        (40, 1536, 4),
        (5, 32, 7),
    ];
    for wtype in [WeightType::F32, WeightType::Q4_1, WeightType::Q8_0] {
        for &(rows, cols, n) in &shapes {
            for _ in 0..3 {
                let case = rng.case(wtype, rows, cols, n);
                compare(&case, dir.path());
            }
        }
    }
    // F32 takes any number of columns.
    for &(rows, cols, n) in &[(3, 1, 1), (7, 33, 2), (2, 1000, 3)] {
        compare(&rng.case(WeightType::F32, rows, cols, n), dir.path());
    }
}

/// The shapes of SmolLM2-135M's products, once each, with the scale ranges of a real model.
#[test]
fn model_shapes_match() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    for (wtype, rows, cols, n) in [
        (WeightType::Q4_1, 576, 1536, 1),
        (WeightType::Q4_1, 1536, 576, 2),
        (WeightType::Q8_0, 2048, 576, 1),
    ] {
        compare(&rng.case(wtype, rows, cols, n), dir.path());
    }
}
