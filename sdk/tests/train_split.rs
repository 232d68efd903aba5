//! The SDK's split of the real digits set is the one `sandbox/guests/train/digits.py` writes
//! (docs/training.md, "The data set"): two implementations of the same rule, byte for byte.
//! Needs the digits set (`bash scripts/digits.sh`) and python3; says it is skipped without.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use sietch_sdk::train::Digits;
use sietch_sdk::train::digits::encode_sdg;

#[test]
fn the_split_is_the_one_digits_py_writes() {
    let Some(csv) = sietch_sdk::train::digits::cached() else {
        eprintln!("skipped: no digits data set (bash scripts/digits.sh fetches it)");
        return;
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sandbox/guests/train/digits.py");
    let out = tempfile::tempdir().unwrap();
    let ran = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--csv",
            csv.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ])
        .args(["--shards", "3", "--holdout", "297", "--seed", "7"])
        .output();
    let ran = match ran {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return;
        }
    };
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let data = Digits::open(&csv).unwrap();
    assert_eq!(data.samples.len(), 1797);
    let split = data.split(7, 297, 3).unwrap();
    assert_eq!(
        std::fs::read(out.path().join("holdout.sdg")).unwrap(),
        encode_sdg(&split.held_out)
    );
    for (k, shard) in split.shards.iter().enumerate() {
        let file = std::fs::read(out.path().join(format!("shard-{k}.sdg"))).unwrap();
        assert_eq!(file, encode_sdg(shard), "shard {k}");
    }
}
