//! The blob directory's doors (issue 26): a quota with eviction of what nobody used lately,
//! the owner's permissions only, and errors that name no absolute path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use sietch_node::store::{BlobError, Store, StoreOptions};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Makes a stored blob look last used `ago` in the past.
fn age(store: &Store, hash: &sietch_market::B256, ago: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(store.blobs().path(hash))
        .unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An uploader fills the quota. Blobs unused for longer than the keep time go, least recently
/// used first; recently used ones stay, and a write that cannot fit without them is refused
/// with the quota in the error, nothing else removed.
#[test]
fn the_quota_evicts_the_least_recently_used_and_keeps_recent_ones() {
    let dir = tempdir();
    let hour = Duration::from_secs(3_600);
    let store = Store::open_with(
        dir.path(),
        StoreOptions::default()
            .max_blob_bytes(1_000)
            .blob_quota(3_000, 3_600),
    )
    .unwrap();
    let blobs = store.blobs();
    let oldest = blobs.put(&[1u8; 1_000]).unwrap();
    let older = blobs.put(&[2u8; 1_000]).unwrap();
    let recent = blobs.put(&[3u8; 1_000]).unwrap();
    age(&store, &oldest, 3 * hour);
    age(&store, &older, 2 * hour);
    assert_eq!(blobs.total(), (3_000, 3));

    // Room for one more: the oldest goes, the other two stay.
    let fourth = blobs.put(&[4u8; 1_000]).unwrap();
    assert!(
        !blobs.has(&oldest),
        "the least recently used blob is evicted"
    );
    assert!(blobs.has(&older) && blobs.has(&recent) && blobs.has(&fourth));
    assert_eq!(blobs.total(), (3_000, 3));

    // Reading a blob marks it used: now `older` is recent too, and nothing can go.
    assert!(blobs.get(&older).unwrap().is_some());
    let err = blobs.put(&[5u8; 1_000]).unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::QuotaFull {
                len: 1_000,
                used: 3_000,
                quota: 3_000
            }
        ),
        "{err:?}"
    );
    assert!(blobs.has(&older) && blobs.has(&recent) && blobs.has(&fourth));
    assert_eq!(blobs.total(), (3_000, 3), "a refused write removes nothing");

    // Storing an existing blob again needs no room and marks it used.
    age(&store, &recent, 2 * hour);
    blobs.put(&[3u8; 1_000]).unwrap();
    let err = blobs.put(&[6u8; 1_000]).unwrap_err();
    assert!(matches!(err, BlobError::QuotaFull { .. }), "{err:?}");
    assert!(blobs.has(&recent));
}

/// Blobs are the owner's only, also those left world-readable by an older version.
#[test]
fn blobs_are_the_owners_only() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let hash = store.blobs().put(b"a module").unwrap();
    assert_eq!(mode(store.blobs().dir()), 0o700);
    assert_eq!(mode(&store.blobs().path(&hash)), 0o600);
    let path = store.blobs().path(&hash);
    drop(store);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(mode(store.blobs().dir()), 0o700, "fixed at open");
    assert_eq!(mode(&path), 0o600, "fixed at open");
}

/// A failed write names the blob by its place in the data directory, never by the absolute
/// path (an API client would learn where the node keeps its keys).
#[test]
fn a_failed_write_names_no_absolute_path() {
    let dir = tempdir();
    let store = Store::open(dir.path()).unwrap();
    let blobs = store.blobs();
    let bytes = b"cannot be written";
    // A directory where the blob's file goes: the write fails (for root too).
    std::fs::create_dir(blobs.path(&sietch_node::store::blob_hash(bytes))).unwrap();
    let err = blobs.put(bytes).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BlobError::Io { .. }), "{err:?}");
    assert!(text.contains("blobs/"), "{text}");
    let abs = dir.path().to_string_lossy().into_owned();
    assert!(!text.contains(&abs), "{text} names {abs}");
}
