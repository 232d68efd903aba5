//! A market on a 6-decimal token (USDC-like, the devnet's `tUSDC`) in one process on a real
//! anvil: every node reads the token's decimals and symbol and the API says them; jobs run, are
//! paid by vouchers and claimed in the token's base units, with the default channel deposit
//! rescaled to 5 tokens; and the provider's pre-flight sentences say amounts in tUSDC.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use sietch_market::*;
use sietch_testkit::devnet::{Devnet, DevnetConfig};
use sietch_testkit::fnv;
use sietch_testkit::system::get;
use sietch_testkit::tokens::TEST_SYMBOL;

/// One token at 6 decimals.
const USDC: u128 = 1_000_000;

/// One job in ten checked (within the stake's value cap at 6 decimals too), a tenth of a
/// token at most: the testkit's spec.
fn spec(module: &[u8], stdin: &[u8]) -> JobSpec {
    sietch_testkit::fnv::spec(module, stdin, 100_000, USDC / 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_market_on_a_six_decimal_token_pays_in_its_units() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(2, dir.path());
    cfg.token_decimals = 6;
    let net = Devnet::start(cfg).await.unwrap();
    let buyer = &net.buyer;
    let info = get(&buyer.api.to_string(), "/api/v1/node").await.unwrap();
    assert_eq!(info["token"]["decimals"], 6, "{info}");
    assert_eq!(info["token"]["symbol"], TEST_SYMBOL, "{info}");
    assert_eq!(
        info["token"]["address"].as_str(),
        Some(net.token.to_string().as_str()),
        "{info}"
    );
    let funded = net.balance(buyer.evm_address).await.unwrap();
    assert_eq!(
        funded,
        U256::from(10_000 * USDC),
        "funds minted in the token's units"
    );

    let module = fnv::hash_guest(0);
    buyer.store.blobs().put(&module).unwrap();
    let mut paid = U256::ZERO;
    for k in 0..3u32 {
        let input = format!("job {k} in tUSDC").into_bytes();
        buyer.store.blobs().put(&input).unwrap();
        let done = buyer
            .buyer
            .submit(spec(&module, &input))
            .await
            .unwrap_or_else(|e| panic!("job {k}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&done.result.stdout),
            fnv::hex(&input)
        );
        // Priced at 6 decimals: more than nothing, within the cap.
        assert!(
            done.paid > U256::ZERO && done.paid <= U256::from(USDC / 10),
            "job {k} paid {}",
            done.paid
        );
        paid += done.paid;
    }
    buyer.buyer.opens_settled(Duration::from_secs(30)).await;
    let channels = buyer.buyer.channels();
    assert!(!channels.is_empty());
    for c in &channels {
        // The devnet's 5-token deposit, at 6 decimals (not 5 · 10^18 base units).
        assert!(
            c.3 >= U256::from(5 * USDC) && c.3 <= U256::from(100 * USDC),
            "deposit {}",
            c.3
        );
    }
    let signed: U256 = channels.iter().map(|c| c.2).sum();
    assert!(signed >= paid, "vouchers {signed} < paid {paid}");
    let chain = buyer.chain.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut claimed = U256::ZERO;
        for (id, ..) in &channels {
            claimed += U256::from(chain.channel(*id).await.unwrap().paid);
        }
        if claimed == signed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "claimed {claimed} of {signed} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The provider's own view says its stake in the token's units.
    let p = get(&net.providers[0].api.to_string(), "/api/v1/provider")
        .await
        .unwrap();
    let stake = p["preflight"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == "stake"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        stake.contains(&format!("1000 {TEST_SYMBOL}"))
            && stake.contains(&format!("100 {TEST_SYMBOL}")),
        "{p}"
    );
    net.shutdown().await;
}
