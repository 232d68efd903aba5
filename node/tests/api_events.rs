//! The API's event stream (`GET /api/v1/events`) on a real node: every event carries an id,
//! and a listener that comes back with `Last-Event-ID` gets exactly the events it missed,
//! in order, none twice; one whose id is from another run of the node is told so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use serde_json::Value;
use sietch_market::B256;
use sietch_node::config::NodeConfig;
use sietch_node::events::{Events, NodeEvent, REPLAY};
use sietch_node::service::{Node, init};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One server-sent event: its id (if any) and its data as JSON.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    data: Value,
}

/// Opens the stream (with `Last-Event-ID` if given) and reads events until `n` of them are
/// jobs submitted or lost events (the node's own events, peers and listening addresses,
/// come in between), or what comes within `wait`.
async fn read_events(api: &str, last: Option<&str>, n: usize, wait: Duration) -> Vec<Sse> {
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let last = last.map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
    let head = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\nAccept: text/event-stream\r\n{last}\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut out = Vec::new();
    let (mut id, mut data) = (None, None);
    let mut in_body = false;
    let deadline = tokio::time::Instant::now() + wait;
    let counted = |out: &Vec<Sse>| {
        out.iter()
            .filter(|e| matches!(e.data["kind"].as_str(), Some("submitted" | "lagged")))
            .count()
    };
    while counted(&out) < n {
        let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else {
            break;
        };
        if !in_body {
            in_body = line.is_empty();
            continue;
        }
        // Chunked transfer: chunk sizes come as lines of their own; SSE fields start with
        // their name.
        if let Some(v) = line
            .strip_prefix("id: ")
            .or_else(|| line.strip_prefix("id:"))
        {
            id = Some(v.to_owned());
        } else if let Some(v) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        {
            data = Some(serde_json::from_str(v).unwrap());
        } else if line.is_empty()
            && let Some(d) = data.take()
        {
            out.push(Sse {
                id: id.take(),
                data: d,
            });
        }
    }
    out
}

fn job_event(n: u8) -> NodeEvent {
    NodeEvent::Submitted {
        job: B256::repeat_byte(n),
    }
}

fn job_of(e: &Sse) -> String {
    e.data["job"].as_str().unwrap_or_default().to_owned()
}

/// The jobs submitted, and the lost-events notices, in order.
fn counted(all: &[Sse]) -> Vec<&Sse> {
    all.iter()
        .filter(|e| matches!(e.data["kind"].as_str(), Some("submitted" | "lagged")))
        .collect()
}

fn seq(e: &Sse) -> u64 {
    e.id.as_deref()
        .unwrap()
        .split_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_comes_back_gets_exactly_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), false).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let events = Events::new();
    let node = Node::start(dir.path(), config, events.clone())
        .await
        .unwrap();
    let api = node.api.to_string();

    // A first listener reads three events, each with an id.
    let reader = {
        let api = api.clone();
        tokio::spawn(async move { read_events(&api, None, 3, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 1..=3 {
        events.emit(job_event(n));
    }
    let all = reader.await.unwrap();
    assert!(
        all.iter().all(|e| e.id.is_some()),
        "an event without an id: {all:?}"
    );
    let first = counted(&all);
    assert_eq!(first.len(), 3, "{all:?}");
    assert_eq!(job_of(first[2]), B256::repeat_byte(3).to_string());
    let last = first[2].id.clone().unwrap();

    // Gone for a while: four more events happen.
    for n in 4..=7 {
        events.emit(job_event(n));
    }
    // Back with its last id: exactly what came after it (4..=7, in order), then the live
    // ones, each once.
    let reader = {
        let (api, last) = (api.clone(), last.clone());
        tokio::spawn(
            async move { read_events(&api, Some(&last), 5, Duration::from_secs(20)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    events.emit(job_event(8));
    let all = reader.await.unwrap();
    let back = counted(&all);
    let jobs: Vec<String> = back.iter().map(|e| job_of(e)).collect();
    let want: Vec<String> = (4..=8).map(|n| B256::repeat_byte(n).to_string()).collect();
    assert_eq!(jobs, want, "{all:?}");
    let seqs: Vec<u64> = all.iter().map(seq).collect();
    let after: u64 = last.split_once('-').unwrap().1.parse().unwrap();
    assert_eq!(
        seqs[0],
        after + 1,
        "the first event after {last} is missing"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a repeat: {seqs:?}"
    );

    // Away so long that the node no longer keeps what it missed: told how many are gone,
    // then given what is kept.
    let last = all.last().unwrap().id.clone().unwrap();
    for n in 0..(REPLAY + 10) {
        events.emit(job_event((n % 200) as u8));
    }
    let back = read_events(&api, Some(&last), 3, Duration::from_secs(20)).await;
    assert_eq!(back[0].data["kind"], "lagged", "{:?}", back[0]);
    assert_eq!(back[0].data["missed"], 10);
    assert_eq!(seq(&back[1]), seq(&back[2]) - 1);
    assert_eq!(
        job_of(&back[1]),
        B256::repeat_byte(10).to_string(),
        "the oldest kept is the 11th of the burst"
    );

    // An id from another run (or none the node wrote): told the count is unknown.
    let back = read_events(&api, Some("0badc0de-5"), 1, Duration::from_secs(20)).await;
    let back2 = read_events(&api, Some("not an id"), 1, Duration::from_secs(20)).await;
    for b in [&back[0], &back2[0]] {
        assert_eq!(b.data["kind"], "lagged", "{b:?}");
        assert!(b.data["missed"].is_null(), "{b:?}");
    }
    node.shutdown().await;
}
