//! The language-model training guest (`guests/train_lm`, docs/training.md "A second model") for
//! its tests: its builds (`build.sh`, cached by the sources' hash), a job run by either build,
//! the corpus or a synthetic text, weights plus an update, and rounds of local training in the
//! sandbox. Its test crate also declares `mod common` and `train_support` (common/train.rs).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sietch_sandbox::{JobModule, Outcome, Sandbox, SandboxConfig};

use crate::train_support::{self, Run};

/// The corpus's size: scripts/corpus.sh pins its sha256.
pub const AUSTEN_BYTES: usize = 4_025_029;
/// The held-out text: the corpus's last 4,097 bytes (64 windows of 64 predictions).
pub const HELD_OUT: usize = 64 * 64 + 1;

pub fn guest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/train_lm")
}

/// Both builds (`guests/train_lm/build.sh`), once per version of the sources it compiles.
pub fn builds() -> PathBuf {
    let g = guest_dir();
    let train = g.join("../train");
    let mut extra: Vec<PathBuf> = ["args.c", "args.h", "formats.c", "formats.h", "mlp.c"]
        .iter()
        .chain(&["mlp.h", "train.h"])
        .map(|f| train.join(f))
        .collect();
    extra.extend([g.join("../llm/mathx.c"), g.join("../llm/mathx.h")]);
    crate::common::build_guest_once("train_lm", &g, &extra, "train_lm-native")
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_memory_bytes: 128 << 20,
        max_concurrent_jobs: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

pub fn module(sb: &Sandbox) -> JobModule {
    sb.load(&std::fs::read(builds().join("train_lm.wasm")).unwrap())
        .unwrap()
}

/// The wasm build in the sandbox: 64 MiB, 10^12 fuel, five minutes.
pub fn run_wasm(sb: &Sandbox, m: &JobModule, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let mut spec = train_support::spec(inputs, args);
    spec.limits.fuel = 1_000_000_000_000;
    spec.limits.memory_bytes = 64 << 20;
    let r = sb.run(m, &spec).unwrap();
    let Outcome::Exited { code } = r.outcome else {
        panic!(
            "the job ended {}: {}",
            r.outcome,
            String::from_utf8_lossy(&r.stderr)
        );
    };
    Run {
        code,
        outputs: r.outputs,
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        fuel: r.fuel_used,
        wall: r.wall_time,
    }
}

/// The native build, with `/input` and `/output` under a fresh `$TRAIN_ROOT`.
pub fn run_native(inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("input"), root.path().join("output"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    for (name, data) in inputs {
        std::fs::write(input.join(name), data).unwrap();
    }
    let started = Instant::now();
    let out = Command::new(builds().join("train_lm-native"))
        .args(args)
        .env("TRAIN_ROOT", root.path())
        .output()
        .unwrap();
    let wall = started.elapsed();
    let mut outputs = BTreeMap::new();
    for e in std::fs::read_dir(&output).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        outputs.insert(name, std::fs::read(&p).unwrap());
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        outputs,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        fuel: 0,
        wall,
    }
}

/// Both builds, held to exit 0 and the same `/output` bytes; the sandbox's run.
pub fn same(sb: &Sandbox, m: &JobModule, inputs: &[(&str, &[u8])], args: &[&str]) -> Run {
    let native = run_native(inputs, args);
    let wasm = run_wasm(sb, m, inputs, args);
    assert_eq!(native.code, 0, "native {args:?}: {}", native.stderr);
    assert_eq!(wasm.code, 0, "wasm {args:?}: {}", wasm.stderr);
    assert_eq!(
        native.outputs, wasm.outputs,
        "{args:?}: the sandboxed guest and the native build wrote different bytes"
    );
    wasm
}

/// Jane Austen's novels where scripts/corpus.sh keeps them, or None (SKIPPED).
pub fn austen() -> Option<Vec<u8>> {
    let dir = std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sietch/models")))?;
    let text = std::fs::read(dir.join("austen.txt")).ok()?;
    assert_eq!(
        text.len(),
        AUSTEN_BYTES,
        "austen.txt: run scripts/corpus.sh again"
    );
    Some(text)
}

/// `n` bytes of learnable text from a seed: sentences of a few words, ASCII only.
pub fn synthetic_text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "of", "Mr.",
        "Darcy", "was", "not", "very", "happy",
    ];
    let mut s = seed;
    let mut text = Vec::with_capacity(n + 16);
    while text.len() < n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[(s >> 33) as usize % WORDS.len()];
        text.extend_from_slice(w.as_bytes());
        text.extend_from_slice(if (s >> 20).is_multiple_of(7) {
            b".\n"
        } else {
            b" "
        });
    }
    text.truncate(n);
    text
}

