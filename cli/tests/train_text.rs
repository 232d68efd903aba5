//! `sietch train text --local` as a real process: the language-model guest (the second model of
//! docs/training.md) in this machine's sandbox, a line per round with the held-out loss falling,
//! greedy text at the end, and the errors a user meets first. On a made-up text, so it needs no
//! download.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::process::{Command, Output};

fn sietch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sietch"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The held-out loss a line `round R: ... held-out loss X` reports.
fn held_out(stdout: &str, round: u32) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("round {round}:")))
        .unwrap_or_else(|| panic!("no round {round} in {stdout}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn train_text_local_prints_a_round_a_line_and_a_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("text.txt");
    let line = "the cat sat on the mat and the dog ran to the house.\n";
    std::fs::write(&data, line.repeat(400)).unwrap();
    let data = data.to_str().unwrap();
    let out = sietch(&[
        "train",
        "text",
        "--local",
        "--data",
        data,
        "--rounds",
        "2",
        "--shards",
        "2",
        "--steps",
        "4",
        "--batch",
        "4",
        "--held-out",
        "1000",
        "--sample",
        "30",
        "--prompt",
        "the cat",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("279424-parameter transformer"), "{stdout}");
    let (first, last) = (held_out(&stdout, 0), held_out(&stdout, 2));
    assert!((first - 256f64.ln()).abs() < 0.1, "{stdout}");
    assert!(
        last < first - 1.0,
        "the held-out loss {first} -> {last}:\n{stdout}"
    );
    let (_, after) = stdout
        .split_once("fuel of training")
        .expect("the cost line");
    let sample = after.split_once('\n').unwrap().1;
    assert!(
        sample.starts_with("the cat") && sample.len() > 30,
        "{stdout}"
    );
}

#[test]
fn train_text_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = sietch(&["train", "text", "--data", "/nonexistent"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--local"), "{}", text(&out).1);
    let missing = dir.path().join("none.txt");
    let out = sietch(&[
        "train",
        "text",
        "--local",
        "--data",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("scripts/corpus.sh"),
        "{}",
        text(&out).1
    );
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "too short").unwrap();
    let out = sietch(&[
        "train",
        "text",
        "--local",
        "--data",
        small.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cannot make 2 shards"),
        "{}",
        text(&out).1
    );
}
