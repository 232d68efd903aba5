//! The round driver's policy under faults, through its public API: a runner that stands in
//! for the market (the market's own path is `system/tests/train.rs`, with real nodes and the
//! real guest) and fails, stalls and returns updates found wrong on a script, so that each
//! of the driver's answers is seen: re-submission after a failure, after a drop and past a
//! straggler's deadline, each avoiding the provider that failed, was dropped or straggles;
//! the round waits for no single job; updates aggregate in shard order; a checkpointed run
//! resumes where it stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Mutex;
use std::time::Duration;

use sietch_sdk::train::runner::Blob;
use sietch_sdk::train::{
    Aggregate, Attempt, AttemptEnd, Digits, ShardJob, ShardRunner, TrainConfig, TrainEvent,
    Trainer, Weights,
};

/// A job the scripted runner saw: round, shard, attempt, seed, the providers it avoids.
type Seen = (u32, u32, u32, String, Vec<String>);

/// What the scripted runner does with one attempt.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Act {
    /// Deliver the shard's update.
    Deliver,
    /// Fail: no provider delivered.
    Fail,
    /// The check found the provider wrong.
    Wrong,
    /// Deliver, but only after a long while.
    Stall,
}

/// Delivers, for shard `k`, an update of every parameter `0.01 · (k + 1)`; acts on
/// `(round, shard, attempt)` as `script` says (deliver otherwise); records every job (round,
/// shard, attempt, seed, the providers it avoids). Attempt `a` runs on `provider-a`, which
/// it notes in the job's placement as soon as it starts, as the market's runner does.
#[derive(Debug)]
struct Scripted {
    script: Vec<((u32, u32, u32), Act)>,
    seen: Mutex<Vec<Seen>>,
    dims: Vec<u32>,
}

impl Scripted {
    fn new(script: Vec<((u32, u32, u32), Act)>) -> Self {
        Self {
            script,
            seen: Mutex::new(Vec::new()),
            dims: vec![64, 4, 10],
        }
    }
}

impl ShardRunner for Scripted {
    async fn publish(&self, _: &Blob) -> sietch_sdk::train::Result<()> {
        Ok(())
    }

    async fn run(&self, job: &ShardJob) -> Attempt {
        let seed = job
            .args
            .iter()
            .find_map(|a| a.strip_prefix("seed="))
            .unwrap()
            .to_owned();
        self.seen.lock().unwrap().push((
            job.round,
            job.shard,
            job.attempt,
            seed,
            job.avoid.clone(),
        ));
        let provider = format!("provider-{}", job.attempt);
        job.placed.note(&provider);
        let act = self
            .script
            .iter()
            .find(|(at, _)| *at == (job.round, job.shard, job.attempt))
            .map_or(Act::Deliver, |(_, a)| *a);
        let mut update = Weights::zeros(&self.dims).unwrap().encode();
        let value = 0.01f32 * (job.shard + 1) as f32;
        for chunk in update[4 + 4 + 4 * self.dims.len()..].chunks_exact_mut(4) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        let end = match act {
            Act::Fail => AttemptEnd::Failed {
                reason: "the provider vanished".into(),
            },
            Act::Wrong => AttemptEnd::FoundWrong {
                decision: "ProviderWrong".into(),
            },
            Act::Deliver | Act::Stall => {
                if act == Act::Stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                AttemptEnd::Delivered {
                    update: Some(update),
                    stats: Some(
                        br#"{"loss_first":2.5,"loss_last":1.5,"loss_mean":2.0,"steps":2,"samples":9,"params":310}"#
                            .to_vec(),
                    ),
                    check: None,
                }
            }
        };
        Attempt {
            job_id: Some(format!(
                "0x{:02x}{:02x}{:02x}",
                job.round, job.shard, job.attempt
            )),
            provider: Some(provider),
            paid: if matches!(end, AttemptEnd::Delivered { .. }) {
                10
            } else {
                0
            },
            fuel: 100,
            end,
        }
    }
}

/// 60 made-up samples in the digits CSV's form.
fn data() -> Digits {
    let mut s = String::new();
    for i in 0..60usize {
        for j in 0..64usize {
            s.push_str(&format!("{}.0,", (i * 7 + j) % 17));
        }
        s.push_str(&format!("{}\n", i % 10));
    }
    Digits::from_bytes(s.as_bytes()).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        rounds: 2,
        shards: 3,
        held_out: 12,
        steps: 2,
        batch: 4,
        dims: vec![64, 4, 10],
        straggler_secs: 1,
        max_attempts: 3,
        ..TrainConfig::default()
    }
}

