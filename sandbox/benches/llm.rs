//! The language model on the market (issue 21, docs/benchmarks.md "Language model"): each
//! figure with a ratio against a baseline measured in the same run.
//!
//! 1. Tokens/s of the inference guest (`guests/llm`) in the sandbox against the same C built
//!    natively (`llm-native`, goal ≥ 0.8×), prefill and generation apart: a 50-token raw
//!    prompt with `max_tokens` 1 (prefill) and 65 (prefill and 64 forward passes), less a
//!    run that only loads the model (an empty batch). The host-kernel build `llm.wasm` (the
//!    market's) and the pure-wasm `llm-guest-kernels.wasm` (before the host kernels); wall
//!    time around the whole run (process or `Sandbox::run`), median over repetitions.
//! 2. Peak host memory (RSS) of 1, 4 and 8 concurrent generation jobs of `llm.wasm` on one
//!    `Sandbox` sharing one `Arc<[u8]>` model, against the same jobs each given a copy.
//! 3. Fuel and cost per 1,000 tokens at the node's default price (1,000 base units per 10^9
//!    fuel), costed with `sietch_market::settlement::cost` as the market bills.
//!
//! `cargo bench -p sietch-sandbox --bench llm` (a few minutes on 2 cores).
//! `SIETCH_LLM_REPS` sets the repetitions of part 1 (default 5); `SIETCH_LLM_PARTS` a subset
//! of the parts (for example `1,3`), or `profile`: one run of `llm.wasm` alone, through the
//! on-disk module cache so that `perf record` / `perf report` name the guest's functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

#[path = "../tests/common/llm.rs"]
mod llm_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use llm_support::{Builds, builds, completions, model_path};
use sietch_sandbox::{JobModule, JobSpec, Limits, Outcome, Sandbox, SandboxConfig};

/// The node's default price per 10^9 fuel (`node/src/config.rs`, `price_per_gfuel`).
const DEFAULT_PRICE_PER_GFUEL: u128 = 1_000;
const FUEL: u64 = 2_000_000_000_000;
/// Forward passes after the prefill in the long run (`max_tokens` 65: the first token comes
/// from the prefill's logits, each of the other 64 from one more pass).
const GEN_PASSES: u32 = 64;

fn prompt_text() -> String {
    ["The quick brown fox jumps over the lazy dog."; 5].join(" ")
}

fn request(max_tokens: u32) -> String {
    format!(
        "{{\"prompt\":\"{}\",\"raw\":true,\"max_tokens\":{max_tokens}}}\n",
        prompt_text()
    )
}

fn field(jsonl: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    jsonl
        .lines()
        .map(|l| {
            let at = l.find(&pat).unwrap() + pat.len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap()
        })
        .sum()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::MAX, f64::min);
    let hi = v.iter().copied().fold(f64::MIN, f64::max);
    (lo, hi)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Wall seconds of one run and what it gave.
struct Run {
    secs: f64,
    /// CPU seconds of the run (the child process, or this thread for the sandbox): less
    /// sensitive than wall time to other work on the machine.
    cpu: f64,
    fuel: u64,
    out: String,
    /// The native build's own rates (prefill, generation), from its stderr.
    native_rates: Option<(f64, f64)>,
}

/// The three runs of one repetition: load only, prefill, prefill and generation.
struct Rep {
    load: Run,
    prefill: Run,
    both: Run,
}

impl Rep {
    fn prompt_tokens(&self) -> u64 {
        field(&self.prefill.out, "prompt_tokens")
    }
    fn prefill_rate(&self) -> f64 {
        self.prompt_tokens() as f64 / (self.prefill.secs - self.load.secs)
    }
    fn gen_rate(&self) -> f64 {
        f64::from(GEN_PASSES) / (self.both.secs - self.prefill.secs)
    }
    fn prefill_rate_cpu(&self) -> f64 {
        self.prompt_tokens() as f64 / (self.prefill.cpu - self.load.cpu)
    }
    fn gen_rate_cpu(&self) -> f64 {
        f64::from(GEN_PASSES) / (self.both.cpu - self.prefill.cpu)
    }
}

/// CPU seconds of this process's waited-for children (`/proc/self/stat` cutime + cstime, in
/// clock ticks of 10 ms).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which ends at the last ')'): state is field 3, cutime 16.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = rest[13].parse::<f64>().unwrap() + rest[14].parse::<f64>().unwrap();
    ticks / 100.0
}

/// CPU seconds of this thread (`/proc/thread-self/schedstat`, in nanoseconds).
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

