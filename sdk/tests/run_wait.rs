//! `Client::run` when the node stops waiting (`http.wait_secs`) before the job ends: the
//! node answers 202 with `"finished": false`, and the SDK follows the job to its end instead
//! of failing to read that answer. A fake node (a real HTTP server on 127.0.0.1) plays it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use sietch_sdk::{Client, Error, Job};

const JOB: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// A node whose job is still running for the first `running` reads, then ends `state`.
fn fake_node(running: usize, state: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let reads = reads.clone();
            std::thread::spawn(move || serve(conn, &reads, running, state));
        }
    });
    addr
}

fn serve(mut conn: TcpStream, reads: &AtomicUsize, running: usize, state: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let _ = reader.read_exact(&mut vec![0; length]);
    let outputs = json!({"outcome": "exited 0", "exit_code": 0, "stdout": "b2s=",
        "files": {}, "output_hash": "0x00", "fuel_used": 7, "amount": "42"});
    let (status, body) = match (method.as_str(), path.as_str()) {
        ("POST", "/api/v1/blobs") => ("200 OK", json!({"hash": "0xab"})),
        ("POST", "/api/v1/jobs?wait=true") => (
            "202 Accepted",
            json!({"job_id": JOB, "finished": false, "state": "running",
                   "message": "still running after 300 s"}),
        ),
        ("GET", p) if p.starts_with("/api/v1/jobs/") => {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            let done = n >= running;
            (
                "200 OK",
                json!({"job_id": JOB, "state": if done { state } else { "running" },
                       "counterparty": "0xprovider", "amount": "42", "fuel_used": 7,
                       "note": if done && state == "failed" { "no provider delivered" } else { "" },
                       "outputs": if done && state == "paid" { outputs } else { json!(null) }}),
            )
        }
        _ => (
            "404 Not Found",
            json!({"code": "not_found", "message": path}),
        ),
    };
    let body = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[tokio::test]
async fn run_follows_a_job_the_node_stopped_waiting_for() {
    let addr = fake_node(2, "paid");
    let c = Client::new(&format!("http://{addr}"))
        .unwrap()
        .with_token("t");
    let done = c.run(&Job::new(b"\0asm".to_vec())).await.unwrap();
    assert_eq!(done.job_id, JOB);
    assert_eq!(done.provider, "0xprovider");
    assert_eq!(done.paid, "42");
    assert_eq!(done.outputs.stdout().unwrap(), b"ok");
}

#[tokio::test]
async fn run_reports_a_followed_job_that_failed() {
    let addr = fake_node(1, "failed");
    let c = Client::new(&format!("http://{addr}"))
        .unwrap()
        .with_token("t");
    let err = c.run(&Job::new(b"\0asm".to_vec())).await.unwrap_err();
    match err {
        Error::Api { code, message, .. } => {
            assert_eq!(code, "job_failed");
            assert!(message.contains("no provider delivered"), "{message}");
        }
        e => panic!("{e:?}"),
    }
}
