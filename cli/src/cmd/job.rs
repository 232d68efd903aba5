//! `sietch job run --local`: runs a job exactly as a provider runs it (the same flags and
//! defaults as `job submit`, the same spec, `sietch_node::jobs::run` in a sandbox configured as
//! a provider's), so a buyer can test it and know its fuel, its output hash and its price
//! before paying.
//! The `--json` output is documented in `docs/cli-job-run.md` and stable.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use sietch_market::{B256, JobSpec};
use sietch_node::jobs;
use sietch_sandbox::{JobReport, Outcome, Sandbox, SandboxConfig};

use super::job_flags::JobFlags;

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Run a WebAssembly job (a WASI preview 1 command module) on this machine, in the
    /// same sandbox a provider uses: its fuel, output hash and price, before paying.
    Run(Box<RunArgs>),
    /// Send a job to the market through a running node and follow it to its verified,
    /// paid result (progress on stderr; stdout and `/output` files at the end).
    Submit(Box<super::job_net::SubmitArgs>),
    /// A job's state, provider, charge and outcome.
    Status(super::job_net::IdArgs),
    /// A finished job's stdout (and, with --output-dir, its `/output` files).
    Get(super::job_net::IdArgs),
    /// The jobs the node bought.
    List(super::job_net::ListArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Run on this machine, as a provider runs it (the only mode so far).
    #[arg(long, required = true)]
    local: bool,
    /// The job: the same flags and defaults as `job submit`.
    #[command(flatten)]
    job: JobFlags,
    /// Write the job's `/output` files into this directory (names checked; existing files
    /// and links kept).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// With --output-dir: replace files already there (a symbolic link is replaced, never
    /// followed).
    #[arg(long, requires = "output_dir")]
    overwrite: bool,
    /// Price in the smallest currency unit per 10^9 fuel, to show what the job would cost.
    #[arg(long, value_name = "UNITS", default_value_t = 0)]
    price_per_gfuel: u128,
    /// Job id seeding `random_get`, 64 hex digits (default: blake3 of the module).
    #[arg(long, value_name = "HEX")]
    job_id: Option<String>,
    /// Directory of the compiled-module cache (default: none, compile every time).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print one JSON object (fields in docs/cli-job-run.md) instead of text.
    #[arg(long)]
    json: bool,
    /// Show that the job is running, and for how long, on stderr even when it is not a
    /// terminal or with --json (default: only on a terminal, never with --json).
    #[arg(long)]
    progress: bool,
}

pub(crate) fn run(args: JobArgs) -> anyhow::Result<()> {
    match args.command {
        JobCommand::Run(r) => run_local(*r),
        JobCommand::Submit(a) => super::job_net::submit(*a),
        JobCommand::Status(a) => super::job_net::status(a, false),
        JobCommand::Get(a) => super::job_net::status(a, true),
        JobCommand::List(a) => super::job_net::list(a),
    }
}

/// What the job would cost: fuel × price per 10^9 fuel, rounded up (as a provider charges
/// its fuel; GPU time is not priced here).
fn cost(fuel: u64, price_per_gfuel: u128) -> u128 {
    sietch_node::jobs::cost(
        fuel,
        0,
        &sietch_market::Prices {
            per_gfuel: price_per_gfuel,
            per_gpu_second: 0,
        },
    )
}

