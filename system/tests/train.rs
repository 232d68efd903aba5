//! Training across providers, whole-system: a real anvil, four real `sietch node run`
//! providers (one of them poisoning its updates), a buyer node, the training guest of
//! `sietch-guests`, and the SDK's round driver buying every shard job through the buyer's
//! HTTP API (docs/training.md). The reference is the same run on one machine: `sietch train
//! digits --local --aggregate median` (the same rounds and jobs in a provider's sandbox, no
//! market).
//!
//! The cheat: `provider-0`, the cheapest, answers every job with its honest update scaled by
//! −10 (`test_cheat_outputs = "scale=-10"`: gradient ascent at ten times the step), signed as
//! its result. Three jobs in four are spot-checked (`sampling_ppm` 750,000), so its poisoned
//! updates are caught where sampled (dropped by the driver, its shard re-submitted avoiding
//! it, its ticket disputed and its stake slashed) and some slip through unsampled in most
//! runs (1 − 0.25^n of its n jobs, about 3 in 4 runs). The buyer keeps one lane a provider
//! (`max_lanes = 1`), so a round's three shards go to three providers and the cheat holds at
//! most one of them: the coordinate-wise median of three then lies between the two honest
//! updates, whatever the third. `system/tests/train_median.rs` measures what the mean would
//! do with the same poison (it wrecks the model) and the median's margin.
//!
//! Four providers, not three: a spot check that finds a mismatch asks two more independent
//! re-runs (the verifier's escalation, `docs/protocol.md` §2.6), so a cheat is decided only
//! when three honest providers besides the cheater can re-run it; with two the check is
//! undecided, and the driver drops such an update too but nobody is slashed.
//!
//! Needs the digits set (`bash scripts/digits.sh`); without it the test says it is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use alloy::primitives::{Address, U256, address};
use serde_json::Value;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_sdk::Client;
use sietch_sdk::train::{
    Aggregate, Digits, JobLimits, MarketRunner, TrainConfig, TrainEvent, Trainer,
};
use sietch_testkit::devnet::E18;
use sietch_testkit::system::*;
use sietch_testkit::until;

const ROUNDS: u32 = 5;
const SHARDS: u32 = 3;
/// The escrow's `BURN_ADDRESS`, where slashes burn to.
const BURN: Address = address!("000000000000000000000000000000000000dEaD");
/// How far below the one-machine run's held-out accuracy the market's may end when poisoned
/// updates slipped through unsampled: 8 points. With one poisoned update of three in *every*
/// round (the worst this market allows), the median's run ends 4.7 points below the clean one
/// (92.3% against 97.0%) and is at most 6.4 points below it after any round
/// (`train_median.rs`, docs/training.md); 8 points cover that with room for the rounds the
/// poison slips through in, and the mean's run, at 10.4% (chance), is far outside it.
const MARGIN: f32 = 0.08;

/// The run: `sietch train digits`'s defaults (which the one-machine run takes) with the
/// median, three jobs in four spot-checked, tiny prices.
fn config() -> TrainConfig {
    TrainConfig {
        rounds: ROUNDS,
        shards: SHARDS,
        aggregate: Aggregate::Median,
        limits: JobLimits {
            sampling_ppm: 750_000,
            price_cap: (E18 / 10).to_string(),
            ..JobLimits::default()
        },
        max_attempts: 8,
        ..TrainConfig::default()
    }
}

/// The one-machine run's summary line (`sietch train digits --local --json`).
fn one_machine(data: &Path) -> Value {
    let rounds = ROUNDS.to_string();
    let shards = SHARDS.to_string();
    let out = sietch_testkit::process::run(
        sietch_testkit::process::sietch().to_str().unwrap(),
        &[
            "train",
            "digits",
            "--local",
            "--json",
            "--rounds",
            &rounds,
            "--shards",
            &shards,
            "--aggregate",
            "median",
            "--data",
            data.to_str().unwrap(),
        ],
    )
    .unwrap_or_else(|e| panic!("the one-machine run: {e}"));
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "summary")
        .unwrap_or_else(|| panic!("no summary line in {out}"))
}

