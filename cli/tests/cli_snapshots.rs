//! The CLI's output, checked by snapshots (`cargo insta review` after a deliberate change):
//! help texts, and the commands that talk to a node, run against a real local market.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

fn sietch(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(args)
        .env_remove("SIETCH_DATA_DIR")
        .env_remove("SIETCH_API_URL")
        .env_remove("SIETCH_API_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Hex ids and addresses, and numbers that depend on the machine or the moment.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"0x[0-9a-fA-F]{6,}(…[0-9a-fA-F]{4})?", "[HEX]");
    s.add_filter(r"\b\d+\.\d GiB", "[MEM]");
    s.add_filter(r"(?m)^(\[HEX\]\s+)\d+(\s+\[MEM\])", "$1[CORES]$2");
    s.add_filter(r"/tmp/\S+", "[DIR]");
    s.add_filter(r"\[default: \S*/\.sietch\]", "[default: ~/.sietch]");
    s.add_filter(r"sietch \d+\.\d+\.\d+", "sietch [VERSION]");
    s
}

#[test]
fn help_texts() {
    for cmd in [
        &["--help"][..],
        &["job", "submit", "--help"],
        &["job", "run", "--help"],
        &["offers", "--help"],
        &["channel", "--help"],
        &["provider", "--help"],
        &["node", "run", "--help"],
        &["devnet", "--help"],
        &["generate", "--help"],
        &["train", "digits", "--help"],
        &["escrow", "deploy", "--help"],
    ] {
        let (ok, out, err) = sietch(cmd);
        assert!(ok, "{cmd:?}: {err}");
        settings().bind(|| insta::assert_snapshot!(format!("help {}", cmd.join(" ")), out));
    }
}

#[test]
fn completions_are_scripts_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = sietch(&["completions", shell]);
        assert!(ok, "{err}");
        assert!(
            out.contains("sietch") && out.contains("submit"),
            "{shell}: {out}"
        );
    }
    let (ok, _, err) = sietch(&["completions", "cmd.exe"]);
    assert!(!ok);
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn a_node_that_is_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = sietch(&["offers", "--data-dir", d]);
    assert!(!ok);
    assert!(
        err.contains("sietch init") && err.contains("--api"),
        "{err}"
    );
    let (ok, _, err) = sietch(&["offers", "--api", "http://127.0.0.1:1"]);
    assert!(!ok);
    assert!(err.contains("cannot reach the node"), "{err}");
    let (ok, _, err) = sietch(&[
        "channel",
        "fund",
        "0xabc",
        "lots",
        "--api",
        "http://127.0.0.1:1",
    ]);
    assert!(!ok);
    assert!(err.contains("not an amount of tokens"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_commands_against_a_running_market() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sietch_testkit::devnet::DevnetConfig::new(2, dir.path());
    cfg.tweak = |name, c| {
        c.price_per_gfuel = if name == "provider-0" {
            500_000_000_000
        } else {
            900_000_000_000
        };
    };
    let net = sietch_testkit::devnet::Devnet::start(cfg).await.unwrap();
    let api = format!("http://{}", net.buyer.api);
    let token = std::fs::read_to_string(dir.path().join("buyer/api-token")).unwrap();
    let module = dir.path().join("hello.wasm");
    std::fs::write(
        &module,
        wat::parse_str(
            r#"(module (import "wasi_snapshot_preview1" "fd_write"
              (func $w (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1)
              (data (i32.const 16) "hello from the market\n") (func (export "_start")
              (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 22))
              (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let m = module.to_str().unwrap().to_owned();
    let base = ["--api", api.as_str(), "--token", token.trim()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&base);
        sietch(&all)
    };
    let (ok, offers, err) = tokio::task::block_in_place(|| run(&["offers"]));
    assert!(ok, "{err}");
    // The providers offer this machine's GPU where it has one: the GPU cell, and the column
    // widths it sets, are the machine's.
    let mut machine = settings();
    machine.add_filter(
        r"(\[MEM\]\s+)(-|\d+× [^\n]+?\(\[MEM\], \d+\.\d+\)(, mixed)?)(\s)",
        "$1[GPUS]$4",
    );
    machine.add_filter(r"(\S) {2,}", "$1  ");
    machine.bind(|| insta::assert_snapshot!("offers", offers));
    // Filtered by GPU as the market filters: no offer has a Z9000.
    let (ok, none, err) = tokio::task::block_in_place(|| run(&["offers", "--gpu-model", "Z9000"]));
    assert!(ok, "{err}");
    assert_eq!(
        none,
        "no offer has 1× Z9000: ask for fewer or other GPUs, or none\n"
    );

    let (ok, out, err) = tokio::task::block_in_place(|| {
        run(&[
            "job",
            "submit",
            &m,
            "--fuel",
            "1000000",
            "--memory",
            "1048576",
            "--sampling-ppm",
            "1000000",
        ])
    });
    assert!(ok, "{err}");
    assert!(out.contains("hello from the market"), "{out}");
    settings().bind(|| insta::assert_snapshot!("job submit", out));

    let (ok, out, err) = tokio::task::block_in_place(|| run(&["job", "list", "--json"]));
    assert!(ok, "{err}");
    let jobs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = jobs[0]["job_id"].as_str().unwrap().to_owned();
    assert_eq!(jobs[0]["state"], "paid");
    let (ok, out, err) = tokio::task::block_in_place(|| run(&["job", "get", &id]));
    assert!(ok, "{err}");
    assert_eq!(out, "hello from the market\n");
    let (ok, out, _) = tokio::task::block_in_place(|| run(&["job", "status", &id]));
    assert!(ok);
    settings().bind(|| insta::assert_snapshot!("job status", out));

    // `job run --local` with the same flags and the market's job id runs it as the provider
    // did: the same fuel and the same output hash.
    let seed = id.trim_start_matches("0x").to_owned();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        sietch(&[
            "job", "run", "--local", &m, "--fuel", "1000000", "--memory", "1048576", "--job-id",
            &seed, "--json",
        ])
    });
    assert!(ok, "{err}");
    let local: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = tokio::task::block_in_place(|| run(&["job", "status", &id, "--json"]));
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let market = &status["outputs"];
    assert_eq!(local["fuel_used"], market["fuel_used"], "{local} {market}");
    assert_eq!(
        local["output_hash"].as_str().unwrap(),
        market["output_hash"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        "{local} {market}"
    );

    let (ok, out, err) = tokio::task::block_in_place(|| run(&["provider", "list"]));
    assert!(ok, "{err}");
    settings().bind(|| insta::assert_snapshot!("provider list", out));
    let (ok, out, err) = tokio::task::block_in_place(|| run(&["channel", "list", "--json"]));
    assert!(ok, "{err}");
    let chans: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!chans.as_array().unwrap().is_empty());

    // A GPU no offer has: the submit ends in the market's "no match", which names the GPU,
    // and the fix follows.
    let (ok, _, err) = tokio::task::block_in_place(|| {
        run(&[
            "job",
            "submit",
            &m,
            "--fuel",
            "1000000",
            "--memory",
            "1048576",
            "--gpu-model",
            "Z9000",
            "--gpu-memory",
            "8GiB",
        ])
    });
    assert!(!ok, "{err}");
    assert!(
        err.contains("none has the GPU you need (1× Z9000, ≥ 8.0 GiB each")
            && err.contains("--gpu-model")
            && err.contains("`sietch offers`"),
        "{err}"
    );
    net.shutdown().await;
}
