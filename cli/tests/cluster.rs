//! Five real `sietch node run` processes on loopback (three of them providers), joined
//! through a bootstrap node with mDNS off, watched through each node's HTTP API; the test
//! process adds a buyer node and an attacker node of its own (the same network actor
//! `sietch node run` runs).
//!
//! * `offers_reach_every_node_and_a_job_gets_its_result`: every provider's offer reaches
//!   every node; a buyer picks one by matching, sends a signed ticket, the provider fetches
//!   the module and a 3 MiB input from the buyer (the connection is dropped while a chunk
//!   is in flight, and the transfer resumes), runs the job in its sandbox and returns a
//!   signed result that the buyer reproduces locally, bit for bit; bad tickets are refused
//!   with their reason.
//! * `a_peer_sending_bad_offers_is_cut_off_and_shutdowns_are_seen`: a peer publishing
//!   malformed, oversized and forged offers is cut off while the providers' offers keep
//!   flowing; a provider stopped with Ctrl-C withdraws its offer at once; a provider killed
//!   with SIGKILL leaves an offer that expires, and comes back with a higher sequence and the
//!   same identity on restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use ed25519_dalek::SigningKey;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use sietch_market::*;
use sietch_node::net::{
    self, BlobSource, JobReply, JobRequest, NetConfig, NetEvent, Network, OfferClass, RefuseReason,
    ResultAck,
};
use sietch_testkit::fnv::fnv1a;
use sietch_testkit::process::{Node, Nodes, Spec, api_line, peer_line, word};
use tokio::sync::mpsc;

/// How long one step may take on a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(60);
/// Offer lifetime and heartbeat of the providers, in seconds.
const TTL: u64 = 6;
const ANNOUNCE: u64 = 1;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------

struct Cluster {
    nodes: Nodes,
    /// Peer id of each node.
    peers: Vec<String>,
    /// HTTP API address of each node.
    apis: Vec<String>,
    /// The bootstrap node's TCP address, ending in `/p2p/<id>`.
    bootstrap: Multiaddr,
}

fn node_args(provide: bool, bootstrap: Option<&Multiaddr>) -> Vec<String> {
    let mut a: Vec<String> = [
        "--no-mdns",
        "--autonat-private",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--listen",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "--api",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    if let Some(b) = bootstrap {
        a.extend(["--bootstrap".into(), b.to_string()]);
    }
    if provide {
        a.extend(
            [
                "--provide".to_owned(),
                "--announce-every".into(),
                ANNOUNCE.to_string(),
                "--offer-ttl".into(),
                TTL.to_string(),
            ]
            .map(String::from),
        );
    }
    a
}

fn tcp_listen_line(line: &str) -> Option<String> {
    let addr = line.strip_prefix("listening ")?;
    (addr.starts_with("/ip4/127.0.0.1/tcp/") && !addr.contains("p2p-circuit"))
        .then(|| addr.to_owned())
}

/// Node 0 is the bootstrap node; `providers` (indexes) sell compute.
fn start_cluster(n: usize, providers: &[usize]) -> Cluster {
    let spec = |i: usize, bootstrap: Option<&Multiaddr>| Spec {
        name: format!(
            "n{i}{}",
            if providers.contains(&i) {
                "-provider"
            } else {
                ""
            }
        ),
        ns: None,
        args: node_args(providers.contains(&i), bootstrap),
        rust_log: "warn,sietch_node=info".into(),
    };
    let mut nodes = Nodes(vec![Node::start(spec(0, None))]);
    let peer0 = nodes.wait_for(0, "its `peer` line", STEP, peer_line);
    let tcp0 = nodes.wait_for(0, "its TCP listen address", STEP, tcp_listen_line);
    let bootstrap: Multiaddr = format!("{tcp0}/p2p/{peer0}").parse().unwrap();
    for i in 1..n {
        nodes.0.push(Node::start(spec(i, Some(&bootstrap))));
    }
    let mut peers = Vec::new();
    let mut apis = Vec::new();
    for i in 0..n {
        peers.push(nodes.wait_for(i, "its `peer` line", STEP, peer_line));
        apis.push(nodes.wait_for(i, "its `api` line", STEP, api_line));
        nodes.wait_for(i, "`ready`", STEP, |l| (l == "ready").then_some(()));
    }
    Cluster {
        nodes,
        peers,
        apis,
        bootstrap,
    }
}

