//! Rolling upgrades (docs/protocol/versions.md): real libp2p nodes on loopback that
//! announce different protocol versions. Nodes of one major version trade whatever their
//! minor and patch (offers, job requests, results and payments, both ways); a node of
//! another major version, or a program that is not a Sietch node, is refused once, logged,
//! and neither let in nor dialed again while its backoff lasts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use sietch_market::*;
use sietch_node::net::version::CURRENT;
use sietch_node::net::{
    JobReply, JobRequest, JobResult, NetConfig, NetEvent, Payment, PaymentAck, ResultAck,
};
use sietch_testkit::net::{
    self, TestNode as Node, another_major_is_refused, at, eventually, key, now, refused, start, v,
};
use tokio::sync::mpsc;

/// Key `i`'s signed offer.
fn offer(i: u32) -> Signed<Offer> {
    Signed::sign(net::offer(i, 1), &key(i))
}

/// The next event that is not about connections.
async fn next_request(events: &mut mpsc::Receiver<NetEvent>) -> NetEvent {
    net::next_request(events).await.expect("the node stopped")
}

fn spec(n: u8) -> JobSpec {
    JobSpec {
        module: B256::repeat_byte(n),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: job::Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 1000,
            output_bytes: 1 << 16,
        },
        requirements: job::Requirements::default(),
        verification: job::VerificationPolicy::default(),
        price_cap: 10_000,
        deadline: now() + 60,
    }
}