fn native_rates(stderr: &str) -> Option<(f64, f64)> {
    // "llm: prefill 50 tokens in 1.086 s (46.0 tokens/s), generation 65 tokens in ... (34.8 tokens/s)"
    let rates: Vec<f64> = stderr
        .split('(')
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    (rates.len() == 2).then(|| (rates[0], rates[1]))
}

fn run_native(b: &Builds, prompts: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (p, o) = (dir.path().join("p.jsonl"), dir.path().join("o.jsonl"));
    std::fs::write(&p, prompts).unwrap();
    let cpu = children_cpu();
    let t = Instant::now();
    let out = Command::new(b.native())
        .arg(model_path())
        .arg(&p)
        .arg(&o)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu;
    assert!(out.status.success(), "llm-native failed");
    Run {
        secs,
        cpu,
        fuel: 0,
        out: std::fs::read_to_string(&o).unwrap_or_default(),
        native_rates: native_rates(&String::from_utf8_lossy(&out.stderr)),
    }
}

fn spec(model: &Arc<[u8]>, prompts: &str, fuel: u64) -> JobSpec {
    let mut s = JobSpec {
        job_id: [21; 32],
        limits: Limits {
            fuel,
            memory_bytes: 400 << 20,
            deadline: Duration::from_secs(900),
            ..Limits::default()
        },
        ..JobSpec::default()
    };
    s.inputs.insert("model.gguf".into(), Arc::clone(model));
    s.inputs
        .insert("prompts.jsonl".into(), prompts.as_bytes().to_vec());
    s
}

fn run_sandboxed(sb: &Sandbox, m: &JobModule, model: &Arc<[u8]>, prompts: &str) -> Run {
    let spec = spec(model, prompts, FUEL);
    let cpu = thread_cpu();
    let t = Instant::now();
    let r = sb.run(m, &spec).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu;
    assert_eq!(
        r.outcome,
        Outcome::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    Run {
        secs,
        cpu,
        fuel: r.fuel_used,
        out: completions(&r),
        native_rates: None,
    }
}

fn rep(run: &dyn Fn(&str) -> Run) -> Rep {
    Rep {
        load: run("\n"),
        prefill: run(&request(1)),
        both: run(&request(GEN_PASSES + 1)),
    }
}

struct Summary {
    prefill: f64,
    generation: f64,
    prefill_cpu: f64,
    generation_cpu: f64,
}

fn summarize(name: &str, reps: &[Rep]) -> Summary {
    let p: Vec<f64> = reps.iter().map(Rep::prefill_rate).collect();
    let g: Vec<f64> = reps.iter().map(Rep::gen_rate).collect();
    let loads: Vec<f64> = reps.iter().map(|r| r.load.secs).collect();
    let pc: Vec<f64> = reps.iter().map(Rep::prefill_rate_cpu).collect();
    let gc: Vec<f64> = reps.iter().map(Rep::gen_rate_cpu).collect();
    let (plo, phi) = range(&p);
    let (glo, ghi) = range(&g);
    println!(
        "{name:<36} load {:>6.3} s  prefill {:>6.1} tok/s [{plo:.1}-{phi:.1}]  generation {:>6.1} \
         tok/s [{glo:.1}-{ghi:.1}]",
        median(&loads),
        median(&p),
        median(&g)
    );
    println!(
        "{:<36} by CPU time: prefill {:>6.1} tok/s, generation {:>6.1} tok/s",
        "",
        median(&pc),
        median(&gc)
    );
    Summary {
        prefill: median(&p),
        generation: median(&g),
        prefill_cpu: median(&pc),
        generation_cpu: median(&gc),
    }
}

fn sandbox(jobs: u32) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_memory_bytes: 512 << 20,
        max_concurrent_jobs: jobs,
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// Part 1 (and the runs part 3 costs): returns the host-kernel build's repetitions and the
/// pure-wasm build's.
fn speed(b: &Builds, model: &Arc<[u8]>, reps: usize) -> (Vec<Rep>, Vec<Rep>) {
    println!("\n## 1. Tokens/s, sandbox against native ({reps} repetitions, median [range])");
    let sb = sandbox(2);
    let host = sb.load(&b.host_kernels_wasm()).unwrap();
    let guest = sb.load(&b.guest_kernels_wasm()).unwrap();
    let (mut native, mut hk, mut gk) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        // Interleaved, so that a change of the machine's load touches every variant alike.
        native.push(rep(&|p| run_native(b, p)));
        hk.push(rep(&|p| run_sandboxed(&sb, &host, model, p)));
        gk.push(rep(&|p| run_sandboxed(&sb, &guest, model, p)));
        println!(
            "  repetition {} done, load average {}",
            i + 1,
            load_average()
        );
    }
    // Same bytes everywhere (tests/llm.rs checks it too; a benchmark of wrong output is void).
    for r in hk.iter().chain(&gk) {
        assert_eq!(r.both.out, native[0].both.out, "sandboxed output differs");
    }
    let tokens = native[0].prompt_tokens();
    println!(
        "prompt {tokens} tokens (raw), generation {GEN_PASSES} forward passes; load average {}",
        load_average()
    );
    let n = summarize("native llm-native (C, kernels_ref.c)", &native);
    let own: Vec<(f64, f64)> = native.iter().filter_map(|r| r.both.native_rates).collect();
    if !own.is_empty() {
        println!(
            "{:<36} (its own stderr timing, without load: prefill {:.1} tok/s, generation {:.1} \
             tok/s)",
            "",
            median(&own.iter().map(|r| r.0).collect::<Vec<_>>()),
            median(&own.iter().map(|r| r.1).collect::<Vec<_>>())
        );
    }
    let h = summarize("sandbox llm.wasm (host kernels)", &hk);
    let g = summarize("sandbox llm-guest-kernels.wasm", &gk);
    println!(
        "ratio to native: host kernels prefill {:.2}x generation {:.2}x (goal >= 0.8x); pure wasm \
         (before) prefill {:.2}x generation {:.2}x",
        h.prefill / n.prefill,
        h.generation / n.generation,
        g.prefill / n.prefill,
        g.generation / n.generation
    );
    println!(
        "ratio to native by CPU time: host kernels prefill {:.2}x generation {:.2}x; pure wasm \
         prefill {:.2}x generation {:.2}x",
        h.prefill_cpu / n.prefill_cpu,
        h.generation_cpu / n.generation_cpu,
        g.prefill_cpu / n.prefill_cpu,
        g.generation_cpu / n.generation_cpu
    );
    (hk, gk)
}

