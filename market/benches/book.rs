//! Order book benchmarks: matching against 100,000 offers, and offer ingest.
//!
//! Run: `cargo bench -p sietch-market --bench book`. Besides criterion's own report, it
//! prints ratios against baselines measured in the same run (a naive scan for matching;
//! decoding alone for ingest), since absolute times vary between machines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sietch_market::*;

const NOW: u64 = 1_700_000_000;
const GIB: u64 = 1 << 30;
const SEED: u64 = 7;
const MODELS: [&str; 4] = [
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA GeForce RTX 4090",
    "NVIDIA L4",
];

fn random_offer(rng: &mut ChaCha8Rng, key: &SigningKey) -> Offer {
    let gpus = (0..rng.gen_range(0..3))
        .map(|_| {
            let m = rng.gen_range(0..MODELS.len());
            Gpu {
                model: MODELS[m].into(),
                memory_bytes: [80, 40, 24, 24][m] * GIB,
                compute_capability: ComputeCapability::new([9, 8, 8, 8][m], [0, 0, 9, 9][m]),
                driver: "550.54.15".into(),
            }
        })
        .collect();
    Offer {
        provider: PublicKey::of(key),
        evm_address: Address::from(rng.r#gen::<[u8; 20]>()),
        hardware: Hardware {
            cpu_cores: rng.gen_range(1..64),
            memory_bytes: rng.gen_range(1..256) * GIB,
            gpus,
        },
        features: ["simd", "gpu", "nvrtc"]
            .iter()
            .filter(|_| rng.gen_bool(0.5))
            .map(|s| (*s).to_owned())
            .collect(),
        prices: Prices {
            per_gfuel: rng.gen_range(100..10_000),
            per_gpu_second: rng.gen_range(10..1_000),
        },
        stake: rng.gen_range(0..10_000_000),
        addresses: vec!["/ip4/127.0.0.1/udp/4001/quic-v1".into()],
        sequence: 1,
        expires_at: NOW + rng.gen_range(60..3_600),
        max_input_bytes: 0,
        cached_blobs: vec![],
    }
}

fn keys(n: usize, rng: &mut ChaCha8Rng) -> Vec<SigningKey> {
    (0..n)
        .map(|_| SigningKey::from_bytes(&rng.r#gen()))
        .collect()
}

fn job(gpu: bool) -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(1),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 2_000_000_000,
            memory_bytes: 8 * GIB,
            wall_time_ms: 60_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements {
            min_cpu_cores: 4,
            features: vec!["simd".into()],
            gpu: gpu.then(|| GpuNeeds {
                count: 1,
                models: vec!["H100".into(), "A100".into()],
                min_memory_bytes: 40 * GIB,
                min_compute_capability: ComputeCapability::new(8, 0),
            }),
        },
        verification: VerificationPolicy::default(),
        price_cap: 50_000,
        deadline: NOW + 3_600,
    }
}

/// The naive baseline: filter every full offer, sort all matches.
fn naive_find(offers: &[Offer], spec: &JobSpec) -> Vec<PublicKey> {
    let need = min_stake_for(spec.price_cap, spec.verification.sampling_ppm).unwrap_or(u128::MAX);
    let mut m: Vec<(u128, PublicKey)> = offers
        .iter()
        .filter(|o| o.expires_at > NOW)
        .filter(|o| {
            spec.requirements.gpu.as_ref().is_none_or(|g| {
                o.hardware.gpus.iter().any(|x| {
                    x.memory_bytes >= g.min_memory_bytes
                        && x.compute_capability >= g.min_compute_capability
                        && g.models.iter().any(|m| x.model.contains(m.as_str()))
                })
            })
        })
        .filter(|o| o.hardware.cpu_cores >= spec.requirements.min_cpu_cores)
        .filter(|o| o.hardware.memory_bytes >= spec.limits.memory_bytes)
        .filter(|o| {
            spec.requirements
                .features
                .iter()
                .all(|f| o.features.contains(f))
        })
        .filter(|o| o.stake >= need)
        .map(|o| {
            let gpus = u128::from(spec.requirements.gpu.is_some());
            let cost = u128::from(spec.limits.fuel) * o.prices.per_gfuel / 1_000_000_000
                + u128::from(spec.limits.wall_time_ms) * gpus * o.prices.per_gpu_second / 1_000;
            (cost, o.provider)
        })
        .filter(|(c, _)| *c <= spec.price_cap)
        .collect();
    m.sort();
    m.into_iter().take(10).map(|(_, p)| p).collect()
}

fn bench_match(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let n = 100_000;
    let ks = keys(n, &mut rng);
    let offers: Vec<Offer> = ks.iter().map(|k| random_offer(&mut rng, k)).collect();
    let mut book = OrderBook::default();
    for (o, k) in offers.iter().zip(&ks) {
        // Signing 100k offers is set-up, not what is measured.
        book.insert(Signed::sign(o.clone(), k).verify().unwrap(), NOW)
            .unwrap();
    }
    let mut g = c.benchmark_group("match_100k");
    g.measurement_time(Duration::from_secs(4));
    for (name, spec) in [("cpu_job", job(false)), ("gpu_job", job(true))] {
        let found = book.find(&spec, NOW, &(), 10).map(|m| m.len()).unwrap_or(0);
        println!("match_100k/{name}: {found} best matches returned");
        g.bench_function(format!("find_{name}"), |b| {
            b.iter(|| black_box(book.find(black_box(&spec), NOW, &(), 10)))
        });
        g.bench_function(format!("naive_{name}"), |b| {
            b.iter(|| black_box(naive_find(black_box(&offers), &spec)))
        });
    }
    g.finish();
}

fn bench_ingest(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let n = 2_000;
    let ks = keys(n, &mut rng);
    let wire: Vec<Vec<u8>> = ks
        .iter()
        .map(|k| Signed::sign(random_offer(&mut rng, k), k).encode())
        .collect();
    let mut g = c.benchmark_group("ingest");
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            for w in &wire {
                black_box(Signed::<Offer>::decode(w).unwrap());
            }
        })
    });
    g.bench_function("decode_verify", |b| {
        b.iter(|| {
            for w in &wire {
                black_box(Signed::<Offer>::decode(w).unwrap().verify().unwrap());
            }
        })
    });
    g.bench_function("ingest", |b| {
        b.iter_batched(
            OrderBook::default,
            |mut book| {
                for w in &wire {
                    book.ingest(w, NOW).unwrap();
                }
                book
            },
            BatchSize::LargeInput,
        )
    });
    let refs: Vec<&[u8]> = wire.iter().map(Vec::as_slice).collect();
    g.bench_function("ingest_batch64", |b| {
        b.iter_batched(
            OrderBook::default,
            |mut book| {
                for chunk in refs.chunks(64) {
                    for r in book.ingest_batch(chunk, NOW) {
                        r.unwrap();
                    }
                }
                book
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Criterion's median estimate of a benchmark, in nanoseconds.
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_owned());
    let path = format!("{dir}/criterion/{group}/{id}/new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn report() {
    println!("\n== ratios against baselines measured in this run ==");
    for job in ["cpu_job", "gpu_job"] {
        if let (Some(f), Some(n)) = (
            median_ns("match_100k", &format!("find_{job}")),
            median_ns("match_100k", &format!("naive_{job}")),
        ) {
            println!(
                "match 1 {job} against 100k offers: p50 {:.3} ms (target <= 1 ms); naive scan {:.3} ms; find/naive = {:.2}",
                f / 1e6,
                n / 1e6,
                f / n
            );
        }
    }
    let per = |id: &str| median_ns("ingest", id).map(|ns| ns / 2_000.0);
    if let (Some(d), Some(v), Some(i), Some(b)) = (
        per("decode_only"),
        per("decode_verify"),
        per("ingest"),
        per("ingest_batch64"),
    ) {
        println!(
            "ingest: {:.0} offers/s one at a time (target >= 20,000), {:.0} offers/s with batch verification of 64",
            1e9 / i,
            1e9 / b
        );
        println!(
            "per offer: decode {:.2} us, +verify {:.2} us ({:.0}% of ingest), ingest {:.2} us, batch ingest {:.2} us; ingest/decode = {:.1}, batch/single = {:.2}",
            d / 1e3,
            (v - d) / 1e3,
            100.0 * (v - d) / i,
            i / 1e3,
            b / 1e3,
            i / d,
            b / i
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_match(&mut c);
    bench_ingest(&mut c);
    c.final_summary();
    report();
}
