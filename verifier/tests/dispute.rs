//! Evidence on a real chain: a provider returns a wrong result from a real sandbox run, the
//! buyer's check finds it wrong with three re-runs on other staked providers, the provider
//! claims its ticket anyway, and the evidence opens a dispute on the deployed escrow. The drawn
//! verifiers (the re-run providers: they are the whole verifier pool) cannot reuse their
//! re-runs' commitments, which are signed for the re-runs' own channels: relayed, the escrow
//! refuses one. They run the job again and sign verdicts for the disputed ticket, and the
//! escrow slashes the provider. Anvil comes from `tools/bin/anvil` (`scripts/setup.sh`), else
//! from PATH.
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
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider as _, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use rand::SeedableRng;
use sietch_contracts::SietchEscrow::{
    self, ChannelOpened, Config, SietchEscrowErrors, Slashed, TicketClaimed, TicketSettled,
};
use sietch_contracts::{MockToken, deploy, send};
use sietch_market::eip712::{Domain, TypedData};
use sietch_market::{Ticket, job_id};
use sietch_verifier::{
    ChainEvent, Decision, Job, ReputationTable, Verifier, VerifierConfig, escrow_result,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_evidence_opens_a_dispute_that_slashes_the_provider() {
    let anvil = Anvil::at(anvil_binary()).try_spawn().expect("anvil starts");
    let keys: Vec<PrivateKeySigner> = anvil.keys().iter().map(|k| k.clone().into()).collect();
    let addr = |i: usize| keys[i].address();
    let mut wallet = EthereumWallet::from(keys[0].clone());
    for k in &keys[1..6] {
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
    // 1 is the buyer; 2 the provider, 3..=5 the other providers: registered and staked, so
    // they are the verifier pool.
    for i in 1..=5 {
        send(token.mint(addr(i), U256::from(1_000 * E18)))
            .await
            .unwrap();
        send(token.approve(dep.escrow, U256::MAX).from(addr(i)))
            .await
            .unwrap();
        if i >= 2 {
            send(
                escrow
                    .register(
                        keccak256(format!("node key {i}")),
                        alloy::primitives::Bytes::from(vec![0u8; 64]),
                    )
                    .from(addr(i)),
            )
            .await
            .unwrap();
            send(escrow.stake(U256::from(500 * E18)).from(addr(i)))
                .await
                .unwrap();
        }
    }
    // Stakes count in verifier draws from the next epoch on.
    chain.anvil_mine(Some(8), None).await.unwrap();
    let opened = send(
        escrow
            .openChannel(addr(2), U256::from(100 * E18))
            .from(addr(1)),
    )
    .await
    .unwrap();
    let channel = event::<ChannelOpened>(&opened).channelId;

    // The market: provider 0 (account 2) is wrong on every job; 1..=3 (accounts 3..=5) honest.
    let domain = Domain::new(anvil.chain_id(), dep.escrow);
    let sb = Arc::new(Sandboxed::new());
    let fnv = sb.load(&guest("fnv"));
    let providers = [
        Behaviour::Wrong(1.0),
        Behaviour::Honest,
        Behaviour::Honest,
        Behaviour::Honest,
    ]
    .into_iter()
    .zip(0..)
    .map(|(b, i)| Provider::new(i, b, 31).with_key(keys[usize::from(i) + 2].clone(), domain))
    .collect();
    let net = Network::new(providers, sb.clone());

    // The buyer's job and ticket; the provider answers wrong.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
    let spec = sb.spec(fnv, b"the job's input".to_vec(), 1_000_000);
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
    let ticket_signature = ticket.sign(&domain, &keys[1]).unwrap();
    let p = &net.providers[0];
    let result = p.sign(
        channel,
        id,
        &spec,
        p.answer(&*net.compute, id, &spec, Some(&ticket)).run,
    );

    let verifier = Verifier::new(&net, domain, VerifierConfig::default());
    let job = Job {
        spec: &spec,
        ticket: &ticket,
        ticket_signature: Some(ticket_signature),
        secret,
        provider: &p.offer,
        result: &result,
    };
    let check = verifier
        .check(&job, &net.offers(), NOW, &mut rng)
        .await
        .unwrap();
    assert_eq!(check.decision, Decision::ProviderWrong);
    assert!(!check.pays());
    let evidence = check.evidence.clone().expect("evidence");
    evidence.verify().unwrap();
    let mut table = ReputationTable::default();
    table.record_check(&check);

    // Unpaid, the provider posts its ticket; its id is the evidence's.
    let claim = evidence.claim_ticket().unwrap();
    let claimed = send(
        escrow
            .claimTicket(
                claim.ticket,
                claim.buyer_signature,
                claim.result,
                claim.provider_signature,
            )
            .from(addr(2)),
    )
    .await
    .unwrap();
    let ticket_id = event::<TicketClaimed>(&claimed).ticketId;
    assert_eq!(ticket_id, evidence.ticket_id());

    // The buyer disputes with the evidence; the draw takes the three other stakers.
    let buyer_before = token.balanceOf(addr(1)).call().await.unwrap();
    evidence.open_dispute(&escrow, addr(1)).await.unwrap();
    // The draw runs in its seed block's epoch; the escrow re-arms it otherwise.
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
    // A re-run's commitment names the re-run's own channel: relayed here, it does not count.
    let rerun = &evidence.votes[0].result;
    let relayed = send(escrow.submitVerdict(
        ticket_id,
        escrow_result(&rerun.commitment),
        Bytes::copy_from_slice(&rerun.signature),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            relayed.reverted(),
            Some(SietchEscrowErrors::MismatchedResult(_))
        ),
        "{relayed}"
    );
    // Each drawn verifier runs the job and signs its verdict for the disputed ticket.
    for a in &drawn {
        let q = net
            .providers
            .iter()
            .find(|q| q.key.address() == *a)
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
    let mut rerunners: Vec<Address> = evidence.votes.iter().map(|v| v.result.signer).collect();
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
        (slashed.provider, slashed.amount),
        (addr(2), U256::from(500 * E18))
    );
    assert_eq!(escrow.accounts(addr(2)).call().await.unwrap().stake, 0);
    // The buyer got its reservation and its bond back, and a compensation of the ticket's
    // amount from the stake.
    let amount = result.commitment.amount;
    assert_eq!(slashed.compensation, amount);
    send(escrow.withdraw().from(addr(1))).await.unwrap();
    let gained = token.balanceOf(addr(1)).call().await.unwrap() - buyer_before;
    assert_eq!(gained, amount + slashed.compensation);

    // With the chain's events, the provider's reputation: the failed check, the dispute and
    // the slash.
    table.apply(ChainEvent::Registered {
        account: addr(2),
        node_key: B256::from(p.offer.provider.0),
    });
    table.apply(ChainEvent::Disputed { provider: addr(2) });
    table.apply(ChainEvent::Slashed { provider: addr(2) });
    let r = table.get(&p.offer.provider).unwrap();
    assert_eq!((r.checks_failed, r.disputes, r.slashes), (1, 1, 1));
    assert!(r.score() < 0.05);
}
