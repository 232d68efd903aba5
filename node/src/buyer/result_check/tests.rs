//! The unit tests of [`super`]: each refusal, and an operator's signature.

use alloy::signers::local::PrivateKeySigner;
use sietch_market::eip712::TypedData;
use sietch_market::settlement::ResultCommitment;
use sietch_market::{
    Address, B256, ComputeCapability, GpuNeeds, Hardware, Limits, Outcome, Prices, PublicKey,
    VerificationPolicy,
};

use super::*;

const DOMAIN: Domain = Domain::new(31337, Address::repeat_byte(0xee));

fn key() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap()
}

fn spec(gpus: u8) -> JobSpec {
    let mut s = JobSpec {
        module: B256::repeat_byte(1),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 1_000,
            output_bytes: 1 << 10,
        },
        requirements: Default::default(),
        verification: VerificationPolicy::default(),
        price_cap: 1_000_000,
        deadline: 100,
    };
    if gpus > 0 {
        s.requirements.gpu = Some(GpuNeeds {
            count: gpus,
            models: vec![],
            min_memory_bytes: 0,
            min_compute_capability: ComputeCapability { major: 7, minor: 0 },
        });
    }
    s
}

fn offer() -> Offer {
    Offer {
        provider: PublicKey([3; 32]),
        evm_address: key().address(),
        hardware: Hardware::default(),
        features: vec![],
        prices: Prices {
            per_gfuel: 10,
            per_gpu_second: 1_000,
        },
        stake: 1_000,
        addresses: vec![],
        sequence: 1,
        expires_at: 100,
        max_input_bytes: 0,
        cached_blobs: vec![],
    }
}

fn ticket(spec: &JobSpec) -> Ticket {
    Ticket {
        job_id: B256::repeat_byte(2),
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(4),
        cumulative_before: U256::ZERO,
        max_amount: U256::from(5_000),
        deadline: 200,
        check_commit: B256::repeat_byte(5),
        per_gfuel: 10,
        per_gpu_second: 1_000,
    }
}

/// An honest result for `ticket`: one output file, signed with the offer's key.
fn honest(t: &Ticket) -> JobResult {
    let mut r = JobResult {
        job_id: t.job_id,
        outcome: Outcome::Exited { code: 0 },
        stdout: b"hello".to_vec(),
        files: [("out.txt".to_string(), b"42".to_vec())].into(),
        commitment: ResultCommitment {
            job_id: t.job_id,
            spec_hash: t.spec_hash,
            channel_id: t.channel_id,
            output_hash: B256::ZERO,
            fuel_used: 100_000_000,
            gpu_millis: 0,
            // 0.1 Gfuel at 10 per Gfuel.
            amount: U256::from(1),
        },
        signature: [0; 65],
    };
    r.commitment.output_hash = r.output_hash().unwrap();
    resign(&mut r);
    r
}

fn resign(r: &mut JobResult) {
    r.signature = r.commitment.sign(&DOMAIN, &key()).unwrap();
}

/// Checks `result` for the usual spec, ticket and offer, without a chain: only the offer's
/// account signs.
fn hold(spec: &JobSpec, t: &Ticket, result: &JobResult) -> Result<(), ResultRefused> {
    futures::executor::block_on(hold_to_commitment(&DOMAIN, spec, t, result, &offer(), None))
}

#[test]
fn an_honest_result_holds() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    hold(&s, &t, &honest(&t)).unwrap();
}

#[test]
fn a_result_for_another_job_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.job_id = B256::repeat_byte(9);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::WrongJob))
    ));
    let mut r = honest(&t);
    r.commitment.job_id = B256::repeat_byte(9);
    resign(&mut r);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::WrongJob))
    ));
}

#[test]
fn a_result_for_another_spec_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.commitment.spec_hash = B256::repeat_byte(9);
    resign(&mut r);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::WrongSpec))
    ));
}

#[test]
fn a_result_for_another_channel_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.commitment.channel_id = B256::repeat_byte(9);
    resign(&mut r);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::WrongChannel))
    ));
}

