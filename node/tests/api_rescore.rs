//! The HTTP API's rescore comparison (issue 21, item 5; docs/ai.md "Re-scoring a
//! generation"), on a real node (no chain): `"comparison": "rescore"` with a margin above 0
//! and at most 1000 becomes a spec (the job reaches the matcher, which finds no offer here);
//! a missing, zero, negative or too large margin is refused with `bad_job` naming
//! `verification.margin`; an unknown comparison's message names the three.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use sietch_node::config::NodeConfig;
use sietch_node::events::Events;
use sietch_node::service::{Node, init};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request: (status, body).
async fn call(api: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    (status, body)
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescore_comparison_is_accepted_with_a_margin_in_bounds_and_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), false).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let node = Node::start(dir.path(), config, Events::new())
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let token = token.trim();
    let api = node.api.to_string();
    let module = node.store.blobs().put(b"\0asm").unwrap();
    let job = |verification: &str| {
        format!(r#"{{"module":"{module}","price_cap":"1000","verification":{verification}}}"#)
    };

    // In bounds: a spec, which the matcher then finds no offer for (no market here).
    for margin in ["0.1", "1e-6", "1000"] {
        let body = job(&format!(
            r#"{{"sampling_ppm":1000000,"comparison":"rescore","margin":{margin}}}"#
        ));
        let (status, answer) = call(&api, "/api/v1/jobs?wait=true", token, body.as_bytes()).await;
        assert_eq!(
            (status, code(&answer).as_str()),
            (422, "no_match"),
            "margin {margin}: {answer}"
        );
    }
    // Out of bounds, or missing (0): refused before anything is recorded.
    for margin in ["0", "-0.1", "1000.5", "1e300", "null"] {
        let verification = if margin == "null" {
            r#"{"comparison":"rescore"}"#.to_owned()
        } else {
            format!(r#"{{"comparison":"rescore","margin":{margin}}}"#)
        };
        let body = job(&verification);
        let (status, answer) = call(&api, "/api/v1/jobs", token, body.as_bytes()).await;
        assert_eq!(
            (status, code(&answer).as_str()),
            (400, "bad_job"),
            "margin {margin}: {answer}"
        );
        assert!(answer.contains("verification.margin"), "{answer}");
    }
    // A margin with another comparison is ignored; an unknown comparison names the three.
    let (status, answer) = call(
        &api,
        "/api/v1/jobs",
        token,
        job(r#"{"comparison":"closeish","margin":0.1}"#).as_bytes(),
    )
    .await;
    assert_eq!(
        (status, code(&answer).as_str()),
        (400, "bad_job"),
        "{answer}"
    );
    assert!(answer.contains("exact, tolerance or rescore"), "{answer}");
    node.shutdown().await;
}
