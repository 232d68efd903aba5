//! The training benchmark of docs/benchmarks.md ("Training across providers"): the same run of
//! the digits model on whole markets of real `sietch node run` processes, one after the other
//! on this machine: one provider; three providers; three providers with 10% and with every
//! job spot-checked. Per round: held-out accuracy and loss, wall time, what the buyer's
//! channels paid so far (the shard jobs and the re-runs); per market: the fuel every provider
//! ran (shard jobs and re-runs) over the shard jobs' fuel, the verification overhead that
//! the design puts at `1 + q·k`.
//!
//! Ignored by default (minutes); run it with
//! `cargo nextest run -p sietch-system --test train_bench --run-ignored ignored-only`
//! and plot it with `python3 scripts/plot_training.py target/train-bench.json
//! docs/training-bench.svg`. Writes `$SIETCH_TRAIN_BENCH` (default `target/train-bench.json`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};
use sietch_sdk::Client;
use sietch_sdk::train::{Digits, JobLimits, MarketRunner, TrainConfig, Trainer};
use sietch_testkit::devnet::E18;
use sietch_testkit::system::*;

const ROUNDS: u32 = 10;
const SHARDS: u32 = 3;

/// What the buyer's channels have paid so far (vouchers signed), base units.
async fn paid(api: &str) -> u128 {
    let channels = get(api, "/api/v1/channels").await.unwrap();
    channels
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cumulative"].as_str().unwrap().parse::<u128>().unwrap())
        .sum()
}

/// Fuel of every job `who` ran as a provider (shard jobs and re-runs alike), and how many.
async fn provider_fuel(m: &Market) -> (u64, u64) {
    let (mut fuel, mut jobs) = (0, 0);
    for p in &m.providers {
        let list = get(&p.api, "/api/v1/jobs?side=provider&limit=10000")
            .await
            .unwrap();
        for j in list.as_array().unwrap() {
            if let Some(f) = j["fuel_used"].as_u64() {
                fuel += f;
                jobs += 1;
            }
        }
    }
    (fuel, jobs)
}

/// One market: `providers` providers, shard jobs sampled at `ppm`.
async fn market_run(data: &Digits, providers: usize, ppm: u32) -> Value {
    let mut cfg = MarketConfig::new(providers, 1);
    // One price for all, so that one and three providers cost alike; claims at the end.
    cfg.tweak = |_, c| {
        c.price_per_gfuel = 1_000_000_000;
        c.claim_threshold = u128::MAX;
        c.claim_every_secs = 3600;
    };
    let m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let client = Client::new(&format!("http://{}", buyer.api))
        .unwrap()
        .with_token(&buyer.token);
    let config = TrainConfig {
        rounds: ROUNDS,
        shards: SHARDS,
        limits: JobLimits {
            sampling_ppm: ppm,
            // A job costs at most 10^9 base units here; a cap near it keeps the job's value
            // within what a provider's stake covers at 1 ppm (stake · q / (1 − q)).
            price_cap: 10_000_000_000u64.to_string(),
            ..JobLimits::default()
        },
        max_attempts: 8,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(
        MarketRunner::new(client, sietch_guests::TRAIN.to_vec()),
        config,
        data,
    )
    .unwrap();
    let first = t.evaluate();
    let mut rounds = vec![
        json!({"round": 0, "accuracy": first.accuracy, "loss": first.loss,
        "seconds": 0.0, "paid": "0"}),
    ];
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let r = t.round(&mut |_| {}).await.unwrap();
        rounds.push(json!({
            "round": r.round, "accuracy": r.held_out.accuracy, "loss": r.held_out.loss,
            "seconds": r.millis as f64 / 1000.0, "paid": paid(&buyer.api).await.to_string(),
            "jobs": r.jobs, "resubmits": r.resubmits, "dropped": r.dropped,
        }));
    }
    let secs = started.elapsed().as_secs_f64();
    let shard_fuel: u64 = t.history().iter().map(|r| r.fuel).sum();
    let shard_jobs: u32 = t.history().iter().map(|r| r.jobs).sum();
    // Re-runs are recorded on their providers' side by the time the round's jobs are paid.
    let (all_fuel, all_jobs) = provider_fuel(&m).await;
    let q = f64::from(ppm) / 1e6;
    let out = json!({
        "providers": providers, "sampling_ppm": ppm, "rounds": rounds, "seconds": secs,
        "shard_jobs": shard_jobs, "shard_fuel": shard_fuel, "provider_jobs": all_jobs,
        "provider_fuel": all_fuel,
        "overhead": all_fuel as f64 / shard_fuel.max(1) as f64,
        "predicted_overhead": 1.0 + q,
        "weights_hash": format!("0x{}", blake3::hash(&t.weights().encode()).to_hex()),
        "paid": paid(&buyer.api).await.to_string(),
    });
    eprintln!(
        "{providers} providers, q = {q}: {secs:.1} s, overhead {:.3} (1 + q·k = {:.3}), accuracy {:.3}",
        out["overhead"].as_f64().unwrap(),
        1.0 + q,
        t.evaluate().accuracy
    );
    drop(m);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark of several minutes: docs/benchmarks.md"]
async fn bench_training_on_one_and_three_providers() {
    let Some(path) = sietch_sdk::train::digits::cached() else {
        eprintln!("skipped: no digits data set (bash scripts/digits.sh fetches it)");
        return;
    };
    let data = Digits::open(&path).unwrap();
    let mut runs = Vec::new();
    // 1 ppm: practically never sampled (a job must be worth something to some stake).
    for (providers, ppm) in [(1, 1), (3, 1), (3, 100_000), (3, 1_000_000)] {
        runs.push(market_run(&data, providers, ppm).await);
    }
    let same: Vec<&Value> = runs.iter().map(|r| &r["weights_hash"]).collect();
    assert!(
        same.windows(2).all(|w| w[0] == w[1]),
        "the markets trained different models: {same:?}"
    );
    let out = std::env::var_os("SIETCH_TRAIN_BENCH").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/train-bench.json"),
        PathBuf::from,
    );
    let doc = json!({"rounds": ROUNDS, "shards": SHARDS, "runs": runs,
        "price_per_gfuel": 1_000_000_000u64, "unit": E18.to_string()});
    std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    eprintln!("wrote {}", out.display());
}
