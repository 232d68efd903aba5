//! The whole market's speed on loopback: `cargo bench -p sietch-node --bench market`.
//!
//! A real anvil (a block a second), the escrow, three provider nodes and a buyer node (the
//! devnet's, in one process: real libp2p on loopback, real sandboxes, real redb stores on
//! disk). After a warm-up at full concurrency (`MARKET_WARMUP_SECS`, default 20) that opens
//! the channels:
//!
//! - **latency:** `MARKET_LATENCY_JOBS` (default 300) trivial jobs one after another, each
//!   from submission to its verified, paid result (`Buyer::submit`; 10% sampled, so some
//!   include a re-run elsewhere); p50, p90, p99. Baseline, same run: one request-response
//!   round trip between the buyer and a provider (a blob request the provider cannot
//!   answer), so the ratio says how many round trips a job costs.
//! - **throughput:** `MARKET_CONCURRENCY` (default 64) submitters for `MARKET_SECS`
//!   (default 10) seconds; jobs per second. Baseline, same run: the same trivial job run
//!   back to back in one sandbox on this machine (the work alone).
//! - **gas:** everything the chain spent (all blocks' gas) from the end of the warm-up to
//!   the providers' final claims, divided by the jobs run in that time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "shared/measure.rs"]
mod measure;
use measure::num;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use sietch_market::*;
use sietch_node::net::BlobRequest;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};

/// The node binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exits 0 at once: the smallest job.
const TRIVIAL: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

