//! `sietch train text --local`: the second model of docs/training.md ("A second model"), a
//! small byte-level transformer, trained on Jane Austen's novels in data-parallel rounds of
//! the language-model guest (`sietch_guests::TRAIN_LM`): each round one job a shard (a byte
//! range of the corpus, the SDK's `train::text` split), their updates averaged in shard order,
//! the held-out tail scored by the guest's `mode=eval`; after the last round, greedy text. The
//! jobs run here, one after another, in a sandbox configured as a provider's (as
//! `train digits --local` runs its own): the same updates a provider computes, and what a
//! provider would charge for them. The market's round driver is the digits' alone for now.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sietch_market::Limits;
use sietch_sandbox::Sandbox;
use sietch_sdk::train::Aggregate;
use sietch_sdk::train::text::{
    CORPUS_INPUT, LmConfig, LmWeights, TextSplit, UPDATE_OUTPUT, WEIGHTS_INPUT, train_args,
};

/// `sietch train text`.
#[derive(Debug, Args)]
pub(crate) struct TextArgs {
    /// Rounds to train.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rounds: u32,
    /// Shards of the corpus, and so jobs a round.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
    /// Local AdamW steps each job runs on its shard.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    steps: u32,
    /// Windows of 65 bytes a step.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.003)]
    lr: f32,
    /// The run's seed: the first weights and every job's windows come from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bytes at the corpus's end held out to score each round (no job trains on them).
    #[arg(long, default_value_t = 4097)]
    held_out: u32,
    /// Greedy bytes to generate after the last round (0: none).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    sample: u32,
    /// The text the sample continues.
    #[arg(long, default_value = "It is a truth universally acknowledged")]
    prompt: String,
    /// The corpus [default: austen.txt in $SIETCH_MODEL_DIR or ~/.cache/sietch/models, where
    /// `bash scripts/corpus.sh` puts it].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Fuel limit of each job.
    #[arg(long, default_value_t = 100_000_000_000)]
    fuel: u64,
    /// Run every job here, in a sandbox configured as a provider's (required for now).
    #[arg(long)]
    local: bool,
    /// The price per 10^9 fuel the cost is estimated at, in base units.
    #[arg(long, default_value_t = 1_000)]
    price_per_gfuel: u128,
}

/// One job of the guest here: its `/output` files, or why it failed; and its fuel.
fn job(
    sandbox: &Sandbox,
    args: Vec<String>,
    inputs: &[(&str, &Arc<[u8]>)],
    fuel: u64,
) -> anyhow::Result<(std::collections::BTreeMap<String, Vec<u8>>, u64)> {
    let limits = Limits {
        fuel,
        memory_bytes: 64 << 20,
        wall_time_ms: 600_000,
        output_bytes: 8 << 20,
    };
    let what = args.join(" ");
    let report =
        super::train_local::run_guest(sandbox, sietch_guests::TRAIN_LM, args, inputs, limits)
            .map_err(|e| anyhow::anyhow!("the sandbox refused the job ({what}): {e}"))?;
    if report.outcome != (sietch_market::Outcome::Exited { code: 0 }) {
        anyhow::bail!(
            "the job ({what}) ended {}: {}",
            report.outcome,
            sietch_market::printable(String::from_utf8_lossy(&report.stderr).trim())
        );
    }
    Ok((report.outputs, report.fuel_used))
}

/// A number in one of the guest's one-line JSON files.
fn number(outputs: &std::collections::BTreeMap<String, Vec<u8>>, file: &str, key: &str) -> f64 {
    outputs
        .get(file)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get(key).and_then(serde_json::Value::as_f64))
        .unwrap_or(f64::NAN)
}

/// Job `shard`'s seed in `round`: splitmix64's increment times the run's seed, the round in
/// the high bits, the shard in the low ones.
fn job_seed(seed: u64, round: u32, shard: u32) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u64::from(round) << 32) ^ u64::from(shard)
}

