//! Admission refusals, each built in the test and checked without a chain.

use alloy::signers::local::PrivateKeySigner;
use sietch_market::{ComputeCapability, Gpu, GpuNeeds, JobSpec};

use super::*;
use crate::provider::fixtures::{NOW, domain, offer, spec};

fn gpu(model: &str, memory_bytes: u64) -> Gpu {
    Gpu {
        model: model.into(),
        memory_bytes,
        compute_capability: ComputeCapability { major: 8, minor: 0 },
        driver: String::new(),
    }
}

/// A request for `spec` whose ticket pays the worst case at this offer's prices and
/// is signed by `key`, once `edit` is applied to the ticket.
fn request(key: &PrivateKeySigner, spec: JobSpec, edit: impl FnOnce(&mut Ticket)) -> JobRequest {
    let prices = jobs::ticket_prices(&spec, &offer().prices);
    let mut ticket = Ticket {
        job_id: B256::repeat_byte(1),
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(2),
        cumulative_before: U256::ZERO,
        max_amount: U256::from(jobs::max_cost(&spec, &offer().prices)),
        deadline: NOW + 3_600,
        check_commit: B256::repeat_byte(3),
        per_gfuel: prices.per_gfuel,
        per_gpu_second: prices.per_gpu_second,
    };
    edit(&mut ticket);
    let ticket_signature = ticket.sign(&domain(), key).unwrap();
    JobRequest {
        spec,
        ticket,
        ticket_signature,
        paying: None,
    }
}

fn check_with(req: &JobRequest, offer: &Offer, min_job_price: u128) -> Result<Address, Refusal> {
    let domain = domain();
    let terms = Terms {
        offer,
        min_job_price,
        domain: &domain,
    };
    check_request(req, &terms, NOW)
}

fn check(req: &JobRequest) -> Result<Address, Refusal> {
    check_with(req, &offer(), 0)
}

#[test]
fn a_fair_request_is_admitted_and_names_its_signer() {
    let key = PrivateKeySigner::random();
    let req = request(&key, spec(), |_| {});
    assert_eq!(check(&req).unwrap(), key.address());
}

#[test]
fn a_ticket_for_another_spec_is_refused() {
    let key = PrivateKeySigner::random();
    let req = request(&key, spec(), |t| t.spec_hash = B256::repeat_byte(7));
    let r = check(&req).unwrap_err();
    assert!(matches!(r, Refusal::SpecMismatch), "{r}");
    assert_eq!(r.reason(), RefuseReason::Other);
}

#[test]
fn a_deadline_that_leaves_no_time_to_claim_is_refused() {
    let key = PrivateKeySigner::random();
    let short = request(&key, spec(), |t| t.deadline = NOW + TICKET_MARGIN_SECS);
    let r = check(&short).unwrap_err();
    assert!(
        matches!(r, Refusal::DeadlineTooNear { deadline, now: NOW } if deadline == NOW + TICKET_MARGIN_SECS),
        "{r}"
    );
    let expired = request(&key, spec(), |t| t.deadline = NOW - 1);
    assert!(matches!(
        check(&expired),
        Err(Refusal::DeadlineTooNear { .. })
    ));
    let enough = request(&key, spec(), |t| t.deadline = NOW + TICKET_MARGIN_SECS + 1);
    assert!(check(&enough).is_ok());
}

#[test]
fn a_job_bigger_than_the_offer_is_refused_as_too_big() {
    let key = PrivateKeySigner::random();
    let mut s = spec();
    s.limits.memory_bytes = offer().hardware.memory_bytes + 1;
    let r = check(&request(&key, s.clone(), |_| {})).unwrap_err();
    assert!(matches!(r, Refusal::TooMuchMemory { .. }), "{r}");
    assert_eq!(r.reason(), RefuseReason::TooBig);
    s.limits.memory_bytes = offer().hardware.memory_bytes;
    assert!(
        check(&request(&key, s, |_| {})).is_ok(),
        "as much as offered fits"
    );

    let mut s = spec();
    s.limits.output_bytes = net::MAX_RESULT as u64;
    let r = check(&request(&key, s, |_| {})).unwrap_err();
    assert!(matches!(r, Refusal::TooMuchOutput { .. }), "{r}");
    assert_eq!(r.reason(), RefuseReason::TooBig);

    let mut s = spec();
    s.requirements.min_cpu_cores = 5;
    let r = check(&request(&key, s, |_| {})).unwrap_err();
    assert!(
        matches!(r, Refusal::TooFewCores { asked: 5, has: 4 }),
        "{r}"
    );
    assert_eq!(r.reason(), RefuseReason::TooBig);
}