/// This process's resident set (VmRSS) and its peak (VmHWM), in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false where that is refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// Peak RSS growth of `jobs` concurrent generation jobs; `copies`: each job gets its own copy
/// of the model (made inside the measurement, as a runner that copies inputs per job would).
fn concurrent(sb: &Sandbox, m: &JobModule, model: &Arc<[u8]>, jobs: usize, copies: bool) -> u64 {
    let prompts = request(8);
    // Let freed memory go back first, then start the measurement from here.
    std::thread::sleep(Duration::from_millis(200));
    let peak_reset = reset_peak();
    let (base, _) = rss();
    let stop = AtomicBool::new(false);
    let sampled = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss().0);
                std::thread::sleep(Duration::from_millis(2));
            }
            max.max(rss().0)
        });
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                let prompts = &prompts;
                s.spawn(move || {
                    let own: Arc<[u8]> = if copies {
                        // One copy, straight into the Arc (`to_vec` then `Arc::from` would
                        // briefly hold two).
                        Arc::from(&model[..])
                    } else {
                        Arc::clone(model)
                    };
                    let r = sb.run(m, &spec(&own, prompts, FUEL)).unwrap();
                    assert_eq!(r.outcome, Outcome::Exited { code: 0 });
                    assert_eq!(field(&completions(&r), "completion_tokens"), 8);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let (_, hwm) = rss();
    let peak = if peak_reset {
        hwm.max(sampled)
    } else {
        sampled
    };
    peak.saturating_sub(base)
}

fn memory(b: &Builds, model_file: &[u8]) {
    println!(
        "\n## 2. Host memory of concurrent generation jobs (llm.wasm, 50-token prompt, 8 tokens)"
    );
    let before_model = rss().0;
    let model: Arc<[u8]> = Arc::from(model_file.to_vec());
    let with_model = rss().0;
    println!(
        "model {:.1} MiB; RSS before the model {:.1} MiB, with one copy held {:.1} MiB (+{:.1}); \
         peak reset via clear_refs: {}",
        mib(model.len() as u64),
        mib(before_model),
        mib(with_model),
        mib(with_model.saturating_sub(before_model)),
        reset_peak()
    );
    let sb = sandbox(8);
    let m = sb.load(&b.host_kernels_wasm()).unwrap();
    // One warm-up job: the engine's one-time allocations are not a job's.
    concurrent(&sb, &m, &model, 1, false);
    println!(
        "{:>4} {:>18} {:>14} {:>18} {:>16}",
        "jobs", "shared: peak +MiB", "per job MiB", "copies: peak +MiB", "copies / shared"
    );
    for jobs in [1, 4, 8] {
        let shared = concurrent(&sb, &m, &model, jobs, false);
        let copied = concurrent(&sb, &m, &model, jobs, true);
        println!(
            "{jobs:>4} {:>18.1} {:>14.1} {:>18.1} {:>15.2}x   (load average {})",
            mib(shared),
            mib(shared) / jobs as f64,
            mib(copied),
            copied as f64 / shared.max(1) as f64,
            load_average()
        );
    }
    println!(
        "(growth over the RSS with the model held once: the shared jobs' total is the model's \
         {:.1} MiB plus that growth)",
        mib(model.len() as u64)
    );
}

fn cost(fuel: u64) -> u128 {
    sietch_market::settlement::cost(fuel, 0, DEFAULT_PRICE_PER_GFUEL, 0)
}

/// Fuel per 1,000 prompt tokens, per 1,000 generated tokens, and the long job's fuel.
fn fuel_per_1k(r: &Rep) -> (f64, f64, u64) {
    let per_prompt = (r.prefill.fuel - r.load.fuel) as f64 / r.prompt_tokens() as f64;
    let per_gen = (r.both.fuel - r.prefill.fuel) as f64 / f64::from(GEN_PASSES);
    (per_prompt * 1000.0, per_gen * 1000.0, r.both.fuel)
}

fn fuel_and_cost(name: &str, r: &Rep) -> (f64, f64) {
    let (prompt_1k, gen_1k, job) = fuel_per_1k(r);
    let tokens = r.prompt_tokens() + field(&r.both.out, "completion_tokens");
    println!(
        "{name:<36} load {:.3e} fuel | 1k prompt tokens {:.3e} fuel = {} units | 1k generated \
         tokens {:.3e} fuel = {} units | the {tokens}-token job {:.3e} fuel = {} units = {} units \
         per 1k tokens",
        r.load.fuel as f64,
        prompt_1k,
        cost(prompt_1k as u64),
        gen_1k,
        cost(gen_1k as u64),
        job as f64,
        cost(job),
        cost(job) * 1000 / u128::from(tokens)
    );
    (prompt_1k, gen_1k)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let reps: usize = std::env::var("SIETCH_LLM_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let parts = std::env::var("SIETCH_LLM_PARTS").unwrap_or_else(|_| "1,2,3".into());
    println!(
        "language model benchmarks (issue 21); {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let b = builds();
    let model_file = std::fs::read(model_path()).unwrap();
    if parts == "profile" {
        // One long run of the host-kernel build alone, for a profiler (`perf record`).
        let model: Arc<[u8]> = Arc::from(model_file);
        // Through the on-disk module cache: a module read back from it is a mapped ELF file
        // with symbols, which perf attributes guest functions to.
        // (kept in target/tmp/llm-profile-cache for `perf report`).
        let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("llm-profile-cache");
        let config = SandboxConfig {
            max_memory_bytes: 512 << 20,
            max_concurrent_jobs: 1,
            cache_dir: Some(cache),
            ..SandboxConfig::default()
        };
        let wasm = b.host_kernels_wasm();
        Sandbox::new(config.clone()).unwrap().load(&wasm).unwrap();
        let sb = Sandbox::new(config).unwrap();
        let m = sb.load(&wasm).unwrap();
        let r = run_sandboxed(&sb, &m, &model, &request(GEN_PASSES + 1));
        println!("llm.wasm, 50 + 65 tokens: {:.2} s", r.secs);
        return;
    }
    let model: Arc<[u8]> = Arc::from(model_file.clone());
    let speed_runs = (parts.contains('1') || parts.contains('3')).then(|| {
        let reps = if parts.contains('1') { reps } else { 1 };
        speed(&b, &model, reps)
    });
    drop(model);
    if parts.contains('2') {
        memory(&b, &model_file);
    }
    if let (true, Some((hk, gk))) = (parts.contains('3'), speed_runs) {
        println!(
            "\n## 3. Fuel and cost at the node's default price ({DEFAULT_PRICE_PER_GFUEL} base units \
             per 10^9 fuel, settlement::cost)"
        );
        // Fuel is deterministic: any repetition gives the same (checked here).
        assert!(hk.iter().all(|r| r.both.fuel == hk[0].both.fuel));
        let (hp, hg) = fuel_and_cost("llm.wasm (host kernels)", &hk[0]);
        let (gp, gg) = fuel_and_cost("llm-guest-kernels.wasm (pure wasm)", &gk[0]);
        println!(
            "host kernels against pure wasm: {:.1}x less fuel per prompt token, {:.1}x less per \
             generated token",
            gp / hp,
            gg / hg
        );
    }
}
