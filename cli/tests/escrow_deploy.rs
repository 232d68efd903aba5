//! `sietch escrow deploy` against a real anvil, over a 6-decimal token: the dry run, a wrong
//! chain id and a token that is no ERC-20 send nothing; a deployment prints the config lines a
//! node needs, and a providing node started on exactly those lines comes up, stakes, says its
//! token's decimals and symbol, and the CLI shows its amounts in that token's units.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};
use std::time::Duration;

use alloy::node_bindings::Anvil;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::SietchEscrow;
use sietch_testkit::devnet::{connect, find_anvil};
use sietch_testkit::process::{self, Spec, api_line};
use sietch_testkit::tokens::{TEST_SYMBOL, deploy_test_token, mint};

fn sietch(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.output().unwrap()
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One 6-decimal USDC: 10^6 base units.
const USDC: u128 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_escrow_deployed_by_the_cli_runs_a_node_in_the_tokens_units() {
    let anvil = Anvil::at(find_anvil().unwrap())
        .host("127.0.0.1")
        .block_time(1)
        .try_spawn()
        .unwrap();
    let first: PrivateKeySigner = anvil.keys()[0].clone().into();
    let chain = connect(&first, &anvil.endpoint()).unwrap();
    let token = deploy_test_token(chain.clone(), 6).await.unwrap();
    // The CLI deploys from anvil's second account, through a raw key file.
    let key: PrivateKeySigner = anvil.keys()[1].clone().into();
    let me = key.address();
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("deployer.key");
    std::fs::write(&key_file, alloy::hex::encode(key.to_bytes())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (url, token_s, key_s) = (
        anvil.endpoint(),
        token.to_string(),
        key_file.to_str().unwrap().to_owned(),
    );
    let args = |chain_id: &'static str, token: &str, extra: &[&'static str]| {
        let mut a: Vec<String> = [
            "escrow",
            "deploy",
            "--rpc-url",
            &url,
            "--chain-id",
            chain_id,
            "--token",
            token,
            "--key-file",
            &key_s,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let run = |a: Vec<String>| text(&sietch(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let sent = async || chain.get_transaction_count(me).await.unwrap();

    let (ok, out, err) = run(args("31337", &token_s, &["--dry-run"]));
    assert!(ok, "{err}");
    assert!(out.contains("dry run: nothing sent"), "{out}");
    assert!(
        out.contains(&format!("{TEST_SYMBOL} (6 decimals)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("dispute bond 30 {TEST_SYMBOL}"))
            && out.contains(&format!("min stake 100 {TEST_SYMBOL}")),
        "{out}"
    );
    assert_eq!(sent().await, 0, "the dry run sent a transaction");

    // From a node's encrypted keystore (`sietch init`), unlocked with its password file.
    let node_dir = tmp.path().join("node");
    let password = tmp.path().join("password");
    std::fs::write(&password, "a password for the test\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (node_s, password_s) = (
        node_dir.to_str().unwrap().to_owned(),
        password.to_str().unwrap().to_owned(),
    );
    let (ok, init, err) = text(&sietch(&[
        "init",
        "--data-dir",
        &node_s,
        "--password-file",
        &password_s,
    ]));
    assert!(ok, "{err}");
    let node_key = init
        .lines()
        .find_map(|l| l.strip_prefix("evm address "))
        .unwrap()
        .to_owned();
    let (ok, out, err) = text(&sietch(&[
        "escrow",
        "deploy",
        "--rpc-url",
        &url,
        "--chain-id",
        "31337",
        "--token",
        &token_s,
        "--data-dir",
        &node_s,
        "--password-file",
        &password_s,
        "--dry-run",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains(&format!("deployer  {node_key}")), "{out}");

    let (ok, _, err) = run(args("84532", &token_s, &[]));
    assert!(!ok);
    assert!(
        err.contains("serves chain 31337")
            && err.contains("84532")
            && err.contains("nothing was sent"),
        "{err}"
    );
    let nowhere = Address::repeat_byte(0x77).to_string();
    let (ok, _, err) = run(args("31337", &nowhere, &[]));
    assert!(!ok);
    assert!(
        err.contains("has no code") && err.contains(&nowhere),
        "{err}"
    );
    let (ok, _, err) = run(args("31337", &token_s, &["--min-stake", "0.0000001"]));
    assert!(!ok);
    assert!(
        err.contains("--min-stake") && err.contains("6 decimals"),
        "{err}"
    );
    assert_eq!(sent().await, 0, "a refused deployment sent a transaction");

    let (ok, out, err) = run(args("31337", &token_s, &[]));
    assert!(ok, "{err}");
    assert_eq!(sent().await, 1, "one transaction: the deployment");
    let lines = out
        .split_once("# config.toml")
        .map(|(_, l)| l.split_once('\n').map_or("", |x| x.1).to_owned())
        .unwrap_or_else(|| panic!("no config lines in {out}"));
    let escrow: Address = lines
        .lines()
        .find_map(|l| l.strip_prefix("escrow = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no escrow line in {lines}"))
        .parse()
        .unwrap();
    assert!(
        lines.contains("chain_id = 31337") && lines.contains("chain_from_block = "),
        "{lines}"
    );
    assert!(
        lines.contains("[finality]\n# anvil") && lines.contains("confirmations = 1"),
        "{lines}"
    );
    let deployed = SietchEscrow::new(escrow, &chain);
    assert_eq!(deployed.token().call().await.unwrap(), token);
    assert_eq!(deployed.minStake().call().await.unwrap(), 100 * USDC);
    assert_eq!(deployed.disputeBond().call().await.unwrap(), 30 * USDC);

    // A providing node on exactly the printed lines (its own settings above them).
    let (dir, init) = process::init("provider");
    let node_address: Address = init
        .lines()
        .find_map(|l| l.strip_prefix("evm address "))
        .unwrap()
        .parse()
        .unwrap();
    chain
        .raw_request::<_, ()>(
            "anvil_setBalance".into(),
            (node_address, U256::from(10u128.pow(20))),
        )
        .await
        .unwrap();
    mint(&chain, token, node_address, U256::from(1_000 * USDC))
        .await
        .unwrap();
    let config = format!(
        "api = \"127.0.0.1:0\"\nmdns = false\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n\
         provide = true\noffer_gpu = false\nstake = \"{}\"\n{lines}",
        100 * USDC
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut node = process::Node::start_in(
        dir,
        Spec {
            name: "provider".into(),
            rust_log: "info".into(),
            ..Spec::default()
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let api = loop {
        if let Some(a) = node.find(api_line) {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline && node.exited().is_none(),
            "the node did not come up: {}",
            node.dump()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let info = sietch_testkit::system::get(&api, "/api/v1/node")
        .await
        .unwrap();
    assert_eq!(info["token"]["decimals"], 6, "{info}");
    assert_eq!(info["token"]["symbol"], TEST_SYMBOL, "{info}");
    assert!(
        info["token"]["address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(&token_s)),
        "{info}"
    );
    // Registered and staked at start: the CLI says the stake in the token's units.
    let (ok, out, err) = text(&sietch(&[
        "provider",
        "status",
        "--api",
        &format!("http://{api}"),
    ]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "100 {TEST_SYMBOL} on chain (minStake 100, offer states 100)"
        )),
        "{out}"
    );
}
