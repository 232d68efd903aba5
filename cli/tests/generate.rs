//! `sietch generate --local`: the real model, run here as a provider would run it, with what
//! it would cost; bad input refused with a clear error before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

#[test]
fn a_local_run_answers_and_says_what_it_would_cost() {
    let model = sietch_testkit::model::smollm2();
    let model = model.to_str().unwrap();
    let (ok, out, err) = sietch(&[
        "generate",
        "--local",
        "--json",
        "--model",
        model,
        "--max-tokens",
        "12",
        "What is the capital of France?",
    ]);
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v["completions"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Paris"),
        "{v}"
    );
    let s = &v["summary"];
    assert_eq!(s["outcome"], "exited with code 0", "{v}");
    let fuel = s["fuel_used"].as_u64().unwrap();
    let tokens = s["prompt_tokens"].as_u64().unwrap() + s["completion_tokens"].as_u64().unwrap();
    assert_eq!(
        s["fuel_per_1k_tokens"].as_u64().unwrap(),
        fuel * 1000 / tokens,
        "{v}"
    );
    // 1,000 base units per 10^9 fuel, rounded up.
    assert_eq!(s["cost"], fuel.div_ceil(1_000_000).to_string(), "{v}");

    // Out of fuel after the model loads: what finished is shown (here nothing), and it says so.
    let (ok, out, err) = sietch(&[
        "generate", "--local", "--model", model, "--fuel", "50000000", "hi",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("out of fuel"), "{out}");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let not_gguf = dir.path().join("model.bin");
    std::fs::write(&not_gguf, b"not a model").unwrap();
    let (ok, _, err) = sietch(&[
        "generate",
        "--local",
        "--model",
        not_gguf.to_str().unwrap(),
        "hi",
    ]);
    assert!(!ok && err.contains("is not a GGUF file"), "{err}");
    let (ok, _, err) = sietch(&[
        "generate",
        "--local",
        "--model",
        "/no/such/model.gguf",
        "hi",
    ]);
    assert!(!ok && err.contains("reading the model"), "{err}");
    let model = sietch_testkit::model::smollm2();
    let (ok, _, err) = sietch(&["generate", "--local", "--model", model.to_str().unwrap()]);
    assert!(!ok && err.contains("nothing to generate"), "{err}");
}
