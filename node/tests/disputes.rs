//! Tickets and disputes as an attacker would run them, against real nodes on anvil: a buyer
//! that signs tickets the provider could never claim, and a provider that claims tickets for
//! results it never delivered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::SietchEscrow::SietchEscrowEvents;
use sietch_contracts::{MockToken, send};
use sietch_market::*;
use sietch_node::chain::Chain;
use sietch_node::events::NodeEvent;
use sietch_node::net::wire::WireMessage;
use sietch_node::net::{JobReply, JobRequest, JobResult, RefuseReason};
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};

/// Writes "ok" to stdout.
const OK: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "ok")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An account of its own, with gas, on the devnet's chain.
async fn attacker(net: &Devnet) -> (PrivateKeySigner, Chain) {
    let key = PrivateKeySigner::random();
    net.deployer
        .raw_request::<_, ()>("anvil_setBalance".into(), (key.address(), U256::from(E18)))
        .await
        .unwrap();
    let chain = Chain::connect(
        &net.anvil.endpoint(),
        net.anvil.chain_id(),
        net.escrow,
        &key,
    )
    .await
    .unwrap();
    (key, chain)
}

/// An attacker with tokens too, and a channel to provider-0.
async fn attacker_with_channel(net: &Devnet) -> (PrivateKeySigner, Chain, B256) {
    let (key, chain) = attacker(net).await;
    send(MockToken::new(net.token, &net.deployer).mint(key.address(), U256::from(100 * E18)))
        .await
        .unwrap();
    let channel = chain
        .open_channel(net.providers[0].evm_address, 10 * E18)
        .await
        .unwrap();
    (key, chain, channel)
}

/// Sends provider-0, from the buyer's node, `spec` with ticket `t` signed by `key`.
async fn ask(
    net: &Devnet,
    key: &PrivateKeySigner,
    chain: &Chain,
    spec: &JobSpec,
    t: Ticket,
) -> JobReply {
    let signature = t.sign(&chain.domain(), key).unwrap();
    let request = JobRequest {
        spec: spec.clone(),
        ticket: t,
        ticket_signature: signature,
        paying: None,
    };
    let reply = net
        .buyer
        .net
        .request_job(net.providers[0].net.peer_id(), request);
    tokio::time::timeout(Duration::from_secs(30), reply)
        .await
        .unwrap()
        .unwrap()
}

/// A small job writing "ok", with 1 in a million sampled (so no spot check gets in the way).
fn ok_spec(module: &[u8]) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 2_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy {
            sampling_ppm: 1,
            ..VerificationPolicy::default()
        },
        // Within what the providers' stake covers at this sampling rate.
        price_cap: E18 / 10_000,
        deadline: now() + 600,
    }
}

/// A ticket with `cumulative_before` for the `nonce`th job of `buyer` on `channel`.
fn ticket(buyer: Address, nonce: u64, spec: &JobSpec, channel: B256, before: U256) -> Ticket {
    Ticket {
        job_id: job_id(buyer, nonce, spec.hash()),
        spec_hash: spec.hash(),
        channel_id: channel,
        cumulative_before: before,
        max_amount: U256::from(E18 / 10_000),
        deadline: now() + 600,
        check_commit: B256::repeat_byte(7),
        // The devnet provider's offer: the default price, and no GPU price for a CPU job.
        per_gfuel: sietch_node::config::NodeConfig::default().price_per_gfuel,
        per_gpu_second: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_ticket_off_the_channels_latest_voucher_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::new(1, dir.path()))
        .await
        .unwrap();
    let (key, chain, channel) = attacker_with_channel(&net).await;
    let me = key.address();

    let module = wat::parse_str(OK).unwrap();
    net.buyer.store.blobs().put(&module).unwrap();
    let spec = ok_spec(&module);

    // No voucher yet: the latest is 0. A ticket starting above it, by one base unit or by a
    // whole token, could never be claimed (the escrow needs the channel's vouchers claimed
    // up to `cumulativeBefore`), so the buyer would have the job free: refused.
    for (nonce, before) in [(1, U256::from(1)), (2, U256::from(E18))] {
        let reply = ask(
            &net,
            &key,
            &chain,
            &spec,
            ticket(me, nonce, &spec, channel, before),
        )
        .await;
        match reply {
            JobReply::Refused { reason, message } => {
                assert_eq!(reason, RefuseReason::Other, "{message}");
                assert!(message.contains("latest voucher is at 0"), "{message}");
            }
            other => panic!("a ticket starting at {before} was not refused: {other:?}"),
        }
    }

    // Exactly at the latest voucher: accepted (the check refuses only what it should).
    let reply = ask(
        &net,
        &key,
        &chain,
        &spec,
        ticket(me, 3, &spec, channel, U256::ZERO),
    )
    .await;
    assert!(
        matches!(reply, JobReply::Accepted { .. } | JobReply::Done(_)),
        "{reply:?}"
    );
    net.shutdown().await;
}

