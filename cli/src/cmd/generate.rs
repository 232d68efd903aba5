//! `sietch generate`: text from a language model, bought on the market through a node (or
//! run here in a provider's sandbox with `--local`, which also says what it would cost).
//! The job runs the inference guest (`sietch-guests`, docs/ai.md) on a GGUF model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use sietch_market::{B256, BlobRef, Input, JobSpec, Limits, Requirements, VerificationPolicy};
use sietch_sdk::{Completion, Generation, Model, Prompt, parse_completions};

use super::client::{Target, Unit, block_on, tokens};

/// `sietch generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    target: Target,
    /// The model: a GGUF file (uploaded to the node only if it does not hold it), or the
    /// `0x` hash of a blob the node holds.
    #[arg(long, value_name = "FILE|HASH")]
    model: String,
    /// The prompts: each is one chat message (repeatable as arguments).
    prompts: Vec<String>,
    /// A file of requests, one JSON object per line (`prompt`, `system`, `raw`,
    /// `max_tokens`, `temperature`, `top_p`, `seed`, `stop`: sandbox/guests/llm/README.md).
    #[arg(long, value_name = "FILE.jsonl")]
    prompts_file: Option<PathBuf>,
    /// Most tokens to generate per prompt.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Sampling temperature; 0 is greedy (the same text every time).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// The sampler's seed (default: drawn from the job's id, so a re-run draws the same).
    #[arg(long)]
    seed: Option<u64>,
    /// The system message of the chat template (default: the model's own).
    #[arg(long)]
    system: Option<String>,
    /// Fuel limit: about 3 × 10^7 per token of SmolLM2-135M (`--local` measures it).
    #[arg(long, default_value_t = sietch_sdk::DEFAULT_GENERATION_FUEL)]
    fuel: u64,
    /// Memory limit in bytes (the context's cache and the tokenizer: about 80 MB).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    memory: u64,
    /// Wall-clock limit in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
    /// Share of such jobs spot-checked, in parts per million.
    #[arg(long, default_value_t = 100_000)]
    sampling_ppm: u32,
    /// How a spot check compares: `exact` (the re-run generates again, same bytes) or
    /// `rescore[=MARGIN]` (the re-run re-scores the claimed tokens, each within MARGIN logits
    /// of the model's choice, default 0.1: for GPU providers; docs/ai.md).
    #[arg(long, value_name = "exact|rescore[=MARGIN]", default_value = "exact", value_parser = parse_check)]
    check: Check,
    /// The most the job may cost, in the token's own units (the node says its decimals).
    #[arg(long, default_value = "1")]
    price_cap: String,
    /// Run it here, in a sandbox configured as a provider's, instead of buying it: prints
    /// the completions, the fuel it burned and what a provider would charge for it.
    #[arg(long)]
    local: bool,
    /// With --local: the price per 10^9 fuel the cost is estimated at, in token base units
    /// (the node's default price).
    #[arg(long, default_value_t = 1_000, requires = "local")]
    price_per_gfuel: u128,
}

/// `--check`: how a sampled generation is compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    Exact,
    Rescore(f64),
}

/// The margin `--check rescore` gets without one (docs/ai.md, "Re-scoring a generation").
const DEFAULT_RESCORE_MARGIN: f64 = 0.1;

fn parse_check(s: &str) -> Result<Check, String> {
    match s.split_once('=') {
        None if s == "exact" => Ok(Check::Exact),
        None if s == "rescore" => Ok(Check::Rescore(DEFAULT_RESCORE_MARGIN)),
        Some(("rescore", m)) => m
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m > 0.0 && *m <= 1000.0)
            .map(Check::Rescore)
            .ok_or_else(|| format!("{m:?}: the margin is a number above 0 and at most 1000")),
        _ => Err(format!("{s:?}: want exact, rescore or rescore=MARGIN")),
    }
}

impl GenerateArgs {
    /// The requests: the prompts file's lines, then each prompt argument.
    fn prompts(&self) -> anyhow::Result<Vec<u8>> {
        let mut jsonl = match &self.prompts_file {
            Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            None => Vec::new(),
        };
        if !jsonl.is_empty() && !jsonl.ends_with(b"\n") {
            jsonl.push(b'\n');
        }
        for text in &self.prompts {
            let mut p = Prompt::new(text.clone()).max_tokens(self.max_tokens);
            if self.temperature > 0.0 {
                p = p.sample(self.temperature, self.top_p, self.seed);
            }
            p.system.clone_from(&self.system);
            jsonl.extend_from_slice(&serde_json::to_vec(&p)?);
            jsonl.push(b'\n');
        }
        if jsonl.iter().all(u8::is_ascii_whitespace) {
            bail!("nothing to generate: give a prompt, or --prompts-file FILE.jsonl");
        }
        Ok(jsonl)
    }

