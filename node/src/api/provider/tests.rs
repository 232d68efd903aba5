use super::*;

fn facts() -> Facts {
    Facts {
        providing: true,
        chain: ChainFacts::Read {
            account: AccountView {
                node_key: [7; 32],
                stake: 1_000,
                unstaking: 0,
            },
            min_stake: 100,
        },
        node_key: [7; 32],
        offered_stake: 900,
        offer_gpu: false,
        gpus: 0,
        reachability: Reachability::Public,
        relayed: false,
        blob_bytes: 10,
        blob_quota: 100,
        token: TokenInfo::unknown(Address::ZERO),
    }
}

fn status(f: &Facts, name: &str) -> Status {
    preflight(f)
        .into_iter()
        .find(|c| c.check == name)
        .map_or(Status::Ok, |c| c.status)
}

#[test]
fn a_healthy_provider_passes_every_check() {
    let checks = preflight(&facts());
    assert!(
        checks
            .iter()
            .all(|c| c.status == Status::Ok && c.fix.is_none()),
        "{checks:?}"
    );
    assert_eq!(checks.len(), 7);
}

#[test]
fn each_thing_that_stops_earning_is_said_with_its_fix() {
    let mut f = facts();
    f.providing = false;
    assert_eq!(status(&f, "providing"), Status::Blocking);
    assert_eq!(preflight(&f).len(), 1, "nothing else is a buyer's concern");
    let mut f = facts();
    f.chain = ChainFacts::Unreachable("no answer within 3 s".into());
    assert_eq!(status(&f, "chain"), Status::Blocking);
    let mut f = facts();
    f.chain = ChainFacts::None;
    assert_eq!(status(&f, "chain"), Status::Blocking);
    let mut f = facts();
    f.chain = ChainFacts::Read {
        account: AccountView {
            node_key: [7; 32],
            stake: 50,
            unstaking: 0,
        },
        min_stake: 100,
    };
    assert_eq!(status(&f, "stake"), Status::Blocking);
    let mut f = facts();
    f.offered_stake = 2_000;
    assert_eq!(
        status(&f, "stake"),
        Status::Blocking,
        "states more than staked"
    );
    let mut f = facts();
    f.chain = ChainFacts::Read {
        account: AccountView::default(),
        min_stake: 0,
    };
    assert_eq!(status(&f, "registered"), Status::Blocking);
    let mut f = facts();
    f.offer_gpu = true;
    assert_eq!(status(&f, "gpu"), Status::Warning);
    f.gpus = 1;
    assert_eq!(status(&f, "gpu"), Status::Ok);
    let mut f = facts();
    f.reachability = Reachability::Private;
    assert_eq!(status(&f, "reachable"), Status::Blocking);
    f.relayed = true;
    assert_eq!(status(&f, "reachable"), Status::Ok);
    f.relayed = false;
    f.reachability = Reachability::Unknown;
    assert_eq!(status(&f, "reachable"), Status::Warning);
    let mut f = facts();
    f.blob_bytes = 92;
    assert_eq!(status(&f, "blobs"), Status::Warning);
    f.blob_bytes = 99;
    assert_eq!(status(&f, "blobs"), Status::Blocking);
    for c in preflight(&f).iter().filter(|c| c.status != Status::Ok) {
        assert!(c.fix.as_deref().is_some_and(|s| !s.is_empty()), "{c:?}");
    }
}

#[test]
fn amounts_are_said_in_the_tokens_units() {
    let t = TokenInfo::unknown(Address::ZERO);
    assert_eq!(t.show(1_000 * 10u128.pow(18)), "1000 tokens");
    assert_eq!(t.show(25 * 10u128.pow(16)), "0.25 tokens");
    assert_eq!(t.show(0), "0 tokens");
    assert_eq!(t.show(10u128.pow(21) / 9), "111.111111… tokens");
    // A 6-decimal token: the stake sentence says its own units and symbol.
    let mut f = facts();
    f.token = TokenInfo {
        address: Address::ZERO,
        symbol: "USDC".into(),
        decimals: 6,
    };
    f.chain = ChainFacts::Read {
        account: AccountView {
            node_key: [7; 32],
            stake: 50_000_000,
            unstaking: 0,
        },
        min_stake: 100_000_000,
    };
    let stake = preflight(&f)
        .into_iter()
        .find(|c| c.check == "stake")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        stake.contains("50 USDC") && stake.contains("100 USDC"),
        "{stake}"
    );
}

#[test]
fn earnings_fill_buckets_with_the_quiet_times_between() {
    let mut jobs = Vec::new();
    for (n, t) in [(1u8, 1_000u64), (2, 1_005), (3, 1_100)] {
        let mut j = JobRecord::new(B256::repeat_byte(n), B256::ZERO, Address::ZERO, t);
        j.state = JobState::Paid;
        j.updated_at = t;
        j.result = Some(crate::store::EvmSigned::new(
            sietch_market::ResultCommitment {
                job_id: j.job_id,
                spec_hash: B256::ZERO,
                channel_id: B256::ZERO,
                output_hash: B256::ZERO,
                fuel_used: 1,
                gpu_millis: 0,
                amount: U256::from(5),
            },
            [0; 65],
        ));
        jobs.push(j);
    }
    let (width, series) = earnings(&jobs);
    assert_eq!(width, 10);
    assert_eq!(series.len(), 11);
    assert_eq!(series[0], (1_000, U256::from(10), 2));
    assert_eq!(series[5], (1_050, U256::ZERO, 0));
    assert_eq!(series[10], (1_100, U256::from(5), 1));
    assert_eq!(earnings(&[]).1, Vec::new());
}
