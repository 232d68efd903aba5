//! The node's EVM key as a person trusts it with money: `sietch init` makes an encrypted
//! keystore that Foundry's `cast` (a real wallet tool) opens at the same address, imports
//! cast's keystores and raw key files, exports both ways, moves an unencrypted key into a
//! keystore; a node starts from a keystore with the password from a file or the
//! environment; a wrong password or a broken keystore is a clear error that quotes no
//! secret. Real processes and a real `cast`; no mocks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PW: &str = "horse-battery-staple-42";

/// `cast` from the repository's pinned tools (`scripts/setup.sh` installs it): a missing
/// cast fails the test, never skips it.
fn cast() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pinned = root.join("tools/bin/cast");
    if pinned.exists() {
        return pinned;
    }
    let on_path = Command::new("cast").arg("--version").output();
    match on_path {
        Ok(o) if o.status.success() => PathBuf::from("cast"),
        _ => panic!(
            "Foundry's `cast` is missing (neither tools/bin/cast nor cast on PATH): run scripts/setup.sh, which installs it; these tests check the keystore against a real wallet tool"
        ),
    }
}

fn run_cast(args: &[&str]) -> String {
    let out = Command::new(cast()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cast {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sietch` with no `SIETCH_*` from the test's environment, no terminal, and `env`.
fn sietch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args).stdin(Stdio::null());
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

/// The failure's stderr, after checking that neither output holds any of `secrets`.
fn failed(out: &Output, secrets: &[&str]) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    no_secret(out, secrets);
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn no_secret(out: &Output, secrets: &[&str]) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_lowercase();
    for s in secrets {
        let s = s.trim_start_matches("0x").to_lowercase();
        assert!(!all.contains(&s), "a secret leaked: {all}");
    }
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {text}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The raw key in a keystore, as cast decrypts it.
fn cast_decrypt(keystore: &Path, password: &str) -> String {
    let dir = keystore.parent().unwrap().to_str().unwrap();
    let name = keystore.file_name().unwrap().to_str().unwrap();
    let out = run_cast(&[
        "wallet",
        "decrypt-keystore",
        "-k",
        dir,
        name,
        "--unsafe-password",
        password,
    ]);
    out.split_whitespace()
        .find(|w| w.starts_with("0x") && w.len() == 66)
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_owned()
}

fn cast_address(keystore: &Path, password: &str) -> String {
    run_cast(&[
        "wallet",
        "address",
        "--keystore",
        keystore.to_str().unwrap(),
        "--password",
        password,
    ])
    .trim()
    .to_owned()
}

#[test]
fn init_makes_a_keystore_that_cast_opens_at_the_same_address() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node");
    let d = data.to_str().unwrap();
    let pwfile = write(tmp.path(), "pw", &format!("{PW}\n"));
    let out = sietch(
        &[
            "init",
            "--data-dir",
            d,
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    );
    let text = ok(&out);
    let address = line(&text, "evm address ").to_owned();
    let keystore = PathBuf::from(line(&text, "keystore "));
    assert_eq!(keystore, data.join("keystore/node.json"));
    assert!(!text.contains("warning"), "{text}");

    // cast opens it with the password, at the address init printed.
    assert_eq!(cast_address(&keystore, PW), address);
    let raw = cast_decrypt(&keystore, PW);
    // Neither the key nor the password was printed.
    no_secret(&out, &[&raw, PW]);
    assert!(
        !std::fs::read_to_string(&keystore)
            .unwrap()
            .contains(&raw[2..])
    );

    // Exported as a keystore: cast opens the copy too; as raw hex: cast's key, 0600.
    let copy = tmp.path().join("copy.json");
    let out = sietch(
        &["key", "export", copy.to_str().unwrap(), "--data-dir", d],
        &[],
    );
    assert_eq!(line(&ok(&out), "evm address "), address);
    assert_eq!(cast_address(&copy, PW), address);

    let raw_out = tmp.path().join("raw.hex");
    // Without --dangerous: refused by the parser, nothing written.
    let out = sietch(
        &[
            "key",
            "export",
            raw_out.to_str().unwrap(),
            "--raw-hex",
            "--data-dir",
            d,
        ],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    assert!(failed(&out, &[&raw, PW]).contains("--dangerous"));
    assert!(!raw_out.exists());
    let out = sietch(
        &[
            "key",
            "export",
            raw_out.to_str().unwrap(),
            "--raw-hex",
            "--dangerous",
            "--data-dir",
            d,
        ],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    no_secret(&out, &[&raw, PW]);
    ok(&out);
    assert_eq!(std::fs::read_to_string(&raw_out).unwrap().trim(), raw);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&raw_out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Never over an existing file.
    let out = sietch(
        &[
            "key",
            "export",
            raw_out.to_str().unwrap(),
            "--raw-hex",
            "--dangerous",
            "--data-dir",
            d,
        ],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    assert!(failed(&out, &[&raw, PW]).contains("exists already"));

    // A second init keeps the key and needs no password (the keystore names its account).
    let again = ok(&sietch(&["init", "--data-dir", d], &[]));
    assert!(again.contains("keys already exist"), "{again}");
    assert_eq!(line(&again, "evm address "), address);
}

#[test]
fn keystores_and_raw_keys_from_cast_are_imported_at_their_address() {
    let tmp = tempfile::tempdir().unwrap();
    let wallets = tmp.path().join("wallets");
    std::fs::create_dir(&wallets).unwrap();
    let made = run_cast(&[
        "wallet",
        "new",
        wallets.to_str().unwrap(),
        "--unsafe-password",
        PW,
    ]);
    let cast_addr = line(&made, "Address:").trim().to_owned();
    let cast_file = std::fs::read_dir(&wallets)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let raw = cast_decrypt(&cast_file, PW);

    // A cast keystore, password from the environment.
    let data = tmp.path().join("a");
    let out = sietch(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--import-keystore",
            cast_file.to_str().unwrap(),
        ],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    let text = ok(&out);
    no_secret(&out, &[&raw, PW]);
    assert_eq!(line(&text, "evm address "), cast_addr);
    // It keeps its password: cast still opens the node's copy.
    let node_keystore = data.join("keystore/node.json");
    assert_eq!(cast_address(&node_keystore, PW), cast_addr);
    // Importing into a node that has keys needs --force.
    let out = sietch(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--import-keystore",
            cast_file.to_str().unwrap(),
        ],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    assert!(failed(&out, &[&raw, PW]).contains("--force"));

    // A raw key file (never argv), encrypted with a new password from a file.
    let data = tmp.path().join("b");
    let keyfile = write(tmp.path(), "key.hex", &format!("{raw}\n"));
    let pwfile = write(tmp.path(), "pw", "another-password-9");
    let out = sietch(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--import-key-file",
            keyfile.to_str().unwrap(),
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    );
    let text = ok(&out);
    no_secret(&out, &[&raw, PW, "another-password-9"]);
    assert_eq!(line(&text, "evm address "), cast_addr);
    assert_eq!(
        cast_address(&data.join("keystore/node.json"), "another-password-9"),
        cast_addr
    );
}

#[test]
fn wrong_passwords_and_broken_keystores_are_clear_errors_that_quote_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let wallets = tmp.path().join("wallets");
    std::fs::create_dir(&wallets).unwrap();
    run_cast(&[
        "wallet",
        "new",
        wallets.to_str().unwrap(),
        "--unsafe-password",
        PW,
    ]);
    let cast_file = std::fs::read_dir(&wallets)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let raw = cast_decrypt(&cast_file, PW);
    let data = tmp.path().join("n");
    let d = data.to_str().unwrap();
    let import = |env: &[(&str, &str)]| {
        sietch(
            &[
                "init",
                "--data-dir",
                d,
                "--import-keystore",
                cast_file.to_str().unwrap(),
            ],
            env,
        )
    };

    // Wrong password on import.
    let err = failed(
        &import(&[("SIETCH_KEYSTORE_PASSWORD", "not-it-at-all")]),
        &[&raw, PW, "not-it-at-all"],
    );
    assert!(
        err.contains("wrong password") && err.contains("SIETCH_KEYSTORE_PASSWORD"),
        "{err}"
    );
    // No password and no terminal: says every way to give one.
    let err = failed(&import(&[]), &[&raw, PW]);
    assert!(
        err.contains("--password-file")
            && err.contains("SIETCH_KEYSTORE_PASSWORD")
            && err.contains("terminal"),
        "{err}"
    );
    // A too-short password for a new keystore.
    let err = failed(
        &sietch(
            &["init", "--data-dir", d],
            &[("SIETCH_KEYSTORE_PASSWORD", "abc1234")],
        ),
        &["abc1234"],
    );
    assert!(err.contains("at least 8 characters"), "{err}");
    // A raw key given as a keystore: named as not a keystore, not echoed.
    let keyfile = write(tmp.path(), "key.hex", &raw);
    let err = failed(
        &sietch(
            &[
                "init",
                "--data-dir",
                d,
                "--import-keystore",
                keyfile.to_str().unwrap(),
            ],
            &[("SIETCH_KEYSTORE_PASSWORD", PW)],
        ),
        &[&raw, PW],
    );
    assert!(
        err.contains("not a usable Ethereum keystore") && err.contains("not JSON"),
        "{err}"
    );

    // A node whose keystore is then broken or unlocked wrongly does not start.
    ok(&import(&[("SIETCH_KEYSTORE_PASSWORD", PW)]));
    let run = |env: &[(&str, &str)]| {
        sietch(
            &[
                "node",
                "run",
                "--data-dir",
                d,
                "--no-mdns",
                "--api",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ],
            env,
        )
    };
    let err = failed(
        &run(&[("SIETCH_KEYSTORE_PASSWORD", "not-it-at-all")]),
        &[&raw, PW, "not-it-at-all"],
    );
    assert!(
        err.contains("wrong password") && err.contains("keystore/node.json"),
        "{err}"
    );
    let err = failed(&run(&[]), &[&raw, PW]);
    assert!(err.contains("no password for the keystore"), "{err}");

    let ks = data.join("keystore/node.json");
    let text = std::fs::read_to_string(&ks).unwrap();
    std::fs::write(&ks, &text[..text.len() / 2]).unwrap();
    let err = failed(&run(&[("SIETCH_KEYSTORE_PASSWORD", PW)]), &[&raw, PW]);
    assert!(
        err.contains("not a usable Ethereum keystore") && err.contains("not JSON"),
        "{err}"
    );
    std::fs::remove_file(&ks).unwrap();
    let err = failed(&run(&[("SIETCH_KEYSTORE_PASSWORD", PW)]), &[&raw, PW]);
    assert!(
        err.contains("no keystore at") && err.contains("sietch init"),
        "{err}"
    );
}

/// `sietch node run` from an encrypted keystore until `ready`; the node's account as its API
/// tells it; then stopped.
fn running_address(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let (address, seen) = running(data, extra, env);
    assert!(!seen.contains("not encrypted"), "{seen}");
    address
}

/// `sietch node run` until `ready`: the node's account as its API tells it, and the lines
/// it printed; then stopped.
fn running(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(["node", "run", "--data-dir", data.to_str().unwrap()])
        .args([
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    let mut child = c.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut api = None;
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            let _ = child.kill();
            panic!("the node exited before `ready`: {seen}");
        }
        seen.push_str(&l);
        if let Some(a) = l.trim().strip_prefix("api http://") {
            api = Some(a.to_owned());
        }
        if l.trim() == "ready" {
            break;
        }
    }
    let api = api.unwrap_or_else(|| panic!("no api line in {seen}"));
    let mut s = std::net::TcpStream::connect(&api).unwrap();
    write!(
        s,
        "GET /api/v1/node HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let json = &body[body
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {body}"))..];
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    (v["evm_address"].as_str().unwrap().to_owned(), seen)
}

#[test]
fn a_node_runs_from_its_keystore_with_the_password_from_a_file_or_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let pwfile = write(tmp.path(), "pw", PW);
    let text = ok(&sietch(
        &["init", "--data-dir", data.to_str().unwrap()],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    ));
    let address = line(&text, "evm address ").to_owned();
    let ks = data.join("keystore/node.json");
    assert_eq!(cast_address(&ks, PW), address);

    let from_env = running_address(&data, &[], &[("SIETCH_KEYSTORE_PASSWORD", PW)]);
    assert_eq!(from_env, address);
    // A password file others can read works, and is warned about.
    let (from_file, seen) = running(&data, &["--password-file", pwfile.to_str().unwrap()], &[]);
    assert_eq!(from_file, address);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(&pwfile).unwrap().permissions().mode() & 0o077 != 0 {
            assert!(seen.contains("chmod 600"), "{seen}");
        }
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (_, seen) = running(&data, &["--password-file", pwfile.to_str().unwrap()], &[]);
    assert!(!seen.contains("chmod 600") && !seen.contains(PW), "{seen}");
    // The file wins over the environment.
    let both = running_address(
        &data,
        &["--password-file", pwfile.to_str().unwrap()],
        &[("SIETCH_KEYSTORE_PASSWORD", "not-it-at-all")],
    );
    assert_eq!(both, address);
    // And `[keys] password_file` in config.toml.
    std::fs::write(
        data.join("config.toml"),
        format!("[keys]\npassword_file = {:?}\n", pwfile.to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(running_address(&data, &[], &[]), address);
}

#[test]
fn an_unencrypted_key_still_starts_with_a_warning_and_moves_into_a_keystore() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let d = data.to_str().unwrap();
    let text = ok(&sietch(
        &["init", "--data-dir", d, "--dev-plaintext-key"],
        &[],
    ));
    let address = line(&text, "evm address ").to_owned();
    assert!(
        text.contains("warning") && text.contains("sietch key encrypt"),
        "{text}"
    );
    assert!(!data.join("keystore/node.json").exists());

    // The node starts, and says once that its key is not encrypted.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args([
            "node",
            "run",
            "--data-dir",
            d,
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            panic!("the node exited before `ready`: {seen}");
        }
        seen.push_str(&l);
        if l.trim() == "ready" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen.matches("is not encrypted").count(), 1, "{seen}");
    assert!(seen.contains("sietch key encrypt"), "{seen}");

    // Migration: into a keystore cast opens, then the store holds no copy.
    let out = sietch(
        &["key", "encrypt", "--data-dir", d],
        &[("SIETCH_KEYSTORE_PASSWORD", PW)],
    );
    assert_eq!(line(&ok(&out), "evm address "), address);
    no_secret(&out, &[PW]);
    let ks = data.join("keystore/node.json");
    assert_eq!(cast_address(&ks, PW), address);
    let raw = cast_decrypt(&ks, PW);
    no_secret(&out, &[&raw]);
    assert_eq!(
        running_address(&data, &[], &[("SIETCH_KEYSTORE_PASSWORD", PW)]),
        address
    );
    // The store no longer holds the key: without the keystore the node cannot start.
    std::fs::rename(&ks, tmp.path().join("moved.json")).unwrap();
    let err = failed(
        &sietch(
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
        ),
        &[&raw, PW],
    );
    assert!(err.contains("no keystore at"), "{err}");
}

#[test]
fn a_node_started_in_process_uses_its_keystore() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let pwfile = write(tmp.path(), "pw", PW);
    let text = ok(&sietch(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    ));
    let address = line(&text, "evm address ").to_owned();
    let mut config = sietch_node::config::NodeConfig {
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        ..Default::default()
    };
    config.keys.password_file = Some(pwfile);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let events = sietch_node::events::Events::new();
        let node = sietch_node::service::Node::start(&data, config, events)
            .await
            .unwrap();
        assert_eq!(node.evm_address.to_string(), address);
        node.shutdown().await;
    });
}

#[test]
fn a_node_that_cannot_unlock_its_key_sends_nothing_to_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let pwfile = write(tmp.path(), "pw", PW);
    ok(&sietch(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    ));
    // A chain endpoint that records whether anyone came.
    let chain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    chain.set_nonblocking(true).unwrap();
    let mut config = sietch_node::config::NodeConfig {
        mdns: false,
        api: "127.0.0.1:0".parse().unwrap(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        rpc_url: Some(format!("http://{}", chain.local_addr().unwrap())),
        escrow: Some(format!("{:?}", sietch_market::Address::repeat_byte(0x42))),
        ..Default::default()
    };
    config.keys.password_file = Some(write(tmp.path(), "wrong", "not-it-at-all"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = rt.block_on(sietch_node::service::Node::start(
        &data,
        config,
        sietch_node::events::Events::new(),
    ));
    match started {
        Err(sietch_node::service::StartError::Key(
            sietch_node::keys::KeyError::WrongPassword { path, .. },
        )) => assert_eq!(path, data.join("keystore/node.json")),
        Err(e) => panic!("not the wrong-password error: {e}"),
        Ok(_) => panic!("started with a wrong password"),
    }
    assert!(
        chain
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the node reached the chain before unlocking its key"
    );
}

#[test]
fn force_replaces_the_keys_and_moves_the_old_keystore_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let d = data.to_str().unwrap();
    let env = [("SIETCH_KEYSTORE_PASSWORD", PW)];
    let first = ok(&sietch(&["init", "--data-dir", d], &env));
    let old = line(&first, "evm address ").to_owned();

    let forced = ok(&sietch(&["init", "--data-dir", d, "--force"], &env));
    let new = line(&forced, "evm address ").to_owned();
    assert_ne!(new, old);
    let aside = PathBuf::from(line(&forced, "replaced keystore moved to "));
    assert!(aside.starts_with(data.join("keystore")), "{forced}");
    // The old account's key is still there, under its password.
    assert_eq!(cast_address(&aside, PW), old);
    assert_eq!(cast_address(&data.join("keystore/node.json"), PW), new);

    // Forced to an unencrypted development key: the keystore is moved aside too, so the
    // node runs with the new key, not the old keystore's.
    let dev = ok(&sietch(
        &["init", "--data-dir", d, "--force", "--dev-plaintext-key"],
        &[],
    ));
    let dev_addr = line(&dev, "evm address ").to_owned();
    assert!(!data.join("keystore/node.json").exists());
    let (running, seen) = running(&data, &[], &[]);
    assert_eq!(running, dev_addr);
    assert!(seen.contains("is not encrypted"), "{seen}");
}

/// `sietch ARGS` on a terminal (util-linux's `script` gives it one), answering each prompt
/// that contains `prompts[i].0` with `prompts[i].1`; everything the terminal showed.
fn on_a_terminal(args: &str, prompts: &[(&str, &str)]) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_sietch"));
    let mut script = Command::new("script");
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            script.env_remove(k);
        }
    }
    let mut child = script
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("util-linux's `script` (which gives sietch a terminal) cannot run: {e}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Each answer is typed only once its prompt is shown (echo is off by then).
    for (prompt, answer) in prompts {
        while !seen.contains(prompt) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no prompt {prompt:?} on the terminal: {seen}");
                }
            }
        }
        writeln!(stdin, "{answer}").unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    while let Ok(b) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(status.success(), "{seen}");
    seen.replace('\r', "")
}

#[test]
fn the_password_is_asked_on_a_terminal_twice_for_a_new_keystore_and_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("n");
    let shown = on_a_terminal(
        &format!("init --data-dir {}", data.display()),
        &[("New password", PW), ("again", PW)],
    );
    assert!(!shown.contains(PW), "the password was echoed: {shown}");
    let address = line(&shown, "evm address ").to_owned();
    assert_eq!(cast_address(&data.join("keystore/node.json"), PW), address);
}
