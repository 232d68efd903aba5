//! The HTTP API of a real node (no chain): every route the OpenAPI document names answers,
//! and the document names every route; writes need the token; bad input gets a stable error
//! code and a message that says what to do; `/` says how to build the explorer when it is
//! not built.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use serde_json::Value;
use sietch_node::config::NodeConfig;
use sietch_node::events::Events;
use sietch_node::service::{Node, init};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn call(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    // Server-sent events never end: read what is there.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut raw)).await;
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

async fn node() -> (tempfile::TempDir, Node, String) {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), false).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        explorer_dir: Some(dir.path().join("no-explorer-here")),
        ..NodeConfig::default()
    };
    let node = Node::start(dir.path(), config, Events::new())
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    (dir, node, token)
}

#[test]
fn the_openapi_document_names_exactly_the_routes() {
    let doc: Value = serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = sietch_node::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_writes_need_the_token_and_errors_say_what_to_do() {
    let (_dir, node, token) = node().await;
    let api = node.api.to_string();
    for (method, path) in sietch_node::api::ROUTES {
        let path = path
            .replace("{id}", &format!("0x{}", "ab".repeat(32)))
            .replace("{hash}", &format!("0x{}", "ab".repeat(32)));
        let (status, body) = call(&api, &method.to_uppercase(), &path, None, b"").await;
        assert_ne!(code(&body), "not_found", "{method} {path}: {status} {body}");
        assert_ne!(status, 0, "{method} {path}: no answer");
    }
    let (status, body) = call(&api, "GET", "/api/v1/nope", None, b"").await;
    assert_eq!((status, code(&body).as_str()), (404, "not_found"));

    // Writes: no token, a wrong token, then the right one.
    let (status, body) = call(&api, "POST", "/api/v1/blobs", None, b"wasm").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (401, "token_required"),
        "{body}"
    );
    let (status, body) = call(&api, "POST", "/api/v1/blobs", Some("nope"), b"wasm").await;
    assert_eq!((status, code(&body).as_str()), (401, "bad_token"));
    let (status, body) = call(&api, "POST", "/api/v1/blobs", Some(&token), b"").await;
    assert_eq!((status, code(&body).as_str()), (400, "empty_blob"));
    let (status, body) = call(&api, "POST", "/api/v1/blobs", Some(&token), b"\0asm").await;
    assert_eq!(status, 200, "{body}");
    let hash = serde_json::from_str::<Value>(&body).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(hash, format!("0x{}", blake3::hash(b"\0asm").to_hex()));
    // The cache shows what it holds: a client uploads a model only when the node lacks it.
    let (status, body) = call(&api, "GET", &format!("/api/v1/blobs/{hash}"), None, b"").await;
    assert_eq!(status, 200, "{body}");
    let blob: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (blob["hash"].as_str(), blob["bytes"].as_u64()),
        (Some(hash.as_str()), Some(4))
    );
    let absent = format!("/api/v1/blobs/0x{}", "cd".repeat(32));
    let (status, body) = call(&api, "GET", &absent, None, b"").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (404, "no_such_blob"),
        "{body}"
    );
    let (status, body) = call(&api, "GET", "/api/v1/blobs/nope", None, b"").await;
    assert_eq!((status, code(&body).as_str()), (400, "bad_id"), "{body}");
    let cache: Value =
        serde_json::from_str(&call(&api, "GET", "/api/v1/blobs", None, b"").await.1).unwrap();
    assert_eq!(
        (cache["count"].as_u64(), cache["bytes"].as_u64()),
        (Some(1), Some(4)),
        "{cache}"
    );
    assert_eq!(cache["blobs"][0]["hash"], hash.as_str(), "{cache}");
    assert!(cache["quota_bytes"].as_u64().unwrap() > 0, "{cache}");

    // Jobs: malformed, naming a blob never uploaded, a bad price.
    let (status, body) = call(&api, "POST", "/api/v1/jobs", Some(&token), b"{").await;
    assert_eq!((status, code(&body).as_str()), (400, "bad_job"));
    let missing = format!(r#"{{"module":"0x{}","price_cap":"1"}}"#, "cd".repeat(32));
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/jobs",
        Some(&token),
        missing.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (400, "missing_blob"),
        "{body}"
    );
    assert!(body.contains("POST /api/v1/blobs"), "{body}");
    let bad_price = format!(r#"{{"module":"{hash}","price_cap":"lots"}}"#);
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/jobs",
        Some(&token),
        bad_price.as_bytes(),
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (400, "bad_job"));
    assert!(body.contains("price_cap"), "{body}");
    let unknown_field = format!(r#"{{"module":"{hash}","price_cap":"1","colour":"red"}}"#);
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/jobs",
        Some(&token),
        unknown_field.as_bytes(),
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (400, "bad_job"));
    assert!(body.contains("colour"), "{body}");

    // A job with nothing to run it: refused by the matcher, in words and in facts (422
    // `no_match`: the filter that stopped every offer, and how many passed each filter).
    let lonely = format!(r#"{{"module":"{hash}","price_cap":"1000"}}"#);
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/jobs?wait=true",
        Some(&token),
        lonely.as_bytes(),
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (422, "no_match"), "{body}");
    assert!(body.contains("no offer matches"), "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["detail"]["blocker"], "live", "{body}");
    let funnel = answer["detail"]["funnel"].as_array().unwrap();
    let filters: Vec<&str> = funnel
        .iter()
        .map(|f| f["filter"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "live", "gpu", "cores", "memory", "features", "price", "stake"
        ]
    );
    assert!(funnel.iter().all(|f| f["passed"] == 0), "{body}");
    let jobs: Value = serde_json::from_str(
        &call(&api, "GET", "/api/v1/jobs?side=buyer", None, b"")
            .await
            .1,
    )
    .unwrap();
    assert_eq!(jobs[0]["state"], "failed", "{jobs}");

    // No explorer built: `/` says how to build it, and the API still answers.
    let (status, body) = call(&api, "GET", "/", None, b"").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("scripts/setup.sh") && body.contains("explorer"),
        "{body}"
    );
    node.shutdown().await;
}
