//! `sietch train digits`: a small multilayer perceptron trained on scikit-learn's
//! handwritten digits across the market's providers, round by round (the SDK's round driver,
//! `sietch_sdk::train`, docs/training.md), or here in a provider's sandbox with `--local`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sietch_sdk::train::{
    Aggregate, Digits, JobLimits, MarketRunner, Optimizer, RoundReport, ShardRunner, TrainConfig,
    TrainEvent, Trainer,
};

use super::client::{Target, block_on, tokens};
use super::progress::{Progress, Show};

/// `sietch train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(subcommand)]
    command: TrainCommand,
}

#[derive(Debug, Subcommand)]
enum TrainCommand {
    /// Train a multilayer perceptron on scikit-learn's handwritten digits (1,797 8×8 images;
    /// `bash scripts/digits.sh` fetches them): each round publishes the weights, runs one
    /// training job per shard across the providers, averages their updates and scores the
    /// result on a held-out set. A line per round; Ctrl-C and --resume go on later.
    Digits(Box<DigitsArgs>),
    /// Train a small byte-level transformer language model on Jane Austen's novels (`bash
    /// scripts/corpus.sh` fetches them), here in a provider's sandbox (--local): each round one
    /// job per shard of the text, their updates averaged, the held-out loss a line; greedy text
    /// at the end.
    Text(Box<super::train_text::TextArgs>),
}

/// How the shards' updates become one.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AggregateArg {
    /// Their mean, in shard order.
    Mean,
    /// Their coordinate-wise median: one poisoned update cannot pull the model away.
    Median,
}

/// The guest's optimizer.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimizerArg {
    /// SGD with momentum.
    Sgdm,
    /// AdamW (--momentum is its β1).
    Adamw,
}

#[derive(Debug, Args)]
pub(crate) struct DigitsArgs {
    #[command(flatten)]
    target: Target,
    /// Rounds to train in all [default: 10; with --resume, the checkpoint's].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rounds: Option<u32>,
    /// Shards of the training data, and so jobs a round (one provider each, as the market
    /// matches them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=256))]
    shards: u32,
    /// Local optimizer steps each job runs on its shard.
    #[arg(long, default_value_t = 20)]
    steps: u32,
    /// Samples a step.
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Momentum (SGD), or β1 (AdamW).
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// The optimizer of the local steps.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgdm)]
    optimizer: OptimizerArg,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Widths of the hidden layers, comma-separated (the model is 64 → these → 10).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    hidden: Vec<u32>,
    /// Samples held out to score each round (no job trains on them).
    #[arg(long, default_value_t = 297)]
    held_out: u32,
    /// The run's seed: the split, the first weights and every job's seed come from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How the shards' updates become one.
    #[arg(long, value_enum, default_value_t = AggregateArg::Mean)]
    aggregate: AggregateArg,
    /// Keep a checkpoint here after every round (weights, round, configuration, history).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Go on from the checkpoint in --checkpoint, with its configuration (only --rounds
    /// changes it).
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// The data set: digits.csv.gz [default: $SIETCH_MODEL_DIR or ~/.cache/sietch/models,
    /// where `bash scripts/digits.sh` puts it].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Share of the training jobs spot-checked (re-run elsewhere and compared exactly), in
    /// parts per million.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    sampling_ppm: u32,
    /// Fuel limit of each job (a job of 20 steps of 32 burns a few times 10^7).
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// The most one job may cost, in the token's base units (10^18 is one token of 18
    /// decimals).
    #[arg(
        long,
        value_name = "UNITS",
        default_value_t = 1_000_000_000_000_000_000
    )]
    price_cap: u128,
    /// Seconds a job may run before its shard is submitted again (to whichever provider the
    /// market matches), so that a round never waits on one node.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    straggler_secs: u64,
    /// Attempts at one shard in one round before the run stops.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    max_attempts: u32,
    /// Run every job here, in a sandbox configured as a provider's, instead of buying them:
    /// the same rounds, the same updates, what they would cost.
    #[arg(long)]
    local: bool,
    /// With --local: the price per 10^9 fuel the cost is estimated at, in base units.
    #[arg(long, default_value_t = 1_000, requires = "local")]
    price_per_gfuel: u128,
}