#[test]
fn a_gpu_job_is_refused_without_a_gpu_that_fits() {
    let key = PrivateKeySigner::random();
    let mut s = spec();
    s.requirements.gpu = Some(GpuNeeds {
        count: 1,
        models: Vec::new(),
        min_memory_bytes: 16 << 30,
        min_compute_capability: ComputeCapability { major: 0, minor: 0 },
    });
    let req = request(&key, s, |_| {});
    let r = check(&req).unwrap_err();
    assert!(matches!(r, Refusal::NoGpu), "{r}");
    assert_eq!(r.reason(), RefuseReason::TooBig);
    let mut small = offer();
    small.hardware.gpus = vec![gpu("T4", 8 << 30)];
    let r = check_with(&req, &small, 0).unwrap_err();
    assert!(matches!(r, Refusal::GpusDoNotFit { count: 1, .. }), "{r}");
    assert!(r.to_string().contains("T4 (8192 MiB)"), "{r}");
    let mut big = offer();
    big.hardware.gpus = vec![gpu("A100", 40 << 30)];
    assert!(check_with(&req, &big, 0).is_ok());
}

#[test]
fn a_ticket_at_other_prices_than_the_offer_is_refused() {
    let key = PrivateKeySigner::random();
    let low = request(&key, spec(), |t| t.per_gfuel -= 1);
    let r = check(&low).unwrap_err();
    assert!(matches!(r, Refusal::WrongPrices { .. }), "{r}");
    assert_eq!(r.reason(), RefuseReason::PriceTooLow);
    // Higher is wrong too: the escrow holds the charge to the ticket's prices.
    let high = request(&key, spec(), |t| t.per_gfuel += 1);
    assert!(matches!(check(&high), Err(Refusal::WrongPrices { .. })));
    // A job without a GPU carries no GPU price, so no GPU time can be billed for it.
    let gpu_price = request(&key, spec(), |t| t.per_gpu_second = 10_000);
    assert!(matches!(
        check(&gpu_price),
        Err(Refusal::WrongPrices { .. })
    ));
}

#[test]
fn a_ticket_below_the_limits_worst_cost_is_refused() {
    let key = PrivateKeySigner::random();
    let worst = jobs::max_cost(&spec(), &offer().prices);
    let req = request(&key, spec(), |t| t.max_amount = U256::from(worst - 1));
    let r = check(&req).unwrap_err();
    assert!(
        matches!(r, Refusal::LimitsCostMore { worst: w, .. } if w == worst),
        "{r}"
    );
    assert_eq!(r.reason(), RefuseReason::PriceTooLow);
}

#[test]
fn a_job_too_cheap_for_the_minimum_price_is_refused() {
    let key = PrivateKeySigner::random();
    let worst = jobs::max_cost(&spec(), &offer().prices);
    let req = request(&key, spec(), |_| {});
    let r = check_with(&req, &offer(), worst + 1).unwrap_err();
    assert!(
        matches!(r, Refusal::UnderMinPrice { min, .. } if min == worst + 1),
        "{r}"
    );
    assert_eq!(r.reason(), RefuseReason::PriceTooLow);
    assert!(check_with(&req, &offer(), worst).is_ok());
}

#[test]
fn a_ticket_whose_signature_does_not_recover_is_refused() {
    let key = PrivateKeySigner::random();
    let mut req = request(&key, spec(), |_| {});
    req.ticket_signature[64] = 9;
    let r = check(&req).unwrap_err();
    assert!(matches!(r, Refusal::BadSignature(_)), "{r}");
    assert_eq!(r.reason(), RefuseReason::BadSignature);
    // A ticket changed after signing names another signer, whom the channel check
    // holds to the channel's buyer.
    let mut req = request(&key, spec(), |_| {});
    req.ticket.max_amount += U256::from(1);
    assert_ne!(check(&req).unwrap(), key.address());
}

fn channel(buyer: Address, me: Address) -> ChannelView {
    ChannelView {
        buyer,
        provider: me,
        state: 1,
        closes_at: 0,
        deposit: 10_000,
        paid: 0,
        reserved: 0,
    }
}

fn ticket(cumulative_before: u64, max_amount: u64) -> Ticket {
    let key = PrivateKeySigner::random();
    request(&key, spec(), |t| {
        t.cumulative_before = U256::from(cumulative_before);
        t.max_amount = U256::from(max_amount);
    })
    .ticket
}

