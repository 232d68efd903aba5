//! `sietch train digits --local` as a real process: the training guest in this machine's
//! sandbox, a line per round, a checkpoint to resume from, JSON lines, and the errors a user
//! meets first. On a made-up data set in the digits CSV's form, so it needs no download.
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

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 240 made-up images: digit `d` lights up row `d % 8` (and column `d / 8 + 1` for 8 and 9),
/// with a little noise: a set a small model learns in a few rounds.
fn write_csv(dir: &Path) -> String {
    let mut s = String::new();
    for i in 0..240u32 {
        let d = i % 10;
        for p in 0..64u32 {
            let (row, col) = (p / 8, p % 8);
            let on = row == d % 8 || (d >= 8 && col == d / 8 + 1);
            let noise = (i * 31 + p * 17) % 5;
            let v = if on { 12 + noise % 5 } else { noise % 3 };
            s.push_str(&format!("{v},"));
        }
        s.push_str(&format!("{d}\n"));
    }
    let path = dir.join("digits.csv");
    std::fs::write(&path, s).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn train_local_prints_a_round_a_line_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let ckpt = dir.path().join("run");
    let ckpt = ckpt.to_str().unwrap();
    let run = [
        "train",
        "digits",
        "--local",
        "--data",
        &data,
        "--held-out",
        "40",
        "--shards",
        "2",
        "--steps",
        "10",
    ];
    let base = [&run[..], &["--checkpoint", ckpt]].concat();
    let out = sietch(&[&base[..], &["--rounds", "2"]].concat());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("round 0: held-out loss"), "{stdout}");
    assert!(stdout.contains("round 1/2: held-out loss"), "{stdout}");
    assert!(stdout.contains("round 2/2: held-out loss"), "{stdout}");
    assert!(stdout.contains("trained 2 rounds"), "{stdout}");
    assert!(Path::new(ckpt).join("checkpoint.json").is_file());
    assert!(Path::new(ckpt).join("weights-0002.swt").is_file());

    // A new run may not take the checkpoint's place; a resumed one goes on from round 3.
    let again = sietch(&[&base[..], &["--rounds", "2"]].concat());
    assert!(!again.status.success());
    assert!(text(&again).1.contains("resume it"), "{}", text(&again).1);
    let resumed = sietch(&[&base[..], &["--resume", "--rounds", "3", "--json"]].concat());
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["kind"], "start");
    assert_eq!(lines[0]["rounds_done"], 2);
    let done: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["kind"] == "round_done").collect();
    assert_eq!(done.len(), 1, "{stdout}");
    assert_eq!(done[0]["round"], 3);
    assert_eq!(done[0]["jobs"], 2);
    assert!(done[0]["paid"].as_str().unwrap().parse::<u128>().unwrap() > 0);
    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert!(
        summary["held_out"]["accuracy"].as_f64().unwrap() > 0.5,
        "{summary}"
    );
    assert!(summary["weights_hash"].as_str().unwrap().starts_with("0x"));

    // The same three rounds at once end on the same weights as two, a stop and one more.
    let whole = sietch(&[&run[..], &["--rounds", "3", "--json"]].concat());
    let (stdout, stderr) = text(&whole);
    assert!(whole.status.success(), "{stdout}\n{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["weights_hash"], summary["weights_hash"]);
}

#[test]
fn train_says_what_is_missing_or_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.csv.gz");
    let out = sietch(&[
        "train",
        "digits",
        "--local",
        "--data",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(stderr.contains("scripts/digits.sh"), "{stderr}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "1,2,3\n").unwrap();
    let out = sietch(&[
        "train",
        "digits",
        "--local",
        "--data",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("line 1"), "{}", text(&out).1);

    let data = write_csv(dir.path());
    let out = sietch(&["train", "digits", "--local", "--data", &data, "--lr", "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("297 held out and 3 shards from 240 samples"),
        "{}",
        text(&out).1
    );
    let out = sietch(&[
        "train",
        "digits",
        "--local",
        "--data",
        &data,
        "--held-out",
        "40",
        "--lr",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("lr 0"), "{}", text(&out).1);
    let out = sietch(&["train", "digits", "--resume"]);
    assert!(!out.status.success(), "--resume without --checkpoint");
}
