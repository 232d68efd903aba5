//! The check's rules and refusals, and the evidence bundle, over in-memory providers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::sync::Arc;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sietch_market::{B256, InvalidResult, JobSpec, Offer, Ticket, U256, job_id};
use sietch_verifier::{
    CheckError, Decision, Evidence, EvidenceError, Job, ResultError, RevealError, RunResult,
    Verifier, VerifierConfig, new_secret,
};
use support::{
    BUYER, Behaviour, Buyer, DOMAIN, Formula, NOW, Network, Provider, among_honest, assert_rate,
    formula_spec, seed,
};

fn market(behaviours: Vec<Behaviour>, seed: u64) -> Network {
    Network::of(behaviours, Arc::new(Formula), seed)
}

/// One job of provider 0, answered and signed, with its ticket and secret.
struct OneJob {
    spec: JobSpec,
    ticket: Ticket,
    secret: B256,
    result: RunResult,
}

fn one_job(net: &Network, spec: JobSpec, rng: &mut ChaCha20Rng) -> OneJob {
    let id = job_id(BUYER, 1, spec.hash());
    let (secret, commit) = new_secret(rng);
    let ticket = Ticket {
        job_id: id,
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(0xc0),
        cumulative_before: U256::ZERO,
        max_amount: U256::from(1_000),
        deadline: NOW + 60,
        check_commit: commit,
        per_gfuel: 0,
        per_gpu_second: 0,
    };
    let p = &net.providers[0];
    let run = p.answer(&*net.compute, id, &spec, Some(&ticket)).run;
    let result = p.sign(ticket.channel_id, id, &spec, run);
    OneJob {
        spec,
        ticket,
        secret,
        result,
    }
}

fn check(
    net: &Network,
    j: &OneJob,
    candidates: &[&Offer],
    rng: &mut ChaCha20Rng,
) -> Result<sietch_verifier::Check, CheckError> {
    let verifier = Verifier::new(net, DOMAIN, VerifierConfig::default());
    let job = Job {
        spec: &j.spec,
        ticket: &j.ticket,
        ticket_signature: Some([7; 65]),
        secret: j.secret,
        provider: &net.providers[0].offer,
        result: &j.result,
    };
    futures::executor::block_on(verifier.check(&job, candidates, NOW, rng))
}

fn always(reruns: u8) -> JobSpec {
    formula_spec(1, 1_000_000, reruns)
}

#[test]
fn refusals_name_what_is_wrong_with_the_buyers_records() {
    let mut rng = ChaCha20Rng::seed_from_u64(seed(21));
    let net = market(vec![Behaviour::Honest, Behaviour::Honest], 21);
    let offers = net.offers();
    let j = one_job(&net, always(1), &mut rng);

    let mut wrong_secret = OneJob {
        secret: B256::repeat_byte(1),
        ..clone(&j)
    };
    assert_eq!(
        check(&net, &wrong_secret, &offers, &mut rng).unwrap_err(),
        CheckError::Reveal(RevealError::WrongSecret)
    );
    wrong_secret.secret = j.secret;
    wrong_secret.ticket.job_id = B256::repeat_byte(2);
    assert!(matches!(
        check(&net, &wrong_secret, &offers, &mut rng),
        Err(CheckError::Ticket(_))
    ));
    // A result signed for the same job's ticket on another channel is not this ticket's.
    let mut other_channel = clone(&j);
    other_channel.ticket.channel_id = B256::repeat_byte(0xc9);
    assert_eq!(
        check(&net, &other_channel, &offers, &mut rng).unwrap_err(),
        CheckError::Ticket("its channel is not the result's")
    );
    let mut other_spec = clone(&j);
    other_spec.spec.price_cap += 1;
    assert!(matches!(
        check(&net, &other_spec, &offers, &mut rng),
        Err(CheckError::Ticket(_))
    ));
    // Signed by provider 1's key, not provider 0's.
    let mut forged = clone(&j);
    forged.result = net.providers[1].sign(
        j.ticket.channel_id,
        j.ticket.job_id,
        &j.spec,
        net.providers[0]
            .answer(&*net.compute, j.ticket.job_id, &j.spec, None)
            .run,
    );
    assert!(matches!(
        check(&net, &forged, &offers, &mut rng),
        Err(CheckError::Original(ResultError::Invalid(
            InvalidResult::Signature(_)
        )))
    ));
    // Tolerance mode needs the outputs, and they must be the signed ones.
    let mut tol = always(1);
    tol.verification.comparison = support::sandboxed::float_tolerance(1e-6, 0.0);
    let mut t = one_job(&net, tol, &mut rng);
    let outputs = t.result.outputs.take();
    assert_eq!(
        check(&net, &t, &offers, &mut rng).unwrap_err(),
        CheckError::Original(ResultError::MissingOutputs)
    );
    t.result.outputs = outputs.map(|mut o| {
        o.stdout.push(b'!');
        o
    });
    assert_eq!(
        check(&net, &t, &offers, &mut rng).unwrap_err(),
        CheckError::Original(ResultError::Invalid(InvalidResult::OutputsMismatch))
    );
}

