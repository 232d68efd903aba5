//! Who a buyer takes as signing for a provider's account (issue 22, item 3; `docs/keys.md` "A
//! cold owner"), against a real anvil with the escrow: `Chain::may_sign_for` says yes to the
//! account itself and to the operator the account named, no to another owner's operator and
//! to a stranger; it keeps an answer for the refresh interval, and the owner's revocation
//! takes effect as soon as the chain watcher hands on its `OperatorSet` event (or the
//! interval passes), after which the old operator signs for nobody.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::SietchEscrow::{self, SietchEscrowEvents};
use sietch_contracts::send;
use sietch_node::chain::{Chain, ChainEvent};
use sietch_node::events::Events;
use sietch_node::store::Store;
use sietch_testkit::devnet::{E18, EscrowChain, connect, escrow_chain};
use sietch_verifier::evidence::Signers;
use tokio::sync::mpsc::Receiver;

async fn account(env: &EscrowChain) -> PrivateKeySigner {
    let key = PrivateKeySigner::random();
    env.deployer
        .raw_request::<_, serde_json::Value>(
            "anvil_setBalance".into(),
            serde_json::json!([key.address(), U256::from(100 * E18)]),
        )
        .await
        .unwrap();
    key
}

async fn chain(env: &EscrowChain, key: &PrivateKeySigner) -> Chain {
    Chain::connect(&env.anvil.endpoint(), env.anvil.chain_id(), env.escrow, key)
        .await
        .unwrap()
}

/// `owner` names `operator` (address(0): revokes), from its own wallet.
async fn set_operator(env: &EscrowChain, owner: &PrivateKeySigner, operator: Address) {
    let wallet = connect(owner, &env.anvil.endpoint()).unwrap();
    send(SietchEscrow::new(env.escrow, &wallet).setOperator(operator))
        .await
        .unwrap();
}

async fn mine(env: &EscrowChain) {
    env.deployer
        .raw_request::<_, serde_json::Value>("evm_mine".into(), serde_json::json!([]))
        .await
        .unwrap();
}

/// Waits (up to 20 s) for the watcher to hand on `owner`'s `OperatorSet` naming `operator`.
async fn operator_set(rx: &mut Receiver<ChainEvent>, owner: Address, operator: Address) {
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let e = rx.recv().await.expect("the watcher runs");
            if let SietchEscrowEvents::OperatorSet(s) = e.event
                && (s.owner, s.operator) == (owner, operator)
            {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "OperatorSet({owner}, {operator}) within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_an_operator_signs_for_its_owner_only_until_the_owner_revokes_it() {
    let env = escrow_chain().await.unwrap();
    let (owner, op) = (account(&env).await, account(&env).await);
    let (other, other_op) = (account(&env).await, account(&env).await);
    let stranger = PrivateKeySigner::random().address();
    set_operator(&env, &owner, op.address()).await;
    set_operator(&env, &other, other_op.address()).await;

    // The buyer's chain, following the escrow's events as a node does.
    let buyer = chain(&env, &account(&env).await).await;
    buyer.set_operator_refresh(Duration::from_secs(3_600));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ChainEvent>(64);
    let watcher = tokio::spawn(buyer.clone().watch(
        store,
        0,
        Duration::from_millis(50),
        1,
        Events::new(),
        tx,
    ));
    // Once the watcher has handed on the namings, nothing it hands on changes the table
    // until the revocation below.
    mine(&env).await;
    operator_set(&mut rx, other.address(), other_op.address()).await;

    let (o, p) = (owner.address(), op.address());
    assert!(
        buyer.may_sign_for(o, o).await.unwrap(),
        "the account itself"
    );
    assert!(buyer.may_sign_for(p, o).await.unwrap(), "its operator");
    assert!(
        !buyer.may_sign_for(other_op.address(), o).await.unwrap(),
        "another owner's operator cannot sign for this owner"
    );
    assert!(!buyer.may_sign_for(p, other.address()).await.unwrap());
    assert!(!buyer.may_sign_for(stranger, o).await.unwrap());
    assert!(!buyer.may_sign_for(Address::ZERO, o).await.unwrap());
    assert!(
        !buyer.may_sign_for(o, p).await.unwrap(),
        "authority does not run backwards"
    );
    // The verifier crate asks through the same table.
    assert!(Signers::signs_for(&buyer, p, o).await);
    assert!(!Signers::signs_for(&buyer, stranger, o).await);

    // The owner revokes. Within the refresh interval the table still holds the operator...
    set_operator(&env, &owner, Address::ZERO).await;
    assert!(buyer.may_sign_for(p, o).await.unwrap(), "cached");
    assert!(
        !buyer.signs_for(p, o).await.unwrap(),
        "a fresh read already says no"
    );
    // ...until the watcher hands on the revocation, one block deep: then it signs for nobody.
    mine(&env).await;
    operator_set(&mut rx, o, Address::ZERO).await;
    assert!(!buyer.may_sign_for(p, o).await.unwrap(), "revoked");
    assert!(!Signers::signs_for(&buyer, p, o).await);
    assert!(buyer.may_sign_for(o, o).await.unwrap());

    // The owner names a new operator: the old one stays out, the new one signs; with a
    // refresh of zero, every answer is read from the chain.
    let op2 = account(&env).await;
    buyer.set_operator_refresh(Duration::ZERO);
    set_operator(&env, &owner, op2.address()).await;
    assert!(buyer.may_sign_for(op2.address(), o).await.unwrap());
    assert!(!buyer.may_sign_for(p, o).await.unwrap());
    watcher.abort();
}