/// The trivial job: no input to transfer (the module is cached everywhere after the
/// warm-up), so each job is its messages, signatures, records and run.
fn spec(module: &[u8]) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 16,
            wall_time_ms: 5_000,
            output_bytes: 1 << 12,
        },
        requirements: Requirements {
            min_cpu_cores: 1,
            ..Requirements::default()
        },
        verification: VerificationPolicy::default(),
        price_cap: E18 / 100,
        deadline: now() + 3600,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let latency_jobs = num("MARKET_LATENCY_JOBS", 300) as usize;
    let concurrency = num("MARKET_CONCURRENCY", 64) as usize;
    let secs = num("MARKET_SECS", 10);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let mut cfg = DevnetConfig::new(3, dir.path());
        cfg.tweak = |name, c| {
            if name == "buyer" {
                c.max_lanes = 64;
            } else {
                c.max_concurrent_jobs = 64;
                // Claims on the way out (and when owed passes the threshold).
                c.claim_every_secs = 3600;
            }
        };
        let mut net = Devnet::start(cfg).await?;
        // `MARKET_TRACE=1`: every refusal, retry, warning and channel opened on stderr, as it
        // happens, with the time since start.
        let (_, drained) = tokio::sync::mpsc::channel(1);
        let mut events = std::mem::replace(&mut net.events, drained);
        let trace = std::env::var_os("MARKET_TRACE").is_some();
        let t0 = std::time::Instant::now();
        tokio::spawn(async move {
            use sietch_node::events::NodeEvent as E;
            while let Some((who, e)) = events.recv().await {
                if trace
                    && matches!(
                        e,
                        E::Refused { .. }
                            | E::Retrying { .. }
                            | E::Warning { .. }
                            | E::ChannelOpened { .. }
                    )
                {
                    eprintln!("[{:>6.1} s] {who}: {e}", t0.elapsed().as_secs_f64());
                }
            }
        });
        let buyer = net.buyer.buyer.clone();
        let module = wat::parse_str(TRIVIAL)?;
        net.buyer.store.blobs().put(&module)?;
        println!(
            "market bench: 3 providers, 1 buyer, in one process on loopback; anvil {}",
            net.anvil.endpoint()
        );

        // Baselines.
        let sandbox = sietch_sandbox::Sandbox::new(sietch_sandbox::SandboxConfig::default())?;
        let loaded = sandbox.load(&module)?;
        let job = sietch_node::jobs::sandbox_job(
            &spec(&module),
            &B256::ZERO,
            Vec::new(),
            Default::default(),
        );
        let t = Instant::now();
        let mut runs = 0u64;
        while t.elapsed() < Duration::from_secs(1) {
            sandbox.run(&loaded, &job)?;
            runs += 1;
        }
        let sandbox_rate = runs as f64 / t.elapsed().as_secs_f64();
        let provider_peer = net.providers[0].net.peer_id();
        let mut rtts = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let _ = buyer_net(&net)
                .blob_chunk(
                    provider_peer,
                    BlobRequest {
                        hash: B256::repeat_byte(9),
                        offset: 0,
                        max_len: 1,
                    },
                )
                .await;
            rtts.push(t.elapsed());
        }
        let rtt = quantile(&mut rtts, 0.5);
        eprintln!("baselines: sandbox {sandbox_rate:.0} runs/s, round trip {}", ms(rtt));

        // Warm-up at full concurrency for `MARKET_WARMUP_SECS` (default 20): lanes open
        // (a channel open waits for its blocks; the buyer opens them one at a time, as jobs
        // find every lane busy) and modules are compiled everywhere.
        let counter = Arc::new(AtomicU64::new(0));
        let warm_until = Instant::now() + Duration::from_secs(num("MARKET_WARMUP_SECS", 20));
        let warm: Vec<_> = (0..concurrency)
            .map(|_| {
                let (b, counter) = (buyer.clone(), counter.clone());
                let module = module.clone();
                tokio::spawn(async move {
                    while Instant::now() < warm_until {
                        counter.fetch_add(1, Ordering::Relaxed);
                        b.submit(spec(&module)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for w in warm {
            w.await??;
        }
        eprintln!(
            "[{:>6.1} s] warm-up done: {} channels",
            t0.elapsed().as_secs_f64(),
            net.buyer.buyer.channels().len()
        );
        let head0 = net.deployer.get_block_number().await?;
        let jobs_before = counter.load(Ordering::Relaxed);

        // Latency.
        let mut lat = Vec::with_capacity(latency_jobs);
        let mut checked = 0;
        for _ in 0..latency_jobs {
            counter.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            let done = buyer.submit(spec(&module)).await?;
            lat.push(t.elapsed());
            checked += usize::from(done.check.is_some());
        }
        let (p50, p90, p99) = (
            quantile(&mut lat, 0.5),
            quantile(&mut lat, 0.9),
            quantile(&mut lat, 0.99),
        );

        eprintln!("[{:>6.1} s] latency done: p50 {}", t0.elapsed().as_secs_f64(), ms(p50));
        // Throughput.
        let done = Arc::new(AtomicU64::new(0));
        let in_window = Arc::new(AtomicU64::new(0));
        let slowest = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stores: Vec<_> = std::iter::once(&net.buyer)
            .chain(&net.providers)
            .map(|n| n.store.clone())
            .collect();
        let commits0: Vec<_> = stores.iter().map(|s| s.group_commits()).collect();
        let stop_at = Instant::now() + Duration::from_secs(secs);
        let t = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let b = buyer.clone();
                let (counter, done, failed) = (counter.clone(), done.clone(), failed.clone());
                let (in_window, slowest) = (in_window.clone(), slowest.clone());
                let module = module.clone();
                tokio::spawn(async move {
                    while Instant::now() < stop_at {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let t = Instant::now();
                        match b.submit(spec(&module)).await {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        slowest.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                        if Instant::now() < stop_at {
                            in_window.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await?;
        }
        let elapsed = t.elapsed();
        // Group commit: job writes per transaction, the buyer's and the providers' together.
        let per_commit = |from: usize, to: usize| {
            let (mut w, mut tx) = (0, 0);
            for (s, c0) in stores[from..to].iter().zip(&commits0[from..to]) {
                let c = s.group_commits();
                w += c.writes - c0.writes;
                tx += c.transactions - c0.transactions;
            }
            w as f64 / tx.max(1) as f64
        };
        let (buyer_batch, provider_batch) = (per_commit(0, 1), per_commit(1, stores.len()));
        // Jobs paid until the last one ends (a job sampled late waits for its re-runs)...
        let throughput = done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
        // ... and within the window alone: the steady state.
        let window_rate = in_window.load(Ordering::Relaxed) as f64 / secs as f64;
        let jobs_in_window = counter.load(Ordering::Relaxed) - jobs_before;
        eprintln!(
            "throughput done: {throughput:.0} jobs/s to the last job's end, {window_rate:.0} within the window"
        );

        // Gas: stop the providers (they claim on the way out), then sum the chain's gas.
        let chain = net.buyer.chain.clone().unwrap();
        net.buyer.buyer.opens_settled(Duration::from_secs(30)).await;
        let channels = net.buyer.buyer.channels();
        let Devnet {
            providers,
            buyer: buyer_node,
            deployer,
            anvil,
            ..
        } = net;
        buyer_node.shutdown().await;
        for p in providers {
            p.shutdown().await;
        }
        // Wait for the claims to be mined.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut claimed_all = true;
        for (id, _, cumulative, _) in &channels {
            claimed_all &= U256::from(chain.channel(*id).await?.paid) == *cumulative;
        }
        let head1 = deployer.get_block_number().await?;
        let mut gas = 0;
        for b in head0 + 1..=head1 {
            if let Ok(Some(block)) = deployer
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Number(b))
                .await
            {
                gas += block.header.gas_used;
            }
        }
        drop(anvil);

        println!("| measure | figure | target | baseline (same run) | ratio |");
        println!("| --- | ---: | --- | ---: | ---: |");
        println!(
            "| submit → verified, paid result, trivial job, warm channels ({latency_jobs} jobs, {checked} sampled) | p50 {} / p90 {} / p99 {} | p50 ≤ 20 ms, p99 ≤ 100 ms | one request round trip {} | p50 = {:.1} round trips |",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(rtt),
            p50.as_secs_f64() / rtt.as_secs_f64()
        );
        println!(
            "| throughput, one buyer → 3 providers, {concurrency} in flight, {secs} s | {window_rate:.0} jobs/s paid within the window; {throughput:.0} jobs/s to the end of the last job ({:.1} s after the window; slowest job {} ms; {} failed; job writes per store commit: buyer {buyer_batch:.1}, providers {provider_batch:.1}) | ≥ 1,000 jobs/s | the job alone in one sandbox {sandbox_rate:.0} runs/s | {:.3} of it |",
            (elapsed.as_secs_f64() - secs as f64).max(0.0),
            slowest.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            window_rate / sandbox_rate
        );
        println!(
            "| gas per job over {jobs_in_window} jobs (opens, top-ups, claims; all blocks) | {:.0} gas/job ({gas} in all; every voucher claimed: {claimed_all}) | ≤ 1,000 | one ERC-20 transfer ≈ 41,000–63,000 | {:.4} transfers/job |",
            gas as f64 / jobs_in_window.max(1) as f64,
            gas as f64 / jobs_in_window.max(1) as f64 / 52_000.0
        );
        Ok(())
    })
}

fn buyer_net(net: &Devnet) -> sietch_node::net::Network {
    net.buyer.net.clone()
}