/// provider-0 (the cheapest, so it gets the job) runs it and claims its ticket, but sends the
/// result to nobody (`undeliver` 1: not the buyer; 2: nor the verifiers). The buyer takes the
/// job elsewhere and disputes the ticket as undelivered. Returns the job's id at provider-0,
/// the settled ticket, and the devnet (with its directory).
async fn claim_undelivered(
    undeliver: u32,
) -> (B256, SietchEscrowEvents, Devnet, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(5, dir.path());
    cfg.tweak = match undeliver {
        1 => |name, c| {
            tweak(name, c);
            if name == "provider-0" {
                c.test_undeliver = 1;
            }
        },
        _ => |name, c| {
            tweak(name, c);
            if name == "provider-0" {
                c.test_undeliver = 2;
            }
        },
    };
    let mut net = Devnet::start(cfg).await.unwrap();
    let undelivering = net.providers[0].evm_address;
    let module = wat::parse_str(OK).unwrap();
    net.buyer.store.blobs().put(&module).unwrap();
    let done = net.buyer.buyer.submit(ok_spec(&module)).await.unwrap();
    assert_ne!(done.provider, undelivering, "{done:?}");
    assert_eq!(done.result.stdout, b"ok");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    let ticket = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, net.events.recv()).await {
            Ok(Some((who, NodeEvent::TicketSettled { ticket, .. }))) if who == "buyer" => {
                break ticket;
            }
            Ok(Some((who, e))) => seen.push(format!("{who}: {e}")),
            _ => panic!("no ticket settled within 240 s; seen: {seen:#?}"),
        }
    };
    let chain = net.buyer.chain.clone().unwrap();
    let head = chain.block_number().await.unwrap();
    let events: Vec<SietchEscrowEvents> = chain
        .events(0, head)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let disputed = events.iter().find_map(|e| match e {
        SietchEscrowEvents::TicketDisputed(d) if d.ticketId == ticket => Some(d.undelivered),
        _ => None,
    });
    assert_eq!(
        disputed,
        Some(true),
        "not disputed as undelivered: {seen:#?}"
    );
    let job = events
        .iter()
        .find_map(|e| match e {
            SietchEscrowEvents::TicketClaimed(c) if c.ticketId == ticket => Some(c.jobId),
            _ => None,
        })
        .unwrap();
    let settled = events
        .into_iter()
        .find(|e| matches!(e, SietchEscrowEvents::TicketSettled(s) if s.ticketId == ticket))
        .unwrap();
    (job, settled, net, dir)
}

