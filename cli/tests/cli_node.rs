//! `sietch init` and `sietch node config|run` as real processes: keys kept unless forced,
//! the configuration's layers (defaults < file < environment < flags), and clear errors for
//! bad configuration and missing set-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn sietch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {text}"))
}

/// `sietch init` with the EVM key unencrypted in the store (no password: these tests are
/// about the configuration; the keystore is tested in `keys.rs`).
fn init(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "init",
        "--dev-plaintext-key",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&sietch(&args, &[]))
}

#[test]
fn init_makes_keys_once_and_force_replaces_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let first = init(&dir, &[]);
    let peer = line(&first, "peer ").to_owned();
    let evm = line(&first, "evm address ").to_owned();
    assert!(peer.starts_with("12D3Koo"), "{first}");
    assert!(evm.starts_with("0x") && evm.len() == 42, "{first}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("# price_per_gfuel = \"1000\""), "{config}");

    // Again: the same identity, and the operator is told.
    let again = init(&dir, &[]);
    assert_eq!(line(&again, "peer "), peer);
    assert_eq!(line(&again, "evm address "), evm);
    assert!(again.contains("keys already exist"), "{again}");
    // An edited config survives a second init.
    std::fs::write(dir.join("config.toml"), "stake = 9\n").unwrap();
    init(&dir, &[]);
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "stake = 9\n"
    );

    let forced = init(&dir, &["--force"]);
    assert_ne!(line(&forced, "peer "), peer);
    assert_ne!(line(&forced, "evm address "), evm);
}

#[test]
fn configuration_layers_defaults_file_environment_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, &[]);
    let d = dir.to_str().unwrap();
    let other_peer = line(&init(&dir.join("other"), &[]), "peer ").to_owned();
    let value = |args: &[&str], env: &[(&str, &str)], key: &str| -> String {
        let mut all = vec!["node", "config", "--data-dir", d];
        all.extend_from_slice(args);
        let toml_text = ok(&sietch(&all, env));
        let v: toml::Value = toml::from_str(&toml_text).unwrap();
        let v = v
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from {toml_text}"));
        // Token amounts are strings of digits; other numbers are integers.
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    };
    // The commented template is the defaults.
    assert_eq!(value(&[], &[], "price_per_gfuel"), "1000");
    assert_eq!(value(&[], &[], "mdns"), "true");

    std::fs::write(
        dir.join("config.toml"),
        format!(
            "price_per_gfuel = 5\nstake = 77\nbootstrap = [\"/ip4/10.0.0.1/tcp/7070/p2p/{other_peer}\"]\n"
        ),
    )
    .unwrap();
    assert_eq!(value(&[], &[], "price_per_gfuel"), "5");
    let env = [("SIETCH_PRICE_PER_GFUEL", "6"), ("SIETCH_NO_MDNS", "true")];
    assert_eq!(value(&[], &env, "price_per_gfuel"), "6");
    assert_eq!(value(&[], &env, "mdns"), "false");
    assert_eq!(value(&[], &env, "stake"), "77");
    assert_eq!(
        value(&["--price-per-gfuel", "7"], &env, "price_per_gfuel"),
        "7"
    );
    // Bootstrap peers from flags add to the file's.
    let boot = value(
        &[
            "--bootstrap",
            &format!("/ip4/10.0.0.2/tcp/7070/p2p/{other_peer}"),
        ],
        &[],
        "bootstrap",
    );
    assert!(
        boot.contains("10.0.0.1") && boot.contains("10.0.0.2"),
        "{boot}"
    );
    // Another file named by --config replaces the data directory's.
    let other = dir.join("other.toml");
    std::fs::write(&other, "price_per_gfuel = 8\n").unwrap();
    assert_eq!(
        value(
            &["--config", other.to_str().unwrap()],
            &[],
            "price_per_gfuel"
        ),
        "8"
    );
}

#[test]
fn bad_configuration_and_missing_setup_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.to_str().unwrap();

    // No keys yet: `node run` says to run `sietch init`.
    let err = failed(&sietch(
        &[
            "node",
            "run",
            "--data-dir",
            d,
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
        &[],
    ));
    assert!(err.contains("sietch init"), "{err}");

    init(dir, &[]);
    std::fs::write(dir.join("config.toml"), "listne = []\n").unwrap();
    let err = failed(&sietch(&["node", "run", "--data-dir", d], &[]));
    assert!(
        err.contains("listne") && err.contains("config.toml"),
        "{err}"
    );

    std::fs::write(dir.join("config.toml"), "price_per_gfuel = \"cheap\"\n").unwrap();
    let err = failed(&sietch(&["node", "config", "--data-dir", d], &[]));
    assert!(err.contains("price_per_gfuel"), "{err}");

    std::fs::write(dir.join("config.toml"), "").unwrap();
    let err = failed(&sietch(
        &["node", "run", "--data-dir", d, "--bootstrap", "nowhere"],
        &[],
    ));
    assert!(
        err.contains("bootstrap") && err.contains("nowhere"),
        "{err}"
    );
    let err = failed(&sietch(
        &["node", "config", "--data-dir", d, "--announce-every", "700"],
        &[],
    ));
    assert!(err.contains("announce_every_secs"), "{err}");
    let err = failed(&sietch(
        &["node", "config", "--data-dir", d, "--escrow", "0xnope"],
        &[],
    ));
    assert!(err.contains("escrow"), "{err}");
    let err = failed(&sietch(
        &[
            "node",
            "config",
            "--data-dir",
            d,
            "--config",
            "/nonexistent.toml",
        ],
        &[],
    ));
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn a_node_stops_cleanly_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(["node", "run", "--data-dir", dir.to_str().unwrap()])
        .args(["--no-mdns", "--api", "127.0.0.1:0"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if std::io::BufRead::read_line(&mut out, &mut l).unwrap() == 0 {
            panic!("the node exited before `ready`: {seen}");
        }
        seen.push_str(&l);
        if l.trim() == "ready" {
            break;
        }
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{status}: {seen}{rest}");
    assert!(rest.contains("shutting down"), "{rest}");
}

#[test]
fn node_run_shows_its_start_up_steps_and_no_rpc_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.to_str().unwrap();
    init(dir, &[]);
    // A hosted endpoint's API key is in its path; nothing answers on port 1.
    std::fs::write(
        dir.join("config.toml"),
        "rpc_url = \"http://user:pw@127.0.0.1:1/v2/SECRETKEY\"\n\
         escrow = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n",
    )
    .unwrap();
    let out = sietch(
        &[
            "node",
            "run",
            "--data-dir",
            d,
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
            "--progress",
        ],
        &[],
    );
    let err = failed(&out);
    // Each step in order on stderr (plain lines: stderr is a pipe, `--progress` asks).
    let mut rest = err.as_str();
    for step in [
        "opening the store",
        "unlocking the EVM key",
        "connecting to the chain at http://127.0.0.1:1/… (escrow, token)",
    ] {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("no `{step}` after the steps before it in {err}"));
        rest = rest.split_at(at).1;
    }
    assert!(err.contains("rpc_url"), "{err}");
    let all = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("SECRETKEY") && !all.contains("pw@"),
        "the endpoint's key was shown: {all}"
    );
}
