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
            "live", "gpu", "cores", "memory", "inputs", "features", "price", "stake", "avoid"
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

/// A generation job's spec: the inference guest's inputs (blobs named by hash only).
fn generation_spec(inputs: &[&str]) -> sietch_market::JobSpec {
    use sietch_market::{BlobRef, Input, Limits, Requirements, VerificationPolicy};
    sietch_market::JobSpec {
        module: sietch_market::B256::repeat_byte(0x11),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: inputs
            .iter()
            .map(|n| Input {
                name: (*n).to_owned(),
                blob: BlobRef::of(n.as_bytes()),
            })
            .collect(),
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 1_000,
            output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 10u128.pow(18),
        deadline: 1_700_003_600,
    }
}

/// Stores a paid job of `spec` with `files` as its outputs, as the buyer keeps them.
fn store_job(
    store: &sietch_node::store::Store,
    n: u8,
    spec: &sietch_market::JobSpec,
    files: sietch_market::OutputFiles,
    amount: u64,
) -> sietch_market::B256 {
    use sietch_market::{B256, ResultCommitment, U256};
    use sietch_node::net::wire::WireMessage;
    use sietch_node::store::{EvmSigned, JobRecord, JobState, Side};
    let id = B256::repeat_byte(n);
    let commitment = ResultCommitment {
        job_id: id,
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(0xc1),
        output_hash: B256::repeat_byte(0x0a),
        fuel_used: 12_345,
        gpu_millis: 0,
        amount: U256::from(amount),
    };
    let mut record = JobRecord::new(
        id,
        spec.hash(),
        sietch_market::Address::repeat_byte(0x77),
        1_700_000_000,
    );
    record.state = JobState::Paid;
    record.result = Some(EvmSigned::new(commitment, [0; 65]));
    record.updated_at = 1_700_000_004;
    store.insert_job(Side::Buyer, spec, &record).unwrap();
    let result = sietch_node::net::JobResult {
        job_id: id,
        outcome: sietch_market::Outcome::Exited { code: 0 },
        stdout: vec![],
        files,
        commitment,
        signature: [0; 65],
    };
    store.put_job_outputs(&id, &result.to_bytes()).unwrap();
    id
}