pub(crate) fn run(a: TextArgs) -> anyhow::Result<()> {
    if !a.local {
        anyhow::bail!(
            "train text runs here only for now: add --local (the market's round driver, \
             `train digits`, trains the digits model)"
        );
    }
    let path = a
        .data
        .clone()
        .unwrap_or_else(sietch_sdk::train::text::default_path);
    if !path.is_file() {
        anyhow::bail!(
            "no corpus at {}: `bash scripts/corpus.sh` (part of `bash scripts/setup.sh`) \
             extracts Jane Austen's novels from Debian's r-cran-janeaustenr, or pass --data FILE",
            path.display()
        );
    }
    let text: Arc<[u8]> = std::fs::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .into();
    let config = LmConfig::DEFAULT;
    let split = TextSplit::new(text.len(), a.shards, a.held_out, config.ctx)?;
    let sandbox = super::job::provider_sandbox(64 << 20, None)?;
    let mut weights = LmWeights::init(config, a.seed)?;
    let prices = sietch_market::Prices {
        per_gfuel: a.price_per_gfuel,
        per_gpu_second: 0,
    };
    let eval_args = vec![
        "mode=eval".to_owned(),
        format!("from={}", split.held_out.start),
    ];
    let score = |w: &LmWeights| -> anyhow::Result<f64> {
        let w: Arc<[u8]> = w.encode().into();
        let inputs = [(WEIGHTS_INPUT, &w), (CORPUS_INPUT, &text)];
        let (out, _) = job(&sandbox, eval_args.clone(), &inputs, a.fuel)?;
        Ok(number(&out, "eval.json", "loss"))
    };
    println!(
        "training a {}-parameter transformer on {} ({} bytes): {} shards, {} held out, here in \
         a provider's sandbox",
        config.params()?,
        path.display(),
        text.len(),
        a.shards,
        a.held_out
    );
    println!("round 0: held-out loss {:.4}", score(&weights)?);
    let (mut fuel, mut cost) = (0u64, 0u128);
    for round in 1..=a.rounds {
        let current: Arc<[u8]> = weights.encode().into();
        let (mut updates, mut losses) = (Vec::new(), Vec::new());
        for (k, range) in (0u32..).zip(&split.shards) {
            let args = train_args(range, a.steps, a.batch, a.lr, job_seed(a.seed, round, k));
            let inputs = [(WEIGHTS_INPUT, &current), (CORPUS_INPUT, &text)];
            let (out, used) = job(&sandbox, args, &inputs, a.fuel)?;
            fuel += used;
            cost += sietch_node::jobs::cost(used, 0, &prices);
            let update = out.get(UPDATE_OUTPUT).context("a job wrote no update")?;
            updates.push(LmWeights::decode(update)?);
            losses.push(number(&out, "stats.json", "loss_mean"));
        }
        weights.apply(&LmWeights::aggregate(&updates, Aggregate::Mean)?)?;
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        println!(
            "round {round}: training loss {mean:.4}, held-out loss {:.4}",
            score(&weights)?
        );
    }
    println!(
        "{fuel} fuel of training, {cost} base units at {} a 10^9 fuel",
        a.price_per_gfuel
    );
    if a.sample > 0 {
        let w: Arc<[u8]> = weights.encode().into();
        let prompt: Arc<[u8]> = a.prompt.as_bytes().to_vec().into();
        let args = vec!["mode=sample".to_owned(), format!("tokens={}", a.sample)];
        let inputs = [
            (WEIGHTS_INPUT, &w),
            (sietch_guests::LM_PROMPT_INPUT, &prompt),
        ];
        let (out, _) = job(&sandbox, args, &inputs, a.fuel)?;
        let text = out
            .get(sietch_guests::LM_SAMPLE_OUTPUT)
            .context("no sample")?;
        let text = String::from_utf8_lossy(text);
        let lines: Vec<String> = text.split('\n').map(sietch_market::printable).collect();
        println!(
            "{}{}",
            sietch_market::printable(&a.prompt),
            lines.join("\n")
        );
    }
    Ok(())
}
