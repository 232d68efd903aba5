//! `sietch job submit|status|get|list`: jobs on the network, through a running node.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use sietch_sdk::{Job, JobRecord, Outputs};

use super::client::{Target, Unit, block_on, print_json, short, show, table};
use super::job_flags::{JobFlags, describe_gpu, pair};
use super::outputs::Report;
use super::progress::Progress;

/// `sietch job submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    target: Target,
    /// The job: the same flags and defaults as `job run --local`.
    #[command(flatten)]
    job: JobFlags,
    /// Share of jobs like this one spot-checked, in parts per million.
    #[arg(long, default_value_t = 100_000)]
    sampling_ppm: u32,
    /// The most the job may cost, in the token's own units (the node says its decimals).
    #[arg(long, default_value = "0.1")]
    price_cap: String,
    /// Submit and print the job id at once, without waiting.
    #[arg(long)]
    no_wait: bool,
    /// Write the job's `/output` files here (names checked; existing files and links kept).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// With --output-dir: replace files already there (a symbolic link is replaced, never
    /// followed).
    #[arg(long, requires = "output_dir")]
    overwrite: bool,
}

/// `sietch job status|get`.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    target: Target,
    /// The job id (`0x` and 64 hex digits).
    id: String,
    /// `get`: write the job's `/output` files here (names checked; existing files and links
    /// kept).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// `get`, with --output-dir: replace files already there (a symbolic link is replaced,
    /// never followed).
    #[arg(long, requires = "output_dir")]
    overwrite: bool,
    /// Wait until the job is paid, withheld or failed, for at most 600 seconds or
    /// `--wait=SECONDS` (progress on stderr).
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "600"
    )]
    wait: Option<u64>,
}

/// `sietch job list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    target: Target,
}

/// The bytes a submission uploads.
fn job_bytes(a: &SubmitArgs) -> anyhow::Result<u64> {
    let size = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .with_context(|| format!("reading {}", p.display()))
    };
    let mut total = size(&a.job.module)?;
    if let Some(s) = &a.job.stdin {
        total += size(s)?;
    }
    for i in &a.job.inputs {
        let (_, file) = pair(i, "--input")?;
        total += size(std::path::Path::new(&file))?;
    }
    Ok(total)
}

fn build(a: &SubmitArgs, unit: &Unit) -> anyhow::Result<Job> {
    let cap = unit.parse(&a.price_cap).context("--price-cap")?;
    let bytes = a.job.read()?;
    let limits = a.job.limits()?;
    let mut job = Job::new(bytes.module)
        .fuel(limits.fuel)
        .memory_bytes(limits.memory_bytes)
        .wall_time_ms(limits.wall_time_ms)
        .output_bytes(limits.output_bytes)
        .sampling_ppm(a.sampling_ppm)
        .price_cap(cap);
    for x in &a.job.args {
        job = job.arg(x.clone());
    }
    for (k, v) in bytes.env {
        job = job.env(k, v);
    }
    if let Some(s) = bytes.stdin {
        job = job.stdin(s);
    }
    for (name, data) in bytes.inputs {
        job = job.input(name, data);
    }
    with_gpu(job, &a.job)
}

/// `job` with the GPU needs of its flags, if any.
fn with_gpu(job: Job, flags: &JobFlags) -> anyhow::Result<Job> {
    let Some(g) = flags.gpu.needs()? else {
        return Ok(job);
    };
    let models: Vec<&str> = g.models.iter().map(String::as_str).collect();
    Ok(job.gpu(
        g.count,
        &models,
        g.min_memory_bytes,
        &g.min_compute_capability.to_string(),
    ))
}

/// A job's note without the market's opening words twice (the node's note repeats them).
fn clean_note(note: &str) -> String {
    note.replacen(
        "no offer matches: no offer matches: ",
        "no offer matches: ",
        1,
    )
}

/// The error of a job that ended `failed`: its note, and the fix when the market found no
/// offer for it.
fn failed(id: &str, note: &str) -> anyhow::Error {
    let note = &clean_note(note);
    match super::client::no_match_blocker(note) {
        Some(b) => anyhow::anyhow!(
            "job {id} failed: {}\n{}",
            show(note),
            super::client::no_match_fix(b)
        ),
        None => anyhow::anyhow!(
            "job {id} failed: {} (`sietch job status {id}` shows it)",
            show(note)
        ),
    }
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

/// Writes the `/output` files of `out` into `dir` (see `outputs`): names checked, nothing
/// overwritten without `overwrite`, links never followed; what was not written is printed.
fn write_outputs(out: &Outputs, dir: &std::path::Path, overwrite: bool) -> anyhow::Result<Report> {
    let files = out.files.keys().map(|name| {
        let bytes = match out.file(name) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err("missing".to_owned()),
            Err(e) => Err(format!("its bytes are unreadable: {e}")),
        };
        (name.as_str(), bytes)
    });
    let report = super::outputs::write_all(dir, files, overwrite)?;
    report.print_problems();
    Ok(report)
}