/// Every node: results are waited for briefly; provider-0 is the cheapest and claims soon.
fn tweak(name: &str, c: &mut sietch_node::config::NodeConfig) {
    c.result_slack_secs = 2;
    c.price_per_gfuel = if name == "provider-0" { 10 } else { 20 };
    if name == "provider-0" {
        c.voucher_timeout_secs = 3;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_result_never_sent_is_handed_over_by_the_verifiers_at_the_providers_cost() {
    let (job, settled, net, _dir) = claim_undelivered(1).await;
    let SietchEscrowEvents::TicketSettled(s) = settled else {
        unreachable!()
    };
    assert_eq!(s.outcome, 1, "the provider had the right result");
    // Its output appeared only in the dispute: the bond goes back to the buyer (less what
    // the ticket could not cover of the verifiers' pay), none of it to the provider.
    assert_eq!(s.bondToProvider, U256::ZERO);
    assert!(s.bondToBuyer > U256::ZERO);
    // The buyer holds the output the provider never sent, from a verifier.
    let bytes = net
        .buyer
        .store
        .job_outputs(&job)
        .unwrap()
        .expect("delivered");
    let result = JobResult::from_bytes(&bytes).unwrap();
    assert_eq!(result.stdout, b"ok");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_result_delivered_to_nobody_loses_the_dispute() {
    let (_, settled, net, _dir) = claim_undelivered(2).await;
    let SietchEscrowEvents::TicketSettled(s) = settled else {
        unreachable!()
    };
    assert_eq!(s.outcome, 2, "the verifiers found the result undelivered");
    assert_eq!(s.toProvider, U256::ZERO);
    let chain = net.buyer.chain.clone().unwrap();
    let stake = chain
        .account(net.providers[0].evm_address)
        .await
        .unwrap()
        .stake;
    assert_eq!(stake, 0, "the undelivering provider was not slashed");
    net.shutdown().await;
}

/// An attacker registers the provider's node key for its own account, with a proof made by
/// its own key (the escrow cannot check ed25519): nodes take the binding for nothing, so the
/// provider's offers still check out and nothing the attacker's account does counts for the
/// provider's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_registering_someone_elses_node_key_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::new(1, dir.path()))
        .await
        .unwrap();
    let victim = &net.providers[0];
    let (key, chain) = attacker(&net).await;
    let attacker = key.address();
    let victim_key = victim
        .net
        .book()
        .lock()
        .unwrap()
        .iter()
        .find(|o| o.payload.evm_address == victim.evm_address)
        .map(|o| o.payload.provider)
        .unwrap();
    let own = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let proof = sietch_market::registration::prove(&own, chain.chain_id(), net.escrow, attacker);
    send(chain.contract().register(
        B256::from(victim_key.0),
        alloy::primitives::Bytes::copy_from_slice(&proof),
    ))
    .await
    .unwrap();
    // On chain the escrow took it; the buyer's node, once it has seen the event, did not.
    let buyer = net.buyer.chain.clone().unwrap();
    assert_eq!(
        buyer.account(attacker).await.unwrap().node_key,
        victim_key.0,
        "the escrow stores whatever key it is given"
    );
    let seen_by = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if buyer.known_account(&attacker).is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < seen_by,
            "the registration was never indexed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        buyer.known_account(&attacker).unwrap().node_key,
        [0; 32],
        "an unproven key was bound"
    );
    // The victim's own registration, proven, still stands, and its offer still checks out.
    assert_eq!(
        buyer.known_account(&victim.evm_address).unwrap().node_key,
        victim_key.0
    );
    let offer = victim
        .net
        .book()
        .lock()
        .unwrap()
        .iter()
        .find(|o| o.payload.evm_address == victim.evm_address)
        .map(|o| o.payload.clone())
        .unwrap();
    assert_eq!(buyer.registry().check(&offer), Ok(()));
    net.shutdown().await;
}

/// A provider with a minimum job price (what claiming a ticket costs) refuses a job worth
/// less: a buyer withholding the vouchers of tiny jobs would make every claim a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_job_worth_less_than_a_ticket_claim_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(1, dir.path());
    cfg.tweak = |_, c| c.min_job_price = E18 / 1_000;
    let net = Devnet::start(cfg).await.unwrap();
    let (key, chain, channel) = attacker_with_channel(&net).await;
    let module = wat::parse_str(OK).unwrap();
    net.buyer.store.blobs().put(&module).unwrap();
    let spec = ok_spec(&module);
    // Worth E18 / 10_000 (the spec's cap), below the provider's E18 / 1_000: refused.
    let t = ticket(key.address(), 1, &spec, channel, U256::ZERO);
    let reply = ask(&net, &key, &chain, &spec, t).await;
    match reply {
        JobReply::Refused { reason, message } => {
            assert_eq!(reason, RefuseReason::PriceTooLow, "{message}");
            assert!(message.contains("at least 1000000000000000"), "{message}");
        }
        other => panic!("a job below the minimum price was taken: {other:?}"),
    }
    // Worth the minimum: taken.
    let mut t = ticket(key.address(), 2, &spec, channel, U256::ZERO);
    t.max_amount = U256::from(E18 / 1_000);
    let reply = ask(&net, &key, &chain, &spec, t).await;
    assert!(
        matches!(reply, JobReply::Accepted { .. } | JobReply::Done(_)),
        "{reply:?}"
    );
    net.shutdown().await;
}
