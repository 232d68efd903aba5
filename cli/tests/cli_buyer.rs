//! The CLI fits a GPU buyer (issue 23, item 5), with the real `sietch` binary against a fake
//! node (a real HTTP server on 127.0.0.1 that keeps each request's body): the GPU flags reach
//! the job the API takes, bad values are refused before anything is sent with what to write
//! instead, a job no offer matches ends with the fix, a node that is not there names how to
//! start one, and progress stays off stderr unless it is a terminal or `--progress` asks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

const JOB: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const NO_GPU: &str = "no offer matches: no offer matches: 3 live offers; none has the GPU you \
                      need (1× Z9000, ≥ 0.0 GiB each, compute capability ≥ 0.0)";

/// One request: method, path and body.
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A fake node whose job fails with `note`; `(url, requests seen)`.
fn fake_node(note: &'static str, state: &'static str) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let route = path.split('?').next().unwrap_or_default().to_owned();
            log.lock().unwrap().push((method.clone(), path, body));
            let (status, kind, body) = match (method.as_str(), route.as_str()) {
                ("GET", "/api/v1/events") => ("200 OK", "text/event-stream", String::new()),
                ("POST", "/api/v1/blobs") => (
                    "200 OK",
                    "application/json",
                    json!({"hash": format!("0x{}", "ab".repeat(32))}).to_string(),
                ),
                ("POST", "/api/v1/jobs") => (
                    "202 Accepted",
                    "application/json",
                    json!({"job_id": JOB}).to_string(),
                ),
                ("GET", r) if r == format!("/api/v1/jobs/{JOB}") => (
                    "200 OK",
                    "application/json",
                    json!({"job_id": JOB, "state": state, "counterparty": "", "note": note})
                        .to_string(),
                ),
                _ => (
                    "404 Not Found",
                    "application/json",
                    json!({"code": "not_found", "message": "no such route"}).to_string(),
                ),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// Runs `sietch` with no `SIETCH_*` of the caller's and `HOME` in `home`; stderr is a pipe,
/// never a terminal.
fn sietch(home: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args).env("HOME", home).env("RUST_BACKTRACE", "0");
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.output().unwrap()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A module (not run: the fake node takes anything).
fn module(home: &Path) -> String {
    let m = home.join("m.wasm");
    std::fs::write(&m, b"\0asm\x01\0\0\0").unwrap();
    m.to_str().unwrap().to_owned()
}

/// The `requirements` of the job submitted to the fake node.
fn submitted_requirements(seen: &Seen) -> Value {
    let seen = seen.lock().unwrap();
    let (_, _, body) = seen
        .iter()
        .find(|(m, p, _)| m == "POST" && p.starts_with("/api/v1/jobs"))
        .expect("a job was submitted");
    serde_json::from_slice::<Value>(body).unwrap()["requirements"].clone()
}

#[test]
fn gpu_flags_reach_the_job_the_api_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let m = module(tmp.path());
    let (url, seen) = fake_node("", "paid");
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "submit",
            &m,
            "--no-wait",
            "--api",
            &url,
            "--token",
            "t",
            "--gpus",
            "2",
            "--gpu-model",
            "H100",
            "--gpu-model",
            "A100",
            "--gpu-memory",
            "80GiB",
            "--gpu-compute",
            "sm_90",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        submitted_requirements(&seen)["gpu"],
        json!({"count": 2, "models": ["H100", "A100"], "min_memory_bytes": 80u64 << 30,
               "min_compute_capability": "9.0"})
    );

    // A --gpu-* flag alone asks for one GPU; 24GB is 24 × 10^9 bytes.
    let (url, seen) = fake_node("", "paid");
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "submit",
            &m,
            "--no-wait",
            "--api",
            &url,
            "--token",
            "t",
            "--gpu-memory",
            "24GB",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    let gpu = &submitted_requirements(&seen)["gpu"];
    assert_eq!(gpu["count"], 1, "{gpu}");
    assert_eq!(gpu["min_memory_bytes"], 24_000_000_000u64, "{gpu}");
    assert_eq!(gpu["models"], json!([]), "{gpu}");

    // No GPU flag (or --gpus 0): no GPU.
    for extra in [&[][..], &["--gpus", "0"]] {
        let (url, seen) = fake_node("", "paid");
        let mut args = vec![
            "job",
            "submit",
            &m,
            "--no-wait",
            "--api",
            &url,
            "--token",
            "t",
        ];
        args.extend_from_slice(extra);
        let out = sietch(tmp.path(), &args);
        assert!(out.status.success(), "{}", err(&out));
        assert_eq!(submitted_requirements(&seen)["gpu"], Value::Null);
    }
}

#[test]
fn bad_gpu_flags_say_what_to_write_and_send_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = module(tmp.path());
    let (url, seen) = fake_node("", "paid");
    for (flags, says) in [
        (&["--gpus", "300"][..], "from 0 to 16, e.g. --gpus 1"),
        (&["--gpus", "two"], "e.g. --gpus 1"),
        (&["--gpu-memory", "24"], "give the unit, e.g. 24GiB"),
        (&["--gpu-memory", "24XB"], "like 24GiB, 80GB or 512MiB"),
        (&["--gpu-memory", "lots"], "like 24GiB, 80GB or 512MiB"),
        (&["--gpu-compute", "eight"], "MAJOR.MINOR, e.g. 8.0"),
        (&["--gpu-compute", "8.x"], "MAJOR.MINOR, e.g. 8.0"),
        (&["--gpu-model", " "], "e.g. --gpu-model H100"),
        (&["--gpus", "0", "--gpu-model", "H100"], "drop --gpus 0"),
    ] {
        for cmd in [
            vec!["job", "submit", &m, "--api", &url, "--token", "t"],
            vec!["job", "run", "--local", &m],
        ] {
            let mut args = cmd.clone();
            args.extend_from_slice(flags);
            let out = sietch(tmp.path(), &args);
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(err(&out).contains(says), "{args:?}: {}", err(&out));
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "a bad flag reached the node"
    );
}

