//! A buyer against providers that misbehave after they took its job, on a real devnet (anvil,
//! libp2p on loopback, wasmtime): one that names output files outside the protocol's rule (to
//! write over the buyer's dotfiles or drive its terminal), and jobs that fail after a provider
//! accepted them, which the provider must report at once instead of leaving the buyer waiting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use sietch_market::*;
use sietch_node::events::NodeEvent;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};

/// Writes "ok" to stdout and "data" to `/output/out.txt`.
const WRITES_A_FILE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "ok")
  (data (i32.const 200) "out.txt")
  (data (i32.const 300) "data")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; /output is preopened as fd 4 (after /input at 3); O_CREAT, write rights.
    (drop (call $open (i32.const 4) (i32.const 0) (i32.const 200) (i32.const 7)
      (i32.const 1) (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 400)))
    (i32.store (i32.const 16) (i32.const 300))
    (i32.store (i32.const 20) (i32.const 4))
    (drop (call $write (i32.load (i32.const 400)) (i32.const 16) (i32.const 1) (i32.const 8)))))
"#;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn spec(module: &[u8], wall_time_ms: u64) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy {
            sampling_ppm: 1,
            ..VerificationPolicy::default()
        },
        price_cap: E18 / 10_000,
        deadline: now() + 600,
    }
}

/// Every reason a buyer gave for leaving a provider, until the job ends.
async fn retry_reasons(net: &mut Devnet) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some((who, e))) =
        tokio::time::timeout(Duration::from_millis(200), net.events.recv()).await
    {
        if let (true, NodeEvent::Retrying { reason, .. }) = (who == "buyer", e) {
            out.push(reason);
        }
    }
    out
}

/// provider-0, the cheapest, names its output `\e]0;pwned\a` (a terminal-title escape); the
/// buyer refuses that result, withholds its payment and takes the job to the next provider,
/// and the reason it logs shows the name escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_result_naming_an_output_outside_the_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(2, dir.path());
    cfg.tweak = |name, c| {
        c.result_slack_secs = 5;
        c.price_per_gfuel = if name == "provider-0" { 10 } else { 20 };
        if name == "provider-0" {
            c.test_output_name = "\x1b]0;pwned\x07".into();
        }
    };
    let mut net = Devnet::start(cfg).await.unwrap();
    let module = wat::parse_str(WRITES_A_FILE).unwrap();
    net.buyer.store.blobs().put(&module).unwrap();
    let done = net.buyer.buyer.submit(spec(&module, 2_000)).await.unwrap();
    assert_eq!(done.provider, net.providers[1].evm_address, "{done:?}");
    assert_eq!(
        done.result.files,
        sietch_market::OutputFiles::from([("out.txt".to_string(), b"data".to_vec())])
    );
    let reasons = retry_reasons(&mut net).await;
    let refused = reasons
        .iter()
        .find(|r| r.contains("output named"))
        .unwrap_or_else(|| panic!("no refusal of the name in {reasons:#?}"));
    assert!(refused.contains("\\u{1b}]0;pwned\\u{7}"), "{refused}");
    assert!(!refused.contains('\x1b'), "the raw escape reached the log");
    net.shutdown().await;
}

/// The module is not WebAssembly: each provider accepts the job (it does not hold the
/// module yet), fetches it, fails to compile it, and says so at once. The buyer moves on and
/// ends the job with the providers' reason well before the job's 120 s wall time would let
/// it give up waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_job_that_fails_after_acceptance_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(2, dir.path());
    cfg.tweak = |_, c| c.result_slack_secs = 60;
    let mut net = Devnet::start(cfg).await.unwrap();
    let module = b"not a wasm module".to_vec();
    net.buyer.store.blobs().put(&module).unwrap();
    let started = Instant::now();
    let err = net
        .buyer
        .buyer
        .submit(spec(&module, 120_000))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the buyer waited {took:?} for providers that had failed"
    );
    let text = err.to_string();
    assert!(text.contains("failed after accepting"), "{text}");
    let reasons = retry_reasons(&mut net).await;
    assert!(
        reasons.iter().all(|r| r.contains("failed after accepting")),
        "{reasons:#?}"
    );
    assert_eq!(reasons.len(), 2, "both providers tried: {reasons:#?}");
    net.shutdown().await;
}
