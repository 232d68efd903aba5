//! The spot-check simulation (`docs/protocol.md` §4.4): a provider cheating on a fraction `f` of its
//! jobs, checked at sampling rate `q` with `k` re-runs among eleven honest providers, over
//! `n` = 1,000 jobs, many seeded trials per cell. It prints, per cell, measured detection
//! (trials in which the cheater was found wrong at least once) against `1 − (1 − q·f)^n`,
//! measured compute overhead against `1 + q·k` (on an honest provider's jobs, and on the
//! cheater's, where mismatches add two re-runs each), and false accusations.
//!
//! The providers are in memory (the output is a hash of the job, so a run costs nothing); the
//! verifier is the real one: commit-reveal sampling, selection, EIP-712 signatures and their
//! checks, comparison, escalation and majority.
//!
//! `cargo bench -p sietch-verifier --bench spotcheck_sim` (`SIETCH_SIM_TRIALS` to change the
//! trials per cell, 200 by default; the key cell runs five times as many; `SIETCH_SEED` the seed).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::{Cell, seed};

fn main() {
    let seed = seed(2026);
    let trials: usize = std::env::var("SIETCH_SIM_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = 1_000;
    let mut cells = Vec::new();
    for q in [0.01, 0.05, 0.10, 0.20] {
        for f in [0.01, 0.05, 0.10, 0.20] {
            let n = if q == 0.10 && f == 0.05 {
                5 * trials
            } else {
                trials
            };
            cells.push(Cell {
                q,
                f,
                k: 1,
                jobs,
                trials: n,
                honest_trials: if f == 0.05 { n / 4 } else { 0 },
            });
        }
    }
    for f in [0.01, 0.05] {
        cells.push(Cell {
            q: 0.10,
            f,
            k: 2,
            jobs,
            trials,
            honest_trials: if f == 0.05 { trials / 4 } else { 0 },
        });
    }

    println!("spot-check simulation: n = {jobs} jobs per trial, seed {seed}, {threads} threads");
    println!(
        "| q | f | k | trials | detected | predicted 1−(1−qf)^n | ratio | catches/job (q·f) | \
         honest overhead | 1+qk | ratio | cheater overhead | false accusations |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut false_accusations = 0;
    for cell in &cells {
        let m = cell.run(seed, threads);
        let detected = m.detected as f64 / m.trials as f64;
        let predicted = cell.predicted_detection();
        let sd = (predicted * (1.0 - predicted) / m.trials as f64).sqrt();
        let per_job = m.caught as f64 / m.cheater_jobs as f64;
        let cheater = 1.0 + m.cheater_reruns as f64 / m.cheater_jobs as f64;
        let honest = if m.honest_jobs > 0 {
            let o = 1.0 + m.honest_reruns as f64 / m.honest_jobs as f64;
            format!(
                "{o:.4} | {:.2} | {:.4}",
                cell.predicted_overhead(),
                o / cell.predicted_overhead()
            )
        } else {
            "– | – | –".to_owned()
        };
        false_accusations += m.false_accusations;
        println!(
            "| {:.0}% | {:.0}% | {} | {} | {:.4} | {predicted:.4} ± {sd:.4} | {:.3} | {per_job:.5} ({:.4}) | {honest} | {cheater:.4} | {} |",
            cell.q * 100.0,
            cell.f * 100.0,
            cell.k,
            m.trials,
            detected,
            detected / predicted,
            cell.q * cell.f,
            m.false_accusations,
        );
    }
    println!(
        "\n{} cells in {:.1} s; false accusations in all: {false_accusations}",
        cells.len(),
        started.elapsed().as_secs_f64()
    );
}
