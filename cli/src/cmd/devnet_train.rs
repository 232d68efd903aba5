//! `sietch devnet --train`: instead of the stream of sample jobs, the devnet's buyer trains
//! the digits model across its providers (the SDK's round driver through the buyer's HTTP
//! API, as `sietch train digits` does against any node), a line per round showing the
//! held-out loss fall, with the market's disputes and slashes as they happen. Needs the
//! digits set (`bash scripts/digits.sh`); the devnet never downloads it.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::Context;
use sietch_node::events::NodeEvent;
use sietch_sdk::Client;
use sietch_sdk::train::{JobLimits, MarketRunner, TrainConfig, TrainEvent, Trainer};
use sietch_testkit::devnet::Devnet;

/// What the settlement reports of the training jobs.
pub(super) struct Trained {
    /// Jobs that ended.
    pub(super) jobs: u64,
    /// Updates dropped (a spot check that did not pass).
    pub(super) dropped: u64,
    /// Paid for them, base units.
    pub(super) paid: u128,
}

/// Trains `rounds` rounds of `shards` jobs across the devnet's providers, every job
/// spot-checked at `sampling_ppm`.
pub(super) async fn train(
    net: &mut Devnet,
    dir: &Path,
    rounds: u32,
    shards: u32,
    sampling_ppm: u32,
) -> anyhow::Result<Trained> {
    let data = super::train::open_data(&sietch_sdk::train::digits::default_path())?;
    let token = std::fs::read_to_string(dir.join("buyer/api-token"))
        .context("the devnet buyer's API token")?;
    let client = Client::new(&format!("http://{}", net.buyer.api))?.with_token(token.trim());
    let runner = MarketRunner::new(client, sietch_guests::TRAIN.to_vec());
    let config = TrainConfig {
        rounds,
        shards,
        limits: JobLimits {
            sampling_ppm,
            ..JobLimits::default()
        },
        // Two cores run every node here: a job waits its turn before it is a straggler.
        straggler_secs: 180,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(runner, config, &data)?;
    let start = t.evaluate();
    println!(
        "training: the digits model (64-32-10), {rounds} rounds of {shards} jobs across the \
         providers; held-out loss {:.4}, accuracy {:.1}% before the first",
        start.loss,
        start.accuracy * 100.0
    );
    let mut on = |e: &TrainEvent| match e {
        TrainEvent::RoundDone(r) => println!("{}", super::train::round_line(r, rounds)),
        TrainEvent::Dropped {
            round,
            shard,
            provider,
            reason,
            ..
        } => println!(
            "  round {round}, shard {shard}: the update of {} dropped: {reason}",
            provider.as_deref().unwrap_or("?")
        ),
        _ => {}
    };
    // The run borrows the trainer: it ends with this block.
    let ended = {
        let run = t.run(&mut on);
        tokio::pin!(run);
        let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
        loop {
            tokio::select! {
                r = &mut run => break r,
                _ = &mut ctrl_c => {
                    println!("Ctrl-C: training stopped");
                    break Ok(());
                }
                Some((who, e)) = net.events.recv() => {
                    let notable = matches!(
                        e,
                        NodeEvent::Disputed { .. }
                            | NodeEvent::Verdict { .. }
                            | NodeEvent::TicketSettled { .. }
                            | NodeEvent::Withheld { .. }
                    );
                    if notable {
                        println!("  {who}: {e}");
                    }
                }
            }
        }
    };
    if let Err(e) = ended {
        println!("training failed: {e}");
    }
    let h = t.history();
    let trained = Trained {
        jobs: h.iter().map(|r| u64::from(r.jobs)).sum(),
        dropped: h.iter().map(|r| u64::from(r.dropped)).sum(),
        paid: h.iter().map(|r| r.paid.parse::<u128>().unwrap_or(0)).sum(),
    };
    let end = t.evaluate();
    println!(
        "training: {} rounds, held-out accuracy {:.1}% (from {:.1}%), {} jobs, {} updates dropped",
        h.len(),
        end.accuracy * 100.0,
        start.accuracy * 100.0,
        trained.jobs,
        trained.dropped,
    );
    Ok(trained)
}

impl Trained {
    /// Puts the training jobs into the devnet's tally, for its settlement.
    pub(super) fn count(
        &self,
        done: &std::sync::atomic::AtomicU64,
        caught: &std::sync::atomic::AtomicU64,
    ) {
        done.fetch_add(self.jobs, Ordering::Relaxed);
        caught.fetch_add(self.dropped, Ordering::Relaxed);
    }
}
