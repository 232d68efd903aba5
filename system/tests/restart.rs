//! Whole-system tests of restarts: a node killed (SIGKILL, nothing flushed on the way out) and
//! started again on its data directory goes on where it stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use alloy::primitives::{Address, B256};
use serde_json::Value;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_testkit::system::*;
use sietch_testkit::until;

/// Sets provider-0 cheapest so it gets the first job.
fn cheapest_first(name: &str, c: &mut sietch_node::config::NodeConfig) {
    c.price_per_gfuel = if name == "provider-0" { 1_000 } else { 2_000 };
}

fn unsampled(module: B256, stdin: B256) -> Value {
    let mut j = job(module, stdin, 1, 10_000);
    j["price_cap"] = serde_json::json!("100000000000000");
    j
}

/// The reputation the buyer's API shows for the provider at `evm`.
async fn reputation(buyer: &Member, evm: &str) -> Value {
    let providers = get(&buyer.api, "/api/v1/providers").await.unwrap();
    providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["evm_address"] == evm)
        .map(|p| p["reputation"].clone())
        .unwrap_or_else(|| panic!("no provider {evm} in {providers}"))
}

/// Channels opened to the provider at `evm`.
fn channels_to(events: &[SietchEscrowEvents], evm: Address) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SietchEscrowEvents::ChannelOpened(c) if c.provider == evm))
        .count()
}

/// A buyer whose jobs were checked is killed and restarted: it knows every provider's record
/// as before (the reputation table comes back from its store), and its next job to the same
/// provider takes the channel it had (its lane comes back from the chain and its vouchers)
/// instead of opening another. The last job's payment, which may still have been waiting on
/// the lane when the buyer died, is sent again, so that the provider takes the next ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_restarted_buyer_keeps_its_providers_records_and_its_channel() {
    let mut cfg = MarketConfig::new(2, 1);
    cfg.tweak = |name, c| {
        cheapest_first(name, c);
        // No claims: no chain event changes a record while the buyer is down.
        c.claim_threshold = u128::MAX;
        c.claim_every_secs = 3600;
    };
    let mut m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let provider = m.providers[0].clone();
    let evm = provider.evm.to_string();
    let module = m.upload(&buyer, &hash_guest(0)).await.unwrap();
    let mut last = None;
    for k in 0..2u8 {
        let stdin = m.upload(&buyer, &[k; 40]).await.unwrap();
        // Sampled every time: provider-1 re-runs it, and the check counts in the table.
        let a = m
            .run_job(&buyer, &job(module, stdin, 1_000_000, 10_000))
            .await
            .unwrap();
        assert_eq!(a["provider"], evm, "{a}");
        last = Some(a["job_id"].as_str().unwrap().parse::<B256>().unwrap());
    }
    let last = last.unwrap();
    let before = reputation(&buyer, &evm).await;
    assert!(before["checks_passed"].as_u64().unwrap() >= 1, "{before}");
    assert_eq!(
        channels_to(&m.escrow_events().await.unwrap(), provider.evm),
        1
    );

    m.nodes.0[buyer.index].kill();
    let buyer = m.restart(&buyer);
    m.wait_offers(&buyer, 2).await.unwrap();
    // What the checks found comes back from the store as it was; jobs settled on chain only
    // grow (a provider may claim its vouchers while the buyer is down, which counts).
    let after = reputation(&buyer, &evm).await;
    for counter in ["checks_passed", "checks_failed", "slashes", "disputes"] {
        assert_eq!(
            after[counter], before[counter],
            "{counter}: {before} then {after}"
        );
    }
    assert!(
        after["settled_jobs"].as_u64() >= before["settled_jobs"].as_u64(),
        "{before} then {after}"
    );

    let stdin = m.upload(&buyer, b"after the restart").await.unwrap();
    let a = m.run_job(&buyer, &unsampled(module, stdin)).await.unwrap();
    assert_eq!(a["provider"], evm, "{a}");
    assert_eq!(
        channels_to(&m.escrow_events().await.unwrap(), provider.evm),
        1,
        "the restarted buyer opened a second channel to the same provider"
    );
    until!(
        m,
        "the provider holds the payment of the job before the restart",
        || {
            let (m, provider) = (&m, &provider);
            async move { Ok(m.job(provider, "provider", &last).await?["state"] == "paid") }
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_provider_restarted_with_an_unclaimed_voucher_claims_it() {
    let mut cfg = MarketConfig::new(2, 1);
    cfg.tweak = |name, c| {
        cheapest_first(name, c);
        c.claim_threshold = u128::MAX;
        c.claim_every_secs = 3600;
    };
    let mut m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let provider = m.providers[0].clone();
    let module = m.upload(&buyer, &hash_guest(0)).await.unwrap();
    let mut last = None;
    for k in 0..3u8 {
        let stdin = m.upload(&buyer, &[k; 40]).await.unwrap();
        let a = m.run_job(&buyer, &unsampled(module, stdin)).await.unwrap();
        assert_eq!(a["provider"], provider.evm.to_string());
        last = Some(a["job_id"].as_str().unwrap().parse::<B256>().unwrap());
    }
    // The last payment reaches the provider a moment after the buyer signed it (it waits
    // for a next job to carry it, then goes alone).
    let last = last.unwrap();
    until!(m, "the provider holds the last payment", || {
        let (m, provider) = (&m, &provider);
        async move { Ok(m.job(provider, "provider", &last).await?["state"] == "paid") }
    });
    let channels = settled_channels(&buyer.api).await.unwrap();
    let ch = &channels.as_array().unwrap()[0];
    let id = ch["channel"].as_str().unwrap().parse().unwrap();
    let owed: u128 = ch["cumulative"].as_str().unwrap().parse().unwrap();
    assert!(owed > 0);
    // Killed before it claimed anything.
    m.nodes.0[provider.index].kill();
    assert_eq!(m.escrow().channels(id).call().await.unwrap().paid, 0);
    m.restart(&provider);
    until!(m, "the restarted provider claims its voucher", || {
        let m = &m;
        async move { Ok(m.escrow().channels(id).call().await?.paid == owed) }
    });
}
