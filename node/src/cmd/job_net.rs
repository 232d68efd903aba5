//! `sietch job submit|status|get|list`: jobs on the network, through a running node.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sietch_sdk::{Job, JobRecord, Outputs};

use super::client::{Target, block_on, print_json, short, table, tokens};

/// `sietch job submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    target: Target,
    /// The module (.wasm, a WASI preview 1 command).
    module: PathBuf,
    /// Arguments passed to the job; put those that start with `-` after `--`.
    args: Vec<String>,
    /// File whose bytes the job reads on stdin.
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// A file of the job's read-only `/input` directory (repeatable).
    #[arg(long = "input", value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// An environment variable of the job (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Fuel limit (the billing unit).
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Memory limit in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    memory: u64,
    /// Wall-clock limit in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Share of jobs like this one spot-checked, in parts per million.
    #[arg(long, default_value_t = 100_000)]
    sampling_ppm: u32,
    /// The most the job may cost, in tokens.
    #[arg(long, default_value = "0.1")]
    price_cap: String,
    /// Submit and print the job id at once, without waiting.
    #[arg(long)]
    no_wait: bool,
    /// Write the job's `/output` files here.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// `sietch job status|get`.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    target: Target,
    /// The job id (`0x` and 64 hex digits).
    id: String,
    /// `get`: write the job's `/output` files here.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// `sietch job list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    target: Target,
}

fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("{what} must look like NAME=VALUE, got {s:?}"),
    }
}

fn read(p: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// The bytes a submission uploads.
fn job_bytes(a: &SubmitArgs) -> anyhow::Result<u64> {
    let size = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .with_context(|| format!("reading {}", p.display()))
    };
    let mut total = size(&a.module)?;
    if let Some(s) = &a.stdin {
        total += size(s)?;
    }
    for i in &a.inputs {
        let (_, file) = pair(i, "--input")?;
        total += size(std::path::Path::new(&file))?;
    }
    Ok(total)
}

fn build(a: &SubmitArgs) -> anyhow::Result<Job> {
    let cap = super::channel::base_units(&a.price_cap).context("--price-cap")?;
    let mut job = Job::new(read(&a.module)?)
        .fuel(a.fuel)
        .memory_bytes(a.memory)
        .wall_time_ms(a.timeout.saturating_mul(1000))
        .sampling_ppm(a.sampling_ppm)
        .price_cap(cap);
    for x in &a.args {
        job = job.arg(x.clone());
    }
    for e in &a.env {
        let (k, v) = pair(e, "--env")?;
        job = job.env(k, v);
    }
    if let Some(s) = &a.stdin {
        job = job.stdin(read(s)?);
    }
    for i in &a.inputs {
        let (name, file) = pair(i, "--input")?;
        job = job.input(name, read(std::path::Path::new(&file))?);
    }
    Ok(job)
}

/// What each event kind means, for the progress line.
fn step(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "submitted" => "submitted; matching offers",
        "sent" => "sent to a provider",
        "retrying" => "the provider failed; trying another",
        "result_in" => "result received and held to its commitment",
        "checking" => "sampled: re-running elsewhere",
        "checked" => "spot check done",
        "finished" => "finished",
        _ => return None,
    })
}

