//! Spot checks over real sandboxes: every job and re-run is a wasmtime run of a WAT guest,
//! every commitment an EIP-712 signature. Cheaters are wrappers around the honest run. Each
//! statistical test states its formula and bound; seeds are fixed, printed on failure and
//! overridden with `SIETCH_SEED`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::{Arc, Mutex};

use sietch_market::{Comparison, Input, InvalidResult, Limits};
use sietch_verifier::{
    Decision, Difference, Event, Evidence, FaultKind, ReputationTable, ResultError, VerifierConfig,
};
use support::sandboxed::{Sandboxed, float_tolerance, guest};
use support::{Behaviour, Buyer, Compute, Network, among_honest, assert_rate, seed};

fn market(sb: &Arc<Sandboxed>, behaviours: Vec<Behaviour>, seed: u64) -> Network {
    Network::of(behaviours, sb.clone(), seed)
}

#[test]
fn wrong_output_on_a_fraction_of_jobs_is_caught_at_rate_q_times_f() {
    let seed = seed(11);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let net = market(&sb, among_honest(&[Behaviour::Wrong(0.2)], 4), seed);
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    buyer.keep_checks = true;
    let jobs = 2_000;
    let t = buyer.send(0, jobs, &|n| {
        sb.spec(fnv, format!("input {n}").into_bytes(), 250_000)
    });
    // Each job is caught independently with probability q·f = 0.25 · 0.2 = 0.05 (honest
    // re-runners catch every sampled cheat): 100 expected, within 4 sd (±39).
    assert_rate("caught", t.caught, t.jobs, 0.05, seed);
    assert_rate("sampled", t.sampled, t.jobs, 0.25, seed);
    assert_eq!((t.missed, t.false_accusations), (0, 0), "seed {seed}");
    let cheater = net.providers[0].offer.provider;
    for c in t
        .checks
        .iter()
        .filter(|c| c.decision == Decision::ProviderWrong)
    {
        // One re-run, then two more: three of three differ.
        assert_eq!(c.runs.len(), 3, "seed {seed}");
        let e = c
            .evidence
            .as_ref()
            .expect("evidence for a provider found wrong");
        e.verify().unwrap();
        assert_eq!(Evidence::decode(&e.encode()).unwrap(), *e);
        assert_eq!(e.differing(), 3);
        assert!(c.observations().contains(&(cheater, Event::CheckFailed)));
    }
    // Reputation from those checks: every sampled job of the cheater is a check, failed when
    // caught; at f = 0.2 it scores about 0.8 / (0.8 + 10 · 0.2) = 0.29, below a provider never
    // seen (0.5), while the honest re-runners only pass.
    let mut table = ReputationTable::default();
    t.checks.iter().for_each(|c| table.record_check(c));
    let rep = |i: usize| *table.get(&net.providers[i].offer.provider).unwrap();
    assert_eq!(
        (rep(0).checks_passed, rep(0).checks_failed),
        ((t.sampled - t.caught) as u64, t.caught as u64)
    );
    assert!(
        (0.2..0.4).contains(&rep(0).score()),
        "seed {seed}: {}",
        rep(0).score()
    );
    assert!(
        (1..5).all(|i| rep(i).checks_failed == 0 && rep(i).score() > 0.9),
        "seed {seed}"
    );
}

#[test]
fn a_lazy_provider_replaying_old_output_is_caught_at_rate_q_times_f() {
    let seed = seed(12);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let net = market(&sb, among_honest(&[Behaviour::Lazy(0.3)], 4), seed);
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    let t = buyer.send(0, 1_500, &|n| {
        sb.spec(fnv, format!("input {n}").into_bytes(), 200_000)
    });
    // It replays its previous output on 30% of jobs (all but the first, which has nothing to
    // replay): caught with probability q·f = 0.2 · 0.3 = 0.06 per job, 90 expected (±37).
    assert_rate("cheated", t.cheated, t.jobs, 0.3, seed);
    assert_rate("caught", t.caught, t.jobs, 0.06, seed);
    assert_eq!((t.missed, t.false_accusations), (0, 0), "seed {seed}");
}

