//! A run's configuration: the model, the split, the guest's hyperparameters, how updates
//! aggregate, each job's limits, and what a shard job's seed and arguments are.

use serde::{Deserialize, Serialize};

use super::digits;
pub use super::weights::Aggregate;
use super::weights::Weights;
use super::{Result, TrainError};

/// Most shards (jobs a round) a run may have.
pub const MAX_SHARDS: u32 = 256;
/// Most attempts at one shard in one round.
pub const MAX_ATTEMPTS: u32 = 16;

/// The optimizer the guest runs its local steps with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum.
    #[default]
    Sgdm,
    /// AdamW.
    Adamw,
}

impl Optimizer {
    /// Its name as the guest's `optimizer=` argument takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sgdm => "sgdm",
            Self::Adamw => "adamw",
        }
    }
}

/// A shard job's limits, spot-check policy and price cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLimits {
    /// Fuel limit.
    pub fuel: u64,
    /// Memory limit, bytes.
    pub memory_bytes: u64,
    /// Wall-clock limit, milliseconds.
    pub wall_time_ms: u64,
    /// Share of shard jobs spot-checked, parts per million.
    pub sampling_ppm: u32,
    /// Re-runs of a sampled job.
    pub reruns: u8,
    /// The most one job may cost, token base units (a decimal string: JSON numbers do not
    /// hold it exactly).
    pub price_cap: String,
    /// Seconds from submission by which its result must arrive.
    pub deadline_secs: u64,
}

impl JobLimits {
    /// The price cap as a number (0 if it is not one).
    pub fn price_cap(&self) -> u128 {
        self.price_cap.parse().unwrap_or(0)
    }
}

impl Default for JobLimits {
    /// 10^9 fuel (a round's shard of the digits set needs a few times 10^7), 64 MiB, 60 s,
    /// 10% sampled with one re-run, at most 1 token, 5 minutes.
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 60_000,
            sampling_ppm: 100_000,
            reruns: 1,
            price_cap: 1_000_000_000_000_000_000u128.to_string(),
            deadline_secs: 300,
        }
    }
}

/// A training run: the model, the data's split, the guest's hyperparameters, how updates
/// aggregate, and each job's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Rounds to train in all.
    pub rounds: u32,
    /// Shards, and so jobs, a round.
    pub shards: u32,
    /// Samples held out for evaluation (no job trains on them).
    pub held_out: u32,
    /// Local steps of each job.
    pub steps: u32,
    /// Samples a step.
    pub batch: u32,
    /// Learning rate.
    pub lr: f32,
    /// Momentum (SGD) or β1 (AdamW).
    pub momentum: f32,
    /// The guest's optimizer.
    pub optimizer: Optimizer,
    /// Weight decay.
    pub weight_decay: f32,
    /// The run's seed: the split, the initial weights and every job's seed come from it.
    pub seed: u64,
    /// The model's layer widths, inputs first (64 pixels) and classes last (10).
    pub dims: Vec<u32>,
    /// How the shards' updates become one.
    pub aggregate: Aggregate,
    /// Each shard job's limits.
    pub limits: JobLimits,
    /// Seconds a shard job may run before the same shard is submitted again.
    pub straggler_secs: u64,
    /// Attempts at one shard in one round before the round fails.
    pub max_attempts: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            rounds: 10,
            shards: 3,
            held_out: 297,
            steps: 20,
            batch: 32,
            lr: 0.1,
            momentum: 0.9,
            optimizer: Optimizer::Sgdm,
            weight_decay: 0.0,
            seed: 1,
            dims: vec![64, 32, 10],
            aggregate: Aggregate::Mean,
            limits: JobLimits::default(),
            straggler_secs: 120,
            max_attempts: 4,
        }
    }
}

impl TrainConfig {
    pub(super) fn check(&self, samples: usize) -> Result<()> {
        let bad = |why: String| Err(TrainError::Config(why));
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return bad(format!("{} shards (1 to {MAX_SHARDS})", self.shards));
        }
        if self.held_out as usize + self.shards as usize > samples {
            return bad(format!(
                "{} held out and {} shards from {samples} samples",
                self.held_out, self.shards
            ));
        }
        if self.steps == 0 || self.batch == 0 {
            return bad("steps and batch must be at least 1".into());
        }
        // The guest's own bounds (sandbox/guests/train/args.c), said here before any job.
        if !(self.lr > 0.0 && self.lr <= 1000.0) {
            return bad(format!("lr {}: want a number in (0, 1000]", self.lr));
        }
        if !(0.0..=0.999_999).contains(&self.momentum) {
            return bad(format!("momentum {}: want [0, 0.999999]", self.momentum));
        }
        if !(0.0..=1000.0).contains(&self.weight_decay) {
            return bad(format!(
                "weight decay {}: want [0, 1000]",
                self.weight_decay
            ));
        }
        if self.steps > 100_000 || self.batch > 4096 {
            return bad("at most 100000 steps and a batch of 4096".into());
        }
        if self.dims.first() != Some(&(digits::PIXELS as u32))
            || self.dims.last() != Some(&u32::from(digits::CLASSES))
        {
            return bad(format!(
                "dims {:?}: the digits model takes 64 inputs and gives 10 classes",
                self.dims
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return bad(format!(
                "{} attempts a shard (1 to {MAX_ATTEMPTS})",
                self.max_attempts
            ));
        }
        Weights::zeros(&self.dims).map(|_| ())
    }

    /// The seed of shard `shard`'s job in round `round` (from 0): the first 8 bytes,
    /// little-endian, of blake3(`"sietch-train seed"` ‖ run seed ‖ round ‖ shard), the run
    /// seed as u64 and the others as u32, all little-endian. Every attempt at the same shard
    /// and round gets the same seed, so that a re-submitted job gives the same update.
    pub fn job_seed(&self, round: u32, shard: u32) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"sietch-train seed");
        h.update(&self.seed.to_le_bytes());
        h.update(&round.to_le_bytes());
        h.update(&shard.to_le_bytes());
        let hash = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(hash.as_bytes().get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(first)
    }

    /// The guest's arguments for shard `shard` of round `round`.
    pub fn job_args(&self, round: u32, shard: u32) -> Vec<String> {
        vec![
            "mode=train".into(),
            format!("steps={}", self.steps),
            format!("batch={}", self.batch),
            format!("lr={}", self.lr),
            format!("momentum={}", self.momentum),
            format!("optimizer={}", self.optimizer.name()),
            format!("wd={}", self.weight_decay),
            format!("seed={}", self.job_seed(round, shard)),
        ]
    }
}
