//! `sietch devnet` as a real process: a real anvil, the escrow, providers, jobs in the sandbox
//! and one claim that settles them. Needs anvil (`bash scripts/setup.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn anvil_devnet_runs_jobs_and_settles() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(["devnet", "--providers", "2", "--jobs", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "provider-0",
        "provider-1",
        "ranking (lowest score first)",
        "no offer matches",
        "job 3 ",
        "claim transaction 0x",
        "one transaction pays for 3 jobs",
        "settlement balanced",
        "not built yet",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the devnet took {:?}",
        started.elapsed()
    );
}

#[test]
fn devnet_refuses_bad_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(["devnet", "--providers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--providers"));
}
