//! Sandbox benchmarks. Each prints a ratio against a baseline measured in the same run:
//!
//! - warm instantiate-and-run of a trivial job (target p50 ≤ 50 µs), against instantiation
//!   alone (target ≤ 10 µs);
//! - C kernels compiled natively and to wasm with fuel on (targets: wasm/native ≤ 1.5× median
//!   over kernels, ≤ 2.0× worst), and fuel against epochs alone;
//! - throughput of trivial jobs on 2 threads (target ≥ 5,000 jobs/s).
//!
//! Run: `cargo bench -p sietch-sandbox --bench sandbox`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sietch_sandbox::{JobSpec, Outcome, Sandbox, SandboxConfig};

fn config(fuel: bool) -> SandboxConfig {
    SandboxConfig {
        fuel_metering: fuel,
        ..common::test_config()
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Native build of a guest (same source, `-O2`, timing its kernel itself).
fn native(name: &str) -> PathBuf {
    let src = common::guests_dir().join(format!("{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sietch-native-{name}"));
    let ok = Command::new("clang")
        .args(["-O2", "-DNATIVE_TIMING"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "clang could not build {} natively; run scripts/setup.sh",
        src.display()
    );
    out
}

fn native_kernel_ns(bin: &Path, args: &[String], input: &Path) -> f64 {
    let out = Command::new(bin)
        .args(args)
        .current_dir(input)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("kernel_ns="))
        .unwrap_or_else(|| panic!("no kernel_ns from {}: {err}", bin.display()))
        .trim()
        .parse()
        .unwrap()
}

/// CPU time this thread has run, in ns (first field of `/proc/thread-self/schedstat`). The
/// kernels are timed in CPU time on both sides (the native one with `CLOCK_THREAD_CPUTIME_ID`),
/// so the time a job waits for a core on a shared machine is not counted; wall time is used
/// where the file is missing.
fn thread_cpu_ns() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn wasm_job_ns(sb: &Sandbox, m: &sietch_sandbox::JobModule, spec: &JobSpec) -> f64 {
    let cpu0 = thread_cpu_ns();
    let r = sb.run(m, spec).unwrap();
    let cpu = thread_cpu_ns().zip(cpu0).map(|(t1, t0)| t1 - t0);
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    cpu.unwrap_or(r.wall_time.as_secs_f64() * 1e9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (name, args with the kernel's repetitions, the same args with zero repetitions)
fn kernels() -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("matmul", s(&["128", "8"]), s(&["128", "0"])),
        ("montecarlo", s(&["4000000", "42"]), s(&["0", "42"])),
        ("hash", s(&["16"]), s(&["0"])),
    ]
}

/// Runs of each kernel measurement; the median is kept.
const RUNS: usize = 11;

fn kernel_comparison() {
    // The native hash reads ./input/data; the wasm one reads /input/data from the spec.
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(1u32 << 18))
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    std::fs::create_dir_all(dir.path().join("input")).unwrap();
    std::fs::write(dir.path().join("input/data"), &data).unwrap();

    let fuel_sb = Sandbox::new(config(true)).unwrap();
    let epoch_sb = Sandbox::new(config(false)).unwrap();
    let mut spec = common::spec();
    spec.limits.fuel = u64::MAX / 2;
    spec.limits.memory_bytes = 32 << 20;
    spec.inputs.insert("data".into(), data);

    println!(
        "\n== C kernels: native vs wasm (fuel on) vs wasm (epochs only); CPU time, median of {RUNS} =="
    );
    let mut ratios = Vec::new();
    for (name, args, zero) in kernels() {
        let wasm = common::c_guest(name);
        let bin = native(name);
        let nat = median(
            (0..RUNS)
                .map(|_| native_kernel_ns(&bin, &args, dir.path()))
                .collect(),
        );
        let job = |sb: &Sandbox| {
            let m = sb.load(&wasm).unwrap();
            let mut full = spec.clone();
            full.args = args.clone();
            let mut base = spec.clone();
            base.args = zero.clone();
            let f = median((0..RUNS).map(|_| wasm_job_ns(sb, &m, &full)).collect());
            let b = median((0..RUNS).map(|_| wasm_job_ns(sb, &m, &base)).collect());
            (f - b).max(1.0)
        };
        let with_fuel = job(&fuel_sb);
        let epochs = job(&epoch_sb);
        let ratio = with_fuel / nat;
        ratios.push(ratio);
        println!(
            "{name:<11} native {:>9.3} ms | wasm+fuel {:>9.3} ms ({ratio:.2}x native) | wasm epochs-only {:>9.3} ms (fuel costs {:.2}x epochs)",
            nat / 1e6,
            with_fuel / 1e6,
            epochs / 1e6,
            with_fuel / epochs
        );
    }
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "wasm/native: median {:.2}x (target <= 1.5x), worst {:.2}x (target <= 2.0x)",
        median(ratios),
        worst
    );
}

fn trivial_figures() {
    let sb = Sandbox::new(config(true)).unwrap();
    let m = sb.load(&common::wat("trivial")).unwrap();
    let spec = common::spec();
    for _ in 0..2000 {
        sb.run(&m, &spec).unwrap();
    }
    let sample = |f: &dyn Fn()| -> Vec<Duration> {
        (0..20_000)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect()
    };
    let run = sample(&|| {
        sb.run(&m, &spec).unwrap();
    });
    let inst = sample(&|| sb.instantiate_only(&m, &spec).unwrap());
    let (run50, run99, inst50, inst99) = (
        pct(run.clone(), 0.5),
        pct(run, 0.99),
        pct(inst.clone(), 0.5),
        pct(inst, 0.99),
    );
    println!("\n== trivial job, warm module, 20000 samples ==");
    println!(
        "instantiate+run p50 {:.1} us p99 {:.1} us (target p50 <= 50 us) | instantiate only p50 {:.1} us p99 {:.1} us (target <= 10 us) | run/instantiate {:.2}x",
        micros(run50),
        micros(run99),
        micros(inst50),
        micros(inst99),
        run50.as_secs_f64() / inst50.as_secs_f64()
    );

    // Throughput: 2 threads, as on a 2-core provider; baseline: 1 thread.
    let throughput = |threads: usize| {
        let window = Duration::from_secs(2);
        let done: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let t = Instant::now();
                        let mut n = 0;
                        while t.elapsed() < window {
                            sb.run(&m, &spec).unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        done as f64 / window.as_secs_f64()
    };
    let one = throughput(1);
    let two = throughput(2);
    println!(
        "throughput: 1 thread {one:.0} jobs/s, 2 threads {two:.0} jobs/s ({:.2}x; target >= 5000 jobs/s on 2 cores)",
        two / one
    );
}

fn criterion_benches(c: &mut Criterion) {
    trivial_figures();
    kernel_comparison();
    let sb = Sandbox::new(config(true)).unwrap();
    let m = sb.load(&common::wat("trivial")).unwrap();
    let spec = common::spec();
    let mut g = c.benchmark_group("trivial_job");
    g.bench_function("instantiate_and_run", |b| {
        b.iter(|| sb.run(&m, &spec).unwrap())
    });
    g.bench_function("instantiate_only", |b| {
        b.iter(|| sb.instantiate_only(&m, &spec).unwrap())
    });
    g.finish();
    let hello = common::wat("hello");
    c.bench_function("load_cached_module", |b| {
        b.iter(|| sb.load(&hello).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    targets = criterion_benches
}
criterion_main!(benches);