fn clone(j: &OneJob) -> OneJob {
    OneJob {
        spec: j.spec.clone(),
        ticket: j.ticket,
        secret: j.secret,
        result: j.result.clone(),
    }
}

#[test]
fn unsampled_jobs_end_before_any_rerun() {
    let mut rng = ChaCha20Rng::seed_from_u64(seed(22));
    let net = market(vec![Behaviour::Wrong(1.0), Behaviour::Honest], 22);
    let j = one_job(&net, formula_spec(1, 0, 1), &mut rng);
    let c = check(&net, &j, &net.offers(), &mut rng).unwrap();
    assert_eq!(c.decision, Decision::NotSampled);
    assert!(c.pays() && c.runs.is_empty() && c.observations().is_empty());
    assert_eq!(net.reruns.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn too_few_independent_providers_is_undecided_and_pays() {
    let mut rng = ChaCha20Rng::seed_from_u64(seed(23));
    let mut net = market(
        vec![Behaviour::Wrong(1.0), Behaviour::Honest, Behaviour::Honest],
        23,
    );
    // Both others share the cheater's /24.
    for p in &mut net.providers[1..] {
        p.offer.addresses = vec!["/ip4/51.0.0.20/udp/4001/quic-v1".into()];
    }
    let j = one_job(&net, always(1), &mut rng);
    let c = check(&net, &j, &net.offers(), &mut rng).unwrap();
    assert_eq!(c.decision, Decision::Undecided { wanted: 1, got: 0 });
    assert!(c.pays() && c.evidence.is_none());

    // One independent provider: it catches the mismatch, but no two more can be found.
    net.providers[2].offer.addresses = vec!["/ip4/51.9.9.9/tcp/1".into()];
    let c = check(&net, &j, &net.offers(), &mut rng).unwrap();
    assert_eq!(c.decision, Decision::Undecided { wanted: 3, got: 1 });
    assert!(c.pays() && c.evidence.is_none() && c.observations().is_empty());
}

#[test]
fn unreachable_reruns_are_replaced_and_not_blamed() {
    let mut rng = ChaCha20Rng::seed_from_u64(seed(24));
    let net = market(vec![Behaviour::Honest; 4], 24);
    // Two offers the executor cannot reach, then the real ones.
    let ghosts: Vec<Offer> = (100..102)
        .map(|i| Provider::new(i, Behaviour::Honest, 24).offer)
        .collect();
    let mut candidates: Vec<&Offer> = ghosts.iter().collect();
    candidates.extend(net.offers());
    let j = one_job(&net, always(3), &mut rng);
    let c = check(&net, &j, &candidates, &mut rng).unwrap();
    assert_eq!(c.decision, Decision::Passed);
    assert_eq!(c.runs.len(), 3);
    assert!(
        c.faults
            .iter()
            .all(|f| ghosts.iter().any(|g| g.provider == f.provider))
    );
    assert_eq!(
        c.observations().len(),
        4,
        "the provider and three re-runs; no ghost"
    );
}

#[test]
fn majority_over_k_plus_two_reruns() {
    // k = 2, one liar among the re-run providers that always lies: when drawn first, the
    // escalation makes four re-runs of which one differs: the provider is right.
    let seed = seed(25);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let net = market(
        among_honest(&[Behaviour::Honest, Behaviour::Wrong(1.0)], 4),
        25,
    );
    let liar = net.providers[1].offer.provider;
    let mut seen = 0;
    for n in 0..40 {
        let j = one_job(&net, formula_spec(n, 1_000_000, 2), &mut rng);
        let c = check(&net, &j, &net.offers(), &mut rng).unwrap();
        if c.runs.iter().any(|r| r.provider == liar) {
            seen += 1;
            assert_eq!(c.decision, Decision::ProviderRight);
            assert_eq!(c.runs.len(), 4);
        } else {
            assert_eq!(c.decision, Decision::Passed);
        }
    }
    // The liar is in the first two of five draws with probability 2/5.
    assert_rate("seen", seen, 40, 0.4, seed);
}

#[test]
fn reading_the_commit_does_not_dodge_sampling() {
    // A provider that cheats only on jobs whose check commit "looks unsampled" (odd first
    // byte, half of them) cheats on f/2 of its jobs and is caught on q·f/2 of them: the
    // commit says nothing of the sampling.
    let seed = seed(26);
    let net = market(among_honest(&[Behaviour::CommitReader(0.4)], 3), seed);
    let mut buyer = Buyer::new(&net, VerifierConfig::default(), seed);
    let t = buyer.send(0, 4_000, &|n| formula_spec(n, 250_000, 1));
    assert_rate("cheated", t.cheated, t.jobs, 0.2, seed);
    assert_rate("caught", t.caught, t.jobs, 0.05, seed);
    assert_eq!((t.missed, t.false_accusations), (0, 0));
}

fn evidence(seed: u64) -> Evidence {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let net = market(among_honest(&[Behaviour::Wrong(1.0)], 3), seed);
    let j = one_job(&net, always(1), &mut rng);
    let c = check(&net, &j, &net.offers(), &mut rng).unwrap();
    assert_eq!(c.decision, Decision::ProviderWrong);
    c.evidence.unwrap()
}

#[test]
fn evidence_holds_together_and_tampering_shows() {
    let e = evidence(27);
    e.verify().unwrap();
    assert_eq!(e.votes.len(), 3);
    assert_eq!(Evidence::decode(&e.encode()).unwrap(), e);
    assert!(
        e.to_string()
            .contains("3 of 3 re-runs differ in exact mode"),
        "{e}"
    );

    let mut flipped = e.clone();
    flipped.votes[0].agrees = true;
    assert!(matches!(
        flipped.verify(),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut forged = e.clone();
    forged.votes[1].result.signature[10] ^= 1;
    assert!(matches!(
        forged.verify(),
        Err(EvidenceError::Signature { .. } | EvidenceError::Inconsistent(_))
    ));
    let mut minority = e.clone();
    minority.votes.truncate(0);
    assert!(matches!(
        minority.verify(),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut repeated = e.clone();
    repeated.votes[2] = repeated.votes[1];
    assert!(matches!(
        repeated.verify(),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut other_job = e.clone();
    other_job.ticket.job_id = B256::repeat_byte(9);
    assert!(matches!(
        other_job.verify(),
        Err(EvidenceError::Inconsistent(_))
    ));
    assert!(Evidence::decode(&e.encode()[..100]).is_err());
    let mut trailing = e.encode();
    trailing.push(0);
    assert!(Evidence::decode(&trailing).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn evidence_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Evidence::decode(&bytes);
    }

    #[test]
    fn evidence_with_a_byte_changed_decodes_to_something_else_or_fails(
        at in 0usize..4096,
        bit in 0u8..8,
    ) {
        static E: std::sync::OnceLock<Evidence> = std::sync::OnceLock::new();
        let e = E.get_or_init(|| evidence(28));
        let mut bytes = e.encode();
        let i = at % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(d) = Evidence::decode(&bytes) {
            prop_assert_ne!(&d, e);
        }
    }
}