    /// The model file's size for people, when `--model` is a file.
    fn model_bytes_hint(&self) -> Option<String> {
        std::fs::metadata(&self.model)
            .ok()
            .map(|m| indicatif::HumanBytes(m.len()).to_string())
    }

    fn model(&self) -> anyhow::Result<Model> {
        if let Some(hex) = self.model.strip_prefix("0x")
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(Model::Blob(self.model.clone()));
        }
        let bytes = std::fs::read(&self.model)
            .with_context(|| format!("reading the model {}", self.model))?;
        if bytes.get(..4) != Some(b"GGUF") {
            bail!(
                "{} is not a GGUF file (it does not start with GGUF)",
                self.model
            );
        }
        Ok(Model::Bytes(bytes))
    }
}

pub(crate) fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let prompts = a.prompts()?;
    let model = a.model()?;
    if a.local {
        return local(&a, model, prompts);
    }
    // Written like an amount before anything is asked of the node.
    sietch_node::chain::token::parse_units(&a.price_cap, 36).context("--price-cap")?;
    let client = a.target.writer()?;
    let waiting = super::progress::Progress::start(
        a.target.show(),
        match &a.model_bytes_hint() {
            Some(size) => format!(
                "generating: uploading the model ({size}) unless the node holds it, then waiting \
                 for a provider's completions (at most {} s)",
                a.timeout
            ),
            None => format!(
                "generating: waiting for a provider's completions (at most {} s)",
                a.timeout
            ),
        },
    );
    // One runtime for both requests: the client's pooled connections live on it.
    let done = block_on(async {
        let unit = Unit::of(&client).await;
        let cap = unit.parse(&a.price_cap).context("--price-cap")?;
        let g = Generation::from_jsonl(model, prompts)
            .fuel(a.fuel)
            .memory_bytes(a.memory)
            .wall_time_ms(a.timeout.saturating_mul(1000))
            .sampling_ppm(a.sampling_ppm)
            .price_cap(cap);
        let g = match a.check {
            Check::Exact => g,
            Check::Rescore(margin) => g.rescore(margin),
        };
        Ok((client.generate(&g).await?, unit))
    });
    drop(waiting);
    let (done, unit) = done?;
    let summary = json!({
        "job_id": done.job.job_id,
        "provider": done.job.provider,
        "check": done.job.check,
        "paid": done.job.paid,
        "fuel_used": done.job.outputs.fuel_used,
        "millis": done.job.millis,
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "tokens_per_second": done.tokens_per_second(),
        "cost_per_1k_tokens": done.cost_per_1k_tokens().to_string(),
    });
    print_completions(&done.completions, a.target.json, summary, |s| {
        let paid: u128 = s["paid"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0);
        let per_1k: u128 = done.cost_per_1k_tokens();
        format!(
            "job {} on {}: {} prompt + {} completion tokens in {:.1} s ({:.1} tokens/s), \
             {} fuel, paid {} ({} per 1,000 tokens), check: {}",
            done.job.job_id,
            done.job.provider,
            done.prompt_tokens,
            done.completion_tokens,
            done.job.millis as f64 / 1000.0,
            done.tokens_per_second(),
            done.job.outputs.fuel_used,
            unit.amount(&paid.to_string()),
            unit.amount(&per_1k.to_string()),
            done.job.check.as_deref().unwrap_or("not sampled"),
        )
    })
}

