//! A node started against a wrong chain set-up stops at start with an error that names what
//! is wrong, and sends nothing: each test starts a real providing node (staked, funded, so
//! that it would register and stake on chain were it let through) against a real anvil, and
//! checks the typed `StartError`, its message, and that the node's account sent no
//! transaction (its nonce on anvil is still 0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use sietch_contracts::{MockToken, deploy, send};
use sietch_node::chain::token::TokenError;
use sietch_node::config::{KeysConfig, NodeConfig};
use sietch_node::events::Events;
use sietch_node::keys::KeyError;
use sietch_node::service::{EvmKeySetup, InitOptions, Node, StartError, init, init_with};
use sietch_testkit::devnet::{E18, EscrowChain, escrow_chain, escrow_config, node_config};
use sietch_testkit::fake_http::{FakeServer, Reply};

/// Anvil with the token and the escrow, automining: the testkit's, with this file's helpers.
struct Env(EscrowChain);

impl std::ops::Deref for Env {
    type Target = EscrowChain;
    fn deref(&self) -> &EscrowChain {
        &self.0
    }
}

async fn env() -> Env {
    Env(escrow_chain().await.unwrap())
}

impl Env {
    /// A providing node's data directory (key unencrypted in the store) and configuration,
    /// its account funded with gas and tokens: everything it needs to register and stake.
    async fn provider(&self) -> (tempfile::TempDir, Address, NodeConfig) {
        let dir = tempfile::tempdir().unwrap();
        let id = init(dir.path(), false).unwrap();
        self.fund(id.evm_address).await;
        (dir, id.evm_address, self.config())
    }

    async fn fund(&self, who: Address) {
        self.deployer
            .raw_request::<_, ()>(
                "anvil_setBalance".into(),
                (who, U256::from(1_000u128 * E18)),
            )
            .await
            .unwrap();
        let token = MockToken::new(self.token, &self.deployer);
        send(token.mint(who, U256::from(10_000 * E18)))
            .await
            .unwrap();
    }

    fn config(&self) -> NodeConfig {
        let mut c = node_config(&self.anvil, self.escrow);
        c.provide = true;
        c.stake = 1_000 * E18;
        c
    }

    /// Starts the node; it must fail. Returns the error, after checking that the account
    /// sent nothing.
    async fn refused(&self, dir: &tempfile::TempDir, me: Address, c: NodeConfig) -> StartError {
        let started = Node::start(dir.path(), c, Events::new()).await;
        let Err(e) = started else {
            panic!("the node started");
        };
        let nonce = self.deployer.get_transaction_count(me).await.unwrap();
        assert_eq!(
            nonce, 0,
            "the node sent {nonce} transactions before failing: {e}"
        );
        e
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_rpc_url_with_nothing_behind_it_is_named() {
    let env = env().await;
    let (dir, me, mut c) = env.provider().await;
    let url = "http://127.0.0.1:1".to_owned();
    c.rpc_url = Some(url.clone());
    let e = env.refused(&dir, me, c).await;
    assert!(
        matches!(&e, StartError::RpcUnreachable { url: u, .. } if *u == url),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&url) && text.contains("rpc_url"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_rpc_url_that_is_no_json_rpc_endpoint_is_named() {
    let env = env().await;
    let (dir, me, mut c) = env.provider().await;
    let page = FakeServer::start(|_| {
        Reply::new(
            "200 OK",
            "text/html",
            "<html><body>a web page</body></html>".into(),
        )
    });
    c.rpc_url = Some(page.url());
    let e = env.refused(&dir, me, c).await;
    assert!(matches!(&e, StartError::RpcUnreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&page.url()), "{e}");
    assert!(!page.take().is_empty(), "the page was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_wrong_chain_id_names_both() {
    let env = env().await;
    let (dir, me, mut c) = env.provider().await;
    c.chain_id = 84_532;
    let e = env.refused(&dir, me, c).await;
    assert!(
        matches!(
            e,
            StartError::WrongChain {
                expected: 84_532,
                got: 31_337,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("chain_id = 84532") && text.contains("31337"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_escrow_address_without_code_is_named() {
    let env = env().await;
    let (dir, me, mut c) = env.provider().await;
    let nowhere = Address::repeat_byte(0x42);
    c.escrow = Some(nowhere.to_string());
    let e = env.refused(&dir, me, c).await;
    assert!(
        matches!(e, StartError::NoEscrow { escrow, chain_id: 31_337 } if escrow == nowhere),
        "{e:?}"
    );
    assert!(e.to_string().contains(&nowhere.to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_contract_that_is_not_the_escrow_is_named() {
    let env = env().await;
    let (dir, me, mut c) = env.provider().await;
    // The token: a contract, but not one with the escrow's views.
    c.escrow = Some(env.token.to_string());
    let e = env.refused(&dir, me, c).await;
    assert!(
        matches!(&e, StartError::NotEscrow { escrow, .. } if *escrow == env.token),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("not a Sietch escrow") && text.contains(&env.token.to_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_escrow_over_a_token_that_is_no_erc20_is_refused() {
    let env = env().await;
    // One escrow over an address with no code, one over a contract with no balanceOf (the
    // first escrow itself).
    let no_code = Address::repeat_byte(0x77);
    let over_nothing = deploy::deploy_escrow(env.deployer.clone(), no_code, escrow_config())
        .await
        .unwrap();
    let over_escrow = deploy::deploy_escrow(env.deployer.clone(), env.escrow, escrow_config())
        .await
        .unwrap();
    for (escrow, token) in [(over_nothing, no_code), (over_escrow, env.escrow)] {
        let (dir, me, mut c) = env.provider().await;
        c.escrow = Some(escrow.to_string());
        let e = env.refused(&dir, me, c).await;
        match &e {
            StartError::TokenRefused {
                escrow: named,
                source,
            } => {
                assert_eq!(*named, escrow);
                if token == no_code {
                    assert!(
                        matches!(source, TokenError::NoCode(t) if *t == no_code),
                        "{e:?}"
                    );
                } else {
                    assert!(
                        matches!(source, TokenError::NotErc20 { token: t, .. } if *t == token),
                        "{e:?}"
                    );
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&token.to_string()), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_wrong_keystore_password_is_named_and_nothing_is_sent() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let right = secrets.path().join("right");
    let wrong = secrets.path().join("wrong");
    std::fs::write(&right, "the right password\n").unwrap();
    std::fs::write(&wrong, "not the password\n").unwrap();
    for f in [&right, &wrong] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let keys = KeysConfig {
        password_file: Some(right),
        ..KeysConfig::default()
    };
    let id = init_with(
        dir.path(),
        &InitOptions {
            force: false,
            evm: EvmKeySetup::NewKeystore,
            keys: keys.clone(),
        },
    )
    .unwrap();
    env.fund(id.evm_address).await;
    let mut c = env.config();
    c.keys = KeysConfig {
        password_file: Some(wrong.clone()),
        ..keys
    };
    let e = env.refused(&dir, id.evm_address, c).await;
    assert!(
        matches!(e, StartError::Key(KeyError::WrongPassword { .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("wrong password") && text.contains(&wrong.display().to_string()),
        "{text}"
    );
    assert!(
        !text.contains("not the password"),
        "the password is in the error: {text}"
    );
}
