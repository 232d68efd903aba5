//! Training a model across providers: data-parallel rounds, each an ordinary set of jobs.
//!
//! The round driver splits a data set into a held-out set and `K` shards, publishes the
//! weights of round `r` as a blob, submits one job of the training guest per shard (seeded
//! from the run's seed, the round and the shard, so that every job is deterministic and a
//! spot check re-runs it exactly), gathers the updates, aggregates them in shard order
//! ([`Aggregate::Mean`], or [`Aggregate::Median`] against a poisoned update), applies them,
//! evaluates the result on the held-out set, checkpoints, and goes on with round `r + 1`.
//!
//! A shard job that fails, or is still running past [`TrainConfig::straggler_secs`], is
//! submitted again, avoiding the providers of the shard's failed, dropped and straggling
//! attempts in the round ([`ShardJob::avoid`], the job's `avoid` list in the node's API;
//! anywhere when only they are there), so a round never waits on one node. An update
//! whose spot check did not find it right (`ProviderWrong`, or a check that could not
//! decide) is dropped and its shard run again elsewhere. See docs/training.md.
//!
//! Modules: [`digits`] (the data set, its split, the shard format), [`weights`] (the
//! weights format, initialisation, aggregation), [`eval`] (the driver's forward pass),
//! [`runner`] (what runs a shard job: the [`ShardRunner`] trait and the market's
//! [`MarketRunner`]), `round` (one round: stragglers, drops), [`checkpoint`] (the directory
//! a run stops and resumes from), `config` (the [`TrainConfig`]: the run, the jobs' seeds and
//! arguments) and `driver` (the [`Trainer`] and its events). [`text`] is the second
//! model's data set and weights: a text corpus in byte ranges for the language-model guest.

pub mod checkpoint;
mod config;
pub mod digits;
mod driver;
pub mod eval;
mod round;
pub mod runner;
pub mod text;
pub mod weights;

pub use checkpoint::Checkpoint;
pub use config::{Aggregate, JobLimits, MAX_ATTEMPTS, MAX_SHARDS, Optimizer, TrainConfig};
pub use digits::{Digits, Sample, Split};
pub use driver::{RoundReport, TrainEvent, Trainer};
pub use eval::Evaluation;
pub use runner::{Attempt, AttemptEnd, MarketRunner, Placement, ShardJob, ShardRunner, ShardStats};
pub use weights::Weights;

/// The name the training guest reads the weights from, in `/input`.
pub const WEIGHTS_INPUT: &str = "weights.swt";
/// The name it reads its shard of the data from, in `/input`.
pub const SHARD_INPUT: &str = "shard.sdg";
/// The name it writes the weight update to (new − old), in `/output`.
pub const UPDATE_OUTPUT: &str = "update.swt";
/// The name it writes its training statistics to, in `/output`.
pub const STATS_OUTPUT: &str = "stats.json";

/// What can go wrong in a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The node refused or could not be reached.
    #[error(transparent)]
    Node(#[from] crate::Error),
    /// A file of the data set or the checkpoint could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The data set is not the digits CSV (`digits.csv.gz` of scikit-learn).
    #[error("the data set: {0}")]
    Data(String),
    /// Weights (or an update) not in the `SWT1` format, or of other dimensions.
    #[error("weights: {0}")]
    Weights(String),
    /// A configuration that cannot train (no shards, more shards than samples, ...).
    #[error("the configuration: {0}")]
    Config(String),
    /// The checkpoint directory holds something else, or another run.
    #[error("the checkpoint {dir}: {why}")]
    Checkpoint {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        why: String,
    },
    /// A shard found no provider that delivered a usable update within its attempts.
    #[error(
        "round {round}, shard {shard}: no usable update after {attempts} attempts; last: {last}"
    )]
    ShardExhausted {
        /// The round.
        round: u32,
        /// The shard.
        shard: u32,
        /// Attempts made.
        attempts: u32,
        /// Why the last one gave nothing usable.
        last: String,
    },
}

/// A result of the training module.
pub type Result<T> = std::result::Result<T, TrainError>;

/// An I/O error on `path`.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// splitmix64: the one deterministic generator of the driver (shuffles, initial weights),
/// simple enough to write again in any language that drives the same run.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (`0 < n ≤ 2^32`): Lemire's multiply-shift on the draw's
    /// top 32 bits, `((next >> 32) · n) >> 32`, as the guest shuffles (`rng_below`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64() >> 32) * n as u128) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    /// The generator's first outputs for seed 0, as published with splitmix64: a driver in
    /// another language checks its own against these.
    #[test]
    fn splitmix64_is_the_published_one() {
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(g.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut h = SplitMix64::new(7);
        for _ in 0..1000 {
            assert!(h.below(10) < 10);
        }
    }
}
