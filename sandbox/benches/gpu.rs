//! GPU benchmark (issue 25): the same CUDA C kernel ([`gpu::BENCH_KERNEL`]) launched from a
//! WebAssembly job through `sietch_gpu`, against it launched directly through cudarc in the
//! same process, on the same context and from the same compiled module. Prints:
//!
//! - launch overhead: an almost empty kernel (1 thread), 1,000 launches; the sandbox's time per
//!   launch minus cudarc's (target ≤ 10 µs);
//! - kernels of about 1 ms and 10 ms (2^20 threads, the loop length calibrated on the direct
//!   path): time per launch through the sandbox over time per launch direct (target ≤ 1.05×),
//!   and the GPU time the sandbox bills (CUDA events) against the direct wall time;
//! - tokens/s for generation: not measured, no generation workload exists yet.
//!
//! A job's time per launch is `(T(K launches) − T(0 launches)) / K` for the same job, so
//! instantiation, kernel load, allocation and the final synchronize cancel out; the direct
//! side times K launches and one synchronize. Median of [`RUNS`] runs, interleaved.
//!
//! Run: `cargo bench -p sietch-sandbox --bench gpu`. Without a usable CUDA device it prints
//! `SKIPPED` and exits 0; with `SIETCH_REQUIRE_GPU=1` no device is an error (exit 1). Missed
//! targets are reported, not failures. `scripts/gpu-check.sh` runs it on a GPU machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use sietch_sandbox::gpu::{self, LaunchShape};
use sietch_sandbox::{JobModule, JobReport, JobSpec, Outcome, Sandbox};

/// Runs of each measurement; the median is kept.
const RUNS: usize = 7;
/// Threads of the long kernels (4,096 blocks of 256: several waves on any current GPU).
const LONG_N: u32 = 1 << 20;
/// Launches per run for the overhead measurement (under the sandbox's 1,024 pending timings,
/// so no forced synchronize falls inside a run).
const SHORT_LAUNCHES: u32 = 1_000;

