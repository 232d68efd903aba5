//! Real libp2p nodes on loopback, in one process: offer gossip, job requests and results,
//! a peer cut off for forwarding invalid offers, and a blob transfer that survives a
//! dropped connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use sietch_market::*;
use sietch_node::net::{
    self, BlobSource, JobReply, JobRequest, JobResult, NetConfig, NetError, NetEvent, Network,
    OfferClass, ResultAck,
};
use sietch_testkit::net::{eventually, key, next_request, now, offer, start, test_config};
use tokio::sync::mpsc;

fn book_len(n: &Network) -> usize {
    n.book().lock().unwrap().len()
}

/// Publishes until `check` holds: the first publications may precede the mesh.
async fn publish_until(net: &Network, o: &Signed<Offer>, what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        net.publish_offer(o).await.unwrap();
        for _ in 0..10 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_reach_every_node_and_a_job_request_gets_its_result() {
    let first = start(0, test_config()).await;
    let mut nodes = vec![first];
    for i in 1..5 {
        let cfg = NetConfig {
            bootstrap: vec![nodes[0].addr.clone()],
            ..test_config()
        };
        nodes.push(start(i, cfg).await);
    }
    eventually("every node connected", Duration::from_secs(20), || {
        let n = nodes[1..].iter().map(|n| n.net.clone()).collect::<Vec<_>>();
        async move {
            for net in n {
                if net.peers().await.unwrap().is_empty() {
                    return false;
                }
            }
            true
        }
    })
    .await;

    // Each node announces its offer; every node ends with all five in its book.
    let nets: Vec<Network> = nodes.iter().map(|n| n.net.clone()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for (i, n) in nets.iter().enumerate() {
            n.publish_offer(&Signed::sign(offer(i as u32, 1), &key(i as u32)))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if nets.iter().all(|n| book_len(n) == 5) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "offers did not reach every node: books hold {:?}",
            nets.iter().map(book_len).collect::<Vec<_>>()
        );
    }
    // A newer sequence replaces the older offer everywhere.
    let newer = Signed::sign(
        Offer {
            prices: Prices {
                per_gfuel: 7,
                per_gpu_second: 0,
            },
            ..offer(2, 2)
        },
        &key(2),
    );
    let provider = newer.payload.provider;
    publish_until(&nets[2], &newer, "sequence 2 everywhere", || {
        nets.iter().all(|n| {
            n.book()
                .lock()
                .unwrap()
                .get(&provider)
                .is_some_and(|o| o.payload.sequence == 2)
        })
    })
    .await;
    for n in &nets {
        let stats = n.stats().await.unwrap();
        assert_eq!(stats.rejected, 0, "honest gossip was judged invalid");
    }
    // The newcomers bootstrapped through node 0, which answered their Kademlia lookups;
    // a refresh asked of node 4 is answered by the others again.
    let served = |nets: Vec<Network>| async move {
        let mut total = 0;
        for n in nets {
            total += n.stats().await.unwrap().discovery_requests_served;
        }
        total
    };
    let first_served = nets[0].stats().await.unwrap().discovery_requests_served;
    assert!(first_served >= 1, "node 0 answered no Kademlia request");
    let before = served(nets.clone()).await;
    nets[4].bootstrap().await.unwrap();
    eventually("a refresh is answered", Duration::from_secs(10), || {
        let (nets, served) = (nets.clone(), served);
        async move { served(nets).await > before }
    })
    .await;

    // Node 4 (a buyer) asks node 1 (a provider) to run a job; node 1 accepts and then
    // sends the result back on the result protocol.
    let provider_peer = nodes[1].net.peer_id();
    let buyer_peer = nodes[4].net.peer_id();
    let provider_net = nodes[1].net.clone();
    let mut provider_events = std::mem::replace(&mut nodes[1].events, mpsc::channel(1).1);
    let provider_task = tokio::spawn(async move {
        let Some(NetEvent::JobRequested {
            peer,
            request,
            reply,
        }) = next_request(&mut provider_events).await
        else {
            panic!("expected a job request")
        };
        assert_eq!(peer, buyer_peer);
        let job_id = request.ticket.job_id;
        reply.send(JobReply::Accepted { job_id }).unwrap();
        let result = JobResult {
            job_id,
            outcome: sietch_market::Outcome::Exited { code: 0 },
            stdout: b"hello\n".to_vec(),
            files: [("out.bin".to_string(), vec![1, 2, 3])].into(),
            commitment: ResultCommitment {
                job_id,
                spec_hash: request.spec.hash(),
                channel_id: request.ticket.channel_id,
                output_hash: B256::repeat_byte(9),
                fuel_used: 1234,
                gpu_millis: 0,
                amount: U256::from(5u64),
            },
            signature: [7u8; 65],
        };
        provider_net.send_result(peer, result).await.unwrap()
    });
    let spec = JobSpec {
        module: B256::repeat_byte(1),
        args: vec!["job".into()],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: job::Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 1000,
            output_bytes: 1 << 16,
        },
        requirements: job::Requirements {
            min_cpu_cores: 1,
            features: vec![],
            gpu: None,
        },
        verification: job::VerificationPolicy::default(),
        price_cap: 10_000,
        deadline: now() + 60,
    };
    let job_id = job_id(Address::repeat_byte(0xbb), 1, spec.hash());
    let ticket = Ticket {
        job_id,
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(3),
        max_amount: U256::from(10_000u64),
        deadline: now() + 60,
        check_commit: B256::repeat_byte(4),
        per_gfuel: 0,
        per_gpu_second: 0,
        cumulative_before: U256::ZERO,
    };
    let reply = nodes[4]
        .net
        .request_job(
            provider_peer,
            JobRequest {
                spec,
                ticket,
                ticket_signature: [1u8; 65],
                paying: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(reply, JobReply::Accepted { job_id });
    let Some(NetEvent::ResultReceived {
        peer,
        result,
        reply,
    }) = next_request(&mut nodes[4].events).await
    else {
        panic!("expected a result")
    };
    assert_eq!(peer, provider_peer);
    assert_eq!(result.job_id, job_id);
    assert_eq!(result.stdout, b"hello\n");
    assert_eq!(result.commitment.fuel_used, 1234);
    reply.send(ResultAck::Received).unwrap();
    assert_eq!(provider_task.await.unwrap(), ResultAck::Received);

    // A request to a peer that does not exist fails with a typed error, not a hang.
    let err = nodes[4]
        .net
        .blob_chunk(
            PeerId::random(),
            net::BlobRequest {
                hash: B256::ZERO,
                offset: 0,
                max_len: 10,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Request { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_forwarding_malformed_oversized_and_forged_offers_is_cut_off() {
    let honest = start(10, test_config()).await;
    let other = start(
        11,
        NetConfig {
            bootstrap: vec![honest.addr.clone()],
            ..test_config()
        },
    )
    .await;
    let attacker = start(
        12,
        NetConfig {
            bootstrap: vec![honest.addr.clone()],
            ..test_config()
        },
    )
    .await;
    let attacker_peer = attacker.net.peer_id();

    // A valid offer from the attacker's own key first, so the mesh is known to work.
    let own = Signed::sign(offer(12, 1), &key(12));
    let own_key = own.payload.provider;
    publish_until(&attacker.net, &own, "attacker's valid offer", || {
        honest.net.book().lock().unwrap().get(&own_key).is_some()
    })
    .await;

    // Then a flood: malformed bytes, an oversized offer, offers claiming another provider's
    // key (signed by the attacker's) and offers whose signature does not match their content.
    // (Relaying another provider's genuinely signed offer is not an attack: it is gossip.)
    let mut bad: Vec<Vec<u8>> = Vec::new();
    for n in 0..4u8 {
        bad.push(vec![1, 7, n, 0xff, 0xee]);
    }
    let mut big = offer(12, 50);
    big.features = (0..20)
        .map(|i| format!("{i}{}", "x".repeat(1000)))
        .collect();
    bad.push(Signed::sign(big, &key(12)).encode());
    for s in 0..4u64 {
        let mut claimed = Signed::sign(offer(12, 10 + s), &key(12));
        claimed.payload.provider = PublicKey::of(&key(13));
        bad.push(claimed.encode());
    }
    for s in 0..4u64 {
        let mut forged = Signed::sign(offer(12, 20 + s), &key(12));
        forged.payload.prices.per_gfuel = 1;
        bad.push(forged.encode());
    }
    for b in bad {
        // The attacker's publish may fail once the honest node has cut it off.
        let _ = attacker.net.publish_raw(OfferClass::Cpu, b).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eventually("the attacker is cut off", Duration::from_secs(15), || {
        let n = honest.net.clone();
        async move {
            let s = n.stats().await.unwrap();
            s.banned >= 1 && !n.peers().await.unwrap().contains(&attacker_peer)
        }
    })
    .await;
    let stats = honest.net.stats().await.unwrap();
    // Cut off after a handful: gossipsub's score graylists it after 3, our count after 8.
    assert!(
        (3..=8).contains(&stats.rejected),
        "rejected {} before the ban",
        stats.rejected
    );
    {
        let book = honest.net.book();
        let book = book.lock().unwrap();
        assert!(
            book.get(&PublicKey::of(&key(13))).is_none(),
            "a forged offer entered the book"
        );
        assert_eq!(
            book.get(&own_key).unwrap().payload.sequence,
            1,
            "a tampered offer replaced the real one"
        );
    }

    // Valid offers keep flowing from honest peers.
    let good = Signed::sign(offer(11, 1), &key(11));
    let good_key = good.payload.provider;
    publish_until(&other.net, &good, "honest offer after the ban", || {
        honest.net.book().lock().unwrap().get(&good_key).is_some()
    })
    .await;
    // And the attacker cannot simply reconnect.
    let _ = attacker.net.dial(honest.addr.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!honest.net.peers().await.unwrap().contains(&attacker_peer));
}

/// Serves blobs from memory, slowly, and records every offset asked for. The first request
/// at or past `cut_at` signals `cut` and is answered late, so that the connection is
/// dropped while that request is in flight (not between two requests, where the next
/// request would simply re-dial and nothing would need resuming).
struct SlowBlobs {
    blobs: HashMap<B256, Vec<u8>>,
    asked: Mutex<Vec<u64>>,
    cut_at: u64,
    cut: Mutex<Option<mpsc::Sender<()>>>,
}

impl BlobSource for SlowBlobs {
    fn read(&self, hash: &B256, offset: u64, max_len: usize) -> Option<(u64, Vec<u8>)> {
        self.asked.lock().unwrap().push(offset);
        if offset >= self.cut_at
            && let Some(cut) = self.cut.lock().unwrap().take()
        {
            let _ = cut.try_send(());
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_millis(15));
        let b = self.blobs.get(hash)?;
        let start = (offset as usize).min(b.len());
        let end = (start + max_len).min(b.len());
        Some((b.len() as u64, b[start..end].to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_transfer_survives_a_dropped_connection() {
    let blob: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let hash = B256::from(*blake3::hash(&blob).as_bytes());
    let liar = b"these bytes do not hash to their name".to_vec();
    let liar_hash = B256::repeat_byte(0xaa);
    let (cut_tx, mut cut_rx) = mpsc::channel::<()>(1);
    let source = Arc::new(SlowBlobs {
        blobs: HashMap::from([(hash, blob.clone()), (liar_hash, liar)]),
        asked: Mutex::new(Vec::new()),
        cut_at: blob.len() as u64 / 3,
        cut: Mutex::new(Some(cut_tx)),
    });
    let server = start(
        20,
        NetConfig {
            blobs: Some(source.clone()),
            ..test_config()
        },
    )
    .await;
    let client = start(
        21,
        NetConfig {
            blob_chunk: 64 * 1024,
            ..test_config()
        },
    )
    .await;
    let server_peer = server.net.peer_id();
    client
        .net
        .add_address(server_peer, server.addr.clone())
        .await
        .unwrap();
    client.net.dial(server.addr.clone()).await.unwrap();

    // Drop the connection while the chunk at a third of the blob is in flight.
    let cutter = {
        let net = client.net.clone();
        tokio::spawn(async move {
            if cut_rx.recv().await.is_some() {
                net.disconnect(server_peer).await.unwrap();
            }
        })
    };
    // The chunked way (`/sietch/blob/1`); streamed transfers: `blob_stream_resume.rs`.
    let fetched = client
        .net
        .fetch_blob_chunked(server_peer, hash, |_, total| {
            assert_eq!(total, blob.len() as u64);
        })
        .await
        .unwrap();
    cutter.await.unwrap();
    assert!(fetched.bytes == blob, "the blob arrived altered");
    assert!(
        fetched.resumes >= 1,
        "the connection was not dropped mid-transfer"
    );
    let asked = source.asked.lock().unwrap().clone();
    let chunks = blob.len() / (64 * 1024);
    assert!(
        asked.len() <= chunks + 2,
        "the transfer restarted instead of resuming: {} requests for {chunks} chunks",
        asked.len()
    );
    assert_eq!(asked.first(), Some(&0));
    assert!(
        asked.windows(2).all(|w| w[1] >= w[0]),
        "offsets went back: {asked:?}"
    );

    // A blob that does not hash to its name is refused; an unknown one is not found.
    let err = client
        .net
        .fetch_blob(server_peer, liar_hash, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::BlobCorrupt { .. }), "{err}");
    let err = client
        .net
        .fetch_blob(server_peer, B256::repeat_byte(0x55), |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::BlobNotFound { .. }), "{err}");
}

/// A node that holds its most outgoing connections does not start another dial: the refusal
/// says why, and the peer it would have dialed never sees a connection (no handshake is paid
/// on either side, the churn `connection_limits` alone causes). Once a connection closes, the
/// node dials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_outgoing_limit_refuses_to_dial_before_any_handshake() {
    let b = start(1, test_config()).await;
    let c = start(2, test_config()).await;
    let a = start(
        0,
        NetConfig {
            max_outgoing: 1,
            ..test_config()
        },
    )
    .await;
    let (b_peer, c_peer) = (b.net.peer_id(), c.net.peer_id());
    a.net.dial(b.addr.clone()).await.unwrap();
    eventually("a connects to b", Duration::from_secs(10), || async {
        a.net.peers().await.unwrap().contains(&b_peer)
    })
    .await;

    match a.net.dial(c.addr.clone()).await {
        Err(NetError::Dial(why)) => assert!(
            why.contains("1 outgoing connections are open, the most this node opens"),
            "{why}"
        ),
        other => panic!("a dial past the limit started: {other:?}"),
    }
    let s = a.net.stats().await.unwrap();
    assert!(s.dials_refused >= 1, "{s:?}");
    assert_eq!((s.connections_opened, s.connected), (1, 1), "{s:?}");
    // Give a dial that did start time to reach c: none did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sc = c.net.stats().await.unwrap();
    assert_eq!(
        (sc.connections_opened, sc.connections_failed, sc.connected),
        (0, 0, 0),
        "c saw a connection from a dial that should not have started: {sc:?}"
    );

    // The limit counts open connections: with b gone, a dials c.
    b.net.shutdown().await;
    eventually("a drops b", Duration::from_secs(10), || async {
        a.net.peers().await.unwrap().is_empty()
    })
    .await;
    a.net.dial(c.addr.clone()).await.unwrap();
    eventually("a connects to c", Duration::from_secs(10), || async {
        a.net.peers().await.unwrap().contains(&c_peer)
    })
    .await;
    assert_eq!(c.net.stats().await.unwrap().connections_opened, 1);
}