/// `GET path` on a node's API, as JSON.
fn get(api: &str, path: &str) -> Result<Value, String> {
    let mut s = std::net::TcpStream::connect(api).map_err(|e| format!("{api}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}"));
    }
    serde_json::from_str(body).map_err(|e| format!("GET {path}: {e}: {body}"))
}

impl Cluster {
    /// The offers in node `i`'s book: peer id → sequence.
    fn offers(&self, i: usize) -> HashMap<String, u64> {
        match get(&self.apis[i], "/api/v1/offers") {
            Ok(Value::Array(list)) => list
                .iter()
                .filter_map(|o| Some((o["peer_id"].as_str()?.to_owned(), o["sequence"].as_u64()?)))
                .collect(),
            _ => HashMap::new(),
        }
    }

    /// Node `i`'s `/api/v1/node`.
    fn info(&self, i: usize) -> Value {
        get(&self.apis[i], "/api/v1/node").unwrap_or(Value::Null)
    }

    /// Waits until `f` holds, or fails with what `f` last saw and every node's output.
    fn wait(&mut self, what: &str, mut f: impl FnMut(&Self) -> Result<(), String>) {
        let deadline = Instant::now() + STEP;
        loop {
            let r = f(self);
            match r {
                Ok(()) => return,
                Err(why) if Instant::now() >= deadline => {
                    panic!(
                        "timed out after {STEP:?} waiting for: {what}\nlast: {why}\n{}",
                        self.nodes.dump()
                    )
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every running node in `on` holds offers from exactly the `expected`
    /// peers (`Some(min sequence)`: present at least at that sequence; `None`: absent).
    fn wait_offers(&mut self, what: &str, on: &[usize], expected: &[(String, Option<u64>)]) {
        let on = on.to_vec();
        self.wait(what, |c| {
            for &i in &on {
                let book = c.offers(i);
                for (peer, want) in expected {
                    match (want, book.get(peer)) {
                        (Some(min), Some(seq)) if seq >= min => {}
                        (None, None) => {}
                        (want, got) => {
                            return Err(format!(
                                "node {i} holds {peer} at {got:?}, expected {want:?}; book {book:?}"
                            ));
                        }
                    }
                }
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// The buyer (and attacker) node in this process
// ---------------------------------------------------------------------------------------

/// Serves blobs from memory. The first request for `slow` at or past `cut_at` signals
/// `cut` and is answered late, so that the connection can be dropped while that chunk is
/// in flight. Records the offsets asked for `slow`.
struct BuyerBlobs {
    blobs: HashMap<B256, Vec<u8>>,
    slow: B256,
    cut_at: u64,
    cut: Mutex<Option<mpsc::Sender<()>>>,
    asked: Mutex<Vec<u64>>,
}

impl BlobSource for BuyerBlobs {
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)> {
        if *hash == self.slow {
            self.asked.lock().unwrap().push(offset);
            if offset >= self.cut_at
                && let Some(cut) = self.cut.lock().unwrap().take()
            {
                let _ = cut.try_send(());
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let b = self.blobs.get(hash)?;
        let start = (offset as usize).min(b.len());
        let end = (start + max_len).min(b.len());
        Some((b.len() as u64, b[start..end].to_vec()))
    }
}

fn in_process_node(
    seed: u8,
    bootstrap: &Multiaddr,
    blobs: Option<Arc<dyn BlobSource>>,
) -> (Network, mpsc::Receiver<NetEvent>) {
    let cfg = NetConfig {
        bootstrap: vec![bootstrap.clone()],
        blobs,
        ..NetConfig::loopback()
    };
    Network::spawn(net::keypair(&SigningKey::from_bytes(&[seed; 32])), cfg).unwrap()
}

/// FNV-1a (32 bits) of `/input/data`, written to stdout as 4 little-endian bytes.
const FNV: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 200) "data")
  (func (export "_start")
    (local $fd i32) (local $n i32) (local $i i32) (local $h i32)
    (local.set $h (i32.const 0x811c9dc5))
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 4) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)) (then (call $exit (i32.const 9))))
    (local.set $fd (i32.load (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 65536)) (i32.store (i32.const 4) (i32.const 65536))
    (block $done (loop $more
      (br_if $done (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $i (i32.const 0))
      (block $chunk (loop $bytes
        (br_if $chunk (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h (i32.mul
          (i32.xor (local.get $h) (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
          (i32.const 16777619)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
      (br $more)))
    (i32.store (i32.const 32) (local.get $h))
    (i32.store (i32.const 0) (i32.const 32)) (i32.store (i32.const 4) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 0))))
"#;

fn spec_for(module: &[u8], data: &[u8]) -> JobSpec {
    JobSpec {
        module: BlobRef::of(module).hash,
        args: vec!["fnv".into()],
        env: vec![],
        stdin: None,
        inputs: vec![job::Input {
            name: "data".into(),
            blob: BlobRef::of(data),
        }],
        limits: job::Limits {
            fuel: 1_000_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 30_000,
            output_bytes: 1 << 16,
        },
        requirements: job::Requirements {
            min_cpu_cores: 1,
            features: vec![],
            gpu: None,
        },
        // Every job checked: the matcher then asks for no stake (the providers state none).
        verification: job::VerificationPolicy {
            sampling_ppm: job::PPM,
            ..Default::default()
        },
        price_cap: 1_000_000,
        deadline: now() + 600,
    }
}

fn ticket_for(spec: &JobSpec, buyer: &PrivateKeySigner, nonce: u64, max: u64) -> Ticket {
    Ticket {
        job_id: job_id(buyer.address(), nonce, spec.hash()),
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(3),
        cumulative_before: U256::ZERO,
        max_amount: U256::from(max),
        deadline: now() + 600,
        check_commit: settlement::check_commit(&B256::repeat_byte(4)),
        // The providers' offers carry the default price; a CPU job has no GPU price.
        per_gfuel: sietch_node::config::NodeConfig::default().price_per_gfuel,
        per_gpu_second: 0,
    }
}

/// The domain the providers sign in: `sietch node run`'s defaults (chain 31337, no escrow).
fn domain() -> Domain {
    Domain::new(31_337, Address::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_reach_every_node_and_a_job_gets_its_result() {
    let providers = [1, 2, 3];
    let mut c = start_cluster(5, &providers);
    let all: Vec<usize> = (0..5).collect();
    let expected: Vec<_> = providers
        .iter()
        .map(|&p| (c.peers[p].clone(), Some(1)))
        .collect();
    c.wait_offers(
        "every provider's offer in every node's book",
        &all,
        &expected,
    );
    for i in &all {
        let info = c.info(*i);
        assert!(
            info["peers"].as_array().is_some_and(|p| !p.is_empty()),
            "node {i} has no peers: {info}"
        );
    }

    // The buyer: the module and a 3 MiB input, served to whichever provider it picks.
    let module = wat::parse_str(FNV).unwrap();
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let spec = spec_for(&module, &data);
    let (cut_tx, mut cut_rx) = mpsc::channel::<()>(1);
    let blobs = Arc::new(BuyerBlobs {
        blobs: HashMap::from([
            (BlobRef::of(&module).hash, module.clone()),
            (BlobRef::of(&data).hash, data.clone()),
        ]),
        slow: BlobRef::of(&data).hash,
        // Two thirds in: the stream's first mebibytes are on their way when it is cut.
        cut_at: 2 * data.len() as u64 / 3,
        cut: Mutex::new(Some(cut_tx)),
        asked: Mutex::new(Vec::new()),
    });
    let (buyer, mut events) = in_process_node(0xb0, &c.bootstrap, Some(blobs.clone()));

    // Matching on the buyer's own book, filled by gossip.
    let deadline = Instant::now() + STEP;
    let matches = loop {
        let found = buyer.book().lock().unwrap().find(&spec, now(), &(), 3);
        match found {
            Ok(m) if m.len() == 3 => break m,
            other if Instant::now() >= deadline => {
                panic!("the buyer's book never matched 3 offers: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let chosen = matches[0].provider;
    let provider_peer: PeerId = net::peer_id_of(&chosen).unwrap();
    let offer = buyer
        .book()
        .lock()
        .unwrap()
        .get(&chosen)
        .unwrap()
        .payload
        .clone();
    let idx = c
        .peers
        .iter()
        .position(|p| *p == provider_peer.to_string())
        .expect("the matched provider is one of the cluster's");
    for a in &offer.addresses {
        if let Ok(a) = a.parse::<Multiaddr>() {
            buyer.add_address(provider_peer, a).await.unwrap();
        }
    }
    assert!(
        !offer.addresses.is_empty(),
        "the offer carries no addresses: {offer:?}"
    );

    let buyer_evm = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();

    // Refusals, each with its reason: a ticket that cannot pay the fuel limit, and a
    // signature that is not one.
    let ask = |ticket: Ticket, signature: Option<[u8; 65]>| {
        let request = JobRequest {
            spec: spec.clone(),
            ticket,
            ticket_signature: signature
                .unwrap_or_else(|| ticket.sign(&domain(), &buyer_evm).unwrap()),
            paying: None,
        };
        let buyer = buyer.clone();
        async move { buyer.request_job(provider_peer, request).await.unwrap() }
    };
    let reply = ask(ticket_for(&spec, &buyer_evm, 1, 1), None).await;
    match reply {
        JobReply::Refused { reason, message } => {
            assert_eq!(reason, RefuseReason::PriceTooLow, "{message}");
            assert!(message.contains("fuel"), "{message}");
        }
        other => panic!("a ticket of 1 was not refused: {other:?}"),
    }
    let reply = ask(ticket_for(&spec, &buyer_evm, 2, 1_000_000), Some([7u8; 65])).await;
    assert!(
        matches!(
            reply,
            JobReply::Refused {
                reason: RefuseReason::BadSignature,
                ..
            }
        ),
        "a malformed ticket signature was not refused: {reply:?}"
    );

    // The real job; the connection drops while a chunk of the input is in flight.
    let cutter = {
        let net = buyer.clone();
        tokio::spawn(async move {
            if cut_rx.recv().await.is_some() {
                net.disconnect(provider_peer).await.unwrap();
            }
        })
    };
    let ticket = ticket_for(&spec, &buyer_evm, 3, 1_000_000);
    let reply = ask(ticket, None).await;
    // The provider lacks the input, so it answers before fetching it (an answer held open
    // across a transfer would be lost with the connection) and the result arrives on the
    // result protocol.
    assert_eq!(
        reply,
        JobReply::Accepted {
            job_id: ticket.job_id
        }
    );
    let result = tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Some(NetEvent::ResultReceived {
                    peer,
                    result,
                    reply,
                }) => {
                    let _ = reply.send(ResultAck::Received);
                    break (peer, result);
                }
                Some(_) => {}
                None => panic!("the buyer's network stopped"),
            }
        }
    })
    .await;
    let Ok((from, result)) = result else {
        panic!("no result within {STEP:?}\n{}", c.nodes.dump());
    };
    cutter.await.unwrap();
    assert_eq!(from, provider_peer);
    assert_eq!(result.job_id, ticket.job_id);
    assert_eq!(result.outcome.tag(), (0, 0), "the job did not exit 0");
    assert_eq!(result.stdout, fnv1a(&data).to_le_bytes());

    // The transfer was cut while in flight and resumed from where the provider's copy
    // stood, not from the start. Streamed (`/sietch/blob-stream/1`), the buyer's side reads
    // ahead of what reached the provider, so the resumed stream asks again from an offset
    // before the last one read, never 0 (the cut stream's own read-ahead may still finish a
    // read after the resumed one began).
    let asked = blobs.asked.lock().unwrap().clone();
    assert_eq!(asked.first(), Some(&0), "{asked:?}");
    assert!(
        asked.iter().any(|&o| o >= 2 * data.len() as u64 / 3),
        "the transfer was not cut in flight: {asked:?}"
    );
    let again: Vec<u64> = asked
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| w[1])
        .collect();
    assert!(!again.is_empty(), "not resumed: {asked:?}");
    assert_eq!(
        asked.iter().filter(|&&o| o == 0).count(),
        1,
        "restarted from 0, not resumed: {asked:?}"
    );

    // The commitment is the provider's, over this job, and the buyer reproduces it.
    let commitment = result.commitment;
    commitment
        .verify(&domain(), &result.signature, offer.evm_address)
        .unwrap();
    assert_eq!(commitment.job_id, ticket.job_id);
    assert_eq!(commitment.spec_hash, spec.hash());
    let sandbox = sietch_sandbox::Sandbox::new(sietch_sandbox::SandboxConfig::default()).unwrap();
    let local = sandbox
        .run(
            &sandbox.load(&module).unwrap(),
            &sietch_node::jobs::sandbox_job(
                &spec,
                &ticket.job_id,
                Vec::new(),
                BTreeMap::from([("data".to_owned(), data.clone().into())]),
            ),
        )
        .unwrap();
    assert_eq!(commitment.output_hash, B256::from(local.output_hash));
    assert_eq!(commitment.fuel_used, local.fuel_used);
    let price = offer.prices.per_gfuel;
    assert_eq!(
        commitment.amount,
        U256::from((u128::from(local.fuel_used) * price).div_ceil(1_000_000_000))
    );

    // The provider recorded the job as done, with its result, in its store.
    let jobs = get(&c.apis[idx], "/api/v1/jobs?side=provider").unwrap();
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == ticket.job_id.to_string())
        .unwrap_or_else(|| panic!("job not in the provider's store: {jobs}"));
    assert_eq!(job["fuel_used"], local.fuel_used, "{job}");
    assert!(
        c.nodes.0[idx]
            .find(|l| (l.starts_with("refused job") && l.contains("fuel")).then_some(()))
            .is_some(),
        "the provider did not log the refusal"
    );
}

/// Publishes a gossip message as is, once per `class` topic.
async fn publish_raw(net: &Network, bytes: Vec<u8>) {
    let _ = net.publish_raw(OfferClass::Cpu, bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_bad_offers_is_cut_off_and_shutdowns_are_seen() {
    let providers = [2, 3, 4];
    let mut c = start_cluster(5, &providers);
    let all: Vec<usize> = (0..5).collect();
    let present = |c: &Cluster, p: &[usize]| -> Vec<(String, Option<u64>)> {
        p.iter().map(|&i| (c.peers[i].clone(), Some(1))).collect()
    };
    c.wait_offers("every offer everywhere", &all, &present(&c, &providers));

    // The attacker joins through node 0 and floods it with bad offers.
    let (attacker, _events) = in_process_node(0xa7, &c.bootstrap, None);
    let attacker_peer = attacker.peer_id().to_string();
    c.wait("the attacker connected to node 0", |c| {
        let peers = c.info(0)["peers"].clone();
        peers
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == attacker_peer.as_str()))
            .then_some(())
            .ok_or(format!("peers {peers}"))
    });
    let attacker_key = SigningKey::from_bytes(&[0xa7; 32]);
    let victim_key = SigningKey::from_bytes(&[0x11; 32]);
    let good_offer = |key: &SigningKey, sequence: u64| Offer {
        provider: PublicKey::of(key),
        evm_address: Address::repeat_byte(0xa7),
        hardware: Hardware {
            cpu_cores: 64,
            memory_bytes: 1 << 40,
            gpus: vec![],
        },
        features: vec![],
        prices: Prices {
            per_gfuel: 1,
            per_gpu_second: 1,
        },
        stake: 0,
        addresses: vec![],
        sequence,
        expires_at: now() + 600,
        max_input_bytes: 0,
        cached_blobs: vec![],
    };
    for n in 0..40u64 {
        let bytes = match n % 4 {
            // Malformed.
            0 => vec![1, 7, 0, 0, 0, n as u8],
            // Oversized.
            1 => vec![0xee; 20 * 1024],
            // Forged: signed by the attacker, claiming another provider's key.
            2 => {
                let mut s = Signed::sign(good_offer(&attacker_key, n), &attacker_key);
                s.payload.provider = PublicKey::of(&victim_key);
                s.encode()
            }
            // Tampered after signing.
            _ => {
                let mut s = Signed::sign(good_offer(&attacker_key, n), &attacker_key);
                s.payload.prices.per_gfuel = 0;
                s.encode()
            }
        };
        publish_raw(&attacker, bytes).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.wait("node 0 cuts the attacker off", |c| {
        let info = c.info(0);
        let banned = info["gossip"]["banned"].as_u64().unwrap_or(0);
        let connected = info["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == attacker_peer.as_str()));
        (banned >= 1 && !connected)
            .then_some(())
            .ok_or(format!("node 0: {info}"))
    });
    assert!(
        c.nodes.0[0]
            .find(
                |l| (word(l, 0) == Some("banned") && word(l, 1) == Some(&attacker_peer))
                    .then_some(())
            )
            .is_some(),
        "node 0 did not log the ban"
    );
    // No bad offer reached any book; the providers' offers keep flowing (their sequences
    // go on rising everywhere after the ban).
    let after: Vec<_> = providers
        .iter()
        .map(|&p| {
            let seq = c.offers(1).get(&c.peers[p]).copied().unwrap_or(0);
            (c.peers[p].clone(), Some(seq + 2))
        })
        .collect();
    c.wait_offers("fresh offers after the ban", &all, &after);
    let bad = [
        net::peer_id_of(&PublicKey::of(&attacker_key)).unwrap(),
        net::peer_id_of(&PublicKey::of(&victim_key)).unwrap(),
    ];
    for i in &all {
        let book = c.offers(*i);
        for b in &bad {
            assert!(
                !book.contains_key(&b.to_string()),
                "node {i} took a bad offer"
            );
        }
        assert_eq!(book.len(), providers.len(), "node {i}: {book:?}");
    }
    // The attacker cannot simply come back.
    let _ = attacker.dial(c.bootstrap.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peers = c.info(0)["peers"].clone();
    assert!(
        !peers
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == attacker_peer.as_str()),
        "the banned attacker reconnected: {peers}"
    );

    // Ctrl-C: the provider withdraws its offer and exits cleanly.
    let stopped = 2;
    c.nodes.0[stopped].signal("INT");
    let status = c.nodes.0[stopped].wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "provider did not exit cleanly on Ctrl-C: {status:?}\n{}",
        c.nodes.dump()
    );
    assert!(
        c.nodes.0[stopped]
            .find(|l| l.starts_with("withdrew offer").then_some(()))
            .is_some(),
        "{}",
        c.nodes.dump()
    );
    // Withdrawn at once: well before its offer's lifetime could end it.
    let t = Instant::now();
    let gone = vec![(c.peers[stopped].clone(), None)];
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != stopped).collect();
    c.wait_offers("the withdrawn offer gone", &others, &gone);
    assert!(
        t.elapsed() < Duration::from_secs(TTL),
        "the offer went only by expiry ({:?})",
        t.elapsed()
    );

    // SIGKILL: no withdrawal, the offer lives until it expires.
    let killed = 3;
    let seq_before = c.offers(0)[&c.peers[killed]];
    c.nodes.0[killed].kill();
    let rest: Vec<usize> = [0, 1, 4].to_vec();
    let gone = vec![(c.peers[killed].clone(), None)];
    c.wait_offers("the killed provider's offer expired", &rest, &gone);
    c.wait_offers(
        "the remaining provider still announcing",
        &rest,
        &present(&c, &[4]),
    );

    // Restarted on its data directory: same identity, a higher sequence.
    c.nodes.0[killed].restart();
    let peer = c.nodes.wait_for(killed, "its `peer` line", STEP, peer_line);
    assert_eq!(peer, c.peers[killed], "the identity changed on restart");
    let back = vec![(c.peers[killed].clone(), Some(seq_before + 1))];
    c.wait_offers("the restarted provider's offer", &rest, &back);
}