#[test]
fn a_generation_summary_reads_completions_within_bounds() {
    use sietch_market::U256;
    use sietch_node::api::dto::generation_summary;
    let files = |jsonl: &[u8]| {
        sietch_market::OutputFiles::from([("completions.jsonl".to_owned(), jsonl.to_vec())])
    };
    // No completions file: no summary.
    assert_eq!(
        generation_summary(&Default::default(), U256::from(1u8), 1),
        None
    );
    // Invalid lines are skipped; an error line counts as a prompt.
    let long = "é".repeat(300);
    let jsonl = format!(
        "{{\"index\":0,\"text\":\"{long}\",\"prompt_tokens\":30,\"completion_tokens\":10,\"finish\":\"length\"}}\n\
         not json\n[1,2]\n{{\"text\":\"no counts\"}}\n\
         {{\"index\":1,\"text\":\"\",\"prompt_tokens\":0,\"completion_tokens\":0,\"finish\":\"error\",\"error\":\"prompt too long\"}}\n\
         {{\"index\":2,\"text\":\"Paris.\",\"prompt_tokens\":50,\"completion_tokens\":10,\"finish\":\"stop\"}}\n"
    );
    let g = generation_summary(&files(jsonl.as_bytes()), U256::from(1_000_000u64), 4).unwrap();
    assert_eq!(g["prompts"], 3);
    assert_eq!(g["errors"], 1);
    assert_eq!(g["prompt_tokens"], 80);
    assert_eq!(g["completion_tokens"], 20);
    assert_eq!(g["seconds"], 4);
    assert_eq!(g["tokens_per_second"], 5.0);
    // 1,000,000 x 1000 / 100 tokens.
    assert_eq!(g["cost_per_1k_tokens"], "10000000");
    assert_eq!(g["first_text"].as_str().unwrap().chars().count(), 200);
    assert_eq!(g["first_text_truncated"], true);
    assert_eq!(g["first_finish"], "length");
    // At most 1,000 lines read; a job faster than a second counts as one second; no tokens:
    // no cost per 1k.
    let line = b"{\"prompt_tokens\":1,\"completion_tokens\":0,\"text\":\"\",\"finish\":\"stop\"}\n";
    let g = generation_summary(&files(&line.repeat(1500)), U256::from(7u8), 0).unwrap();
    assert_eq!(
        (g["prompts"].as_u64(), g["seconds"].as_u64()),
        (Some(1000), Some(1))
    );
    assert_eq!(g["cost_per_1k_tokens"], "7");
    let g = generation_summary(&files(b""), U256::from(7u8), 3).unwrap();
    assert_eq!(g["prompts"], 0);
    assert_eq!(g["cost_per_1k_tokens"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_job_reads_with_its_tokens_per_second_and_cost_per_1k() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), false).unwrap();
    let completions = b"{\"index\":0,\"text\":\"The capital of France is Paris.\",\"prompt_tokens\":32,\"completion_tokens\":8,\"finish\":\"stop\"}\n\
        {\"index\":1,\"text\":\"<b>2</b>\",\"prompt_tokens\":20,\"completion_tokens\":4,\"finish\":\"stop\"}\n";
    let (generation, plain) = {
        let store = sietch_node::store::Store::open(dir.path()).unwrap();
        let g = store_job(
            &store,
            1,
            &generation_spec(&["model.gguf", "prompts.jsonl"]),
            [("completions.jsonl".to_owned(), completions.to_vec())].into(),
            64_000,
        );
        let p = store_job(
            &store,
            2,
            &generation_spec(&["data.bin"]),
            [("out.txt".to_owned(), b"hi".to_vec())].into(),
            5,
        );
        store.sync().unwrap();
        (g, p)
    };
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
    let api = node.api.to_string();

    let (status, body) = call(
        &api,
        "GET",
        &format!("/api/v1/jobs/{generation}"),
        None,
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let g = &v["generation"];
    assert_eq!(g["prompts"], 2, "{v}");
    assert_eq!(g["prompt_tokens"], 52);
    assert_eq!(g["completion_tokens"], 12);
    // Created at 1_700_000_000, last changed 4 s later: 12 tokens / 4 s.
    assert_eq!(g["seconds"], 4);
    assert_eq!(g["tokens_per_second"], 3.0);
    // 64,000 base units x 1000 / 64 tokens.
    assert_eq!(g["cost_per_1k_tokens"], "1000000");
    assert_eq!(g["first_text"], "The capital of France is Paris.");
    assert_eq!(g["first_finish"], "stop");

    let (status, body) = call(&api, "GET", &format!("/api/v1/jobs/{plain}"), None, b"").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["generation"], false);

    // The list marks generation jobs from their specs and reads no outputs.
    let (status, body) = call(&api, "GET", "/api/v1/jobs", None, b"").await;
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    let marked = |id: sietch_market::B256| {
        list.iter()
            .find(|j| j["job_id"] == id.to_string())
            .map(|j| j["generation"].clone())
    };
    assert_eq!(marked(generation), Some(Value::Bool(true)));
    assert_eq!(marked(plain), Some(Value::Bool(false)));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_node_schema_names_every_field_the_node_answers() {
    let doc: Value = serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let schema = &doc["components"]["schemas"]["Node"]["properties"];
    let token = &schema["token"]["properties"];
    for field in ["address", "symbol", "decimals"] {
        assert!(
            token[field].is_object(),
            "Node.token.{field} is not documented"
        );
    }
    let (_dir, node, _) = node().await;
    let (status, body) = call(&node.api.to_string(), "GET", "/api/v1/node", None, b"").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    for key in answer.as_object().unwrap().keys() {
        assert!(
            schema[key].is_object(),
            "GET /api/v1/node answers {key}, undocumented"
        );
    }
    // No chain: no token to read amounts in.
    assert!(answer["token"].is_null(), "{answer}");
}
