//! A provider that runs with an operator key for a cold owner (issue 22, item 3;
//! `docs/keys.md` "A cold owner"), against a real anvil with the escrow. The node's `Chain`,
//! holding only the operator's key, acts for the owner: it registers the owner's node key,
//! claims vouchers and a ticket whose result it signed itself, and every token lands with the
//! owner; what only the owner may do (name the operator, stake, withdraw) is refused with the
//! command the owner runs from its cold wallet; once the owner revokes it, the node's next
//! claim fails with the escrow's reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::SietchEscrow::{self, SietchEscrowErrors, SietchEscrowEvents};
use sietch_contracts::{MockToken, send};
use sietch_market::{PublicKey, ResultCommitment, Ticket, TypedData, Voucher};
use sietch_node::chain::{Chain, ChainError, OperatorError};
use sietch_node::store::EvmSigned;
use sietch_testkit::devnet::{E18, EscrowChain, connect, escrow_chain, escrow_config};

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
    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        self.deployer
            .raw_request::<_, serde_json::Value>(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    }

    /// A fresh account with gas and `tokens`.
    async fn account(&self, tokens: u128) -> PrivateKeySigner {
        let key = PrivateKeySigner::random();
        self.rpc(
            "anvil_setBalance",
            serde_json::json!([key.address(), U256::from(100 * E18)]),
        )
        .await;
        if tokens > 0 {
            send(
                MockToken::new(self.token, &self.deployer).mint(key.address(), U256::from(tokens)),
            )
            .await
            .unwrap();
        }
        key
    }

    async fn chain(&self, key: &PrivateKeySigner) -> Chain {
        Chain::connect(
            &self.anvil.endpoint(),
            self.anvil.chain_id(),
            self.escrow,
            key,
        )
        .await
        .unwrap()
    }

    /// The owner's cold wallet, as `cast send` uses it.
    fn wallet(&self, key: &PrivateKeySigner) -> DynProvider {
        connect(key, &self.anvil.endpoint()).unwrap()
    }

    /// Lets `secs` pass on the chain.
    async fn pass(&self, secs: u64) {
        self.rpc("evm_increaseTime", serde_json::json!([secs]))
            .await;
        self.rpc("evm_mine", serde_json::json!([])).await;
    }
}

/// A ticket for job `n` on `channel` starting at `before`, charging 1 token for 10^8 fuel at
/// 10 tokens per 10^9 fuel, signed by `buyer`; its result signed by `signer`.
fn job(
    chain: &Chain,
    n: u8,
    channel: B256,
    before: u128,
    deadline: u64,
    buyer: &PrivateKeySigner,
    signer: &PrivateKeySigner,
) -> (EvmSigned<Ticket>, EvmSigned<ResultCommitment>) {
    let domain = chain.domain();
    let ticket = Ticket {
        job_id: B256::repeat_byte(n),
        spec_hash: B256::repeat_byte(n ^ 0xff),
        channel_id: channel,
        cumulative_before: U256::from(before),
        max_amount: U256::from(E18),
        deadline,
        check_commit: B256::ZERO,
        per_gfuel: 10 * E18,
        per_gpu_second: 0,
    };
    let result = ResultCommitment {
        job_id: ticket.job_id,
        spec_hash: ticket.spec_hash,
        channel_id: channel,
        output_hash: B256::repeat_byte(7),
        fuel_used: 100_000_000,
        gpu_millis: 0,
        amount: U256::from(E18),
    };
    (
        EvmSigned::new(ticket, ticket.sign(&domain, buyer).unwrap()),
        EvmSigned::new(result, result.sign(&domain, signer).unwrap()),
    )
}

