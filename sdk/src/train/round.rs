//! One round's jobs: every shard submitted at once; a shard whose job failed, whose update
//! was dropped, or whose job is still running past the straggler deadline is submitted
//! again, up to the configured attempts, avoiding the providers of those attempts; the
//! round ends when every shard has a usable update (the first to arrive: every attempt at a
//! shard computes the same one).

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::config::TrainConfig;
use super::driver::TrainEvent;
use super::runner::{
    Attempt, AttemptEnd, Blob, Placement, ShardJob, ShardRunner, ShardStats, is_provider,
};
use super::weights::Weights;
use super::{Result, TrainError};

/// How often the round looks for stragglers while it waits.
const TICK: Duration = Duration::from_millis(500);

/// What a round runs.
pub(super) struct RoundPlan<'a> {
    pub(super) round: u32,
    pub(super) weights: Blob,
    pub(super) shards: &'a [Blob],
    pub(super) config: &'a TrainConfig,
}

/// What a round gave.
#[derive(Debug, Default)]
pub(super) struct RoundOutcome {
    /// One update per shard, in shard order.
    pub(super) updates: Vec<Weights>,
    pub(super) stats: Vec<ShardStats>,
    pub(super) providers: Vec<String>,
    pub(super) paid: u128,
    pub(super) jobs: u32,
    pub(super) resubmits: u32,
    pub(super) dropped: u32,
    pub(super) failed: u32,
    pub(super) fuel: u64,
}

/// One shard's progress in the round.
struct Shard {
    launched: u32,
    running: u32,
    last_launch: Instant,
    last_reason: String,
    accepted: Option<(Weights, ShardStats, String)>,
    /// Providers whose attempt failed or whose update was dropped.
    avoid: Vec<String>,
    /// Where each attempt was sent, as its runner noted it (a failed job's providers are
    /// among them).
    placed: Vec<Placement>,
}

impl Shard {
    /// Adds `provider` to the shard's avoid list (at most [`crate::MAX_AVOID`], each once).
    fn avoid(&mut self, provider: Option<&str>) {
        if let Some(p) = provider.filter(|p| is_provider(p))
            && !self.avoid.iter().any(|a| a == p)
            && self.avoid.len() < crate::MAX_AVOID
        {
            self.avoid.push(p.to_owned());
        }
    }

    /// What the next attempt avoids: the providers that failed or were dropped, and those
    /// of the attempts still running (a straggler's, when it is due for that reason).
    fn next_avoid(&mut self) -> Vec<String> {
        let placed: Vec<String> = self.placed.iter().flat_map(Placement::providers).collect();
        for p in placed {
            self.avoid(Some(&p));
        }
        self.avoid.clone()
    }
}

/// A usable update from a delivered job, or why it is not one.
fn usable(
    update: Option<&[u8]>,
    stats: Option<&[u8]>,
    check: Option<&str>,
    dims: &[u32],
) -> std::result::Result<(Weights, ShardStats), String> {
    match check {
        None | Some("Passed" | "ProviderRight") => {}
        Some(other) => return Err(format!("its spot check did not pass ({other})")),
    }
    let update = update.ok_or("it wrote no update.swt")?;
    let w = Weights::decode(update).map_err(|e| format!("its update: {e}"))?;
    if w.dims() != dims {
        return Err(format!("its update has dimensions {:?}", w.dims()));
    }
    if !w.is_finite() {
        return Err("its update is not finite".into());
    }
    let stats = stats.ok_or("it wrote no stats.json")?;
    let s: ShardStats =
        serde_json::from_slice(stats).map_err(|e| format!("its stats.json: {e}"))?;
    Ok((w, s))
}

/// One attempt, its job carried along for the bookkeeping.
async fn attempt<R: ShardRunner>(runner: &R, job: ShardJob) -> (ShardJob, Attempt) {
    let a = runner.run(&job).await;
    (job, a)
}