#[tokio::test]
async fn a_round_replaces_failed_wrong_and_stalled_jobs_and_averages_in_shard_order() {
    let runner = Scripted::new(vec![
        ((1, 0, 1), Act::Stall),
        ((1, 1, 1), Act::Fail),
        ((1, 2, 1), Act::Wrong),
    ]);
    let data = data();
    let mut t = Trainer::new(runner, config(), &data).unwrap();
    let start = t.weights().clone();
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    let report = t.round(&mut |e| events.push(e.clone())).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the round waited for the stalled job: {:?}",
        started.elapsed()
    );
    assert_eq!(report.round, 1);
    assert_eq!(report.resubmits, 3, "{report:?}");
    assert_eq!(report.dropped, 1);
    assert_eq!(report.failed, 1);
    assert_eq!(report.jobs, 5, "the stalled job never ended: {report:?}");
    assert_eq!(report.paid, "30", "only the delivered jobs are paid");
    assert_eq!(report.providers, ["provider-2"; 3]);
    assert_eq!(report.train_loss, 2.0);
    assert_eq!(report.held_out.samples, 12);

    // Every attempt at a shard carries the same seed: a re-run gives the same update.
    let seen = t.runner().seen.lock().unwrap().clone();
    for k in 0..3u32 {
        let seeds: Vec<&String> = seen.iter().filter(|s| s.1 == k).map(|s| &s.3).collect();
        assert_eq!(seeds.len(), 2, "{seen:?}");
        assert_eq!(seeds[0], seeds[1]);
    }
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Submitted {
                shard,
                reason: Some(r),
                ..
            } => Some(format!("{shard}: {r}")),
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("0: straggler")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("1: failed")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("2: update dropped")),
        "{reasons:?}"
    );
    // Each shard's second attempt avoids the first one's provider: the straggler (still
    // running), the one that failed, the one whose update was dropped; first attempts avoid
    // nobody.
    for s in &seen {
        let want: &[&str] = if s.2 == 1 { &[] } else { &["provider-1"] };
        assert_eq!(s.4, want, "{s:?}");
    }
    for e in &events {
        if let TrainEvent::Submitted {
            shard,
            attempt,
            avoid,
            ..
        } = e
        {
            let want: &[&str] = if *attempt == 1 { &[] } else { &["provider-1"] };
            assert_eq!(avoid, want, "shard {shard}, attempt {attempt}");
        }
    }
    assert!(matches!(events.last(), Some(TrainEvent::RoundDone(r)) if *r == report));

    // The mean of 0.01, 0.02, 0.03 summed in that order in f32, added to every parameter.
    let mean = ((0.01f32 + 0.02f32) + 0.03f32) / 3.0;
    for (after, before) in t.weights().params().iter().zip(start.params()) {
        assert_eq!(*after, *before + mean);
    }
}

#[tokio::test]
async fn a_shard_out_of_attempts_fails_the_round_and_the_median_ignores_an_outlier() {
    let runner = Scripted::new(vec![
        ((1, 1, 1), Act::Fail),
        ((1, 1, 2), Act::Wrong),
        ((1, 1, 3), Act::Fail),
    ]);
    let mut t = Trainer::new(runner, config(), &data()).unwrap();
    let e = t.round(&mut |_| {}).await.unwrap_err().to_string();
    assert!(e.contains("shard 1") && e.contains("3 attempts"), "{e}");
    assert_eq!(t.rounds_done(), 0);

    let cfg = TrainConfig {
        aggregate: Aggregate::Median,
        ..config()
    };
    let mut t = Trainer::new(Scripted::new(Vec::new()), cfg, &data()).unwrap();
    let start = t.weights().clone();
    t.round(&mut |_| {}).await.unwrap();
    assert_eq!(t.weights().params()[0], start.params()[0] + 0.02);
}

#[tokio::test]
async fn a_checkpointed_run_resumes_where_it_stopped_and_ends_where_an_unbroken_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let mut whole = Trainer::new(Scripted::new(Vec::new()), config(), &data).unwrap();
    whole.run(&mut |_| {}).await.unwrap();
    assert_eq!(whole.rounds_done(), 2);

    let mut first = Trainer::new(Scripted::new(Vec::new()), config(), &data)
        .unwrap()
        .checkpoint_to(dir.path())
        .unwrap();
    first.round(&mut |_| {}).await.unwrap();
    drop(first);
    // Another run may not take the directory over.
    assert!(
        Trainer::new(Scripted::new(Vec::new()), config(), &data)
            .unwrap()
            .checkpoint_to(dir.path())
            .is_err()
    );
    let mut resumed = Trainer::resume(Scripted::new(Vec::new()), dir.path(), &data).unwrap();
    assert_eq!(resumed.rounds_done(), 1);
    resumed.run(&mut |_| {}).await.unwrap();
    assert_eq!(resumed.rounds_done(), 2);
    assert_eq!(resumed.weights(), whole.weights());
    let seen = resumed.runner().seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.0 == 2),
        "resumed at round 2: {seen:?}"
    );

    // Other data is refused.
    let mut other = String::new();
    for i in 0..60usize {
        other.push_str(&format!("{}{}\n", "0,".repeat(64), i % 10));
    }
    let other = Digits::from_bytes(other.as_bytes()).unwrap();
    let e = Trainer::resume(Scripted::new(Vec::new()), dir.path(), &other).unwrap_err();
    assert!(e.to_string().contains("trained on data"), "{e}");
}
