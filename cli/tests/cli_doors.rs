//! The CLI's doors (issue 26), with the real `sietch` binary against a fake node: a real HTTP
//! server on 127.0.0.1 that records every request's `Authorization` header and answers like
//! an attacker would (hostile notes, file names and errors). The API token goes only to the
//! data directory's own node or where `--token` names, and only on writes; a provider's file
//! names cannot overwrite, follow links or leave the output directory; a provider's text
//! reaches the terminal escaped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use sietch_testkit::fake_http::{FakeServer, Reply, Request};

const JOB: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
/// An OSC that sets the terminal's title, and one that clears the screen.
const TITLE: &str = "\x1b]0;pwned\x07";
const CLEAR: &str = "\x1b[2J";

/// A fake node: answers the API's routes with hostile content and records every request.
fn fake_node() -> FakeServer {
    FakeServer::start(answer)
}

/// The attacker's answers.
fn answer(request: &Request) -> Reply {
    let ok = Reply::ok;
    match (request.method.as_str(), request.route()) {
        ("GET", "/api/v1/events") => Reply::new("200 OK", "text/event-stream", String::new()),
        ("GET", "/api/v1/offers") => ok(json!([{
            "evm_address": format!("0xdead{TITLE}beef\u{202e}cafe0000000000"),
            "peer_id": null, "cpu_cores": 8, "memory_bytes": 1u64 << 30,
            "price_per_gfuel": format!("1{CLEAR}"), "stake": "1000000000000000000",
            "expires_at": 0,
        }])),
        ("GET", "/api/v1/jobs") => ok(json!([record()])),
        ("GET", r) if r == format!("/api/v1/jobs/{JOB}") => ok(record()),
        ("GET", _) => Reply::new(
            "404 Not Found",
            "application/json",
            json!({"code": "no_such_job", "message": format!("no such job{TITLE}{CLEAR}")})
                .to_string(),
        ),
        ("POST", "/api/v1/blobs") => ok(json!({"hash": format!("0x{}", "ab".repeat(32))})),
        ("POST", "/api/v1/jobs") => ok(json!({"job_id": JOB})),
        ("POST", "/api/v1/channels") => ok(json!({"channel": format!("0xc0ffee{TITLE}")})),
        _ => Reply::new(
            "404 Not Found",
            "application/json",
            json!({"code": "not_found", "message": "no such route"}).to_string(),
        ),
    }
}

/// A finished job whose provider chose its file names and note to hurt the buyer.
fn record() -> Value {
    // "1" and "theirs", base64.
    json!({
        "job_id": JOB, "state": "paid",
        "counterparty": "0x2222222222222222222222222222222222222222",
        "amount": "1000", "fuel_used": 10,
        "note": format!("all good{CLEAR}{TITLE}\u{202e}"),
        "outputs": {
            "outcome": format!("exited{TITLE}"), "exit_code": 0,
            "stdout": "aGVsbG8K",
            "files": {
                "good": "MQ==",
                ".bashrc": "dGhlaXJz",
                "link": "dGhlaXJz",
                "../x": "dGhlaXJz",
                "a\\b": "dGhlaXJz",
                CLEAR: "dGhlaXJz",
                "nul\u{0}": "dGhlaXJz",
            },
            "output_hash": format!("0x{}", "00".repeat(32)),
            "fuel_used": 10, "amount": "1000",
        },
    })
}

/// Runs `sietch` with no `SIETCH_*` from the caller's environment and `HOME` in `home`
/// (the default data directory is never the developer's).
fn sietch(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sietch"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SIETCH_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home).envs(env.iter().copied());
    c.output().unwrap()
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data directory whose node listens at `api`, with token `secret`.
fn data_dir(root: &Path, name: &str, api: &str) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("api-token"), "secret\n").unwrap();
    std::fs::write(dir.join("config.toml"), format!("api = \"{api}\"\n")).unwrap();
    dir.to_str().unwrap().to_owned()
}

fn no_auth(seen: &[Request]) {
    assert!(!seen.is_empty());
    for s in seen {
        assert_eq!(s.auth, None, "{s:?} carried a token");
    }
}