impl DigitsArgs {
    fn config(&self) -> TrainConfig {
        let mut dims = vec![64];
        dims.extend(&self.hidden);
        dims.push(10);
        TrainConfig {
            rounds: self.rounds.unwrap_or(10),
            shards: self.shards,
            held_out: self.held_out,
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            optimizer: match self.optimizer {
                OptimizerArg::Sgdm => Optimizer::Sgdm,
                OptimizerArg::Adamw => Optimizer::Adamw,
            },
            weight_decay: self.weight_decay,
            seed: self.seed,
            dims,
            aggregate: match self.aggregate {
                AggregateArg::Mean => Aggregate::Mean,
                AggregateArg::Median => Aggregate::Median,
            },
            limits: JobLimits {
                fuel: self.fuel,
                sampling_ppm: self.sampling_ppm,
                price_cap: self.price_cap.to_string(),
                ..JobLimits::default()
            },
            // Here jobs run one after another: none is a straggler.
            straggler_secs: if self.local {
                86_400
            } else {
                self.straggler_secs
            },
            max_attempts: self.max_attempts,
        }
    }
}

/// The data set at `path`, or an error that says how to get it.
pub(super) fn open_data(path: &Path) -> anyhow::Result<Digits> {
    if !path.is_file() {
        anyhow::bail!(
            "no digits data set at {}: `bash scripts/digits.sh` (part of `bash scripts/setup.sh`) \
             extracts it from scikit-learn's wheel, or pass --data FILE",
            path.display()
        );
    }
    Digits::open(path).with_context(|| format!("reading {}", path.display()))
}

pub(crate) fn run(args: TrainArgs) -> anyhow::Result<()> {
    let a = match args.command {
        TrainCommand::Digits(a) => a,
        TrainCommand::Text(t) => return super::train_text::run(*t),
    };
    let data = open_data(
        &a.data
            .clone()
            .unwrap_or_else(sietch_sdk::train::digits::default_path),
    )?;
    if a.local {
        let runner = super::train_local::LocalRunner::new(a.price_per_gfuel)?;
        return block_on(drive(runner, &a, &data, "here, in a provider's sandbox"));
    }
    let client = a.target.writer()?;
    let place = format!("on the market through {}", client.url());
    let runner = MarketRunner::new(client, sietch_guests::TRAIN.to_vec());
    block_on(drive(runner, &a, &data, &place))
}

/// The trainer the arguments ask for: new (checkpointed if asked) or resumed.
fn trainer<R: ShardRunner>(runner: R, a: &DigitsArgs, data: &Digits) -> anyhow::Result<Trainer<R>> {
    match (&a.checkpoint, a.resume) {
        (Some(dir), true) => {
            let mut t = Trainer::resume(runner, dir, data)?;
            if let Some(r) = a.rounds {
                t.set_rounds(r);
            }
            Ok(t)
        }
        (Some(dir), false) => Ok(Trainer::new(runner, a.config(), data)?.checkpoint_to(dir)?),
        (None, _) => Ok(Trainer::new(runner, a.config(), data)?),
    }
}

