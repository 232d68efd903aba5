//! A provider whose stake belongs to a cold owner and whose results its operator (the node's
//! hot key) signs, on a real chain (issue 22, item 3; `docs/keys.md` "A cold owner"). The
//! verifier accepts the operator's signature for the owner's offer only as the escrow says
//! (`operatorOf`, through [`Signers`]): without that, or for another owner, or once the owner
//! revokes it, the result is refused. A wrong result the operator signed is found wrong by
//! re-runs (one of them itself a cold owner's, signed by its operator), the operator claims the
//! ticket, the evidence opens the dispute, the drawn verifiers (the cold one votes through its
//! operator) outvote it and the escrow slashes the *owner's* stake, with no compensation (a
//! provider that named an operator compensates nobody: `Operators.sol`, `_slash`). Anvil comes
//! from `tools/bin/anvil` (`scripts/setup.sh`), else from PATH.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::{Address, Bytes, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider as _, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use rand::SeedableRng;
use sietch_contracts::SietchEscrow::{
    self, ChannelOpened, Config, SietchEscrowInstance, Slashed, TicketClaimed, TicketSettled,
};
use sietch_contracts::{MockToken, deploy, send};
use sietch_market::eip712::{Domain, TypedData};
use sietch_market::{InvalidResult, Ticket, job_id};
use sietch_verifier::evidence::{AccountOnly, Signers};
use sietch_verifier::{
    CheckError, Decision, Evidence, Job, ResultError, Verifier, VerifierConfig, escrow_result,
    new_secret, verdict_commitment,
};
use support::sandboxed::{Sandboxed, guest};
use support::{BUYER, Behaviour, NOW, Network, Provider};

const E18: u128 = 1_000_000_000_000_000_000;

fn anvil_binary() -> PathBuf {
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/bin/anvil");
    if pinned.exists() {
        return pinned;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("anvil"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "anvil not found at {} nor on PATH: run scripts/setup.sh",
                pinned.display()
            )
        })
}

fn event<E: SolEvent>(receipt: &TransactionReceipt) -> E {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<E>().ok())
        .map(|l| l.inner.data)
        .expect("event in receipt")
}

/// Who signs for whom, as the escrow says now: the node's answer (`chain::signers`) without
/// its cache.
struct Escrow(SietchEscrowInstance<DynProvider>);

impl std::fmt::Debug for Escrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Escrow({})", self.0.address())
    }
}

#[async_trait::async_trait]
impl Signers for Escrow {
    async fn signs_for(&self, signer: Address, account: Address) -> bool {
        signer == account
            || (signer != Address::ZERO
                && self
                    .0
                    .operatorOf(account)
                    .call()
                    .await
                    .is_ok_and(|op| op == signer))
    }
}

