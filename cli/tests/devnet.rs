//! `sietch devnet` as a real process: a real anvil, the escrow, provider and buyer nodes on
//! loopback, jobs submitted, checked, paid and claimed, and a settlement that balances.
//! Needs anvil (`bash scripts/setup.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::process::Command;

fn devnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .arg("devnet")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn anvil_devnet_runs_jobs_and_settles() {
    let (ok, stdout, stderr) = devnet(&[
        "--providers",
        "3",
        "--jobs",
        "12",
        "--sampling-ppm",
        "500000",
        "--api-port",
        "0",
        "--progress",
    ]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // --progress on a stderr that is not a terminal: plain lines of what it waits for.
    for step in [
        "] anvil, the escrow, then each provider registers",
        "] the channels opening land on chain",
        "] the nodes stop; the providers claim",
    ] {
        assert!(stderr.contains(step), "{step:?} missing from:\n{stderr}");
    }
    for needle in [
        "escrow   0x",
        "provider-0  0x",
        "provider-2  0x",
        "explorer and API: http://127.0.0.1:",
        "jobs 12 done, 0 failed",
        "claimed ",
        "settlement balanced: every voucher claimed",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    assert!(!stdout.contains("wrong answer went unchecked"), "{stdout}");
    // CPU jobs always; GPU jobs (one in four) where a GPU exists.
    if sietch_node::service::local_gpus().is_empty() {
        assert!(
            stdout.contains("no GPU on this machine: CPU jobs only"),
            "{stdout}"
        );
        assert!(stdout.contains("12 done (0 on the GPU)"), "{stdout}");
    } else {
        assert!(stdout.contains("GPU      "), "{stdout}");
        assert!(stdout.contains("12 done (3 on the GPU)"), "{stdout}");
    }
}

#[test]
fn devnet_refuses_bad_options() {
    let (ok, _, stderr) = devnet(&["--providers", "0"]);
    assert!(!ok);
    assert!(stderr.contains("--providers"), "{stderr}");
}

#[test]
fn anvil_devnet_on_a_six_decimal_token_settles_in_its_units() {
    let (ok, stdout, stderr) = devnet(&[
        "--providers",
        "2",
        "--jobs",
        "4",
        "--generate-every",
        "0",
        "--api-port",
        "0",
        "--token-decimals",
        "6",
    ]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for needle in [
        "(tUSDC, 6 decimals)",
        "jobs 4 done, 0 failed",
        "settlement balanced: every voucher claimed",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
}