/// Runs the round.
pub(super) async fn run<R: ShardRunner>(
    runner: &R,
    plan: &RoundPlan<'_>,
    on: &mut (dyn FnMut(&TrainEvent) + Send),
) -> Result<RoundOutcome> {
    let cfg = plan.config;
    let straggler = Duration::from_secs(cfg.straggler_secs.max(1));
    let mut shards: Vec<Shard> = plan
        .shards
        .iter()
        .map(|_| Shard {
            launched: 0,
            running: 0,
            last_launch: Instant::now(),
            last_reason: String::new(),
            accepted: None,
            avoid: Vec::new(),
            placed: Vec::new(),
        })
        .collect();
    let mut out = RoundOutcome::default();
    let mut in_flight = FuturesUnordered::new();
    let job_of =
        |shard: u32, attempt: u32, avoid: Vec<String>, placed: Placement| -> Option<ShardJob> {
            Some(ShardJob {
                round: plan.round,
                shard,
                attempt,
                weights: plan.weights.clone(),
                data: plan.shards.get(shard as usize)?.clone(),
                // Rounds are numbered from 1; the seed of round r is derived from r − 1.
                args: cfg.job_args(plan.round - 1, shard),
                limits: cfg.limits.clone(),
                avoid,
                placed,
            })
        };
    loop {
        // Launch what is due: a shard's first job, or another after a failure, a drop, or
        // a straggler's deadline.
        for (k, s) in shards.iter_mut().enumerate() {
            if s.accepted.is_some() {
                continue;
            }
            let due = s.launched == 0 || s.running == 0 || s.last_launch.elapsed() >= straggler;
            if !due {
                continue;
            }
            if s.launched >= cfg.max_attempts {
                if s.running == 0 {
                    return Err(TrainError::ShardExhausted {
                        round: plan.round,
                        shard: k as u32,
                        attempts: s.launched,
                        last: s.last_reason.clone(),
                    });
                }
                continue;
            }
            let reason = match (s.launched, s.running) {
                (0, _) => None,
                (_, 0) => Some(s.last_reason.clone()),
                _ => Some(format!(
                    "straggler: no update after {} s",
                    straggler.as_secs()
                )),
            };
            s.launched += 1;
            s.running += 1;
            s.last_launch = Instant::now();
            if reason.is_some() {
                out.resubmits += 1;
            }
            let avoid = if s.launched > 1 {
                s.next_avoid()
            } else {
                Vec::new()
            };
            let placed = Placement::default();
            s.placed.push(placed.clone());
            let Some(job) = job_of(k as u32, s.launched, avoid.clone(), placed) else {
                continue;
            };
            on(&TrainEvent::Submitted {
                round: plan.round,
                shard: k as u32,
                attempt: s.launched,
                reason,
                avoid,
            });
            in_flight.push(attempt(runner, job));
        }
        if shards.iter().all(|s| s.accepted.is_some()) {
            break;
        }
        let next = if in_flight.is_empty() {
            tokio::time::sleep(TICK).await;
            None
        } else {
            tokio::select! {
                done = in_flight.next() => done,
                () = tokio::time::sleep(TICK) => None,
            }
        };
        let Some((job, a)) = next else { continue };
        let Some(s) = shards.get_mut(job.shard as usize) else {
            continue;
        };
        s.running = s.running.saturating_sub(1);
        out.jobs += 1;
        out.paid = out.paid.saturating_add(a.paid);
        let (round, shard) = (plan.round, job.shard);
        // A usable update with its check, or why there is none (`Err(None)`: no delivery).
        let verdict = match a.end {
            AttemptEnd::Delivered {
                update,
                stats,
                check,
            } => {
                out.fuel = out.fuel.saturating_add(a.fuel);
                usable(
                    update.as_deref(),
                    stats.as_deref(),
                    check.as_deref(),
                    &cfg.dims,
                )
                .map(|u| (u, check))
                .map_err(Some)
            }
            AttemptEnd::FoundWrong { decision } => Err(Some(format!(
                "its spot check found the provider wrong ({decision})"
            ))),
            AttemptEnd::Failed { reason } => {
                out.failed += 1;
                s.avoid(a.provider.as_deref());
                s.last_reason = format!("failed: {reason}");
                on(&TrainEvent::Failed {
                    round,
                    shard,
                    reason,
                });
                Err(None)
            }
        };
        match verdict {
            Ok(((w, st), check)) if s.accepted.is_none() => {
                on(&TrainEvent::ShardDone {
                    round,
                    shard,
                    job_id: a.job_id.clone(),
                    provider: a.provider.clone(),
                    loss: st.loss_mean,
                    check,
                });
                s.accepted = Some((w, st, a.provider.unwrap_or_default()));
            }
            // A later attempt at a shard already done: the same update again.
            Ok(_) | Err(None) => {}
            Err(Some(why)) => {
                out.dropped += 1;
                s.avoid(a.provider.as_deref());
                s.last_reason = format!("update dropped: {why}");
                on(&TrainEvent::Dropped {
                    round,
                    shard,
                    job_id: a.job_id,
                    provider: a.provider,
                    reason: why,
                });
            }
        }
    }
    for s in shards {
        if let Some((w, st, provider)) = s.accepted {
            out.updates.push(w);
            out.stats.push(st);
            out.providers.push(provider);
        }
    }
    Ok(out)
}
