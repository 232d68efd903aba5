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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sietch_sdk::{Client, Error, Job};

const JOB: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

type Log = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// Starts the fake node; every request lands in the log as (method, path, authorization).
fn fake_node() -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let l = l.clone();
            std::thread::spawn(move || serve(conn, &l));
        }
    });
    (addr, log)
}

fn serve(mut conn: TcpStream, log: &Log) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut auth, mut length) = (None, 0usize);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(v.trim().to_owned()),
            "content-length" => length = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    log.lock()
        .unwrap()
        .push((method.clone(), path.clone(), auth));
    let route = path.split('?').next().unwrap_or_default();
    let record = json!({
        "job_id": JOB, "state": "paid", "counterparty": "0x00", "amount": "1",
        "fuel_used": 1, "note": "", "outputs": null,
    });
    let (content_type, body): (&str, Value) = match (method.as_str(), route) {
        ("GET", "/api/v1/events") => {
            let event = format!("data: {}\n\n", json!({"kind": "finished", "job": JOB}));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{event}",
                event.len()
            );
            return;
        }
        ("GET", "/api/v1/node") => (
            "application/json",
            json!({"peer_id": "p", "evm_address": "0x00", "listen_addrs": [], "peers": [],
                   "offers": 0, "chain": null}),
        ),
        ("GET", "/api/v1/jobs") => ("application/json", json!([record])),
        ("GET", r) if r.starts_with("/api/v1/jobs/") => ("application/json", record),
        ("GET", _) => ("application/json", json!([])),
        ("POST", "/api/v1/blobs") => ("application/json", json!({"hash": "0xab"})),
        ("POST", "/api/v1/jobs") => ("application/json", json!({"job_id": JOB})),
        ("POST", "/api/v1/channels") => ("application/json", json!({"channel": "0xc0"})),
        _ => ("application/json", json!({})),
    };
    let body = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
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
    let (addr, log) = fake_node();
    let c = Client::new(&format!("http://{addr}"))
        .unwrap()
        .with_token("secret");
    read_everything(&c).await;
    let reads = std::mem::take(&mut *log.lock().unwrap());
    assert!(reads.len() >= 10, "{reads:?}");
    for (method, path, auth) in &reads {
        assert_eq!(method, "GET");
        assert_eq!(auth, &None, "{path} carried the token");
    }

    write_everything(&c).await;
    let all = std::mem::take(&mut *log.lock().unwrap());
    let writes: Vec<_> = all.iter().filter(|(m, _, _)| m == "POST").collect();
    assert!(writes.len() >= 7, "{all:?}");
    for (method, path, auth) in &all {
        let want = (method == "POST").then(|| "Bearer secret".to_owned());
        assert_eq!(auth, &want, "{method} {path}");
    }

    // Without a token, nothing carries one.
    let bare = Client::new(&format!("http://{addr}")).unwrap();
    assert!(!bare.has_token());
    write_everything(&bare).await;
    for (method, path, auth) in std::mem::take(&mut *log.lock().unwrap()) {
        assert_eq!(auth, None, "{method} {path}");
    }
}

#[tokio::test]
async fn a_data_dirs_client_has_the_token_of_the_node_at_its_address() {
    let (addr, log) = fake_node();
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
    let seen = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(seen[0].2, None);
    assert_eq!(seen[1].2.as_deref(), Some("Bearer dirsecret"));
}

#[tokio::test]
async fn a_job_id_cannot_steer_the_request() {
    let (addr, log) = fake_node();
    let c = Client::new(&format!("http://{addr}")).unwrap();
    for id in ["../channels", "0x11?side=provider", ""] {
        assert!(matches!(c.job(id).await, Err(Error::BadId(_))), "{id}");
    }
    assert!(log.lock().unwrap().is_empty());
}