#[test]
fn a_job_no_offer_matches_ends_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let m = module(tmp.path());
    let (url, _) = fake_node(NO_GPU, "failed");
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "submit",
            &m,
            "--api",
            &url,
            "--token",
            "t",
            "--gpu-model",
            "Z9000",
        ],
    );
    assert!(!out.status.success());
    let e = err(&out);
    assert!(e.contains("none has the GPU you need (1× Z9000"), "{e}");
    assert!(
        e.contains("`sietch offers`") && e.contains("--gpu-model"),
        "{e}"
    );
    // `job get` of the failed job says the same.
    let out = sietch(tmp.path(), &["job", "get", JOB, "--api", &url]);
    assert!(!out.status.success());
    assert!(err(&out).contains("--gpu-model"), "{}", err(&out));
    // Another failure is named with where to look, no GPU fix.
    let (url, _) = fake_node("the provider vanished", "failed");
    let out = sietch(
        tmp.path(),
        &["job", "submit", &m, "--api", &url, "--token", "t"],
    );
    assert!(!out.status.success());
    let e = err(&out);
    assert!(
        e.contains("the provider vanished") && e.contains("sietch job status"),
        "{e}"
    );
    assert!(!e.contains("--gpu-model"), "{e}");
}

#[test]
fn a_node_that_is_not_running_names_how_to_start_one() {
    let tmp = tempfile::tempdir().unwrap();
    let m = module(tmp.path());
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["offers", "--api", &url],
        vec!["job", "status", JOB, "--api", &url],
        vec!["job", "submit", &m, "--api", &url, "--token", "t"],
        vec![
            "channel", "fund", "0xabc", "1", "--api", &url, "--token", "t",
        ],
    ] {
        let out = sietch(tmp.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        let e = err(&out);
        assert!(
            e.contains("cannot reach the node")
                && e.contains("`sietch node run`")
                && e.contains("--api URL"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn progress_is_off_unless_stderr_is_a_terminal_or_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let m = module(tmp.path());
    let (url, _) = fake_node("", "paid");
    let base = ["job", "submit", &m, "--api", &url, "--token", "t"];
    // stderr is a pipe here: nothing but what went wrong, if anything.
    let out = sietch(tmp.path(), &base);
    let e = err(&out);
    assert!(!e.contains("uploading") && !e.contains('\r'), "{e}");
    // --progress: plain lines, what is awaited and since when; stdout keeps the result only.
    let mut args = base.to_vec();
    args.push("--progress");
    let out = sietch(tmp.path(), &args);
    let e = err(&out);
    assert!(
        e.contains("] uploading the module and inputs") && e.contains("submitted; matching offers"),
        "{e}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("uploading"));
    // --json stays quiet, and --progress still shows on stderr with it.
    args.pop();
    args.push("--json");
    let out = sietch(tmp.path(), &args);
    assert!(!err(&out).contains("uploading"), "{}", err(&out));
    args.push("--progress");
    let out = sietch(tmp.path(), &args);
    assert!(err(&out).contains("uploading"), "{}", err(&out));
    serde_json::from_slice::<Value>(&out.stdout).expect("stdout is JSON only");
    // `job status --wait` of a job that is final at once.
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "status",
            JOB,
            "--wait=5",
            "--api",
            &url,
            "--progress",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert!(
        err(&out).contains("waiting for it to finish"),
        "{}",
        err(&out)
    );
}

#[test]
fn status_wait_follows_a_job_and_says_how_to_wait_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, seen) = fake_node("", "running");
    let started = std::time::Instant::now();
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "status",
            JOB,
            "--wait=1",
            "--api",
            &url,
            "--progress",
        ],
    );
    assert!(!out.status.success());
    let e = err(&out);
    assert!(
        e.contains("is still running after 1 s")
            && e.contains(&format!("`sietch job status {JOB} --wait`")),
        "{e}"
    );
    assert!(
        e.contains("running (waiting for it to be paid, withheld or failed)"),
        "{e}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    // It polled the job until the second was up.
    assert!(seen.lock().unwrap().len() >= 3);
    // `--wait` takes its value only with `=`: the job id after it stays the job id.
    let (url, _) = fake_node("", "paid");
    let out = sietch(tmp.path(), &["job", "status", "--wait", JOB, "--api", &url]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("state     paid"));
}

#[test]
fn run_local_says_plainly_when_no_gpu_here_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m.wasm");
    std::fs::write(
        &m,
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
            .unwrap(),
    )
    .unwrap();
    let m = m.to_str().unwrap();
    // No GPU has 100000 GiB: it runs all the same, and says why no GPU serves it.
    let out = sietch(
        tmp.path(),
        &[
            "job",
            "run",
            "--local",
            m,
            "--gpu-memory",
            "100000GiB",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    let e = err(&out);
    assert!(
        e.contains("asks for 1× any model, ≥ 100000.0 GiB each")
            && (e.contains("no GPU here") || e.contains("this machine's GPU")),
        "{e}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "exited");
    // Without GPU flags, nothing about GPUs.
    let out = sietch(tmp.path(), &["job", "run", "--local", m]);
    assert!(out.status.success());
    assert!(!err(&out).contains("GPU"), "{}", err(&out));
}
