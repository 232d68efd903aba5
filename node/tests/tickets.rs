//! A buyer that signs tickets the provider could never claim, run against a real provider
//! node on anvil: the provider refuses them before it runs anything.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::local::PrivateKeySigner;
use sietch_contracts::{MockToken, send};
use sietch_market::*;
use sietch_node::chain::Chain;
use sietch_node::devnet::{Devnet, DevnetConfig, E18};
use sietch_node::net::{JobReply, JobRequest, RefuseReason};

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

/// A ticket with `cumulative_before` for the `nonce`th job of `buyer` on `channel`.
fn ticket(buyer: Address, nonce: u64, spec: &JobSpec, channel: B256, before: U256) -> Ticket {
    Ticket {
        job_id: job_id(buyer, nonce, spec.hash()),
        spec_hash: spec.hash(),
        channel_id: channel,
        cumulative_before: before,
        max_amount: U256::from(E18 / 100),
        deadline: now() + 600,
        check_commit: B256::repeat_byte(7),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_ticket_off_the_channels_latest_voucher_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::new(1, dir.path()))
        .await
        .unwrap();
    let provider = &net.providers[0];
    let buyer = &net.buyer;

    // The attacker: its own account with gas and tokens, and a channel to the provider.
    let key = PrivateKeySigner::random();
    let me = key.address();
    net.deployer
        .raw_request::<_, ()>("anvil_setBalance".into(), (me, U256::from(E18)))
        .await
        .unwrap();
    send(MockToken::new(net.token, &net.deployer).mint(me, U256::from(100 * E18)))
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
    let channel = chain
        .open_channel(provider.evm_address, 10 * E18)
        .await
        .unwrap();

    let module = wat::parse_str(OK).unwrap();
    buyer.store.blobs().put(&module).unwrap();
    let spec = JobSpec {
        module: BlobRef::of(&module).hash,
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 5_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: E18 / 100,
        deadline: now() + 600,
    };
    let domain = chain.domain();
    let ask = |t: Ticket| {
        let signature = t.sign(&domain, &key).unwrap();
        buyer.net.request_job(
            provider.net.peer_id(),
            JobRequest {
                spec: spec.clone(),
                ticket: t,
                ticket_signature: signature,
                paying: None,
            },
        )
    };

    // No voucher yet: the latest is 0. A ticket starting above it, by one base unit or by a
    // whole token, could never be claimed (the escrow needs the channel's vouchers claimed
    // up to `cumulativeBefore`), so the buyer would have the job free: refused.
    for (nonce, before) in [(1, U256::from(1)), (2, U256::from(E18))] {
        let reply = tokio::time::timeout(
            Duration::from_secs(30),
            ask(ticket(me, nonce, &spec, channel, before)),
        )
        .await
        .unwrap()
        .unwrap();
        match reply {
            JobReply::Refused { reason, message } => {
                assert_eq!(reason, RefuseReason::Other, "{message}");
                assert!(message.contains("latest voucher is at 0"), "{message}");
            }
            other => panic!("a ticket starting at {before} was not refused: {other:?}"),
        }
    }

    // Exactly at the latest voucher: accepted (the check refuses only what it should).
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        ask(ticket(me, 3, &spec, channel, U256::ZERO)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(reply, JobReply::Accepted { .. } | JobReply::Done(_)),
        "{reply:?}"
    );
    net.shutdown().await;
}
