//! Issue 21: a provider's offer names the large blobs it holds, and a buyer's job that reads
//! one goes to that provider when the prices are equal (a real devnet: anvil, two providers
//! at the default prices, a buyer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sietch_market::*;
use sietch_testkit::devnet::{Devnet, DevnetConfig, E18};
use sietch_testkit::fnv;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_holding_the_model_gets_the_job_at_equal_price() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig::new(2, dir.path()))
        .await
        .unwrap();
    let buyer = &net.buyer;
    // Each provider's key as the buyer's book knows it; the holder is the one whose key
    // sorts last, so that the key order alone would pick the other.
    let key_of = |p: &sietch_node::service::Node| {
        let book = buyer.net.book();
        let book = book.lock().unwrap();
        book.iter()
            .find(|o| o.payload.evm_address == p.evm_address)
            .map(|o| o.payload.provider)
            .unwrap()
    };
    let mut providers: Vec<_> = net.providers.iter().map(|p| (key_of(p), p)).collect();
    providers.sort_by_key(|(k, _)| *k);
    let (holder_key, holder) = providers[1];

    // A 16 MiB "model", held by the buyer and by one provider.
    let model: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let model_ref = BlobRef::of(&model);
    buyer.store.blobs().put(&model).unwrap();
    holder.store.blobs().put(&model).unwrap();
    // Its next announcement (every 2 s on the devnet) names the blob.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let named = {
            let book = buyer.net.book();
            let book = book.lock().unwrap();
            book.get(&holder_key)
                .is_some_and(|o| o.payload.cached_blobs.contains(&model_ref))
        };
        if named {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the holder's offer never named the blob"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let module = fnv::hash_guest(0);
    buyer.store.blobs().put(&module).unwrap();
    let stdin = b"which provider?".to_vec();
    buyer.store.blobs().put(&stdin).unwrap();
    let spec = JobSpec {
        module: BlobRef::of(&module).hash,
        args: vec![],
        env: vec![],
        stdin: Some(BlobRef::of(&stdin)),
        inputs: vec![Input {
            name: "model.gguf".into(),
            blob: model_ref,
        }],
        limits: Limits {
            fuel: 50_000_000,
            memory_bytes: 1 << 20,
            wall_time_ms: 10_000,
            output_bytes: 1 << 16,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: E18 / 10,
        deadline: now() + 600,
    };
    // The book: same cost, the holder first.
    let found = {
        let book = buyer.net.book();
        let book = book.lock().unwrap();
        book.find(&spec, now(), &(), 10).unwrap()
    };
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].provider, holder_key);
    assert_eq!(found[0].held_bytes, 16 << 20);
    assert_eq!(found[0].max_cost, found[1].max_cost);
    // And the buyer's job goes there.
    let done = buyer.buyer.submit(spec).await.unwrap();
    assert_eq!(done.provider, holder.evm_address);
    assert_eq!(
        String::from_utf8_lossy(&done.result.stdout),
        fnv::hex(&stdin)
    );
    net.shutdown().await;
}