#[test]
fn the_data_dirs_token_never_goes_to_another_node() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let fake = fake_node();
    let url = fake.url();
    // The data directory of a node elsewhere (its config names another address).
    let dir = data_dir(home, "mine", "127.0.0.1:1");
    let module = home.join("m.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let m = module.to_str().unwrap();

    // Reads: no token, and they work without one.
    for args in [
        &["offers", "--data-dir", &dir, "--api", &url][..],
        &["job", "get", JOB, "--data-dir", &dir, "--api", &url],
        &["job", "status", JOB, "--data-dir", &dir, "--api", &url],
        &["job", "list", "--data-dir", &dir, "--api", &url],
    ] {
        let (ok, _, err) = text(&sietch(home, args, &[]));
        assert!(ok, "{args:?}: {err}");
        no_auth(&fake.take());
    }
    // The same through the environment, and from the default data directory ($HOME/.sietch).
    let default = data_dir(home, ".sietch", "127.0.0.1:1");
    let (ok, _, err) = text(&sietch(home, &["offers"], &[("SIETCH_API_URL", &url)]));
    assert!(ok && !default.is_empty(), "{err}");
    no_auth(&fake.take());

    // Writes: refused before anything is sent, with how to pass a token.
    for args in [
        &[
            "channel",
            "fund",
            "0xabc",
            "1",
            "--data-dir",
            &dir,
            "--api",
            &url,
        ][..],
        &[
            "job",
            "submit",
            m,
            "--no-wait",
            "--data-dir",
            &dir,
            "--api",
            &url,
        ],
        &["channel", "fund", "0xabc", "1", "--api", &url],
    ] {
        let (ok, _, err) = text(&sietch(home, args, &[]));
        assert!(!ok, "{args:?} succeeded");
        assert!(
            err.contains("--token") && err.contains("SIETCH_API_TOKEN"),
            "{args:?}: {err}"
        );
        assert!(err.contains("sent only to its own node"), "{err}");
        assert!(fake.take().is_empty(), "{args:?} reached the node");
    }

    // An explicit token: on writes only.
    let (ok, _, err) = text(&sietch(
        home,
        &["offers", "--api", &url, "--token", "given"],
        &[],
    ));
    assert!(ok, "{err}");
    no_auth(&fake.take());
    let (ok, _, err) = text(&sietch(
        home,
        &["job", "submit", m, "--no-wait", "--api", &url],
        &[("SIETCH_API_TOKEN", "given")],
    ));
    assert!(ok, "{err}");
    let seen = fake.take();
    for s in &seen {
        let want = (s.method == "POST").then(|| "Bearer given".to_owned());
        assert_eq!(s.auth, want, "{s:?}");
    }
    assert!(seen.iter().any(|s| s.path == "/api/v1/jobs"), "{seen:?}");
    assert!(seen.iter().any(|s| s.method == "GET"), "{seen:?}");
    let (ok, out, err) = text(&sietch(
        home,
        &[
            "channel", "fund", "0xabc", "1", "--api", &url, "--token", "given",
        ],
        &[],
    ));
    assert!(ok, "{err}");
    assert!(
        !out.contains('\x1b') && out.contains("\\u{1b}]0;pwned"),
        "{out}"
    );
    // The fund is sent once, with the token; the read of the token's unit carries none.
    let seen = fake.take();
    let posts: Vec<_> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{seen:?}");
    assert_eq!(posts[0].auth.as_deref(), Some("Bearer given"));
    no_auth(
        &seen
            .into_iter()
            .filter(|s| s.method != "POST")
            .collect::<Vec<_>>(),
    );
}

#[test]
fn the_data_dirs_token_goes_to_its_own_node_on_writes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let fake = fake_node();
    let url = fake.url();
    let dir = data_dir(home, "node", &fake.addr().to_string());
    // With --api naming the data directory's node, and without --api.
    for api in [&["--api", url.as_str()][..], &[]] {
        let mut read = vec!["offers", "--data-dir", &dir];
        read.extend_from_slice(api);
        let (ok, _, err) = text(&sietch(home, &read, &[]));
        assert!(ok, "{err}");
        no_auth(&fake.take());
        let mut write = vec!["channel", "fund", "0xabc", "1", "--data-dir", &dir];
        write.extend_from_slice(api);
        let (ok, _, err) = text(&sietch(home, &write, &[]));
        assert!(ok, "{err}");
        let seen = fake.take();
        let posts: Vec<_> = seen.iter().filter(|s| s.method == "POST").collect();
        assert_eq!(posts.len(), 1, "{seen:?}");
        assert_eq!(posts[0].auth.as_deref(), Some("Bearer secret"));
    }
}

