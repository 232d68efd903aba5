//! The HTTP API's doors against a real node on 127.0.0.1, attacked as a client on the same
//! machine or a web page would: slow headers, an upload stuck mid-body, piles of idle
//! sockets and event streams (the node keeps answering, the slow ones are cut off, a
//! connection it cannot take is refused in JSON at once); a DNS-rebinding `Host`; every
//! error in the documented JSON (404, 405, 413, a malformed query, hex and signed amounts,
//! an amount over 128 bits); input names that break the protocol's rule; `?wait=true`
//! answering within its bound; a failed blob write naming no path; the explorer served only
//! from its configured directory, with its security headers. Timeouts are configured short
//! (one or two seconds).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use sietch_node::api::HttpConfig;
use sietch_node::config::NodeConfig;
use sietch_node::events::Events;
use sietch_node::service::{Node, init};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Short timeouts and small caps, so that the attacks hit them in seconds.
fn tight() -> HttpConfig {
    HttpConfig {
        header_timeout_secs: 1,
        body_timeout_secs: 1,
        idle_timeout_secs: 2,
        max_connections: 16,
        max_connections_per_client: 16,
        max_event_streams: 3,
        max_event_streams_per_client: 2,
        wait_secs: 1,
        ..HttpConfig::default()
    }
}

async fn start(
    http: HttpConfig,
    explorer_dir: Option<PathBuf>,
    tweak: impl FnOnce(&mut NodeConfig),
) -> (tempfile::TempDir, Node, String) {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), false).unwrap();
    let mut config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        explorer_dir,
        http,
        ..NodeConfig::default()
    };
    tweak(&mut config);
    let node = Node::start(dir.path(), config, Events::new())
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    (dir, node, token)
}

/// A response: status, head (lowercase) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn is_json_error(&self, status: u16, code: &str) -> bool {
        self.status == status
            && self.code() == code
            && self.head.contains("content-type: application/json")
    }
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// One request on its own connection (`Connection: close`), with `host` as the Host header.
async fn send(
    api: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(api).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    parse(&raw)
}

async fn call(
    api: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    send(api, &api.to_string(), method, path, token, body).await
}

