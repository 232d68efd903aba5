//! The Rust kernels against the C reference compiled natively (clang -O2 -ffp-contract=off),
//! measured in the same run on the same data: SmolLM2-135M's FFN down product (576 x 1536
//! Q4_1) and its output projection (49152 x 576 Q8_0), one vector each (generation), and the
//! FFN product with 16 vectors (prefill).
//!
//! `cargo bench -p sietch-kernels --bench matmul`
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use sietch_kernels::WeightType;

fn time_rust(case: &support::Case, iters: u32) -> (f64, f64) {
    let mut y = vec![0.0; case.n * case.rows];
    let mut best = f64::MAX;
    let mut total = 0.0;
    for _ in 0..iters {
        let t = Instant::now();
        sietch_kernels::matmul(
            &case.w, case.wtype, case.rows, case.cols, &case.x, case.n, &mut y,
        )
        .unwrap();
        let ns = t.elapsed().as_nanos() as f64;
        std::hint::black_box(&y);
        best = best.min(ns);
        total += ns;
    }
    (best, total / f64::from(iters))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = support::Rng(7);
    println!(
        "{:<32} {:>12} {:>12} {:>8} {:>10}",
        "product", "rust best", "C -O2 best", "ratio", "GMAC/s"
    );
    for (name, wtype, rows, cols, n, iters) in [
        ("576x1536 Q4_1 matvec", WeightType::Q4_1, 576, 1536, 1, 400),
        ("49152x576 Q8_0 matvec", WeightType::Q8_0, 49152, 576, 1, 30),
        (
            "576x1536 Q4_1 x16 (prefill)",
            WeightType::Q4_1,
            576,
            1536,
            16,
            60,
        ),
        ("576x576 F32 matvec", WeightType::F32, 576, 576, 1, 200),
    ] {
        let case = rng.model_case(wtype, rows, cols, n);
        let (want, c) = case.reference(dir.path(), iters);
        let (c_best, _) = c.unwrap();
        let got = case.rust();
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())),
            "{name}: the Rust result differs from the C reference"
        );
        // Warm up, then measure.
        time_rust(&case, iters / 10 + 1);
        let (r_best, _) = time_rust(&case, iters);
        let macs = (rows * cols * n) as f64;
        println!(
            "{name:<32} {:>10.1}us {:>10.1}us {:>7.2}x {:>10.2}",
            r_best / 1e3,
            c_best / 1e3,
            c_best / r_best,
            macs / r_best
        );
    }
    println!("ratio: C time / Rust time (above 1: the Rust kernel is faster than native C)");
}