async fn drive<R: ShardRunner>(
    runner: R,
    a: &DigitsArgs,
    data: &Digits,
    place: &str,
) -> anyhow::Result<()> {
    let mut t = trainer(runner, a, data)?;
    let json = a.target.json;
    let start = t.evaluate();
    let c = t.config().clone();
    if json {
        println!(
            "{}",
            json!({"kind": "start", "rounds_done": t.rounds_done(), "held_out": start, "config": c})
        );
    } else {
        println!("{}", header(&c, t.weights().params().len(), place));
        println!(
            "round {}: held-out loss {:.4}, accuracy {:.1}% ({})",
            t.rounds_done(),
            start.loss,
            start.accuracy * 100.0,
            if t.rounds_done() == 0 {
                "the first weights"
            } else {
                "from the checkpoint"
            }
        );
    }
    let mut view = RoundView::new(a.target.show(), c.rounds, json);
    t.run(&mut |e| view.on(e)).await?;
    drop(view);
    let total: u128 = t
        .history()
        .iter()
        .map(|r| r.paid.parse().unwrap_or(0))
        .sum();
    let end = t.evaluate();
    let weights = format!("0x{}", blake3::hash(&t.weights().encode()).to_hex());
    if json {
        println!(
            "{}",
            json!({"kind": "summary", "rounds_done": t.rounds_done(), "held_out": end,
                   "paid": total.to_string(), "weights_hash": weights})
        );
    } else {
        println!(
            "trained {} rounds: held-out accuracy {:.1}%, loss {:.4}; paid {} in all; weights {}{}",
            t.rounds_done(),
            end.accuracy * 100.0,
            end.loss,
            tokens(&total.to_string()),
            super::client::short(&weights),
            a.checkpoint
                .as_ref()
                .map(|d| format!("; checkpoint in {}", d.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The run's first line.
fn header(c: &TrainConfig, params: usize, place: &str) -> String {
    let dims: Vec<String> = c.dims.iter().map(u32::to_string).collect();
    format!(
        "training a {} perceptron ({params} parameters) on the digits: {} shards, {} held out; \
         each job {} steps of {} ({} lr {}), updates by {}; {} rounds {place}",
        dims.join("-"),
        c.shards,
        c.held_out,
        c.steps,
        c.batch,
        c.optimizer.name(),
        c.lr,
        match c.aggregate {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
        },
        c.rounds,
    )
}

/// One round's line.
pub(super) fn round_line(r: &RoundReport, rounds: u32) -> String {
    format!(
        "round {}/{rounds}: held-out loss {:.4}, accuracy {:.1}%; train loss {:.4}; {} jobs, {} \
         re-submitted, {} dropped; paid {}; {:.1} s",
        r.round,
        r.held_out.loss,
        r.held_out.accuracy * 100.0,
        r.train_loss,
        r.jobs,
        r.resubmits,
        r.dropped,
        tokens(&r.paid),
        r.millis as f64 / 1000.0,
    )
}

/// What a run shows as its events come: a line per round (and per dropped or failed job)
/// on stdout, the round in progress on stderr; or every event as a JSON line.
struct RoundView {
    show: Show,
    rounds: u32,
    json: bool,
    progress: Option<Progress>,
    done: u32,
    shards: u32,
}

impl RoundView {
    fn new(show: Show, rounds: u32, json: bool) -> Self {
        Self {
            show,
            rounds,
            json,
            progress: None,
            done: 0,
            shards: 0,
        }
    }

    fn on(&mut self, e: &TrainEvent) {
        if self.json
            && let Ok(line) = serde_json::to_string(e)
        {
            println!("{line}");
        }
        match e {
            TrainEvent::RoundStarted { round, shards } => {
                self.done = 0;
                self.shards = *shards;
                self.progress = Some(Progress::start(
                    self.show,
                    format!("round {round}/{}: {shards} jobs submitted", self.rounds),
                ));
            }
            TrainEvent::ShardDone { round, .. } => {
                self.done += 1;
                if let Some(p) = &self.progress {
                    p.set(format!(
                        "round {round}/{}: {} of {} updates in",
                        self.rounds, self.done, self.shards
                    ));
                }
            }
            TrainEvent::Dropped {
                round,
                shard,
                provider,
                reason,
                ..
            } if !self.json => self.note(format!(
                "  round {round}, shard {shard}: the update of {} dropped: {reason}",
                provider
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), super::client::show)
            )),
            TrainEvent::Failed {
                round,
                shard,
                reason,
            } if !self.json => self.note(format!(
                "  round {round}, shard {shard}: no update ({})",
                super::client::show(reason)
            )),
            TrainEvent::RoundDone(r) => {
                self.progress = None;
                if !self.json {
                    println!("{}", round_line(r, self.rounds));
                }
            }
            _ => {}
        }
    }

    /// A line on stdout (a spinner on stderr redraws below it).
    fn note(&self, line: String) {
        println!("{line}");
    }
}