fn shape(n: u32) -> LaunchShape {
    LaunchShape {
        grid: [n.div_ceil(256), 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Bench {
    sb: Sandbox,
    module: JobModule,
    spec: JobSpec,
}

impl Bench {
    /// One job of `launches` launches; its wall time (as the caller sees it) and report.
    fn job(&self, launches: u32, iters: i32, n: u32) -> (f64, JobReport) {
        let mut spec = self.spec.clone();
        spec.args = vec![launches.to_string(), iters.to_string(), n.to_string()];
        let t = Instant::now();
        let r = self.sb.run(&self.module, &spec).unwrap();
        let ns = t.elapsed().as_secs_f64() * 1e9;
        assert_eq!(
            r.outcome,
            Outcome::Exited { code: 0 },
            "the benchmark job failed: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        (ns, r)
    }

    fn direct_ns(&self, launches: u32, iters: i32, n: u32) -> f64 {
        gpu::direct_launches(shape(n), n, iters, launches)
            .unwrap()
            .as_secs_f64()
            * 1e9
    }

    /// Median ns per launch: (direct, through the sandbox, GPU time billed by the sandbox).
    fn per_launch(&self, launches: u32, iters: i32, n: u32) -> (f64, f64, f64) {
        let (mut direct, mut sandboxed, mut billed) = (Vec::new(), Vec::new(), Vec::new());
        let k = f64::from(launches);
        for _ in 0..RUNS {
            direct.push(self.direct_ns(launches, iters, n) / k);
            let (full, report) = self.job(launches, iters, n);
            let (empty, _) = self.job(0, iters, n);
            sandboxed.push((full - empty) / k);
            billed.push(report.gpu_time_ns as f64 / k);
        }
        (median(direct), median(sandboxed), median(billed))
    }
}

fn us(ns: f64) -> f64 {
    ns / 1e3
}

fn main() {
    println!("== GPU: sietch_gpu (from a wasm job) vs cudarc directly, median of {RUNS} runs ==");
    // Built (or taken from the cache) first, with or without a GPU: `scripts/gpu-check.sh
    // prepare` runs this binary here to cache the guest for a GPU machine that has no clang.
    let wasm = common::c_guest("gpu_bench");
    if let Some(why) = gpu::unavailable_reason() {
        if gpu::gpu_expected() {
            eprintln!("FAILED: SIETCH_REQUIRE_GPU=1 but no CUDA device is usable: {why}");
            std::process::exit(1);
        }
        println!("SKIPPED the GPU benchmark: no CUDA device here ({why}); nothing was measured");
        println!("GPU-BENCH skipped=no-device");
        return;
    }
    let info = gpu::device_info().expect("device 0 described");
    println!(
        "device 0: {} ({} MiB, compute capability {}.{}), driver {}, NVRTC {}",
        info.model,
        info.memory_bytes >> 20,
        info.compute_capability.0,
        info.compute_capability.1,
        info.driver,
        if info.nvrtc { "found" } else { "missing" }
    );
    if !info.nvrtc {
        eprintln!("FAILED: NVRTC (libnvrtc.so) not found: the benchmark kernel is CUDA C");
        std::process::exit(1);
    }

    let sb = Sandbox::new(common::test_config()).unwrap();
    let module = sb.load(&wasm).unwrap();
    let mut spec = common::spec();
    spec.limits.fuel = 1 << 40;
    spec.limits.deadline = Duration::from_secs(60);
    spec.inputs
        .insert("kernel.cu".into(), gpu::BENCH_KERNEL.as_bytes().to_vec());
    let b = Bench { sb, module, spec };

    // Warm-up: context, NVRTC (once per source), module load, first allocations.
    let t = Instant::now();
    b.job(1, 0, 1);
    b.direct_ns(10, 0, 1);
    println!(
        "warm-up (context, NVRTC compile, module load): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Launch overhead: one thread, no loop.
    let (direct, sandboxed, billed) = b.per_launch(SHORT_LAUNCHES, 0, 1);
    let overhead = sandboxed - direct;
    println!(
        "empty kernel x{SHORT_LAUNCHES}: direct {:.2} us/launch | sietch_gpu {:.2} us/launch | overhead {:.2} us (target <= 10 us: {}) | billed GPU time {:.2} us/launch",
        us(direct),
        us(sandboxed),
        us(overhead),
        if overhead <= 10_000.0 {
            "met"
        } else {
            "MISSED"
        },
        us(billed)
    );
    println!(
        "GPU-BENCH kernel=empty launches={SHORT_LAUNCHES} direct_us={:.3} sandbox_us={:.3} overhead_us={:.3} billed_us={:.3}",
        us(direct),
        us(sandboxed),
        us(overhead),
        us(billed)
    );

    // Calibrate the loop length on the direct path to about 1 ms per launch.
    let mut iters: i32 = 256;
    let mut t_ns = b.direct_ns(3, iters, LONG_N) / 3.0;
    while t_ns < 1e6 && iters < (1 << 26) {
        iters *= 2;
        t_ns = b.direct_ns(3, iters, LONG_N) / 3.0;
    }
    let one_ms = ((f64::from(iters) * 1.05e6 / t_ns).ceil() as i32).max(1);
    for (label, it, launches) in [("1ms", one_ms, 50), ("10ms", one_ms * 10, 10)] {
        let (direct, sandboxed, billed) = b.per_launch(launches, it, LONG_N);
        let ratio = sandboxed / direct;
        println!(
            "kernel ~{label} (2^20 threads, {it} iterations) x{launches}: direct {:.3} ms/launch | sietch_gpu {:.3} ms/launch | {ratio:.3}x (target <= 1.05x: {}) | billed GPU time {:.3} ms/launch ({:.3}x direct)",
            direct / 1e6,
            sandboxed / 1e6,
            if ratio <= 1.05 { "met" } else { "MISSED" },
            billed / 1e6,
            billed / direct
        );
        println!(
            "GPU-BENCH kernel={label} iters={it} launches={launches} direct_ms={:.4} sandbox_ms={:.4} ratio={ratio:.4} billed_ms={:.4}",
            direct / 1e6,
            sandboxed / 1e6,
            billed / 1e6
        );
    }
    println!(
        "tokens/s for generation: not measured; no generation workload exists in the tree yet"
    );
}