#[test]
fn a_ticket_off_the_channels_latest_voucher_is_refused() {
    let (buyer, me) = (Address::repeat_byte(0xb), Address::repeat_byte(0xa));
    let c = channel(buyer, me);
    // The latest voucher this node holds is at 100: the next range starts there.
    let r = check_channel_view(&ticket(0, 50), buyer, &c, me, U256::from(100)).unwrap_err();
    assert!(matches!(r, Refusal::OffTheLatestVoucher { .. }), "{r}");
    assert!(r.to_string().contains("latest voucher is at 100"), "{r}");
    assert_eq!(r.reason(), RefuseReason::Other);
    // Above it, the escrow would never let the ticket be claimed.
    assert!(matches!(
        check_channel_view(&ticket(150, 50), buyer, &c, me, U256::from(100)),
        Err(Refusal::OffTheLatestVoucher { .. })
    ));
    assert!(check_channel_view(&ticket(100, 50), buyer, &c, me, U256::from(100)).is_ok());
    // What the chain paid counts when it is ahead of the vouchers held here.
    let paid = ChannelView { paid: 300, ..c };
    let r = check_channel_view(&ticket(100, 50), buyer, &paid, me, U256::from(100));
    assert!(
        matches!(r, Err(Refusal::OffTheLatestVoucher { latest, .. }) if latest == U256::from(300))
    );
}

#[test]
fn a_ticket_on_a_channel_that_cannot_pay_it_is_refused() {
    let (buyer, me) = (Address::repeat_byte(0xb), Address::repeat_byte(0xa));
    let c = channel(buyer, me);
    let t = ticket(0, 10_000);
    assert!(check_channel_view(&t, buyer, &c, me, U256::ZERO).is_ok());
    let r = check_channel_view(&ticket(0, 10_001), buyer, &c, me, U256::ZERO).unwrap_err();
    assert!(
        matches!(
            r,
            Refusal::Underfunded {
                deposit: 10_000,
                ..
            }
        ),
        "{r}"
    );
    assert_eq!(r.reason(), RefuseReason::ChannelUnderfunded);
    let closing = ChannelView { state: 2, ..c };
    let r = check_channel_view(&t, buyer, &closing, me, U256::ZERO).unwrap_err();
    assert!(matches!(r, Refusal::ChannelNotOpen(_)), "{r}");
    assert_eq!(r.reason(), RefuseReason::ChannelUnderfunded);
    let other = Address::repeat_byte(0xc);
    let r = check_channel_view(&t, buyer, &c, other, U256::ZERO).unwrap_err();
    assert!(matches!(r, Refusal::NotOurChannel { .. }), "{r}");
    let r = check_channel_view(&t, other, &c, me, U256::ZERO).unwrap_err();
    assert!(matches!(r, Refusal::NotTheChannelsBuyer { .. }), "{r}");
    assert_eq!(r.reason(), RefuseReason::BadSignature);
}

#[test]
fn a_channel_takes_one_job_at_a_time() {
    let lanes = Lanes::new(10);
    let (c, j1, j2) = (
        B256::repeat_byte(1),
        B256::repeat_byte(2),
        B256::repeat_byte(3),
    );
    lanes.take(c, j1).unwrap();
    let r = lanes.take(c, j2).unwrap_err();
    assert!(
        matches!(r, Refusal::LaneBusy { other, .. } if other == j1),
        "{r}"
    );
    assert_eq!(r.reason(), RefuseReason::Busy);
    // The same job again too.
    assert!(lanes.take(c, j1).is_err());
    // Only the job holding the lane frees it.
    lanes.free(&c, &j2);
    assert!(lanes.take(c, j2).is_err());
    lanes.free(&c, &j1);
    lanes.take(c, j2).unwrap();
}

#[test]
fn lanes_are_bounded() {
    let lanes = Lanes::new(1);
    lanes
        .take(B256::repeat_byte(1), B256::repeat_byte(1))
        .unwrap();
    let r = lanes
        .take(B256::repeat_byte(2), B256::repeat_byte(2))
        .unwrap_err();
    assert!(matches!(r, Refusal::TooManyUnpaid), "{r}");
    assert_eq!(r.reason(), RefuseReason::Busy);
}

#[test]
fn a_job_beyond_the_slots_is_refused_as_busy() {
    let slots = Semaphore::new(2);
    let a = take_slot(&slots, 2).unwrap();
    let _b = take_slot(&slots, 2).unwrap();
    let r = take_slot(&slots, 2).unwrap_err();
    assert!(matches!(r, Refusal::SlotsFull(2)), "{r}");
    assert_eq!(r.reason(), RefuseReason::Busy);
    assert!(
        r.to_string().starts_with("all 2 job slots are in use"),
        "{r}"
    );
    drop(a);
    assert!(take_slot(&slots, 2).is_ok());
}
