//! `sietch provider status` (issue 23, item 3) with the real `sietch` binary against a fake
//! node (a real HTTP server on 127.0.0.1 answering `GET /api/v1/provider`): the report says
//! first what stops the provider, each check with its fix, then its figures in tokens and its
//! channels; `--json` gives the node's answer back; text from the node is escaped; a node that
//! does not provide is said to be none.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::{Value, json};

/// A fake node answering every request with `body`; its URL.
fn fake_node(body: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = body.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn sietch(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args)
        .env("HOME", home.path())
        .env("RUST_BACKTRACE", "0");
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.output().unwrap()
}

const TOKEN: u128 = 1_000_000_000_000_000_000;

fn status(providing: bool) -> Value {
    let check = |check: &str, status: &str, message: &str, fix: Option<&str>| json!({"check": check, "status": status, "message": message, "fix": fix});
    let preflight = if providing {
        vec![
            check("providing", "ok", "this node sells compute", None),
            check("chain", "ok", "the chain answers", None),
            check(
                "stake",
                "blocking",
                "the stake on chain, 50 tokens, is below the escrow's minStake, 100 tokens",
                Some("stake at least the escrow's minStake"),
            ),
            check(
                "gpu",
                "warning",
                "no GPU was found\u{1b}[31m",
                Some("install the NVIDIA driver"),
            ),
        ]
    } else {
        vec![check(
            "providing",
            "blocking",
            "this node does not provide",
            Some("start it with `sietch node run --provide`"),
        )]
    };
    json!({
        "providing": providing,
        "evm_address": "0x1111111111111111111111111111111111111111",
        "peer_id": "12D3KooWfake",
        "offer": providing.then(|| json!({
            "price_per_gfuel": (TOKEN / 2).to_string(),
            "price_per_gpu_second": "0",
            "stake": (50 * TOKEN).to_string(),
            "cpu_cores": 8,
            "memory_bytes": 1u64 << 30,
            "max_input_bytes": 1u64 << 28,
            "features": ["simd"],
        })),
        "gpus": [],
        "offer_gpu": true,
        "chain": {
            "reachable": true, "error": null, "stake": (50 * TOKEN).to_string(),
            "unstaking": "0", "min_stake": (100 * TOKEN).to_string(), "registered": true,
            "credited": "0",
        },
        "value_caps": [
            {"sampling_ppm": 10_000, "max_job_value": "505050505050505050"},
            {"sampling_ppm": 100_000, "max_job_value": "5555555555555555555"},
            {"sampling_ppm": 500_000, "max_job_value": (50 * TOKEN).to_string()},
        ],
        "jobs": {"total": 1234, "scanned": 1234, "by_state": {"paid": 1200, "failed": 4},
                 "settled": 1100, "withheld_since_start": 2},
        "reputation": {"score": 0.9, "settled_jobs": 1100, "checks_passed": 0,
                       "checks_failed": 0, "disputes": 1, "slashes": 0},
        "earnings": {"total": (3 * TOKEN).to_string(), "bucket_secs": 60, "buckets": [
            {"start": 1_000_020, "amount": TOKEN.to_string(), "jobs": 400},
            {"start": 1_000_080, "amount": (2 * TOKEN).to_string(), "jobs": 800},
        ]},
        "channels": [{
            "channel": "0x2222222222222222222222222222222222222222222222222222222222222222",
            "buyer": "0x3333333333333333333333333333333333333333",
            "state": "open", "deposit": (5 * TOKEN).to_string(),
            "voucher": (3 * TOKEN).to_string(), "paid": (2 * TOKEN).to_string(),
            "owed": TOKEN.to_string(), "claimable": true, "last_job_at": 1_000_100,
        }],
        "channels_total": 1,
        "owed": TOKEN.to_string(),
        "claimable": TOKEN.to_string(),
        "blobs": {"bytes": 3u64 << 20, "count": 12, "quota_bytes": 16u64 << 30},
        "network": {"reachability": "public", "relays": 0, "relayed": false, "peers": 5},
        "preflight": preflight,
    })
}

#[test]
fn the_report_says_what_stops_the_provider_with_its_fix_then_its_figures() {
    let url = fake_node(status(true));
    let out = sietch(&["provider", "status", "--api", &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node's text is escaped: no terminal escape reaches the screen.
    assert!(!text.contains('\u{1b}'), "{text}");
    insta::assert_snapshot!("provider status", text);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].contains("NOT EARNING: 1 blocking, 1 warning"),
        "{text}"
    );
    assert!(
        text.contains("BLOCKING stake")
            && text.contains("fix: stake at least the escrow's minStake"),
        "{text}"
    );
    assert!(text.contains("1234 run (1200 paid, 4 failed, 0 refused); 1100 settled"));
    assert!(text.contains("earned     3 tokens"), "{text}");
    assert!(text.contains("owed       1 tokens, 1 claimable"), "{text}");

    // --json is the node's answer, for scripts.
    let out = sietch(&["provider", "status", "--api", &url, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"]["settled"], 1100);
    assert_eq!(v["preflight"][2]["status"], "blocking");
}

#[test]
fn a_node_that_does_not_provide_is_said_to_be_none() {
    let url = fake_node(status(false));
    let out = sietch(&["provider", "status", "--api", &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("NOT PROVIDING: this node sells no compute"),
        "{text}"
    );
    assert!(
        text.contains("fix: start it with `sietch node run --provide`"),
        "{text}"
    );
    assert!(
        !text.contains("jobs "),
        "no figures for a node that does not provide: {text}"
    );
}
