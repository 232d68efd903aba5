//! The SDK against a real local market (anvil, escrow, provider and buyer nodes in one
//! process): progress streamed live, a cheat caught with its evidence, inputs and files,
//! and typed errors for what the node refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use futures::StreamExt;
use sietch_sdk::{Client, Error, Job};
use sietch_testkit::devnet::{Devnet, DevnetConfig};

/// Copies `/input/in` to `/output/out` and to stdout.
const COPY: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "in")
  (data (i32.const 220) "out")
  (func (export "_start")
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 2) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)) (then (call $exit (i32.const 9))))
    (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $read (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)) (then (call $exit (i32.const 10))))
    (drop (call $write (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

fn client(dir: &std::path::Path, net: &Devnet) -> Client {
    let token = std::fs::read_to_string(dir.join("buyer/api-token")).unwrap();
    Client::new(&format!("http://{}", net.buyer.api))
        .unwrap()
        .with_token(token.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_progress_inputs_outputs_evidence_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::new(4, dir.path());
    cfg.cheats = vec![1_000_000];
    cfg.tweak = |name, c| {
        c.price_per_gfuel = if name == "provider-0" { 10 } else { 20 };
    };
    let net = Devnet::start(cfg).await.unwrap();
    let c = client(dir.path(), &net);
    assert_eq!(c.offers().await.unwrap().len(), 4);
    let info = c.node().await.unwrap();
    assert_eq!(info.evm_address, net.buyer.evm_address.to_string());
    // Connected to the providers, and every open connection was counted when it opened.
    assert!(info.connections.open >= 1, "{:?}", info.connections);
    assert!(
        info.connections.opened >= info.connections.open,
        "{:?}",
        info.connections
    );

    // Honest providers only see this one: the cheater is slashed below and loses work.
    let module = wat::parse_str(COPY).unwrap();
    let job = Job::new(module)
        .input("in", b"carried through".to_vec())
        .fuel(10_000_000)
        .memory_bytes(1 << 20)
        .sampling_ppm(1_000_000);
    let (id, mut progress) = c.submit_and_follow(&job).await.unwrap();
    let mut kinds = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(120), progress.next()).await {
            Ok(Some(e)) => kinds.push(e.unwrap().kind),
            Ok(None) => break,
            Err(_) => panic!("no `finished` within 120 s; events so far: {kinds:?}"),
        }
    }
    // From submission to the end, in order.
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("submitted"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("finished"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "checked"), "{kinds:?}");
    let record = c
        .wait(&id, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    // Following a finished job ends at once.
    let after: Vec<_> = c.progress(&id).await.unwrap().collect().await;
    assert_eq!(after.len(), 1);
    let outputs = record.outputs.unwrap();
    assert_eq!(outputs.stdout().unwrap(), b"carried through");
    assert_eq!(
        outputs.file("out").unwrap().as_deref(),
        Some(&b"carried through"[..])
    );

    // The cheater (cheapest) took it; the check found it wrong; the evidence says so.
    let ev = c
        .evidence(&id)
        .await
        .unwrap()
        .expect("evidence of the cheat");
    assert_eq!(ev.decision.as_deref(), Some("ProviderWrong"), "{ev:?}");
    let runs = ev.evidence.as_ref().unwrap()["runs"]
        .as_array()
        .unwrap()
        .clone();
    assert!(runs.len() >= 2, "{runs:?}");

    // Each node as a provider: the buyer is none, and says so with the one blocking check.
    let own = c.provider_status().await.unwrap();
    assert!(!own.providing, "{own:?}");
    assert_eq!(own.preflight.len(), 1, "{:?}", own.preflight);
    assert_eq!(
        (
            own.preflight[0].check.as_str(),
            own.preflight[0].status.as_str()
        ),
        ("providing", "blocking")
    );
    assert!(
        own.preflight[0]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("--provide"))
    );
    // The providers are, staked on a chain that answers; the cheater sees its payment withheld.
    let mut ran = 0;
    for (i, p) in net.providers.iter().enumerate() {
        let pc = Client::new(&format!("http://{}", p.api)).unwrap();
        let mut s = pc.provider_status().await.unwrap();
        for _ in 0..40 {
            if i != 0 || s.jobs.withheld_since_start > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            s = pc.provider_status().await.unwrap();
        }
        assert!(s.providing, "{s:?}");
        assert_eq!(s.evm_address, p.evm_address.to_string());
        let chain = s.chain.as_ref().unwrap();
        assert!(
            chain.reachable && chain.registered == Some(true),
            "{chain:?}"
        );
        let status = |name: &str| {
            s.preflight
                .iter()
                .find(|c| c.check == name)
                .map(|c| c.status.clone())
        };
        assert_eq!(status("chain").as_deref(), Some("ok"), "{:?}", s.preflight);
        assert_eq!(status("registered").as_deref(), Some("ok"));
        // The value cap at one job in ten checked is a ninth of the offer's stake.
        let stake: u128 = s.offer.as_ref().unwrap().stake.parse().unwrap();
        let cap = s
            .value_caps
            .iter()
            .find(|v| v.sampling_ppm == 100_000)
            .unwrap();
        assert_eq!(cap.max_job_value, Some((stake / 9).to_string()));
        if i == 0 {
            assert!(
                s.jobs.withheld_since_start >= 1,
                "the cheat's pay was withheld: {:?}",
                s.jobs
            );
        }
        ran += s.jobs.total;
    }
    assert!(ran >= 2, "the job and its re-runs ran on the providers");

    // Errors are typed, with the node's stable code.
    let no_token = Client::new(&format!("http://{}", net.buyer.api)).unwrap();
    match no_token.upload(b"x").await {
        Err(Error::Api {
            status: 401, code, ..
        }) => assert_eq!(code, "token_required"),
        other => panic!("{other:?}"),
    }
    match c.job("0x1234").await {
        Err(Error::Api {
            status: 400, code, ..
        }) => assert_eq!(code, "bad_id"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(Client::new("127.0.0.1:1"), Err(Error::BadUrl(_))));
    match Client::new("http://127.0.0.1:1").unwrap().node().await {
        Err(Error::Unreachable { .. }) => {}
        other => panic!("{other:?}"),
    }
    // Funding ahead of jobs.
    let provider = net.providers[1].evm_address.to_string();
    let channel = c.fund(&provider, 3 * 10u128.pow(18)).await.unwrap();
    let chans = c.channels().await.unwrap();
    assert!(
        chans
            .iter()
            .any(|ch| ch.channel == channel && ch.provider == provider)
    );
    net.shutdown().await;
}
