//! The [`Trainer`]: a run's state (round, weights, history) and the rounds it drives,
//! reported as [`TrainEvent`]s.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::config::TrainConfig;
use super::digits::{self, Digits, Sample};
use super::eval::{self, Evaluation};
use super::round::{self, RoundPlan};
use super::runner::{Blob, ShardRunner, ShardStats};
use super::weights::Weights;
use super::{Result, TrainError};

/// What happened in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// The round, from 1 (the weights after it are round `round`'s).
    pub round: u32,
    /// Mean over the shards of the guest's mean training loss.
    pub train_loss: f32,
    /// The new weights on the held-out set (the driver's forward pass).
    pub held_out: Evaluation,
    /// Paid for the round's jobs, token base units.
    pub paid: String,
    /// Jobs that ended (delivered, failed or dropped).
    pub jobs: u32,
    /// Shards submitted again (after a failure, a straggler's deadline or a drop).
    pub resubmits: u32,
    /// Updates dropped: spot check not passed, or unusable.
    pub dropped: u32,
    /// Jobs that failed (no provider delivered).
    pub failed: u32,
    /// Fuel of the jobs that delivered.
    pub fuel: u64,
    /// Wall time of the round, milliseconds.
    pub millis: u64,
    /// The provider of each shard's update, in shard order.
    pub providers: Vec<String>,
}

/// Progress of a run, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrainEvent {
    /// A round began.
    RoundStarted {
        /// The round, from 1.
        round: u32,
        /// Its jobs.
        shards: u32,
    },
    /// A shard job was submitted.
    Submitted {
        /// The round.
        round: u32,
        /// The shard.
        shard: u32,
        /// Its attempt in the round, from 1.
        attempt: u32,
        /// Why, when it is not the first: the last failure, or a straggler.
        reason: Option<String>,
        /// The providers it must not go to: those of this shard's attempts in the round that
        /// failed, gave an update that was dropped, or are still running past the straggler
        /// deadline (empty for a first attempt).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        avoid: Vec<String>,
    },
    /// A shard's update was accepted.
    ShardDone {
        /// The round.
        round: u32,
        /// The shard.
        shard: u32,
        /// The job.
        job_id: Option<String>,
        /// Its provider.
        provider: Option<String>,
        /// The guest's mean training loss.
        loss: f32,
        /// The spot check's decision, when sampled.
        check: Option<String>,
    },
    /// A job gave no update: no provider delivered.
    Failed {
        /// The round.
        round: u32,
        /// The shard.
        shard: u32,
        /// Why.
        reason: String,
    },
    /// A job's update was dropped: its check found it wrong or could not decide, or it was
    /// unusable.
    Dropped {
        /// The round.
        round: u32,
        /// The shard.
        shard: u32,
        /// The job.
        job_id: Option<String>,
        /// Its provider.
        provider: Option<String>,
        /// Why.
        reason: String,
    },
    /// A round ended: the new weights are in place (and checkpointed, when asked).
    RoundDone(RoundReport),
}

/// A training run on a [`ShardRunner`].
#[derive(Debug)]
pub struct Trainer<R> {
    runner: R,
    config: TrainConfig,
    held_out: Vec<Sample>,
    shards: Vec<Blob>,
    data_hash: String,
    weights: Weights,
    history: Vec<RoundReport>,
    checkpoint: Option<PathBuf>,
}

impl<R: ShardRunner> Trainer<R> {
    /// A new run of `config` on `data`, from the driver's initial weights
    /// ([`Weights::init`] with the run's seed).
    pub fn new(runner: R, config: TrainConfig, data: &Digits) -> Result<Self> {
        let weights = Weights::init(&config.dims, config.seed)?;
        Self::with_state(runner, config, data, weights, Vec::new())
    }

    /// The run checkpointed in `dir`, to go on with (its configuration, weights and
    /// history; `data` must be the data set it trained on).
    pub fn resume(runner: R, dir: &Path, data: &Digits) -> Result<Self> {
        let c = Checkpoint::load(dir)?;
        if c.data != data.hash {
            return Err(TrainError::Checkpoint {
                dir: dir.display().to_string(),
                why: format!("it trained on data {}, not {}", c.data, data.hash),
            });
        }
        let mut t = Self::with_state(runner, c.config, data, c.weights, c.history)?;
        t.checkpoint = Some(dir.to_owned());
        Ok(t)
    }

