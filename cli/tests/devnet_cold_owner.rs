//! `sietch devnet --cold-owner` as a real process (issue 22, "real chains"): provider-0 earns
//! for a cold owner on a 6-decimal token. The owner's key stays with the devnet's set-up; the
//! node holds only its operator's key, in an encrypted keystore unlocked from a password file.
//! Jobs are paid, the earnings reach the owner, the hot key's token balance does not grow,
//! the money balances, and neither the password nor the operator's key appears in the output.
//! Needs anvil (`bash scripts/setup.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use alloy::primitives::hex;
use sietch_node::keys::{Password, PasswordSource, open_keystore};

/// What the running devnet's cold-owner line names: the keystore and the password file (read
/// while the devnet runs: its directory goes when it stops).
fn paths_of(line: &str) -> (PathBuf, PathBuf) {
    let keystore = line
        .split_once("encrypted keystore ")
        .and_then(|(_, r)| r.split_once(" (password file "))
        .map(|(k, _)| PathBuf::from(k))
        .unwrap_or_else(|| panic!("no keystore in {line:?}"));
    let password = line
        .split_once("(password file ")
        .and_then(|(_, r)| r.strip_suffix(')'))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no password file in {line:?}"));
    (keystore, password)
}

#[test]
fn anvil_devnet_runs_a_cold_owners_provider_on_a_six_decimal_token() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args([
            "devnet",
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
            "--cold-owner",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let mut secrets: Option<(String, String)> = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("cold owner  ") && secrets.is_none() {
            let (keystore, password_file) = paths_of(&line);
            let text = std::fs::read_to_string(&password_file).unwrap();
            let password = text.lines().next().unwrap().to_owned();
            let key = open_keystore(
                &keystore,
                &Password::new(password.clone()),
                &PasswordSource::File(password_file),
            )
            .unwrap();
            assert!(
                line.contains(&format!("hot key {}", key.address())),
                "the keystore holds the operator's key: {line}"
            );
            secrets = Some((password, hex::encode(key.credential().to_bytes())));
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let ok = child.wait().unwrap().success();
    let stderr = stderr.join().unwrap();
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (password, key) = secrets.unwrap_or_else(|| panic!("no cold owner line in:\n{stdout}"));

    for needle in [
        "(tUSDC, 6 decimals)",
        "cold owner  provider-0 earns for the owner 0x",
        "jobs 4 done, 0 failed",
        "owner       0x",
        "its token balance did not grow",
        "settlement balanced: every voucher claimed",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    // The owner's earnings, in tokens, are more than nothing.
    let earned: f64 = stdout
        .lines()
        .find(|l| l.starts_with("owner       "))
        .and_then(|l| l.split_once(" earned "))
        .and_then(|(_, r)| r.split_once(' '))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no owner's earnings in:\n{stdout}"));
    assert!(earned > 0.0, "the owner earned nothing:\n{stdout}");
    // provider-0's line names the owner's account, not the hot key's.
    let owner = stdout
        .split_once("earns for the owner ")
        .and_then(|(_, r)| r.split_once(','))
        .map(|(o, _)| o.to_owned())
        .unwrap();
    assert!(
        stdout.contains(&format!("provider-0  {owner}  staked")),
        "{stdout}"
    );

    // Nothing secret anywhere: not the password, not the operator's key.
    for text in [&stdout, &stderr] {
        for s in [password.as_str(), key.as_str(), &key.to_uppercase()] {
            assert!(!text.contains(s), "a secret leaked:\n{text}");
        }
    }
}
