//! `sietch job run --local` as a real process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::process::{Command, Output};

fn sietch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(args)
        .output()
        .unwrap()
}

fn write_wat(dir: &Path, name: &str, wat: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const COPY: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "in")
  (data (i32.const 220) "out")
  ;; stdin -> stdout, /input/in -> /output/out, exit 3
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 2) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)) (then (call $exit (i32.const 9))))
    (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $read (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)) (then (call $exit (i32.const 10))))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3))))
"#;

#[test]
fn runs_a_job_with_stdin_inputs_and_outputs_and_prints_stable_json() {
    let dir = tempfile::tempdir().unwrap();
    let module = write_wat(dir.path(), "copy.wasm", COPY);
    let stdin = dir.path().join("stdin.txt");
    std::fs::write(&stdin, "hello buyer").unwrap();
    let input = dir.path().join("in.bin");
    std::fs::write(&input, "input bytes").unwrap();
    let out_dir = dir.path().join("out");
    let args = [
        "job",
        "run",
        "--local",
        &module,
        "--stdin",
        stdin.to_str().unwrap(),
        "--input",
        &format!("in={}", input.display()),
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--price-per-gfuel",
        "1000000000000",
        "--json",
    ];
    let v = json(&sietch(&args));
    assert_eq!(v["schema"], "sietch.job.run.v1");
    assert_eq!(v["outcome"], "exited");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["trap"], serde_json::Value::Null);
    assert_eq!(v["stdout"], "hello buyer");
    let fuel = v["fuel_used"].as_u64().unwrap();
    assert!(fuel > 0);
    // 10^12 units per 10^9 fuel: 1000 units per fuel.
    assert_eq!(v["cost"], (u128::from(fuel) * 1000).to_string());
    assert_eq!(v["output_hash"].as_str().unwrap().len(), 64);
    assert_eq!(v["outputs"][0]["name"], "out");
    assert_eq!(v["outputs"][0]["bytes"], 11);
    assert_eq!(std::fs::read(out_dir.join("out")).unwrap(), b"input bytes");
    // The output is there now: the same command leaves it as it is and fails (exit 1),
    // saying so; with --overwrite it replaces it.
    std::fs::write(out_dir.join("out"), "edited").unwrap();
    let kept = sietch(&args);
    assert_eq!(kept.status.code(), Some(1));
    let err = String::from_utf8_lossy(&kept.stderr);
    assert!(
        err.contains("skipped \"out\": a file is already there"),
        "{err}"
    );
    assert_eq!(std::fs::read(out_dir.join("out")).unwrap(), b"edited");
    // Deterministic: the same command gives the same hash and fuel.
    let mut again_args = args.to_vec();
    again_args.push("--overwrite");
    let again = json(&sietch(&again_args));
    assert_eq!(again["output_hash"], v["output_hash"]);
    assert_eq!(again["fuel_used"], v["fuel_used"]);
    assert_eq!(std::fs::read(out_dir.join("out")).unwrap(), b"input bytes");
}

#[test]
fn limits_from_flags_end_the_job_as_an_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let spin = write_wat(
        dir.path(),
        "spin.wasm",
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#,
    );
    let v = json(&sietch(&[
        "job", "run", "--local", &spin, "--fuel", "100000", "--json",
    ]));
    assert_eq!(v["outcome"], "out_of_fuel");
    assert_eq!(v["exit_code"], serde_json::Value::Null);
    assert_eq!(v["fuel_used"], 100000);
    let v = json(&sietch(&[
        "job",
        "run",
        "--local",
        &spin,
        "--fuel",
        "100000000000000",
        "--timeout",
        "0.1",
        "--json",
    ]));
    assert_eq!(v["outcome"], "deadline_exceeded");
    let trap = write_wat(
        dir.path(),
        "trap.wasm",
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    );
    let v = json(&sietch(&["job", "run", "--local", &trap, "--json"]));
    assert_eq!(
        (v["outcome"].as_str(), v["trap"].as_str()),
        (Some("trapped"), Some("unreachable"))
    );
}

#[test]
fn job_arguments_mix_with_flags_and_hyphen_arguments_follow_double_dash() {
    let dir = tempfile::tempdir().unwrap();
    // Exits with argc: flags after the job's arguments are still sietch's.
    let argc = write_wat(
        dir.path(),
        "argc.wasm",
        r#"
        (module
          (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (drop (call $sizes (i32.const 0) (i32.const 4)))
            (call $exit (i32.load (i32.const 0)))))"#,
    );
    let v = json(&sietch(&[
        "job", "run", "--local", &argc, "a", "b", "--fuel", "1000000", "--json",
    ]));
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["fuel_limit"], 1000000);
    let v = json(&sietch(&[
        "job", "run", "--local", "--json", &argc, "--", "-x", "--json",
    ]));
    assert_eq!(v["exit_code"], 3);
}

#[test]
fn refused_module_is_an_error_naming_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_wat(
        dir.path(),
        "bad.wasm",
        r#"(module (import "env" "steal" (func))
        (memory (export "memory") 1) (func (export "_start")))"#,
    );
    let out = sietch(&["job", "run", "--local", &bad, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("env::steal"), "{err}");
}

#[test]
fn text_output_shows_the_job_stdout_then_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let module = write_wat(dir.path(), "copy.wasm", COPY);
    let stdin = dir.path().join("stdin.txt");
    std::fs::write(&stdin, "plain").unwrap();
    let out = sietch(&[
        "job",
        "run",
        "--local",
        &module,
        "--stdin",
        stdin.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"plain");
    let err = String::from_utf8_lossy(&out.stderr);
    // No /input/in was given: the guest exits 9.
    assert!(
        err.contains("exited with code 9") && err.contains("fuel used:"),
        "{err}"
    );
}