#[test]
fn a_colluding_pair_is_caught_unless_the_partner_is_drawn() {
    let seed = seed(13);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let run = |same_block: bool| {
        let ledger = Arc::new(Mutex::new(Default::default()));
        let a = Behaviour::Colluder {
            rate: 0.5,
            ledger: ledger.clone(),
        };
        let b = Behaviour::Colluder { rate: 0.0, ledger };
        let mut net = market(&sb, among_honest(&[a, b], 4), seed);
        if same_block {
            net.providers[1].offer.addresses = vec!["/ip4/51.0.0.99/tcp/4001".into()];
        }
        let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
        buyer.keep_checks = true;
        let t = buyer.send(0, 1_000, &|n| {
            sb.spec(fnv, format!("input {n}").into_bytes(), 300_000)
        });
        (t, net.providers[1].offer.provider)
    };

    // Partner B in another /24: the first re-run is drawn from B and four honest providers, so
    // a sampled cheat is caught with probability 4/5: q·f·4/5 = 0.3 · 0.5 · 0.8 = 0.12 per job
    // (120 expected, ±42), and missed with q·f·1/5 = 0.03 (30, ±22).
    let (t, b) = run(false);
    assert_rate("caught", t.caught, t.jobs, 0.12, seed);
    assert_rate("missed", t.missed, t.jobs, 0.03, seed);
    assert_eq!(t.false_accusations, 0, "seed {seed}");
    // When B is drawn in the escalation instead, it sides with A against the majority and
    // fails the check too.
    let b_failed = t
        .checks
        .iter()
        .filter(|c| c.observations().contains(&(b, Event::CheckFailed)))
        .count();
    assert!(b_failed > 0, "seed {seed}");

    // Partner B in A's /24: never drawn, so every sampled cheat is caught: q·f = 0.15 (150, ±46).
    let (t, b) = run(true);
    assert_rate("caught", t.caught, t.jobs, 0.15, seed);
    assert_eq!((t.missed, t.false_accusations), (0, 0), "seed {seed}");
    assert!(
        t.checks
            .iter()
            .all(|c| c.runs.iter().all(|r| r.provider != b))
    );
}

#[test]
fn honest_providers_are_never_accused_in_exact_mode() {
    let seed = seed(14);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    // Provider 6 cheats on half of what it runs, re-runs included.
    let mut behaviours = among_honest(&[], 6);
    behaviours.push(Behaviour::Wrong(0.5));
    let net = market(&sb, behaviours, seed);
    let liar = net.providers[6].offer.provider;
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    buyer.keep_checks = true;
    let mut table = ReputationTable::default();
    let mut upheld = 0;
    for target in 0..3 {
        let t = buyer.send(target, 100, &|n| {
            sb.spec(fnv, format!("{target}/{n}").into_bytes(), 1_000_000)
        });
        assert_eq!((t.sampled, t.false_accusations), (100, 0), "seed {seed}");
        for c in &t.checks {
            table.record_check(c);
            match c.decision {
                Decision::Passed => assert!(c.runs.iter().all(|r| r.agreement.agrees())),
                // The liar was drawn and lied; the majority sided with the honest provider.
                Decision::ProviderRight => {
                    upheld += 1;
                    assert!(
                        c.runs
                            .iter()
                            .all(|r| r.agreement.agrees() || r.provider == liar)
                    );
                }
                other => panic!("seed {seed}: {other:?}"),
            }
        }
    }
    assert!(
        upheld > 0,
        "seed {seed}: the liar was never drawn and caught lying"
    );
    let liar_rep = table.get(&liar).unwrap();
    assert_eq!(liar_rep.checks_failed, upheld as u64);
    for p in &net.providers[..6] {
        assert_eq!(
            table.get(&p.offer.provider).map_or(0, |r| r.checks_failed),
            0
        );
    }
}