/// The sandbox a provider builds (`Node::start`), for one job at a time, with room for a job
/// of `memory_bytes`: what `job run --local` and `generate --local` run in.
pub(super) fn provider_sandbox(
    memory_bytes: u64,
    cache_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<Sandbox> {
    let provider = sietch_node::config::NodeConfig::default();
    Ok(Sandbox::new(SandboxConfig {
        max_memory_bytes: provider.max_job_memory_bytes.max(memory_bytes),
        max_concurrent_jobs: 1,
        cache_dir,
        ..SandboxConfig::default()
    })?)
}

fn run_local(r: RunArgs) -> anyhow::Result<()> {
    let bytes = r.job.read()?;
    let spec = r.job.spec(&bytes)?;
    let seed = match &r.job_id {
        Some(h) => {
            let hash = blake3::Hash::from_hex(h).context("--job-id must be 64 hex digits")?;
            B256::from(*hash.as_bytes())
        }
        None => spec.module,
    };
    if let Some(g) = &spec.requirements.gpu {
        say_gpu_here(g);
    }
    let sandbox = provider_sandbox(spec.limits.memory_bytes, r.cache_dir.clone())?;
    let blobs = jobs::JobBlobs {
        module: bytes.module,
        stdin: bytes.stdin.unwrap_or_default(),
        inputs: bytes
            .inputs
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
    };
    // Exactly the provider's run: the same spec, the same conversion to the sandbox's limits.
    let running = super::progress::Progress::start(
        super::progress::Show::choose(r.json, r.progress),
        format!(
            "running the job here (at most {} of wall time)",
            super::progress::elapsed(std::time::Duration::from_millis(spec.limits.wall_time_ms))
        ),
    );
    let report = jobs::run(&sandbox, &spec, &seed, blobs);
    drop(running);
    let report = report.context("the sandbox refused the job")?;
    let written = match &r.output_dir {
        Some(dir) => {
            // The sandbox made only names that pass the rule; they are checked again, and
            // nothing already in `dir` is overwritten without --overwrite.
            let files = report
                .outputs
                .iter()
                .map(|(name, data)| (name.as_str(), Ok(data.clone())));
            let w = super::outputs::write_all(dir, files, r.overwrite)?;
            w.print_problems();
            Some((w, dir))
        }
        None => None,
    };
    let price = r.price_per_gfuel;
    if r.json {
        println!("{}", to_json(&report, &spec, price));
    } else {
        print_text(&report, &spec, price);
    }
    if let Some((w, dir)) = written {
        w.check(dir)?;
    }
    Ok(())
}

/// Says on stderr, plainly, when this machine has no GPU the job's needs accept: it runs
/// all the same, its `sietch_gpu` calls answering "no device" where there is none.
fn say_gpu_here(g: &sietch_market::GpuNeeds) {
    let needs = super::job_flags::describe_gpu(g);
    let here = sietch_node::service::local_gpus();
    if g.fits(&here) {
        return;
    }
    match here.first() {
        None => eprintln!(
            "note: no GPU here ({}): the job asks for {needs}; it runs on the CPU, and its \
             GPU calls answer \"no device\" (on the market a provider with that GPU runs it)",
            sietch_sandbox::gpu::unavailable_reason().unwrap_or_else(|| "none found".into())
        ),
        Some(gpu) => eprintln!(
            "note: this machine's GPU ({}, {:.1} GiB, compute capability {}) is not what the \
             job asks for ({needs}); it runs on it all the same, a provider must have the GPU \
             asked for",
            super::client::show(&gpu.model),
            gpu.memory_bytes as f64 / f64::from(1u32 << 30),
            gpu.compute_capability
        ),
    }
}

fn outcome_fields(o: Outcome) -> (&'static str, Option<i32>, Option<String>) {
    match o {
        Outcome::Exited { code } => ("exited", Some(code), None),
        Outcome::OutOfFuel => ("out_of_fuel", None, None),
        Outcome::DeadlineExceeded => ("deadline_exceeded", None, None),
        Outcome::MemoryLimitExceeded => ("memory_limit_exceeded", None, None),
        Outcome::OutputTooLarge => ("output_too_large", None, None),
        Outcome::Trapped { trap } => {
            let t = serde_json::to_value(trap)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            ("trapped", None, t)
        }
        _ => ("other", None, None),
    }
}

fn to_json(r: &JobReport, spec: &JobSpec, price: u128) -> serde_json::Value {
    let (outcome, exit_code, trap) = outcome_fields(r.outcome);
    let outputs: Vec<_> = r
        .outputs
        .iter()
        .map(|(name, data)| {
            json!({"name": name, "bytes": data.len(), "blake3": blake3::hash(data).to_hex().as_str()})
        })
        .collect();
    json!({
        "schema": "sietch.job.run.v1",
        "module_hash": blake3::Hash::from(spec.module.0).to_hex().as_str(),
        "outcome": outcome,
        "exit_code": exit_code,
        "trap": trap,
        "fuel_used": r.fuel_used,
        "fuel_limit": spec.limits.fuel,
        "output_hash": blake3::Hash::from(r.output_hash).to_hex().as_str(),
        "price_per_gfuel": price.to_string(),
        "cost": cost(r.fuel_used, price).to_string(),
        "gpu_time_ns": r.gpu_time_ns,
        "wall_time_ms": r.wall_time.as_secs_f64() * 1e3,
        "stdout": String::from_utf8_lossy(&r.stdout),
        "stdout_bytes": r.stdout.len(),
        "stderr": String::from_utf8_lossy(&r.stderr),
        "outputs": outputs,
    })
}

fn print_text(r: &JobReport, spec: &JobSpec, price: u128) {
    use std::io::Write;
    // The job's own streams first, untouched; the summary after, on stderr.
    let _ = std::io::stdout().write_all(&r.stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&r.stderr);
    let (_, exit_code, _) = outcome_fields(r.outcome);
    eprintln!("---");
    eprintln!(
        "module:      {}",
        blake3::Hash::from(spec.module.0).to_hex()
    );
    eprintln!("outcome:     {}", r.outcome);
    match exit_code {
        Some(c) => eprintln!("exit code:   {c}"),
        None => eprintln!("exit code:   -"),
    }
    eprintln!("fuel used:   {}", r.fuel_used);
    eprintln!(
        "output hash: {}",
        blake3::Hash::from(r.output_hash).to_hex()
    );
    eprintln!(
        "cost:        {} (at {price} per 10^9 fuel)",
        cost(r.fuel_used, price)
    );
    if r.gpu_time_ns > 0 {
        eprintln!("gpu time:    {} ns", r.gpu_time_ns);
    }
    eprintln!("wall time:   {:.3} ms", r.wall_time.as_secs_f64() * 1e3);
    for (name, data) in &r.outputs {
        eprintln!(
            "/output/{}: {} bytes",
            super::client::show(name),
            data.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::cost;

    #[test]
    fn cost_rounds_up_per_gfuel() {
        assert_eq!(cost(0, 1000), 0);
        assert_eq!(cost(1, 1000), 1);
        assert_eq!(cost(1_000_000_000, 7), 7);
        assert_eq!(cost(1_500_000_000, 2), 3);
        assert_eq!(
            cost(u64::MAX, u128::from(u64::MAX)),
            (u128::from(u64::MAX) * u128::from(u64::MAX)).div_ceil(1_000_000_000)
        );
    }
}