fn refused_signature(r: Result<sietch_verifier::Check, CheckError>) -> bool {
    matches!(
        r,
        Err(CheckError::Original(ResultError::Invalid(
            InvalidResult::Signature(_)
        )))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_cold_owners_wrong_result_signed_by_its_operator_slashes_the_owner() {
    let anvil = Anvil::at(anvil_binary()).try_spawn().expect("anvil starts");
    let keys: Vec<PrivateKeySigner> = anvil.keys().iter().map(|k| k.clone().into()).collect();
    let addr = |i: usize| keys[i].address();
    let mut wallet = EthereumWallet::from(keys[0].clone());
    for k in &keys[1..8] {
        wallet.register_signer(k.clone());
    }
    let chain: DynProvider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(wallet)
        .connect_http(anvil.endpoint_url())
        .erased();
    let config = Config {
        closeDelay: 3_600,
        challengeWindow: 600,
        verdictWindow: 1_200,
        unstakeDelay: 7 * 24 * 3_600,
        disputeBond: 30 * E18,
        verifierFee: 5 * E18,
        minStake: 100 * E18,
        minDeposit: E18,
        epochBlocks: 4,
    };
    let dep = deploy::deploy_with_mock_token(chain.clone(), config)
        .await
        .unwrap();
    let escrow = SietchEscrow::new(dep.escrow, chain.clone());
    let token = MockToken::new(dep.token, chain.clone());
    // 1 the buyer. 6 and 7 cold owners whose operators (hot keys) are 2 and 3; 4 and 5
    // providers that are their own accounts. The operators hold no tokens, ever.
    let (buyer, cold, cold_op, cold_verifier, cold_verifier_op) = (1, 6, 2, 7, 3);
    for i in [buyer, 4, 5, cold, cold_verifier] {
        send(token.mint(addr(i), U256::from(1_000 * E18)))
            .await
            .unwrap();
        send(token.approve(dep.escrow, U256::MAX).from(addr(i)))
            .await
            .unwrap();
    }
    for (owner, op) in [(cold, cold_op), (cold_verifier, cold_verifier_op)] {
        send(escrow.setOperator(addr(op)).from(addr(owner)))
            .await
            .unwrap();
    }
    // Registered (the operators register their owners' node keys) and staked (by the owners):
    // the verifier pool.
    for (account, from) in [
        (cold, cold_op),
        (cold_verifier, cold_verifier_op),
        (4, 4),
        (5, 5),
    ] {
        let registered = send(
            escrow
                .register(
                    keccak256(format!("node key {account}")),
                    Bytes::from(vec![0u8; 64]),
                )
                .from(addr(from)),
        )
        .await
        .unwrap();
        assert_eq!(
            event::<SietchEscrow::Registered>(&registered).account,
            addr(account)
        );
        send(escrow.stake(U256::from(500 * E18)).from(addr(account)))
            .await
            .unwrap();
    }
    chain.anvil_mine(Some(8), None).await.unwrap();
    let opened = send(
        escrow
            .openChannel(addr(cold), U256::from(100 * E18))
            .from(addr(buyer)),
    )
    .await
    .unwrap();
    let channel = event::<ChannelOpened>(&opened).channelId;

    // The market: provider 0 is the cold owner 6, wrong on every job, its results signed by
    // its operator 2; provider 1 the cold owner 7 (signed by 3); 2 and 3 accounts 4 and 5.
    let domain = Domain::new(anvil.chain_id(), dep.escrow);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let as_account = |p: Provider, key: usize, account: usize| {
        let mut p = p.with_key(keys[key].clone(), domain);
        p.offer.evm_address = addr(account);
        p
    };
    let providers = vec![
        as_account(Provider::new(0, Behaviour::Wrong(1.0), 41), cold_op, cold),
        as_account(
            Provider::new(1, Behaviour::Honest, 41),
            cold_verifier_op,
            cold_verifier,
        ),
        as_account(Provider::new(2, Behaviour::Honest, 41), 4, 4),
        as_account(Provider::new(3, Behaviour::Honest, 41), 5, 5),
    ];
    let net = Network::new(providers, sb.clone());

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(41);
    let spec = sb.spec(fnv, b"the cold owner's job".to_vec(), 1_000_000);
    let id = job_id(BUYER, 0, spec.hash());
    let (secret, commit) = new_secret(&mut rng);
    let now = chain
        .get_block_by_number(Default::default())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let ticket = Ticket {
        job_id: id,
        spec_hash: spec.hash(),
        channel_id: channel,
        cumulative_before: U256::ZERO,
        max_amount: U256::from(10 * E18),
        deadline: now + 3_600,
        check_commit: commit,
        per_gfuel: net.providers[0].offer.prices.per_gfuel,
        per_gpu_second: 0,
    };
    let ticket_signature = ticket.sign(&domain, &keys[buyer]).unwrap();
    let p = &net.providers[0];
    let result = p.sign(
        channel,
        id,
        &spec,
        p.answer(&*net.compute, id, &spec, Some(&ticket)).run,
    );
    let job = Job {
        spec: &spec,
        ticket: &ticket,
        ticket_signature: Some(ticket_signature),
        secret,
        provider: &p.offer,
        result: &result,
    };
    let signers: Arc<dyn Signers> = Arc::new(Escrow(SietchEscrow::new(dep.escrow, chain.clone())));

    // A verifier that trusts no operator refuses the operator's signature for the owner.
    let strict = Verifier::new(&net, domain, VerifierConfig::default());
    assert!(refused_signature(
        strict.check(&job, &net.offers(), NOW, &mut rng).await
    ));
    assert!(AccountOnly.signs_for(addr(cold), addr(cold)).await);
    // Another owner's operator cannot sign for this owner: 3 serves 7, not 6.
    let verifier =
        Verifier::new(&net, domain, VerifierConfig::default()).with_signers(signers.clone());
    let mut forged = result.clone();
    forged.signature = forged
        .commitment
        .sign(&domain, &keys[cold_verifier_op])
        .unwrap();
    let impersonating = Job {
        result: &forged,
        ..job
    };
    assert!(refused_signature(
        verifier
            .check(&impersonating, &net.offers(), NOW, &mut rng)
            .await
    ));
    assert!(!signers.signs_for(addr(cold_verifier_op), addr(cold)).await);

    // As the escrow says: the operator's result is the owner's, checked and found wrong by
    // three re-runs, one of them the other cold owner's (its operator signed it).
    let check = verifier
        .check(&job, &net.offers(), NOW, &mut rng)
        .await
        .unwrap();
    assert_eq!(check.decision, Decision::ProviderWrong);
    assert_eq!(check.owner, addr(cold));
    let evidence = check.evidence.clone().expect("evidence");
    evidence.verify().unwrap();
    assert_eq!(
        (evidence.original.signer, evidence.original.account),
        (addr(cold_op), addr(cold))
    );
    let cold_vote = evidence
        .votes
        .iter()
        .find(|v| v.result.account == addr(cold_verifier))
        .expect("the cold verifier re-ran it");
    assert_eq!(cold_vote.result.signer, addr(cold_verifier_op));
    assert!(
        evidence
            .to_string()
            .contains(&format!("signed by its operator {}", addr(cold_op))),
        "{evidence}"
    );
    assert_eq!(Evidence::decode(&evidence.encode()).unwrap(), evidence);

    // Unpaid, the operator claims the owner's ticket with the result it signed.
    let claim = evidence.claim_ticket().unwrap();
    let claimed = send(
        escrow
            .claimTicket(
                claim.ticket,
                claim.buyer_signature,
                claim.result,
                claim.provider_signature,
            )
            .from(addr(cold_op)),
    )
    .await
    .unwrap();
    let ticket_id = event::<TicketClaimed>(&claimed).ticketId;
    assert_eq!(ticket_id, evidence.ticket_id());

    // The buyer disputes; the draw takes the three other stakers.
    let buyer_before = token.balanceOf(addr(buyer)).call().await.unwrap();
    evidence.open_dispute(&escrow, addr(buyer)).await.unwrap();
    let mut record = escrow.tickets(ticket_id).call().await.unwrap();
    for _ in 0..8 {
        chain.anvil_mine(Some(1), None).await.unwrap();
        send(escrow.drawVerifiers(ticket_id)).await.unwrap();
        record = escrow.tickets(ticket_id).call().await.unwrap();
        if record.drawn == 3 {
            break;
        }
    }
    let mut drawn: Vec<Address> = record.verifiers[..usize::from(record.drawn)].to_vec();
    for a in &drawn {
        // The drawn account's node votes; a cold owner's through its operator's key.
        let q = net
            .providers
            .iter()
            .find(|q| q.offer.evm_address == *a)
            .expect("the pool is the test market's providers");
        let own = q.sign(
            channel,
            id,
            &spec,
            q.answer(&*net.compute, id, &spec, None).run,
        );
        let verdict = verdict_commitment(
            &spec.verification.comparison,
            &result.commitment,
            result.outputs.as_ref(),
            &own.commitment,
            own.outputs.as_ref(),
        );
        let signature = verdict.sign(&domain, &q.key).unwrap();
        send(escrow.submitVerdict(
            ticket_id,
            escrow_result(&verdict),
            Bytes::copy_from_slice(&signature),
        ))
        .await
        .unwrap();
    }
    drawn.sort();
    let mut rerunners: Vec<Address> = evidence.votes.iter().map(|v| v.result.account).collect();
    rerunners.sort();
    assert_eq!(drawn, rerunners);

    let resolved = send(escrow.resolve(ticket_id)).await.unwrap();
    assert_eq!(
        event::<TicketSettled>(&resolved).outcome,
        2,
        "ProviderWrong"
    );
    let slashed = event::<Slashed>(&resolved);
    assert_eq!(
        (slashed.provider, slashed.amount, slashed.compensation),
        (addr(cold), U256::from(500 * E18), U256::ZERO),
        "the owner's whole stake, and no compensation from an operated owner"
    );
    assert_eq!(escrow.accounts(addr(cold)).call().await.unwrap().stake, 0);
    send(escrow.withdraw().from(addr(buyer))).await.unwrap();
    let gained = token.balanceOf(addr(buyer)).call().await.unwrap() - buyer_before;
    assert_eq!(gained, result.commitment.amount, "its reservation back");
    for op in [cold_op, cold_verifier_op] {
        assert_eq!(token.balanceOf(addr(op)).call().await.unwrap(), U256::ZERO);
    }

    // The owner revokes its operator: the operator's results are refused from then on.
    send(escrow.setOperator(Address::ZERO).from(addr(cold)))
        .await
        .unwrap();
    assert!(!signers.signs_for(addr(cold_op), addr(cold)).await);
    assert!(refused_signature(
        verifier.check(&job, &net.offers(), NOW, &mut rng).await
    ));
}