/// Weights plus an update, element by element in f32 (the header is the weights').
pub fn plus(weights: &[u8], update: &[u8]) -> Vec<u8> {
    assert_eq!(weights.len(), update.len());
    assert_eq!(weights[..28], update[..28], "the update's header");
    let f = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap());
    let mut out = weights[..28].to_vec();
    for (w, u) in weights[28..]
        .chunks_exact(4)
        .zip(update[28..].chunks_exact(4))
    {
        out.extend_from_slice(&(f(w) + f(u)).to_le_bytes());
    }
    out
}

pub fn init(args: &[&str]) -> Vec<u8> {
    let r = run_native(&[], &[&["mode=init"][..], args].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.outputs["weights.lmw"].clone()
}

/// The held-out loss of weights on the corpus's last HELD_OUT bytes, and the fuel it took.
pub fn held_out(sb: &Sandbox, m: &JobModule, weights: &[u8], text: &[u8]) -> (f64, u64) {
    let from = format!("from={}", text.len() - HELD_OUT);
    let inputs: &[(&str, &[u8])] = &[("weights.lmw", weights), ("corpus.txt", text)];
    let r = run_wasm(sb, m, inputs, &["mode=eval", &from]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (r.number("eval.json", "loss").unwrap(), r.fuel)
}

/// `rounds` jobs in the sandbox, each `steps` steps of `batch` windows on the corpus but its
/// held-out end, from the last round's weights plus its update; a line per round. Returns the
/// held-out losses (before the first round, then after each) and the weights.
pub fn rounds(rounds: u32, steps: u32, batch: u32, text: &[u8]) -> (Vec<f64>, Vec<u8>) {
    let sb = sandbox();
    let m = module(&sb);
    let init = run_wasm(&sb, &m, &[], &["mode=init", "seed=1"]);
    let mut w = init.outputs["weights.lmw"].clone();
    let (loss, fuel) = held_out(&sb, &m, &w, text);
    println!(
        "round 0: held-out loss {loss:.4} (init {} fuel, eval {fuel} fuel)",
        init.fuel
    );
    let mut losses = vec![loss];
    let to = format!("to={}", text.len() - HELD_OUT);
    let (steps, batch) = (format!("steps={steps}"), format!("batch={batch}"));
    let started = Instant::now();
    let mut train_fuel = 0;
    for round in 1..=rounds {
        let seed = format!("seed={round}");
        let inputs: &[(&str, &[u8])] = &[("weights.lmw", &w), ("corpus.txt", text)];
        let r = run_wasm(&sb, &m, inputs, &[&steps, &batch, &seed, &to]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        w = plus(&w, &r.outputs["update.lmw"]);
        train_fuel += r.fuel;
        let (loss, _) = held_out(&sb, &m, &w, text);
        losses.push(loss);
        println!(
            "round {round}: training loss {:.4} -> {:.4}, held-out {loss:.4}; {} fuel, {:?}",
            r.number("stats.json", "loss_first").unwrap(),
            r.number("stats.json", "loss_last").unwrap(),
            r.fuel,
            r.wall
        );
    }
    let elapsed: Duration = started.elapsed();
    println!("{rounds} rounds: {train_fuel} fuel of training, {elapsed:?} with the evals");
    (losses, w)
}
