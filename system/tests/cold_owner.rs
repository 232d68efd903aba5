//! A provider that earns for a cold owner, in a market of real processes (issue 22, item 3;
//! `docs/keys.md` "A cold owner"): a real anvil with a 6-decimal token, a buyer and a provider
//! that are `sietch node run` processes. The owner's key is used only by the test, as a person
//! would use `cast send` from a cold wallet: it names the node's key its operator, approves
//! and stakes. The node holds only the operator's key, imported into an encrypted keystore and
//! unlocked from a password file; its config names the owner (`[chain] owner`).
//!
//! The node's first start registers the owner's node key and stops, saying which `approve` and
//! `stake` the owner runs; the owner runs them and the node starts. The buyer buys several
//! jobs from it: results the operator signed are accepted for the owner's offer, paid by
//! vouchers the operator claims, and the earnings land in the owner's account, never the hot
//! key's; tokens are conserved to the base unit. Then the owner revokes the operator: the
//! buyer refuses the old operator's next result (its signature speaks for nobody now) and pays
//! nothing more. Neither the password nor a private key appears in any node's output or any
//! API answer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use alloy::primitives::{Address, B256, U256, hex};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use sietch_contracts::{SietchEscrow, send};
use sietch_node::chain::OPERATOR_REFRESH;
use sietch_testkit::devnet::connect;
use sietch_testkit::process as procs;
use sietch_testkit::system::*;
use sietch_testkit::tokens::{TestToken, mint};
use sietch_testkit::until;

/// One token at 6 decimals.
const USDC: u128 = 1_000_000;
/// The owner's stake.
const STAKE: u128 = 1_000 * USDC;
/// Jobs bought from the cold owner's provider.
const JOBS: u32 = 4;

/// A job of the FNV guest on `stdin`, sampled at 10% (within the stake's value cap), a tenth
/// of a token at most.
fn fnv_job(module: impl ToString, stdin: impl ToString) -> Value {
    json!({
        "module": module.to_string(),
        "stdin": stdin.to_string(),
        "limits": {"fuel": 2_000_000_000u64, "memory_bytes": 1 << 20, "wall_time_ms": 10_000, "output_bytes": 1 << 16},
        "verification": {"sampling_ppm": 100_000},
        "price_cap": (USDC / 10).to_string(),
    })
}