    fn with_state(
        runner: R,
        config: TrainConfig,
        data: &Digits,
        weights: Weights,
        history: Vec<RoundReport>,
    ) -> Result<Self> {
        config.check(data.samples.len())?;
        if weights.dims() != config.dims.as_slice() {
            return Err(TrainError::Weights(format!(
                "dimensions {:?}, the configuration says {:?}",
                weights.dims(),
                config.dims
            )));
        }
        let split = data.split(
            config.seed,
            config.held_out as usize,
            config.shards as usize,
        )?;
        Ok(Self {
            runner,
            held_out: split.held_out,
            shards: split
                .shards
                .iter()
                .map(|s| Blob::new(digits::encode_sdg(s)))
                .collect(),
            data_hash: data.hash.clone(),
            config,
            weights,
            history,
            checkpoint: None,
        })
    }

    /// Checkpoints into `dir` after every round. A directory that holds another run's
    /// checkpoint is refused: resume that one, or choose another.
    pub fn checkpoint_to(mut self, dir: &Path) -> Result<Self> {
        if self.checkpoint.as_deref() != Some(dir) && Checkpoint::exists(dir) {
            return Err(TrainError::Checkpoint {
                dir: dir.display().to_string(),
                why: "it holds a run already: resume it, or give another directory".into(),
            });
        }
        self.checkpoint = Some(dir.to_owned());
        Ok(self)
    }

    /// Trains to `rounds` rounds in all (a resumed run can go further than it was set to).
    pub fn set_rounds(&mut self, rounds: u32) {
        self.config.rounds = rounds;
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The current weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Rounds done.
    pub fn rounds_done(&self) -> u32 {
        self.history.len() as u32
    }

    /// Each round's report, in order.
    pub fn history(&self) -> &[RoundReport] {
        &self.history
    }

    /// The held-out samples.
    pub fn held_out(&self) -> &[Sample] {
        &self.held_out
    }

    /// The runner.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// The current weights on the held-out set.
    pub fn evaluate(&self) -> Evaluation {
        eval::evaluate(&self.weights, &self.held_out)
    }

    /// Runs the next round: publishes the weights, runs the shard jobs, aggregates their
    /// updates, applies them, evaluates, checkpoints; `on` hears every event.
    pub async fn round(&mut self, on: &mut (dyn FnMut(&TrainEvent) + Send)) -> Result<RoundReport> {
        let number = self.rounds_done() + 1;
        let started = std::time::Instant::now();
        on(&TrainEvent::RoundStarted {
            round: number,
            shards: self.config.shards,
        });
        let weights = Blob::new(self.weights.encode());
        self.runner.publish(&weights).await?;
        for s in &self.shards {
            self.runner.publish(s).await?;
        }
        let plan = RoundPlan {
            round: number,
            weights,
            shards: &self.shards,
            config: &self.config,
        };
        let out = round::run(&self.runner, &plan, on).await?;
        let update = Weights::aggregate(&out.updates, self.config.aggregate)?;
        self.weights.apply(&update)?;
        let train_loss = mean_loss(&out.stats);
        let report = RoundReport {
            round: number,
            train_loss,
            held_out: self.evaluate(),
            paid: out.paid.to_string(),
            jobs: out.jobs,
            resubmits: out.resubmits,
            dropped: out.dropped,
            failed: out.failed,
            fuel: out.fuel,
            millis: started.elapsed().as_millis() as u64,
            providers: out.providers,
        };
        self.history.push(report.clone());
        if let Some(dir) = &self.checkpoint {
            Checkpoint {
                round: number,
                data: self.data_hash.clone(),
                config: self.config.clone(),
                weights: self.weights.clone(),
                history: self.history.clone(),
            }
            .save(dir)?;
        }
        on(&TrainEvent::RoundDone(report.clone()));
        Ok(report)
    }

    /// Runs rounds until [`TrainConfig::rounds`] are done.
    pub async fn run(&mut self, on: &mut (dyn FnMut(&TrainEvent) + Send)) -> Result<()> {
        while self.rounds_done() < self.config.rounds {
            self.round(on).await?;
        }
        Ok(())
    }
}

/// The mean of the shards' mean losses, in shard order.
fn mean_loss(stats: &[ShardStats]) -> f32 {
    let sum = stats.iter().fold(0.0f32, |a, s| a + s.loss_mean);
    sum / stats.len().max(1) as f32
}