/// Tokens held by `who`, all together.
async fn held(m: &Market, who: &[Address]) -> U256 {
    let mut sum = U256::ZERO;
    for a in who {
        sum += m.balance(*a).await.unwrap();
    }
    sum
}

/// Three honest providers and one that poisons every update (and is the cheapest, so it gets
/// work): its sampled updates are dropped and their shards re-submitted elsewhere (avoiding
/// it), its ticket disputed and its stake slashed; the run ends within [`MARGIN`] of the
/// one-machine run's accuracy (on exactly its weights when no poisoned update slipped
/// through); no token was made or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_training_across_providers_drops_a_cheats_updates_and_matches_one_machine() {
    let Some(path) = sietch_sdk::train::digits::cached() else {
        eprintln!("skipped: no digits data set (bash scripts/digits.sh fetches it)");
        return;
    };
    let data = Digits::open(&path).unwrap();
    let started = Instant::now();
    let reference = tokio::task::spawn_blocking({
        let path = path.clone();
        move || one_machine(&path)
    })
    .await
    .unwrap();
    let local_secs = started.elapsed().as_secs_f64();

    let mut cfg = MarketConfig::new(4, 1);
    cfg.tweak = |name, c| {
        c.price_per_gfuel = if name == "provider-0" { 1_000 } else { 2_000 };
        if name == "provider-0" {
            c.test_cheat_ppm = 1_000_000;
            c.test_cheat_outputs = "scale=-10".into();
        }
        // One job in flight a provider: a round's shards on three providers.
        c.max_lanes = 1;
    };
    let mut m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let cheater = m.providers[0].evm;
    let mut holders: Vec<Address> = m.providers.iter().chain(&m.buyers).map(|n| n.evm).collect();
    holders.extend([m.escrow, BURN]);
    let before = held(&m, &holders).await;

    let client = Client::new(&format!("http://{}", buyer.api))
        .unwrap()
        .with_token(&buyer.token);
    let runner = MarketRunner::new(client, sietch_guests::TRAIN.to_vec());
    let mut t = Trainer::new(runner, config(), &data).unwrap();
    let first = t.evaluate();
    let mut events = Vec::new();
    let market_started = Instant::now();
    let ran = t.run(&mut |e| events.push(e.clone())).await;
    let market_secs = market_started.elapsed().as_secs_f64();
    if let Err(e) = ran {
        panic!("the run failed: {e}\n{events:#?}\n{}", m.dump());
    }
    let h = t.history();
    eprintln!(
        "one machine: {local_secs:.1} s; the market: {market_secs:.1} s for {ROUNDS} rounds \
         ({:?} s a round); held-out accuracy {:.3} → {:.3}",
        h.iter().map(|r| r.millis / 1000).collect::<Vec<_>>(),
        first.accuracy,
        t.evaluate().accuracy,
    );

    // Poisoned updates taken: the cheater's, delivered unsampled (a sampled one is dropped).
    let from_cheater =
        |p: &Option<String>| p.as_deref().and_then(|p| p.parse::<Address>().ok()) == Some(cheater);
    let slipped = events
        .iter()
        .filter(|e| matches!(e, TrainEvent::ShardDone { provider, .. } if from_cheater(provider)))
        .count();
    // JSON carries the f32 in its shortest form, which reads back to the same f32.
    let reference_acc = reference["held_out"]["accuracy"].as_f64().unwrap() as f32;
    let acc = t.evaluate().accuracy;
    eprintln!(
        "poisoned updates taken unsampled: {slipped}; held-out accuracy {acc:.4} against \
         {reference_acc:.4} on one machine"
    );
    let hash = format!("0x{}", blake3::hash(&t.weights().encode()).to_hex());
    if slipped == 0 {
        // Every update the market took is the one the guest computes: the one-machine
        // run's model, bit for bit.
        assert_eq!(
            Value::from(hash),
            reference["weights_hash"],
            "the market's run ended elsewhere than the one-machine run: {reference}"
        );
        assert_eq!(acc, reference_acc);
    }
    // The median held the poison off: within the margin of the one-machine run.
    assert!(
        acc >= reference_acc - MARGIN,
        "held-out accuracy {acc} against {reference_acc} on one machine, {slipped} poisoned \
         updates taken"
    );
    assert!(acc >= 0.85, "held-out accuracy {acc} after {ROUNDS} rounds");
    let losses: Vec<f32> = h.iter().map(|r| r.held_out.loss).collect();
    assert!(
        losses.last() < losses.first() && losses[0] < first.loss,
        "the held-out loss did not fall: {} then {losses:?}",
        first.loss
    );

    // Updates came from several providers, none from a job whose check did not pass.
    let done: Vec<(&Option<String>, &Option<String>)> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::ShardDone {
                provider, check, ..
            } => Some((provider, check)),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), (ROUNDS * SHARDS) as usize);
    for (_, check) in &done {
        // `None`: not sampled (or the decision not noted yet: the job was paid, so it passed).
        assert!(
            matches!(check.as_deref(), None | Some("Passed" | "ProviderRight")),
            "an update was taken with check {check:?}"
        );
    }
    let noted = done.iter().filter(|(_, c)| c.is_some()).count();
    assert!(noted >= 1, "no check noted: {done:?}");
    let sources: BTreeSet<_> = done.iter().filter_map(|(p, _)| p.as_deref()).collect();
    assert!(sources.len() >= 2, "every update came from {sources:?}");
    let cheats: Vec<&TrainEvent> = events
        .iter()
        .filter(|e| {
            matches!(e, TrainEvent::Dropped { provider: Some(p), .. }
                if p.parse::<Address>().ok() == Some(cheater))
        })
        .collect();
    assert!(
        !cheats.is_empty(),
        "no update of the cheater was dropped: {events:#?}"
    );
    // A shard whose update was the cheater's and dropped went elsewhere: every later attempt
    // at it avoided the cheater, and its update came from another provider.
    for c in &cheats {
        let TrainEvent::Dropped { round, shard, .. } = c else {
            continue;
        };
        let after = events.iter().skip_while(|e| !std::ptr::eq(*e, *c));
        for e in after {
            match e {
                TrainEvent::Submitted {
                    round: r,
                    shard: s,
                    avoid,
                    ..
                } if (r, s) == (round, shard) => assert!(
                    avoid
                        .iter()
                        .any(|a| a.parse::<Address>().ok() == Some(cheater)),
                    "round {r}, shard {s} re-submitted without avoiding the cheater: {avoid:?}"
                ),
                TrainEvent::ShardDone {
                    round: r,
                    shard: s,
                    provider,
                    ..
                } if (r, s) == (round, shard) => {
                    assert!(
                        !from_cheater(provider),
                        "round {r}, shard {s}: {provider:?}"
                    );
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        h.iter().map(|r| r.dropped).sum::<u32>() as usize,
        events
            .iter()
            .filter(|e| matches!(e, TrainEvent::Dropped { .. }))
            .count()
    );

    // Caught: its ticket disputed and settled against it, its stake slashed, the buyer
    // compensated.
    until!(m, "the cheater's stake slashed", || {
        let m = &m;
        async move { Ok(m.escrow().accounts(cheater).call().await?.stake == 0) }
    });
    let chain = m.escrow_events().await.unwrap();
    assert!(
        chain.iter().any(|e| matches!(e,
            SietchEscrowEvents::TicketSettled(s) if s.outcome == 2)),
        "no ticket settled provider-wrong"
    );
    assert!(chain.iter().any(|e| matches!(e,
        SietchEscrowEvents::Slashed(s) if s.provider == cheater && s.compensation > U256::ZERO)));

    // Conserved: what the nodes, the escrow and the burn address hold together is what they
    // held before the run (payments, stakes, slashes and fees only move tokens among them).
    assert_eq!(held(&m, &holders).await, before, "tokens were made or lost");
    eprintln!("the whole test: {:.1} s", started.elapsed().as_secs_f64());
}