/// Writes `text` to `path`, readable by its owner only.
fn private_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every form in which `key` could be printed: its 64 hex digits, either case.
fn key_forms(key: &PrivateKeySigner) -> Vec<String> {
    let digits = hex::encode(key.credential().to_bytes());
    vec![digits.to_uppercase(), digits]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_cold_owners_provider_earns_for_the_owner_through_its_operator() {
    let mut cfg = MarketConfig::new(0, 1);
    cfg.token_decimals = 6;
    let mut m = Market::start(cfg).await.unwrap();
    let buyer = m.buyers[0].clone();
    let token = TestToken::new(m.token, m.chain.clone());
    let mut answers: Vec<String> = Vec::new();

    // The cold owner (the test holds its key, as a hardware wallet would) and the operator's
    // key, imported into the node's keystore from a file that is removed afterwards.
    let owner = PrivateKeySigner::random();
    let op = PrivateKeySigner::random();
    let secrets = temp_dir().unwrap();
    let password = format!("pw-{}", hex::encode(rand_bytes()));
    let password_file = secrets.path().join("keystore-password");
    private_file(&password_file, &format!("{password}\n"));
    let key_file = secrets.path().join("operator.hex");
    private_file(&key_file, &hex::encode(op.credential().to_bytes()));
    let dir = temp_dir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let init_out = procs::run(
        procs::sietch().to_str().unwrap(),
        &[
            "init",
            "--data-dir",
            &data,
            "--import-key-file",
            key_file.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::fs::remove_file(&key_file).unwrap();
    assert!(
        init_out.contains(&format!("evm address {}", op.address())),
        "{init_out}"
    );
    assert!(init_out.contains("keystore "), "encrypted: {init_out}");
    m.gas(op.address()).await.unwrap();
    m.gas(owner.address()).await.unwrap();
    mint(m.chain.clone(), m.token, owner.address(), U256::from(STAKE))
        .await
        .unwrap();
    let wallet = connect(&owner, &m.anvil.endpoint()).unwrap();
    let escrow = SietchEscrow::new(m.escrow, &wallet);
    send(escrow.setOperator(op.address())).await.unwrap();

    // The provider's config: the owner's account, the operator's keystore and password file,
    // claims as soon as a voucher is worth a base unit.
    let listen = m
        .nodes
        .wait_for(buyer.index, "a TCP listen address", STEP, |l| {
            l.strip_prefix("listening ")
                .filter(|a| a.contains("/tcp/"))
                .map(str::to_owned)
        });
    let mut c = sietch_testkit::devnet::node_config(&m.anvil, m.escrow);
    c.provide = true;
    c.stake = 1_000 * sietch_testkit::devnet::E18;
    c.bootstrap = vec![format!("{listen}/p2p/{}", buyer.peer)];
    c.result_slack_secs = 5;
    rescale_amounts(&mut c, 6);
    assert_eq!(c.stake, STAKE);
    // 0.02 tUSDC per 10^9 fuel: a job's 2·10^9 fuel at most cost 0.04, within the cap.
    c.price_per_gfuel = USDC / 50;
    c.claim_threshold = 1;
    c.claim_every_secs = 2;
    c.chain.owner = Some(owner.address().to_string());
    c.keys.password_file = Some(password_file.clone());
    std::fs::write(dir.path().join("config.toml"), c.to_toml()).unwrap();

    // First start: the node registers the owner's node key, then stops: the stake is the
    // owner's to make, and it says how.
    let first = procs::run(
        procs::sietch().to_str().unwrap(),
        &["node", "run", "--data-dir", &data],
    )
    .unwrap_err();
    assert!(
        first.contains("approve(address,uint256)") && first.contains("\"stake(uint256)\""),
        "{first}"
    );
    answers.push(first);
    let registered = m.escrow().accounts(owner.address()).call().await.unwrap();
    assert_ne!(registered.nodeKey, B256::ZERO, "registered for the owner");
    assert_eq!(
        m.escrow()
            .accounts(op.address())
            .call()
            .await
            .unwrap()
            .nodeKey,
        B256::ZERO,
        "the operator holds no registry entry"
    );
    send(TestToken::new(m.token, &wallet).approve(m.escrow, U256::from(STAKE)))
        .await
        .unwrap();
    send(escrow.stake(U256::from(STAKE))).await.unwrap();

    let provider = m.launch("provider-cold", dir, &init_out, c).await.unwrap();
    assert_eq!(
        provider.evm,
        op.address(),
        "the node's key is the operator's"
    );
    m.providers.push(provider.clone());
    m.wait_offers(&buyer, 1).await.unwrap();
    let offers = get(&buyer.api, "/api/v1/offers").await.unwrap();
    assert_eq!(
        offers[0]["evm_address"],
        owner.address().to_string(),
        "the offer names the owner: {offers}"
    );
    answers.push(offers.to_string());

    // The buyer buys several jobs from it.
    let module = m.upload(&buyer, &hash_guest(0)).await.unwrap();
    let buyer_before = m.balance(buyer.evm).await.unwrap();
    let escrow_before = m.balance(m.escrow).await.unwrap();
    assert_eq!(escrow_before, U256::from(STAKE));
    let mut paid = U256::ZERO;
    for k in 0..JOBS {
        let input = format!("cold owner job {k}").into_bytes();
        let stdin = m.upload(&buyer, &input).await.unwrap();
        let a = m
            .run_job(&buyer, &fnv_job(module, stdin))
            .await
            .unwrap_or_else(|e| panic!("job {k}: {e}\n{}", m.dump()));
        assert_eq!(stdout_of(&a), fnv_hex(&input), "{a}");
        assert_eq!(a["provider"], owner.address().to_string(), "{a}");
        let p: U256 = a["paid"].as_str().unwrap().parse().unwrap();
        assert!(p > U256::ZERO && p <= U256::from(USDC / 10), "{a}");
        paid += p;
        answers.push(a.to_string());
    }

    // The operator claims the vouchers; the tokens go to the owner.
    let channels = settled_channels(&buyer.api).await.unwrap();
    let (mut deposits, mut vouchers) = (U256::ZERO, U256::ZERO);
    for ch in channels.as_array().unwrap() {
        assert_eq!(ch["provider"], owner.address().to_string(), "{ch}");
        deposits += ch["deposit"].as_str().unwrap().parse::<U256>().unwrap();
        vouchers += ch["cumulative"].as_str().unwrap().parse::<U256>().unwrap();
    }
    assert!(vouchers >= paid, "vouchers {vouchers} < paid {paid}");
    let owner_addr = owner.address();
    until!(m, "the owner paid every voucher", || {
        let m = &m;
        async move { Ok(m.balance(owner_addr).await? == vouchers) }
    });
    // To the base unit: the buyer's wallet paid its deposits, the owner holds the vouchers,
    // the escrow the stake and the rest of the deposits, the hot key nothing.
    assert_eq!(buyer_before - m.balance(buyer.evm).await.unwrap(), deposits);
    assert_eq!(m.balance(owner_addr).await.unwrap(), vouchers);
    assert_eq!(m.balance(op.address()).await.unwrap(), U256::ZERO);
    assert_eq!(
        m.balance(m.escrow).await.unwrap(),
        U256::from(STAKE) + deposits - vouchers
    );
    assert_eq!(
        token.totalSupply().call().await.unwrap(),
        m.funds + U256::from(STAKE),
        "nothing minted or burned but the test's"
    );
    let claimed = m
        .escrow_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e, SietchEscrow::SietchEscrowEvents::VoucherClaimed(c) if c.provider == owner_addr))
        .count();
    assert!(claimed > 0, "claimed through the operator");

    for (path, api) in [
        ("/api/v1/node", &provider.api),
        ("/api/v1/provider", &provider.api),
        ("/api/v1/jobs?side=provider", &provider.api),
        ("/api/v1/channels", &buyer.api),
        ("/api/v1/node", &buyer.api),
        ("/api/v1/jobs", &buyer.api),
    ] {
        answers.push(get(api, path).await.unwrap().to_string());
    }

    // The owner revokes its operator. Once the buyer has read it (at most the refresh
    // interval), the old operator's result is refused, and not paid.
    send(escrow.setOperator(Address::ZERO)).await.unwrap();
    tokio::time::sleep(OPERATOR_REFRESH + Duration::from_secs(1)).await;
    let input = b"after the revocation".to_vec();
    let stdin = m.upload(&buyer, &input).await.unwrap();
    let refused = m
        .run_job(&buyer, &fnv_job(module, stdin))
        .await
        .expect_err("a result signed by a revoked operator is refused")
        .to_string();
    assert!(
        refused.contains(&format!("signature recovers to {}", op.address())),
        "refused for its signature: {refused}"
    );
    answers.push(refused);
    let after: U256 = settled_channels(&buyer.api)
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| ch["cumulative"].as_str().unwrap().parse::<U256>().unwrap())
        .sum();
    assert_eq!(after, vouchers, "nothing more paid");
    assert_eq!(
        m.escrow().accounts(owner_addr).call().await.unwrap().stake,
        STAKE,
        "the owner's stake is whole"
    );

    // Nothing secret anywhere: not the password, not the operator's key, not the owner's.
    let mut secrets = key_forms(&op);
    secrets.extend(key_forms(&owner));
    secrets.push(password.clone());
    answers.push(init_out);
    for i in [buyer.index, provider.index] {
        answers.extend(m.nodes.0[i].stdout());
        answers.extend(m.nodes.0[i].stderr());
    }
    for text in &answers {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret leaked: {text}");
        }
    }
}

/// 12 random bytes (the password's).
fn rand_bytes() -> [u8; 12] {
    let k = PrivateKeySigner::random();
    let mut b = [0u8; 12];
    b.copy_from_slice(&k.address().0[..12]);
    b
}