#[test]
fn a_charge_over_the_ticket_maximum_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.commitment.amount = t.max_amount + U256::from(1);
    resign(&mut r);
    let e = hold(&s, &t, &r).unwrap_err();
    assert!(matches!(e, ResultRefused::OverMax { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the result charges 5001 over the ticket's 5000"
    );
}

#[test]
fn a_charge_over_the_metered_usage_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    // Under the ticket's maximum, over what 0.1 Gfuel costs at the offer's prices.
    r.commitment.amount = U256::from(2);
    resign(&mut r);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::OverMetered { amount, metered })
            if amount == U256::from(2) && metered == U256::from(1)
    ));
}

#[test]
fn more_gpu_time_than_the_job_allows_is_refused() {
    // No GPU asked for: none may be billed.
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.commitment.gpu_millis = 5;
    resign(&mut r);
    let e = hold(&s, &t, &r).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the result bills 5 GPU-ms; the job allows at most 0"
    );
    // Two GPUs for 1 s: up to 2,000 GPU-ms, and that is billable.
    let (s, t) = (spec(2), ticket(&spec(2)));
    let mut r = honest(&t);
    r.commitment.gpu_millis = 2_001;
    resign(&mut r);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::TooMuchGpu {
            billed: 2_001,
            allowed: 2_000
        })
    ));
    r.commitment.gpu_millis = 2_000;
    r.commitment.amount = U256::from(2_001);
    resign(&mut r);
    hold(&s, &t, &r).unwrap();
}

#[test]
fn a_result_signed_by_another_key_is_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    let other = PrivateKeySigner::from_bytes(&B256::repeat_byte(8)).unwrap();
    r.signature = r.commitment.sign(&DOMAIN, &other).unwrap();
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::Signature(_)))
    ));
    // Signed by the right key for another escrow.
    let elsewhere = Domain::new(1, Address::repeat_byte(0xee));
    r.signature = r.commitment.sign(&elsewhere, &key()).unwrap();
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::Signature(_)))
    ));
    // A change to the commitment after signing.
    let mut r = honest(&t);
    r.commitment.fuel_used += 1;
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::Signature(_)))
    ));
}

#[test]
fn an_operators_signature_holds_only_where_the_operator_is_accepted_for_the_account() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let op = PrivateKeySigner::from_bytes(&B256::repeat_byte(9)).unwrap();
    let mut r = honest(&t);
    r.signature = r.commitment.sign(&DOMAIN, &op).unwrap();
    // Without a chain to say whose operator it is, only the account itself signs.
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::Signature(_)))
    ));
    // Accepted for the account (as the escrow says: `chain::signers`), it holds...
    hold_signed_by(&DOMAIN, &s, &t, &r, &offer(), op.address()).unwrap();
    // ...and accepting it accepts no other key.
    let mut forged = honest(&t);
    let other = PrivateKeySigner::from_bytes(&B256::repeat_byte(8)).unwrap();
    forged.signature = forged.commitment.sign(&DOMAIN, &other).unwrap();
    assert!(matches!(
        hold_signed_by(&DOMAIN, &s, &t, &forged, &offer(), op.address()),
        Err(ResultRefused::Invalid(InvalidResult::Signature(_)))
    ));
}

#[test]
fn outputs_with_bad_names_are_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    for bad in ["../etc/passwd", "", "a/b"] {
        let mut r = honest(&t);
        r.files = [(bad.to_string(), b"x".to_vec())].into();
        assert!(
            matches!(hold(&s, &t, &r), Err(ResultRefused::Invalid(InvalidResult::BadOutputName { ref name, .. })) if name == bad),
            "{bad:?}"
        );
    }
    // Two outputs of one name do not decode at all (`net::wire`).
}

#[test]
fn outputs_that_do_not_hash_to_the_commitment_are_refused() {
    let (s, t) = (spec(0), ticket(&spec(0)));
    let mut r = honest(&t);
    r.stdout = b"hellO".to_vec();
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::OutputsMismatch))
    ));
    let mut r = honest(&t);
    r.files.insert("out.txt".into(), b"43".to_vec());
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::OutputsMismatch))
    ));
    // An outcome no run can give.
    let mut r = honest(&t);
    r.outcome = Outcome::from_wire(200, 0);
    assert!(matches!(
        hold(&s, &t, &r),
        Err(ResultRefused::Invalid(InvalidResult::OutputsMismatch))
    ));
}
