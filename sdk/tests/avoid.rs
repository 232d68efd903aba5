//! A job that avoids providers, through the SDK's [`Job::avoid`], against a real local market
//! (anvil, the escrow, provider and buyer nodes in one process): the node's matching never
//! sends it to an avoided provider, even the cheapest; when only avoided providers fit, the
//! node refuses it at once with the market's explanation (`no_match`, blocker `avoid`); a
//! malformed list is refused (`bad_avoid`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use futures::StreamExt;
use sietch_sdk::{Client, Error, Job, MAX_AVOID};
use sietch_testkit::devnet::{Devnet, DevnetConfig};

/// Writes "ok" to stdout.
const OK: &str = r#"(module (import "wasi_snapshot_preview1" "fd_write"
  (func $w (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1)
  (data (i32.const 16) "ok") (func (export "_start")
  (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 2))
  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn job() -> Job {
    Job::new(wat::parse_str(OK).unwrap())
        .fuel(1_000_000)
        .memory_bytes(1 << 20)
}

/// The providers a job was sent to (its `sent` events), lowercased.
async fn sent_to(c: &Client, job: &Job) -> Vec<String> {
    let (id, mut events) = c.submit_and_follow(job).await.unwrap();
    let mut sent = Vec::new();
    let mut finished = false;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(120), events.next()).await {
        let e = e.unwrap();
        if e.kind == "sent" {
            sent.push(e.data["provider"].as_str().unwrap().to_lowercase());
        }
        if e.kind == "finished" {
            finished = true;
            assert_eq!(e.data["state"], "paid", "{:?}", e.data);
            break;
        }
    }
    assert!(finished, "no `finished` within 120 s; sent to {sent:?}");
    // The job's record says the same (`sent_to`, what a driver reads of a straggler).
    let record = c.job(&id).await.unwrap();
    let recorded: Vec<String> = record.sent_to.iter().map(|p| p.to_lowercase()).collect();
    assert_eq!(recorded, sent, "{record:?}");
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_a_job_never_goes_to_a_provider_it_avoids() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(2, dir.path());
    // provider-0 the cheapest: matching takes it first unless the job avoids it.
    cfg.tweak = |name, c| {
        c.price_per_gfuel = if name == "provider-0" { 10 } else { 20 };
    };
    let net = Devnet::start(cfg).await.unwrap();
    let token = std::fs::read_to_string(dir.path().join("buyer/api-token")).unwrap();
    let c = Client::new(&format!("http://{}", net.buyer.api))
        .unwrap()
        .with_token(token.trim());
    let cheap = net.providers[0].evm_address.to_string().to_lowercase();
    let other = net.providers[1].evm_address.to_string().to_lowercase();

    // Without a list, the cheapest takes it: the avoidance below is the list's doing.
    assert_eq!(sent_to(&c, &job()).await, std::slice::from_ref(&cheap));
    for _ in 0..3 {
        let sent = sent_to(&c, &job().avoid([cheap.as_str()])).await;
        assert_eq!(
            sent,
            std::slice::from_ref(&other),
            "a job that avoids {cheap}"
        );
    }
    // The same through `run` (the node's `?wait=true`).
    let done = c.run(&job().avoid([cheap.as_str()])).await.unwrap();
    assert_eq!(done.provider.to_lowercase(), other);

    // Only avoided providers fit: refused at once, in words and in facts.
    match c
        .submit(&job().avoid([cheap.as_str(), other.as_str()]))
        .await
    {
        Err(Error::NoMatch {
            message,
            blocker,
            funnel,
        }) => {
            assert_eq!(blocker, "avoid", "{message}");
            assert!(
                message.contains("all 2 that fit are on the job's list of 2 providers to avoid"),
                "{message}"
            );
            assert_eq!(funnel.last(), Some(&("avoid".to_owned(), 0)), "{funnel:?}");
            assert!(funnel.contains(&("stake".to_owned(), 2)), "{funnel:?}");
        }
        other => panic!("{other:?}"),
    }

    // A malformed list: refused, naming the entry; a list over the bound likewise.
    for (list, says) in [
        (
            vec!["0x12".to_owned()],
            "[0] \"0x12\" is not an EVM address",
        ),
        (vec![format!("{cheap}zz")], "is not an EVM address"),
        (
            (0..=MAX_AVOID)
                .map(|i| format!("0x{i:040x}"))
                .collect::<Vec<_>>(),
            "17 providers; a job avoids at most 16",
        ),
    ] {
        match c.submit(&job().avoid(list)).await {
            Err(Error::Api {
                status: 400,
                code,
                message,
            }) => {
                assert_eq!(code, "bad_avoid", "{message}");
                assert!(message.contains(says), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    net.shutdown().await;
}