#[test]
fn gpu_style_floats_off_in_the_last_bit_pass_tolerance_and_fail_exact() {
    let seed = seed(15);
    let sb = Arc::new(Sandboxed::new());
    let floats = sb.load(&guest("floats"));
    let behaviours = among_honest(&[Behaviour::Jitter("y.f32".into())], 4);
    let net = market(&sb, behaviours, seed);
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    buyer.keep_checks = true;
    let mut decide = |comparison: Comparison| {
        let t = buyer.send(0, 20, &|n| {
            let mut spec = sb.spec(
                floats,
                format!("floats {n} abcdefgh").into_bytes(),
                1_000_000,
            );
            spec.verification.comparison = comparison.clone();
            spec
        });
        assert_eq!(t.sampled, 20);
        t.checks
    };
    // f32 keeps 24 bits: the last one is 2^-23 ≈ 1.2e-7 of the value at most.
    for c in decide(float_tolerance(1e-6, 0.0)) {
        assert_eq!(c.decision, Decision::Passed, "seed {seed}");
    }
    for c in decide(float_tolerance(1e-8, 0.0)) {
        assert_eq!(c.decision, Decision::ProviderWrong, "seed {seed}");
        assert!(matches!(
            &c.runs[0].agreement,
            sietch_verifier::Agreement::Differs(Difference::Value { name, .. }) if name == "y.f32"
        ));
        assert!(c.evidence.unwrap().tolerance);
    }
    for c in decide(Comparison::Exact) {
        assert_eq!(c.decision, Decision::ProviderWrong, "seed {seed}");
        c.evidence.unwrap().verify().unwrap();
    }
}

#[test]
fn outputs_hash_like_the_sandbox_for_every_outcome() {
    let sb = Sandboxed::new();
    let mut tags = std::collections::BTreeSet::new();
    for name in [
        "fnv",
        "floats",
        "sandbox/wasi_tour",
        "sandbox/deep_recursion",
        "sandbox/infinite_loop",
        "sandbox/memory_bomb",
        "sandbox/nan",
        "sandbox/hello",
    ] {
        let module = sb.load(&guest(name));
        let mut spec = sb.spec(module, b"some stdin".to_vec(), 0);
        spec.args = vec!["arg".into()];
        spec.inputs = vec![Input {
            name: "data".into(),
            blob: sb.put(b"input data".to_vec()),
        }];
        spec.limits = Limits {
            fuel: 5_000_000,
            memory_bytes: 4 << 20,
            ..spec.limits
        };
        // `run` asserts that the verifier's hash of the outputs is the sandbox's.
        let run = sb.run(sietch_market::B256::repeat_byte(3), &spec);
        tags.insert(run.outputs.outcome.tag());
    }
    // Exited 0 and 7, trapped (stack overflow), out of fuel, over the memory limit.
    assert!(tags.len() >= 5, "{tags:?}");
}

#[test]
fn a_rerun_signed_by_the_wrong_key_is_a_fault_and_is_replaced() {
    let seed = seed(16);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let behaviours = among_honest(&[Behaviour::Honest, Behaviour::WrongKey], 2);
    let net = market(&sb, behaviours, seed);
    let forger = net.providers[1].offer.provider;
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    buyer.keep_checks = true;
    let t = buyer.send(0, 60, &|n| {
        sb.spec(fnv, format!("input {n}").into_bytes(), 1_000_000)
    });
    let mut faults = 0;
    for c in &t.checks {
        assert_eq!(c.decision, Decision::Passed, "seed {seed}");
        for f in &c.faults {
            faults += 1;
            assert_eq!(f.provider, forger);
            assert!(matches!(
                f.kind,
                FaultKind::BadResult(ResultError::Invalid(InvalidResult::Signature(_)))
            ));
            assert!(c.observations().contains(&(forger, Event::CheckFailed)));
        }
    }
    // Drawn first in about a third of the checks.
    assert_rate("faults", faults, 60, 1.0 / 3.0, seed);
}