/// Reads until the server closes the connection (EOF or reset), up to `within`; how long
/// it took, or `None` if it stayed open.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Opens `GET /api/v1/events` from `from` (a loopback address); the answer's head, and the
/// connection (kept open: the stream).
async fn event_stream(api: SocketAddr, from: [u8; 4]) -> (Answer, TcpStream) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    let mut s = sock.connect(api).await.unwrap();
    let head = format!("GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while !String::from_utf8_lossy(&raw).contains("\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        // An error's body follows its head.
        if !String::from_utf8_lossy(&raw).contains("text/event-stream") {
            let _ = tokio::time::timeout(Duration::from_millis(300), async {
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buf[..n]);
                }
            })
            .await;
        }
    })
    .await;
    (parse(&raw), s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_cut_off_and_the_node_keeps_answering() {
    let (_dir, node, token) = start(tight(), None, |_| {}).await;
    let api = node.api;

    // More idle sockets than the node takes connections: they never send a byte.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(api).await.unwrap());
    }
    // A slowloris: the headers a byte at a time, forever.
    let mut slow = TcpStream::connect(api).await.unwrap();
    let slow_head = format!("GET /api/v1/node HTTP/1.1\r\nHost: {api}\r\nX-Pad: ");
    slow.write_all(slow_head.as_bytes()).await.unwrap();
    let slowloris = tokio::spawn(async move {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(8) {
            if slow.write_all(b"a").await.is_err() {
                return Some(t.elapsed());
            }
            let mut buf = [0u8; 512];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await
            {
                return Some(t.elapsed());
            }
        }
        None
    });
    // An upload stuck at 10 of 1,000,000 bytes.
    let mut stuck = TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST /api/v1/blobs HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\n"
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    stuck.write_all(b"0123456789").await.unwrap();
    let stuck_at = Instant::now();

    // The node still answers, at once.
    let t = Instant::now();
    let a = call(api, "GET", "/api/v1/node", None, b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "GET /node took {:?}",
        t.elapsed()
    );

    // The stuck upload is told why and closed when its body timeout passes.
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stuck.read_to_end(&mut raw)).await;
    let waited = stuck_at.elapsed();
    let a = parse(&raw);
    assert!(
        a.is_json_error(408, "body_timeout"),
        "{} {}",
        a.status,
        a.body
    );
    assert!(
        waited < Duration::from_secs(4),
        "the stuck upload stayed {waited:?}"
    );

    // The slowloris is cut off about a second after its first byte, though it keeps sending.
    let cut = slowloris.await.unwrap();
    assert!(
        cut.is_some_and(|d| d < Duration::from_secs(4)),
        "the slow headers stayed open: {cut:?}"
    );

    // Every idle socket is closed: to make room, or after the idle timeout.
    for (i, s) in idle.iter_mut().enumerate() {
        let d = closed_within(s, Duration::from_secs(4)).await;
        assert!(d.is_some(), "idle socket {i} is still open");
    }

    // And the node answers as before.
    let a = call(api, "GET", "/api/v1/node", None, b"").await;
    assert_eq!(a.status, 200);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_in_json_at_once_when_all_are_busy() {
    let http = HttpConfig {
        max_connections: 4,
        max_event_streams: 8,
        max_event_streams_per_client: 8,
        ..tight()
    };
    let (_dir, node, _token) = start(http, None, |_| {}).await;
    let api = node.api;
    // Four busy connections: event streams, a request in flight each.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let (a, s) = event_stream(api, [127, 0, 0, 1]).await;
        assert_eq!(a.status, 200, "{}", a.body);
        streams.push(s);
    }
    let t = Instant::now();
    let a = call(api, "GET", "/api/v1/node", None, b"").await;
    assert!(
        a.is_json_error(503, "connections_full"),
        "{} {}",
        a.status,
        a.body
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the refusal took {:?}",
        t.elapsed()
    );

    // One stream closes: its place is free again.
    drop(streams.pop());
    let t = Instant::now();
    loop {
        let a = call(api, "GET", "/api/v1/node", None, b"").await;
        if a.status == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still refused: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_client_and_in_total() {
    let (_dir, node, _token) = start(tight(), None, |_| {}).await;
    let api = node.api;
    // Two from 127.0.0.1 (its cap), the third refused.
    let (a, _s1) = event_stream(api, [127, 0, 0, 1]).await;
    assert_eq!(a.status, 200);
    let (a, _s2) = event_stream(api, [127, 0, 0, 1]).await;
    assert_eq!(a.status, 200);
    let (a, _) = event_stream(api, [127, 0, 0, 1]).await;
    assert!(
        a.is_json_error(429, "event_streams_per_client"),
        "{} {}",
        a.status,
        a.body
    );
    // One from 127.0.0.2 fills the node's three; a fourth client is refused.
    let (a, s3) = event_stream(api, [127, 0, 0, 2]).await;
    assert_eq!(a.status, 200);
    let (a, _) = event_stream(api, [127, 0, 0, 3]).await;
    assert!(
        a.is_json_error(503, "event_streams_full"),
        "{} {}",
        a.status,
        a.body
    );
    // The rest of the API answers.
    assert_eq!(
        call(api, "GET", "/api/v1/node", None, b"").await.status,
        200
    );
    // A stream that ends gives its place back.
    drop(s3);
    let t = Instant::now();
    loop {
        let (a, _s) = event_stream(api, [127, 0, 0, 3]).await;
        if a.status == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still refused: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebinding_host_is_refused_and_the_loopback_names_answer() {
    let (_dir, node, token) = start(tight(), None, |_| {}).await;
    let api = node.api;
    let port = api.port();
    let evil = format!("evil.example:{port}");
    for path in [
        "/api/v1/jobs",
        "/api/v1/channels",
        "/api/v1/events",
        "/api/v1/node",
        "/",
    ] {
        let a = send(api, &evil, "GET", path, None, b"").await;
        assert!(
            a.is_json_error(421, "host_not_allowed"),
            "{path}: {} {}",
            a.status,
            a.body
        );
        assert!(!a.body.contains("\"peer_id\""), "{path}: {}", a.body);
    }
    // With the token too: the page cannot write either.
    let a = send(api, &evil, "POST", "/api/v1/blobs", Some(&token), b"\0asm").await;
    assert!(
        a.is_json_error(421, "host_not_allowed"),
        "{} {}",
        a.status,
        a.body
    );
    // An absolute-form request naming another host.
    let a = send(
        api,
        &api.to_string(),
        "GET",
        "http://evil.example/api/v1/node",
        None,
        b"",
    )
    .await;
    assert!(
        a.is_json_error(421, "host_not_allowed"),
        "{} {}",
        a.status,
        a.body
    );
    // The names it is bound to answer.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
    ] {
        let a = send(api, &host, "GET", "/api/v1/channels", None, b"").await;
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
    node.shutdown().await;

    // A name the operator lists answers too.
    let http = HttpConfig {
        allowed_hosts: vec!["node.lan".into()],
        ..tight()
    };
    let (_dir, node, _token) = start(http, None, |_| {}).await;
    let a = send(
        node.api,
        &format!("node.lan:{}", node.api.port()),
        "GET",
        "/api/v1/node",
        None,
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    node.shutdown().await;
}

/// Method, path, token, body; the status and code expected.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_a_stable_code() {
    let (_dir, node, token) = start(tight(), None, |_| {}).await;
    let api = node.api;
    let t = Some(token.as_str());
    let cases: Vec<Case<'_>> = vec![
        ("GET", "/api/v1/nope", None, vec![], 404, "not_found"),
        (
            "PUT",
            "/api/v1/node",
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/api/v1/jobs",
            t,
            vec![],
            405,
            "method_not_allowed",
        ),
        ("POST", "/anything", None, vec![], 405, "method_not_allowed"),
        (
            "GET",
            "/api/v1/jobs?limit=lots",
            None,
            vec![],
            400,
            "bad_request",
        ),
        ("GET", "/api/v1/jobs/0x12", None, vec![], 400, "bad_id"),
        (
            "POST",
            "/api/v1/jobs?wait=perhaps",
            t,
            b"{}".to_vec(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/jobs",
            t,
            vec![b' '; (1 << 20) + 1],
            413,
            "too_large",
        ),
        (
            "POST",
            "/api/v1/jobs",
            t,
            b"{\"module\":".to_vec(),
            400,
            "bad_job",
        ),
        (
            "POST",
            "/api/v1/jobs",
            None,
            b"{}".to_vec(),
            401,
            "token_required",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let a = call(api, method, path, token, &body).await;
        assert!(
            a.is_json_error(status, code),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
    }
    // A blob over the bound (the store's max_blob_bytes) is refused on its Content-Length,
    // before its bytes are read.
    let mut s = TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST /api/v1/blobs HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        sietch_node::store::DEFAULT_MAX_BLOB_BYTES + 1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut raw)).await;
    let a = parse(&raw);
    assert!(a.is_json_error(413, "too_large"), "{} {}", a.status, a.body);

    // Amounts: decimal digits only, within 128 bits.
    let provider = "0x00000000000000000000000000000000000000aa";
    let max256 = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    for amount in ["0x10", "+1", " 1", "-1", "1e3", "", "0", max256] {
        let body = format!(r#"{{"provider":"{provider}","amount":"{amount}"}}"#);
        let a = call(api, "POST", "/api/v1/channels", t, body.as_bytes()).await;
        assert!(
            a.is_json_error(400, "bad_amount"),
            "{amount:?}: {} {}",
            a.status,
            a.body
        );
    }
    let module = call(api, "POST", "/api/v1/blobs", t, b"\0asm").await;
    let hash = serde_json::from_str::<Value>(&module.body).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    for cap in ["0x10", "+1", max256] {
        let body = format!(r#"{{"module":"{hash}","price_cap":"{cap}"}}"#);
        let a = call(api, "POST", "/api/v1/jobs", t, body.as_bytes()).await;
        assert!(
            a.is_json_error(400, "bad_job"),
            "{cap:?}: {} {}",
            a.status,
            a.body
        );
        assert!(a.body.contains("price_cap"), "{}", a.body);
    }
    // Every answer carries the security headers.
    let a = call(api, "GET", "/api/v1/nope", None, b"").await;
    assert!(
        a.head.contains("x-content-type-options: nosniff"),
        "{}",
        a.head
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_could_never_run_are_refused_at_submission() {
    let (_dir, node, token) = start(tight(), None, |_| {}).await;
    let api = node.api;
    let t = Some(token.as_str());
    let upload = |bytes: &'static [u8]| async move {
        let a = call(api, "POST", "/api/v1/blobs", t, bytes).await;
        serde_json::from_str::<Value>(&a.body).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let module = upload(b"\0asm\x01\0\0\0").await;
    let input = upload(b"input bytes").await;
    let job = |inputs: Value| {
        serde_json::json!({"module": module, "price_cap": "1000", "inputs": inputs}).to_string()
    };
    let named = |names: &[&str]| {
        job(Value::Array(
            names
                .iter()
                .map(|n| serde_json::json!({"name": n, "blob": input}))
                .collect(),
        ))
    };
    let long = "x".repeat(256);
    for names in [
        vec!["../../etc/passwd"],
        vec!["/etc/passwd"],
        vec!["a\\b"],
        vec!["a\0b"],
        vec![""],
        vec!["."],
        vec![".."],
        vec!["\x1b]0;pwned\x07"],
        vec!["gpj.\u{202e}exe"],
        vec![long.as_str()],
        vec!["data.bin", "data.bin"],
    ] {
        let a = call(api, "POST", "/api/v1/jobs", t, named(&names).as_bytes()).await;
        assert!(
            a.is_json_error(400, "bad_input_name"),
            "{names:?}: {} {}",
            a.status,
            a.body
        );
        assert!(a.body.contains("inputs["), "{}", a.body);
    }
    // What a provider's sandbox or admission would refuse.
    let spec = |extra: Value| {
        let mut v = serde_json::json!({"module": module, "price_cap": "1000"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    for (extra, field) in [
        (serde_json::json!({"env": [["A=B", "1"]]}), "env"),
        (serde_json::json!({"env": [["", "1"]]}), "env"),
        (serde_json::json!({"args": ["a\u{0}b"]}), "args"),
        (
            serde_json::json!({"limits": {"output_bytes": 16u64 << 20}}),
            "limits.output_bytes",
        ),
        (
            serde_json::json!({"limits": {"memory_bytes": 5u64 << 30}}),
            "limits.memory_bytes",
        ),
    ] {
        let a = call(
            api,
            "POST",
            "/api/v1/jobs",
            t,
            spec(extra.clone()).as_bytes(),
        )
        .await;
        assert!(
            a.is_json_error(400, "bad_job"),
            "{extra}: {} {}",
            a.status,
            a.body
        );
        assert!(a.body.contains(field), "{extra}: {}", a.body);
    }
    // Good names pass (the job is taken; no provider is there to run it).
    let a = call(
        api,
        "POST",
        "/api/v1/jobs",
        t,
        named(&["data.bin", ".config", "日本語.txt"]).as_bytes(),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    node.shutdown().await;
}

/// Loops until its wall time runs out.
const SPIN: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_answers_within_its_bound_with_the_job_still_running() {
    let (_pdir, provider, _) = start(HttpConfig::default(), None, |c| {
        c.provide = true;
        c.offer_gpu = false;
        c.announce_every_secs = 1;
        c.offer_ttl_secs = 30;
        // Enough stake to cover the job's price at the default sampling rate.
        c.stake = 1_000_000_000;
    })
    .await;
    let addr = provider.net.listen_addrs().await.unwrap()[0].clone();
    let boot = format!("{addr}/p2p/{}", provider.net.peer_id());
    let (_bdir, buyer, token) = start(tight(), None, |c| c.bootstrap = vec![boot]).await;
    let api = buyer.api;
    let t = Instant::now();
    loop {
        let a = call(api, "GET", "/api/v1/offers", None, b"").await;
        if a.body.contains("evm_address") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no offer reached the buyer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let module = call(
        api,
        "POST",
        "/api/v1/blobs",
        Some(&token),
        &wat::parse_str(SPIN).unwrap(),
    )
    .await;
    let hash = serde_json::from_str::<Value>(&module.body).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = serde_json::json!({
        "module": hash,
        "price_cap": "10000000",
        "limits": {"fuel": 1_000_000_000_000u64, "wall_time_ms": 5_000},
    })
    .to_string();
    let t = Instant::now();
    let a = call(
        api,
        "POST",
        "/api/v1/jobs?wait=true",
        Some(&token),
        job.as_bytes(),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(took < Duration::from_secs(4), "the wait took {took:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["finished"], false, "{v}");
    assert!(
        v["job_id"].as_str().is_some() && v["state"].as_str().is_some(),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("/api/v1/jobs/"),
        "{v}"
    );
    buyer.shutdown().await;
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_blob_write_names_no_path() {
    let (dir, node, token) = start(tight(), None, |_| {}).await;
    let blobs = dir.path().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let a = call(
        node.api,
        "POST",
        "/api/v1/blobs",
        Some(&token),
        b"some module",
    )
    .await;
    assert!(
        a.status >= 400 && a.head.contains("application/json"),
        "{} {}",
        a.status,
        a.body
    );
    assert!(!a.code().is_empty(), "{}", a.body);
    let root = dir.path().to_str().unwrap();
    assert!(
        !a.body.contains(root) && !a.body.contains("/tmp"),
        "{}",
        a.body
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_comes_only_from_its_directory_with_security_headers() {
    // An untrusted checkout with a built explorer, and the node started inside it.
    let checkout = tempfile::tempdir().unwrap();
    let evil = checkout.path().join("explorer").join("dist");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("index.html"), "<script>steal()</script>EVIL").unwrap();
    std::env::set_current_dir(checkout.path().join("explorer")).unwrap();
    let (_dir, node, _) = start(tight(), None, |_| {}).await;
    let a = call(node.api, "GET", "/", None, b"").await;
    assert_eq!(a.status, 200);
    assert!(
        !a.body.contains("EVIL") && a.body.contains("--explorer-dir"),
        "{}",
        a.body
    );
    node.shutdown().await;

    // The configured one is served, under the Content-Security-Policy.
    let good = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(good.path().join("assets")).unwrap();
    std::fs::write(good.path().join("index.html"), "<!doctype html>GOOD").unwrap();
    std::fs::write(good.path().join("assets/app.js"), "console.log(1)").unwrap();
    let (_dir, node, _) = start(tight(), Some(good.path().to_owned()), |_| {}).await;
    let a = call(node.api, "GET", "/jobs/0x12", None, b"").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("GOOD"), "{}", a.body);
    for h in [
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
    ] {
        assert!(a.head.contains(h), "{h} missing from {}", a.head);
    }
    let a = call(node.api, "GET", "/assets/app.js", None, b"").await;
    assert!(
        a.head.contains("content-type: text/javascript"),
        "{}",
        a.head
    );
    let a = call(node.api, "GET", "/../../../etc/passwd", None, b"").await;
    assert!(
        a.body.contains("GOOD") && !a.body.contains("root:"),
        "{}",
        a.body
    );
    node.shutdown().await;
}
