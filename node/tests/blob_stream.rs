//! Whole blobs streamed between real libp2p nodes on loopback (`/sietch/blob-stream/1`),
//! written into a real blob store as they arrive: a blob arrives whole and checked; a peer
//! serving wrong bytes is refused and charged, and nothing lands in the store; a size over
//! the limit is refused before a byte is written; a node without the stream protocol is
//! fetched from chunk by chunk. Resumed transfers: `blob_stream_resume.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod blob_source;

use std::sync::Arc;
use std::time::Duration;

use blob_source::{Source, blob, connect, leftovers, serving};
use sietch_market::B256;
use sietch_node::net::{NetConfig, NetError};
use sietch_node::store::Blobs;
use sietch_testkit::net::{eventually, start, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_streams_into_the_store_whole_and_checked() {
    let (hash, bytes) = blob(24 << 20, 1);
    let source = Arc::new(Source::of([(hash, bytes.clone())]));
    let server = serving(40, source.clone(), test_config()).await;
    let client = start(41, test_config()).await;
    connect(&client.net, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Blobs::open(dir.path().join("blobs"), 256 << 20).unwrap();

    let mut seen = 0;
    let fetched = client
        .net
        .fetch_blob_into(
            server.net.peer_id(),
            hash,
            store.writer(&hash),
            |got, total| {
                assert!(got > seen && got <= total, "progress {got} of {total}");
                seen = got;
            },
        )
        .await
        .unwrap();
    assert!(
        fetched.streamed,
        "fetched chunk by chunk from a node that streams"
    );
    assert_eq!((fetched.size, fetched.resumes), (bytes.len() as u64, 0));
    assert_eq!(seen, bytes.len() as u64);
    assert_eq!(store.commit(fetched.sink).unwrap(), bytes.len() as u64);
    assert!(
        store.get(&hash).unwrap().unwrap() == bytes,
        "stored altered"
    );
    assert!(leftovers(&dir.path().join("blobs")).is_empty());
    // One request for the whole blob: the server read it chunk after chunk from 0.
    let asked = source.asked();
    assert_eq!(asked.first(), Some(&0));
    assert!(asked.windows(2).all(|w| w[1] > w[0]), "{asked:?}");

    // Into memory as well; an empty blob too.
    let fetched = client
        .net
        .fetch_blob(server.net.peer_id(), hash, |_, _| {})
        .await
        .unwrap();
    assert!(fetched.streamed && fetched.bytes == bytes);
    let (empty, _) = blob(0, 0);
    let source = Arc::new(Source::of([(empty, Vec::new())]));
    let other = serving(42, source, test_config()).await;
    connect(&client.net, &other).await;
    let fetched = client
        .net
        .fetch_blob(other.net.peer_id(), empty, |_, _| {})
        .await
        .unwrap();
    assert!(fetched.streamed && fetched.bytes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_are_refused_charged_and_never_stored() {
    let (_, bytes) = blob(3 << 20, 4);
    let claimed = B256::repeat_byte(0xaa);
    let source = Arc::new(Source::of([(claimed, bytes)]));
    let server = serving(47, source, test_config()).await;
    let client = start(
        48,
        NetConfig {
            strikes_before_ban: 1,
            ..test_config()
        },
    )
    .await;
    connect(&client.net, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs");
    let store = Blobs::open(&blobs_dir, 256 << 20).unwrap();

    let err = client
        .net
        .fetch_blob_into(
            server.net.peer_id(),
            claimed,
            store.writer(&claimed),
            |_, _| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::BlobCorrupt { .. }), "{err}");
    assert!(!store.has(&claimed));
    assert_eq!(store.total(), (0, 0));
    assert!(
        leftovers(&blobs_dir).is_empty(),
        "{:?}",
        leftovers(&blobs_dir)
    );
    // Charged a whole strike: at a limit of one, cut off.
    let net = client.net.clone();
    eventually("the liar cut off", Duration::from_secs(10), || {
        let net = net.clone();
        async move { net.stats().await.unwrap().banned == 1 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_over_the_limit_is_refused_before_writing() {
    let (hash, bytes) = blob(3 << 20, 5);
    let source = Arc::new(Source::of([(hash, bytes)]));
    let server = serving(49, source, test_config()).await;
    // The network's own bound.
    let client = start(
        50,
        NetConfig {
            max_blob_bytes: 2 << 20,
            ..test_config()
        },
    )
    .await;
    connect(&client.net, &server).await;
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs");
    let store = Blobs::open(&blobs_dir, 256 << 20).unwrap();
    let err = client
        .net
        .fetch_blob_into(server.net.peer_id(), hash, store.writer(&hash), |got, _| {
            panic!("{got} bytes written past the limit")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::BlobTooLarge { size, max, .. } if size == 3 << 20 && max == 2 << 20),
        "{err}"
    );
    assert!(leftovers(&blobs_dir).is_empty());

    // The store's bound, below the network's: refused by the sink before a byte is written.
    let client = start(51, test_config()).await;
    connect(&client.net, &server).await;
    let small = Blobs::open(dir.path().join("small"), 1 << 20).unwrap();
    let err = client
        .net
        .fetch_blob_into(server.net.peer_id(), hash, small.writer(&hash), |got, _| {
            panic!("{got} bytes written past the store's limit")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::BlobWrite { .. }), "{err}");
    assert!(leftovers(&dir.path().join("small")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_stream_protocol_is_fetched_chunk_by_chunk() {
    let (hash, bytes) = blob(2 << 20, 6);
    let old_source = Arc::new(Source::of([(hash, bytes.clone())]));
    let old = serving(
        52,
        old_source.clone(),
        NetConfig {
            blob_stream: false,
            ..test_config()
        },
    )
    .await;
    let client = start(53, test_config()).await;
    connect(&client.net, &old).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Blobs::open(dir.path().join("blobs"), 256 << 20).unwrap();
    let fetched = client
        .net
        .fetch_blob_into(old.net.peer_id(), hash, store.writer(&hash), |_, _| {})
        .await
        .unwrap();
    assert!(!fetched.streamed, "an old node cannot stream");
    store.commit(fetched.sink).unwrap();
    assert!(store.get(&hash).unwrap().unwrap() == bytes);
    let chunk = NetConfig::default().blob_chunk as usize;
    assert_eq!(old_source.asked().len(), bytes.len().div_ceil(chunk));

    // And an old node fetching from a new one asks chunk by chunk too.
    let new_source = Arc::new(Source::of([(hash, bytes.clone())]));
    let new = serving(54, new_source.clone(), test_config()).await;
    let old_client = start(
        55,
        NetConfig {
            blob_stream: false,
            ..test_config()
        },
    )
    .await;
    connect(&old_client.net, &new).await;
    let fetched = old_client
        .net
        .fetch_blob(new.net.peer_id(), hash, |_, _| {})
        .await
        .unwrap();
    assert!(!fetched.streamed && fetched.bytes == bytes);
    assert_eq!(new_source.asked().len(), bytes.len().div_ceil(chunk));
}
