//! Bytes pinned in a committed file: the node's wire messages (`node/tests/wire_bytes.rs`)
//! and store records (`store::records::pinned` in the node's unit tests). A round trip passes
//! whatever the encoding is; a pinned check fails when an encoding changes at all. After an
//! intended change, run the test with `SIETCH_BLESS=1` to write the file anew.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

/// Checks each `(name, bytes)` of `made` against the JSON object (name → hex) in the file at
/// `path`, first writing them there when `SIETCH_BLESS` is set. Panics with `what`, naming
/// the entries whose bytes changed and those no longer made.
#[track_caller]
pub fn check<N: Into<String>>(
    path: &Path,
    made: impl IntoIterator<Item = (N, Vec<u8>)>,
    what: &str,
) {
    let fresh: serde_json::Map<String, serde_json::Value> = made
        .into_iter()
        .map(|(name, bytes)| (name.into(), alloy::hex::encode(bytes).into()))
        .collect();
    if std::env::var_os("SIETCH_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&fresh).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
    }
    let committed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let changed: Vec<&String> = fresh
        .iter()
        .filter(|(k, v)| committed.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let gone: Vec<&String> = committed
        .keys()
        .filter(|k| !fresh.contains_key(*k))
        .collect();
    assert!(
        changed.is_empty() && gone.is_empty(),
        "{what}: changed: {changed:?}, no longer made: {gone:?}"
    );
}
