//! Where the SDK sends the API token (issue 26): a fake node, a real HTTP server on
//! 127.0.0.1, records every request's `Authorization` header. Reads never carry the token;
//! writes carry it when the client has one; a client made from a data directory has the
//! token of the node at that directory's address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sietch_sdk::{Client, Error, Job};
use sietch_testkit::fake_http::{FakeServer, Reply, Request};

const JOB: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Starts the fake node; it records every request's method, path and authorization.
fn fake_node() -> FakeServer {
    FakeServer::start(answer)
}

fn answer(request: &Request) -> Reply {
    let record = json!({
        "job_id": JOB, "state": "paid", "counterparty": "0x00", "amount": "1",
        "fuel_used": 1, "note": "", "outputs": null,
    });
    let body = match (request.method.as_str(), request.route()) {
        ("GET", "/api/v1/events") => {
            let event = format!("data: {}\n\n", json!({"kind": "finished", "job": JOB}));
            return Reply::new("200 OK", "text/event-stream", event);
        }
        ("GET", "/api/v1/node") => {
            json!({"peer_id": "p", "evm_address": "0x00", "listen_addrs": [], "peers": [],
                   "offers": 0, "chain": null})
        }
        ("GET", "/api/v1/jobs") => json!([record]),
        ("GET", r) if r.starts_with("/api/v1/jobs/") => record,
        ("GET", _) => json!([]),
        ("POST", "/api/v1/blobs") => json!({"hash": "0xab"}),
        ("POST", "/api/v1/jobs") => json!({"job_id": JOB}),
        ("POST", "/api/v1/channels") => json!({"channel": "0xc0"}),
        _ => json!({}),
    };
    Reply::ok(body)
}

/// Every read the SDK makes.
async fn read_everything(c: &Client) {
    c.node().await.unwrap();
    c.offers().await.unwrap();
    c.providers().await.unwrap();
    c.channels().await.unwrap();
    c.job(JOB).await.unwrap();
    c.jobs().await.unwrap();
    c.wait(JOB, Duration::from_secs(5)).await.unwrap();
    c.evidence(JOB).await.unwrap();
    let mut events = c.events().await.unwrap();
    assert!(events.next().await.is_some());
    let mut progress = c.progress(JOB).await.unwrap();
    assert!(progress.next().await.is_some());
}

/// Every write the SDK makes.
async fn write_everything(c: &Client) {
    c.upload(b"bytes").await.unwrap();
    c.fund("0x2222222222222222222222222222222222222222", 5)
        .await
        .unwrap();
    let job = Job::new(b"\0asm".to_vec()).stdin(b"in".to_vec());
    c.submit(&job).await.unwrap();
    let (_, mut follow) = c.submit_and_follow(&job).await.unwrap();
    assert!(follow.next().await.is_some());
}

#[tokio::test]
async fn reads_never_carry_the_token_and_writes_do() {
    let fake = fake_node();
    let c = Client::new(&fake.url()).unwrap().with_token("secret");
    read_everything(&c).await;
    let reads = fake.take();
    assert!(reads.len() >= 10, "{reads:?}");
    for Request { method, path, auth } in &reads {
        assert_eq!(method, "GET");
        assert_eq!(auth, &None, "{path} carried the token");
    }

    write_everything(&c).await;
    let all = fake.take();
    let writes: Vec<_> = all.iter().filter(|r| r.method == "POST").collect();
    assert!(writes.len() >= 7, "{all:?}");
    for Request { method, path, auth } in &all {
        let want = (method == "POST").then(|| "Bearer secret".to_owned());
        assert_eq!(auth, &want, "{method} {path}");
    }

    // Without a token, nothing carries one.
    let bare = Client::new(&fake.url()).unwrap();
    assert!(!bare.has_token());
    write_everything(&bare).await;
    for Request { method, path, auth } in fake.take() {
        assert_eq!(auth, None, "{method} {path}");
    }
}

#[tokio::test]
async fn a_data_dirs_client_has_the_token_of_the_node_at_its_address() {
    let fake = fake_node();
    let addr = fake.addr();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-token"), "dirsecret\n").unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("# api = \"127.0.0.1:1\"\napi = \"{addr}\"\n"),
    )
    .unwrap();
    let c = Client::from_data_dir(dir.path()).unwrap();
    assert_eq!(c.url(), format!("http://{addr}"));
    c.offers().await.unwrap();
    c.upload(b"x").await.unwrap();
    let seen = fake.take();
    assert_eq!(seen[0].auth, None);
    assert_eq!(seen[1].auth.as_deref(), Some("Bearer dirsecret"));
}

#[tokio::test]
async fn a_job_id_cannot_steer_the_request() {
    let fake = fake_node();
    let c = Client::new(&fake.url()).unwrap();
    for id in ["../channels", "0x11?side=provider", ""] {
        assert!(matches!(c.job(id).await, Err(Error::BadId(_))), "{id}");
    }
    assert!(fake.take().is_empty());
}