/// Prints a job as text; writes its files into `dir` when given (the report says what was
/// not written). Everything the node or the provider wrote is escaped; stdout (the job's own
/// bytes) is printed as it is, like `cat`, when `show_stdout`.
fn print_record(
    j: &JobRecord,
    unit: &Unit,
    dir: Option<&std::path::Path>,
    overwrite: bool,
    show_stdout: bool,
) -> anyhow::Result<Option<Report>> {
    println!("job       {}", show(&j.job_id));
    println!("state     {}", show(&j.state));
    println!("provider  {}", show(&j.counterparty));
    if let Some(a) = &j.amount {
        println!("charge    {}", show(&unit.show(a)));
    }
    if let Some(f) = j.fuel_used {
        println!("fuel      {f}");
    }
    if !j.note.is_empty() {
        println!("note      {}", show(&clean_note(&j.note)));
    }
    let mut report = None;
    if let Some(out) = &j.outputs {
        println!("outcome   {}", show(&out.outcome));
        println!("output    {}", show(&out.output_hash));
        if let Some(d) = dir {
            let r = write_outputs(out, d, overwrite)?;
            println!("files     {} written to {}", r.written(), d.display());
            report = Some(r);
        } else if !out.files.is_empty() {
            println!(
                "files     {} (use --output-dir to write them)",
                out.files
                    .keys()
                    .map(|n| show(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if show_stdout {
            println!("--- stdout");
            print!("{}", String::from_utf8_lossy(&out.stdout()?));
        } else {
            println!(
                "stdout    {} bytes (`sietch job get {}` prints it)",
                out.stdout()?.len(),
                show(&j.job_id)
            );
        }
    }
    Ok(report)
}

pub(crate) fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    block_on(async move {
        // Written like an amount before anything is asked of the node.
        // So are the GPU flags: a bad one sends nothing at all.
        sietch_node::chain::token::parse_units(&a.price_cap, 36).context("--price-cap")?;
        let needs = a.job.gpu.needs()?;
        let client = a.target.writer()?;
        let unit = Unit::of(&client).await;
        let job = build(&a, &unit)?;
        let show_progress = a.target.show();
        let upload = Progress::start(
            show_progress,
            format!(
                "uploading the module and inputs ({}) to {}",
                indicatif::HumanBytes(job_bytes(&a)?),
                client.url()
            ),
        );
        let submitted = client.submit_and_follow(&job).await;
        drop(upload);
        let (id, mut events) = submitted?;
        if a.no_wait {
            if a.target.json {
                return print_json(&serde_json::json!({ "job_id": id }));
            }
            println!("{}", show(&id));
            return Ok(());
        }
        let matching = match &needs {
            Some(g) => format!("submitted; matching offers with {}", describe_gpu(g)),
            None => "submitted; matching offers".to_owned(),
        };
        let bar = Progress::start(
            show_progress,
            format!("job {}: {matching}", show(&short(&id))),
        );
        let limit =
            Duration::from_millis(a.job.wall_time_ms()?).saturating_add(Duration::from_secs(120));
        let followed = tokio::time::timeout(limit, async {
            while let Some(e) = events.next().await {
                let e = e?;
                if let Some(s) = step(&e.kind) {
                    bar.set(format!("job {}: {s}", show(&short(&id))));
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
        if followed.is_err() {
            drop(bar);
            bail!(
                "job {id} did not finish within {} s; `sietch job status {id} --wait` follows it",
                limit.as_secs()
            );
        }
        bar.set(format!("job {}: reading its record", show(&short(&id))));
        let record = client.wait(&id, Duration::from_secs(30)).await;
        drop(bar);
        let record = record?;
        if a.target.json {
            return print_json(&record);
        }
        let report = print_record(&record, &unit, a.output_dir.as_deref(), a.overwrite, true)?;
        if record.state == "failed" {
            return Err(failed(&id, &record.note));
        }
        if let (Some(r), Some(d)) = (report, &a.output_dir) {
            r.check(d)?;
        }
        Ok(())
    })
}

/// Polls job `id` until it is final, for at most `secs`, showing its state as it goes.
async fn wait_final(
    client: &sietch_sdk::Client,
    id: &str,
    secs: u64,
    show_progress: super::progress::Show,
) -> anyhow::Result<JobRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let bar = Progress::start(
        show_progress,
        format!("job {}: waiting for it to finish", show(&short(id))),
    );
    loop {
        let j = client.job(id).await?;
        if j.is_final() {
            return Ok(j);
        }
        bar.set(format!(
            "job {}: {} (waiting for it to be paid, withheld or failed)",
            show(&short(id)),
            show(&j.state)
        ));
        if tokio::time::Instant::now() >= deadline {
            drop(bar);
            bail!(
                "job {id} is still {} after {secs} s; `sietch job status {id} --wait` waits again",
                show(&j.state)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) fn status(a: IdArgs, with_outputs: bool) -> anyhow::Result<()> {
    block_on(async move {
        let client = a.target.client()?;
        let j = match a.wait {
            Some(secs) => wait_final(&client, &a.id, secs, a.target.show()).await?,
            None => client.job(&a.id).await?,
        };
        if a.target.json {
            return print_json(&j);
        }
        if with_outputs {
            let Some(out) = &j.outputs else {
                if j.state == "failed" {
                    return Err(failed(&a.id, &j.note));
                }
                bail!(
                    "job {} has no outputs yet (state {}): `sietch job get {} --wait` waits for them",
                    a.id,
                    show(&j.state),
                    a.id
                );
            };
            let report = match &a.output_dir {
                Some(d) => {
                    let r = write_outputs(out, d, a.overwrite)?;
                    eprintln!("{} files written to {}", r.written(), d.display());
                    Some((r, d))
                }
                None => None,
            };
            // The job's own stdout, as it is (like `cat`): it is what was asked for.
            print!("{}", String::from_utf8_lossy(&out.stdout()?));
            if let Some((r, d)) = report {
                r.check(d)?;
            }
            return Ok(());
        }
        let unit = Unit::of(&client).await;
        print_record(&j, &unit, None, false, false).map(drop)
    })
}

pub(crate) fn list(a: ListArgs) -> anyhow::Result<()> {
    block_on(async move {
        let client = a.target.client()?;
        let jobs = client.jobs().await?;
        if a.target.json {
            return print_json(&jobs);
        }
        let unit = Unit::of(&client).await;
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
                    j.amount.as_deref().map_or("-".into(), |x| unit.amount(x)),
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