/// Runs the batch here, as a provider would: the same spec and sandbox limits.
fn local(a: &GenerateArgs, model: Model, prompts: Vec<u8>) -> anyhow::Result<()> {
    let Model::Bytes(model) = model else {
        bail!("--local needs the model's file, not a hash");
    };
    let module = sietch_guests::LLM.to_vec();
    let spec = JobSpec {
        module: BlobRef::of(&module).hash,
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        inputs: vec![
            Input {
                name: sietch_guests::MODEL_INPUT.into(),
                blob: BlobRef::of(&model),
            },
            Input {
                name: sietch_guests::PROMPTS_INPUT.into(),
                blob: BlobRef::of(&prompts),
            },
        ],
        limits: Limits {
            fuel: a.fuel,
            memory_bytes: a.memory,
            wall_time_ms: a.timeout.saturating_mul(1000),
            output_bytes: 4 << 20,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 0,
        deadline: 0,
    };
    let sandbox = super::job::provider_sandbox(a.memory, None)?;
    let inputs: BTreeMap<String, Arc<[u8]>> = BTreeMap::from([
        (sietch_guests::MODEL_INPUT.to_owned(), model.into()),
        (sietch_guests::PROMPTS_INPUT.to_owned(), prompts.into()),
    ]);
    let blobs = sietch_node::jobs::JobBlobs {
        module,
        stdin: Vec::new(),
        inputs,
    };
    let started = Instant::now();
    let running = super::progress::Progress::start(
        a.target.show(),
        format!("running the model here (at most {} s)", a.timeout),
    );
    let report = sietch_node::jobs::run(&sandbox, &spec, &B256::ZERO, blobs);
    drop(running);
    let report = report.context("the sandbox refused the job")?;
    let secs = started.elapsed().as_secs_f64();
    let out = report
        .outputs
        .get(sietch_guests::COMPLETIONS_OUTPUT)
        .cloned()
        .unwrap_or_default();
    let completions = parse_completions(&out)?;
    let prompt_tokens: u64 = completions.iter().map(|c| c.prompt_tokens).sum();
    let completion_tokens: u64 = completions.iter().map(|c| c.completion_tokens).sum();
    let cost = sietch_node::jobs::cost(
        report.fuel_used,
        0,
        &sietch_market::Prices {
            per_gfuel: a.price_per_gfuel,
            per_gpu_second: 0,
        },
    );
    let all = (prompt_tokens + completion_tokens).max(1);
    let per_1k = cost.saturating_mul(1000) / u128::from(all);
    let summary = json!({
        "outcome": report.outcome.to_string(),
        "fuel_used": report.fuel_used,
        "seconds": secs,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens_per_second": completion_tokens as f64 / secs.max(1e-9),
        "cost": cost.to_string(),
        "cost_per_1k_tokens": per_1k.to_string(),
        "fuel_per_1k_tokens": report.fuel_used.saturating_mul(1000) / all,
    });
    let stderr = String::from_utf8_lossy(&report.stderr).into_owned();
    print_completions(&completions, a.target.json, summary, |_| {
        format!(
            "local run: {} ({}), {} prompt + {} completion tokens in {secs:.1} s \
             ({:.1} tokens/s), {} fuel ({} per 1,000 tokens); a provider at {} per 10^9 fuel \
             would charge {} ({} per 1,000 tokens){}",
            report.outcome,
            if report.outcome == (sietch_market::Outcome::Exited { code: 0 }) {
                "complete"
            } else {
                "the completions finished before it ended are shown"
            },
            prompt_tokens,
            completion_tokens,
            completion_tokens as f64 / secs.max(1e-9),
            report.fuel_used,
            report.fuel_used.saturating_mul(1000) / all,
            a.price_per_gfuel,
            tokens(&cost.to_string()),
            tokens(&per_1k.to_string()),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\nguest: {}", sietch_market::printable(stderr.trim()))
            },
        )
    })
}

/// A model's text made safe for a terminal, its line breaks kept: every other control
/// character is escaped (a model's output is no more trusted than a peer's).
fn shown(text: &str) -> String {
    text.split('\n')
        .map(sietch_market::printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints the completions and a summary line (or one JSON document).
fn print_completions(
    completions: &[Completion],
    json: bool,
    summary: serde_json::Value,
    line: impl Fn(&serde_json::Value) -> String,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            json!({"completions": completions, "summary": summary})
        );
        return Ok(());
    }
    for c in completions {
        match (&c.error, c.finish.as_str()) {
            (Some(e), _) => println!("[{}] error: {}", c.index, sietch_market::printable(e)),
            (None, finish) => println!(
                "[{}] {}{}",
                c.index,
                shown(&c.text),
                if finish == "length" { " …" } else { "" }
            ),
        }
    }
    println!("{}", line(&summary));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Check, parse_check};

    #[test]
    fn check_parses_exact_and_rescore_with_a_margin_in_bounds() {
        assert_eq!(parse_check("exact"), Ok(Check::Exact));
        assert_eq!(parse_check("rescore"), Ok(Check::Rescore(0.1)));
        assert_eq!(parse_check("rescore=0.25"), Ok(Check::Rescore(0.25)));
        assert_eq!(parse_check("rescore=1000"), Ok(Check::Rescore(1000.0)));
        for bad in [
            "rescore=0",
            "rescore=-1",
            "rescore=1001",
            "rescore=nan",
            "rescore=inf",
            "rescore=",
            "tolerance",
            "exact=1",
            "",
        ] {
            assert!(parse_check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
