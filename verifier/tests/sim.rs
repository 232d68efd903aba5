//! The key target of the simulation, small enough for CI (the sweep is the bench
//! `spotcheck_sim`): at q = 10%, k = 1, a provider cheating on 5% of its jobs is caught within
//! 1,000 jobs with probability `1 − (1 − q·f)^n` = 99.33%, overhead `1 + q·k` = 1.10, and no
//! honest job is found wrong. In-memory providers (the verifier's code is the real one: sampling,
//! selection, EIP-712 signatures, comparison, escalation).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use support::{Cell, assert_rate, seed};

#[test]
fn key_target_at_q10_k1_f5_over_1000_jobs() {
    let seed = seed(2026);
    let cell = Cell {
        q: 0.10,
        f: 0.05,
        k: 1,
        jobs: 1_000,
        trials: 100,
        honest_trials: 20,
    };
    let m = cell.run(seed, 1);
    let p = cell.predicted_detection();
    // Detected trials ~ Binomial(100, 0.9933): mean 99.3; 4 misses or fewer has probability
    // 0.9995. Catches ~ Binomial(100,000, q·f = 0.005): within 4 sd.
    assert!(
        m.detected >= 96,
        "seed {seed}: detected in {} of 100 trials, predicted {p:.4}",
        m.detected
    );
    assert_rate("caught", m.caught, m.cheater_jobs, cell.q * cell.f, seed);
    assert_eq!(m.false_accusations, 0, "seed {seed}");
    // Honest overhead 1 + (re-runs / jobs): checks ~ Binomial(20,000, 0.1), one re-run each.
    assert_rate(
        "honest reruns",
        m.honest_reruns,
        m.honest_jobs,
        cell.q,
        seed,
    );
    let overhead = 1.0 + m.honest_reruns as f64 / m.honest_jobs as f64;
    assert!(
        overhead <= 1.10 + 4.0 * (0.09f64 / 20_000.0).sqrt(),
        "seed {seed}: {overhead}"
    );
}