#[tokio::test]
async fn an_operator_serves_a_cold_owner_who_is_paid_and_revoking_it_stops_its_claims() {
    let env = env().await;
    let owner = env.account(1_000 * E18).await;
    let op = env.account(0).await;
    let buyer = env.account(1_000 * E18).await;
    let node = env.chain(&op).await;
    let buyer_chain = env.chain(&buyer).await;
    let wallet = env.wallet(&owner);
    let escrow = SietchEscrow::new(env.escrow, &wallet);

    // Not named yet: the node says so, with the command the owner runs, and stays itself.
    let err = node.operate_for(owner.address()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OperatorError::NotNamed { .. }), "{msg}");
    assert!(
        msg.contains(&format!("\"setOperator(address)\" {}", op.address())),
        "{msg}"
    );
    assert_eq!(node.me(), op.address());

    send(escrow.setOperator(op.address())).await.unwrap();
    node.operate_for(owner.address()).await.unwrap();
    assert_eq!(
        node.me(),
        owner.address(),
        "the owner is the node's account"
    );
    assert_eq!(node.signer(), op.address(), "the operator signs");

    // The node registers its key for the owner, with a proof bound to the owner.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    node.register(&key).await.unwrap();
    assert_eq!(
        node.account(owner.address()).await.unwrap().node_key,
        PublicKey::of(&key).0
    );
    assert_eq!(node.account(op.address()).await.unwrap().node_key, [0; 32]);
    let head = node.block_number().await.unwrap();
    let registered = node
        .events(0, head)
        .await
        .unwrap()
        .into_iter()
        .find_map(|e| match e.event {
            SietchEscrowEvents::Registered(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(registered.account, owner.address());
    assert!(
        node.proven(&registered),
        "the proof binds the key to the owner"
    );

    // Staking is the owner's: the node refuses and names the two commands.
    let err = node.stake(200 * E18).await.unwrap_err().to_string();
    assert!(
        err.contains("approve(address,uint256)") && err.contains("\"stake(uint256)\""),
        "{err}"
    );
    send(MockToken::new(env.token, &wallet).approve(env.escrow, U256::from(200 * E18)))
        .await
        .unwrap();
    send(escrow.stake(U256::from(200 * E18))).await.unwrap();

    // A buyer opens a channel to the owner; the node claims a voucher: the owner is paid.
    let channel = buyer_chain
        .open_channel(owner.address(), 50 * E18)
        .await
        .unwrap();
    let v = Voucher {
        channel_id: channel,
        cumulative_amount: U256::from(5 * E18),
    };
    let signed = EvmSigned::new(v, v.sign(&node.domain(), &buyer).unwrap());
    node.claim_batch(&[signed]).await.unwrap();
    assert_eq!(node.balance(owner.address()).await.unwrap(), 805 * E18);
    assert_eq!(node.balance(op.address()).await.unwrap(), 0);

    // A ticket whose result the operator signed: claimed by the node, credited to the owner.
    let deadline = node.now().await.unwrap() + 3_600;
    let (ticket, result) = job(&node, 1, channel, 5 * E18, deadline, &buyer, &op);
    node.claim_ticket(&ticket, &result).await.unwrap();
    env.pass(escrow_config().challengeWindow + 1).await;
    let id = sietch_market::settlement::ticket_id(&channel, &B256::repeat_byte(1));
    node.finalize_ticket(id).await.unwrap();
    assert_eq!(node.credited(owner.address()).await.unwrap(), E18);
    // The node cannot withdraw for the owner; the credit waits for the owner's own call.
    assert_eq!(node.withdraw().await.unwrap(), 0);
    assert_eq!(node.credited(owner.address()).await.unwrap(), E18);
    send(escrow.withdraw()).await.unwrap();
    assert_eq!(node.balance(owner.address()).await.unwrap(), 806 * E18);
    assert_eq!(
        node.balance(op.address()).await.unwrap(),
        0,
        "the operator holds nothing"
    );

    // The owner revokes the operator: the node's next claim fails, with the escrow's reason.
    send(escrow.setOperator(Address::ZERO)).await.unwrap();
    let (ticket, result) = job(&node, 2, channel, 6 * E18, deadline, &buyer, &op);
    let err = node.claim_ticket(&ticket, &result).await.unwrap_err();
    let refused = match &err {
        ChainError::Escrow(e) => matches!(
            e.reverted(),
            Some(SietchEscrowErrors::Unauthorized(u)) if u.caller == op.address()
        ),
        _ => false,
    };
    assert!(refused, "Unauthorized(operator) expected: {err}");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
    assert!(
        !node.signs_for(op.address(), owner.address()).await.unwrap(),
        "revoked"
    );
}