#[test]
fn a_providers_file_names_cannot_overwrite_follow_links_or_leave_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let fake = fake_node();
    let url = fake.url();
    let out = home.join("work").join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(".bashrc"), "mine").unwrap();
    let outside = home.join("outside");
    std::fs::write(&outside, "untouched").unwrap();
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let o = out.to_str().unwrap();

    let (ok, stdout, err) = text(&sietch(
        home,
        &["job", "get", JOB, "--api", &url, "--output-dir", o],
        &[],
    ));
    // Not all written: a failure, after the safe ones were written and stdout printed.
    assert!(!ok, "{err}");
    assert_eq!(stdout, "hello\n");
    assert_eq!(std::fs::read_to_string(out.join("good")).unwrap(), "1");
    assert_eq!(
        std::fs::read_to_string(out.join(".bashrc")).unwrap(),
        "mine"
    );
    assert!(
        std::fs::symlink_metadata(out.join("link"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert!(!home.join("work").join("x").exists());
    assert!(
        err.contains("skipped \".bashrc\": a file is already there (--overwrite"),
        "{err}"
    );
    assert!(err.contains("skipped \"link\": a symbolic link"), "{err}");
    assert!(
        err.contains("refused \"../x\": not a valid file name"),
        "{err}"
    );
    assert!(err.contains("refused \"a\\\\b\""), "{err}");
    assert!(err.contains("refused \"\\u{1b}[2J\""), "{err}");
    assert!(err.contains("refused \"nul\\u{0}\""), "{err}");
    assert!(
        err.contains("1 files written") && err.contains("6 of the job's 7"),
        "{err}"
    );
    assert!(!err.contains('\x1b') && !err.contains('\0'), "{err:?}");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // --overwrite: the file replaced, the link replaced (its target untouched); hostile
    // names still refused.
    let (ok, _, err) = text(&sietch(
        home,
        &[
            "job",
            "get",
            JOB,
            "--api",
            &url,
            "--output-dir",
            o,
            "--overwrite",
        ],
        &[],
    ));
    assert!(!ok);
    assert_eq!(
        std::fs::read_to_string(out.join(".bashrc")).unwrap(),
        "theirs"
    );
    assert!(
        !std::fs::symlink_metadata(out.join("link"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert!(
        err.contains("3 files written") && err.contains("4 of the job's 7"),
        "{err}"
    );
    let names = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(names, 3);
}

#[test]
fn a_providers_text_reaches_the_terminal_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let fake = fake_node();
    let url = fake.url();
    let clean = |s: &str| {
        !s.contains('\x1b') && !s.contains('\x07') && !s.contains('\u{202e}') && !s.contains('\0')
    };

    let (ok, out, err) = text(&sietch(home, &["job", "status", JOB, "--api", &url], &[]));
    assert!(ok, "{err}");
    assert!(clean(&out), "{out:?}");
    assert!(
        out.contains("note      all good\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{202e}"),
        "{out}"
    );
    assert!(
        out.contains("outcome   exited\\u{1b}]0;pwned\\u{7}"),
        "{out}"
    );

    let (ok, out, err) = text(&sietch(home, &["offers", "--api", &url], &[]));
    assert!(ok, "{err}");
    assert!(clean(&out) && out.contains("\\u{1b}"), "{out:?}");

    // A node's error message, too.
    let other = format!("0x{}", "3".repeat(64));
    let (ok, _, err) = text(&sietch(
        home,
        &["job", "status", &other, "--api", &url],
        &[],
    ));
    assert!(!ok);
    assert!(
        clean(&err) && err.contains("no such job\\u{1b}]0;pwned"),
        "{err:?}"
    );

    // `job submit` prints the record the same way (its stdout is the job's own bytes).
    let module = home.join("m.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (_, out, err) = text(&sietch(
        home,
        &[
            "job",
            "submit",
            module.to_str().unwrap(),
            "--api",
            &url,
            "--token",
            "t",
        ],
        &[],
    ));
    assert!(clean(&out) && clean(&err), "{out:?} {err:?}");
    assert!(out.contains("note      all good\\u{1b}[2J"), "{out}{err}");
}
