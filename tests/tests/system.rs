//! Whole-system tests: a real anvil and real `sietch node run` processes on loopback, driven
//! through the buyers' HTTP API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use alloy::primitives::U256;
use sietch_e2e::*;
use sietch_node::devnet::E18;

/// Sums what each provider's account gained against what it was given (funds less stake).
async fn provider_gains(m: &Market, stake: u128) -> BTreeMap<String, U256> {
    let mut out = BTreeMap::new();
    for p in &m.providers {
        let held = m.balance(p.evm).await.unwrap();
        let start = m.funds - U256::from(stake * E18);
        out.insert(p.name.clone(), held.saturating_sub(start));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_fifty_jobs_across_three_providers_are_paid_their_metered_price() {
    let mut cfg = MarketConfig::new(3, 1);
    cfg.tweak = |name, c| {
        // Distinct prices, so that "paid its metered price" means something per provider;
        // claims only when the test is done (on shutdown).
        c.price_per_gfuel = match name {
            "provider-0" => 500_000_000,
            "provider-1" => 700_000_000,
            _ => 900_000_000,
        };
        c.claim_threshold = u128::MAX;
        c.claim_every_secs = 3600;
        c.max_concurrent_jobs = 4;
    };
    let mut m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let module = m.upload(&buyer, &hash_guest(0)).await.unwrap();
    let before = m.balance(buyer.evm).await.unwrap();

    // 50 jobs, 10 at a time; every one sampled at 10%.
    let mut answers = Vec::new();
    for round in 0..5 {
        let mut batch = Vec::new();
        for k in 0..10u32 {
            let input = format!("job {round}-{k} {}", "y".repeat((k * 37) as usize)).into_bytes();
            let stdin = m.upload(&buyer, &input).await.unwrap();
            let j = job(module, stdin, 100_000, 10_000);
            let (mm, b) = (&m, &buyer);
            batch.push(async move { (input, mm.run_job(b, &j).await) });
        }
        for (input, a) in futures::future::join_all(batch).await {
            let a = a.unwrap_or_else(|e| panic!("a job failed: {e}"));
            assert_eq!(stdout_of(&a), fnv_hex(&input));
            answers.push(a);
        }
    }
    assert_eq!(answers.len(), 50);

    // Every job paid exactly its metered price: fuel × the provider's price, rounded up.
    let price_of = |addr: &str| -> u128 {
        let i = m
            .providers
            .iter()
            .position(|p| p.evm.to_string() == addr)
            .unwrap();
        m.config(m.providers[i].index).price_per_gfuel
    };
    let mut owed: BTreeMap<String, U256> = BTreeMap::new();
    for a in &answers {
        let provider = a["provider"].as_str().unwrap().to_owned();
        let fuel = a["outputs"]["fuel_used"].as_u64().unwrap();
        let paid: U256 = a["paid"].as_str().unwrap().parse().unwrap();
        let metered = (u128::from(fuel) * price_of(&provider)).div_ceil(1_000_000_000);
        assert_eq!(paid, U256::from(metered), "{a}");
        *owed.entry(provider).or_default() += paid;
    }
    assert!(
        owed.len() >= 2,
        "the jobs went to one provider only: {owed:?}"
    );

    // Stop everything: providers claim on the way out. Then the money adds up to the unit.
    for p in m.providers.clone() {
        m.nodes.0[p.index].signal("INT");
        m.nodes.0[p.index]
            .wait_exit(STEP)
            .expect("the provider stops");
    }
    let gains = provider_gains(&m, 1_000).await;
    let spent = before - m.balance(buyer.evm).await.unwrap();
    let channels = get(&buyer.api, "/api/v1/channels").await.unwrap();
    let mut deposits = U256::ZERO;
    let mut vouchers = U256::ZERO;
    for c in channels.as_array().unwrap() {
        deposits += c["deposit"].as_str().unwrap().parse::<U256>().unwrap();
        vouchers += c["cumulative"].as_str().unwrap().parse::<U256>().unwrap();
    }
    assert_eq!(
        spent, deposits,
        "the buyer's wallet paid exactly its deposits"
    );
    let total_gain: U256 = gains.values().copied().sum();
    assert_eq!(
        total_gain, vouchers,
        "providers received exactly the vouchers: {gains:?}"
    );
    // Re-runs are paid too, so vouchers cover at least the 50 jobs.
    let total_owed: U256 = owed.values().copied().sum();
    assert!(
        vouchers >= total_owed,
        "vouchers {vouchers} < owed {total_owed}"
    );
    let escrow_holds = m.balance(m.escrow).await.unwrap();
    let stakes = U256::from(3 * 1_000 * E18);
    assert_eq!(
        escrow_holds,
        stakes + deposits - vouchers,
        "the escrow holds the stakes and what the channels did not pay"
    );
}