/// `buyer` asks `provider` to run a job, gets its result, and pays for it: the three
/// request-response exchanges of a job, across whatever versions the two speak.
async fn job_and_payment(buyer: &mut Node, provider: &mut Node, n: u8) {
    let (buyer_peer, provider_peer) = (buyer.net.peer_id(), provider.net.peer_id());
    let spec = spec(n);
    let job_id = job_id(Address::repeat_byte(n), 1, spec.hash());
    let ticket = Ticket {
        job_id,
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(n),
        max_amount: U256::from(10_000u64),
        deadline: now() + 60,
        check_commit: B256::repeat_byte(4),
        per_gfuel: 0,
        per_gpu_second: 0,
        cumulative_before: U256::ZERO,
    };
    let provider_net = provider.net.clone();
    let mut provider_events = std::mem::replace(&mut provider.events, mpsc::channel(1).1);
    let serve = tokio::spawn(async move {
        let NetEvent::JobRequested {
            peer,
            request,
            reply,
        } = next_request(&mut provider_events).await
        else {
            panic!("expected a job request")
        };
        assert_eq!(peer, buyer_peer);
        reply
            .send(JobReply::Accepted {
                job_id: request.ticket.job_id,
            })
            .unwrap();
        let result = JobResult {
            job_id,
            outcome: Outcome::Exited { code: 0 },
            stdout: vec![n],
            files: Default::default(),
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
        assert_eq!(
            provider_net.send_result(peer, result).await.unwrap(),
            ResultAck::Received
        );
        let NetEvent::PaymentReceived {
            peer,
            payment,
            reply,
        } = next_request(&mut provider_events).await
        else {
            panic!("expected a payment")
        };
        assert_eq!(peer, buyer_peer);
        assert_eq!(payment.job_id, job_id);
        reply.send(PaymentAck::Accepted).unwrap();
        provider_events
    });
    let reply = buyer
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
    let NetEvent::ResultReceived {
        peer,
        result,
        reply,
    } = next_request(&mut buyer.events).await
    else {
        panic!("expected a result")
    };
    assert_eq!((peer, result.stdout.as_slice()), (provider_peer, &[n][..]));
    reply.send(ResultAck::Received).unwrap();
    let payment = Payment {
        job_id,
        secret: B256::repeat_byte(0x21),
        voucher: None,
        note: String::new(),
    };
    assert_eq!(
        buyer
            .net
            .send_payment(provider_peer, payment)
            .await
            .unwrap(),
        PaymentAck::Accepted
    );
    provider.events = serve.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_one_major_version_trade_whatever_their_minor_and_patch() {
    assert_eq!(CURRENT.major, 1);
    let mut today = start(0, at(CURRENT)).await;
    let next_minor = v(CURRENT.major, CURRENT.minor + 1, 0);
    let mut newer = start(
        1,
        NetConfig {
            bootstrap: vec![today.addr.clone()],
            ..at(next_minor)
        },
    )
    .await;
    let mut patched = start(
        2,
        NetConfig {
            bootstrap: vec![today.addr.clone()],
            ..at(v(CURRENT.major, CURRENT.minor, CURRENT.patch + 3))
        },
    )
    .await;

    // Offers flow both ways: every node's book ends with all three.
    let nets = [today.net.clone(), newer.net.clone(), patched.net.clone()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for (i, n) in nets.iter().enumerate() {
            n.publish_offer(&offer(i as u32)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let books: Vec<usize> = nets
            .iter()
            .map(|n| n.book().lock().unwrap().len())
            .collect();
        if books.iter().all(|&b| b == 3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "offers did not cross the versions: books hold {books:?}"
        );
    }

    // Jobs, results and payments, from the older to the newer node and back.
    job_and_payment(&mut today, &mut newer, 1).await;
    job_and_payment(&mut newer, &mut today, 2).await;
    job_and_payment(&mut patched, &mut newer, 3).await;

    for n in &nets {
        let s = n.stats().await.unwrap();
        assert_eq!(s.peers_refused, 0, "a peer of the same major was refused");
        assert_eq!(s.rejected, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_major_version_or_another_program_is_refused_once_and_not_redialed() {
    let node = start(
        10,
        NetConfig {
            version_backoff: Duration::from_secs(4),
            ..at(CURRENT)
        },
    )
    .await;
    // Another major version dials in: the connection ends with a refusal (by whichever side
    // read the other's identify first; often both), and redials from either side during
    // the backoff are turned away without a new one.
    let next_major = another_major_is_refused(&node.net, node.addr.clone(), 11).await;
    let both = || {
        let (a, b) = (node.net.clone(), next_major.net.clone());
        async move { refused(&a).await + refused(&b).await }
    };
    assert!(node.net.peers().await.unwrap().is_empty());
    let after_first = both().await;
    assert!(
        after_first <= 2,
        "refused {after_first} times on one connection"
    );
    for _ in 0..3 {
        let _ = next_major.net.dial(node.addr.clone()).await;
        let _ = node.net.dial(next_major.addr.clone()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        both().await,
        after_first,
        "refused again during the backoff"
    );
    assert!(node.net.peers().await.unwrap().is_empty());
    let refused_before = refused(&node.net).await;

    // A program that is not a Sietch node, and that itself would go on dialing: it is
    // refused once, and every later dial during the backoff is turned away before
    // identify runs again (no new refusal, no connection kept).
    let stranger = start(
        12,
        NetConfig {
            identify_as: Some("ipfs/0.1.0".into()),
            ..at(CURRENT)
        },
    )
    .await;
    stranger.net.dial(node.addr.clone()).await.unwrap();
    eventually("the stranger refused", Duration::from_secs(10), || {
        let n = node.net.clone();
        async move { refused(&n).await == refused_before + 1 }
    })
    .await;
    for _ in 0..5 {
        let _ = stranger.net.dial(node.addr.clone()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = node.net.stats().await.unwrap();
    assert_eq!(
        s.peers_refused,
        refused_before + 1,
        "refused again during its backoff"
    );
    assert!(
        !node
            .net
            .peers()
            .await
            .unwrap()
            .contains(&stranger.net.peer_id()),
        "the stranger is connected during its backoff"
    );
    // Nor does the node dial it.
    assert!(
        node.net.dial(stranger.addr.clone()).await.is_err(),
        "the node dialed a peer it refused"
    );

    // After the backoff, a new attempt is judged again (and refused again, for longer).
    tokio::time::sleep(Duration::from_secs(4)).await;
    stranger.net.dial(node.addr.clone()).await.unwrap();
    eventually(
        "refused again after the backoff",
        Duration::from_secs(10),
        || {
            let n = node.net.clone();
            async move { refused(&n).await == refused_before + 2 }
        },
    )
    .await;
}