fn write_outputs(out: &Outputs, dir: &std::path::Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in out.files.keys() {
        // Output names are flat (the sandbox refuses `/`); refuse anything else anyway.
        if name.contains('/') || name == ".." || name == "." {
            bail!("refusing the output file name {name:?}");
        }
        let bytes = out.file(name)?.unwrap_or_default();
        std::fs::write(dir.join(name), bytes)
            .with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    Ok(out.files.len())
}

fn print_record(
    j: &JobRecord,
    dir: Option<&std::path::Path>,
    show_stdout: bool,
) -> anyhow::Result<()> {
    println!("job       {}", j.job_id);
    println!("state     {}", j.state);
    println!("provider  {}", j.counterparty);
    if let Some(a) = &j.amount {
        println!("charge    {} tokens", tokens(a));
    }
    if let Some(f) = j.fuel_used {
        println!("fuel      {f}");
    }
    if !j.note.is_empty() {
        println!("note      {}", j.note);
    }
    if let Some(out) = &j.outputs {
        println!("outcome   {}", out.outcome);
        println!("output    {}", out.output_hash);
        if let Some(d) = dir {
            let n = write_outputs(out, d)?;
            println!("files     {n} written to {}", d.display());
        } else if !out.files.is_empty() {
            println!(
                "files     {} (use --output-dir to write them)",
                out.files.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if show_stdout {
            println!("--- stdout");
            print!("{}", String::from_utf8_lossy(&out.stdout()?));
        } else {
            println!(
                "stdout    {} bytes (`sietch job get {}` prints it)",
                out.stdout()?.len(),
                j.job_id
            );
        }
    }
    Ok(())
}

pub(crate) fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    block_on(async move {
        let client = a.target.client()?;
        let job = build(&a)?;
        let upload = if a.target.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        upload.enable_steady_tick(Duration::from_millis(120));
        upload.set_message(format!(
            "uploading the module and inputs ({})",
            indicatif::HumanBytes(job_bytes(&a)?)
        ));
        let submitted = client.submit_and_follow(&job).await;
        upload.finish_and_clear();
        let (id, mut events) = submitted?;
        if a.no_wait {
            if a.target.json {
                return print_json(&serde_json::json!({ "job_id": id }));
            }
            println!("{id}");
            return Ok(());
        }
        let bar = if a.target.json {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b.set_message(format!("job {} submitted", short(&id)));
            b
        };
        let limit = Duration::from_secs(a.timeout.saturating_add(120));
        let followed = tokio::time::timeout(limit, async {
            while let Some(e) = events.next().await {
                let e = e?;
                if let Some(s) = step(&e.kind) {
                    bar.set_message(format!("job {}: {s}", short(&id)));
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
        bar.finish_and_clear();
        if followed.is_err() {
            bail!(
                "job {id} did not finish within {} s; `sietch job status {id}` follows it",
                limit.as_secs()
            );
        }
        let record = client.wait(&id, Duration::from_secs(30)).await?;
        if a.target.json {
            return print_json(&record);
        }
        print_record(&record, a.output_dir.as_deref(), true)?;
        if record.state == "failed" {
            bail!("job {id} failed: {}", record.note);
        }
        Ok(())
    })
}

pub(crate) fn status(a: IdArgs, with_outputs: bool) -> anyhow::Result<()> {
    block_on(async move {
        let j = a.target.client()?.job(&a.id).await?;
        if a.target.json {
            return print_json(&j);
        }
        if with_outputs {
            let Some(out) = &j.outputs else {
                bail!("job {} has no outputs yet (state {})", a.id, j.state);
            };
            if let Some(d) = &a.output_dir {
                let n = write_outputs(out, d)?;
                eprintln!("{n} files written to {}", d.display());
            }
            print!("{}", String::from_utf8_lossy(&out.stdout()?));
            return Ok(());
        }
        print_record(&j, None, false)
    })
}

pub(crate) fn list(a: ListArgs) -> anyhow::Result<()> {
    block_on(async move {
        let jobs = a.target.client()?.jobs().await?;
        if a.target.json {
            return print_json(&jobs);
        }
        if jobs.is_empty() {
            println!("no jobs yet: `sietch job submit MODULE` sends one");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                vec![
                    short(&j.job_id),
                    j.state.clone(),
                    short(&j.counterparty),
                    j.amount.as_deref().map_or("-".into(), tokens),
                    j.fuel_used.map_or("-".into(), |f| f.to_string()),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["job", "state", "provider", "charge", "fuel"], &rows)
        );
        Ok(())
    })
}
